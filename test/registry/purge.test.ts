import { randomUUID } from 'node:crypto';
import { mkdir, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { errorCode, startRegistry, type TestRegistry } from '../helpers.js';
import { waitFor } from '../support/socket.js';

const REPO = 'purge/me';
const DAY = 24 * 60 * 60 * 1000;

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

/** Waits (at most 1 s) until the clock has moved past `t`, so that `t` is strictly before "now". */
async function after(t: number): Promise<void> {
  await waitFor(() => Date.now() > t + 1, { timeoutMs: 1000, intervalMs: 2, what: 'the clock to move' });
}

/** Starts an upload and sends `bytes` bytes to it; returns its id. */
async function uploadWithData(reg: TestRegistry, bytes: number): Promise<string> {
  const post = await reg.app.inject({ method: 'POST', url: `/v2/${REPO}/blobs/uploads/` });
  expect(post.statusCode).toBe(202);
  const location = post.headers.location as string;
  const patch = await reg.app.inject({
    method: 'PATCH',
    url: location,
    headers: { 'content-type': 'application/octet-stream' },
    payload: Buffer.alloc(bytes, 7),
  });
  expect(patch.statusCode).toBe(202);
  expect(patch.headers.range).toBe(`0-${bytes - 1}`);
  return location.split('/').pop()!;
}

async function uploadStatus(reg: TestRegistry, id: string) {
  return reg.app.inject({ method: 'GET', url: `/v2/${REPO}/blobs/uploads/${id}` });
}

describe('upload purging', () => {
  let reg: TestRegistry;
  beforeEach(async () => {
    reg = await startRegistry({ storage: { maintenance: { uploadpurging: { enabled: false } } } });
  });
  afterEach(async () => {
    await reg.destroy();
  });

  it('removes uploads idle since before the cutoff and keeps recent ones; dry run removes nothing', async () => {
    const idle = await uploadWithData(reg, 1000);
    await after(Date.now());
    const cutoff = new Date();
    await after(cutoff.getTime());
    const recent = await uploadWithData(reg, 500);

    const listed = await reg.app.registry.uploads.purge(cutoff, true);
    expect(listed).toEqual([idle]);
    expect((await uploadStatus(reg, idle)).statusCode).toBe(204);
    expect(await exists(join(reg.root, 'uploads', idle, 'data'))).toBe(true);

    const purged = await reg.app.registry.uploads.purge(cutoff);
    expect(purged).toEqual([idle]);

    const gone = await uploadStatus(reg, idle);
    expect(gone.statusCode).toBe(404);
    expect(errorCode(gone)).toBe('BLOB_UPLOAD_UNKNOWN');
    expect(await exists(join(reg.root, 'uploads', idle))).toBe(false);

    const kept = await uploadStatus(reg, recent);
    expect(kept.statusCode).toBe(204);
    expect(kept.headers.range).toBe('0-499');
    expect(await exists(join(reg.root, 'uploads', recent, 'data'))).toBe(true);

    // A purged upload takes no more chunks.
    const patch = await reg.app.inject({
      method: 'PATCH',
      url: `/v2/${REPO}/blobs/uploads/${idle}`,
      headers: { 'content-type': 'application/octet-stream' },
      payload: Buffer.alloc(10),
    });
    expect(patch.statusCode).toBe(404);
    expect(errorCode(patch)).toBe('BLOB_UPLOAD_UNKNOWN');
  });

  it('removes an old upload directory that has no session (a monolithic push left behind), not a fresh one', async () => {
    const uploads = join(reg.root, 'uploads');
    const old = randomUUID();
    await mkdir(join(uploads, old));
    await writeFile(join(uploads, old, 'data'), Buffer.alloc(4096, 1));
    const twoDaysAgo = new Date(Date.now() - 2 * DAY);
    await utimes(join(uploads, old, 'data'), twoDaysAgo, twoDaysAgo);

    const fresh = randomUUID(); // looks like a monolithic push in flight
    await mkdir(join(uploads, fresh));
    await writeFile(join(uploads, fresh, 'data'), Buffer.alloc(4096, 2));

    const cutoff = new Date(Date.now() - DAY);
    expect(await reg.app.registry.uploads.purge(cutoff, true)).toEqual([old]);
    expect(await exists(join(uploads, old, 'data'))).toBe(true);

    expect(await reg.app.registry.uploads.purge(cutoff)).toEqual([old]);
    expect(await exists(join(uploads, old))).toBe(false);
    expect(await exists(join(uploads, fresh, 'data'))).toBe(true);
  });
});

describe('configured upload purging', () => {
  let reg: TestRegistry | undefined;
  afterEach(async () => {
    await reg?.destroy();
    reg = undefined;
  });

  it('runs on its interval once the registry is started', async () => {
    reg = await startRegistry({ storage: { maintenance: { uploadpurging: { enabled: true, age: '1s', interval: '1s' } } } });
    const id = await uploadWithData(reg, 100);
    expect((await uploadStatus(reg, id)).statusCode).toBe(204);

    await waitFor(async () => (await uploadStatus(reg!, id)).statusCode === 404, {
      timeoutMs: 10_000,
      intervalMs: 200,
      what: 'the idle upload to be purged',
    });
    expect(errorCode(await uploadStatus(reg, id))).toBe('BLOB_UPLOAD_UNKNOWN');
    // The directory is removed before the session row, so it is gone by now.
    expect(await exists(join(reg.root, 'uploads', id))).toBe(false);
  });
});
