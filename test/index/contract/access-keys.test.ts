import { expect, it } from 'vitest';
import type { AccessKeyIndex, AccessKeyRow } from '../../../src/index/contract.js';
import { describeIndex } from './implementations.js';

function key(id: string, overrides: Partial<Omit<AccessKeyRow, 'lastUsedAt' | 'revokedAt'>> = {}): Omit<AccessKeyRow, 'lastUsedAt' | 'revokedAt'> {
  return {
    id,
    user: 'alice',
    secretHash: `hash-of-${id}`,
    scopes: '[{"repositories":["team/**"],"actions":["pull","push"]}]',
    description: `key ${id}`,
    createdAt: 1_000,
    expiresAt: null,
    ...overrides,
  };
}

describeIndex('AccessKeyIndex', (fixture) => {
  const keys = (): AccessKeyIndex => fixture().index.accessKeys;

  it('insert and byId give the row back as stored, with its secret hash', async () => {
    const row = key('k1', { expiresAt: Date.UTC(2040, 0, 1), description: 'CI, "quoted" é' });
    await keys().insert(row);
    expect(await keys().byId('k1')).toEqual({ ...row, lastUsedAt: null, revokedAt: null });
    await keys().insert(key('k2', { description: null, user: 'user' }));
    expect(await keys().byId('k2')).toEqual({ ...key('k2', { description: null, user: 'user' }), lastUsedAt: null, revokedAt: null });
    expect(await keys().byId('nope')).toBeUndefined();
  });

  it('a key id is unique', async () => {
    await keys().insert(key('k1'));
    await expect(keys().insert(key('k1', { user: 'mallory' }))).rejects.toThrow();
    expect((await keys().byId('k1'))!.user).toBe('alice');
  });

  it('list gives every key oldest first (then by id), without the hashes', async () => {
    await keys().insert(key('c', { createdAt: 2_000 }));
    await keys().insert(key('b', { createdAt: 1_000 }));
    await keys().insert(key('a', { createdAt: 2_000, user: 'bob' }));
    await keys().insert(key('d', { createdAt: 500 }));
    const list = await keys().list();
    expect(list.map((k) => k.id)).toEqual(['d', 'b', 'a', 'c']);
    for (const row of list) expect(row).not.toHaveProperty('secretHash');
    const { secretHash: _, ...expected } = key('a', { createdAt: 2_000, user: 'bob' });
    expect(list[2]).toEqual({ ...expected, lastUsedAt: null, revokedAt: null });
  });

  it('list of no keys is empty', async () => {
    expect(await keys().list()).toEqual([]);
  });

  it('revoke marks the key once: a second revocation keeps the first time', async () => {
    await keys().insert(key('k1'));
    await keys().insert(key('k2'));
    expect(await keys().revoke('k1', 5_000)).toBe(true);
    expect((await keys().byId('k1'))!.revokedAt).toBe(5_000);
    expect(await keys().revoke('k1', 9_000)).toBe(true);
    expect((await keys().byId('k1'))!.revokedAt).toBe(5_000);
    expect((await keys().byId('k2'))!.revokedAt).toBeNull();
    expect(await keys().revoke('missing', 5_000)).toBe(false);
    expect((await keys().list()).find((k) => k.id === 'k1')!.revokedAt).toBe(5_000);
  });

  it('touch records the last use, and ignores unknown keys', async () => {
    await keys().insert(key('k1'));
    await keys().touch('k1', 3_000);
    expect((await keys().byId('k1'))!.lastUsedAt).toBe(3_000);
    await keys().touch('k1', 4_000);
    expect((await keys().byId('k1'))!.lastUsedAt).toBe(4_000);
    await keys().touch('missing', 4_000);
    expect(await keys().byId('missing')).toBeUndefined();
    // Touching a revoked key does not unrevoke it.
    await keys().revoke('k1', 4_500);
    await keys().touch('k1', 5_000);
    expect(await keys().byId('k1')).toMatchObject({ lastUsedAt: 5_000, revokedAt: 4_500 });
  });
});
