import { describe, expect, it } from 'vitest';
import { TagCache, TagList } from '../../src/registry/tag-cache.js';

describe('TagList', () => {
  const list = new TagList('lib/app', '1', ['a', 'b.1', 'b_2', 'v1', 'v10', 'v2']);

  it('pages after a tag, whether or not that tag exists', () => {
    expect(list.after('', 2)).toEqual(['a', 'b.1']);
    expect(list.after('b.1', 2)).toEqual(['b_2', 'v1']);
    expect(list.after('b', 10)).toEqual(['b.1', 'b_2', 'v1', 'v10', 'v2']);
    expect(list.after('v2', 10)).toEqual([]);
    expect(list.after('zzz', 10)).toEqual([]);
    expect(list.after('', 0)).toEqual([]);
  });

  it('serialises the whole list once, as the API answers it', () => {
    const body = list.json();
    expect(JSON.parse(body.toString('utf8'))).toEqual({ name: 'lib/app', tags: ['a', 'b.1', 'b_2', 'v1', 'v10', 'v2'] });
    expect(list.json()).toBe(body);
  });
});

describe('TagCache', () => {
  const tags = (n: number, prefix = 't') => Array.from({ length: n }, (_, i) => `${prefix}${i}`);

  it('loads a repository once, until it is deleted', async () => {
    const cache = new TagCache(100);
    let loads = 0;
    const load = async () => {
      loads++;
      return tags(3);
    };
    expect((await cache.get('a', '1', load)).tags).toEqual(['t0', 't1', 't2']);
    await cache.get('a', '1', load);
    expect(loads).toBe(1);
    cache.delete('a');
    await cache.get('a', '1', load);
    expect(loads).toBe(2);
    expect(cache.size).toBe(3);
  });

  it('loads a repository again when the index has another version of its tags', async () => {
    const cache = new TagCache(100);
    let loads = 0;
    const load = async () => {
      loads++;
      return tags(loads);
    };
    const first = await cache.get('a', '1', load);
    expect(await cache.get('a', '1', load)).toBe(first);
    const second = await cache.get('a', '2', load);
    expect(loads).toBe(2);
    expect(second.tags).toEqual(['t0', 't1']);
    expect(second.version).toBe('2');
    // The new list replaced the old one: what is held counts it once.
    expect(cache.size).toBe(2);
    expect(await cache.get('a', '2', load)).toBe(second);
  });

  it('evicts the repositories listed least recently past its capacity', async () => {
    const cache = new TagCache(10);
    const loaded: string[] = [];
    const get = (repo: string, n: number) =>
      cache.get(repo, '1', async () => {
        loaded.push(repo);
        return tags(n);
      });
    await get('a', 4);
    await get('b', 4);
    await get('a', 4); // a is now the most recent
    await get('c', 4); // 12 > 10: b goes
    expect(cache.size).toBe(8);
    await get('a', 4);
    await get('c', 4);
    await get('b', 4); // loaded again
    expect(loaded).toEqual(['a', 'b', 'c', 'b']);
    expect(cache.size).toBeLessThanOrEqual(10);
  });

  it('does not keep a list larger than its capacity, and does not keep a failed load', async () => {
    const cache = new TagCache(5);
    expect((await cache.get('big', '1', async () => tags(6))).tags).toHaveLength(6);
    expect(cache.size).toBe(0);
    await expect(
      cache.get('unknown', '1', async () => {
        throw new Error('NAME_UNKNOWN');
      }),
    ).rejects.toThrow('NAME_UNKNOWN');
    expect(cache.size).toBe(0);
  });
});
