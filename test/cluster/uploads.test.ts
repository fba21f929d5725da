// An upload session belongs to the registry, not to the node that started it.
import { describe, expect, it } from 'vitest';
import { testBytes } from '../support/socket.js';
import { digestOf, expectBlob, finishUpload, itLeavesNoErrors, patchChunk, pathOf, rangeEnd, request, startUpload, uploadOffset, useCluster } from './support.js';

const cluster = useCluster({ nodes: 3 });

describe('uploads across nodes', () => {
  it('continues an upload started on one node on the others: PATCHes on B and C, status on A, PUT on B', async () => {
    const [a, b, c] = cluster().nodes.map((n) => n.url) as [string, string, string];
    const repo = 'cluster/uploads';
    const chunks = [testBytes(1024 * 1024, 1), testBytes(700 * 1024, 2), testBytes(300 * 1024 + 17, 3), testBytes(5, 4)];
    const data = Buffer.concat(chunks);

    let path = await startUpload(a, repo);
    let offset = 0;
    for (const [i, chunk] of chunks.entries()) {
      const node = i % 2 === 0 ? b : c;
      const res = await patchChunk(node, path, chunk, offset);
      expect(res.status, `${node}: ${res.body.toString()}`).toBe(202);
      offset += chunk.length;
      expect(rangeEnd(res.header('range'))).toBe(offset);
      path = pathOf(res.header('location'));
      // Every node knows where it stands at once.
      expect(await uploadOffset(a, path)).toBe(offset);
    }
    const done = await finishUpload(b, path, digestOf(data));
    expect(done.status, done.body.toString()).toBe(201);
    expect(done.header('docker-content-digest')).toBe(digestOf(data));
    for (const node of cluster().nodes) await expectBlob(node.url, repo, data);
    // The session is over everywhere.
    for (const node of cluster().nodes) expect((await request(node.url, 'GET', path)).status).toBe(404);
  });

  it('applies exactly one of two PATCHes of one session sent at once to two nodes', async () => {
    const [a, b, c] = cluster().nodes.map((n) => n.url) as [string, string, string];
    const repo = 'cluster/race';
    for (let round = 0; round < 5; round++) {
      const first = testBytes(4 * 1024 * 1024, 100 + round);
      const rival = testBytes(4 * 1024 * 1024, 200 + round);
      const path = await startUpload(a, repo);
      const [onB, onC] = await Promise.all([patchChunk(b, path, first, 0), patchChunk(c, path, rival, 0)]);
      const statuses = [onB.status, onC.status].sort();
      expect(statuses, `${onB.body.toString()} ${onC.body.toString()}`).toEqual([202, 416]);
      const winner = onB.status === 202 ? first : rival;
      // A 416 says where the upload stands: after the winner's chunk.
      const loser = onB.status === 202 ? onC : onB;
      expect(rangeEnd(loser.header('range'))).toBe(winner.length);
      expect(await uploadOffset(a, path)).toBe(winner.length);

      const done = await finishUpload(a, path, digestOf(winner));
      expect(done.status, done.body.toString()).toBe(201);
      for (const node of cluster().nodes) await expectBlob(node.url, repo, winner);
      expect((await request(b, 'HEAD', `/v2/${repo}/blobs/${digestOf(onB.status === 202 ? rival : first)}`)).status).toBe(404);
    }
  });

  itLeavesNoErrors(cluster);
});
