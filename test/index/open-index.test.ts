// openIndex and what it says when the index cannot be opened: an IndexOpenError whose one-line
// message names where the index is (never the password), quickly, for an unreachable server, a
// missing database or a schema newer than this registry's. And the start-up check of the token
// server's key with a shared (PostgreSQL) index.
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import { ConfigError, loadConfig, type IndexConfig } from '../../src/config/config.js';
import type { ConfigFile } from '../../src/config/schema.js';
import type { Index } from '../../src/index/contract.js';
import { describeIndex, IndexOpenError, openIndex } from '../../src/index/open-index.js';
import { openSqliteIndex } from '../../src/index/sqlite/index.js';
import { freePort } from '../support/built-server.js';
import { createTestDatabase, databaseUrl, describeWithPostgres, withAdmin, type TestDatabase } from '../support/postgres.js';

const PASSWORD = 'Sup3r-secret_pw';

const dirs: string[] = [];
const opened: Index[] = [];
const databases: TestDatabase[] = [];

afterEach(async () => {
  for (const index of opened.splice(0)) await index.close();
  for (const db of databases.splice(0)) await db.drop();
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function tmp(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'ocireg-open-index-'));
  dirs.push(dir);
  return dir;
}

function postgresConfig(postgres: NonNullable<IndexConfig['postgres']>): IndexConfig {
  return { driver: 'postgres', path: '/nonexistent/index.db', postgres };
}

/** The error openIndex fails with, and how long it took; fails the test if it opens. */
async function openFailure(config: IndexConfig): Promise<{ error: IndexOpenError; ms: number }> {
  const started = Date.now();
  try {
    const index = await openIndex(config);
    opened.push(index);
  } catch (err) {
    expect(err).toBeInstanceOf(IndexOpenError);
    return { error: err as IndexOpenError, ms: Date.now() - started };
  }
  throw new Error('expected openIndex to fail, but it opened the index');
}

function expectOneLine(message: string): void {
  expect(message).not.toContain('\n');
  expect(message).not.toMatch(/\n\s+at /);
  expect(message.length).toBeGreaterThan(0);
}

describe('openIndex with SQLite', () => {
  it('opens (creating) the file, described by its path', async () => {
    const path = join(await tmp(), 'sub', 'index.db');
    const index = await openIndex({ driver: 'sqlite', path });
    opened.push(index);
    expect(index.driver).toBe('sqlite');
    expect(index.where).toBe(path);
    await index.registry.ping();
    expect((await stat(path)).isFile()).toBe(true);
    expect(describeIndex({ driver: 'sqlite', path })).toBe(path);
  });

  it('refuses a file that is not an SQLite database, naming it', async () => {
    const path = join(await tmp(), 'index.db');
    await writeFile(path, 'this is not a database, only some text that is long enough to be a header '.repeat(20));
    const { error } = await openFailure({ driver: 'sqlite', path });
    expect(error.message).toContain(path);
    expectOneLine(error.message);
  });

  it('refuses a schema newer than this registry, saying to upgrade', async () => {
    const path = join(await tmp(), 'index.db');
    const index = openSqliteIndex(path);
    index.db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(999, 'from the future', Date.now());
    await index.close();
    const { error } = await openFailure({ driver: 'sqlite', path });
    expect(error.message).toContain(path);
    expect(error.message).toContain('999');
    expect(error.message).toMatch(/upgrade/);
    expectOneLine(error.message);
  });
});

describe('openIndex with PostgreSQL that cannot be reached', () => {
  it('fails quickly on a closed port, naming the host and database but not the password', async () => {
    const port = await freePort();
    const { error, ms } = await openFailure(
      postgresConfig({ url: `postgres://ocireg:${PASSWORD}@127.0.0.1:${port}/regdb`, poolSize: 2 }),
    );
    expect(ms).toBeLessThan(15_000);
    expect(error.message).toContain('127.0.0.1');
    expect(error.message).toContain(String(port));
    expect(error.message).toContain('regdb');
    expect(error.message).not.toContain(PASSWORD);
    expect(error.message).not.toContain(encodeURIComponent(PASSWORD));
    expectOneLine(error.message);
  });

  it('keeps the password out when it is given as a field, and a URL-encoded one out too', async () => {
    const port = await freePort();
    const fields = await openFailure(
      postgresConfig({ host: '127.0.0.1', port, database: 'fielddb', user: 'someone', password: PASSWORD, sslmode: 'disable', poolSize: 1 }),
    );
    expect(fields.error.message).toContain('fielddb');
    expect(fields.error.message).toContain('127.0.0.1');
    expect(fields.error.message).not.toContain(PASSWORD);
    expectOneLine(fields.error.message);

    const odd = 'p@ss:w/rd?#%';
    const encoded = await openFailure(
      postgresConfig({ url: `postgres://ocireg:${encodeURIComponent(odd)}@127.0.0.1:${port}/encdb?sslmode=disable`, poolSize: 1 }),
    );
    expect(encoded.error.message).toContain('encdb');
    expect(encoded.error.message).not.toContain(odd);
    expect(encoded.error.message).not.toContain(encodeURIComponent(odd));
    expectOneLine(encoded.error.message);
  });

  it('describeIndex names the database without the password or the URL parameters', () => {
    expect(describeIndex(postgresConfig({ url: `postgres://ocireg:${PASSWORD}@db.internal:5433/registry?sslmode=require`, poolSize: 1 }))).toBe(
      'postgres://ocireg@db.internal:5433/registry',
    );
    expect(describeIndex(postgresConfig({ host: 'db.internal', port: 5433, database: 'registry', user: 'u', password: PASSWORD, poolSize: 1 }))).toBe(
      'postgres://u@db.internal:5433/registry',
    );
    expect(describeIndex(postgresConfig({ host: 'db.internal', poolSize: 1 }))).toBe('postgres://db.internal/');
    expect(describeIndex(postgresConfig({ url: `not a url ${PASSWORD}`, poolSize: 1 }))).not.toContain(PASSWORD);
  });
});

