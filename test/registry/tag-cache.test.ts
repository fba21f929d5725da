import { describe, expect, it } from 'vitest';
import { TagCache, TagList } from '../../src/registry/tag-cache.js';

describe('TagList', () => {
  const list = new TagList('lib/app', ['a', 'b.1', 'b_2', 'v1', 'v10', 'v2']);

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

  it('loads a repository once, until it is deleted', () => {
    const cache = new TagCache(100);
    let loads = 0;
    const load = () => {
      loads++;
      return tags(3);
    };
    expect(cache.get('a', load).tags).toEqual(['t0', 't1', 't2']);
    cache.get('a', load);
    expect(loads).toBe(1);
    cache.delete('a');
    cache.get('a', load);
    expect(loads).toBe(2);
    expect(cache.size).toBe(3);
  });

  it('evicts the repositories listed least recently past its capacity', () => {
    const cache = new TagCache(10);
    const loaded: string[] = [];
    const get = (repo: string, n: number) =>
      cache.get(repo, () => {
        loaded.push(repo);
        return tags(n);
      });
    get('a', 4);
    get('b', 4);
    get('a', 4); // a is now the most recent
    get('c', 4); // 12 > 10: b goes
    expect(cache.size).toBe(8);
    get('a', 4);
    get('c', 4);
    get('b', 4); // loaded again
    expect(loaded).toEqual(['a', 'b', 'c', 'b']);
    expect(cache.size).toBeLessThanOrEqual(10);
  });

  it('does not keep a list larger than its capacity, and does not keep a failed load', () => {
    const cache = new TagCache(5);
    expect(cache.get('big', () => tags(6)).tags).toHaveLength(6);
    expect(cache.size).toBe(0);
    expect(() =>
      cache.get('unknown', () => {
        throw new Error('NAME_UNKNOWN');
      }),
    ).toThrow('NAME_UNKNOWN');
    expect(cache.size).toBe(0);
  });
});
