// The collector on two nodes sharing one bucket (s3rver) and one PostgreSQL index, each node running
// it every 50 ms (one at a time, under the job lock), while 8 writers push images that share layers
// through both nodes in turn, delete some and push some of those again (test/support/gc-workload.ts).
// At the end every image acknowledged and not deleted pulls byte for byte through both nodes, every
// deleted one's own content is gone from the bucket and the index, and no writer saw a refusal other
// than those a client recovers from.
//
// The grace window is 2 s rather than 0, for the reason test/maintenance/gc/concurrency.test.ts
// gives: with none, every blob is collected before the manifest that needs it can arrive. Slow
// pushes, waiting longer than the window before their manifest, make that race happen instead.
import { describe, expect, it } from 'vitest';
import { runCli } from '../support/built-server.js';
import { listKeys } from '../support/s3.js';
import { sleep } from '../support/socket.js';
import { checkDead, checkLive, describeWorkload, runWorkload, workloadProblems } from '../support/gc-workload.js';
import { itLeavesNoErrors, useCluster } from './support.js';

const GRACE_MS = 2_000;
const INTERVAL_MS = 50;

const cluster = useCluster({
  nodes: 2,
  env: {
    REGISTRY_STORAGE_DELETE_ENABLED: 'true',
    REGISTRY_STORAGE_MAINTENANCE_GC_INTERVAL: `${INTERVAL_MS}ms`,
    REGISTRY_STORAGE_MAINTENANCE_GC_DELAY: `${GRACE_MS}ms`,
  },
});

/** The collections that removed something, from the nodes' logs: which node, what it removed. */
function collections(): Array<{ node: string; blobs: number; manifests: number; reprieved: number }> {
  const found = [];
  for (const text of cluster().logs()) {
    for (const line of text.split('\n')) {
      if (!line.includes('"garbage collection: ')) continue;
      const entry = JSON.parse(line) as { node: string; blobs: number; manifests: number; reprieved: number };
      found.push({ node: entry.node, blobs: entry.blobs, manifests: entry.manifests, reprieved: entry.reprieved });
    }
  }
  return found;
}

/** `ocireg gc` on the cluster's bucket and database, retried (bounded) while a node holds the job. */
async function collectNow(): Promise<string> {
  const c = cluster();
  for (let attempt = 0; attempt < 50; attempt++) {
    const res = await runCli(c.cli, ['gc'], c.env, 60_000);
    if (res.code === 0) return res.stdout;
    if (!res.stderr.includes('is running on a registry node')) throw new Error(`ocireg gc exited ${res.code}: ${res.stderr}`);
    await sleep(100);
  }
  throw new Error('ocireg gc: a node held the job throughout');
}

describe('garbage collection on two nodes under 8 writers', () => {
  it('keeps every live image whole on both nodes, removes what deleted ones held alone, and refuses nothing unrecoverable', async () => {
    const nodes = cluster().nodes.map((n) => n.url);
    const result = await runWorkload({ bases: nodes, prefix: 'cluster-gc', slowPushMs: GRACE_MS + 1_000 });
    const during = collections();

    // The last deletions' content leaves the grace window; then a collection that surely starts
    // after that (the command takes the job lock, as the nodes do), twice.
    await sleep(GRACE_MS + 200);
    const last = [await collectNow(), await collectNow()];
    console.log(
      `${describeWorkload('two nodes', result)}\n` +
        `  collections that removed something during the workload: ${during.length} ` +
        `(${JSON.stringify(countBy(during.map((d) => d.node)))}), ` +
        `${during.reduce((n, d) => n + d.blobs, 0)} blobs; ${during.reduce((n, d) => n + d.reprieved, 0)} reprieved\n` +
        `  then ocireg gc: ${last.map((s) => s.trim()).join('; ')}`,
    );

    expect(workloadProblems(result)).toEqual([]);
    // Each node ran the collector (one at a time, under the job lock).
    expect(new Set(during.map((d) => d.node)).size).toBe(2);

    expect(await checkLive(result.images, nodes)).toEqual([]);
    const keys = new Set(await listKeys(cluster().s3));
    expect(await checkDead(result.images, nodes, async (key) => keys.has(key))).toEqual([]);
  });

  itLeavesNoErrors(cluster);
});

function countBy(values: readonly string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const v of values) out[v] = (out[v] ?? 0) + 1;
  return out;
}