describeWithPostgres('openIndex with PostgreSQL', (adminUrl) => {
  it('opens a new database, migrated, described without the password', async () => {
    const db = await createTestDatabase();
    databases.push(db);
    const url = new URL(db.url);
    // The test server trusts its clients: the password is sent to nobody, but it must not show.
    url.password = PASSWORD;
    const index = await openIndex(postgresConfig({ url: url.toString(), poolSize: 2 }));
    opened.push(index);
    expect(index.driver).toBe('postgres');
    expect(index.where).toContain(db.name);
    expect(index.where).not.toContain(PASSWORD);
    await index.registry.ping();
    const versions = await withAdmin(db.url, async (c) => (await c.query<{ version: number }>('SELECT version FROM schema_migrations ORDER BY version')).rows);
    expect(versions.map((r) => r.version)).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('refuses a database whose schema is newer than this registry, saying to upgrade, and changes nothing', async () => {
    const db = await createTestDatabase();
    databases.push(db);
    const first = await openIndex(postgresConfig({ url: db.url, poolSize: 2 }));
    await first.close();
    await withAdmin(db.url, (c) => c.query('INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, $1, $2)', ['from the future', Date.now()]));
    const before = await withAdmin(db.url, async (c) => (await c.query('SELECT version, name, applied_at FROM schema_migrations ORDER BY version')).rows);

    const { error, ms } = await openFailure(postgresConfig({ url: db.url, poolSize: 2 }));
    expect(ms).toBeLessThan(15_000);
    expect(error.message).toContain(db.name);
    expect(error.message).toContain('999');
    expect(error.message).toMatch(/newer/);
    expect(error.message).toMatch(/upgrade/);
    expectOneLine(error.message);

    const after = await withAdmin(db.url, async (c) => (await c.query('SELECT version, name, applied_at FROM schema_migrations ORDER BY version')).rows);
    expect(after).toEqual(before);
  });

  it('refuses a database that does not exist, naming it', async () => {
    const name = `ocireg_missing_${Date.now()}`;
    const url = new URL(databaseUrl(adminUrl, name));
    url.password = PASSWORD;
    const { error, ms } = await openFailure(postgresConfig({ url: url.toString(), poolSize: 1 }));
    expect(ms).toBeLessThan(15_000);
    expect(error.message).toContain(name);
    expect(error.message).not.toContain(PASSWORD);
    expectOneLine(error.message);
  });
});

describeWithPostgres('the token server key with the postgres index', () => {
  async function tokenServerConfig(driver: 'sqlite' | 'postgres', key?: string) {
    const root = await tmp();
    const overrides: ConfigFile = {
      storage: { filesystem: { rootdirectory: root, shared: true } },
      auth: { tokenserver: { enabled: true, ...(key ? { key: join(root, key) } : {}) } },
    };
    if (driver === 'postgres') {
      const db = await createTestDatabase();
      databases.push(db);
      overrides.index = { driver: 'postgres', postgres: { url: db.url, poolsize: 2 } };
    }
    return { root, config: loadConfig({ env: {}, overrides }) };
  }

  /** What buildApp fails with (a ConfigError), or undefined when it starts. */
  async function startFailure(config: ReturnType<typeof loadConfig>): Promise<Error | undefined> {
    try {
      const app = await buildApp(config, { logger: false });
      await app.close();
      return undefined;
    } catch (err) {
      return err as Error;
    }
  }

  it('stops the start when the configured key file is missing, and does not create it', async () => {
    const { root, config } = await tokenServerConfig('postgres', 'keys/token.pem');
    const keyPath = join(root, 'keys/token.pem');
    const error = await startFailure(config);
    expect(error).toBeInstanceOf(ConfigError);
    expect(error!.message).toContain('auth.tokenserver.key');
    expect(error!.message).toContain(keyPath);
    expect(error!.message).toMatch(/does not exist/);
    expect(error!.message).toMatch(/every node/);
    await expect(stat(keyPath)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('stops the start when the default key file (<root>/token-key.pem) is missing', async () => {
    const { root, config } = await tokenServerConfig('postgres');
    const error = await startFailure(config);
    expect(error).toBeInstanceOf(ConfigError);
    expect(error!.message).toContain(join(root, 'token-key.pem'));
    await expect(stat(join(root, 'token-key.pem'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('starts with a key file that every node was given', async () => {
    const { root, config } = await tokenServerConfig('postgres', 'token.pem');
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    await writeFile(join(root, 'token.pem'), privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, { mode: 0o600 });
    expect(await startFailure(config)).toBeUndefined();
  });

  it('with the sqlite index, creates the missing key as before', async () => {
    const { root, config } = await tokenServerConfig('sqlite', 'token.pem');
    expect(await startFailure(config)).toBeUndefined();
    expect((await stat(join(root, 'token.pem'))).isFile()).toBe(true);
  });
});
