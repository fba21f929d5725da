import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { sendObject } from '../../src/http/send-object.js';
import type { ObjectHandle } from '../../src/storage/blob-store.js';

const MiB = 1024 * 1024;

/** An object of `size` bytes (byte i is i % 251) whose reads can be made to fail. */
function objectOf(size: number, fail?: { at: number; how: 'short' | 'error' }): ObjectHandle & { closed: boolean } {
  return {
    size,
    closed: false,
    async read(buffer, length, position) {
      if (fail && position + length > fail.at) {
        if (fail.how === 'error') throw new Error('EIO: i/o error, read');
        return 0; // the file ended early
      }
      const n = Math.min(length, size - position);
      for (let i = 0; i < n; i++) buffer[i] = (position + i) % 251;
      return n;
    },
    async close() {
      this.closed = true;
    },
  };
}

describe('sendObject', () => {
  let server: Server | undefined;
  afterEach(async () => {
    await new Promise((resolve) => server?.close(resolve) ?? resolve(undefined));
  });

  /** Serves `object` from `start` for `length` bytes; resolves with the client's view and the server's outcome. */
  async function serve(object: ObjectHandle, start: number, length: number) {
    let outcome!: Promise<unknown>;
    server = createServer((_req, res) => {
      res.writeHead(200, { 'content-length': length });
      outcome = sendObject(object, start, length, res).then(
        () => 'sent',
        (err: Error) => err.message,
      );
    });
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const client = await new Promise<{ body: Buffer; complete: boolean }>((resolve) => {
      const chunks: Buffer[] = [];
      const req = request({ host: '127.0.0.1', port, agent: false }, (res) => {
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('close', () => resolve({ body: Buffer.concat(chunks), complete: res.complete }));
      });
      req.on('error', () => resolve({ body: Buffer.concat(chunks), complete: false }));
      req.end();
    });
    return { client, outcome: await outcome };
  }

  it('sends the range asked for, across several reused buffers', async () => {
    const { client, outcome } = await serve(objectOf(9 * MiB), MiB - 7, 6 * MiB + 11);
    expect(outcome).toBe('sent');
    expect(client.complete).toBe(true);
    expect(client.body.length).toBe(6 * MiB + 11);
    for (const i of [0, MiB, 3 * MiB + 5, 6 * MiB + 10]) expect(client.body[i]).toBe((MiB - 7 + i) % 251);
  });

  it.each(['short', 'error'] as const)('cuts the response short when a read fails (%s), so the client sees it', async (how) => {
    const { client, outcome } = await serve(objectOf(8 * MiB, { at: 5 * MiB, how }), 0, 8 * MiB);
    expect(outcome).toMatch(how === 'short' ? /ended at byte/ : /EIO/);
    expect(client.complete).toBe(false);
    expect(client.body.length).toBeLessThan(8 * MiB);
  });
});
