import { expect, it } from 'vitest';
import type { PullTimeIndex, PullTimeRow } from '../../../src/index/contract.js';
import { describeIndex } from './implementations.js';
import { byteSorted, image } from './fixtures.js';

const [d1, d2, d3] = [image('1').digest, image('2').digest, image('3').digest];

describeIndex('PullTimeIndex', (fixture) => {
  const pulls = (): PullTimeIndex => fixture().index.pullTimes;

  it('record and lastPulled', async () => {
    expect(await pulls().lastPulled('r', d1)).toBeUndefined();
    await pulls().record([
      { repository: 'r', digest: d1, pulledAt: 1_000 },
      { repository: 'r', digest: d2, pulledAt: 2_000 },
      { repository: 's', digest: d1, pulledAt: 3_000 },
    ]);
    expect(await pulls().lastPulled('r', d1)).toBe(1_000);
    expect(await pulls().lastPulled('r', d2)).toBe(2_000);
    expect(await pulls().lastPulled('s', d1)).toBe(3_000);
    expect(await pulls().lastPulled('s', d2)).toBeUndefined();
    await pulls().record([]);
  });

  it('a pull time only moves forward', async () => {
    await pulls().record([{ repository: 'r', digest: d1, pulledAt: 5_000 }]);
    await pulls().record([{ repository: 'r', digest: d1, pulledAt: 4_000 }]);
    expect(await pulls().lastPulled('r', d1)).toBe(5_000);
    await pulls().record([{ repository: 'r', digest: d1, pulledAt: 6_000 }]);
    expect(await pulls().lastPulled('r', d1)).toBe(6_000);
    // Within one batch, too, whatever the order.
    await pulls().record([
      { repository: 'r', digest: d2, pulledAt: 9_000 },
      { repository: 'r', digest: d2, pulledAt: 7_000 },
      { repository: 'r', digest: d1, pulledAt: 6_500 },
      { repository: 'r', digest: d1, pulledAt: 6_100 },
    ]);
    expect(await pulls().lastPulled('r', d2)).toBe(9_000);
    expect(await pulls().lastPulled('r', d1)).toBe(6_500);
  });

  it('times beyond 32 bits of milliseconds are exact', async () => {
    const at = Date.UTC(2099, 11, 31, 23, 59, 59, 999);
    await pulls().record([{ repository: 'r', digest: d1, pulledAt: at }]);
    expect(await pulls().lastPulled('r', d1)).toBe(at);
  });

  it('a large batch is one call', async () => {
    const batch: PullTimeRow[] = Array.from({ length: 2_500 }, (_, i) => ({ repository: `repo${i % 50}`, digest: image(`${i}`).digest, pulledAt: i }));
    await pulls().record(batch);
    expect(await pulls().lastPulled('repo7', image('2457').digest)).toBe(2_457);
    expect((await pulls().page({ repository: '', digest: '' }, 10_000)).length).toBe(2_500);
  });

  it('forget removes one repository\'s pull times', async () => {
    await pulls().record([
      { repository: 'r', digest: d1, pulledAt: 1 },
      { repository: 'r', digest: d2, pulledAt: 2 },
      { repository: 'r/sub', digest: d1, pulledAt: 3 },
    ]);
    await pulls().forget('r');
    expect(await pulls().lastPulled('r', d1)).toBeUndefined();
    expect(await pulls().lastPulled('r', d2)).toBeUndefined();
    expect(await pulls().lastPulled('r/sub', d1)).toBe(3);
    await pulls().forget('nowhere');
  });

  it('page lists every row in (repository, digest) byte order, after a key', async () => {
    const repos = ['a', 'B', 'a/b', 'a-b'];
    const rows: PullTimeRow[] = repos.flatMap((repository, i) => [d1, d2, d3].map((digest, j) => ({ repository, digest, pulledAt: i * 10 + j })));
    await pulls().record(rows);
    const expected = byteSorted(repos).flatMap((repository) =>
      [d1, d2, d3].sort().map((digest) => rows.find((r) => r.repository === repository && r.digest === digest)!),
    );
    expect(await pulls().page({ repository: '', digest: '' }, 100)).toEqual(expected);

    const paged: PullTimeRow[] = [];
    let after = { repository: '', digest: '' };
    for (let pages = 0; pages < 20; pages++) {
      const page = await pulls().page(after, 5);
      expect(page.length).toBeLessThanOrEqual(5);
      if (page.length === 0) break;
      paged.push(...page);
      const last = page[page.length - 1]!;
      after = { repository: last.repository, digest: last.digest };
    }
    expect(paged).toEqual(expected);
    // After a repository with an empty digest: that repository's rows, then the rest.
    expect(await pulls().page({ repository: 'a', digest: '' }, 100)).toEqual(expected.slice(3));
    expect(await pulls().page({ repository: 'a/b', digest: '\uffff' }, 100)).toEqual([]);
  });
});
