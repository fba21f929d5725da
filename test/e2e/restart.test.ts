// A chunked upload that outlives the registry process: stopped cleanly, and killed while a
// chunk is still arriving. The client resumes where the registry says the upload ends.
import { randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { freePort, type ServerProcess } from '../support/built-server.js';
import { fileSize, sleep } from '../support/socket.js';
import { serverFaults, sha256, startRegistryProcess, tempFolder } from './harness.js';

const MiB = 1024 * 1024;

let work: string;
let running: ServerProcess | undefined;

beforeAll(async () => {
  work = await tempFolder('restart-', inject('e2eWork'));
});

afterEach(async () => {
  await running?.stop();
  running = undefined;
});

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

/** The log file of a case's registry (kept across its restarts). */
const logOf = (name: string) => join(work, `${name}.log`);

/** Starts (or restarts) the registry of a case on its own data folder and port. */
async function start(name: string, port: number): Promise<ServerProcess> {
  const dataDir = join(work, name);
  await mkdir(dataDir, { recursive: true });
  running = await startRegistryProcess(dataDir, logOf(name), port);
  return running;
}

async function http(url: string, init: RequestInit & { method: string }): Promise<Response> {
  return fetch(url, { ...init, signal: AbortSignal.timeout(30_000) });
}

/** GET on the upload URL: the registry's word on how many bytes it holds. */
async function uploadedBytes(base: string, location: string): Promise<number> {
  const res = await http(new URL(location, base).href, { method: 'GET' });
  expect(res.status).toBe(204);
  const range = res.headers.get('range');
  expect(range).toMatch(/^0-\d+$/);
  return Number(range!.split('-')[1]) + 1;
}

async function patch(base: string, location: string, offset: number, chunk: Buffer): Promise<string> {
  const res = await http(new URL(location, base).href, {
    method: 'PATCH',
    headers: {
      'content-type': 'application/octet-stream',
      'content-range': `${offset}-${offset + chunk.length - 1}`,
      'content-length': String(chunk.length),
    },
    body: chunk,
  });
  expect(res.status, await res.clone().text()).toBe(202);
  expect(res.headers.get('range')).toBe(`0-${offset + chunk.length - 1}`);
  return res.headers.get('location')!;
}

/** Opens an upload session and sends its first chunk; returns the Location to continue at. */
async function beginUpload(base: string, repo: string, first: Buffer): Promise<string> {
  const post = await http(`${base}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  expect(post.status).toBe(202);
  return patch(base, post.headers.get('location')!, 0, first);
}

/** Completes the upload with the final PUT and checks the stored blob byte for byte. */
async function finishAndVerify(base: string, repo: string, location: string, offset: number, rest: Buffer, blob: Buffer) {
  const digest = `sha256:${sha256(blob)}`;
  const url = new URL(location, base);
  url.searchParams.set('digest', digest);
  const put = await http(url.href, {
    method: 'PUT',
    headers: {
      'content-type': 'application/octet-stream',
      ...(rest.length > 0 ? { 'content-range': `${offset}-${offset + rest.length - 1}` } : {}),
    },
    body: rest,
  });
  expect(put.status, await put.clone().text()).toBe(201);
  expect(put.headers.get('docker-content-digest')).toBe(digest);

  const got = await http(`${base}/v2/${repo}/blobs/${digest}`, { method: 'GET' });
  expect(got.status).toBe(200);
  const body = Buffer.from(await got.arrayBuffer());
  expect(body.length).toBe(blob.length);
  expect(sha256(body)).toBe(sha256(blob));
}

describe('registry restart in the middle of a chunked upload', () => {
  it('continues an upload after a clean stop and start, and stores the right blob', async () => {
    const port = await freePort();
    let registry = await start('clean', port);
    const repo = 'e2e/restart-clean';
    const blob = randomBytes(12 * MiB + 123);

    let location = await beginUpload(registry.url, repo, blob.subarray(0, 5 * MiB));

    await registry.stop();
    registry = await start('clean', port);

    expect(await uploadedBytes(registry.url, location)).toBe(5 * MiB);
    location = await patch(registry.url, location, 5 * MiB, blob.subarray(5 * MiB, 10 * MiB));
    await finishAndVerify(registry.url, repo, location, 10 * MiB, blob.subarray(10 * MiB), blob);
    expect(await serverFaults(logOf('clean'))).toEqual([]);
  });

  it('continues an upload after the registry is killed while a chunk is arriving, from the offset it reports', async () => {
    const port = await freePort();
    let registry = await start('killed', port);
    const repo = 'e2e/restart-killed';
    const blob = randomBytes(16 * MiB + 77);

    let location = await beginUpload(registry.url, repo, blob.subarray(0, 4 * MiB));

    // A second chunk (4 MiB .. 12 MiB) of which only the first half is sent before the kill.
    const chunk = blob.subarray(4 * MiB, 12 * MiB);
    const req = request(new URL(location, registry.url), {
      method: 'PATCH',
      headers: {
        'content-type': 'application/octet-stream',
        'content-range': `${4 * MiB}-${12 * MiB - 1}`,
        'content-length': String(chunk.length),
      },
    });
    const failed = new Promise<Error>((resolve) => {
      req.once('error', resolve);
      req.once('response', (res) => {
        res.resume();
        resolve(new Error(`the cut PATCH was answered ${res.statusCode}`));
      });
    });
    req.write(chunk.subarray(0, chunk.length / 2));
    // Kill only once part of this chunk is on disk (bounded), so the cut lands inside the chunk.
    const uploadId = new URL(location, registry.url).pathname.split('/').pop()!;
    const dataFile = join(work, 'killed', 'uploads', uploadId, 'data');
    const deadline = Date.now() + 15_000;
    let onDisk = 0;
    while ((onDisk = (await fileSize(dataFile)) ?? 0) <= 4 * MiB) {
      if (Date.now() > deadline) throw new Error(`${dataFile} did not grow past 4 MiB within 15 s`);
      await sleep(50);
    }
    await registry.kill();
    const outcome = await Promise.race([failed, sleep(10_000).then(() => new Error('answered: nothing within 10 s'))]);
    expect(outcome.message).not.toMatch(/answered/);
    req.destroy();

    registry = await start('killed', port);
    const held = await uploadedBytes(registry.url, location);
    console.log(`restart: after the kill the registry held ${held} bytes (acknowledged ${4 * MiB}, on disk at the kill ${onDisk}, sent ${8 * MiB})`);
    // It holds what reached its disk (every byte written is kept) and at most what was sent.
    expect(held).toBeGreaterThanOrEqual(onDisk);
    expect(held).toBeLessThanOrEqual(8 * MiB);

    location = await patch(registry.url, location, held, blob.subarray(held, 14 * MiB));
    await finishAndVerify(registry.url, repo, location, 14 * MiB, blob.subarray(14 * MiB), blob);
    expect(await serverFaults(logOf('killed'))).toEqual([]);
  });
});
