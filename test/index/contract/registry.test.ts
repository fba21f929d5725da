import { expect, it } from 'vitest';
import type { RegistryIndex } from '../../../src/index/contract.js';
import { describeIndex } from './implementations.js';
import { AWKWARD_NAMES, blob, byteSorted, DOCKER_MANIFEST, image, indexOf, tagState, TagsVersionWatch } from './fixtures.js';

describeIndex('RegistryIndex: repositories', (fixture) => {
  const reg = (): RegistryIndex => fixture().index.registry;

  it('ensureRepository creates a repository once and returns its id every time', async () => {
    expect(await reg().repositoryId('library/alpine')).toBeUndefined();
    const id = await reg().ensureRepository('library/alpine', 1_000);
    expect(typeof id).toBe('number');
    expect(await reg().ensureRepository('library/alpine', 2_000)).toBe(id);
    expect(await reg().repositoryId('library/alpine')).toBe(id);
    const other = await reg().ensureRepository('library/busybox');
    expect(other).not.toBe(id);
    expect(await reg().catalog('', 10)).toEqual(['library/alpine', 'library/busybox']);
  });

  it('addBlob and putManifest create the repository they write to', async () => {
    await reg().addBlob('by-blob', blob('x'), 3);
    await reg().putManifest('by-manifest', image('m'), []);
    expect(await reg().repositoryId('by-blob')).toBeDefined();
    expect(await reg().repositoryId('by-manifest')).toBeDefined();
    expect(await reg().catalog('', 10)).toEqual(['by-blob', 'by-manifest']);
  });

  it('an upload session does not create its repository', async () => {
    await reg().insertUpload('u1', 'uploading', 1_000);
    expect(await reg().repositoryId('uploading')).toBeUndefined();
    expect(await reg().catalog('', 10)).toEqual([]);
  });

  it('catalog pages through the names in byte order, not locale order', async () => {
    for (const name of AWKWARD_NAMES) await reg().ensureRepository(name);
    const expected = byteSorted(AWKWARD_NAMES);
    expect(expected.slice(0, 4)).toEqual(['B', 'a', 'a-b', 'a.b']);
    expect(await reg().catalog('', 100)).toEqual(expected);

    const paged: string[] = [];
    let after = '';
    for (let pages = 0; pages < 20; pages++) {
      const page = await reg().catalog(after, 3);
      expect(page.length).toBeLessThanOrEqual(3);
      if (page.length === 0) break;
      paged.push(...page);
      after = page[page.length - 1]!;
    }
    expect(paged).toEqual(expected);

    // `after` is exclusive and need not be a name that exists.
    expect(await reg().catalog('a', 2)).toEqual(['a-b', 'a.b']);
    expect(await reg().catalog('a/', 3)).toEqual(['a/b', 'a/b/c', 'a0']);
    expect(await reg().catalog('z', 10)).toEqual([]);
    expect(await reg().catalog('', 0)).toEqual([]);
  });

  it('deleteRepository removes its manifests, tags, blob links and references, but not the blobs', async () => {
    const m = image('img');
    await reg().addBlob('doomed', m.blobs[0]!, 10);
    await reg().addBlob('kept', m.blobs[0]!, 10);
    await reg().putManifest('doomed', m, ['latest']);
    await reg().putManifest('doomed', image('ref', { subject: m.digest, artifactType: 'application/x-sig' }), []);
    await reg().putManifest('kept', m, ['v1']);

    expect(await reg().deleteRepository('doomed')).toBe(true);
    expect(await reg().repositoryId('doomed')).toBeUndefined();
    expect(await reg().catalog('', 10)).toEqual(['kept']);
    expect(await reg().manifest('doomed', m.digest)).toBeUndefined();
    expect(await reg().tagDigest('doomed', 'latest')).toBeUndefined();
    expect(await reg().linkedBlobSize('doomed', m.blobs[0]!)).toBeUndefined();
    expect(await reg().referrers('doomed', m.digest)).toEqual([]);
    expect(await reg().repositoryHasManifests('doomed')).toBe(false);
    // The blob itself stays (other repositories may link it; garbage collection takes the rest).
    expect(await reg().blobSize(m.blobs[0]!)).toBe(10);
    expect(await reg().linkedBlobSize('kept', m.blobs[0]!)).toBe(10);
    expect(await reg().tagDigest('kept', 'v1')).toBe(m.digest);

    expect(await reg().deleteRepository('doomed')).toBe(false);
    expect(await reg().deleteRepository('never-was')).toBe(false);
    // A repository of the same name starts empty.
    await reg().ensureRepository('doomed');
    expect(await reg().manifest('doomed', m.digest)).toBeUndefined();
  });

  it('repositoryHasManifests is true only once a manifest is there', async () => {
    expect(await reg().repositoryHasManifests('r')).toBe(false);
    await reg().addBlob('r', blob('b'), 1);
    expect(await reg().repositoryHasManifests('r')).toBe(false);
    const m = image('r');
    await reg().putManifest('r', m, []);
    expect(await reg().repositoryHasManifests('r')).toBe(true);
    await reg().deleteManifest('r', m.digest);
    expect(await reg().repositoryHasManifests('r')).toBe(false);
  });

  it('ping answers', async () => {
    await expect(reg().ping()).resolves.toBeUndefined();
  });
});

