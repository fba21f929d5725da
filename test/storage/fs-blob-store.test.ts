import { randomUUID } from 'node:crypto';
import { mkdtemp, open, readFile, readdir, rm, stat, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { NotFoundError } from '../../src/storage/blob-store.js';
import { FsBlobStore } from '../../src/storage/fs-blob-store.js';
import { blobStoreContract } from './contract.js';

async function openStore(root: string): Promise<FsBlobStore> {
  const store = new FsBlobStore(root);
  await store.init();
  return store;
}

blobStoreContract('FsBlobStore', async () => {
  const root = await mkdtemp(join(tmpdir(), 'ocireg-fs-store-'));
  const store = await openStore(root);
  return {
    store,
    restart: () => openStore(root),
    cleanup: async () => {
      // Once the uploads a test left open are cancelled, nothing of the
      // store's own may remain: no temporary file, no upload directory.
      try {
        for await (const { id } of store.listUploads()) await store.cancelUpload(id);
        expect(await readdir(join(root, '_tmp'))).toEqual([]);
        expect(await readdir(join(root, 'uploads'))).toEqual([]);
      } finally {
        await rm(root, { recursive: true, force: true });
      }
    },
  };
});

describe('FsBlobStore on disk', () => {
  let parent: string;
  let root: string;
  let store: FsBlobStore;

  beforeEach(async () => {
    parent = await mkdtemp(join(tmpdir(), 'ocireg-fs-'));
    root = join(parent, 'root');
    store = await openStore(root);
  });
  afterEach(async () => {
    await rm(parent, { recursive: true, force: true });
  });

  async function* bytes(text: string): AsyncIterable<Uint8Array> {
    yield Buffer.from(text);
  }

  async function expectNoLeftovers(): Promise<void> {
    expect(await readdir(join(root, '_tmp'))).toEqual([]);
    expect(await readdir(join(root, 'uploads'))).toEqual([]);
  }

  it('treats a key that is only a folder of other keys as absent', async () => {
    await store.put('a/b', Buffer.from('x'));
    expect(await store.stat('a')).toBeNull();
    expect(await store.get('a')).toBeNull();
    await expect(store.read('a')).rejects.toBeInstanceOf(NotFoundError);
  });

  it('reports a key that is a folder of other keys as not deleted, and deletes the rest', async () => {
    await store.put('folder/child', Buffer.from('x'));
    await store.put('plain', Buffer.from('y'));
    const failures = await store.deleteMany(['folder', 'plain', 'plain/under/a/file']);
    expect(failures.map((f) => f.key)).toEqual(['folder']);
    expect(failures[0]!.error).toMatchObject({ code: 'EISDIR' });
    expect(await store.get('folder/child')).toEqual(Buffer.from('x'));
    expect(await store.stat('plain')).toBeNull();
  });

  it('does not move a folder of other keys, nor a key under a file', async () => {
    await store.put('folder/child', Buffer.from('x'));
    await expect(store.move('folder', 'elsewhere')).rejects.toBeInstanceOf(NotFoundError);
    await expect(store.move('folder/child/deeper', 'elsewhere')).rejects.toBeInstanceOf(NotFoundError);
    expect(await store.get('folder/child')).toEqual(Buffer.from('x'));
    expect(await readdir(root)).not.toContain('elsewhere');
  });

  it('syncs both folders of a move, so that the object is not back under its old key after a crash', async () => {
    await store.put('from/here', Buffer.from('x'));
    const probe = await open(join(parent, 'probe'), 'w');
    const proto = Object.getPrototypeOf(probe) as FileHandle;
    await probe.close();
    const sync = vi.spyOn(proto, 'sync');
    try {
      await store.move('from/here', 'to/there');
      expect(sync).toHaveBeenCalledTimes(2);
    } finally {
      sync.mockRestore();
    }
    expect(await readFile(join(root, 'to/there'), 'utf8')).toBe('x');
    expect(await readdir(join(root, 'from'))).toEqual([]);
  });

  it('creates its root, temporary and upload directories', async () => {
    expect((await readdir(root)).sort()).toEqual(['_tmp', 'uploads']);
  });

  it('keeps each object as a plain file named by its key', async () => {
    await store.put('repositories/lib/app/_tags/v1', Buffer.from('sha256:x'));
    expect(await readFile(join(root, 'repositories/lib/app/_tags/v1'), 'utf8')).toBe('sha256:x');
    const id = randomUUID();
    await store.createUpload(id);
    await store.appendUpload(id, 0, bytes('layer'));
    await store.commitUpload(id, 'blobs/sha256/ab/cd');
    expect(await readFile(join(root, 'blobs/sha256/ab/cd'), 'utf8')).toBe('layer');
    await expectNoLeftovers();
  });

  it('leaves no temporary file when a put fails', async () => {
    await store.put('a/b', Buffer.from('x'));
    await expect(store.put('a', Buffer.from('clashes with a directory'))).rejects.toThrow();
    await expectNoLeftovers();
    expect(await store.get('a/b')).toEqual(Buffer.from('x'));
  });

  it('keeps the upload when a commit fails', async () => {
    await store.put('taken/child', Buffer.from('x'));
    const id = randomUUID();
    await store.createUpload(id);
    await store.appendUpload(id, 0, bytes('precious'));
    await expect(store.commitUpload(id, 'taken')).rejects.toThrow();
    expect(await store.uploadSize(id)).toBe(8);
    await store.commitUpload(id, 'elsewhere');
    expect((await store.get('elsewhere'))?.toString()).toBe('precious');
    await expectNoLeftovers();
  });

  it.each(['../escape', 'a/../../escape', '/abs', 'a//b', './a', 'a/.', 'nul\0byte'])(
    'refuses the key %j without writing outside its root',
    async (key) => {
      await expect(store.put(key, Buffer.from('x'))).rejects.toThrow(/invalid storage key/);
      const id = randomUUID();
      await store.createUpload(id);
      await expect(store.commitUpload(id, key)).rejects.toThrow(/invalid storage key/);
      expect(await store.uploadSize(id)).toBe(0);
      expect(await readdir(parent)).toEqual(['root']);
      await store.cancelUpload(id);
      await expectNoLeftovers();
    },
  );

  it.each(['../root', '..', 'a/b', 'with space', 'x'.repeat(65)])(
    'treats the upload id %j as unknown',
    async (id) => {
      await expect(store.createUpload(id)).rejects.toBeInstanceOf(NotFoundError);
      expect(await store.uploadSize(id)).toBeNull();
      await expect(store.appendUpload(id, 0, bytes('x'))).rejects.toBeInstanceOf(NotFoundError);
      await expect(store.readUpload(id)).rejects.toBeInstanceOf(NotFoundError);
      await store.cancelUpload(id);
      expect((await readdir(root)).sort()).toEqual(['_tmp', 'uploads']);
      expect((await stat(root)).isDirectory()).toBe(true);
    },
  );

  describe('flushing uploads to disk', () => {
    const MiB = 1024 * 1024;
    /** FileHandle.prototype.datasync, spied on: every fdatasync the store asks for. */
    async function spyOnDatasync() {
      const probe = await open(join(parent, 'probe'), 'w');
      const proto = Object.getPrototypeOf(probe) as FileHandle;
      await probe.close();
      return vi.spyOn(proto, 'datasync');
    }
    async function* pieces(count: number, size: number): AsyncIterable<Uint8Array> {
      for (let i = 0; i < count; i++) yield Buffer.alloc(size, i);
    }
    afterEach(() => {
      vi.restoreAllMocks();
    });

    it('flushes a long append in the background as it streams, and once after it', async () => {
      const datasync = await spyOnDatasync();
      const id = randomUUID();
      await store.createUpload(id);
      expect(await store.appendUpload(id, 0, pieces(80, MiB))).toBe(80 * MiB);
      // 80 MiB: two flushes while streaming (at 32 and 64 MiB) and the final one.
      expect(datasync).toHaveBeenCalledTimes(3);
      datasync.mockClear();
      await store.commitUpload(id, 'blobs/long');
      expect(datasync).not.toHaveBeenCalled(); // the append left every byte on disk
      expect((await stat(join(root, 'blobs/long'))).size).toBe(80 * MiB);
    });

    it('flushes at commit an upload whose last append failed', async () => {
      const id = randomUUID();
      await store.createUpload(id);
      async function* breaks(): AsyncIterable<Uint8Array> {
        yield Buffer.from('kept');
        throw new Error('client went away');
      }
      await expect(store.appendUpload(id, 0, breaks())).rejects.toThrow('client went away');
      const datasync = await spyOnDatasync();
      await store.commitUpload(id, 'blobs/kept');
      expect(datasync).toHaveBeenCalledTimes(1);
      expect(await readFile(join(root, 'blobs/kept'), 'utf8')).toBe('kept');
    });

    it('fails the append when a flush during it fails, and never commits that upload', async () => {
      const datasync = await spyOnDatasync();
      datasync.mockRejectedValueOnce(Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' }));
      const id = randomUUID();
      await store.createUpload(id);
      await expect(store.appendUpload(id, 0, pieces(48, MiB))).rejects.toThrow(/EIO/);
      // Linux may report the next fdatasync of that file as a success although bytes were lost.
      await expect(store.appendUpload(id, undefined, pieces(1, MiB))).rejects.toThrow(/could not be flushed/);
      await expect(store.commitUpload(id, 'blobs/lost')).rejects.toThrow(/could not be flushed/);
      expect(await store.stat('blobs/lost')).toBeNull();
      await store.cancelUpload(id);
      expect(await store.uploadSize(id)).toBeNull();
    });

    it('answers an append before its last bytes are flushed, and the commit waits for that flush', async () => {
      const datasync = await spyOnDatasync();
      let release!: () => void;
      const held = new Promise<void>((resolve) => (release = resolve));
      datasync.mockImplementationOnce(async () => held); // the flush after the append hangs until released
      const id = randomUUID();
      await store.createUpload(id);
      expect(await store.appendUpload(id, 0, pieces(2, MiB))).toBe(2 * MiB);
      let committed = false;
      const commit = store.commitUpload(id, 'blobs/waited').then(() => (committed = true));
      await new Promise((r) => setTimeout(r, 100));
      expect(committed).toBe(false);
      release();
      await commit;
      expect((await stat(join(root, 'blobs/waited'))).size).toBe(2 * MiB);
    });

    it('does not commit an upload whose flush after an append failed', async () => {
      const datasync = await spyOnDatasync();
      datasync.mockRejectedValueOnce(Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' }));
      const id = randomUUID();
      await store.createUpload(id);
      expect(await store.appendUpload(id, 0, pieces(1, MiB))).toBe(MiB); // answered before the flush failed
      await expect(store.commitUpload(id, 'blobs/unflushed')).rejects.toThrow(/could not be flushed/);
      expect(await store.stat('blobs/unflushed')).toBeNull();
    });
  });
});
