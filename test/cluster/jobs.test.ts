// Background jobs run on one node at a time and are taken over when that node dies: upload purging,
// set short, removes each stale upload exactly once with three nodes racing for the job.
import { describe, expect, it } from 'vitest';
import { sleep, testBytes, waitFor } from '../support/socket.js';
import { itLeavesNoErrors, patchChunk, pathOf, request, startUpload, useCluster } from './support.js';

const cluster = useCluster({
  nodes: 3,
  env: {
    REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_ENABLED: 'true',
    REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_AGE: '2s',
    REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_INTERVAL: '1s',
  },
});

/** Every "purged expired uploads" entry in the nodes' logs: which node, how many. */
function purges(): Array<{ node: string; count: number; time: number }> {
  const found: Array<{ node: string; count: number; time: number }> = [];
  for (const text of cluster().logs()) {
    for (const line of text.split('\n')) {
      if (!line.includes('purged expired uploads')) continue;
      const entry = JSON.parse(line) as { node: string; count: number; time: number };
      found.push({ node: entry.node, count: entry.count, time: entry.time });
    }
  }
  return found;
}

const total = () => purges().reduce((n, p) => n + p.count, 0);

/** Starts an upload through the balancer and gives it a chunk; returns its path. */
async function staleUpload(seed: number): Promise<string> {
  const path = await startUpload(cluster().url, 'cluster/jobs');
  const res = await patchChunk(cluster().url, path, testBytes(64 * 1024, seed), 0);
  expect(res.status, res.body.toString()).toBe(202);
  return pathOf(res.header('location'));
}

async function gone(path: string): Promise<boolean> {
  return (await request(cluster().url, 'GET', path)).status === 404;
}

describe('background jobs on several nodes', () => {
  it('purges each stale upload exactly once, and leaves an active one alone', async () => {
    const before = total();
    const stale = [await staleUpload(1), await staleUpload(2), await staleUpload(3)];

    // One upload kept busy through the balancer (so through every node in turn) all the while.
    let active = await startUpload(cluster().url, 'cluster/jobs');
    let offset = 0;
    const until = Date.now() + 6_000;
    while (Date.now() < until) {
      const chunk = testBytes(1024, offset);
      const res = await patchChunk(cluster().url, active, chunk, offset);
      expect(res.status, `the active upload after ${offset} bytes: ${res.body.toString()}`).toBe(202);
      offset += chunk.length;
      active = pathOf(res.header('location'));
      await sleep(500);
    }
    // Still there after all that time, then ended before it can go stale itself.
    expect((await request(cluster().url, 'GET', active)).status).toBe(204);
    expect((await request(cluster().url, 'DELETE', active)).status).toBe(204);
    for (const path of stale) await waitFor(() => gone(path), { timeoutMs: 15_000, intervalMs: 200, what: `${path} to be purged` });
    // Some more rounds of the job on every node: nothing is purged twice.
    await sleep(3_000);
    expect(total() - before).toBe(stale.length);
  });

  it('is taken over by another node when the one that ran it dies', async () => {
    const last = purges().sort((x, y) => x.time - y.time).at(-1);
    expect(last).toBeDefined();
    const victim = cluster().nodes.find((n) => n.name === last!.node)!;
    await victim.kill('SIGKILL');
    const killedAt = Date.now();
    const since = () => purges().filter((p) => p.time >= killedAt);
    const path = await staleUpload(9);
    await waitFor(() => gone(path), { timeoutMs: 15_000, intervalMs: 200, what: `${path} to be purged by another node` });
    // The log line may follow the 404 by a moment.
    await waitFor(() => since().length > 0, { timeoutMs: 5_000, what: 'the purge to be logged' });
    const after = since();
    expect(after.length).toBe(1);
    expect(after[0]!.node).not.toBe(victim.name);
    await victim.restart();
    await cluster().waitBalancerStatus(victim.name, 'UP');
  });

  itLeavesNoErrors(cluster);
});
