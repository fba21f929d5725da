// POST /api/v1/import of a 1 GiB archive against the built server process: the archive (docker's
// older `docker save` format, one ~1 GiB layer) is generated on the fly and streamed as a
// multipart form with chunked transfer, never held in memory on either side. The server's RSS is
// sampled while it arrives. A second upload is cut off by the client mid-layer: nothing of it may
// stay staged, and no repository may appear.
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readdir, rm } from 'node:fs/promises';
import type { ClientRequest, IncomingMessage } from 'node:http';
import { join, relative } from 'node:path';
import { pack as tarPack } from 'tar-stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildCli, enoughDiskFor, memoryOf, mib, resetPeak, sampleRss, spawnServer, type BuiltCli, type ServerProcess } from '../support/built-server.js';
import { sleep } from '../support/socket.js';
import { chunkAt, streamingRequest } from '../support/streaming-request.js';
import { OCI_MANIFEST, digestOf as sha256, tempDir } from '../helpers.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const CHUNKS = 1024; // the layer: 1 GiB in 1 MiB chunks
const LAYER_SIZE = CHUNKS * MiB;
const ABORT_AFTER = 200 * MiB;
const MAX_GROWTH = 100 * MiB;


function* layerChunks(base: Buffer): Generator<Buffer> {
  for (let i = 0; i < CHUNKS; i++) yield chunkAt(base, i);
}

/** The layer's digest (its diff ID), from a first pass over the same bytes; nothing is kept. */
function layerDigest(base: Buffer): string {
  const hash = createHash('sha256');
  for (const chunk of layerChunks(base)) hash.update(chunk);
  return `sha256:${hash.digest('hex')}`;
}

interface Entry {
  name: string;
  type?: 'file' | 'directory';
  /** A small file's bytes. */
  data?: Buffer | string;
  /** A large file: its size and its bytes, generated as they are read. */
  size?: number;
  chunks?: () => Iterable<Buffer>;
}

/**
 * Docker's older `docker save` layout for one image: `<config hex>.json`, `<dir>/VERSION`,
 * `<dir>/json`, `<dir>/layer.tar`, then manifest.json last, as docker writes it.
 */
function dockerSave(layer: { digest: string; size: number; chunks: () => Iterable<Buffer> }, repoTag: string): { entries: Entry[]; config: Buffer } {
  const config = Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      created: '2026-01-02T03:04:05Z',
      config: { Cmd: ['/big'] },
      rootfs: { type: 'layers', diff_ids: [layer.digest] },
      history: [{ created: '2026-01-02T03:04:05Z', created_by: 'ADD big /' }],
    }),
  );
  const configName = `${sha256(config).slice('sha256:'.length)}.json`;
  const dir = createHash('sha256').update(`${layer.digest}/0`).digest('hex');
  const manifest = JSON.stringify([{ Config: configName, RepoTags: [repoTag], Layers: [`${dir}/layer.tar`] }]);
  const entries: Entry[] = [
    { name: configName, data: config },
    { name: `${dir}/`, type: 'directory' },
    { name: `${dir}/VERSION`, data: '1.0' },
    { name: `${dir}/json`, data: JSON.stringify({ id: dir, created: '2026-01-02T03:04:05Z', os: 'linux' }) },
    { name: `${dir}/layer.tar`, size: layer.size, chunks: layer.chunks },
    { name: 'manifest.json', data: manifest },
  ];
  return { entries, config };
}

/**
 * The tar of these entries as tar-stream's pack writes it, produced only as fast as it is read:
 * each chunk is written to its entry with backpressure. Stopping the iteration stops the packing.
 */
