import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, parseAddr, redact, type LoadOptions } from '../../src/config/config.js';

/** The config.yml that the registry:2 image ships with. */
const DISTRIBUTION_DEFAULT = `version: 0.1
log:
  fields:
    service: registry
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: /var/lib/registry
http:
  addr: :5000
  headers:
    X-Content-Type-Options: [nosniff]
health:
  storagedriver:
    enabled: true
    interval: 10s
    threshold: 3
`;

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ocireg-config-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function configFile(text: string, name = 'config.yml'): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, text);
  return path;
}

/** Loads with an empty environment unless one is given: the real process.env is never read. */
function load(options: LoadOptions = {}) {
  return loadConfig({ env: {}, cwd: dir, ...options });
}

/** Asserts that loading fails with a ConfigError, and returns its message. */
function configError(options: LoadOptions): string {
  try {
    load(options);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('expected a ConfigError, but the configuration loaded');
}

describe('loadConfig defaults', () => {
  it('without a file, listens on 0.0.0.0:5000 and stores under <cwd>/storage', () => {
    const config = load();
    expect(config.http.host).toBe('0.0.0.0');
    expect(config.http.port).toBe(5000);
    expect(config.http.headers).toEqual({});
    expect(config.http.tls).toBeUndefined();
    expect(config.http.publicUrl).toBeUndefined();
    expect(config.storage.rootDirectory).toBe(join(dir, 'storage'));
    expect(config.index.path).toBe(join(dir, 'storage', 'index.db'));
    expect(config.storage.deleteEnabled).toBe(true);
    expect(config.storage.readOnly).toBe(false);
    expect(config.storage.uploadPurging).toEqual({ enabled: true, ageMs: 86_400_000, intervalMs: 3_600_000, dryRun: false });
    expect(config.log.level).toBe('info');
    expect(config.ignoredKeys).toEqual([]);
  });

  it('reads a relative file path against cwd', async () => {
    await configFile('http:\n  addr: :6001\n', 'relative.yml');
    expect(load({ path: 'relative.yml' }).http.port).toBe(6001);
    expect(load({ env: { REGISTRY_CONFIGURATION_PATH: 'relative.yml' } }).http.port).toBe(6001);
  });

  it('treats an empty file as all defaults', async () => {
    const config = load({ path: await configFile('') });
    expect(config.http.port).toBe(5000);
    expect(config.storage.rootDirectory).toBe(join(dir, 'storage'));
  });

  it('returns a deeply frozen object', () => {
    const config = load({ overrides: { http: { headers: { 'X-A': ['b'] } } } });
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.http)).toBe(true);
    expect(Object.isFrozen(config.http.headers)).toBe(true);
    expect(Object.isFrozen(config.http.headers['X-A'])).toBe(true);
    expect(Object.isFrozen(config.storage.uploadPurging)).toBe(true);
    expect(Object.isFrozen(config.ignoredKeys)).toBe(true);
    expect(() => {
      (config.http as { port: number }).port = 1;
    }).toThrow(TypeError);
    expect(config.http.port).toBe(5000);
  });
});

describe('loadConfig with a distribution config.yml', () => {
  it('loads the registry:2 default configuration and lists the keys it ignores', async () => {
    const config = load({ path: await configFile(DISTRIBUTION_DEFAULT) });
    expect(config.http.host).toBe('0.0.0.0');
    expect(config.http.port).toBe(5000);
    expect(config.http.headers).toEqual({ 'X-Content-Type-Options': ['nosniff'] });
    expect(config.storage.rootDirectory).toBe('/var/lib/registry');
    expect(config.index.path).toBe('/var/lib/registry/index.db');
    expect(config.log.fields).toEqual({ service: 'registry' });
    expect([...config.ignoredKeys].sort()).toEqual(['health', 'storage.cache', 'version']);
  });

  it('reads the keys it acts on', async () => {
    const path = await configFile(`
http:
  addr: 127.0.0.1:8080
  host: https://registry.example.com/
  draintimeout: 30s
  tls:
    certificate: certs/server.pem
    key: certs/server.key
storage:
  filesystem:
    rootdirectory: data
  delete:
    enabled: false
  maintenance:
    uploadpurging:
      enabled: false
      age: 1h30m
      interval: 10m
      dryrun: true
    readonly:
      enabled: true
index:
  path: db/registry.db
log:
  level: debug
  accesslog:
    disabled: true
`);
    const config = load({ path });
    expect(config.http).toMatchObject({
      host: '127.0.0.1',
      port: 8080,
      publicUrl: 'https://registry.example.com',
      drainTimeoutMs: 30_000,
      tls: { certificate: join(dir, 'certs/server.pem'), key: join(dir, 'certs/server.key') },
    });
    expect(config.storage).toEqual({
      rootDirectory: join(dir, 'data'),
      deleteEnabled: false,
      readOnly: true,
      uploadPurging: { enabled: false, ageMs: 5_400_000, intervalMs: 600_000, dryRun: true },
    });
    expect(config.index.path).toBe(join(dir, 'db/registry.db'));
    expect(config.log).toMatchObject({ level: 'debug', accessLog: false });
    expect(config.ignoredKeys).toEqual([]);
  });
});

