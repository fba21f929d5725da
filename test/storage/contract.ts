import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Digest } from '../../src/oci/digest.js';
import { NotFoundError, UploadOffsetError, type BlobStore, type ObjectInfo } from '../../src/storage/blob-store.js';
import { keys } from '../../src/storage/keys.js';

export interface BlobStoreFixture {
  store: BlobStore;
  /** Removes everything the store wrote. */
  cleanup: () => Promise<void>;
  /** A new store instance over the same data, as after a process restart. */
  restart?: () => Promise<BlobStore>;
}

const MiB = 1024 * 1024;

/** Reads a stream into memory; stops with an error past `limit` bytes (a test object is expected, not a layer). */
export async function readAll(source: AsyncIterable<unknown>, limit = 32 * 1024 * 1024): Promise<Buffer> {
  const parts: Buffer[] = [];
  let length = 0;
  for await (const chunk of source) {
    length += (chunk as Uint8Array).length;
    if (length > limit) throw new Error(`read more than the ${limit} bytes expected`);
    parts.push(Buffer.from(chunk as Uint8Array));
  }
  return Buffer.concat(parts);
}

async function collect<T>(source: AsyncIterable<T>): Promise<T[]> {
  const items: T[] = [];
  for await (const item of source) items.push(item);
  return items;
}

async function* bytes(...parts: Array<string | Uint8Array>): AsyncIterable<Uint8Array> {
  for (const part of parts) yield typeof part === 'string' ? Buffer.from(part) : part;
}

function blobKey(content: string | Uint8Array): string {
  return keys.blob(Digest.of(content));
}

/**
 * The behaviour every BlobStore must have. A driver joins with one line:
 * `blobStoreContract('s3', makeS3Fixture)`. `make` runs before each test.
 */
