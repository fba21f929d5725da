import { expect, it } from 'vitest';
import type { ImageIdRow, ImageIndex, NewManifest, TagStatus } from '../../../src/index/contract.js';
import { describeIndex, type OpenedIndex } from './implementations.js';
import { blob, DOCKER_MANIFEST, image, indexOf } from './fixtures.js';

/** Digest order is byte order of the digests' text. */
function byDigest<T extends { digest: string }>(rows: T[]): T[] {
  return [...rows].sort((a, b) => (a.digest < b.digest ? -1 : a.digest > b.digest ? 1 : 0));
}

interface Scene {
  repoId: number;
  /** Manifests with their tags and push times. */
  put: Array<{ m: NewManifest; tags: string[]; at: number }>;
}

/** A repository with tagged and untagged manifests, and another repository beside it. */
async function scene(fixture: OpenedIndex): Promise<Scene> {
  const reg = fixture.index.registry;
  const put = [
    { m: image('a'), tags: ['latest', 'v1', 'v1.0'], at: 1_000 },
    { m: image('b'), tags: [], at: 2_000 },
    { m: image('c', { mediaType: DOCKER_MANIFEST }), tags: ['old'], at: 3_000 },
    { m: image('d'), tags: [], at: 4_000 },
    { m: image('e'), tags: ['B', 'a'], at: 5_000 },
  ];
  for (const { m, tags, at } of put) await reg.putManifest('r', m, tags, at);
  await reg.putManifest('other', image('x'), ['latest'], 9_000);
  await reg.putManifest('other', image('b'), ['b'], 9_000);
  return { repoId: (await reg.repositoryId('r'))!, put };
}

