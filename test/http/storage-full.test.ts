import { execFileSync } from 'node:child_process';
import { mkdir, rm, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config/config.js';
import type { SqliteIndex } from '../../src/index/sqlite/index.js';
import type { BlobStore, ByteRange, ObjectHandle, ObjectInfo } from '../../src/storage/blob-store.js';
import { FsBlobStore } from '../../src/storage/fs-blob-store.js';
import { OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, digestOf, errorCode, manifestOf, pushBlob, putManifest, tempDir } from '../helpers.js';
import { filesUnder, testBytes } from '../support/socket.js';

const OCTET = { 'content-type': 'application/octet-stream' };

function noRoom(code: string): NodeJS.ErrnoException {
  const errno = { ENOSPC: -28, EDQUOT: -122, EROFS: -30, EFBIG: -27, EACCES: -13, EPERM: -1 }[code] ?? -1;
  return Object.assign(new Error(`${code}: no room on the device, write`), { code, errno, syscall: 'write' });
}

/**
 * The real filesystem store, whose write paths fail as a full disk does while
 * `full` names an errno code. An append first takes `appendBeforeFull` bytes
 * (a disk that fills in the middle of a chunk).
 */
class FillableStore implements BlobStore {
  full: string | undefined;
  appendBeforeFull = 0;

  constructor(readonly inner: FsBlobStore) {}

  private check(): void {
    if (this.full) throw noRoom(this.full);
  }

  stat(key: string): Promise<ObjectInfo | null> {
    return this.inner.stat(key);
  }
  read(key: string, range?: ByteRange, signal?: AbortSignal): Promise<Readable> {
    return this.inner.read(key, range, signal);
  }
  openObject(key: string): Promise<ObjectHandle> {
    return this.inner.openObject(key);
  }
  get(key: string): Promise<Buffer | null> {
    return this.inner.get(key);
  }
  async put(key: string, data: Uint8Array): Promise<void> {
    this.check();
    return this.inner.put(key, data);
  }
  delete(key: string): Promise<void> {
    return this.inner.delete(key);
  }
  list(prefix: string): AsyncIterable<ObjectInfo> {
    return this.inner.list(prefix);
  }
  async createUpload(id: string, info?: Uint8Array): Promise<void> {
    this.check();
    return this.inner.createUpload(id, info);
  }
  uploadSize(id: string): Promise<number | null> {
    return this.inner.uploadSize(id);
  }
  appendUpload(id: string, offset: number | undefined, source: AsyncIterable<Uint8Array>, signal?: AbortSignal): Promise<number> {
    if (!this.full) return this.inner.appendUpload(id, offset, source, signal);
    return this.inner.appendUpload(id, offset, fillsAfter(source, this.appendBeforeFull, this.full), signal);
  }
  readUpload(id: string, signal?: AbortSignal): Promise<Readable> {
    return this.inner.readUpload(id, signal);
  }
  async commitUpload(id: string, key: string): Promise<void> {
    this.check();
    return this.inner.commitUpload(id, key);
  }
  cancelUpload(id: string): Promise<void> {
    return this.inner.cancelUpload(id);
  }
  listUploads(): AsyncIterable<{ id: string; modified: Date }> {
    return this.inner.listUploads();
  }
}

/** Passes `limit` bytes of `source`, then fails with `code`. */
async function* fillsAfter(source: AsyncIterable<Uint8Array>, limit: number, code: string): AsyncIterable<Uint8Array> {
  let passed = 0;
  for await (const chunk of source) {
    const room = limit - passed;
    if (room > 0) yield chunk.subarray(0, room);
    passed += Math.min(room, chunk.length);
    if (passed >= limit) break;
  }
  throw noRoom(code);
}

interface LogLine {
  level: number;
  msg: string;
  reason?: string;
}

const ERROR = 50;

function expect507(res: LightMyRequestResponse): void {
  expect(res.statusCode).toBe(507);
  expect(res.headers['content-type']).toMatch(/^application\/json/);
  expect(errorCode(res)).toBe('INSUFFICIENT_STORAGE');
  expect((res.json() as { errors: Array<{ message: string }> }).errors[0]!.message).toMatch(/cannot store this/);
}

async function getBytes(app: FastifyInstance, url: string): Promise<{ status: number; body: Buffer }> {
  const res = await app.inject({ method: 'GET', url, headers: { accept: OCI_MANIFEST } });
  return { status: res.statusCode, body: res.rawPayload };
}

describe('a full disk answers 507 INSUFFICIENT_STORAGE', () => {
  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function start(): Promise<{ app: FastifyInstance; store: FillableStore; root: string; logs: LogLine[] }> {
    const root = await tempDir('ocireg-full-');
    cleanups.push(() => rm(root, { recursive: true, force: true }));
    const inner = new FsBlobStore(root);
    await inner.init();
    const store = new FillableStore(inner);
    const config = loadConfig({ env: {}, overrides: { storage: { filesystem: { rootdirectory: root } } } });
    const logs: LogLine[] = [];
    const app = await buildApp(config, {
      store,
      logger: { level: 'debug', stream: { write: (line: string) => void logs.push(JSON.parse(line) as LogLine) } },
    });
    cleanups.push(() => app.close());
    await app.ready();
    return { app, store, root, logs };
  }

  /** A config and a layer pushed to `repo`, and a manifest over them (not pushed). */
  async function image(app: FastifyInstance, repo: string, seed: number) {
    const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', seed }));
    const layer = testBytes(50_000, seed);
    const manifest = manifestOf(
      {
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        config: { mediaType: OCI_CONFIG, digest: await pushBlob(app, repo, config), size: config.length },
        layers: [{ mediaType: OCI_LAYER, digest: await pushBlob(app, repo, layer), size: layer.length }],
      },
      OCI_MANIFEST,
    );
    return { config, layer, manifest };
  }

  const errorLines = (logs: LogLine[]) => logs.filter((l) => l.level >= ERROR);

  it('refuses a monolithic push, a chunk and a manifest, keeps serving pulls, and takes the same pushes once room is made', async () => {
    const { app, store, root, logs } = await start();
    const before = await image(app, 'lib/app', 1);
    expect((await putManifest(app, 'lib/app', 'v1', before.manifest)).statusCode).toBe(201);
    const session = await app.inject({ method: 'POST', url: '/v2/lib/app/blobs/uploads/' });
    expect(session.statusCode).toBe(202);
    const location = session.headers.location as string;
    const filesBefore = (await filesUnder(root)).sort();

    store.full = 'ENOSPC';
    const blob = testBytes(70_000, 2);
    const monolithic = () =>
      app.inject({ method: 'POST', url: `/v2/lib/app/blobs/uploads/?digest=${digestOf(blob)}`, headers: OCTET, payload: blob });
    const chunk = () => app.inject({ method: 'PATCH', url: location, headers: OCTET, payload: blob });
    // A new tag over the same content: the tag's link is a write.
    const manifest = () => putManifest(app, 'lib/app', 'v2', before.manifest);
    expect507(await monolithic());
    expect507(await chunk());
    expect507(await manifest());
    expect507(await monolithic());

    // One error line for the whole episode; the other failures are logged quietly.
    expect(errorLines(logs)).toHaveLength(1);
    expect(errorLines(logs)[0]).toMatchObject({ msg: expect.stringMatching(/storage full/), reason: 'ENOSPC' });

    // Nothing half-written: no new file at all (the chunk failed before its first byte), no index row.
    expect((await filesUnder(root)).sort()).toEqual(filesBefore);
    expect((await app.inject({ method: 'HEAD', url: `/v2/lib/app/blobs/${digestOf(blob)}` })).statusCode).toBe(404);
    expect((await app.inject({ method: 'GET', url: '/v2/lib/app/manifests/v2' })).statusCode).toBe(404);
    const status = await app.inject({ method: 'GET', url: location });
    expect(status.statusCode).toBe(204);
    expect(status.headers.range).toBe('0-0');

    // What was pushed before is served byte for byte.
    for (const [digest, bytes] of [
      [digestOf(before.config), before.config],
      [digestOf(before.layer), before.layer],
    ] as const) {
      const got = await getBytes(app, `/v2/lib/app/blobs/${digest}`);
      expect(got.status).toBe(200);
      expect(got.body.equals(bytes)).toBe(true);
    }
    const pulled = await getBytes(app, '/v2/lib/app/manifests/v1');
    expect(pulled.status).toBe(200);
    expect(pulled.body.equals(before.manifest.body)).toBe(true);

    // Room is made: the same requests succeed.
    store.full = undefined;
    expect((await monolithic()).statusCode).toBe(201);
    expect((await getBytes(app, `/v2/lib/app/blobs/${digestOf(blob)}`)).body.equals(blob)).toBe(true);
    expect((await chunk()).statusCode).toBe(202);
    const done = await app.inject({ method: 'PUT', url: `${location}?digest=${digestOf(blob)}` });
    expect(done.statusCode).toBe(201);
    expect((await manifest()).statusCode).toBe(201);
    expect((await getBytes(app, '/v2/lib/app/manifests/v2')).body.equals(before.manifest.body)).toBe(true);
    expect(logs.some((l) => l.msg === 'storage accepts writes again')).toBe(true);

    // The next failure starts a new episode, logged again.
    store.full = 'ENOSPC';
    expect507(await monolithic());
    expect507(await monolithic());
    expect(errorLines(logs)).toHaveLength(2);
    expect(await filesUnder(join(root, '_tmp'))).toEqual([]);
  });

  it('a chunk cut short by a full disk keeps what reached the disk, and the upload resumes from there', async () => {
    const { app, store } = await start();
    const session = await app.inject({ method: 'POST', url: '/v2/lib/app/blobs/uploads/' });
    const location = session.headers.location as string;
    const blob = testBytes(200_000, 3);

    store.full = 'ENOSPC';
    store.appendBeforeFull = 60_000;
    expect507(await app.inject({ method: 'PATCH', url: location, headers: OCTET, payload: blob }));
    const status = await app.inject({ method: 'GET', url: location });
    expect(status.statusCode).toBe(204);
    // What reached the disk (Range cannot tell 0 bytes from 1), and the Range that says so.
    const kept = (await store.uploadSize(location.split('/').pop()!))!;
    expect(kept).toBeLessThanOrEqual(60_000);
    expect(status.headers.range).toBe(`0-${Math.max(0, kept - 1)}`);

    store.full = undefined;
    const from = kept;
    const rest = blob.subarray(from);
    const patch = await app.inject({
      method: 'PATCH',
      url: location,
      headers: { ...OCTET, 'content-range': `${from}-${blob.length - 1}` },
      payload: rest,
    });
    expect(patch.statusCode).toBe(202);
    expect(patch.headers.range).toBe(`0-${blob.length - 1}`);
    const done = await app.inject({ method: 'PUT', url: `${location}?digest=${digestOf(blob)}` });
    expect(done.statusCode).toBe(201);
    expect((await getBytes(app, `/v2/lib/app/blobs/${digestOf(blob)}`)).body.equals(blob)).toBe(true);
  });

  it.each(['EDQUOT', 'EROFS', 'EFBIG', 'EACCES', 'EPERM'])('%s during a write answers 507 too', async (code) => {
    const { app, store, root } = await start();
    store.full = code;
    const blob = testBytes(1000, 4);
    expect507(await app.inject({ method: 'POST', url: `/v2/lib/app/blobs/uploads/?digest=${digestOf(blob)}`, headers: OCTET, payload: blob }));
    expect507(await app.inject({ method: 'POST', url: '/v2/lib/app/blobs/uploads/' }));
    expect(await filesUnder(join(root, 'uploads'))).toEqual([]);
    store.full = undefined;
    expect(await pushBlob(app, 'lib/app', blob)).toBe(digestOf(blob));
  });

  it('an index with no room left (SQLITE_FULL) answers 507, keeps serving, and takes the push once it has room', async () => {
    const { app, logs } = await start();
    const before = await image(app, 'lib/app', 5);
    expect((await putManifest(app, 'lib/app', 'v1', before.manifest)).statusCode).toBe(201);

    // The index may not grow by a page: a manifest (its bytes live in the index) finds it full.
    const db = (app.registry.database as SqliteIndex).db;
    const pages = db.pragma('page_count', { simple: true }) as number;
    db.pragma(`max_page_count = ${pages}`);
    const big = manifestOf(
      { ...JSON.parse(before.manifest.body.toString()), annotations: { 'org.example.filler': 'x'.repeat(200_000) } },
      OCI_MANIFEST,
    );
    expect507(await putManifest(app, 'lib/app', 'big', big));
    expect507(await putManifest(app, 'lib/app', 'big', big));
    expect(errorLines(logs)).toHaveLength(1);
    expect(errorLines(logs)[0]).toMatchObject({ reason: 'SQLITE_FULL' });
    expect((await app.inject({ method: 'GET', url: `/v2/lib/app/manifests/${big.digest}` })).statusCode).toBe(404);
    expect((await getBytes(app, '/v2/lib/app/manifests/v1')).body.equals(before.manifest.body)).toBe(true);
    expect((await getBytes(app, `/v2/lib/app/blobs/${digestOf(before.layer)}`)).body.equals(before.layer)).toBe(true);

    db.pragma('max_page_count = 1073741823');
    expect((await putManifest(app, 'lib/app', 'big', big)).statusCode).toBe(201);
    expect((await getBytes(app, '/v2/lib/app/manifests/big')).body.equals(big.body)).toBe(true);
  });

  it('on a real full filesystem (a 2 MiB tmpfs), refuses what does not fit, cleans up, and keeps serving', async (ctx) => {
    const parent = await tempDir('ocireg-tmpfs-');
    cleanups.push(() => rm(parent, { recursive: true, force: true }));
    const root = join(parent, 'root');
    await mkdir(root);
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', root], { stdio: 'pipe', timeout: 10_000 });
    } catch (err) {
      const reason = ((err as { stderr?: Buffer }).stderr?.toString() || (err as Error).message).trim();
      console.warn(`skipping the tmpfs test: cannot mount a tmpfs here (${reason})`);
      ctx.skip();
      return;
    }
    cleanups.push(async () => {
      execFileSync('umount', ['-l', root], { stdio: 'ignore', timeout: 10_000 });
    });
    const config = loadConfig({
      env: {},
      overrides: { storage: { filesystem: { rootdirectory: root } }, index: { path: join(parent, 'index.db') } },
    });
    const logs: LogLine[] = [];
    const app = await buildApp(config, {
      logger: { level: 'info', stream: { write: (line: string) => void logs.push(JSON.parse(line) as LogLine) } },
    });
    cleanups.push(() => app.close());
    await app.ready();
    const free = async () => {
      const s = await statfs(root);
      return s.bavail * s.bsize;
    };

    const before = await image(app, 'lib/app', 6);
    expect((await putManifest(app, 'lib/app', 'v1', before.manifest)).statusCode).toBe(201);
    const session = await app.inject({ method: 'POST', url: '/v2/lib/app/blobs/uploads/' });
    expect(session.statusCode).toBe(202);
    const location = session.headers.location as string;
    const freeBefore = await free();

    // Larger than the whole filesystem.
    const huge = testBytes(3 * 1024 * 1024, 7);
    const monolithic = await app.inject({
      method: 'POST',
      url: `/v2/lib/app/blobs/uploads/?digest=${digestOf(huge)}`,
      headers: OCTET,
      payload: huge,
    });
    expect507(monolithic);
    expect(await filesUnder(join(root, '_tmp'))).toEqual([]);
    expect((await filesUnder(join(root, 'uploads'))).filter((f) => !f.startsWith(location.split('/').pop()!))).toEqual([]);
    expect(await free()).toBe(freeBefore);

    // A chunk that fills the disk: its bytes stay in the session, which then fills the disk...
    expect507(await app.inject({ method: 'PATCH', url: location, headers: OCTET, payload: huge }));
    const status = await app.inject({ method: 'GET', url: location });
    expect(status.statusCode).toBe(204);
    // ... so that a manifest does not fit either.
    const other = await image(app, 'lib/app', 8).catch(() => undefined);
    expect(other).toBeUndefined(); // its blobs did not fit
    const tagged = await putManifest(app, 'lib/app', 'v2', before.manifest);
    // A tag's link is a few bytes; the disk may still have an inode and no page for them.
    expect([201, 507]).toContain(tagged.statusCode);
    expect(errorLines(logs)).toHaveLength(1);

    // Pulls go on.
    expect((await getBytes(app, `/v2/lib/app/blobs/${digestOf(before.layer)}`)).body.equals(before.layer)).toBe(true);
    expect((await getBytes(app, '/v2/lib/app/manifests/v1')).body.equals(before.manifest.body)).toBe(true);

    // Room is made by cancelling the session; pushes that fit succeed again.
    expect((await app.inject({ method: 'DELETE', url: location })).statusCode).toBe(204);
    const fits = testBytes(500_000, 9);
    expect(await pushBlob(app, 'lib/app', fits)).toBe(digestOf(fits));
    expect((await getBytes(app, `/v2/lib/app/blobs/${digestOf(fits)}`)).body.equals(fits)).toBe(true);
    expect((await putManifest(app, 'lib/app', 'v3', before.manifest)).statusCode).toBe(201);
    expect(await filesUnder(join(root, '_tmp'))).toEqual([]);
  });
});
