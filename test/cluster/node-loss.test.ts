// A node killed (SIGKILL) in the middle of a chunk loses nothing that was acknowledged: the client
// asks the balancer where the upload stands and finishes it through the other nodes.
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { sleep, testBytes } from '../support/socket.js';
import {
  digestOf,
  expectBlob,
  finishUpload,
  itLeavesNoErrors,
  makeImage,
  patchChunk,
  pathOf,
  pushImage,
  request,
  resolve,
  startUpload,
  uploadOffset,
  useCluster,
} from './support.js';

const cluster = useCluster({ nodes: 3 });
const MiB = 1024 * 1024;

/** A body that hands out `data` in 256 KiB pieces, calling `after(sent)` after each (a pause, a kill...). */
function slowBody(data: Buffer, after: (sent: number) => Promise<void>): Readable {
  const piece = 256 * 1024;
  return Readable.from(
    (async function* () {
      for (let off = 0; off < data.length; off += piece) {
        yield data.subarray(off, off + piece);
        await after(Math.min(data.length, off + piece));
      }
    })(),
  );
}

describe('losing a node', () => {
  it('finishes a chunked upload through the others after its node is killed mid-PATCH', async () => {
    const { url: balancer, nodes } = cluster();
    const victim = nodes[1]!;
    const repo = 'cluster/killed';
    const data = testBytes(12 * MiB, 77);
    const first = 2 * MiB;

    const path = await startUpload(balancer, repo);
    const acknowledged = await patchChunk(balancer, path, data.subarray(0, first), 0);
    expect(acknowledged.status, acknowledged.body.toString()).toBe(202);

    // 8 MiB streamed straight to the victim; it dies once about 3 MiB of it are on the way.
    const streamed = data.subarray(first, first + 8 * MiB);
    let killed = false;
    const body = slowBody(streamed, async (sent) => {
      await sleep(30);
      if (!killed && sent >= 3 * MiB) {
        killed = true;
        await victim.kill('SIGKILL');
      }
    });
    const outcome = await request(victim.url, 'PATCH', path, {
      headers: {
        'content-type': 'application/octet-stream',
        'content-range': `${first}-${first + streamed.length - 1}`,
        'content-length': String(streamed.length),
      },
      body,
      timeoutMs: 60_000,
    }).then(
      (res) => `answered ${res.status}`,
      (err: Error) => `failed: ${err.message}`,
    );
    expect(killed, outcome).toBe(true);
    // The request fails as soon as the socket drops, maybe before the exit is reported.
    const exit = await victim.waitExit(10_000);
    expect(exit.signal).toBe('SIGKILL');
    expect(outcome).toMatch(/^failed/);

    // Through the balancer (which may still count the victim as up, and then retries on another node).
    let offset = await uploadOffset(balancer, path);
    expect(offset).toBeGreaterThanOrEqual(first);
    expect(offset).toBeLessThanOrEqual(first + streamed.length);
    let current = path;
    while (offset < data.length) {
      const chunk = data.subarray(offset, Math.min(data.length, offset + MiB));
      const res = await patchChunk(balancer, current, chunk, offset);
      expect(res.status, res.body.toString()).toBe(202);
      offset += chunk.length;
      current = pathOf(res.header('location'));
    }
    const done = await finishUpload(balancer, current, digestOf(data));
    expect(done.status, done.body.toString()).toBe(201);

    await cluster().waitBalancerStatus(victim.name, 'DOWN');
    for (const node of nodes.filter((n) => n !== victim)) await expectBlob(node.url, repo, data);
    await expectBlob(balancer, repo, data);

    // Back again, the victim serves it too.
    await victim.restart();
    await cluster().waitBalancerStatus(victim.name, 'UP');
    await expectBlob(victim.url, repo, data);
  });

  it('keeps serving pushes and pulls through the balancer while a node is down', async () => {
    const { url: balancer, nodes } = cluster();
    const victim = nodes[2]!;
    await victim.kill('SIGKILL');
    // No waiting for the health check: requests that reach the dead node are sent to another.
    const repo = 'cluster/degraded';
    for (let i = 0; i < 6; i++) {
      const image = makeImage([testBytes(50_000, 500 + i)], `degraded-${i}`);
      await pushImage(balancer, repo, image, `v${i}`);
      expect(await resolve(balancer, repo, `v${i}`)).toBe(image.digest);
      await expectBlob(balancer, repo, image.layers[0]!);
    }
    await victim.restart();
    await cluster().waitBalancerStatus(victim.name, 'UP');
    expect(await resolve(victim.url, repo, 'v5')).toBeDefined();
    const res = await request(victim.url, 'GET', `/v2/${repo}/tags/list`);
    expect(JSON.parse(res.body.toString()).tags).toHaveLength(6);
  });

  itLeavesNoErrors(cluster);
});
