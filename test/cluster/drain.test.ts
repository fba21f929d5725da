// A node sent SIGTERM drains: the request it is serving completes, it takes no new ones (haproxy sends
// them elsewhere, then its health check takes the node out), and it exits cleanly.
import { readFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { sleep, testBytes } from '../support/socket.js';
import { digestOf, expectBlob, finishUpload, itLeavesNoErrors, patchChunk, pathOf, rangeEnd, request, startUpload, useCluster } from './support.js';

const cluster = useCluster({ nodes: 3 });
const MiB = 1024 * 1024;

describe('draining a node', () => {
  it('completes the in-flight request of a node sent SIGTERM, and the balancer takes the node out', async () => {
    const { url: balancer, nodes } = cluster();
    const victim = nodes[1]!;
    const repo = 'cluster/drain';
    const data = testBytes(6 * MiB, 55);
    const first = MiB;
    const path = await startUpload(balancer, repo);
    expect((await patchChunk(balancer, path, data.subarray(0, first), 0)).status).toBe(202);

    // 4 MiB streamed slowly to the victim; SIGTERM once a quarter of it is on the way.
    const chunk = data.subarray(first, first + 4 * MiB);
    let signalled = false;
    const piece = 256 * 1024;
    const body = Readable.from(
      (async function* () {
        for (let off = 0; off < chunk.length; off += piece) {
          yield chunk.subarray(off, off + piece);
          await sleep(100);
          if (!signalled && off >= MiB) {
            signalled = true;
            await victim.kill('SIGTERM');
          }
        }
      })(),
    );
    const inFlight = request(victim.url, 'PATCH', path, {
      headers: {
        'content-type': 'application/octet-stream',
        'content-range': `${first}-${first + chunk.length - 1}`,
        'content-length': String(chunk.length),
      },
      body,
    });

    // Meanwhile, clients of the balancer see no failure: what reaches the draining node goes elsewhere.
    const meanwhile: number[] = [];
    const started = Date.now();
    while (Date.now() - started < 3_000) {
      const res = await request(balancer, 'GET', '/v2/');
      meanwhile.push(res.status);
      await sleep(50);
    }
    const patched = await inFlight;
    expect(signalled).toBe(true);
    expect(patched.status, patched.body.toString()).toBe(202);
    expect(rangeEnd(patched.header('range'))).toBe(first + chunk.length);
    expect(meanwhile.filter((s) => s !== 200), JSON.stringify(meanwhile)).toEqual([]);

    const exit = await victim.waitExit(15_000);
    expect(exit.code).toBe(0);
    await cluster().waitBalancerStatus(victim.name, 'DOWN');
    expect(readFileSync(victim.logFile, 'utf8')).toContain('shutting down');

    // The rest through the balancer, the others only now.
    const rest = await patchChunk(balancer, pathOf(patched.header('location')), data.subarray(first + chunk.length), first + chunk.length);
    expect(rest.status, rest.body.toString()).toBe(202);
    const done = await finishUpload(balancer, pathOf(rest.header('location')), digestOf(data));
    expect(done.status, done.body.toString()).toBe(201);
    for (const node of nodes.filter((n) => n !== victim)) await expectBlob(node.url, repo, data);

    await victim.restart();
    await cluster().waitBalancerStatus(victim.name, 'UP');
    await expectBlob(victim.url, repo, data);
  });

  itLeavesNoErrors(cluster);
});
