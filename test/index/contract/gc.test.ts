// The index side of garbage collection (GcIndex, and the RegistryIndex methods it changes): the
// blob state machine live → candidate → deleting → gone, holds, take-backs, the checked push, the
// graph the collector marks from, space, and what `verify` reads. Every time is passed explicitly.
import { expect, it } from 'vitest';
import {
  BlobDeletingError,
  IndexTextError,
  ManifestReferencesError,
  type BlobStateRow,
  type GcIndex,
  type Index,
  type ManifestNode,
  type NewManifest,
  type RegistryIndex,
} from '../../../src/index/contract.js';
import { describeIndex } from './implementations.js';
import { AWKWARD_NAMES, blob, byteSorted, image, indexOf } from './fixtures.js';

/** When the test's content was written: before the cutoff. */
const OLD = 1_000;
/** Marking takes what was touched before this. */
const CUTOFF = 3_000;
/** When marking and deleting run. */
const NOW = 4_000;
/** Every blob's size unless a test says otherwise. */
const SIZE = 10;
const CHECKED = { checkReferences: true };
/** The start of a (repository, digest) keyset listing. */
const FIRST = { repository: '', digest: '' };

/** Links the blobs of `m` into `repo` and pushes it as a client does (checked). */
async function push(index: Index, repo: string, m: NewManifest, tags: string[], now: number): Promise<void> {
  for (const d of new Set(m.blobs)) await index.registry.addBlob(repo, d, SIZE, now);
  await index.registry.putManifest(repo, m, tags, now, CHECKED);
}

/**
 * Links a blob into `repos` and makes it a candidate (at 2_000) and then 'deleting' (at 2_500);
 * the marking takes whatever else is markable by then too.
 */
async function deletingBlob(index: Index, repos: string[], digest: string, size = SIZE): Promise<void> {
  for (const repo of repos) await index.registry.addBlob(repo, digest, size, OLD);
  await index.gc.markCandidates(CUTOFF, 2_000);
  expect(await index.gc.beginDeleting([digest], 2_500)).toEqual([{ digest, size, repositories: byteSorted(repos) }]);
}

/** What a promise rejected with (undefined if it resolved). */
async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => undefined,
    (err: unknown) => err,
  );
}

/** Every row of a keyset-paged listing, `limit` at a time, each page checked to hold at most `limit`. */
async function allPages<R, K>(page: (after: K, limit: number) => Promise<R[]>, start: K, keyOf: (row: R) => K, limit: number): Promise<R[]> {
  const rows: R[] = [];
  let after = start;
  for (let pages = 0; pages < 200; pages++) {
    const got = await page(after, limit);
    expect(got.length).toBeLessThanOrEqual(limit);
    if (got.length === 0) return rows;
    rows.push(...got);
    after = keyOf(got[got.length - 1]!);
  }
  throw new Error('the listing did not end within 200 pages');
}