describeIndex('RegistryIndex: blobs', (fixture) => {
  const reg = (): RegistryIndex => fixture().index.registry;

  it('addBlob records the blob and links it into that repository only', async () => {
    const d = blob('one');
    expect(await reg().blobSize(d)).toBeUndefined();
    await reg().addBlob('a', d, 1234, 5_000);
    expect(await reg().blobSize(d)).toBe(1234);
    expect(await reg().linkedBlobSize('a', d)).toBe(1234);
    expect(await reg().linkedBlobSize('b', d)).toBeUndefined();
    expect(await reg().anyLinkedBlobSize(d)).toBe(1234);
    // Again, and into a second repository: no error, one blob.
    await reg().addBlob('a', d, 1234);
    await reg().addBlob('b', d, 1234);
    expect(await reg().linkedBlobSize('b', d)).toBe(1234);
  });

  it('sizes beyond 32 bits come back as numbers', async () => {
    const d = blob('huge');
    const size = 6 * 1024 ** 3 + 7;
    await reg().addBlob('a', d, size);
    expect(await reg().blobSize(d)).toBe(size);
    expect(await reg().linkedBlobSize('a', d)).toBe(size);
    expect(await reg().anyLinkedBlobSize(d)).toBe(size);
    const id = (await reg().repositoryId('a'))!;
    expect(await reg().linkedBlobSizes(id, [d])).toEqual(new Map([[d, size]]));
    expect(await reg().blobRepositories(d, '', 10)).toEqual([{ name: 'a', size }]);
  });

  it('blobRepositories lists the repositories linking a blob, sorted, after a name, at most limit', async () => {
    const d = blob('shared');
    for (const name of ['c', 'a', 'B', 'a/b', 'b']) await reg().addBlob(name, d, 7);
    await reg().addBlob('other', blob('other'), 1);
    expect(await reg().blobRepositories(d, '', 10)).toEqual(byteSorted(['c', 'a', 'B', 'a/b', 'b']).map((name) => ({ name, size: 7 })));
    expect(await reg().blobRepositories(d, 'a', 2)).toEqual([
      { name: 'a/b', size: 7 },
      { name: 'b', size: 7 },
    ]);
    expect(await reg().blobRepositories(d, 'c', 10)).toEqual([]);
    expect(await reg().blobRepositories(blob('unknown'), '', 10)).toEqual([]);
  });

  it('unlinkBlob removes the link only: the blob stays, other links stay', async () => {
    const d = blob('u');
    await reg().addBlob('a', d, 5);
    await reg().addBlob('b', d, 5);
    expect(await reg().unlinkBlob('a', d)).toBe(true);
    expect(await reg().unlinkBlob('a', d)).toBe(false);
    expect(await reg().unlinkBlob('nowhere', d)).toBe(false);
    expect(await reg().linkedBlobSize('a', d)).toBeUndefined();
    expect(await reg().linkedBlobSize('b', d)).toBe(5);
    expect(await reg().anyLinkedBlobSize(d)).toBe(5);
    expect(await reg().unlinkBlob('b', d)).toBe(true);
    expect(await reg().anyLinkedBlobSize(d)).toBeUndefined();
    expect(await reg().blobSize(d)).toBe(5);
    expect(await reg().repositoryId('a')).toBeDefined();
  });

  it('insertBlob records a blob without linking it, and keeps a known one', async () => {
    const d = blob('reindexed');
    await reg().insertBlob(d, 99, 1_000);
    expect(await reg().blobSize(d)).toBe(99);
    expect(await reg().anyLinkedBlobSize(d)).toBeUndefined();
    expect(await reg().blobRepositories(d, '', 10)).toEqual([]);
    await reg().insertBlob(d, 99, 2_000);
    expect(await reg().blobSize(d)).toBe(99);
    expect(await reg().catalog('', 10)).toEqual([]);
  });

  it('linkedBlobSizes gives the linked ones among the digests asked', async () => {
    const [x, y, z] = [blob('x'), blob('y'), blob('z')];
    await reg().addBlob('r', x, 1);
    await reg().addBlob('r', y, 2);
    await reg().addBlob('elsewhere', z, 3);
    const id = (await reg().repositoryId('r'))!;
    expect(await reg().linkedBlobSizes(id, [x, y, z, blob('missing')])).toEqual(
      new Map([
        [x, 1],
        [y, 2],
      ]),
    );
    expect(await reg().linkedBlobSizes(id, [y, y])).toEqual(new Map([[y, 2]]));
    expect(await reg().linkedBlobSizes(id, [])).toEqual(new Map());
    expect(await reg().linkedBlobSizes(undefined, [x])).toEqual(new Map());
  });
});

