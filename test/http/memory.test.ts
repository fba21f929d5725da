import { createHash, randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildCli, enoughDiskFor, memoryOf, mib, resetPeak, sampleRss, spawnServer, type BuiltCli, type ServerProcess } from '../support/built-server.js';
import { sleep } from '../support/socket.js';
import { chunkAt, streamingRequest, writeChunk } from '../support/streaming-request.js';
import { tempDir } from '../helpers.js';
import { registryS3Env, startS3Server, type S3Server } from '../support/s3.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const CHUNKS = 1024; // 1 GiB in 1 MiB chunks
const BLOB_SIZE = CHUNKS * MiB;
const MAX_GROWTH = 100 * MiB;
const REPO = 'memory/big';

const enoughDisk = await enoughDiskFor(4 * GiB, 'memory test');

// On S3 the blob passes through s3rver's folder three times (parts, the completed upload, the
// copy into place) before the upload's copies are removed.
describe.skipIf(!enoughDisk).each(['filesystem', 's3'] as const)('memory of the built server with a 1 GiB blob (%s)', (storage) => {
  let built: BuiltCli | undefined;
  let server: ServerProcess | undefined;
  let root: string | undefined;
  let s3: S3Server | undefined;

  beforeAll(async () => {
    built = await buildCli();
    root = await tempDir('ocireg-memory-');
    let env: Record<string, string> = {};
    if (storage === 's3') {
      s3 = await startS3Server({ directory: join(root, 's3') });
      // Redirects off: the pull streams through the registry, whose memory is measured.
      env = { ...registryS3Env(s3, join(root, 'index.db')), REGISTRY_STORAGE_REDIRECT_DISABLE: 'true' };
    }
    server = await spawnServer(built.cli, { REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: root, REGISTRY_LOG_LEVEL: 'warn', ...env }, root);
  }, 240_000);

  afterAll(async () => {
    await server?.stop();
    await s3?.stop();
    if (root) await rm(root, { recursive: true, force: true });
    await built?.remove();
  }, 60_000);

  it('pushes and pulls 1 GiB in one request each without the server growing by 100 MiB', { timeout: 300_000 }, async () => {
    const pid = server!.pid;
    const base = randomBytes(MiB);

    // First pass: the digest, which the monolithic POST names in its URL. Nothing is kept.
    const hash = createHash('sha256');
    for (let i = 0; i < CHUNKS; i++) hash.update(chunkAt(base, i));
    const digest = `sha256:${hash.digest('hex')}`;

    // Warm the server up, then take its resting figures.
    for (let i = 0; i < 5; i++) expect((await fetch(`${server!.url}/v2/`)).status).toBe(200);
    await sleep(500);
    const peakReset = await resetPeak(pid);
    const before = await memoryOf(pid);

    // Second pass: the same bytes, streamed with backpressure.
    const pushSampler = sampleRss(pid);
    const upload = streamingRequest(`${server!.url}/v2/${REPO}/blobs/uploads/?digest=${digest}`, 'POST', {
      'content-type': 'application/octet-stream',
      'content-length': String(BLOB_SIZE),
    });
    const { req, responded } = upload;
    const timer = setTimeout(() => req.destroy(new Error('the push took more than 240 s')), 240_000);
    try {
      for (let i = 0; i < CHUNKS; i++) await writeChunk(upload, chunkAt(base, i));
      req.end();
      const { res, body } = await responded;
      expect(res.statusCode, body).toBe(201);
      expect(res.headers['docker-content-digest']).toBe(digest);
    } finally {
      clearTimeout(timer);
    }
    const pushSamples = await pushSampler.stop();
    const afterPush = await memoryOf(pid);
    const pushPeak = Math.max(pushSamples.max, afterPush.hwm);
    console.log(
      `${storage}: push 1 GiB: server RSS before ${mib(before.rss)}, peak ${mib(pushPeak)} (sampled max ${mib(pushSamples.max)} over ` +
        `${pushSamples.samples} samples, VmHWM ${mib(afterPush.hwm)}${peakReset ? ', reset before the push' : ', since start'}), ` +
        `after ${mib(afterPush.rss)}; growth ${mib(pushPeak - before.rss)}`,
    );

    const head = await fetch(`${server!.url}/v2/${REPO}/blobs/${digest}`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers.get('content-length')).toBe(String(BLOB_SIZE));
    expect(head.headers.get('docker-content-digest')).toBe(digest);

    // Pull it back, streaming, and compare.
    await sleep(500);
    const pullReset = await resetPeak(pid);
    const beforePull = await memoryOf(pid);
    const pullSampler = sampleRss(pid);
    const pulled = createHash('sha256');
    let received = 0;
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      const get = httpRequest(`${server!.url}/v2/${REPO}/blobs/${digest}`, { method: 'GET', agent: false });
      get.setTimeout(60_000, () => get.destroy(new Error('the pull stalled for 60 s')));
      get.once('error', reject);
      get.once('response', resolve);
      get.end();
    });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-length']).toBe(String(BLOB_SIZE));
    for await (const chunk of res as AsyncIterable<Buffer>) {
      pulled.update(chunk);
      received += chunk.length;
    }
    const pullSamples = await pullSampler.stop();
    const afterPull = await memoryOf(pid);
    const pullPeak = Math.max(pullSamples.max, afterPull.hwm);
    console.log(
      `${storage}: pull 1 GiB: server RSS before ${mib(beforePull.rss)}, peak ${mib(pullPeak)} (sampled max ${mib(pullSamples.max)} over ` +
        `${pullSamples.samples} samples, VmHWM ${mib(afterPull.hwm)}${pullReset ? ', reset before the pull' : ', since start'}), ` +
        `after ${mib(afterPull.rss)}; growth ${mib(pullPeak - beforePull.rss)}`,
    );
    expect(received).toBe(BLOB_SIZE);
    expect(`sha256:${pulled.digest('hex')}`).toBe(digest);

    expect(pushPeak - before.rss).toBeLessThan(MAX_GROWTH);
    expect(pullPeak - beforePull.rss).toBeLessThan(MAX_GROWTH);
  });
});
