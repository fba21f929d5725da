// The index section of the configuration: the driver (sqlite or postgres), where the PostgreSQL
// database is, the REGISTRY_INDEX_* variables, the refusal of a postgres index over a store that
// only one node sees, and redact() keeping the database password out of logs.
import { join } from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { redact, redactUrl } from '../../src/config/config.js';
import { useConfigDir } from './support.js';

const fixture = useConfigDir();
const { load, configError, configFile } = fixture;
let dir: string;
beforeEach(() => {
  dir = fixture.dir;
});

/** A filesystem store that every node mounts: what a postgres index over the filesystem needs. */
const SHARED = { storage: { filesystem: { shared: true } } } as const;
const S3 = { storage: { s3: { bucket: 'registry-blobs', region: 'eu-west-1' } } } as const;

describe('index driver defaults', () => {
  it('is sqlite in <root>/index.db when nothing is said', () => {
    const config = load();
    expect(config.index.driver).toBe('sqlite');
    expect(config.index.path).toBe(join(dir, 'storage', 'index.db'));
    expect(config.index.postgres).toBeUndefined();
  });

  it('ignores index.postgres with the sqlite driver', () => {
    const config = load({ overrides: { index: { driver: 'sqlite', postgres: { url: 'postgres://a@b/c' } } } });
    expect(config.index.driver).toBe('sqlite');
    expect(config.index.postgres).toBeUndefined();
  });

  it('gives the postgres driver a pool of 10 and leaves the rest unset', () => {
    const config = load({ overrides: { ...SHARED, index: { driver: 'postgres', postgres: { url: 'postgres://reg@db.internal/registry' } } } });
    expect(config.index.driver).toBe('postgres');
    expect(config.index.postgres).toEqual({ url: 'postgres://reg@db.internal/registry', poolSize: 10 });
    // The SQLite path keeps its default: reindex and index copy may still name it.
    expect(config.index.path).toBe(join(dir, 'storage', 'index.db'));
  });
});