describeIndex('RegistryIndex: manifests and tags', (fixture) => {
  const reg = (): RegistryIndex => fixture().index.registry;

  it('putManifest stores the manifest, records it as a blob and points the tags at it', async () => {
    const m = image('one');
    await reg().putManifest('r', m, ['latest', 'v1'], 10_000);
    const row = await reg().manifest('r', m.digest);
    expect(row).toMatchObject({ digest: m.digest, mediaType: m.mediaType, size: m.content.length });
    expect(typeof row!.id).toBe('number');
    expect(Buffer.isBuffer(row!.content)).toBe(true);
    expect(row!.content.equals(m.content)).toBe(true);
    expect(await reg().manifestByTag('r', 'latest')).toEqual(row);
    expect(await reg().manifestByTag('r', 'v1')).toEqual(row);
    expect(await reg().manifestByTag('r', 'v2')).toBeUndefined();
    expect(await reg().tagDigest('r', 'v1')).toBe(m.digest);
    expect((await reg().tagsOf('r', m.digest)).sort()).toEqual(['latest', 'v1']);
    expect(await reg().blobSize(m.digest)).toBe(m.content.length);

    const id = (await reg().repositoryId('r'))!;
    expect(await reg().hasManifest(id, m.digest)).toBe(true);
    expect(await reg().hasManifest(id, image('other').digest)).toBe(false);
    expect(await reg().hasManifest(undefined, m.digest)).toBe(false);
    expect(await reg().manifest('elsewhere', m.digest)).toBeUndefined();
  });

  it('keeps the content byte for byte (not re-encoded JSON)', async () => {
    const content = Buffer.from('{ "schemaVersion" : 2,\n  "z": "\u00e9\u0000", "a": 1 }\n', 'utf8');
    const m = { ...image('raw'), content, digest: 'sha256:' + '1'.repeat(64) };
    await reg().putManifest('r', m, ['t']);
    const row = await reg().manifest('r', m.digest);
    expect(row!.content.equals(content)).toBe(true);
    expect(row!.size).toBe(content.length);
  });

  it('putManifest is idempotent: a known manifest keeps its row and time, only the tags move', async () => {
    const m = image('same');
    await reg().putManifest('r', m, ['a'], 1_000);
    const first = await reg().manifest('r', m.digest);
    const id = (await reg().repositoryId('r'))!;
    await reg().putManifest('r', { ...m, mediaType: DOCKER_MANIFEST, artifactType: 'application/x-other' }, ['b'], 9_000);
    const second = await reg().manifest('r', m.digest);
    expect(second).toEqual(first);
    expect(second!.mediaType).toBe(m.mediaType);
    const img = await fixture().index.images.image(id, m.digest);
    expect(img!.createdAt).toBe(1_000);
    expect(img!.artifactType).toBe(m.artifactType);
    expect((await reg().tagsOf('r', m.digest)).sort()).toEqual(['a', 'b']);
  });

  it('the same manifest in two repositories is two rows', async () => {
    const m = image('twice');
    await reg().putManifest('a', m, ['x'], 1_000);
    await reg().putManifest('b', m, ['y'], 2_000);
    const [ra, rb] = [await reg().manifest('a', m.digest), await reg().manifest('b', m.digest)];
    expect(ra!.id).not.toBe(rb!.id);
    expect(await reg().tagsOf('a', m.digest)).toEqual(['x']);
    expect(await reg().tagsOf('b', m.digest)).toEqual(['y']);
    expect(await reg().deleteManifest('a', m.digest)).toBe(true);
    expect(await reg().manifest('b', m.digest)).toEqual(rb);
  });

  it('a tag moves to the manifest put last with it', async () => {
    const [m1, m2] = [image('1'), image('2')];
    await reg().putManifest('r', m1, ['latest', 'v1']);
    await reg().putManifest('r', m2, ['latest']);
    expect(await reg().tagDigest('r', 'latest')).toBe(m2.digest);
    expect(await reg().tagsOf('r', m1.digest)).toEqual(['v1']);
    expect(await reg().tagsOf('r', m2.digest)).toEqual(['latest']);
    expect((await reg().manifestByTag('r', 'latest'))!.digest).toBe(m2.digest);
    // Moving it back onto a known manifest.
    await reg().putManifest('r', m1, ['latest']);
    expect(await reg().tagDigest('r', 'latest')).toBe(m1.digest);
    expect(await reg().tagsOf('r', m2.digest)).toEqual([]);
    // Still both manifests.
    const id = (await reg().repositoryId('r'))!;
    expect(await reg().hasManifest(id, m2.digest)).toBe(true);
  });

  it('tagsOf and tagDigest of unknown repositories, manifests and tags are empty', async () => {
    expect(await reg().tagsOf('nowhere', image('x').digest)).toEqual([]);
    expect(await reg().tagDigest('nowhere', 'latest')).toBeUndefined();
    await reg().putManifest('r', image('x'), []);
    expect(await reg().tagsOf('r', image('x').digest)).toEqual([]);
    expect(await reg().tagDigest('r', 'latest')).toBeUndefined();
  });

  it('tags are per repository', async () => {
    const [m1, m2] = [image('1'), image('2')];
    await reg().putManifest('a', m1, ['latest']);
    await reg().putManifest('b', m2, ['latest']);
    expect(await reg().tagDigest('a', 'latest')).toBe(m1.digest);
    expect(await reg().tagDigest('b', 'latest')).toBe(m2.digest);
    expect(await reg().deleteTag('a', 'latest')).toBe(true);
    expect(await reg().tagDigest('b', 'latest')).toBe(m2.digest);
  });

  it('allTags lists a repository\'s tags in byte order', async () => {
    const tags = ['v1', 'V2', 'latest', '1.0', '1.0-rc', '1.0_rc', '10', 'a.b', 'A'];
    await reg().putManifest('r', image('1'), tags.slice(0, 4));
    await reg().putManifest('r', image('2'), tags.slice(4));
    await reg().putManifest('other', image('3'), ['zzz']);
    const id = (await reg().repositoryId('r'))!;
    expect(await reg().allTags(id)).toEqual(byteSorted(tags));
    expect(byteSorted(tags).slice(0, 4)).toEqual(['1.0', '1.0-rc', '1.0_rc', '10']);
    const empty = await reg().ensureRepository('empty');
    expect(await reg().allTags(empty)).toEqual([]);
  });

  it('deleteManifest removes the manifest and every tag on it, nothing else', async () => {
    const [m1, m2] = [image('1'), image('2')];
    await reg().putManifest('r', m1, ['a', 'b']);
    await reg().putManifest('r', m2, ['c']);
    expect(await reg().deleteManifest('r', m1.digest)).toBe(true);
    expect(await reg().manifest('r', m1.digest)).toBeUndefined();
    expect(await reg().tagDigest('r', 'a')).toBeUndefined();
    expect(await reg().tagDigest('r', 'b')).toBeUndefined();
    expect(await reg().tagDigest('r', 'c')).toBe(m2.digest);
    expect(await reg().allTags((await reg().repositoryId('r'))!)).toEqual(['c']);
    // The manifest's blob record stays (as blobs do).
    expect(await reg().blobSize(m1.digest)).toBe(m1.content.length);
    expect(await reg().deleteManifest('r', m1.digest)).toBe(false);
    expect(await reg().deleteManifest('nowhere', m1.digest)).toBe(false);
    // Put again, it is new: a new row.
    await reg().putManifest('r', m1, [], 50_000);
    const id = (await reg().repositoryId('r'))!;
    expect((await fixture().index.images.image(id, m1.digest))!.createdAt).toBe(50_000);
  });

  it('deleteManifest removes what the manifest references (children, blobs)', async () => {
    const child = image('child');
    const parent = indexOf('parent', [child.digest]);
    await reg().putManifest('r', child, []);
    await reg().putManifest('r', parent, ['multi']);
    const id = (await reg().repositoryId('r'))!;
    const images = fixture().index.images;
    expect(await images.childDigests(id)).toEqual(new Set([child.digest]));
    expect(await images.blobReferenced(id, child.blobs[0]!)).toBe(true);
    await reg().deleteManifest('r', parent.digest);
    expect(await images.childDigests(id)).toEqual(new Set());
    expect(await images.parentsOf(id, child.digest)).toEqual([]);
    await reg().deleteManifest('r', child.digest);
    expect(await images.blobReferenced(id, child.blobs[0]!)).toBe(false);
  });

  it('deleteManifestIf: refused keeps everything, accepted removes the manifest and returns its tags', async () => {
    const m = image('cond');
    await reg().putManifest('r', m, ['x', 'y']);
    const seen: string[][] = [];
    const refused = await reg().deleteManifestIf('r', m.digest, (tags) => {
      seen.push([...tags]);
      return false;
    });
    expect(refused).toBeUndefined();
    expect(seen.map((t) => t.sort())).toEqual([['x', 'y']]);
    expect(await reg().manifest('r', m.digest)).toBeDefined();
    expect((await reg().tagsOf('r', m.digest)).sort()).toEqual(['x', 'y']);

    const removed = await reg().deleteManifestIf('r', m.digest, (tags) => tags.length === 2);
    expect(removed?.sort()).toEqual(['x', 'y']);
    expect(await reg().manifest('r', m.digest)).toBeUndefined();
    expect(await reg().tagDigest('r', 'x')).toBeUndefined();
  });

  it('deleteManifestIf tells accept which indexes of the repository list the manifest', async () => {
    const child = image('listed');
    await reg().putManifest('r', child, []);
    await reg().putManifest('other', child, []);
    const parent = indexOf('parent', [child.digest]);
    await reg().putManifest('r', parent, ['multi']);
    await reg().putManifest('other', indexOf('elsewhere', [child.digest]), []);
    let parents: string[] = [];
    const refused = await reg().deleteManifestIf('r', child.digest, (_tags, listedBy) => {
      parents = [...listedBy];
      return listedBy.length === 0;
    });
    expect(refused).toBeUndefined();
    // Only the indexes of this repository count.
    expect(parents).toEqual([parent.digest]);
    expect(await reg().manifest('r', child.digest)).toBeDefined();
    // Once the index is gone, nothing lists it.
    expect(await reg().deleteManifestIf('r', parent.digest, () => true)).toEqual(['multi']);
    expect(await reg().deleteManifestIf('r', child.digest, (_tags, listedBy) => listedBy.length === 0)).toEqual([]);
  });

  it('deleteManifestIf of an untagged manifest gives it no tags, and of a missing one does not ask', async () => {
    const m = image('untagged');
    await reg().putManifest('r', m, []);
    expect(await reg().deleteManifestIf('r', m.digest, (tags) => tags.length === 0)).toEqual([]);
    expect(await reg().manifest('r', m.digest)).toBeUndefined();

    let asked = 0;
    const accept = () => {
      asked++;
      return true;
    };
    expect(await reg().deleteManifestIf('r', m.digest, accept)).toBeUndefined();
    expect(await reg().deleteManifestIf('nowhere', m.digest, accept)).toBeUndefined();
    expect(asked).toBe(0);
  });

  it('deleteManifestIf whose accept throws deletes nothing, passes the error on, and leaves the index usable', async () => {
    const m = image('throws');
    await reg().putManifest('r', m, ['x']);
    await expect(
      reg().deleteManifestIf('r', m.digest, () => {
        throw new Error('judge failed');
      }),
    ).rejects.toThrow('judge failed');
    expect(await reg().tagDigest('r', 'x')).toBe(m.digest);
    expect(await reg().manifest('r', m.digest)).toBeDefined();
    // Again and again: a connection or transaction left behind would show here.
    for (let i = 0; i < 12; i++) {
      await expect(
        reg().deleteManifestIf('r', m.digest, () => {
          throw new Error(`no ${i}`);
        }),
      ).rejects.toThrow(`no ${i}`);
    }
    await reg().putManifest('r', image('after'), ['y']);
    expect(await reg().deleteManifestIf('r', m.digest, () => true)).toEqual(['x']);
  });

  it('a tag named twice in one put is one tag', async () => {
    const m = image('dup-tags');
    await reg().putManifest('r', m, ['latest', 'latest', 'v1']);
    expect((await reg().tagsOf('r', m.digest)).sort()).toEqual(['latest', 'v1']);
  });

  it('a large manifest comes back whole', async () => {
    const content = Buffer.alloc(4 * 1024 * 1024 + 3);
    for (let i = 0; i < content.length; i++) content[i] = (i * 7 + 3) & 0xff;
    const m = { ...image('large'), content, digest: 'sha256:' + '2'.repeat(64) };
    await reg().putManifest('r', m, ['big']);
    const row = await reg().manifestByTag('r', 'big');
    expect(row!.size).toBe(content.length);
    expect(row!.content.equals(content)).toBe(true);
  });

  it('many calls at once on one index all complete', async () => {
    const manifests = Array.from({ length: 40 }, (_, i) => image(`burst ${i}`));
    await Promise.all(manifests.map((m, i) => reg().putManifest(`repo${i % 4}`, m, [`t${i}`])));
    const reads = await Promise.all(manifests.map((_, i) => reg().tagDigest(`repo${i % 4}`, `t${i}`)));
    expect(reads).toEqual(manifests.map((m) => m.digest));
    await Promise.all(manifests.map((m, i) => reg().addBlob(`repo${i % 4}`, m.blobs[1]!, i)));
    expect(await reg().catalog('', 10)).toEqual(['repo0', 'repo1', 'repo2', 'repo3']);
  });

  it('deleteTag removes one tag and leaves the manifest', async () => {
    const m = image('t');
    await reg().putManifest('r', m, ['a', 'b']);
    expect(await reg().deleteTag('r', 'a')).toBe(true);
    expect(await reg().deleteTag('r', 'a')).toBe(false);
    expect(await reg().deleteTag('r', 'never')).toBe(false);
    expect(await reg().deleteTag('nowhere', 'a')).toBe(false);
    expect(await reg().tagsOf('r', m.digest)).toEqual(['b']);
    expect(await reg().manifest('r', m.digest)).toBeDefined();
  });

  const watch = () =>
    new TagsVersionWatch(async () => {
      const version = await reg().tagsVersion('r');
      return { version, tags: await tagState(fixture().index, 'r') };
    });

  it('tagsVersion changes with every tag change and stays put otherwise', async () => {
    const [m1, m2] = [image('1'), image('2')];
    await reg().ensureRepository('r');
    const w = watch();
    await w.start();
    await w.unchanged('nothing');
    await reg().putManifest('r', m1, ['latest']);
    await w.changed('a new tag');
    await reg().putManifest('r', m2, ['latest']);
    await w.changed('a moved tag');
    await reg().putManifest('r', m1, ['v1', 'v2']);
    await w.changed('tags added to a known manifest');
    await reg().deleteTag('r', 'v1');
    await w.changed('deleteTag');
    await reg().deleteManifest('r', m1.digest);
    await w.changed('deleteManifest');
    await reg().putManifest('r', m1, ['v3']);
    await w.changed('put again');
    await reg().deleteManifestIf('r', m1.digest, () => true);
    await w.changed('deleteManifestIf');
    await reg().putManifest('r', m1, ['latest']);
    await w.changed('the tag moved back');

    await reg().addBlob('r', blob('b'), 1);
    await w.unchanged('addBlob');
    await reg().unlinkBlob('r', blob('b'));
    await w.unchanged('unlinkBlob');
    await reg().insertUpload('u', 'r');
    await reg().touchUpload('u');
    await reg().deleteUpload('u');
    await w.unchanged('uploads');
    await reg().manifest('r', m2.digest);
    await reg().allTags((await reg().repositoryId('r'))!);
    await w.unchanged('reads');
  });

  it('tagsVersion changes when the repository is deleted or the index cleared, and never comes back with other tags', async () => {
    const w = watch();
    await w.start();
    await reg().putManifest('r', image('1'), ['latest']);
    await w.changed('the first push');
    await reg().deleteRepository('r');
    await w.changed('deleteRepository');
    await reg().putManifest('r', image('2'), ['latest']);
    await w.changed('a push into the new repository of that name');
    await reg().clear();
    await w.changed('clear');
    await reg().putManifest('r', image('3'), ['latest']);
    await w.changed('a push after clear');
    await reg().putManifest('r', image('3'), ['v2']);
    await w.changed('another tag');
    await reg().deleteRepository('r');
    await w.changed('deleteRepository again');
    await reg().putManifest('r', image('4'), ['latest', 'v2']);
    await w.changed('a push into the third repository of that name');
  });

  it('tagsVersion of a repository that does not exist is a string', async () => {
    expect(typeof (await reg().tagsVersion('nowhere'))).toBe('string');
  });
});

