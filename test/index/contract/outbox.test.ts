import { expect, it } from 'vitest';
import { BlobDeletingError, ManifestReferencesError, type Index } from '../../../src/index/contract.js';
import { describeIndex } from './implementations.js';
import { blob, image } from './fixtures.js';

const events = async (index: Index, after = 0) => (await index.outbox.after(after, 1000)).map((r) => r.event);

describeIndex('OutboxIndex', (fixture) => {
  const index = () => fixture().index;

  it('append, after (in order, paged), stats, countBetween, nthNewest and deleteThrough', async () => {
    const outbox = index().outbox;
    expect(await outbox.stats()).toEqual({ last: 0, count: 0 });
    expect(await outbox.nthNewest(1)).toBeUndefined();
    await outbox.append(['a', 'b', 'c']);
    await outbox.append([]);
    await outbox.append(['d']);
    const rows = await outbox.after(0, 10);
    expect(rows.map((r) => r.event)).toEqual(['a', 'b', 'c', 'd']);
    const seqs = rows.map((r) => r.seq);
    expect([...seqs].sort((x, y) => x - y)).toEqual(seqs);
    expect(new Set(seqs).size).toBe(4);
    expect((await outbox.after(seqs[1]!, 2)).map((r) => r.event)).toEqual(['c', 'd']);
    expect(await outbox.stats()).toEqual({ last: seqs[3], count: 4 });
    expect(await outbox.countBetween(seqs[0]!, seqs[2]!)).toBe(2);
    expect(await outbox.nthNewest(1)).toBe(seqs[3]);
    expect(await outbox.nthNewest(3)).toBe(seqs[1]);
    expect(await outbox.nthNewest(5)).toBeUndefined();
    expect(await outbox.deleteThrough(seqs[1]!)).toBe(2);
    expect(await events(index())).toEqual(['c', 'd']);
    // Numbers are never given twice, even once the rows are gone.
    await outbox.deleteThrough(seqs[3]!);
    await outbox.append(['e']);
    const [e] = await outbox.after(0, 10);
    expect(e!.seq).toBeGreaterThan(seqs[3]!);
  });

  it('cursors start absent and never move back', async () => {
    const outbox = index().outbox;
    expect(await outbox.cursors()).toEqual(new Map());
    await outbox.setCursor('hook', 5);
    await outbox.setCursor('other', 2);
    await outbox.setCursor('hook', 3);
    expect(await outbox.cursors()).toEqual(new Map([['hook', 5], ['other', 2]]));
    await outbox.setCursor('hook', 9);
    expect((await outbox.cursors()).get('hook')).toBe(9);
  });

  it("the registry's writes put their events in the outbox in their own transaction, and only when they change something", async () => {
    const r = index().registry;
    const m = image('1');
    for (const d of m.blobs) await r.addBlob('repo', d, 10, undefined, [`push ${d}`]);
    await r.putManifest('repo', m, ['v1'], undefined, { checkReferences: true, events: ['push manifest'] });
    expect(await r.deleteTag('repo', 'v1', ['delete tag'])).toBe(true);
    expect(await r.deleteTag('repo', 'v1', ['delete tag again'])).toBe(false);
    expect(await r.deleteManifestIf('repo', m.digest, () => false, ['not deleted'])).toBeUndefined();
    expect(await r.deleteManifestIf('repo', m.digest, () => true, ['delete manifest'])).toEqual([]);
    expect(await r.deleteManifest('repo', m.digest, ['gone already'])).toBe(false);
    await r.putManifest('repo', m, [], undefined, { checkReferences: true });
    expect(await r.deleteManifest('repo', m.digest, ['delete again'])).toBe(true);
    expect(await r.unlinkBlob('repo', m.blobs[0]!, ['unlink'])).toBe(true);
    expect(await r.unlinkBlob('repo', m.blobs[0]!, ['unlink again'])).toBe(false);
    expect(await events(index())).toEqual([
      ...m.blobs.map((d) => `push ${d}`),
      'push manifest',
      'delete tag',
      'delete manifest',
      'delete again',
      'unlink',
    ]);
  });

  it('a write that fails writes none of its events', async () => {
    const r = index().registry;
    const m = image('2');
    await expect(r.putManifest('repo', m, ['v1'], undefined, { checkReferences: true, events: ['refused'] })).rejects.toBeInstanceOf(
      ManifestReferencesError,
    );
    const d = blob('being deleted');
    await r.insertBlob(d, 3, 0, 0);
    const now = Date.now();
    await index().gc.markCandidates(now, now);
    expect((await index().gc.beginDeleting([d], now)).length).toBe(1);
    // A blob the collector is deleting refuses the link, and its event.
    await expect(r.addBlob('repo', d, 3, undefined, ['link refused'])).rejects.toBeInstanceOf(BlobDeletingError);
    expect(await events(index())).toEqual([]);
  });

  it('two nodes writing at once: numbers follow commit order, so a reader never skips an event', async (ctx) => {
    if (!fixture().database) return ctx.skip();
    const one = index();
    const two = await fixture().another();
    const seen: number[] = [];
    let cursor = 0;
    const writes = Array.from({ length: 40 }, (_, i) => (i % 2 === 0 ? one : two).outbox.append([`e${i}`]));
    // Read while they commit: every row read is after the cursor, and none appears later below it.
    for (let round = 0; round < 200 && seen.length < 40; round++) {
      for (const row of await one.outbox.after(cursor, 1000)) {
        seen.push(row.seq);
        cursor = row.seq;
      }
    }
    await Promise.all(writes);
    for (const row of await one.outbox.after(cursor, 1000)) seen.push(row.seq);
    expect(seen).toHaveLength(40);
    expect((await one.outbox.after(0, 1000)).map((r) => r.seq)).toEqual(seen);
  });
});
