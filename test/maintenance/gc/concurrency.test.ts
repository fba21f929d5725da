// The collector under concurrent writers, on one real server (filesystem store, SQLite index): it
// runs every 10 ms while 8 writers push images sharing layers, delete some and push some of those
// again (test/support/gc-workload.ts). At the end every image acknowledged and not deleted pulls
// byte for byte, every deleted one's own content is gone from the store and the index, and no
// writer saw a refusal other than those a client recovers from. Once without, once with
// deleteuntagged.
//
// The grace window is 1 s, not 0: with 0, a blob is collected within one run (10 ms) of its
// upload, before any manifest can reference it, and no push ever completes (every manifest PUT is
// refused, however often the client re-uploads and retries). Slow pushes (waiting longer than the
// window before their manifest) take the place of that race: what they uploaded is collected
// meanwhile, and they must recover.
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi, type MockInstance } from 'vitest';
import { GarbageCollector, type GcReport } from '../../../src/maintenance/gc/collector.js';
import { startRegistry, type TestRegistry } from '../../helpers.js';
import { checkDead, checkLive, describeWorkload, runWorkload, workloadProblems } from '../../support/gc-workload.js';
import { listen, sleep } from '../../support/socket.js';

const GRACE_MS = 1_000;
const INTERVAL_MS = 10;

/** Whether the filesystem store under `root` holds `key`. */
async function storedUnder(root: string, key: string): Promise<boolean> {
  try {
    await stat(join(root, key));
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

describe.each([false, true])('the collector in a tight loop under 8 writers (deleteuntagged %s)', (deleteUntagged) => {
  let reg: TestRegistry;
  let base: string;
  // Every run of the collector, to say how often it ran meanwhile and what it took.
  let runs: MockInstance<GarbageCollector['run']>;

  beforeAll(async () => {
    runs = vi.spyOn(GarbageCollector.prototype, 'run');
    reg = await startRegistry({
      storage: {
        delete: { enabled: true },
        maintenance: { gc: { interval: `${INTERVAL_MS}ms`, delay: `${GRACE_MS}ms`, deleteuntagged: deleteUntagged } },
      },
    });
    base = await listen(reg.app);
  });
  afterAll(async () => {
    await reg?.destroy();
    runs.mockRestore();
  });

  it('keeps every live image whole, removes what deleted ones held alone, and refuses nothing unrecoverable', async () => {
    const result = await runWorkload({ bases: [base], prefix: deleteUntagged ? 'untagged' : 'gc', slowPushMs: GRACE_MS + 20 * INTERVAL_MS });
    const during = runs.mock.results.length;

    // The last deletions' content leaves the grace window, then at least two whole runs (the
    // first call may only wait for a run in progress).
    await sleep(GRACE_MS + INTERVAL_MS);
    const job = reg.app.jobs.find((j) => j.name === 'gc');
    expect(job).toBeDefined();
    for (let i = 0; i < 3; i++) await job!.runNow();

    const reports = await Promise.all(runs.mock.results.map((r) => r.value as Promise<GcReport>));
    const removed = reports.reduce((n, r) => n + r.blobs, 0);
    const manifests = reports.reduce((n, r) => n + r.manifests, 0);
    const reprieved = reports.reduce((n, r) => n + r.reprieved, 0);
    console.log(
      `${describeWorkload(`one node, deleteuntagged ${deleteUntagged}`, result)}\n` +
        `  collector: ${during} runs during the workload, ${reports.length} in all; ${removed} blobs and ${manifests} untagged manifests removed, ${reprieved} reprieved`,
    );

    expect(workloadProblems(result)).toEqual([]);
    expect(during).toBeGreaterThan(10);
    expect(removed).toBeGreaterThan(0);

    expect(await checkLive(result.images, [base])).toEqual([]);
    expect(await checkDead(result.images, [base], (key) => storedUnder(reg.root, key))).toEqual([]);
  });
});