describe('index.postgres keys', () => {
  it('reads every key from the file', async () => {
    const path = await configFile(
      [
        'storage:',
        '  filesystem:',
        '    rootdirectory: /srv/registry',
        '    shared: true',
        'index:',
        '  driver: postgres',
        '  path: other.db',
        '  postgres:',
        '    url: postgres://base@base-host:6000/basedb',
        '    host: db.internal',
        '    port: 5433',
        '    database: registry',
        '    user: ocireg',
        '    password: file-pass',
        '    sslmode: verify-full',
        '    poolsize: 25',
        '',
      ].join('\n'),
    );
    const config = load({ path });
    expect(config.storage.rootDirectory).toBe('/srv/registry');
    expect(config.index).toEqual({
      driver: 'postgres',
      path: join(dir, 'other.db'),
      postgres: {
        url: 'postgres://base@base-host:6000/basedb',
        host: 'db.internal',
        port: 5433,
        database: 'registry',
        user: 'ocireg',
        password: 'file-pass',
        sslmode: 'verify-full',
        poolSize: 25,
      },
    });
  });

  it('takes a host without a URL', () => {
    const config = load({ overrides: { ...SHARED, index: { driver: 'postgres', postgres: { host: 'db.internal' } } } });
    expect(config.index.postgres).toEqual({ host: 'db.internal', poolSize: 10 });
  });

  it('accepts postgresql:// as well as postgres://', () => {
    const config = load({ overrides: { ...SHARED, index: { driver: 'postgres', postgres: { url: 'postgresql://u@h/d' } } } });
    expect(config.index.postgres?.url).toBe('postgresql://u@h/d');
  });

  it.each(['disable', 'prefer', 'require', 'verify-ca', 'verify-full'] as const)('accepts sslmode %s', (sslmode) => {
    const config = load({ overrides: { ...SHARED, index: { driver: 'postgres', postgres: { host: 'h', sslmode } } } });
    expect(config.index.postgres?.sslmode).toBe(sslmode);
  });

  it('sets every key from REGISTRY_INDEX_* variables', () => {
    const config = load({
      env: {
        REGISTRY_STORAGE_FILESYSTEM_SHARED: 'true',
        REGISTRY_INDEX_DRIVER: 'postgres',
        REGISTRY_INDEX_PATH: 'idx/source.db',
        REGISTRY_INDEX_POSTGRES_URL: 'postgres://env@env-host/envdb',
        REGISTRY_INDEX_POSTGRES_HOST: 'pg.example',
        REGISTRY_INDEX_POSTGRES_PORT: '6543',
        REGISTRY_INDEX_POSTGRES_DATABASE: 'regdb',
        REGISTRY_INDEX_POSTGRES_USER: 'reguser',
        REGISTRY_INDEX_POSTGRES_PASSWORD: 'env-pass',
        REGISTRY_INDEX_POSTGRES_SSLMODE: 'require',
        REGISTRY_INDEX_POSTGRES_POOLSIZE: '3',
      },
    });
    expect(config.index).toEqual({
      driver: 'postgres',
      path: join(dir, 'idx/source.db'),
      postgres: {
        url: 'postgres://env@env-host/envdb',
        host: 'pg.example',
        port: 6543,
        database: 'regdb',
        user: 'reguser',
        password: 'env-pass',
        sslmode: 'require',
        poolSize: 3,
      },
    });
  });

  it('lets a variable override the file', async () => {
    const path = await configFile(
      'storage:\n  filesystem:\n    shared: true\nindex:\n  driver: postgres\n  postgres:\n    url: postgres://a@file-host/db\n    poolsize: 4\n',
    );
    const config = load({ path, env: { REGISTRY_INDEX_POSTGRES_URL: 'postgres://a@env-host/db', REGISTRY_INDEX_POSTGRES_POOLSIZE: '7' } });
    expect(config.index.postgres).toEqual({ url: 'postgres://a@env-host/db', poolSize: 7 });
    // And back to SQLite from the environment, whatever the file says.
    expect(load({ path, env: { REGISTRY_INDEX_DRIVER: 'sqlite' } }).index.driver).toBe('sqlite');
  });

  it('reads storage.filesystem.shared from the file and from REGISTRY_STORAGE_FILESYSTEM_SHARED', async () => {
    const path = await configFile('storage:\n  filesystem:\n    shared: true\nindex:\n  driver: postgres\n  postgres:\n    host: h\n');
    expect(load({ path }).index.driver).toBe('postgres');
    expect(load({ env: { REGISTRY_STORAGE_FILESYSTEM_SHARED: 'true', REGISTRY_INDEX_DRIVER: 'postgres', REGISTRY_INDEX_POSTGRES_HOST: 'h' } }).index.driver).toBe('postgres');
    // The variable can take back what the file said.
    expect(configError({ path, env: { REGISTRY_STORAGE_FILESYSTEM_SHARED: 'false' } })).toContain('storage.filesystem.shared');
  });
});

