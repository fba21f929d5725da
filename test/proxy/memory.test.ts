// The built server as a pull-through cache: a 512 MiB blob fetched from its upstream and streamed
// to three clients at once, while it is stored, without the cache's memory growing with it.
import { createHash, randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildCli, enoughDiskFor, memoryOf, mib, resetPeak, sampleRss, spawnServer, type BuiltCli, type ServerProcess } from '../support/built-server.js';
import { sleep } from '../support/socket.js';
import { chunkAt, streamingRequest, writeChunk } from '../support/streaming-request.js';
import { tempDir } from '../helpers.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const CHUNKS = 512;
const BLOB_SIZE = CHUNKS * MiB;
const MAX_GROWTH = 100 * MiB;
const CLIENTS = 3;

const enoughDisk = await enoughDiskFor(3 * GiB, 'proxy memory test');

describe.skipIf(!enoughDisk)('memory of the built server as a pull-through cache', () => {
  let built: BuiltCli | undefined;
  let upstream: ServerProcess | undefined;
  let mirror: ServerProcess | undefined;
  let root: string | undefined;

  beforeAll(async () => {
    built = await buildCli();
    root = await tempDir('ocireg-proxy-memory-');
    upstream = await spawnServer(built.cli, { REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: join(root, 'upstream'), REGISTRY_LOG_LEVEL: 'warn' }, root);
    mirror = await spawnServer(
      built.cli,
      { REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: join(root, 'mirror'), REGISTRY_LOG_LEVEL: 'warn', REGISTRY_PROXY_REMOTEURL: upstream.url },
      root,
    );
  }, 240_000);

  afterAll(async () => {
    await mirror?.stop();
    await upstream?.stop();
    if (root) await rm(root, { recursive: true, force: true });
    await built?.remove();
  }, 60_000);

  it(`streams an uncached 512 MiB blob to ${CLIENTS} clients at once without growing by 100 MiB`, { timeout: 300_000 }, async () => {
    const base = randomBytes(MiB);
    const hash = createHash('sha256');
    for (let i = 0; i < CHUNKS; i++) hash.update(chunkAt(base, i));
    const digest = `sha256:${hash.digest('hex')}`;
    const upload = streamingRequest(`${upstream!.url}/v2/library/big/blobs/uploads/?digest=${digest}`, 'POST', {
      'content-type': 'application/octet-stream',
      'content-length': String(BLOB_SIZE),
    });
    for (let i = 0; i < CHUNKS; i++) await writeChunk(upload, chunkAt(base, i));
    upload.req.end();
    expect((await upload.responded).res.statusCode).toBe(201);

    const pid = mirror!.pid;
    for (let i = 0; i < 5; i++) expect((await fetch(`${mirror!.url}/v2/`)).status).toBe(200);
    // Warm the cache's own paths up (the upstream client, a spool, a staged upload) with a small blob,
    // so that what is measured is what the big one costs.
    const warm = randomBytes(16 * MiB);
    const warmDigest = `sha256:${createHash('sha256').update(warm).digest('hex')}`;
    const pushed = await fetch(`${upstream!.url}/v2/library/warm/blobs/uploads/?digest=${warmDigest}`, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream' },
      body: warm,
    });
    expect(pushed.status).toBe(201);
    const warmed = await Promise.all(
      Array.from({ length: CLIENTS }, async () => Buffer.from(await (await fetch(`${mirror!.url}/v2/library/warm/blobs/${warmDigest}`)).arrayBuffer())),
    );
    for (const bytes of warmed) expect(bytes.equals(warm)).toBe(true);
    await sleep(500);
    const reset = await resetPeak(pid);
    const before = await memoryOf(pid);
    const sampler = sampleRss(pid);
    const pulls = Array.from({ length: CLIENTS }, async () => {
      const res = await new Promise<IncomingMessage>((resolve, reject) => {
        const get = httpRequest(`${mirror!.url}/v2/library/big/blobs/${digest}`, { method: 'GET', agent: false });
        get.setTimeout(60_000, () => get.destroy(new Error('the pull stalled for 60 s')));
        get.once('error', reject);
        get.once('response', resolve);
        get.end();
      });
      expect(res.statusCode).toBe(200);
      const pulled = createHash('sha256');
      let received = 0;
      for await (const chunk of res as AsyncIterable<Buffer>) {
        pulled.update(chunk);
        received += chunk.length;
      }
      return { received, digest: `sha256:${pulled.digest('hex')}` };
    });
    const results = await Promise.all(pulls);
    const samples = await sampler.stop();
    const after = await memoryOf(pid);
    const peak = Math.max(samples.max, after.hwm);
    console.log(
      `proxy: ${CLIENTS} pulls of an uncached 512 MiB blob: server RSS before ${mib(before.rss)}, peak ${mib(peak)} (sampled max ${mib(samples.max)} ` +
        `over ${samples.samples} samples, VmHWM ${mib(after.hwm)}${reset ? ', reset before' : ', since start'}); growth ${mib(peak - before.rss)}`,
    );
    for (const r of results) expect(r).toEqual({ received: BLOB_SIZE, digest });
    expect(peak - before.rss).toBeLessThan(MAX_GROWTH);
    // Stored: a HEAD answers from the cache itself.
    let head: Response | undefined;
    for (let i = 0; i < 100; i++) {
      head = await fetch(`${mirror!.url}/v2/library/big/blobs/${digest}`, { method: 'HEAD' });
      if (head.headers.get('content-length') === String(BLOB_SIZE) && head.headers.get('accept-ranges') === 'bytes') break;
      await sleep(100);
    }
    expect(head!.headers.get('accept-ranges')).toBe('bytes');
  });
});