describeIndex('RegistryIndex: referrers', (fixture) => {
  const reg = (): RegistryIndex => fixture().index.registry;

  it('lists the manifests whose subject is the digest, in digest order, after a cursor', async () => {
    const subject = image('subject');
    await reg().putManifest('r', subject, ['latest']);
    const refs = [1, 2, 3, 4].map((i) =>
      image(`ref${i}`, { subject: subject.digest, artifactType: `application/x-type${i % 2}`, ...(i === 1 ? { annotations: { 'org.example': 'é', n: '1' } } : {}) }),
    );
    for (const r of refs) await reg().putManifest('r', r, []);
    // Same subject in another repository, and another subject here: not listed.
    await reg().putManifest('elsewhere', image('ref-elsewhere', { subject: subject.digest }), []);
    await reg().putManifest('r', image('ref-other', { subject: image('other').digest }), []);

    const all = await reg().referrers('r', subject.digest);
    const sorted = [...refs].sort((a, b) => (a.digest < b.digest ? -1 : 1));
    expect(all.map((r) => r.digest)).toEqual(sorted.map((r) => r.digest));
    const first = all.find((r) => r.digest === refs[0]!.digest)!;
    expect(first).toMatchObject({ mediaType: refs[0]!.mediaType, size: refs[0]!.content.length, artifactType: 'application/x-type1' });
    expect(JSON.parse(first.annotations!)).toEqual({ 'org.example': 'é', n: '1' });
    expect(all.find((r) => r.digest === refs[1]!.digest)!.annotations).toBeNull();

    expect((await reg().referrers('r', subject.digest, sorted[1]!.digest)).map((r) => r.digest)).toEqual(sorted.slice(2).map((r) => r.digest));
    expect(await reg().referrers('r', subject.digest, sorted[3]!.digest)).toEqual([]);
    expect(await reg().referrers('r', image('nothing').digest)).toEqual([]);
    expect(await reg().referrers('nowhere', subject.digest)).toEqual([]);
  });

  it('a referrer without artifactType reports null, and one whose subject is absent is still listed', async () => {
    const absent = image('never pushed').digest;
    const ref = { ...image('ref', { subject: absent }), artifactType: undefined };
    await reg().putManifest('r', ref, []);
    const rows = await reg().referrers('r', absent);
    expect(rows).toEqual([{ digest: ref.digest, mediaType: ref.mediaType, size: ref.content.length, artifactType: null, annotations: null }]);
  });
});