/** Compares by UTF-8 bytes, as the index orders text. */
function byteCompare(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

function live(digest: string, size: number, touchedAt: number, heldUntil: number | null = null): BlobStateRow {
  return { digest, size, state: 'live', touchedAt, stateAt: null, heldUntil };
}

describeIndex('GcIndex: the blob state machine', (fixture) => {
  const reg = (): RegistryIndex => fixture().index.registry;
  const gc = (): GcIndex => fixture().index.gc;

  it('claimBlob records a new blob, held, without linking it; blobState reads every field', async () => {
    const d = blob('claimed');
    expect(await gc().blobState(d)).toBeUndefined();
    expect(await gc().claimBlob(d, 5, OLD, 9_000)).toBe(true);
    expect(await gc().blobState(d)).toEqual(live(d, 5, OLD, 9_000));
    expect(await reg().blobSize(d)).toBe(5);
    expect(await reg().anyLinkedBlobSize(d)).toBeUndefined();
    expect(await reg().catalog('', 10)).toEqual([]);
  });

  it('a held blob is not marked until its hold has passed', async () => {
    const d = blob('held');
    await gc().claimBlob(d, 5, OLD, 5_000);
    expect(await gc().unreferencedBlobs(CUTOFF, 4_999, '', 10)).toEqual([]);
    expect(await gc().markCandidates(CUTOFF, 4_999)).toEqual({ count: 0, bytes: 0 });
    expect((await gc().blobState(d))!.state).toBe('live');
    // A hold ends at its time: a blob held until `now` is no longer held.
    expect(await gc().unreferencedBlobs(CUTOFF, 5_000, '', 10)).toEqual([{ digest: d, size: 5 }]);
    expect(await gc().markCandidates(CUTOFF, 5_000)).toEqual({ count: 1, bytes: 5 });
    expect(await gc().blobState(d)).toEqual({ digest: d, size: 5, state: 'candidate', touchedAt: OLD, stateAt: 5_000, heldUntil: 5_000 });
  });

  it('addBlob touches the blob and leaves the hold to its release', async () => {
    const d = blob('uploaded');
    await gc().claimBlob(d, 5, OLD, 1e12);
    await reg().addBlob('r', d, 5, 2_000);
    expect(await gc().blobState(d)).toEqual(live(d, 5, 2_000, 1e12));
    expect(await gc().markCandidates(CUTOFF, NOW)).toEqual({ count: 0, bytes: 0 });
    await gc().releaseBlob(d);
    expect(await gc().blobState(d)).toEqual(live(d, 5, 2_000));
    expect(await reg().linkedBlobSize('r', d, NOW)).toBe(5);
    // Linked but used by no manifest: markable once the grace window has passed.
    expect(await gc().markCandidates(CUTOFF, NOW)).toEqual({ count: 1, bytes: 5 });
  });

  it('two claims of one blob hold it until both are released', async () => {
    const d = blob('uploaded twice');
    await gc().claimBlob(d, 5, OLD, 9_000);
    await gc().claimBlob(d, 5, OLD, 8_000);
    await reg().addBlob('r', d, 5, OLD);
    await gc().releaseBlob(d);
    // The other write is still in flight, held until the later of the two times.
    expect(await gc().blobState(d)).toEqual(live(d, 5, OLD, 9_000));
    expect(await gc().markCandidates(CUTOFF, NOW)).toEqual({ count: 0, bytes: 0 });
    await gc().releaseBlob(d);
    expect(await gc().blobState(d)).toEqual(live(d, 5, OLD));
    // A release too many changes nothing.
    await gc().releaseBlob(d);
    expect(await gc().blobState(d)).toEqual(live(d, 5, OLD));
    expect(await gc().markCandidates(CUTOFF, NOW)).toEqual({ count: 1, bytes: 5 });
  });

  it('a hold whose time has passed (its writer died) does not count against a new claim', async () => {
    const d = blob('abandoned claim');
    await gc().claimBlob(d, 5, OLD, 2_000);
    // Long after: a new write claims it, and its release ends the hold.
    await gc().claimBlob(d, 5, 2_500, 9_000);
    await gc().releaseBlob(d);
    expect(await gc().blobState(d)).toEqual(live(d, 5, 2_500));
  });

  it("putManifest touches the manifest's own bytes and leaves the hold to its release", async () => {
    const m = image('held manifest');
    await gc().claimBlob(m.digest, m.content.length, OLD, 1e12);
    await push(fixture().index, 'r', m, [], 2_000);
    expect(await gc().blobState(m.digest)).toEqual(live(m.digest, m.content.length, 2_000, 1e12));
    await gc().releaseBlob(m.digest);
    expect(await gc().blobState(m.digest)).toEqual(live(m.digest, m.content.length, 2_000));
    // Unchecked (reindex) too.
    await reg().putManifest('r', m, ['v1'], 2_200);
    expect(await gc().blobState(m.digest)).toEqual(live(m.digest, m.content.length, 2_200));
    // Once no repository has it as a manifest, it is an unreferenced blob like any other.
    expect(await reg().deleteManifest('r', m.digest)).toBe(true);
    await gc().markCandidates(CUTOFF, NOW);
    expect((await gc().blobState(m.digest))!.state).toBe('candidate');
  });

  it('claimBlob on a live blob touches it and holds it, leaving its links', async () => {
    const d = blob('live');
    await reg().addBlob('r', d, 5, OLD);
    expect(await gc().claimBlob(d, 5, 2_000, 9_000)).toBe(true);
    expect(await gc().blobState(d)).toEqual(live(d, 5, 2_000, 9_000));
    expect(await reg().linkedBlobSize('r', d, 2_000)).toBe(5);
  });

  it('claimBlob on a candidate takes it back', async () => {
    const d = blob('candidate');
    await reg().addBlob('r', d, 5, OLD);
    await gc().markCandidates(CUTOFF, NOW);
    expect((await gc().blobState(d))!.state).toBe('candidate');
    expect(await gc().claimBlob(d, 5, 5_000, 9_000)).toBe(true);
    expect(await gc().blobState(d)).toEqual(live(d, 5, 5_000, 9_000));
    expect(await gc().candidates('', 10)).toEqual([]);
    expect(await gc().beginDeleting([d], 5_001)).toEqual([]);
  });

  it('claimBlob on a blob being deleted returns false and changes nothing', async () => {
    const d = blob('deleting');
    await deletingBlob(fixture().index, ['r'], d);
    const before = await gc().blobState(d);
    expect(before).toEqual({ digest: d, size: SIZE, state: 'deleting', touchedAt: OLD, stateAt: 2_500, heldUntil: null });
    expect(await gc().claimBlob(d, SIZE, NOW, 9_000)).toBe(false);
    expect(await gc().blobState(d)).toEqual(before);
  });

  it('releaseBlob ends a hold and nothing else', async () => {
    const d = blob('released');
    await gc().claimBlob(d, 5, OLD, 1e12);
    await gc().releaseBlob(d);
    expect(await gc().blobState(d)).toEqual(live(d, 5, OLD));
    expect(await gc().markCandidates(CUTOFF, NOW)).toEqual({ count: 1, bytes: 5 });
    await gc().releaseBlob(d);
    expect(await gc().blobState(d)).toEqual({ digest: d, size: 5, state: 'candidate', touchedAt: OLD, stateAt: NOW, heldUntil: null });
    // An unknown blob: nothing to release, and nothing is recorded.
    await gc().releaseBlob(blob('unknown'));
    expect(await gc().blobState(blob('unknown'))).toBeUndefined();
  });

  it('insertBlob touches a blob now, not at its creation time (a reindex gives file times)', async () => {
    const d = blob('reindexed');
    const before = Date.now();
    await reg().insertBlob(d, 5, OLD);
    const row = (await gc().blobState(d))!;
    expect(row.touchedAt).toBeGreaterThanOrEqual(before);
    expect(row.touchedAt).toBeLessThanOrEqual(Date.now());
    expect(await gc().markCandidates(before - 1, before)).toEqual({ count: 0, bytes: 0 });
  });

  it('a touch never moves a blob back in time', async () => {
    const d = blob('touched late');
    await reg().addBlob('r', d, 5, 5_000);
    await reg().addBlob('r', d, 5, OLD);
    await gc().claimBlob(d, 5, OLD, OLD);
    await reg().putManifest('r', image('user', { blobs: [d] }), [], OLD, CHECKED);
    expect((await gc().blobState(d))!.touchedAt).toBe(5_000);
  });
});

describeIndex('GcIndex: marking', (fixture) => {
  const reg = (): RegistryIndex => fixture().index.registry;
  const gc = (): GcIndex => fixture().index.gc;

  it('marks only unreferenced, unheld, live blobs touched before the cutoff, and says how many and how big', async () => {
    const index = fixture().index;
    // Already a candidate, and already being deleted, before this marking.
    const earlier = blob('earlier candidate');
    await reg().addBlob('r1', earlier, 1, OLD);
    const going = blob('being deleted');
    await deletingBlob(index, ['r1'], going, 2);
    expect((await gc().blobState(earlier))!.stateAt).toBe(2_000);

    const kept = image('kept');
    await push(index, 'r1', kept, ['v1'], OLD);
    // Linked into r1 only, used only by a manifest of r2 (pushed unchecked): referenced.
    const elsewhere = blob('used elsewhere');
    await reg().addBlob('r1', elsewhere, 30, OLD);
    const user = image('user', { blobs: [elsewhere] });
    await reg().putManifest('r2', user, [], OLD);
    const loose = blob('loose');
    await reg().addBlob('r1', loose, 100, OLD);
    const orphan = blob('never linked');
    await reg().insertBlob(orphan, 7, OLD, OLD);
    const holdOver = blob('hold over');
    await gc().claimBlob(holdOver, 50, OLD, NOW);
    const held = blob('held');
    await gc().claimBlob(held, 1_000, OLD, NOW + 1);
    const fresh = blob('fresh');
    await reg().addBlob('r1', fresh, 1_000, 3_500);
    const edge = blob('touched at the cutoff');
    await reg().addBlob('r1', edge, 1_000, CUTOFF);

    const expected = [
      { digest: loose, size: 100 },
      { digest: orphan, size: 7 },
      { digest: holdOver, size: 50 },
    ].sort((a, b) => byteCompare(a.digest, b.digest));
    // The dry run lists exactly what marking takes, in pages.
    expect(await gc().unreferencedBlobs(CUTOFF, NOW, '', 100)).toEqual(expected);
    expect(await allPages((after, limit) => gc().unreferencedBlobs(CUTOFF, NOW, after, limit), '', (r) => r.digest, 1)).toEqual(expected);
    expect(await gc().unreferencedBlobs(CUTOFF, NOW, expected[0]!.digest, 100)).toEqual(expected.slice(1));

    expect(await gc().markCandidates(CUTOFF, NOW)).toEqual({ count: 3, bytes: 157 });
    for (const { digest, size } of expected) {
      expect(await gc().blobState(digest)).toMatchObject({ digest, size, state: 'candidate', stateAt: NOW });
    }
    for (const d of [...kept.blobs, kept.digest, elsewhere, user.digest, held, fresh, edge]) {
      expect((await gc().blobState(d))!.state).toBe('live');
    }
    expect(await gc().blobState(earlier)).toMatchObject({ state: 'candidate', stateAt: 2_000 });
    expect(await gc().blobState(going)).toMatchObject({ state: 'deleting', stateAt: 2_500 });

    // Again: nothing new to take.
    expect(await gc().unreferencedBlobs(CUTOFF, NOW, '', 100)).toEqual([]);
    expect(await gc().markCandidates(CUTOFF, NOW)).toEqual({ count: 0, bytes: 0 });
    // Once its hold has passed, the held blob is taken; the candidates keep their time.
    expect(await gc().markCandidates(CUTOFF, NOW + 1)).toEqual({ count: 1, bytes: 1_000 });
    expect(await gc().blobState(held)).toMatchObject({ state: 'candidate', stateAt: NOW + 1 });
    expect(await gc().blobState(loose)).toMatchObject({ state: 'candidate', stateAt: NOW });

    const candidates = byteSorted([earlier, held, ...expected.map((e) => e.digest)]);
    expect(await gc().candidates('', 100)).toEqual(candidates);
    expect(await allPages((after, limit) => gc().candidates(after, limit), '', (d) => d, 3)).toEqual(candidates);
    expect(await gc().candidates(candidates[1]!, 2)).toEqual(candidates.slice(2, 4));
    expect(await gc().candidates(candidates[candidates.length - 1]!, 2)).toEqual([]);
  });

  it("a manifest's own bytes are not marked, in whichever repository it is", async () => {
    const m = image('manifest');
    await reg().putManifest('a', m, [], OLD);
    const list = indexOf('list', [m.digest]);
    await reg().putManifest('b', list, [], OLD);
    expect(await gc().unreferencedBlobs(CUTOFF, NOW, '', 10)).toEqual([]);
    expect(await gc().markCandidates(CUTOFF, NOW)).toEqual({ count: 0, bytes: 0 });
  });
});

describeIndex('GcIndex: take-back and deletion', (fixture) => {
  const reg = (): RegistryIndex => fixture().index.registry;
  const gc = (): GcIndex => fixture().index.gc;

  /** A blob linked into `repo` and made a candidate at NOW. */
  async function candidate(repo: string, digest: string, size = SIZE): Promise<void> {
    await reg().addBlob(repo, digest, size, OLD);
    await gc().markCandidates(CUTOFF, NOW);
    expect((await gc().blobState(digest))!.state).toBe('candidate');
  }

  it('linkedBlobSize takes a candidate back: it gives the size and the blob is live again', async () => {
    const d = blob('looked at');
    await candidate('r', d, 9);
    expect(await reg().linkedBlobSize('r', d, 5_000)).toBe(9);
    expect(await gc().blobState(d)).toEqual(live(d, 9, 5_000));
    expect(await gc().beginDeleting([d], 5_001)).toEqual([]);
    expect(await gc().blobState(d)).toEqual(live(d, 9, 5_000));
  });

  it('addBlob takes a candidate back', async () => {
    const d = blob('uploaded again');
    await candidate('r', d);
    await reg().addBlob('other', d, SIZE, 5_000);
    expect(await gc().blobState(d)).toEqual(live(d, SIZE, 5_000));
    expect(await gc().beginDeleting([d], 5_001)).toEqual([]);
    expect(await reg().blobRepositories(d, '', 10)).toEqual([
      { name: 'other', size: SIZE },
      { name: 'r', size: SIZE },
    ]);
  });

  it('a checked putManifest takes back the candidates it references', async () => {
    const m = image('pushed late');
    for (const d of m.blobs) await reg().addBlob('r', d, SIZE, OLD);
    expect(await gc().markCandidates(CUTOFF, NOW)).toEqual({ count: 2, bytes: 2 * SIZE });
    await reg().putManifest('r', m, ['v1'], 5_000, CHECKED);
    for (const d of m.blobs) expect(await gc().blobState(d)).toEqual(live(d, SIZE, 5_000));
    expect(await gc().candidates('', 10)).toEqual([]);
    expect(await gc().beginDeleting(m.blobs, 5_001)).toEqual([]);
    expect(await reg().tagDigest('r', 'v1')).toBe(m.digest);
  });

  it('a blob being deleted reads as absent everywhere, and is not taken back by a look', async () => {
    const d = blob('going');
    await deletingBlob(fixture().index, ['a'], d, 9);
    const before = await gc().blobState(d);
    expect(await reg().linkedBlobSize('a', d, NOW)).toBeUndefined();
    expect(await reg().anyLinkedBlobSize(d)).toBeUndefined();
    expect(await reg().blobRepositories(d, '', 10)).toEqual([]);
    expect(await reg().linkedBlobSizes((await reg().repositoryId('a'))!, [d])).toEqual(new Map());
    expect(await gc().blobState(d)).toEqual(before);
  });

  it('addBlob of a blob being deleted throws BlobDeletingError and writes nothing', async () => {
    const d = blob('going');
    await deletingBlob(fixture().index, ['a'], d);
    const before = await gc().blobState(d);
    const err = await rejection(reg().addBlob('b', d, SIZE, NOW));
    expect(err).toBeInstanceOf(BlobDeletingError);
    expect((err as BlobDeletingError).digest).toBe(d);
    expect(await reg().repositoryId('b')).toBeUndefined();
    expect(await rejection(reg().addBlob('a', d, SIZE, NOW))).toBeInstanceOf(BlobDeletingError);
    expect(await gc().links(FIRST, 10)).toEqual([{ repository: 'a', digest: d }]);
    expect(await gc().blobState(d)).toEqual(before);
  });

  it('beginDeleting takes only candidates still unreferenced and unheld, and names the repositories linking them', async () => {
    const gone = blob('gone');
    for (const repo of ['b', 'B', 'a/b', 'a']) await reg().addBlob(repo, gone, 5, OLD);
    const also = blob('also gone');
    await reg().insertBlob(also, 6, OLD, OLD);
    // Referenced after marking by a manifest written unchecked (which takes nothing back).
    const used = blob('used since');
    await reg().addBlob('r', used, 7, OLD);
    // Held (a claim dated before this deletion, while marking ran after the hold).
    const held = blob('held');
    await gc().claimBlob(held, 8, OLD, 4_500);
    expect(await gc().markCandidates(CUTOFF, 5_000)).toEqual({ count: 4, bytes: 26 });
    await reg().putManifest('r', image('user', { blobs: [used] }), [], 5_000);
    const liveOne = blob('live');
    await reg().addBlob('r', liveOne, 9, 5_000);

    const asked = [liveOne, held, used, also, gone, blob('unknown')];
    const deleting = await gc().beginDeleting([...asked].reverse(), 4_400);
    expect(deleting).toEqual(
      [
        { digest: gone, size: 5, repositories: byteSorted(['b', 'B', 'a/b', 'a']) },
        { digest: also, size: 6, repositories: [] },
      ].sort((x, y) => byteCompare(x.digest, y.digest)),
    );
    expect(await gc().blobState(gone)).toMatchObject({ state: 'deleting', stateAt: 4_400 });
    expect(await gc().blobState(also)).toMatchObject({ state: 'deleting', stateAt: 4_400 });
    // The candidates it did not take (referenced again, held) are live again, as they were.
    expect(await gc().blobState(used)).toEqual(live(used, 7, OLD));
    expect(await gc().blobState(held)).toEqual(live(held, 8, OLD, 4_500));
    expect(await gc().blobState(liveOne)).toEqual(live(liveOne, 9, 5_000));
    expect(await gc().candidates('', 10)).toEqual([]);
    expect(await gc().beginDeleting(asked, 4_500)).toEqual([]);
    // Once the hold has passed, a marking takes the held blob again, and then it goes.
    expect(await gc().markCandidates(CUTOFF, 4_600)).toEqual({ count: 1, bytes: 8 });
    expect(await gc().beginDeleting(asked, 4_700)).toEqual([{ digest: held, size: 8, repositories: [] }]);
    expect(await gc().blobState(used)).toEqual(live(used, 7, OLD));
    expect(await gc().beginDeleting([], 4_700)).toEqual([]);
  });

  it('finishDeleting removes the rows and links of blobs being deleted, and of no other', async () => {
    const gone = blob('gone');
    await deletingBlob(fixture().index, ['a', 'b'], gone);
    const cand = blob('candidate');
    await candidate('a', cand);
    const kept = blob('live');
    await reg().addBlob('a', kept, SIZE, NOW);

    await gc().finishDeleting([gone, cand, kept, blob('unknown')]);
    expect(await gc().blobState(gone)).toBeUndefined();
    expect(await reg().blobSize(gone)).toBeUndefined();
    expect(await gc().blobState(cand)).toMatchObject({ state: 'candidate' });
    expect(await gc().blobState(kept)).toEqual(live(kept, SIZE, NOW));
    expect(await gc().links(FIRST, 10)).toEqual(byteSorted([cand, kept]).map((digest) => ({ repository: 'a', digest })));
    expect(await reg().catalog('', 10)).toEqual(['a', 'b']);
    await gc().finishDeleting([]);
  });

  it('abortDeleting puts blobs being deleted back to live, touched, and leaves the others', async () => {
    const back = blob('back');
    await deletingBlob(fixture().index, ['a'], back);
    const cand = blob('candidate');
    await candidate('a', cand);
    await gc().abortDeleting([back, cand], 9_000);
    expect(await gc().blobState(back)).toEqual(live(back, SIZE, 9_000));
    expect(await reg().linkedBlobSize('a', back, 9_001)).toBe(SIZE);
    expect(await gc().blobState(cand)).toMatchObject({ state: 'candidate', stateAt: NOW, touchedAt: OLD });
    await gc().abortDeleting([], 9_000);
  });

  it('staleDeleting lists the blobs left being deleted since before a time, in pages, with their repositories', async () => {
    const [x, y, z] = [blob('x'), blob('y'), blob('z')];
    for (const d of [x, y, z]) await reg().addBlob('r', d, SIZE, OLD);
    await reg().addBlob('B', y, SIZE, OLD);
    await gc().markCandidates(CUTOFF, NOW);
    await gc().beginDeleting([x], 5_000);
    await gc().beginDeleting([y], 6_000);
    const row = (digest: string, repositories: string[]) => ({ digest, size: SIZE, repositories });
    expect(await gc().staleDeleting(5_000, '', 10)).toEqual([]);
    expect(await gc().staleDeleting(5_001, '', 10)).toEqual([row(x, ['r'])]);
    const both = [row(x, ['r']), row(y, ['B', 'r'])].sort((a, b) => byteCompare(a.digest, b.digest));
    expect(await gc().staleDeleting(9_000, '', 10)).toEqual(both);
    expect(await allPages((after, limit) => gc().staleDeleting(9_000, after, limit), '', (r) => r.digest, 1)).toEqual(both);
    // z is a candidate only.
    expect(await gc().candidates('', 10)).toEqual([z]);
  });
});

describeIndex('GcIndex: checked putManifest', (fixture) => {
  const reg = (): RegistryIndex => fixture().index.registry;
  const gc = (): GcIndex => fixture().index.gc;

  it('refuses a manifest with references the repository cannot satisfy, naming them in order, and writes nothing', async () => {
    const index = fixture().index;
    const deleting = blob('deleting');
    const cand = blob('candidate');
    await reg().addBlob('r', cand, SIZE, OLD);
    await deletingBlob(index, ['r'], deleting);
    expect((await gc().blobState(cand))!.state).toBe('candidate');
    const notHere = blob('linked elsewhere');
    await reg().addBlob('other', notHere, SIZE, NOW);
    const linked = blob('linked');
    await reg().addBlob('r', linked, SIZE, NOW);
    const missing = blob('no row at all');
    const elsewhereChild = image('child elsewhere');
    await push(index, 'other', elsewhereChild, [], NOW);
    const child = image('child');
    await push(index, 'r', child, [], NOW);
    const absentChild = image('absent child').digest;

    const m: NewManifest = {
      ...image('bad', { blobs: [notHere, linked, deleting, cand, notHere, missing] }),
      children: [elsewhereChild.digest, child.digest, absentChild],
    };
    const err = await rejection(reg().putManifest('r', m, ['t'], 5_000, CHECKED));
    expect(err).toBeInstanceOf(ManifestReferencesError);
    expect((err as ManifestReferencesError).problems).toEqual([
      { digest: notHere, reason: 'blob unknown to repository' },
      { digest: deleting, reason: 'blob unknown to repository' },
      { digest: missing, reason: 'blob unknown to repository' },
      { digest: elsewhereChild.digest, reason: 'manifest unknown to repository' },
      { digest: absentChild, reason: 'manifest unknown to repository' },
    ]);
    expect(await reg().manifest('r', m.digest)).toBeUndefined();
    expect(await reg().tagDigest('r', 't')).toBeUndefined();
    expect(await gc().blobState(m.digest)).toBeUndefined();
    expect(await gc().usersOf(linked)).toEqual([]);
    // Nothing was taken back either: the transaction wrote nothing.
    expect(await gc().blobState(cand)).toMatchObject({ state: 'candidate', touchedAt: OLD });

    // Unchecked (reindex), the same manifest is written as given.
    await reg().putManifest('r', m, ['t'], 5_000);
    expect(await reg().tagDigest('r', 't')).toBe(m.digest);
    expect(await gc().usersOf(linked)).toEqual([{ repository: 'r', digest: m.digest, tags: ['t'] }]);
    expect((await gc().blobState(deleting))!.state).toBe('deleting');
  });

  it('a refused push into a new repository does not create it', async () => {
    const m = image('nowhere', { blobs: [blob('unknown')] });
    expect(await rejection(reg().putManifest('fresh', m, ['v1'], NOW, CHECKED))).toBeInstanceOf(ManifestReferencesError);
    expect(await reg().repositoryId('fresh')).toBeUndefined();
    expect(await reg().catalog('', 10)).toEqual([]);
  });

  it('takes a manifest whose blobs are linked and whose children are manifests of the repository', async () => {
    const index = fixture().index;
    const [a, b] = [image('a'), image('b')];
    await push(index, 'r', a, [], NOW);
    await push(index, 'r', b, [], NOW);
    const list = indexOf('list', [a.digest, b.digest]);
    await reg().putManifest('r', list, ['latest'], NOW, CHECKED);
    expect(await reg().tagDigest('r', 'latest')).toBe(list.digest);
    expect(await gc().usersOf(a.digest)).toEqual([{ repository: 'r', digest: list.digest, tags: ['latest'] }]);
  });

  it("refuses a manifest whose own bytes are being deleted (BlobDeletingError); unchecked leaves that state alone", async () => {
    const m = image('own bytes going');
    await reg().insertBlob(m.digest, m.content.length, OLD, OLD);
    await gc().markCandidates(CUTOFF, 2_000);
    expect(await gc().beginDeleting([m.digest], 2_500)).toHaveLength(1);
    for (const d of m.blobs) await reg().addBlob('r', d, SIZE, NOW);
    const err = await rejection(reg().putManifest('r', m, ['v1'], NOW, CHECKED));
    expect(err).toBeInstanceOf(BlobDeletingError);
    expect((err as BlobDeletingError).digest).toBe(m.digest);
    expect(await reg().manifest('r', m.digest)).toBeUndefined();
    expect(await reg().tagDigest('r', 'v1')).toBeUndefined();

    await reg().putManifest('r', m, ['v1'], NOW);
    expect(await reg().tagDigest('r', 'v1')).toBe(m.digest);
    expect((await gc().blobState(m.digest))!.state).toBe('deleting');
  });
});

describeIndex('GcIndex: the manifest graph', (fixture) => {
  const reg = (): RegistryIndex => fixture().index.registry;
  const gc = (): GcIndex => fixture().index.gc;

  it('manifestGraph gives every manifest of the repository with its tags, children, subject and last touch', async () => {
    const index = fixture().index;
    const m1 = image('1');
    await push(index, 'r', m1, ['v1', 'B', 'a'], 1_000);
    const m2 = image('2');
    await push(index, 'r', m2, [], 2_000);
    const sig = image('sig', { subject: m1.digest, artifactType: 'application/x-sig' });
    await push(index, 'r', sig, [], 3_000);
    const list = indexOf('list', [m2.digest, m1.digest]);
    await reg().putManifest('r', list, ['latest'], 4_000, CHECKED);
    const alone = image('alone');
    await push(index, 'r', alone, [], 5_000);
    // Touches of the manifests' bytes after their push: a claim, a push into another repository, a push again.
    await gc().claimBlob(m2.digest, m2.content.length, 6_000, 7_000);
    await push(index, 'other', m1, ['x'], 9_000);
    await reg().putManifest('r', alone, [], 8_000, CHECKED);
    await push(index, 'other', image('not in r'), [], 9_000);

    const node = (m: NewManifest, touchedAt: number, tags: string[], children: string[] = []): ManifestNode => ({
      digest: m.digest,
      subject: m.subject ?? null,
      touchedAt,
      tags,
      children,
    });
    const expected = [
      node(m1, 9_000, byteSorted(['v1', 'B', 'a'])),
      node(m2, 6_000, []),
      node(sig, 3_000, []),
      node(list, 4_000, ['latest'], byteSorted([m2.digest, m1.digest])),
      node(alone, 8_000, []),
    ].sort((a, b) => byteCompare(a.digest, b.digest));
    const repoId = (await reg().repositoryId('r'))!;
    expect(await gc().manifestGraph(repoId)).toEqual(expected);
    const otherId = (await reg().repositoryId('other'))!;
    expect(await gc().manifestGraph(otherId + repoId + 1_000)).toEqual([]);
    await reg().ensureRepository('empty');
    expect(await gc().manifestGraph((await reg().repositoryId('empty'))!)).toEqual([]);
  });

  it('removeManifestsIf removes the untagged manifests decide names, after showing it the graph', async () => {
    const index = fixture().index;
    const [shared, onlyM2, onlyM4] = [blob('shared'), blob('only m2'), blob('only m4')];
    const m1 = image('m1', { blobs: [shared] });
    const m2 = image('m2', { blobs: [shared, onlyM2] });
    const m4 = image('m4', { blobs: [onlyM4] });
    const m5 = image('m5', { blobs: [shared] });
    await push(index, 'r', m1, ['v1'], OLD);
    for (const m of [m2, m4, m5]) await push(index, 'r', m, [], OLD);
    await push(index, 'o', m4, [], OLD);
    const repoId = (await reg().repositoryId('r'))!;
    const graph = await gc().manifestGraph(repoId);
    expect(await gc().unreferencedBlobs(CUTOFF, NOW, '', 100)).toEqual([]);
    const version = await reg().tagsVersion('r');

    let seen: ManifestNode[] | undefined;
    const removed = await gc().removeManifestsIf(repoId, (g) => {
      seen = [...g];
      return [m4.digest, m1.digest, m2.digest, blob('not a manifest'), m2.digest];
    });
    expect(seen).toEqual(graph);
    expect(removed).toEqual(byteSorted([m2.digest, m4.digest]));
    expect(await reg().tagsVersion('r')).not.toBe(version);

    expect(await reg().manifest('r', m2.digest)).toBeUndefined();
    expect(await reg().manifest('r', m4.digest)).toBeUndefined();
    expect(await reg().tagDigest('r', 'v1')).toBe(m1.digest);
    expect(await reg().manifest('r', m5.digest)).toBeDefined();
    expect(await reg().manifest('o', m4.digest)).toBeDefined();
    // Their references went with them: what m2 alone held is now unreferenced; m4 is still o's.
    expect(await gc().usersOf(onlyM2)).toEqual([]);
    expect(await gc().usersOf(onlyM4)).toEqual([{ repository: 'o', digest: m4.digest, tags: [] }]);
    expect(await gc().unreferencedBlobs(CUTOFF, NOW, '', 100)).toEqual(
      [
        { digest: onlyM2, size: SIZE },
        { digest: m2.digest, size: m2.content.length },
      ].sort((a, b) => byteCompare(a.digest, b.digest)),
    );
    expect(await gc().markCandidates(CUTOFF, NOW)).toEqual({ count: 2, bytes: SIZE + m2.content.length });
    expect((await gc().manifestGraph(repoId)).map((n) => n.digest)).toEqual(byteSorted([m1.digest, m5.digest]));
  });

  it('removeManifestsIf on an unknown repository removes nothing', async () => {
    const m = image('m');
    await reg().putManifest('r', m, [], OLD);
    const repoId = (await reg().repositoryId('r'))!;
    expect(await gc().removeManifestsIf(repoId + 1_000, () => [m.digest])).toEqual([]);
    expect(await gc().removeManifestsIf(repoId, () => [])).toEqual([]);
    expect(await reg().manifest('r', m.digest)).toBeDefined();
  });
});

describeIndex('GcIndex: usage', (fixture) => {
  const reg = (): RegistryIndex => fixture().index.registry;
  const gc = (): GcIndex => fixture().index.gc;

  it('counts what each repository holds once, and what it alone holds', async () => {
    const [layer, one, two, loose, ghost] = [blob('layer'), blob('one'), blob('two'), blob('loose'), blob('ghost')];
    await reg().addBlob('a/one', layer, 1_000, OLD);
    await reg().addBlob('a/one', one, 100, OLD);
    await reg().addBlob('a/one', loose, 5, OLD);
    await reg().addBlob('a-two', layer, 1_000, OLD);
    await reg().addBlob('a-two', two, 200, OLD);
    // A link alone holds nothing.
    await reg().addBlob('B-empty', layer, 1_000, OLD);
    const m1 = image('one', { blobs: [layer, one] });
    const m1b = image('one b', { blobs: [one, layer] });
    const m2 = image('two', { blobs: [layer, two] });
    // Unchecked: a reference without a blob row counts for nothing.
    const m3 = image('three', { blobs: [ghost, two] });
    const both = indexOf('in both', []);
    await reg().putManifest('a/one', m1, ['v1'], OLD, CHECKED);
    await reg().putManifest('a/one', m1b, [], OLD, CHECKED);
    await reg().putManifest('a/one', both, [], OLD, CHECKED);
    await reg().putManifest('a-two', m2, ['v1'], OLD, CHECKED);
    await reg().putManifest('a-two', m3, [], OLD);
    await reg().putManifest('a-two', both, [], OLD, CHECKED);

    const size = (...ms: NewManifest[]) => ms.reduce((sum, m) => sum + m.content.length, 0);
    const aOne = {
      repository: 'a/one',
      manifests: 3,
      blobs: 5,
      bytes: size(m1, m1b, both) + 1_100,
      uniqueBytes: size(m1, m1b) + 100,
      sharedBytes: size(both) + 1_000,
    };
    const aTwo = {
      repository: 'a-two',
      manifests: 3,
      blobs: 5,
      bytes: size(m2, m3, both) + 1_200,
      uniqueBytes: size(m2, m3) + 200,
      sharedBytes: size(both) + 1_000,
    };
    const empty = { repository: 'B-empty', manifests: 0, blobs: 0, bytes: 0, uniqueBytes: 0, sharedBytes: 0 };
    expect(await gc().usage()).toEqual([empty, aTwo, aOne]);
    expect(await gc().usage('a/one')).toEqual([aOne]);
    expect(await gc().usage('B-empty')).toEqual([empty]);
    expect(await gc().usage('unknown')).toEqual([]);
  });

  it('an empty index has no usage', async () => {
    expect(await gc().usage()).toEqual([]);
  });
});

describeIndex('GcIndex: what verify reads', (fixture) => {
  const reg = (): RegistryIndex => fixture().index.registry;
  const gc = (): GcIndex => fixture().index.gc;

  it('blobs pages through every blob row with its state', async () => {
    const index = fixture().index;
    const going = blob('going');
    await deletingBlob(index, ['r'], going, 3);
    const cand = blob('candidate');
    await reg().addBlob('r', cand, 4, OLD);
    await gc().markCandidates(CUTOFF, NOW);
    const held = blob('held');
    await gc().claimBlob(held, 5, NOW, 9_000);
    const rows: BlobStateRow[] = [
      { digest: going, size: 3, state: 'deleting', touchedAt: OLD, stateAt: 2_500, heldUntil: null },
      { digest: cand, size: 4, state: 'candidate', touchedAt: OLD, stateAt: NOW, heldUntil: null },
      live(held, 5, NOW, 9_000),
    ];
    const expected = rows.sort((a, b) => byteCompare(a.digest, b.digest));
    expect(await gc().blobs('', 100)).toEqual(expected);
    expect(await allPages((after, limit) => gc().blobs(after, limit), '', (r) => r.digest, 2)).toEqual(expected);
    expect(await gc().blobs(expected[2]!.digest, 10)).toEqual([]);
  });

  it('links, manifests and tags page in (repository, key) byte order, with repository names', async () => {
    const [p, q] = [blob('p'), blob('q')];
    const tagNames = ['b', 'B', 'a', 'a.b', 'a-b'];
    for (const name of AWKWARD_NAMES) {
      await reg().addBlob(name, p, SIZE, OLD);
      await reg().addBlob(name, q, SIZE, OLD);
      await reg().putManifest(name, image(`${name} 1`), tagNames, OLD);
      await reg().putManifest(name, image(`${name} 2`), [], OLD);
    }
    const names = byteSorted(AWKWARD_NAMES);
    const links = names.flatMap((repository) => byteSorted([p, q]).map((digest) => ({ repository, digest })));
    expect(await gc().links(FIRST, 100)).toEqual(links);
    expect(await allPages((after, limit) => gc().links(after, limit), FIRST, (r) => r, 3)).toEqual(links);
    // A key that is no row: the page starts after where it would be.
    const next = links.findIndex((l) => l.repository === 'a/b/c');
    expect(await gc().links({ repository: 'a/b', digest: 'sha256:~' }, 2)).toEqual(links.slice(next, next + 2));

    const manifests = names.flatMap((repository) =>
      [image(`${repository} 1`), image(`${repository} 2`)]
        .map((m) => ({ repository, digest: m.digest, mediaType: m.mediaType, size: m.content.length }))
        .sort((a, b) => byteCompare(a.digest, b.digest)),
    );
    expect(await gc().manifests(FIRST, 100)).toEqual(manifests);
    expect(
      await allPages(
        (after, limit) => gc().manifests(after, limit),
        FIRST,
        (r) => ({ repository: r.repository, digest: r.digest }),
        3,
      ),
    ).toEqual(manifests);

    const tags = names.flatMap((repository) => byteSorted(tagNames).map((tag) => ({ repository, tag, digest: image(`${repository} 1`).digest })));
    const start = { repository: '', tag: '' };
    expect(await gc().tags(start, 100)).toEqual(tags);
    expect(await allPages((after, limit) => gc().tags(after, limit), start, (r) => ({ repository: r.repository, tag: r.tag }), 4)).toEqual(tags);
    const at = tags.findIndex((t) => t.repository === 'a' && t.tag === 'a.b');
    expect(await gc().tags({ repository: 'a', tag: 'a.b' }, 2)).toEqual(tags.slice(at + 1, at + 3));
  });

  it('usersOf lists the manifests using a digest as a blob or as a child, in (repository, digest) order, with their tags', async () => {
    const index = fixture().index;
    const layer = blob('layer');
    const [a1, a2, b1] = [image('a1', { blobs: [layer] }), image('a2', { blobs: [layer, blob('x')] }), image('b1', { blobs: [layer] })];
    await push(index, 'b', b1, ['v1'], OLD);
    await push(index, 'a', a1, ['z', 'B', 'a'], OLD);
    await push(index, 'a', a2, [], OLD);
    const list = indexOf('list', [a1.digest]);
    await reg().putManifest('a', list, ['latest'], OLD, CHECKED);
    // A referrer points at its subject, which is not a use.
    await push(index, 'a', image('sig', { subject: a1.digest }), [], OLD);

    const uses = [
      ...[
        { repository: 'a', digest: a1.digest, tags: byteSorted(['z', 'B', 'a']) },
        { repository: 'a', digest: a2.digest, tags: [] },
      ].sort((x, y) => byteCompare(x.digest, y.digest)),
      { repository: 'b', digest: b1.digest, tags: ['v1'] },
    ];
    expect(await gc().usersOf(layer)).toEqual(uses);
    expect(await gc().usersOf(a1.digest)).toEqual([{ repository: 'a', digest: list.digest, tags: ['latest'] }]);
    expect(await gc().usersOf(blob('unused'))).toEqual([]);
  });

  it('removeBlob removes a blob row and its links whatever its state, and leaves the manifests using it', async () => {
    const index = fixture().index;
    const m = image('user');
    await push(index, 'a', m, ['v1'], OLD);
    const [config] = m.blobs as [string];
    await reg().addBlob('b', config, SIZE, OLD);
    expect(await gc().removeBlob(config)).toBe(true);
    expect(await gc().blobState(config)).toBeUndefined();
    expect((await gc().links(FIRST, 10)).filter((l) => l.digest === config)).toEqual([]);
    expect(await reg().manifest('a', m.digest)).toBeDefined();
    expect(await gc().usersOf(config)).toEqual([{ repository: 'a', digest: m.digest, tags: ['v1'] }]);
    expect(await gc().removeBlob(config)).toBe(false);

    const going = blob('going');
    await deletingBlob(index, ['c'], going);
    expect(await gc().removeBlob(going)).toBe(true);
    expect(await gc().blobState(going)).toBeUndefined();
    expect(await gc().removeBlob(blob('unknown'))).toBe(false);
  });
});

describeIndex('GcIndex: text with a NUL character', (fixture) => {
  const gc = (): GcIndex => fixture().index.gc;

  /** Whether the call resolved (to what) or was refused with IndexTextError: any other error fails. */
  async function outcome(call: () => Promise<unknown>): Promise<{ value: unknown } | { refused: true }> {
    try {
      return { value: await call() };
    } catch (err) {
      expect(err).toBeInstanceOf(IndexTextError);
      return { refused: true };
    }
  }

  it('finds nothing or refuses with IndexTextError, never another error', async () => {
    const index = fixture().index;
    const m = image('present');
    await push(index, 'r', m, ['v1'], OLD);
    const nul = `${m.digest}\u0000`;
    const lookups: Array<[string, () => Promise<unknown>, unknown]> = [
      ['blobState', () => gc().blobState(nul), undefined],
      ['usersOf', () => gc().usersOf(`${m.blobs[0]!}\u0000`), []],
      ['usage', () => gc().usage('r\u0000'), []],
      ['beginDeleting', () => gc().beginDeleting([nul], NOW), []],
      ['removeBlob', () => gc().removeBlob(nul), false],
      ['linkedBlobSize', () => index.registry.linkedBlobSize('r', `${m.blobs[0]!}\u0000`, NOW), undefined],
    ];
    for (const [name, call, empty] of lookups) {
      const got = await outcome(call);
      if ('value' in got) expect(got.value, name).toEqual(empty);
    }
    // Pages and writes: whatever they answer, they answer it without another error.
    const others: Array<() => Promise<unknown>> = [
      () => gc().claimBlob(`${blob('claimed')}\u0000`, 1, NOW, NOW + 1),
      () => gc().releaseBlob(nul),
      () => gc().finishDeleting([nul]),
      () => gc().abortDeleting([nul], NOW),
      () => gc().staleDeleting(NOW, nul, 10),
      () => gc().candidates(nul, 10),
      () => gc().unreferencedBlobs(CUTOFF, NOW, nul, 10),
      () => gc().blobs(nul, 10),
      () => gc().links({ repository: 'r\u0000', digest: nul }, 10),
      () => gc().manifests({ repository: 'r\u0000', digest: nul }, 10),
      () => gc().tags({ repository: 'r', tag: 'v\u0000' }, 10),
    ];
    for (const call of others) await outcome(call);
    // The index goes on, with what it held.
    expect(await gc().blobState(m.digest)).toEqual(live(m.digest, m.content.length, OLD));
    expect(await gc().usersOf(m.blobs[0]!)).toEqual([{ repository: 'r', digest: m.digest, tags: ['v1'] }]);
  });
});
