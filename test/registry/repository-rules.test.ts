import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openSqliteIndex, type SqliteIndex } from '../../src/index/sqlite/index.js';
import { Digest } from '../../src/oci/digest.js';
import { RegistryError } from '../../src/oci/errors.js';
import { Registry } from '../../src/registry/registry.js';
import { ImmutableTagError, RepositoryNotFoundError, type RepositoryRules, type TagMove } from '../../src/registry/repository-rules.js';
import { FsBlobStore } from '../../src/storage/fs-blob-store.js';
import { OCI_CONFIG, OCI_INDEX, OCI_LAYER, OCI_MANIFEST, tempDir } from '../helpers.js';

const REPO = 'team/app';

/** Rules that record every call and refuse what the test says. */
class FakeRules implements RepositoryRules {
  admitted: string[] = [];
  moves: Array<{ repo: string; moves: TagMove[] }> = [];
  refusePush = new Set<string>();
  immutable = new Set<string>();

  async admitPush(repo: string): Promise<void> {
    this.admitted.push(repo);
    if (this.refusePush.has(repo)) throw new RepositoryNotFoundError(repo, '123456789012');
  }

  async checkTagMoves(repo: string, moves: readonly TagMove[]): Promise<void> {
    this.moves.push({ repo, moves: [...moves] });
    const refused = moves.find((m) => m.from !== undefined && this.immutable.has(m.tag));
    if (refused) throw new ImmutableTagError(repo, refused.tag);
  }
}

async function* bytes(data: Buffer): AsyncIterable<Uint8Array> {
  yield data;
}