export function blobStoreContract(name: string, make: () => Promise<BlobStoreFixture>): void {
  describe(`BlobStore contract: ${name}`, () => {
    let fixture: BlobStoreFixture;
    let store: BlobStore;

    beforeEach(async () => {
      fixture = await make();
      store = fixture.store;
    });
    afterEach(async () => {
      await fixture.cleanup();
    });

    /** Creates an upload holding `content`, and returns its id. */
    async function uploadOf(...content: string[]): Promise<string> {
      const id = randomUUID();
      await store.createUpload(id);
      if (content.length > 0) await store.appendUpload(id, 0, bytes(...content));
      return id;
    }

    async function expectNoUploadsLeft(): Promise<void> {
      expect(await collect(store.listUploads())).toEqual([]);
      expect(await collect(store.list('uploads/'))).toEqual([]);
    }

    describe('objects', () => {
      it('puts, gets, stats and deletes an object', async () => {
        const key = 'repositories/library/app/_tags/latest';
        await store.put(key, Buffer.from('sha256:abc'));
        expect(await store.get(key)).toEqual(Buffer.from('sha256:abc'));
        const info = await store.stat(key);
        expect(info).toMatchObject({ key, size: 10 });
        expect(info?.modified).toBeInstanceOf(Date);

        await store.delete(key);
        expect(await store.get(key)).toBeNull();
        expect(await store.stat(key)).toBeNull();
      });

      it('replaces an object on a second put', async () => {
        const key = 'repositories/library/app/_tags/latest';
        await store.put(key, Buffer.from('first version'));
        await store.put(key, Buffer.from('second'));
        expect(await store.get(key)).toEqual(Buffer.from('second'));
        expect((await store.stat(key))?.size).toBe(6);
      });

      it('answers null, NotFoundError or nothing for an object that does not exist', async () => {
        const key = blobKey('never stored');
        expect(await store.get(key)).toBeNull();
        expect(await store.stat(key)).toBeNull();
        await expect(store.read(key)).rejects.toBeInstanceOf(NotFoundError);
        await expect(store.delete(key)).resolves.toBeUndefined();
      });

      it('reads an object whole and by inclusive ranges', async () => {
        const content = Buffer.from('0123456789abcdef');
        const key = blobKey(content);
        await store.put(key, content);
        expect(await readAll(await store.read(key))).toEqual(content);
        expect((await readAll(await store.read(key, { start: 0, end: 0 }))).toString()).toBe('0');
        expect((await readAll(await store.read(key, { start: 15, end: 15 }))).toString()).toBe('f');
        expect((await readAll(await store.read(key, { start: 3, end: 9 }))).toString()).toBe('3456789');
        expect(await readAll(await store.read(key, { start: 0, end: 15 }))).toEqual(content);
      });

      it('stores zero-byte objects', async () => {
        const key = blobKey('');
        await store.put(key, new Uint8Array(0));
        expect(await store.get(key)).toEqual(Buffer.alloc(0));
        expect((await store.stat(key))?.size).toBe(0);
        expect(await readAll(await store.read(key))).toEqual(Buffer.alloc(0));
      });

      it('lists the objects under a prefix with their sizes', async () => {
        await store.put('repositories/a/_tags/v1', Buffer.from('1'));
        await store.put('repositories/a/_tags/v22', Buffer.from('22'));
        await store.put('repositories/a/_manifests/sha256/x', Buffer.from('333'));
        await store.put('repositories/ab/_tags/v1', Buffer.from('4444'));
        await store.put('blobs/sha256/aa/bbbb', Buffer.from('55555'));
        await store.put('repositories/a/_tags/gone', Buffer.from('6'));
        await store.delete('repositories/a/_tags/gone');

        const sorted = (items: ObjectInfo[]) =>
          items.map(({ key, size }) => ({ key, size })).sort((x, y) => x.key.localeCompare(y.key));
        expect(sorted(await collect(store.list('repositories/a/')))).toEqual([
          { key: 'repositories/a/_manifests/sha256/x', size: 3 },
          { key: 'repositories/a/_tags/v1', size: 1 },
          { key: 'repositories/a/_tags/v22', size: 2 },
        ]);
        expect(sorted(await collect(store.list('repositories/')))).toHaveLength(4);
        const [tag] = await collect(store.list('repositories/ab/'));
        expect(tag?.modified).toBeInstanceOf(Date);
        expect(await collect(store.list('nothing/here/'))).toEqual([]);
      });

      it('writes and reads back a 64 MiB object without holding it in memory', async () => {
        // Each 1 MiB chunk is a shared random block stamped with its index, so
        // a lost, repeated or misplaced chunk changes the digest.
        const block = randomBytes(MiB);
        const chunkAt = (i: number) => {
          const chunk = Buffer.from(block);
          chunk.writeUInt32BE(i, 0);
          chunk.writeUInt32BE(i, MiB - 4);
          return chunk;
        };
        const count = 64;
        const sent = createHash('sha256');
        async function* generate(): AsyncIterable<Uint8Array> {
          for (let i = 0; i < count; i++) {
            const chunk = chunkAt(i);
            sent.update(chunk);
            yield chunk;
          }
        }

        const id = randomUUID();
        await store.createUpload(id);
        expect(await store.appendUpload(id, 0, generate())).toBe(count * MiB);
        expect(await store.uploadSize(id)).toBe(count * MiB);
        const key = 'blobs/large';
        await store.commitUpload(id, key);
        expect((await store.stat(key))?.size).toBe(count * MiB);

        const received = createHash('sha256');
        let length = 0;
        for await (const chunk of await store.read(key)) {
          received.update(chunk as Buffer);
          length += (chunk as Buffer).length;
        }
        expect(length).toBe(count * MiB);
        expect(received.digest('hex')).toBe(sent.digest('hex'));

        const across = await readAll(await store.read(key, { start: MiB - 2, end: MiB + 1 }), 4);
        expect(across).toEqual(Buffer.concat([chunkAt(0).subarray(MiB - 2), chunkAt(1).subarray(0, 2)]));
        const last = await readAll(await store.read(key, { start: count * MiB - 1, end: count * MiB - 1 }), 1);
        expect(last).toEqual(Buffer.from([count - 1]));
      });
    });

    describe('uploads', () => {
      it('starts empty and appends at the current size', async () => {
        const id = randomUUID();
        await store.createUpload(id);
        expect(await store.uploadSize(id)).toBe(0);
        expect(await store.appendUpload(id, 0, bytes('hello'))).toBe(5);
        expect(await store.uploadSize(id)).toBe(5);
        expect(await store.appendUpload(id, 5, bytes(', ', 'world'))).toBe(12);
        expect(await store.uploadSize(id)).toBe(12);
        expect((await readAll(await store.readUpload(id))).toString()).toBe('hello, world');
      });

      it('appends at the end when no offset is given', async () => {
        const id = await uploadOf('abc');
        expect(await store.appendUpload(id, undefined, bytes('def'))).toBe(6);
        expect(await store.appendUpload(id, undefined, bytes('g'))).toBe(7);
        expect((await readAll(await store.readUpload(id))).toString()).toBe('abcdefg');
      });

      it('accepts an empty append', async () => {
        const id = await uploadOf('abc');
        expect(await store.appendUpload(id, 3, bytes())).toBe(3);
        expect((await readAll(await store.readUpload(id))).toString()).toBe('abc');
      });

      it.each([
        ['behind', 0],
        ['ahead', 10],
      ])('refuses an append at an offset %s of the size, appending nothing', async (_label, offset) => {
        const id = await uploadOf('abcd');
        const attempt = store.appendUpload(id, offset, bytes('zz'));
        await expect(attempt).rejects.toBeInstanceOf(UploadOffsetError);
        await expect(attempt).rejects.toMatchObject({ expected: 4, given: offset });
        expect(await store.uploadSize(id)).toBe(4);
        expect((await readAll(await store.readUpload(id))).toString()).toBe('abcd');
      });

      it('answers NotFoundError or null for an upload that does not exist', async () => {
        const id = randomUUID();
        await expect(store.appendUpload(id, 0, bytes('x'))).rejects.toBeInstanceOf(NotFoundError);
        await expect(store.readUpload(id)).rejects.toBeInstanceOf(NotFoundError);
        await expect(store.commitUpload(id, blobKey('x'))).rejects.toBeInstanceOf(NotFoundError);
        expect(await store.uploadSize(id)).toBeNull();
        expect(await store.stat(blobKey('x'))).toBeNull();
      });

      it('commits an upload into an object and ends the upload', async () => {
        const id = await uploadOf('layer ', 'content');
        const key = blobKey('layer content');
        await store.commitUpload(id, key);
        expect(await store.get(key)).toEqual(Buffer.from('layer content'));
        expect((await store.stat(key))?.size).toBe(13);
        expect(await store.uploadSize(id)).toBeNull();
        await expect(store.appendUpload(id, 13, bytes('more'))).rejects.toBeInstanceOf(NotFoundError);
        await expectNoUploadsLeft();
      });

      it('keeps an upload\'s info until the upload ends, by commit or by cancel', async () => {
        const info = Buffer.from('{"repository":"lib/app"}');
        const committed = randomUUID();
        await store.createUpload(committed, info);
        await store.appendUpload(committed, 0, bytes('with info'));
        expect(await store.get(keys.uploadInfo(committed))).toEqual(info);
        await store.commitUpload(committed, blobKey('with info'));
        expect(await store.get(keys.uploadInfo(committed))).toBeNull();

        const cancelled = randomUUID();
        await store.createUpload(cancelled, info);
        expect(await store.get(keys.uploadInfo(cancelled))).toEqual(info);
        await store.cancelUpload(cancelled);
        expect(await store.get(keys.uploadInfo(cancelled))).toBeNull();
        await expectNoUploadsLeft();
      });

      it('commits a zero-byte upload', async () => {
        const id = await uploadOf();
        const key = blobKey('');
        await store.commitUpload(id, key);
        expect(await store.get(key)).toEqual(Buffer.alloc(0));
        await expectNoUploadsLeft();
      });

      it('commits over an existing object', async () => {
        const key = 'repositories/a/_tags/latest';
        await store.put(key, Buffer.from('old'));
        await store.commitUpload(await uploadOf('new bytes'), key);
        expect((await store.get(key))?.toString()).toBe('new bytes');
      });

      it('cancel after commit is safe and keeps the object', async () => {
        const id = await uploadOf('kept');
        const key = blobKey('kept');
        await store.commitUpload(id, key);
        await expect(store.cancelUpload(id)).resolves.toBeUndefined();
        expect((await store.get(key))?.toString()).toBe('kept');
      });

      it('cancel discards an upload in progress and leaves nothing behind', async () => {
        const id = await uploadOf('discard me');
        await store.cancelUpload(id);
        expect(await store.uploadSize(id)).toBeNull();
        await expect(store.readUpload(id)).rejects.toBeInstanceOf(NotFoundError);
        await expect(store.appendUpload(id, 10, bytes('x'))).rejects.toBeInstanceOf(NotFoundError);
        await expectNoUploadsLeft();
      });

      it('cancel of an unknown upload is safe', async () => {
        await expect(store.cancelUpload(randomUUID())).resolves.toBeUndefined();
        const id = await uploadOf('x');
        await store.cancelUpload(id);
        await expect(store.cancelUpload(id)).resolves.toBeUndefined();
      });

      it('lists the uploads in progress', async () => {
        const first = await uploadOf('one');
        const second = await uploadOf();
        const done = await uploadOf('done');
        await store.commitUpload(done, blobKey('done'));

        const uploads = await collect(store.listUploads());
        expect(uploads.map((u) => u.id).sort()).toEqual([first, second].sort());
        for (const u of uploads) expect(u.modified).toBeInstanceOf(Date);
      });

      it('lets two uploads commit to the same key at once', async () => {
        const a = Buffer.alloc(MiB, 'a');
        const b = Buffer.alloc(MiB, 'b');
        const idA = randomUUID();
        const idB = randomUUID();
        await Promise.all([store.createUpload(idA), store.createUpload(idB)]);
        await Promise.all([store.appendUpload(idA, 0, bytes(a)), store.appendUpload(idB, 0, bytes(b))]);
        const key = 'blobs/contended';

        await Promise.all([store.commitUpload(idA, key), store.commitUpload(idB, key)]);

        const stored = await store.get(key);
        expect(stored?.length).toBe(MiB);
        expect(stored!.equals(a) || stored!.equals(b)).toBe(true);
        await expectNoUploadsLeft();
      });

      it('keeps an upload across a restart and finishes it there', async (ctx) => {
        if (!fixture.restart) ctx.skip();
        const id = await uploadOf('before ');
        const restarted = await fixture.restart!();
        try {
          expect(await restarted.uploadSize(id)).toBe(7);
          expect((await collect(restarted.listUploads())).map((u) => u.id)).toEqual([id]);
          expect(await restarted.appendUpload(id, 7, bytes('after'))).toBe(12);
          const key = blobKey('before after');
          await restarted.commitUpload(id, key);
          expect((await restarted.get(key))?.toString()).toBe('before after');
          expect(await restarted.uploadSize(id)).toBeNull();
        } finally {
          await restarted.close?.();
        }
      });

      it('keeps what a failing source delivered, so the client can resume', async () => {
        const id = await uploadOf('start:');
        const sent = Buffer.from('0123456789'.repeat(1000));
        async function* breaksMidway(): AsyncIterable<Uint8Array> {
          yield sent.subarray(0, 4000);
          yield sent.subarray(4000, 8000);
          throw new Error('client went away');
        }
        await expect(store.appendUpload(id, 6, breaksMidway())).rejects.toThrow();

        const kept = await store.uploadSize(id);
        expect(kept).not.toBeNull();
        expect(kept!).toBeGreaterThanOrEqual(6);
        expect(kept!).toBeLessThanOrEqual(6 + 8000);
        const expected = Buffer.concat([Buffer.from('start:'), sent]);
        expect(await readAll(await store.readUpload(id))).toEqual(expected.subarray(0, kept!));

        expect(await store.appendUpload(id, kept!, bytes(expected.subarray(kept!)))).toBe(expected.length);
        const key = blobKey(expected);
        await store.commitUpload(id, key);
        expect(await store.get(key)).toEqual(expected);
        await expectNoUploadsLeft();
      });

      it('refuses an append when the signal is already aborted', async () => {
        const id = await uploadOf('abc');
        await expect(store.appendUpload(id, 3, bytes('def'), AbortSignal.abort())).rejects.toMatchObject({
          name: 'AbortError',
        });
        expect(await store.uploadSize(id)).toBe(3);
        expect(await store.appendUpload(id, 3, bytes('def'))).toBe(6);
      });
    });

    describe('deleteMany and move', () => {
      /** Puts an object under each key, a few at a time, its key as its bytes. */
      async function putAll(names: readonly string[]): Promise<void> {
        for (let i = 0; i < names.length; i += 50) {
          await Promise.all(names.slice(i, i + 50).map((key) => store.put(key, Buffer.from(key))));
        }
      }

      it('deletes present keys and takes absent ones as deleted already', async (ctx) => {
        if (!store.deleteMany) ctx.skip();
        const present = ['blobs/sha256/aa/one', 'blobs/sha256/bb/two', 'repositories/a/_tags/t'];
        await putAll([...present, 'blobs/sha256/aa/kept']);
        expect(await store.deleteMany!([...present, 'blobs/sha256/cc/never', 'nowhere/at/all'])).toEqual([]);
        for (const key of present) expect(await store.stat(key)).toBeNull();
        expect((await store.get('blobs/sha256/aa/kept'))?.toString()).toBe('blobs/sha256/aa/kept');
        expect(await store.deleteMany!([])).toEqual([]);
      });

      it('deletes 2,500 keys, more than one request of S3 holds', async (ctx) => {
        if (!store.deleteMany) ctx.skip();
        const names = Array.from({ length: 2500 }, (_, i) => `blobs/sha256/${String(i % 100).padStart(2, '0')}/many-${i}`);
        await putAll(names);
        await store.put('blobs/sha256/00/other', Buffer.from('stays'));
        expect(await store.deleteMany!(names)).toEqual([]);
        expect((await collect(store.list('blobs/'))).map((o) => o.key)).toEqual(['blobs/sha256/00/other']);
      });

      it('reports the keys it cannot delete, each with its error, and deletes the others', async (ctx) => {
        if (!store.deleteMany) ctx.skip();
        await putAll(['blobs/x/first', 'blobs/x/second']);
        const failures = await store.deleteMany!(['blobs/x/first', 'blobs/../escape', 'blobs/x/second', 'blobs//empty']);
        expect(failures.map((f) => f.key).sort()).toEqual(['blobs/../escape', 'blobs//empty']);
        for (const f of failures) expect(f.error).toBeInstanceOf(Error);
        expect(await store.stat('blobs/x/first')).toBeNull();
        expect(await store.stat('blobs/x/second')).toBeNull();
      });

      it('moves an object: the bytes go to the new key, none stay under the old', async (ctx) => {
        if (!store.move) ctx.skip();
        const content = randomBytes(100_000);
        await store.put('blobs/sha256/ab/moving', content);
        await store.move!('blobs/sha256/ab/moving', 'trash/deep/folder/moved');
        expect(await store.get('trash/deep/folder/moved')).toEqual(content);
        expect(await store.stat('blobs/sha256/ab/moving')).toBeNull();
        expect(await collect(store.list('blobs/'))).toEqual([]);
      });

      it('moves over an existing object, replacing it', async (ctx) => {
        if (!store.move) ctx.skip();
        await store.put('blobs/a/new', Buffer.from('new bytes'));
        await store.put('blobs/b/old', Buffer.from('the old, longer bytes'));
        await store.move!('blobs/a/new', 'blobs/b/old');
        expect((await store.get('blobs/b/old'))?.toString()).toBe('new bytes');
        expect(await store.stat('blobs/a/new')).toBeNull();
      });

      it('answers NotFoundError for a missing source and leaves the target alone', async (ctx) => {
        if (!store.move) ctx.skip();
        await store.put('blobs/b/target', Buffer.from('untouched'));
        await expect(store.move!('blobs/a/missing', 'blobs/b/target')).rejects.toBeInstanceOf(NotFoundError);
        await expect(store.move!('blobs/a/missing', 'blobs/c/fresh')).rejects.toBeInstanceOf(NotFoundError);
        expect((await store.get('blobs/b/target'))?.toString()).toBe('untouched');
        expect(await store.stat('blobs/c/fresh')).toBeNull();
      });

      it('keeps an object moved onto its own key', async (ctx) => {
        if (!store.move) ctx.skip();
        await store.put('blobs/a/self', Buffer.from('same'));
        await store.move!('blobs/a/self', 'blobs/a/self');
        expect((await store.get('blobs/a/self'))?.toString()).toBe('same');
      });
    });
  });
}