describeIndex('RegistryIndex: uploads', (fixture) => {
  const reg = (): RegistryIndex => fixture().index.registry;

  it('insertUpload, upload, touchUpload and deleteUpload', async () => {
    await reg().insertUpload('u1', 'r', 1_000);
    expect(await reg().upload('u1')).toEqual({ id: 'u1', repository: 'r', createdAt: 1_000, updatedAt: 1_000 });
    await reg().insertUpload('u2', 'r', 1_000, 1_500);
    expect(await reg().upload('u2')).toEqual({ id: 'u2', repository: 'r', createdAt: 1_000, updatedAt: 1_500 });
    await reg().touchUpload('u1', 3_000);
    expect(await reg().upload('u1')).toEqual({ id: 'u1', repository: 'r', createdAt: 1_000, updatedAt: 3_000 });
    await reg().touchUpload('missing', 3_000);
    expect(await reg().upload('missing')).toBeUndefined();
    await reg().deleteUpload('u1');
    expect(await reg().upload('u1')).toBeUndefined();
    await reg().deleteUpload('u1');
    expect(await reg().upload('u2')).toBeDefined();
  });

  it('an upload id is unique', async () => {
    await reg().insertUpload('dup', 'r', 1_000);
    await expect(reg().insertUpload('dup', 'other', 2_000)).rejects.toThrow();
    expect(await reg().upload('dup')).toEqual({ id: 'dup', repository: 'r', createdAt: 1_000, updatedAt: 1_000 });
  });

  it('uploadsOf lists the sessions of one repository', async () => {
    await reg().insertUpload('a1', 'a');
    await reg().insertUpload('a2', 'a');
    await reg().insertUpload('b1', 'b');
    expect((await reg().uploadsOf('a')).sort()).toEqual(['a1', 'a2']);
    expect(await reg().uploadsOf('b')).toEqual(['b1']);
    expect(await reg().uploadsOf('c')).toEqual([]);
  });

  it('staleUploads lists the sessions untouched since before a time (exclusive)', async () => {
    await reg().insertUpload('old', 'r', 1_000);
    await reg().insertUpload('edge', 'r', 2_000);
    await reg().insertUpload('touched', 'r', 1_000);
    await reg().touchUpload('touched', 5_000);
    expect((await reg().staleUploads(2_000)).sort()).toEqual(['old']);
    expect((await reg().staleUploads(2_001)).sort()).toEqual(['edge', 'old']);
    expect((await reg().staleUploads(10_000)).sort()).toEqual(['edge', 'old', 'touched']);
    expect(await reg().staleUploads(0)).toEqual([]);
  });

  it('times in milliseconds since the epoch come back exact', async () => {
    const now = Date.UTC(2031, 0, 2, 3, 4, 5, 678);
    await reg().insertUpload('u', 'r', now);
    expect(await reg().upload('u')).toEqual({ id: 'u', repository: 'r', createdAt: now, updatedAt: now });
  });
});