describe('repository rules in the registry', () => {
  let root: string;
  let index: SqliteIndex;
  let store: FsBlobStore;
  let registry: Registry;
  let rules: FakeRules;

  beforeEach(async () => {
    root = await tempDir();
    store = new FsBlobStore(root);
    await store.init();
    index = openSqliteIndex(join(root, 'index.db'));
    registry = new Registry(store, index);
    rules = new FakeRules();
    registry.rules = rules; // installed after construction, as the app does
  });
  afterEach(async () => {
    await index.close();
    await rm(root, { recursive: true, force: true });
  });

  /** Every key of the store (but the index file and temporary files). */
  async function storeKeys(prefix = ''): Promise<string[]> {
    const all: string[] = [];
    for (const p of prefix ? [prefix] : ['repositories/', 'blobs/', 'uploads/']) {
      for await (const o of store.list(p)) all.push(o.key);
    }
    return all.sort();
  }

  function count(table: string): number {
    return (index.db.prepare(`SELECT count(*) AS n FROM ${table}`).get() as { n: number }).n;
  }

  async function pushBlob(repo: string, data: string): Promise<{ digest: string; size: number }> {
    const buf = Buffer.from(data);
    await registry.uploads.monolithic(repo, Digest.of(buf), bytes(buf), buf.length);
    return { digest: Digest.of(buf).toString(), size: buf.length };
  }

  async function image(repo: string, layer: string): Promise<Buffer> {
    const config = await pushBlob(repo, JSON.stringify({ architecture: 'amd64', os: 'linux', layer }));
    const l = await pushBlob(repo, `layer:${layer}`);
    return Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        config: { mediaType: OCI_CONFIG, ...config },
        layers: [{ mediaType: OCI_LAYER, ...l }],
      }),
    );
  }

  describe('admitPush', () => {
    it('is asked by every entry point of a push, with the repository', async () => {
      const up = await registry.uploads.start(REPO);
      expect(rules.admitted).toEqual([REPO]);
      await registry.uploads.cancel(REPO, up.id);

      // A monolithic upload: at its start, and again as its blob is linked.
      const blob = await pushBlob(REPO, 'monolithic');
      expect(rules.admitted).toEqual([REPO, REPO, REPO]);

      await registry.blobs.mount('other/repo', Digest.parse(blob.digest), REPO);
      expect(rules.admitted.at(-1)).toBe('other/repo');

      // A manifest: before it waits for the repository's lock, and again once it holds it.
      const body = await image(REPO, 'a');
      rules.admitted = [];
      await registry.manifests.put(REPO, { tag: 'v1' }, body, OCI_MANIFEST);
      expect(rules.admitted).toEqual([REPO, REPO]);
    });

    it('an upload admitted at its start is refused at its end if the repository went meanwhile', async () => {
      const up = await registry.uploads.start(REPO);
      await registry.uploads.append(REPO, up.id, (async function* () { yield Buffer.from('late'); })(), {});
      rules.refusePush.add(REPO); // as while DeleteRepository runs, or after it
      await expect(registry.uploads.complete(REPO, up.id, Digest.of('late'), undefined, {})).rejects.toBeInstanceOf(RepositoryNotFoundError);
      expect(count('repository_blobs')).toBe(0);
      expect((await storeKeys()).filter((k) => k.startsWith('repositories/'))).toEqual([]);
    });

    it('a refused upload start writes nothing to the store or the index', async () => {
      rules.refusePush.add(REPO);
      await expect(registry.uploads.start(REPO)).rejects.toBeInstanceOf(RepositoryNotFoundError);
      expect(await storeKeys()).toEqual([]);
      expect(count('uploads')).toBe(0);
      expect(count('repositories')).toBe(0);
    });

    it('a refused monolithic upload reads no byte and writes nothing', async () => {
      rules.refusePush.add(REPO);
      let read = false;
      async function* body(): AsyncIterable<Uint8Array> {
        read = true;
        yield Buffer.from('x');
      }
      await expect(registry.uploads.monolithic(REPO, Digest.of('x'), body(), 1)).rejects.toThrow(/does not exist in the registry/);
      expect(read).toBe(false);
      expect(await storeKeys()).toEqual([]);
      expect(count('blobs')).toBe(0);
      expect(count('repositories')).toBe(0);
    });

    it('a refused mount links nothing, whether or not the blob exists elsewhere', async () => {
      const blob = await pushBlob('source/repo', 'shared');
      const before = await storeKeys();
      rules.refusePush.add(REPO);
      await expect(registry.blobs.mount(REPO, Digest.parse(blob.digest), 'source/repo')).rejects.toBeInstanceOf(RepositoryNotFoundError);
      await expect(registry.blobs.mount(REPO, Digest.of('absent'), undefined)).rejects.toBeInstanceOf(RepositoryNotFoundError);
      expect(await storeKeys()).toEqual(before);
      expect(await registry.index.repositoryId(REPO)).toBeUndefined();
    });

    it('a refused manifest push stores no byte, link or row', async () => {
      const body = await image(REPO, 'a');
      const before = await storeKeys();
      const manifests = count('manifests');
      rules.refusePush.add(REPO);
      await expect(registry.manifests.put(REPO, { tag: 'v1' }, body, OCI_MANIFEST)).rejects.toMatchObject({ code: 'NAME_UNKNOWN', status: 404 });
      expect(await storeKeys()).toEqual(before);
      expect(count('manifests')).toBe(manifests);
      expect(count('tags')).toBe(0);
      expect(rules.moves).toEqual([]);
    });
  });

  describe('checkTagMoves', () => {
    it('sees each tag a push writes with where it points now and where it will', async () => {
      const a = await image(REPO, 'a');
      const b = await image(REPO, 'b');
      const da = Digest.of(a).toString();
      const db_ = Digest.of(b).toString();
      await registry.manifests.put(REPO, { tag: 'v1' }, a, OCI_MANIFEST);
      expect(rules.moves).toEqual([{ repo: REPO, moves: [{ tag: 'v1', from: undefined, to: da }] }]);
      rules.moves = [];
      await registry.manifests.put(REPO, { tag: 'v1' }, b, OCI_MANIFEST, ['latest']);
      expect(rules.moves).toEqual([
        {
          repo: REPO,
          moves: [
            { tag: 'v1', from: da, to: db_ },
            { tag: 'latest', from: undefined, to: db_ },
          ],
        },
      ]);
    });

    it('is not asked when every tag already points at the pushed digest, nor for a push by digest', async () => {
      const a = await image(REPO, 'a');
      await registry.manifests.put(REPO, { tag: 'v1' }, a, OCI_MANIFEST);
      rules.moves = [];
      rules.immutable.add('v1');
      await registry.manifests.put(REPO, { tag: 'v1' }, a, OCI_MANIFEST); // a re-push: not a move
      await registry.manifests.put(REPO, { digest: Digest.of(a) }, a, OCI_MANIFEST);
      expect(rules.moves).toEqual([]);
    });

    it('a refused move leaves the tag where it was and stores nothing of the new manifest', async () => {
      const a = await image(REPO, 'a');
      const b = await image(REPO, 'b');
      await registry.manifests.put(REPO, { tag: 'v1' }, a, OCI_MANIFEST);
      const before = await storeKeys();
      rules.immutable.add('v1');
      const err = await registry.manifests.put(REPO, { tag: 'v1' }, b, OCI_MANIFEST).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ImmutableTagError);
      expect((err as RegistryError).code).toBe('TAG_INVALID');
      expect((err as RegistryError).message).toBe(
        `The image tag 'v1' already exists in the '${REPO}' repository and cannot be overwritten because the tag is immutable.`,
      );
      expect(await registry.index.tagDigest(REPO, 'v1')).toBe(Digest.of(a).toString());
      expect(await registry.index.manifest(REPO, Digest.of(b).toString())).toBeUndefined();
      expect(await storeKeys()).toEqual(before);
    });

    it('never refuses the children of a multi-platform push (pushed by digest), only a move of the index tag', async () => {
      const amd = await image(REPO, 'amd64');
      const arm = await image(REPO, 'arm64');
      rules.immutable.add('v1');
      await registry.manifests.put(REPO, { digest: Digest.of(amd) }, amd, OCI_MANIFEST);
      await registry.manifests.put(REPO, { digest: Digest.of(arm) }, arm, OCI_MANIFEST);
      const index = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: OCI_INDEX,
          manifests: [amd, arm].map((m) => ({ mediaType: OCI_MANIFEST, digest: Digest.of(m).toString(), size: m.length })),
        }),
      );
      await registry.manifests.put(REPO, { tag: 'v1' }, index, OCI_INDEX);
      expect(await registry.index.tagDigest(REPO, 'v1')).toBe(Digest.of(index).toString());
      expect(rules.moves).toEqual([{ repo: REPO, moves: [{ tag: 'v1', from: undefined, to: Digest.of(index).toString() }] }]);
    });
  });

  describe('deleting a repository', () => {
    it('removes its links from the store and its rows from the index, and leaves a nested repository alone', async () => {
      const a = await image(REPO, 'a');
      await registry.manifests.put(REPO, { tag: 'v1' }, a, OCI_MANIFEST);
      const nested = await image(`${REPO}/nested`, 'n');
      await registry.manifests.put(`${REPO}/nested`, { tag: 'v1' }, nested, OCI_MANIFEST);
      const nestedKeys = await storeKeys(`repositories/${REPO}/nested/`);
      expect(nestedKeys.length).toBeGreaterThan(0);

      expect(await registry.manifests.deleteRepository(REPO, { onlyIfEmpty: true })).toBe(false);
      expect(await registry.index.repositoryId(REPO)).toBeDefined();

      expect(await registry.manifests.deleteRepository(REPO)).toBe(true);
      expect((await storeKeys('repositories/')).filter((k) => !k.startsWith(`repositories/${REPO}/nested/`))).toEqual([]);
      expect(await storeKeys(`repositories/${REPO}/nested/`)).toEqual(nestedKeys);
      expect(await registry.index.repositoryId(REPO)).toBeUndefined();
      expect(await registry.index.manifest(REPO, Digest.of(a).toString())).toBeUndefined();
      expect(await registry.index.tagDigest(`${REPO}/nested`, 'v1')).toBe(Digest.of(nested).toString());
      // The content stays (garbage collection's to take), and the tag list is not served stale.
      expect((await storeKeys('blobs/')).length).toBeGreaterThan(0);
      await expect(registry.manifests.tags(REPO)).rejects.toThrow(RegistryError);
    });

    it('ends the open uploads of the repository only', async () => {
      const mine = await registry.uploads.start(REPO);
      const other = await registry.uploads.start('other/repo');
      expect(await registry.uploads.cancelRepository(REPO)).toBe(1);
      await expect(registry.uploads.status(REPO, mine.id)).rejects.toMatchObject({ code: 'BLOB_UPLOAD_UNKNOWN' });
      expect((await registry.uploads.status('other/repo', other.id)).size).toBe(0);
    });

    it('deleteIf deletes only a manifest whose tags the caller accepts', async () => {
      const a = await image(REPO, 'a');
      await registry.manifests.put(REPO, { tag: 'v1' }, a, OCI_MANIFEST, ['v2']);
      const seen: string[][] = [];
      expect(await registry.manifests.deleteIf(REPO, Digest.of(a), (tags) => (seen.push([...tags].sort()), false))).toBe(false);
      expect(seen).toEqual([['v1', 'v2']]);
      expect(await registry.index.tagDigest(REPO, 'v1')).toBe(Digest.of(a).toString());
      expect(await registry.manifests.deleteIf(REPO, Digest.of(a), () => true)).toBe(true);
      expect(await registry.index.manifest(REPO, Digest.of(a).toString())).toBeUndefined();
      expect(await registry.index.tagDigest(REPO, 'v2')).toBeUndefined();
      expect(await registry.manifests.deleteIf(REPO, Digest.of(a), () => true)).toBe(false);
    });
  });
});