describe('index configuration refused', () => {
  it('refuses an unknown driver, naming index.driver', () => {
    const message = configError({ overrides: { index: { driver: 'mysql' as 'postgres' } } });
    expect(message).toContain('index.driver');
    expect(configError({ env: { REGISTRY_INDEX_DRIVER: 'Postgres ' } })).toContain('index.driver');
  });

  it('refuses the postgres driver without a url or a host, naming index.postgres', () => {
    for (const postgres of [undefined, {}, { database: 'registry', user: 'u', password: 'p' }]) {
      const message = configError({ overrides: { ...SHARED, index: { driver: 'postgres', ...(postgres ? { postgres } : {}) } } });
      expect(message).toContain('index.postgres');
      expect(message).toMatch(/url/);
      expect(message).toMatch(/host/);
    }
    expect(configError({ env: { REGISTRY_STORAGE_FILESYSTEM_SHARED: 'true', REGISTRY_INDEX_DRIVER: 'postgres' } })).toContain('index.postgres');
  });

  it.each(['mysql://u:p@h/db', 'http://h/db', 'sqlite:///var/lib/index.db'])('refuses the URL %s, naming index.postgres.url', (url) => {
    const message = configError({ overrides: { ...SHARED, index: { driver: 'postgres', postgres: { url } } } });
    expect(message).toContain('index.postgres.url');
    expect(message).toMatch(/postgres:\/\//);
    // The password of a URL that is refused is not repeated either.
    expect(message).not.toContain(':p@');
  });

  it('refuses a URL that is not one, without repeating it', () => {
    const message = configError({ overrides: { ...SHARED, index: { driver: 'postgres', postgres: { url: 'db.internal:5432 with secret-pw' } } } });
    expect(message).toContain('index.postgres.url');
    expect(message).not.toContain('secret-pw');
  });

  it.each([
    ['port 0', { host: 'h', port: 0 }, 'index.postgres.port'],
    ['port 70000', { host: 'h', port: 70000 }, 'index.postgres.port'],
    ['a fractional port', { host: 'h', port: 5432.5 }, 'index.postgres.port'],
    ['poolsize 0', { host: 'h', poolsize: 0 }, 'index.postgres.poolsize'],
    ['poolsize 1001', { host: 'h', poolsize: 1001 }, 'index.postgres.poolsize'],
    ['an unknown sslmode', { host: 'h', sslmode: 'allow' }, 'index.postgres.sslmode'],
    ['an unknown key', { host: 'h', pool: 5 }, 'index.postgres'],
    ['an empty host', { host: '' }, 'index.postgres.host'],
  ])('refuses %s', (_what, postgres, key) => {
    const message = configError({ overrides: { ...SHARED, index: { driver: 'postgres', postgres: postgres as never } } });
    expect(message).toContain(key);
  });

  it.each([
    ['REGISTRY_INDEX_POSTGRES_PORT', 'fivefour'],
    ['REGISTRY_INDEX_POSTGRES_POOLSIZE', 'ten'],
  ])('refuses %s=%s', (name, value) => {
    const message = configError({ env: { REGISTRY_STORAGE_FILESYSTEM_SHARED: 'true', REGISTRY_INDEX_DRIVER: 'postgres', REGISTRY_INDEX_POSTGRES_HOST: 'h', [name]: value } });
    expect(message).toContain(name);
  });

  it('refuses REGISTRY_STORAGE_FILESYSTEM_SHARED that is not a boolean', () => {
    expect(configError({ env: { REGISTRY_STORAGE_FILESYSTEM_SHARED: 'yes' } })).toContain('REGISTRY_STORAGE_FILESYSTEM_SHARED');
  });

  it('refuses postgres over the filesystem driver unless the filesystem is shared, naming storage.filesystem.shared', async () => {
    const postgres = { driver: 'postgres', postgres: { url: 'postgres://u@h/d' } } as const;
    // No storage section at all (the filesystem driver by default), an explicit root, and shared: false.
    for (const storage of [undefined, { filesystem: { rootdirectory: '/srv/registry' } }, { filesystem: { shared: false } }]) {
      const message = configError({ overrides: { ...(storage ? { storage } : {}), index: postgres } });
      expect(message).toContain('storage.filesystem.shared');
      expect(message).toMatch(/s3/);
    }
    const path = await configFile('index:\n  driver: postgres\n  postgres:\n    url: postgres://u@h/d\n');
    expect(configError({ path })).toContain('storage.filesystem.shared');
    expect(load({ path, env: { REGISTRY_STORAGE_FILESYSTEM_SHARED: 'true' } }).index.driver).toBe('postgres');
  });

  it('accepts postgres over s3 without storage.filesystem.shared', () => {
    const config = load({ overrides: { ...S3, index: { driver: 'postgres', postgres: { host: 'db.internal', database: 'registry' } } } });
    expect(config.storage.s3?.bucket).toBe('registry-blobs');
    expect(config.index.postgres).toEqual({ host: 'db.internal', database: 'registry', poolSize: 10 });
    // The same through the environment, with REGISTRY_STORAGE choosing s3.
    const fromEnv = load({
      env: {
        REGISTRY_STORAGE: 's3',
        REGISTRY_STORAGE_S3_BUCKET: 'registry-blobs',
        REGISTRY_STORAGE_S3_REGION: 'eu-west-1',
        REGISTRY_INDEX_DRIVER: 'postgres',
        REGISTRY_INDEX_POSTGRES_URL: 'postgres://u@h/d',
      },
    });
    expect(fromEnv.index.driver).toBe('postgres');
  });

  it('accepts storage.filesystem.shared with the sqlite driver (it changes nothing there)', () => {
    const config = load({ overrides: { storage: { filesystem: { shared: true } } } });
    expect(config.index.driver).toBe('sqlite');
  });
});

describe('redact and the database password', () => {
  it('hides index.postgres.password', () => {
    const config = load({ overrides: { ...SHARED, index: { driver: 'postgres', postgres: { host: 'db.internal', user: 'ocireg', password: 'hunter2-field' } } } });
    expect(config.index.postgres?.password).toBe('hunter2-field');
    const safe = redact(config) as { index: { driver: string; postgres: Record<string, unknown> } };
    expect(safe.index.driver).toBe('postgres');
    expect(safe.index.postgres).toMatchObject({ host: 'db.internal', user: 'ocireg', password: '[redacted]', poolSize: 10 });
    expect(JSON.stringify(safe)).not.toContain('hunter2-field');
    // The configuration itself keeps it.
    expect(config.index.postgres?.password).toBe('hunter2-field');
  });

  it('hides the password inside index.postgres.url and keeps the rest of the URL', () => {
    const url = 'postgres://ocireg:hunter2-in-url@db.internal:5433/registry?sslmode=require';
    const config = load({ overrides: { ...SHARED, index: { driver: 'postgres', postgres: { url } } } });
    const safe = redact(config) as { index: { postgres: { url: string; password?: string } } };
    const text = JSON.stringify(safe);
    expect(text).not.toContain('hunter2-in-url');
    const shown = new URL(safe.index.postgres.url);
    expect(shown.username).toBe('ocireg');
    expect(shown.host).toBe('db.internal:5433');
    expect(shown.pathname).toBe('/registry');
    expect(shown.searchParams.get('sslmode')).toBe('require');
    expect(shown.password).not.toBe('hunter2-in-url');
    expect(safe.index.postgres.password).toBeUndefined();
  });

  it('hides a password given through the environment, in both places', () => {
    const config = load({
      env: {
        REGISTRY_STORAGE_FILESYSTEM_SHARED: 'true',
        REGISTRY_INDEX_DRIVER: 'postgres',
        REGISTRY_INDEX_POSTGRES_URL: 'postgres://u:url%40secret%2Fpart@h/d',
        REGISTRY_INDEX_POSTGRES_PASSWORD: 'env-field-secret',
      },
    });
    const text = JSON.stringify(redact(config));
    expect(text).not.toContain('url%40secret');
    expect(text).not.toContain('url@secret');
    expect(text).not.toContain('env-field-secret');
  });

  it('leaves a URL without a password as it is, and the sqlite index alone', () => {
    const config = load({ overrides: { ...SHARED, index: { driver: 'postgres', postgres: { url: 'postgres://ocireg@h:5432/d' } } } });
    const safe = redact(config) as { index: { postgres: { url: string } } };
    expect(safe.index.postgres.url).toBe('postgres://ocireg@h:5432/d');
    const sqlite = redact(load()) as { index: unknown };
    expect(sqlite.index).toEqual({ driver: 'sqlite', path: join(dir, 'storage', 'index.db') });
  });

  it('redactUrl never gives back a password, even from text that is not a URL', () => {
    expect(redactUrl('postgres://a:b@h/d')).not.toContain(':b@');
    expect(redactUrl('not a url, password=pw')).not.toContain('pw');
  });
});

describe('a PostgreSQL URL that cannot be read safely', () => {
  it('is refused, naming the key and not echoing the password', () => {
    for (const url of ['postgres://u:1234#Xyz@db/reg', 'postgres://u:p@ss@db/reg', 'postgres://u:12/ab@db/reg']) {
      const message = configError({ overrides: { ...S3, index: { driver: 'postgres', postgres: { url } } } });
      expect(message, url).toContain('index.postgres.url');
      expect(message, url).toContain('percent-encode');
      for (const secret of ['Xyz', 'p@ss', '12/ab']) expect(message).not.toContain(secret);
    }
  });

  it('is taken once its special characters are encoded', () => {
    const config = load({ overrides: { ...S3, index: { driver: 'postgres', postgres: { url: 'postgres://u:1234%23Xyz@db/reg' } } } });
    expect(config.index.postgres?.url).toBe('postgres://u:1234%23Xyz@db/reg');
    expect(JSON.stringify(redact(config))).not.toContain('Xyz');
  });
});