async function* tarOf(entries: Entry[]): AsyncGenerator<Buffer> {
  const pack = tarPack();
  let stop = () => {};
  const stopped = new Promise<void>((resolve) => {
    stop = () => resolve();
  });
  let isStopped = false;
  const producing = (async () => {
    for (const e of entries) {
      if (isStopped) return;
      const header = { name: e.name, type: e.type ?? 'file', mode: e.type === 'directory' ? 0o755 : 0o644, mtime: new Date(0) } as const;
      if (e.chunks === undefined) {
        await new Promise<void>((resolve, reject) => {
          const callback = (err?: Error | null) => (err ? reject(err) : resolve());
          if (e.data === undefined) pack.entry(header, callback);
          else pack.entry(header, Buffer.from(e.data), callback);
        });
        continue;
      }
      let sink!: ReturnType<typeof pack.entry>;
      // Called once the entry is whole (or failed).
      const done = new Promise<void>((resolve, reject) => {
        sink = pack.entry({ ...header, size: e.size! }, (err) => (err ? reject(err) : resolve()));
      });
      done.catch(() => {}); // a stopped packing destroys the entry: awaited below otherwise
      for (const chunk of e.chunks()) {
        if (isStopped) return;
        if (!sink.write(chunk)) await Promise.race([new Promise<void>((resolve) => sink.once('drain', () => resolve())), stopped]);
      }
      sink.end(undefined);
      await Promise.race([done, stopped]);
    }
    pack.finalize();
  })();
  producing.catch(() => {}); // awaited below
  try {
    for await (const chunk of pack as AsyncIterable<Buffer>) yield chunk;
    await producing;
  } finally {
    isStopped = true;
    stop();
    pack.destroy();
    await producing.catch(() => {});
  }
}

/** A multipart/form-data body: the fields first, then the file part holding `file`'s bytes. */
async function* formOf(boundary: string, fields: Record<string, string>, file: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  for (const [name, value] of Object.entries(fields)) yield Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`);
  yield Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.tar"\r\nContent-Type: application/x-tar\r\n\r\n`);
  yield* file;
  yield Buffer.from(`\r\n--${boundary}--\r\n`);
}

interface Upload {
  req: ClientRequest;
  responded: Promise<{ res: IncomingMessage; body: string }>;
  /** Bytes handed to the socket so far. */
  sent: () => number;
  /** Writes the body with backpressure, up to `limit` bytes (then stops without ending the request). */
  send(body: AsyncIterable<Buffer>, limit?: number): Promise<void>;
}

/** A POST /api/v1/import of a multipart body, with chunked transfer (no Content-Length). */
function startImport(url: string, boundary: string): Upload {
  const { req, responded, closed } = streamingRequest(`${url}/api/v1/import`, 'POST', { 'content-type': `multipart/form-data; boundary=${boundary}` });
  let sent = 0;
  return {
    req,
    responded,
    sent: () => sent,
    async send(body, limit = Infinity) {
      try {
        for await (const chunk of body) {
          sent += chunk.length;
          if (!req.write(chunk)) await Promise.race([once(req, 'drain'), closed]);
          if (sent >= limit) return; // leaves the generators, which stops the packing
        }
        req.end();
      } catch (err) {
        // The server gave up first: its answer says why.
        const answer = await Promise.race([responded.then(({ res, body }) => `${res.statusCode} ${body.slice(0, 2000)}`), sleep(2000).then(() => 'no answer')]).catch(
          (e: unknown) => `no answer (${(e as Error).message})`,
        );
        throw new Error(`${(err as Error).message} after ${mib(sent)}; the server: ${answer}`, { cause: err });
      }
    },
  };
}

/** The upload folders under the store's uploads/ (src/storage/fs-blob-store.ts: uploads/<id>/data). */
async function stagedUploads(root: string): Promise<string[]> {
  return readdir(join(root, 'uploads')).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return [];
    throw err;
  });
}

/** Every file under a folder of the store, as paths relative to the root. */
async function filesUnder(root: string, folder: string): Promise<string[]> {
  const entries = await readdir(join(root, folder), { recursive: true, withFileTypes: true }).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return [];
    throw err;
  });
  return entries.filter((e) => e.isFile()).map((e) => relative(root, join(e.parentPath, e.name))).sort();
}

async function catalog(url: string): Promise<string[]> {
  const res = await fetch(`${url}/v2/_catalog`);
  expect(res.status).toBe(200);
  return ((await res.json()) as { repositories: string[] }).repositories;
}