describeIndex('RegistryIndex: clear', (fixture) => {
  it('empties what reindex rebuilds and keeps access keys, ECR settings, pull times and previews', async () => {
    const { registry: reg, accessKeys, ecr, pullTimes, previews } = fixture().index;
    const m = image('m');
    await reg.addBlob('r', m.blobs[0]!, 3);
    await reg.insertBlob(blob('loose'), 4, 1);
    await reg.putManifest('r', m, ['latest']);
    await reg.insertUpload('u', 'r', 1_000);
    await accessKeys.insert({ id: 'k1', user: 'alice', secretHash: 'h', scopes: '[]', description: null, createdAt: 1, expiresAt: null });
    await ecr.insertRepository({
      name: 'created',
      createdAt: 5,
      tagMutability: 'IMMUTABLE',
      mutabilityExclusions: '[]',
      scanOnPush: true,
      encryption: '{"encryptionType":"AES256"}',
      resourceTags: '[]',
      policy: null,
      lifecyclePolicy: '{"rules":[]}',
    });
    await ecr.insertTemplate('ROOT', '{}', 1);
    await ecr.insertPullThroughRule('hub', '{}', 1);
    await ecr.putSetting('registryPolicy', '{}');
    await pullTimes.record([{ repository: 'r', digest: m.digest, pulledAt: 7 }]);
    await previews.save({ repository: 'r', policy: '{}', status: 'COMPLETE', result: '[]', startedAt: 8 });

    await reg.clear();

    expect(await reg.catalog('', 10)).toEqual([]);
    expect(await reg.repositoryId('r')).toBeUndefined();
    expect(await reg.manifest('r', m.digest)).toBeUndefined();
    expect(await reg.tagDigest('r', 'latest')).toBeUndefined();
    expect(await reg.blobSize(m.blobs[0]!)).toBeUndefined();
    expect(await reg.blobSize(blob('loose'))).toBeUndefined();
    expect(await reg.blobSize(m.digest)).toBeUndefined();
    expect(await reg.anyLinkedBlobSize(m.blobs[0]!)).toBeUndefined();
    expect(await reg.upload('u')).toBeUndefined();
    expect(await reg.staleUploads(Number.MAX_SAFE_INTEGER)).toEqual([]);

    expect(await accessKeys.byId('k1')).toBeDefined();
    expect(await ecr.repository('created')).toMatchObject({ tagMutability: 'IMMUTABLE', scanOnPush: true });
    expect(await ecr.template('ROOT')).toBeDefined();
    expect(await ecr.pullThroughRule('hub')).toBeDefined();
    expect(await ecr.setting('registryPolicy')).toBe('{}');
    expect(await ecr.withLifecyclePolicies()).toEqual(['created']);
    expect(await pullTimes.lastPulled('r', m.digest)).toBe(7);
    expect(await previews.get('r')).toBeDefined();

    // And it fills again as reindex does.
    await reg.insertBlob(m.blobs[0]!, 3, 1);
    await reg.putManifest('r', m, ['latest']);
    expect(await reg.tagDigest('r', 'latest')).toBe(m.digest);
  });
});
