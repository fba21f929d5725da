import { createHash } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { AccessKeyError, AccessKeys } from '../../src/auth/access-keys.js';
import { parseGrant } from '../../src/auth/scope.js';
import type { Db } from '../../src/index/sqlite/database.js';
import { SqliteAccessKeyIndex } from '../../src/index/sqlite/access-keys.js';
import { openSqliteIndex, type SqliteIndex } from '../../src/index/sqlite/index.js';

const indexes: SqliteIndex[] = [];
afterEach(async () => {
  for (const index of indexes.splice(0)) await index.close();
});

const START = Date.UTC(2025, 0, 1);

function setup() {
  const index = openSqliteIndex(':memory:');
  indexes.push(index);
  const db = index.db;
  const clock = { now: START };
  const keys = new AccessKeys(index.accessKeys, { now: () => clock.now });
  return { db, clock, keys };
}

const PUSH_APP = parseGrant('repository:app/*:pull,push');

function row(db: Db, id: string) {
  return db.prepare('SELECT * FROM access_keys WHERE id = ?').get(id) as Record<string, unknown>;
}

describe('AccessKeys', () => {
  it('creates a recognisable secret of which only the SHA-256 is stored', async () => {
    const { db, keys } = setup();
    const { id, secret } = await keys.create({ user: 'ci', scopes: [PUSH_APP], description: 'CI pipeline' });
    expect(id).toMatch(/^[0-9a-f]{16}$/);
    expect(secret).toMatch(new RegExp(`^ocik_${id}_[A-Za-z0-9_-]{43}$`));
    const stored = row(db, id);
    expect(stored.secret_hash).toBe(createHash('sha256').update(secret).digest('hex'));
    expect(JSON.stringify(stored)).not.toContain(secret.slice(-43));
    expect(stored).toEqual(expect.objectContaining({ user: 'ci', description: 'CI pipeline', created_at: START, expires_at: null }));
    // Two keys never share an id or a secret.
    const other = await keys.create({ user: 'ci', scopes: [PUSH_APP] });
    expect(other.id).not.toBe(id);
    expect(other.secret).not.toBe(secret);
  });

  it('verifies the secret for its own user, returning the key’s id and scopes', async () => {
    const { keys } = setup();
    const catalog = parseGrant('registry:catalog:*');
    const { id, secret } = await keys.create({ user: 'ci', scopes: [PUSH_APP, catalog] });
    expect(await keys.verify('ci', secret)).toEqual({ id, scopes: [PUSH_APP, catalog] });
    expect(await keys.active(id)).toEqual({ id, user: 'ci', scopes: [PUSH_APP, catalog] });
  });

  it('refuses another user, a wrong secret, a password that is not a key and an unknown id', async () => {
    const { keys } = setup();
    const { id, secret } = await keys.create({ user: 'ci', scopes: [PUSH_APP] });
    expect(await keys.verify('alice', secret)).toBeUndefined();
    const last = secret.at(-1) === 'A' ? 'B' : 'A';
    expect(await keys.verify('ci', secret.slice(0, -1) + last)).toBeUndefined();
    expect(await keys.verify('ci', 'hunter2')).toBeUndefined();
    expect(await keys.verify('ci', `${secret}x`)).toBeUndefined();
    const unknownId = secret.replace(id, id === '0'.repeat(16) ? '1'.repeat(16) : '0'.repeat(16));
    expect(await keys.verify('ci', unknownId)).toBeUndefined();
    // Another key's secret with this key's id.
    const other = await keys.create({ user: 'ci', scopes: [PUSH_APP] });
    expect(await keys.verify('ci', `ocik_${id}_${other.secret.slice(-43)}`)).toBeUndefined();
  });

  it('stops accepting a key once it has expired', async () => {
    const { clock, keys } = setup();
    const { id, secret } = await keys.create({ user: 'ci', scopes: [PUSH_APP], expiresAt: START + 60_000 });
    clock.now = START + 59_999;
    expect((await keys.verify('ci', secret))?.id).toBe(id);
    clock.now = START + 60_000;
    expect(await keys.verify('ci', secret)).toBeUndefined();
    expect(await keys.active(id)).toBeUndefined();
  });

  it('stops accepting a key once it is revoked; revoking an unknown id is false', async () => {
    const { db, clock, keys } = setup();
    const { id, secret } = await keys.create({ user: 'ci', scopes: [PUSH_APP] });
    clock.now = START + 5_000;
    expect(await keys.revoke(id)).toBe(true);
    expect(await keys.verify('ci', secret)).toBeUndefined();
    expect(await keys.active(id)).toBeUndefined();
    clock.now = START + 9_000;
    expect(await keys.revoke(id)).toBe(true); // again: still revoked, at the first time
    expect(row(db, id).revoked_at).toBe(START + 5_000);
    expect(await keys.revoke('0123456789abcdef')).toBe(false);
  });

  it('lists keys without secrets or hashes', async () => {
    const { clock, keys } = setup();
    const a = await keys.create({ user: 'ci', scopes: [PUSH_APP, parseGrant('repository:base/**:pull')], description: 'pipeline' });
    clock.now = START + 1000;
    const b = await keys.create({ user: 'bot', scopes: [parseGrant('registry:catalog:*')], expiresAt: START + 86_400_000 });
    await keys.verify('ci', a.secret);
    await keys.revoke(b.id);
    const listed = await keys.list();
    expect(listed).toEqual([
      {
        id: a.id,
        user: 'ci',
        scopes: ['repository:app/*:pull,push', 'repository:base/**:pull'],
        description: 'pipeline',
        createdAt: START,
        expiresAt: null,
        lastUsedAt: START + 1000,
        revokedAt: null,
      },
      {
        id: b.id,
        user: 'bot',
        scopes: ['registry:catalog:*'],
        description: null,
        createdAt: START + 1000,
        expiresAt: START + 86_400_000,
        lastUsedAt: null,
        revokedAt: START + 1000,
      },
    ]);
    const text = JSON.stringify(listed);
    for (const secret of [a.secret, b.secret]) {
      expect(text).not.toContain(secret.slice(-43));
      expect(text).not.toContain(createHash('sha256').update(secret).digest('hex'));
    }
    // The listed scopes parse back into the same grants.
    expect(listed[0]!.scopes.map(parseGrant)).toEqual([PUSH_APP, parseGrant('repository:base/**:pull')]);
  });

  it('writes last_used_at at most once a minute per key', async () => {
    const { db, clock, keys } = setup();
    const a = await keys.create({ user: 'ci', scopes: [PUSH_APP] });
    const b = await keys.create({ user: 'ci', scopes: [PUSH_APP] });
    const lastUsed = (id: string) => row(db, id).last_used_at;

    clock.now = START + 1_000;
    await keys.verify('ci', a.secret);
    expect(lastUsed(a.id)).toBe(START + 1_000);
    clock.now = START + 30_000;
    await keys.verify('ci', a.secret);
    await keys.verify('ci', b.secret); // another key: its own minute
    expect(lastUsed(a.id)).toBe(START + 1_000);
    expect(lastUsed(b.id)).toBe(START + 30_000);
    clock.now = START + 60_999;
    await keys.verify('ci', a.secret);
    expect(lastUsed(a.id)).toBe(START + 1_000);
    clock.now = START + 61_000;
    await keys.verify('ci', a.secret);
    expect(lastUsed(a.id)).toBe(START + 61_000);

    // A new process (a fresh AccessKeys) honours what the row says, too.
    const fresh = new AccessKeys(new SqliteAccessKeyIndex(db), { now: () => START + 90_000 });
    await fresh.verify('ci', a.secret);
    expect(lastUsed(a.id)).toBe(START + 61_000);
    // A failed verification is not a use.
    clock.now = START + 500_000;
    await keys.verify('alice', a.secret);
    expect(lastUsed(a.id)).toBe(START + 61_000);
  });

  it('refuses a key without scopes, for an invalid user, or expiring in the past', async () => {
    const { keys } = setup();
    await expect(keys.create({ user: 'ci', scopes: [] })).rejects.toThrow(AccessKeyError);
    await expect(keys.create({ user: '', scopes: [PUSH_APP] })).rejects.toThrow(AccessKeyError);
    await expect(keys.create({ user: 'a:b', scopes: [PUSH_APP] })).rejects.toThrow(AccessKeyError);
    await expect(keys.create({ user: 'ci', scopes: [PUSH_APP], expiresAt: START })).rejects.toThrow(AccessKeyError);
  });

  it('is schema version 2 of the index (and the index migrates past it)', () => {
    const { db } = setup();
    const versions = (db.prepare('SELECT version FROM schema_migrations ORDER BY version').all() as { version: number }[]).map((r) => r.version);
    expect(versions.slice(0, 2)).toEqual([1, 2]);
    expect(db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'access_keys'").get()).toBeDefined();
  });
});