/** Polls `check` every 100 ms until it holds or `ms` have passed; returns the last value. */
async function waitFor<T>(probe: () => Promise<T>, check: (value: T) => boolean, ms = 10_000): Promise<{ value: T; ms: number }> {
  const started = Date.now();
  for (;;) {
    const value = await probe();
    if (check(value) || Date.now() - started >= ms) return { value, ms: Date.now() - started };
    await sleep(100);
  }
}

const enoughDisk = await enoughDiskFor(4 * GiB, 'archive memory test');

describe.skipIf(!enoughDisk)('memory of the built server importing a 1 GiB archive (filesystem)', () => {
  let built: BuiltCli | undefined;
  let server: ServerProcess | undefined;
  let root: string | undefined;

  beforeAll(async () => {
    built = await buildCli();
    root = await tempDir('ocireg-archive-memory-');
    server = await spawnServer(built.cli, { REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: root, REGISTRY_LOG_LEVEL: 'warn' }, root);
  }, 240_000);

  afterAll(async () => {
    await server?.stop();
    if (root) await rm(root, { recursive: true, force: true });
    await built?.remove();
  }, 60_000);

  it('imports a docker save of a 1 GiB layer, streamed as a form, without the server growing by 100 MiB', { timeout: 300_000 }, async () => {
    const pid = server!.pid;
    const repository = 'archive/big';
    const tag = 'v1';
    const base = randomBytes(MiB);

    // First pass: the layer's diff ID, which the config lists before the layer comes.
    const diffId = layerDigest(base);
    const { entries, config } = dockerSave({ digest: diffId, size: LAYER_SIZE, chunks: () => layerChunks(base) }, 'docker.io/library/saved:latest');

    // Warm the server up, then take its resting figures.
    for (let i = 0; i < 5; i++) expect((await fetch(`${server!.url}/v2/`)).status).toBe(200);
    await sleep(500);
    const peakReset = await resetPeak(pid);
    const before = await memoryOf(pid);

    // Second pass: the same bytes, inside the tar, inside the form, with backpressure all along.
    const boundary = `----ocireg-archive-${randomBytes(12).toString('hex')}`;
    const sampler = sampleRss(pid);
    const started = Date.now();
    const upload = startImport(server!.url, boundary);
    const timer = setTimeout(() => upload.req.destroy(new Error('the import took more than 240 s')), 240_000);
    let answer: { res: IncomingMessage; body: string };
    try {
      await upload.send(formOf(boundary, { repository, tag }, tarOf(entries)));
      answer = await upload.responded;
    } finally {
      clearTimeout(timer);
    }
    const samples = await sampler.stop();
    const after = await memoryOf(pid);
    const peak = Math.max(samples.max, after.hwm);
    const seconds = (Date.now() - started) / 1000;
    console.log(
      `filesystem: import of a ${mib(upload.sent())} archive (1 GiB layer) in ${seconds.toFixed(1)} s: server RSS before ${mib(before.rss)}, ` +
        `peak ${mib(peak)} (sampled max ${mib(samples.max)} over ${samples.samples} samples, VmHWM ${mib(after.hwm)}` +
        `${peakReset ? ', reset before the import' : ', since start'}), after ${mib(after.rss)}; growth ${mib(peak - before.rss)}`,
    );

    expect(answer.res.statusCode, answer.body).toBe(201);
    const { imported } = JSON.parse(answer.body) as { imported: Array<{ repository: string; tag?: string; digest: string; mediaType: string }> };
    expect(imported).toHaveLength(1);
    expect(imported[0]).toMatchObject({ repository, tag, mediaType: OCI_MANIFEST });
    const digest = imported[0]!.digest;
    expect(digest).toMatch(/^sha256:[0-9a-f]{64}$/);

    // The manifest the import made names the config and the layer as they were sent.
    const manifestRes = await fetch(`${server!.url}/v2/${repository}/manifests/${tag}`, { headers: { accept: OCI_MANIFEST } });
    expect(manifestRes.status).toBe(200);
    expect(manifestRes.headers.get('docker-content-digest')).toBe(digest);
    const manifestBody = Buffer.from(await manifestRes.arrayBuffer());
    expect(sha256(manifestBody)).toBe(digest);
    const manifest = JSON.parse(manifestBody.toString('utf8')) as { config: { digest: string; size: number }; layers: Array<{ digest: string; size: number }> };
    expect(manifest.config).toMatchObject({ digest: sha256(config), size: config.length });
    expect(manifest.layers).toHaveLength(1);
    expect(manifest.layers[0]).toMatchObject({ digest: diffId, size: LAYER_SIZE });

    const head = await fetch(`${server!.url}/v2/${repository}/blobs/${diffId}`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers.get('content-length')).toBe(String(LAYER_SIZE));
    expect(head.headers.get('docker-content-digest')).toBe(diffId);

    // The entries no image uses (VERSION, json, manifest.json) were discarded with their staging.
    expect(await stagedUploads(root!)).toEqual([]);

    expect(peak - before.rss).toBeLessThan(MAX_GROWTH);
  });

  it('leaves nothing staged and no repository when the client cuts the archive off mid-layer', { timeout: 120_000 }, async () => {
    const pid = server!.pid;
    const repository = 'archive/aborted';
    const base = randomBytes(MiB);
    // The archive is cut inside the layer, so the config's diff ID is never checked: no first pass.
    const { entries } = dockerSave({ digest: `sha256:${'0'.repeat(64)}`, size: LAYER_SIZE, chunks: () => layerChunks(base) }, `${repository}:saved`);

    const repositoriesBefore = await catalog(server!.url);
    expect(repositoriesBefore).not.toContain(repository);
    const blobsBefore = await filesUnder(root!, 'blobs');
    expect(await stagedUploads(root!)).toEqual([]);
    await sleep(500);
    const peakReset = await resetPeak(pid);
    const before = await memoryOf(pid);

    const boundary = `----ocireg-archive-${randomBytes(12).toString('hex')}`;
    const sampler = sampleRss(pid);
    const upload = startImport(server!.url, boundary);
    await upload.send(formOf(boundary, { repository, tag: 'v1' }, tarOf(entries)), ABORT_AFTER);
    // Mid-layer: the config is staged and the layer is being staged (the folder looked at below is the right one).
    const staging = await waitFor(
      () => stagedUploads(root!),
      (ids) => ids.length > 0,
      5_000,
    );
    expect(staging.value.length, 'staged uploads while the layer streams in').toBeGreaterThan(0);
    upload.req.destroy();
    const aborted = Date.now();

    const cleaned = await waitFor(
      () => stagedUploads(root!),
      (ids) => ids.length === 0,
      10_000,
    );
    const samples = await sampler.stop();
    const after = await memoryOf(pid);
    const peak = Math.max(samples.max, after.hwm);
    console.log(
      `filesystem: import cut off by the client after ${mib(upload.sent())}: ${staging.value.length} staged uploads mid-layer, ` +
        `${cleaned.value.length} left ${Date.now() - aborted} ms after the abort; server RSS before ${mib(before.rss)}, peak ${mib(peak)} ` +
        `(sampled max ${mib(samples.max)} over ${samples.samples} samples, VmHWM ${mib(after.hwm)}${peakReset ? ', reset before the import' : ', since start'}); ` +
        `growth ${mib(peak - before.rss)}`,
    );
    expect(cleaned.value, 'staged uploads left 10 s after the client went away').toEqual([]);

    // No repository, no blob, and the server still serves.
    expect(await catalog(server!.url)).toEqual(repositoriesBefore);
    expect((await fetch(`${server!.url}/v2/${repository}/tags/list`)).status).toBe(404);
    expect(await filesUnder(root!, 'blobs')).toEqual(blobsBefore);
    expect((await fetch(`${server!.url}/v2/`)).status).toBe(200);
    expect(peak - before.rss).toBeLessThan(MAX_GROWTH);
  });
});