describe('loadConfig rejects what it does not understand', () => {
  it('names an unknown top-level key', async () => {
    const message = configError({ path: await configFile('notifications:\n  endpoints: []\n') });
    expect(message).toContain('"notifications"');
    expect(message).toContain(join(dir, 'config.yml'));
  });

  it('names an unknown nested key with its parent', async () => {
    expect(configError({ path: await configFile('storage:\n  s3:\n    bucket: b\n') })).toMatch(/storage: .*"s3"/);
    const deep = await configFile('storage:\n  maintenance:\n    uploadpurging:\n      every: 1h\n', 'deep.yml');
    expect(configError({ path: deep })).toMatch(/storage\.maintenance\.uploadpurging: .*"every"/);
  });

  it.each([
    ['http.addr as a number', 'http:\n  addr: 5000\n', 'http.addr'],
    ['a boolean as a string', 'storage:\n  delete:\n    enabled: "yes"\n', 'storage.delete.enabled'],
    ['a header value that is not a list', 'http:\n  headers:\n    X-A: b\n', 'http.headers.X-A'],
    ['an unknown log level', 'log:\n  level: loud\n', 'log.level'],
    ['an invalid duration', 'storage:\n  maintenance:\n    uploadpurging:\n      age: soon\n', 'storage.maintenance.uploadpurging.age'],
    ['a section that is a string', 'storage: filesystem\n', 'storage'],
    ['a public URL that is not a URL', 'http:\n  host: not a url\n', 'http.host'],
    ['tls without a key', 'http:\n  tls:\n    certificate: c.pem\n', 'http.tls.key'],
  ])('names the key of %s', async (_label, text, key) => {
    expect(configError({ path: await configFile(text) })).toContain(`${key}:`);
  });

  it('refuses an http.addr it cannot parse', async () => {
    expect(configError({ path: await configFile('http:\n  addr: localhost\n') })).toMatch(/http\.addr.*"localhost"/);
  });

  it('refuses an upload purging interval of zero', async () => {
    const path = await configFile('storage:\n  maintenance:\n    uploadpurging:\n      interval: "0"\n');
    expect(configError({ path })).toMatch(/uploadpurging\.interval/);
  });

  it('refuses an unreadable file, naming it', () => {
    const missing = join(dir, 'missing.yml');
    expect(configError({ path: missing })).toContain(missing);
  });

  it('refuses invalid YAML', async () => {
    expect(configError({ path: await configFile('http: [\n') })).toMatch(/not valid YAML/);
  });

  it('refuses a YAML document that is not a mapping', async () => {
    expect(configError({ path: await configFile('- a\n- b\n') })).toMatch(/mapping/);
  });
});