describeIndex('ImageIndex', (fixture) => {
  const images = (): ImageIndex => fixture().index.images;

  it('repositoryId matches the registry\'s', async () => {
    const { repoId } = await scene(fixture());
    expect(await images().repositoryId('r')).toBe(repoId);
    expect(await images().repositoryId('nowhere')).toBeUndefined();
  });

  it('images pages through the manifests in digest order, by tag status', async () => {
    const { repoId, put } = await scene(fixture());
    const ordered = byDigest(put.map((p) => ({ digest: p.m.digest, p })));
    const expectFor = (status: TagStatus) =>
      ordered.filter(({ p }) => status === 'ANY' || (status === 'TAGGED') === p.tags.length > 0).map((o) => o.digest);

    for (const status of ['ANY', 'TAGGED', 'UNTAGGED'] as const) {
      expect((await images().images(repoId, status, '', 100)).map((r) => r.digest), status).toEqual(expectFor(status));
      // Page by page, two at a time.
      const paged: string[] = [];
      let after = '';
      for (let pages = 0; pages < 10; pages++) {
        const page = await images().images(repoId, status, after, 2);
        expect(page.length).toBeLessThanOrEqual(2);
        if (page.length === 0) break;
        paged.push(...page.map((r) => r.digest));
        after = page[page.length - 1]!.digest;
      }
      expect(paged, status).toEqual(expectFor(status));
    }
  });

  it('an image row has what DescribeImages needs', async () => {
    const { repoId, put } = await scene(fixture());
    const c = put[2]!;
    const rows = await images().images(repoId, 'ANY', '', 100);
    const row = rows.find((r) => r.digest === c.m.digest)!;
    expect(row).toMatchObject({ digest: c.m.digest, mediaType: DOCKER_MANIFEST, artifactType: c.m.artifactType, subject: null, size: c.m.content.length, createdAt: 3_000 });
    expect(Buffer.isBuffer(row.content) && row.content.equals(c.m.content)).toBe(true);
    expect(await images().image(repoId, c.m.digest)).toEqual(row);
    expect(await images().image(repoId, image('x').digest)).toBeUndefined();
  });

  it('imageIds: one id per tag and one per untagged manifest, in (digest, tag) order', async () => {
    const { repoId, put } = await scene(fixture());
    const expected: ImageIdRow[] = byDigest(put.map((p) => ({ digest: p.m.digest, p }))).flatMap(({ digest, p }): ImageIdRow[] =>
      p.tags.length === 0 ? [{ digest, tag: null }] : [...p.tags].sort().map((tag) => ({ digest, tag })),
    );
    const start = { digest: '', tag: '' };
    expect(await images().imageIds(repoId, 'ANY', start, 100)).toEqual(expected);
    expect(await images().imageIds(repoId, 'TAGGED', start, 100)).toEqual(expected.filter((i) => i.tag !== null));
    expect(await images().imageIds(repoId, 'UNTAGGED', start, 100)).toEqual(expected.filter((i) => i.tag === null));
  });

  it('imageIds pages with the last id as the cursor and visits each id once', async () => {
    const { repoId } = await scene(fixture());
    for (const status of ['ANY', 'TAGGED', 'UNTAGGED'] as const) {
      const all = await images().imageIds(repoId, status, { digest: '', tag: '' }, 100);
      for (const size of [1, 2, 3]) {
        const paged: ImageIdRow[] = [];
        let cursor = { digest: '', tag: '' };
        for (let pages = 0; pages < 50; pages++) {
          const page = await images().imageIds(repoId, status, cursor, size);
          expect(page.length).toBeLessThanOrEqual(size);
          if (page.length === 0) break;
          paged.push(...page);
          const last = page[page.length - 1]!;
          // An untagged manifest's id is given back as tag ''.
          cursor = { digest: last.digest, tag: last.tag ?? '' };
        }
        expect(paged, `${status} by ${size}`).toEqual(all);
      }
    }
  });

  it('imageIds after a cursor in the middle of a manifest\'s tags continues with its next tag', async () => {
    const { repoId, put } = await scene(fixture());
    const a = put[0]!.m.digest; // tags latest, v1, v1.0
    const ids = await images().imageIds(repoId, 'ANY', { digest: a, tag: 'latest' }, 2);
    expect(ids).toEqual([
      { digest: a, tag: 'v1' },
      { digest: a, tag: 'v1.0' },
    ]);
    expect((await images().imageIds(repoId, 'TAGGED', { digest: a, tag: 'v1' }, 1))[0]).toEqual({ digest: a, tag: 'v1.0' });
    // A cursor on an untagged manifest has passed it.
    const b = put[1]!.m.digest;
    const afterB = await images().imageIds(repoId, 'ANY', { digest: b, tag: '' }, 100);
    expect(afterB.some((i) => i.digest === b)).toBe(false);
    expect(afterB.every((i) => i.digest > b)).toBe(true);
    const untaggedAfterB = await images().imageIds(repoId, 'UNTAGGED', { digest: b, tag: '' }, 100);
    expect(untaggedAfterB.every((i) => i.digest > b && i.tag === null)).toBe(true);
  });

  it('imagesByDigest gives the repository\'s manifests among the digests', async () => {
    const { repoId, put } = await scene(fixture());
    const [a, b] = [put[0]!.m.digest, put[1]!.m.digest];
    const found = await images().imagesByDigest(repoId, [a, b, a, image('x').digest, 'sha256:' + '0'.repeat(64)]);
    expect([...found.keys()].sort()).toEqual([a, b].sort());
    expect(found.get(a)).toEqual(await images().image(repoId, a));
    expect(found.get(b)!.createdAt).toBe(2_000);
    expect(await images().imagesByDigest(repoId, [])).toEqual(new Map());
  });

  it('imagesByDigest takes many digests at once', async () => {
    const { repoId, put } = await scene(fixture());
    const many = Array.from({ length: 1_000 }, (_, i) => blob(`missing ${i}`));
    many.splice(500, 0, put[3]!.m.digest);
    const found = await images().imagesByDigest(repoId, many);
    expect([...found.keys()]).toEqual([put[3]!.m.digest]);
  });

  it('tagDigest, tagsOf and allTags by repository id', async () => {
    const { repoId, put } = await scene(fixture());
    const [a, b, c, , e] = put.map((p) => p.m.digest);
    expect(await images().tagDigest(repoId, 'v1')).toBe(a);
    expect(await images().tagDigest(repoId, 'b')).toBeUndefined(); // only in 'other'
    const tags = await images().tagsOf(repoId, [a!, b!, e!, image('x').digest]);
    expect(tags).toEqual(
      new Map([
        [a!, ['latest', 'v1', 'v1.0']],
        [e!, ['B', 'a']],
      ]),
    );
    expect(await images().tagsOf(repoId, [])).toEqual(new Map());
    const all = await images().allTags(repoId);
    expect(all).toEqual(
      new Map([
        [a!, ['latest', 'v1', 'v1.0']],
        [c!, ['old']],
        [e!, ['B', 'a']],
      ]),
    );
    const empty = await fixture().index.registry.ensureRepository('empty');
    expect(await images().allTags(empty)).toEqual(new Map());
  });

  it('manifestFacts lists every manifest without content, in digest order', async () => {
    const { repoId, put } = await scene(fixture());
    const subject = put[0]!.m.digest;
    const ref = image('sig', { subject, artifactType: 'application/x-sig' });
    await fixture().index.registry.putManifest('r', ref, [], 6_000);
    const facts = await images().manifestFacts(repoId);
    const expected = byDigest([
      ...put.map((p) => ({ digest: p.m.digest, subject: null as string | null, createdAt: p.at })),
      { digest: ref.digest, subject, createdAt: 6_000 },
    ]);
    expect(facts).toEqual(expected);
  });

  it('childDigests and parentsOf follow image indexes within the repository', async () => {
    const reg = fixture().index.registry;
    const [amd, arm, shared] = [image('amd64'), image('arm64'), image('shared')];
    for (const m of [amd, arm, shared]) await reg.putManifest('r', m, []);
    const i1 = indexOf('i1', [amd.digest, shared.digest]);
    const i2 = indexOf('i2', [arm.digest, shared.digest]);
    await reg.putManifest('r', i1, ['one']);
    await reg.putManifest('r', i2, ['two']);
    // The same index elsewhere does not count here.
    await reg.putManifest('other', indexOf('i3', [amd.digest]), []);
    const repoId = (await reg.repositoryId('r'))!;
    expect(await images().childDigests(repoId)).toEqual(new Set([amd.digest, arm.digest, shared.digest]));
    expect(await images().parentsOf(repoId, shared.digest)).toEqual([i1.digest, i2.digest].sort());
    expect(await images().parentsOf(repoId, amd.digest)).toEqual([i1.digest]);
    expect(await images().parentsOf(repoId, i1.digest)).toEqual([]);
    // A child the repository does not hold is still a child.
    const dangling = indexOf('dangling', [image('absent').digest]);
    await reg.putManifest('r', dangling, []);
    expect((await images().childDigests(repoId)).has(image('absent').digest)).toBe(true);
  });

  it('blobReferenced: a config or layer of a manifest of this repository', async () => {
    const reg = fixture().index.registry;
    const m = image('m');
    const child = image('child');
    await reg.putManifest('r', m, []);
    await reg.putManifest('other', child, []);
    await reg.putManifest('r', indexOf('idx', [child.digest]), []);
    const repoId = (await reg.repositoryId('r'))!;
    expect(await images().blobReferenced(repoId, m.blobs[0]!)).toBe(true);
    expect(await images().blobReferenced(repoId, m.blobs[1]!)).toBe(true);
    // A child manifest is not a blob reference; another repository's layers are not this one's.
    expect(await images().blobReferenced(repoId, child.digest)).toBe(false);
    expect(await images().blobReferenced(repoId, child.blobs[0]!)).toBe(false);
    expect(await images().blobReferenced(repoId, blob('nothing'))).toBe(false);
  });

  it('a manifest listing a blob twice is stored once per blob', async () => {
    const reg = fixture().index.registry;
    const layer = blob('dup');
    const m = image('dup', { blobs: [blob('cfg'), layer, layer] });
    await reg.putManifest('r', m, ['t']);
    const repoId = (await reg.repositoryId('r'))!;
    expect(await images().blobReferenced(repoId, layer)).toBe(true);
    expect(await reg.deleteManifest('r', m.digest)).toBe(true);
    expect(await images().blobReferenced(repoId, layer)).toBe(false);
  });

  it('referrers: by subject, after a digest, at most limit, of the artifact types asked', async () => {
    const reg = fixture().index.registry;
    const subject = image('subject');
    await reg.putManifest('r', subject, ['latest']);
    const refs = Array.from({ length: 6 }, (_, i) =>
      image(`ref${i}`, { subject: subject.digest, artifactType: i % 3 === 0 ? 'application/x-sbom' : i % 3 === 1 ? 'application/x-sig' : 'application/x-att' }),
    );
    for (const r of refs) await reg.putManifest('r', r, []);
    await reg.putManifest('other', image('ref-other', { subject: subject.digest }), []);
    const repoId = (await reg.repositoryId('r'))!;
    const sorted = byDigest(refs);

    const all = await images().referrers(repoId, subject.digest, '', 100);
    expect(all.map((r) => r.digest)).toEqual(sorted.map((r) => r.digest));
    expect(all[0]).toEqual({ digest: sorted[0]!.digest, mediaType: sorted[0]!.mediaType, size: sorted[0]!.content.length, artifactType: sorted[0]!.artifactType, annotations: null });
    expect((await images().referrers(repoId, subject.digest, '', 2)).map((r) => r.digest)).toEqual(sorted.slice(0, 2).map((r) => r.digest));
    expect((await images().referrers(repoId, subject.digest, sorted[3]!.digest, 100)).map((r) => r.digest)).toEqual(
      sorted.slice(4).map((r) => r.digest),
    );
    const types = ['application/x-sig', 'application/x-att'];
    expect((await images().referrers(repoId, subject.digest, '', 100, types)).map((r) => r.digest)).toEqual(
      sorted.filter((r) => types.includes(r.artifactType!)).map((r) => r.digest),
    );
    expect((await images().referrers(repoId, subject.digest, '', 100, ['application/x-none'])).length).toBe(0);
    // No types, or an empty list: every type.
    expect((await images().referrers(repoId, subject.digest, '', 100, [])).length).toBe(6);
    expect(await images().referrers(repoId, image('none').digest, '', 100)).toEqual([]);
  });
});
