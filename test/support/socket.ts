import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { request as httpRequest, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http';
import { readdir, stat } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { FastifyInstance } from 'fastify';

/** Starts listening on a free loopback port and returns the base URL (`http://127.0.0.1:<port>`). */
export async function listen(app: FastifyInstance): Promise<string> {
  await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.address() as AddressInfo;
  return `http://127.0.0.1:${port}`;
}

export interface SocketResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

export interface SendOptions {
  method: string;
  headers?: OutgoingHttpHeaders;
  /** A buffer (sent with Content-Length) or a stream (sent chunked unless a Content-Length header is given). */
  body?: Buffer | Readable;
  timeoutMs?: number;
}

/**
 * One HTTP request over a fresh connection (no keep-alive), answered in full.
 * Fails after `timeoutMs` (default 30 s) so a hung server cannot hang a test.
 */
export function send(url: string | URL, options: SendOptions): Promise<SocketResponse> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  return new Promise<SocketResponse>((resolve, reject) => {
    const headers: OutgoingHttpHeaders = { ...options.headers };
    if (Buffer.isBuffer(options.body) && headers['content-length'] === undefined) {
      headers['content-length'] = String(options.body.length);
    }
    const req = httpRequest(url, { method: options.method, headers, agent: false });
    const timer = setTimeout(() => req.destroy(new Error(`${options.method} ${String(url)} timed out after ${timeoutMs} ms`)), timeoutMs);
    req.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    req.once('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      res.once('end', () => {
        clearTimeout(timer);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) });
      });
    });
    const body = options.body;
    if (body === undefined) req.end();
    else if (Buffer.isBuffer(body)) req.end(body);
    else pipeline(body, req).catch((err: unknown) => req.destroy(err as Error));
  });
}

/** Streams a GET response through SHA-256 without keeping it; returns status, headers, digest and length. */
export async function getDigest(
  url: string | URL,
  headers: Record<string, string> = {},
  timeoutMs = 60_000,
): Promise<{ status: number; headers: Headers; digest: string; length: number }> {
  const res = await fetch(url, { headers, signal: AbortSignal.timeout(timeoutMs) });
  const hash = createHash('sha256');
  let length = 0;
  if (res.body) {
    for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
      hash.update(chunk);
      length += chunk.length;
    }
  }
  return { status: res.status, headers: res.headers, digest: `sha256:${hash.digest('hex')}`, length };
}

/**
 * Sends the headers and `sent` of a request body, waits until `ready()` says the
 * server has taken those bytes (bounded by `timeoutMs`), then destroys the request
 * as a client that dies mid-body would.
 */
export async function sendThenAbort(
  url: string | URL,
  options: { method: string; headers: OutgoingHttpHeaders; sent: Buffer; ready: () => Promise<boolean>; timeoutMs?: number },
): Promise<void> {
  const req = httpRequest(url, { method: options.method, headers: options.headers, agent: false });
  req.on('error', () => {}); // the abort is the point
  req.on('response', (res) => res.resume());
  if (!req.write(options.sent)) await once(req, 'drain');
  try {
    await waitFor(options.ready, { timeoutMs: options.timeoutMs ?? 10_000, what: 'the server to receive the partial body' });
  } finally {
    req.destroy();
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `check` every `intervalMs` until it returns true; throws after `timeoutMs`. */
export async function waitFor(
  check: () => Promise<boolean> | boolean,
  { timeoutMs = 10_000, intervalMs = 50, what = 'a condition' }: { timeoutMs?: number; intervalMs?: number; what?: string } = {},
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() >= deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}

/** Every regular file under `dir` (recursively), as paths relative to it; [] when `dir` does not exist. */
export async function filesUnder(dir: string): Promise<string[]> {
  let entries;
  try {
    entries = await readdir(dir, { recursive: true, withFileTypes: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath ?? e.path, e.name).slice(dir.length + 1));
}

/** The size of a file, or null when it does not exist. */
export async function fileSize(path: string): Promise<number | null> {
  try {
    return (await stat(path)).size;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

/** Deterministic test bytes: `length` bytes derived from `seed`. */
export function testBytes(length: number, seed = 1): Buffer {
  const out = Buffer.alloc(length);
  let block = createHash('sha256').update(`seed:${seed}`).digest();
  for (let off = 0; off < length; off += block.length) {
    block.copy(out, off);
    block = createHash('sha256').update(block).digest();
  }
  return out;
}