describe('loadConfig environment overrides', () => {
  it('applies REGISTRY_* variables over the file', async () => {
    const config = load({
      path: await configFile(DISTRIBUTION_DEFAULT),
      env: {
        REGISTRY_HTTP_ADDR: '127.0.0.1:6000',
        REGISTRY_STORAGE_DELETE_ENABLED: 'false',
        REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: '/srv/registry',
        REGISTRY_INDEX_PATH: 'index/registry.db',
        REGISTRY_LOG_LEVEL: 'warn',
      },
    });
    expect(config.http.host).toBe('127.0.0.1');
    expect(config.http.port).toBe(6000);
    expect(config.storage.deleteEnabled).toBe(false);
    expect(config.storage.rootDirectory).toBe('/srv/registry');
    expect(config.index.path).toBe(join(dir, 'index/registry.db'));
    expect(config.log.level).toBe('warn');
    // What the environment does not set still comes from the file.
    expect(config.http.headers).toEqual({ 'X-Content-Type-Options': ['nosniff'] });
  });

  it('reads booleans case-insensitively and ignores empty variables', () => {
    const config = load({ env: { REGISTRY_STORAGE_DELETE_ENABLED: 'FALSE', REGISTRY_HTTP_ADDR: '' } });
    expect(config.storage.deleteEnabled).toBe(false);
    expect(config.http.port).toBe(5000);
  });

  it('moves the index with the storage root unless it is set', () => {
    const config = load({ env: { REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: '/srv/registry' } });
    expect(config.index.path).toBe('/srv/registry/index.db');
  });

  it('refuses a boolean variable that is not true or false, naming it', () => {
    expect(configError({ env: { REGISTRY_STORAGE_DELETE_ENABLED: 'no' } })).toMatch(
      /REGISTRY_STORAGE_DELETE_ENABLED.*"no"/,
    );
  });

  it('refuses a numeric variable that is not a number', () => {
    expect(configError({ env: { REGISTRY_STORAGE_FILESYSTEM_MAXTHREADS: 'many' } })).toMatch(
      /REGISTRY_STORAGE_FILESYSTEM_MAXTHREADS/,
    );
  });

  it('validates values from the environment like values from the file', () => {
    expect(configError({ env: { REGISTRY_LOG_LEVEL: 'loud' } })).toContain('log.level:');
  });

  it('reads the file named by REGISTRY_CONFIGURATION_PATH when no path is given', async () => {
    const path = await configFile(DISTRIBUTION_DEFAULT);
    const config = load({ env: { REGISTRY_CONFIGURATION_PATH: path } });
    expect(config.storage.rootDirectory).toBe('/var/lib/registry');
  });

  it('prefers an explicit path over REGISTRY_CONFIGURATION_PATH', async () => {
    const fromEnv = await configFile(DISTRIBUTION_DEFAULT, 'env.yml');
    const explicit = await configFile('storage:\n  filesystem:\n    rootdirectory: /explicit\n', 'explicit.yml');
    const config = load({ path: explicit, env: { REGISTRY_CONFIGURATION_PATH: fromEnv } });
    expect(config.storage.rootDirectory).toBe('/explicit');
  });

  it('fails when REGISTRY_CONFIGURATION_PATH names a missing file', () => {
    const missing = join(dir, 'nope.yml');
    expect(configError({ env: { REGISTRY_CONFIGURATION_PATH: missing } })).toContain(missing);
  });
});

describe('parseAddr', () => {
  it.each([
    [':5000', '0.0.0.0', 5000],
    ['localhost:8080', 'localhost', 8080],
    ['127.0.0.1:443', '127.0.0.1', 443],
    ['[::1]:5000', '::1', 5000],
    ['[::]:5001', '::', 5001],
    [' :5000 ', '0.0.0.0', 5000],
  ])('%j → %s port %d', (addr, host, port) => {
    expect(parseAddr(addr)).toEqual({ host, port });
  });

  it.each(['', '5000', 'localhost', 'localhost:', ':http', ':70000', ':123456', '::1:5000', '[::1]', 'a:b:5000'])(
    'refuses %j',
    (addr) => {
      expect(() => parseAddr(addr)).toThrow(ConfigError);
    },
  );
});

describe('redact', () => {
  it('hides the TLS key and keeps the rest', () => {
    const config = load({ env: { REGISTRY_HTTP_TLS_CERTIFICATE: 'server.pem', REGISTRY_HTTP_TLS_KEY: 'secret.key' } });
    expect(config.http.tls?.key).toBe(join(dir, 'secret.key'));
    const safe = redact(config) as { http: { tls: { certificate: string; key: string }; port: number } };
    expect(safe.http.tls).toEqual({ certificate: join(dir, 'server.pem'), key: '[redacted]' });
    expect(safe.http.port).toBe(5000);
    expect(JSON.stringify(safe)).not.toContain('secret.key');
    // The configuration itself is untouched.
    expect(config.http.tls?.key).toBe(join(dir, 'secret.key'));
  });

  it('works without TLS', () => {
    const safe = redact(load()) as { http: { tls?: unknown; port: number } };
    expect(safe.http.tls).toBeUndefined();
    expect(safe.http.port).toBe(5000);
  });
});
