import { join } from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, parseAddr, redact } from '../../src/config/config.js';
import { useConfigDir } from './support.js';

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

const fixture = useConfigDir();
const { load, configError, configFile } = fixture;
let dir: string;
beforeEach(() => {
  dir = fixture.dir;
});

describe('loadConfig defaults', () => {
  it('without a file, listens on 0.0.0.0:5000 and stores under <cwd>/storage', () => {
    const config = load();
    expect(config.http.host).toBe('0.0.0.0');
    expect(config.http.port).toBe(5000);
    expect(config.http.headers).toEqual({});
    expect(config.http.tls).toBeUndefined();
    expect(config.http.publicUrl).toBeUndefined();
    expect(config.storage.s3).toBeUndefined();
    expect(config.storage.s3).toBeUndefined();
    expect(config.storage.redirect).toBe(true);
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
      redirect: true,
      rootDirectory: join(dir, 'data'),
      deleteEnabled: false,
      readOnly: true,
      uploadPurging: { enabled: false, ageMs: 5_400_000, intervalMs: 600_000, dryRun: true },
      gc: { enabled: true, intervalMs: 3_600_000, delayMs: 3_600_000, dryRun: false, deleteUntagged: false },
    });
    expect(config.index.path).toBe(join(dir, 'db/registry.db'));
    expect(config.log).toMatchObject({ level: 'debug', accessLog: false });
    expect(config.ignoredKeys).toEqual([]);
  });
});

describe('loadConfig rejects what it does not understand', () => {
  it('names an unknown top-level key', async () => {
    const message = configError({ path: await configFile('mirror:\n  remoteurl: https://registry-1.docker.io\n') });
    expect(message).toContain('"mirror"');
    expect(message).toContain(join(dir, 'config.yml'));
  });

  it('names an unknown nested key with its parent', async () => {
    expect(configError({ path: await configFile('storage:\n  azure:\n    container: c\n') })).toMatch(/storage: .*"azure"/);
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

/** distribution's documented S3 example, with the keys this registry accepts without acting on. */
const DISTRIBUTION_S3 = `version: 0.1
storage:
  s3:
    accesskey: AKIAEXAMPLEACCESSKEY
    secretkey: wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY
    region: eu-west-1
    regionendpoint: http://minio:9000/
    forcepathstyle: true
    bucket: registry-blobs
    secure: true
    v4auth: true
    chunksize: 5242880
    multipartcopychunksize: 33554432
    multipartcopymaxconcurrency: 100
    multipartcopythresholdsize: 33554432
    rootdirectory: /s3/object/name/prefix/
    useragent: registry
    loglevel: debug
  redirect:
    disable: true
`;

describe('loadConfig with the s3 driver', () => {
  it('reads distribution\'s s3 section and lists the s3 keys it ignores', async () => {
    const config = load({ path: await configFile(DISTRIBUTION_S3) });
    expect(config.storage.s3).toBeDefined();
    expect(config.storage.s3).toEqual({
      region: 'eu-west-1',
      bucket: 'registry-blobs',
      endpoint: 'http://minio:9000',
      accessKey: 'AKIAEXAMPLEACCESSKEY',
      secretKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
      forcePathStyle: true,
      rootDirectory: 's3/object/name/prefix',
      chunkSize: 5_242_880,
    });
    // The redirect setting acts with s3, so it is not reported as ignored.
    expect(config.storage.redirect).toBe(false);
    expect([...config.ignoredKeys].sort()).toEqual([
      'storage.s3.loglevel',
      'storage.s3.multipartcopychunksize',
      'storage.s3.multipartcopymaxconcurrency',
      'storage.s3.multipartcopythresholdsize',
      'storage.s3.useragent',
      'version',
    ]);
    expect(Object.isFrozen(config.storage.s3)).toBe(true);
  });

  it('defaults to no endpoint, no static credentials, no prefix, virtual-hosted style, 10 MiB parts and redirects', () => {
    const config = load({ overrides: { storage: { s3: { bucket: 'blobs', region: 'us-west-2' } } } });
    expect(config.storage.s3).toEqual({
      region: 'us-west-2',
      bucket: 'blobs',
      forcePathStyle: false,
      rootDirectory: '',
      chunkSize: 10_485_760,
    });
    expect(config.storage.redirect).toBe(true);
    expect(config.ignoredKeys).toEqual([]);
  });

  it('keeps the index local, under storage.rootDirectory', () => {
    const config = load({ overrides: { storage: { s3: { bucket: 'blobs', region: 'us-west-2' } } } });
    expect(config.storage.rootDirectory).toBe(join(dir, 'storage'));
    expect(config.index.path).toBe(join(dir, 'storage', 'index.db'));
  });

  it('still reports storage.redirect as ignored with the filesystem driver', () => {
    const config = load({ overrides: { storage: { redirect: { disable: true } } } });
    expect(config.storage.s3).toBeUndefined();
    expect(config.storage.redirect).toBe(false);
    expect(config.ignoredKeys).toEqual(['storage.redirect']);
  });

  it('takes every s3 key from REGISTRY_STORAGE_S3_* variables', () => {
    const config = load({
      env: {
        REGISTRY_STORAGE_S3_BUCKET: 'env-bucket',
        REGISTRY_STORAGE_S3_REGION: 'ap-south-1',
        REGISTRY_STORAGE_S3_REGIONENDPOINT: 'minio.local:9000',
        REGISTRY_STORAGE_S3_ACCESSKEY: 'env-access',
        REGISTRY_STORAGE_S3_SECRETKEY: 'env-secret',
        REGISTRY_STORAGE_S3_FORCEPATHSTYLE: 'TRUE',
        REGISTRY_STORAGE_S3_ROOTDIRECTORY: '/registry',
        REGISTRY_STORAGE_S3_CHUNKSIZE: '16777216',
        REGISTRY_STORAGE_S3_SECURE: 'false',
        REGISTRY_STORAGE_S3_V4AUTH: 'true',
        REGISTRY_STORAGE_S3_LOGLEVEL: 'debug',
        REGISTRY_STORAGE_S3_MULTIPARTCOPYCHUNKSIZE: '33554432',
        REGISTRY_STORAGE_S3_MULTIPARTCOPYMAXCONCURRENCY: '100',
        REGISTRY_STORAGE_S3_MULTIPARTCOPYTHRESHOLDSIZE: '33554432',
        REGISTRY_STORAGE_S3_USERAGENT: 'registry',
      },
    });
    expect(config.storage.s3).toBeDefined();
    expect(config.storage.s3).toEqual({
      region: 'ap-south-1',
      bucket: 'env-bucket',
      endpoint: 'http://minio.local:9000',
      accessKey: 'env-access',
      secretKey: 'env-secret',
      forcePathStyle: true,
      rootDirectory: 'registry',
      chunkSize: 16_777_216,
    });
    expect(config.ignoredKeys).toHaveLength(5);
  });

  it('refuses a numeric s3 variable that is not a number', () => {
    expect(configError({ env: { REGISTRY_STORAGE_S3_BUCKET: 'blobs', REGISTRY_STORAGE_S3_CHUNKSIZE: '10MiB' } })).toMatch(
      /REGISTRY_STORAGE_S3_CHUNKSIZE.*"10MiB"/,
    );
  });

  describe('regionendpoint', () => {
    const endpointOf = (s3: Record<string, unknown>) =>
      load({ overrides: { storage: { s3: { bucket: 'blobs', ...s3 } } } }).storage.s3?.endpoint;

    it.each([
      [{ regionendpoint: 'minio:9000' }, 'https://minio:9000'],
      [{ regionendpoint: 'minio:9000', secure: true }, 'https://minio:9000'],
      [{ regionendpoint: 'minio:9000', secure: false }, 'http://minio:9000'],
      [{ regionendpoint: 'minio:9000/', secure: false }, 'http://minio:9000'],
      [{ regionendpoint: 'https://s3.example.com//' }, 'https://s3.example.com'],
      // A scheme that is given wins over `secure`.
      [{ regionendpoint: 'https://s3.example.com', secure: false }, 'https://s3.example.com'],
      [{ regionendpoint: 'http://127.0.0.1:9000', secure: true }, 'http://127.0.0.1:9000'],
      [{ regionendpoint: '' }, undefined],
    ])('%j → %s', (s3, endpoint) => {
      expect(endpointOf({ region: 'eu-west-1', ...s3 })).toBe(endpoint);
    });

    it.each(['ftp://files.example.com', 'https://', 'http://bad host'])('refuses %j', (regionendpoint) => {
      expect(configError({ overrides: { storage: { s3: { bucket: 'blobs', region: 'eu-west-1', regionendpoint } } } })).toMatch(
        /storage\.s3\.regionendpoint/,
      );
    });
  });

  describe('region', () => {
    const regionOf = (s3: Record<string, unknown>, env: NodeJS.ProcessEnv = {}) =>
      load({ env, overrides: { storage: { s3: { bucket: 'blobs', ...s3 } } } }).storage.s3?.region;

    it('prefers storage.s3.region over the AWS variables', () => {
      expect(regionOf({ region: 'eu-west-1' }, { AWS_REGION: 'us-west-1', AWS_DEFAULT_REGION: 'us-west-2' })).toBe('eu-west-1');
    });

    it('falls back to AWS_REGION, then AWS_DEFAULT_REGION', () => {
      expect(regionOf({}, { AWS_REGION: 'us-west-1', AWS_DEFAULT_REGION: 'us-west-2' })).toBe('us-west-1');
      expect(regionOf({}, { AWS_DEFAULT_REGION: 'us-west-2' })).toBe('us-west-2');
      expect(regionOf({}, { AWS_REGION: '', AWS_DEFAULT_REGION: 'us-west-2' })).toBe('us-west-2');
    });

    it('uses us-east-1 with an endpoint and nothing else', () => {
      expect(regionOf({ regionendpoint: 'http://minio:9000' })).toBe('us-east-1');
      expect(regionOf({ regionendpoint: 'http://minio:9000' }, { AWS_REGION: 'eu-central-1' })).toBe('eu-central-1');
    });

    it('is required without an endpoint', () => {
      expect(configError({ overrides: { storage: { s3: { bucket: 'blobs' } } } })).toMatch(/storage\.s3\.region is required/);
    });
  });

  it.each([
    ['/', ''],
    ['registry', 'registry'],
    ['//a/b//', 'a/b'],
  ])('turns rootdirectory %j into the key prefix %j', (rootdirectory, prefix) => {
    const config = load({ overrides: { storage: { s3: { bucket: 'blobs', region: 'eu-west-1', rootdirectory } } } });
    expect(config.storage.s3?.rootDirectory).toBe(prefix);
  });

  it.each(['a//b', '/a/./b', '../a', '/a/..'])('refuses the rootdirectory %j', (rootdirectory) => {
    expect(configError({ overrides: { storage: { s3: { bucket: 'blobs', region: 'eu-west-1', rootdirectory } } } })).toMatch(
      /storage\.s3\.rootdirectory/,
    );
  });

  it.each([
    ['an access key alone', { accesskey: 'AKIAEXAMPLEACCESSKEY' }],
    ['a secret key alone', { secretkey: 'wJalrXUtnFEMI' }],
    ['an access key with an empty secret key', { accesskey: 'AKIAEXAMPLEACCESSKEY', secretkey: '' }],
  ])('refuses %s', (_label, credentials) => {
    expect(configError({ overrides: { storage: { s3: { bucket: 'blobs', region: 'eu-west-1', ...credentials } } } })).toMatch(
      /accesskey and secretkey/,
    );
  });

  it.each([
    ['no bucket', 'storage:\n  s3:\n    region: eu-west-1\n', 'storage.s3.bucket:'],
    ['a bucket with capitals', 'storage:\n  s3:\n    region: eu-west-1\n    bucket: My_Bucket\n', 'storage.s3.bucket:'],
    ['a bucket too short', 'storage:\n  s3:\n    region: eu-west-1\n    bucket: ab\n', 'storage.s3.bucket:'],
    ['a bucket too long', `storage:\n  s3:\n    region: eu-west-1\n    bucket: ${'a'.repeat(64)}\n`, 'storage.s3.bucket:'],
    ['a chunk size under 5 MiB', 'storage:\n  s3:\n    bucket: blobs\n    chunksize: 5242879\n', 'storage.s3.chunksize:'],
    ['a chunk size over 1 GiB', 'storage:\n  s3:\n    bucket: blobs\n    chunksize: 1073741825\n', 'storage.s3.chunksize:'],
    ['a chunk size that is not whole', 'storage:\n  s3:\n    bucket: blobs\n    chunksize: 6000000.5\n', 'storage.s3.chunksize:'],
    ['a chunk size as a string', 'storage:\n  s3:\n    bucket: blobs\n    chunksize: 10MiB\n', 'storage.s3.chunksize:'],
    ['secure as a string', 'storage:\n  s3:\n    bucket: blobs\n    secure: "no"\n', 'storage.s3.secure:'],
  ])('names the key of %s', async (_label, text, key) => {
    expect(configError({ path: await configFile(text) })).toContain(key);
  });

  it('accepts the smallest and the largest chunk size', () => {
    for (const chunksize of [5_242_880, 1_073_741_824]) {
      const config = load({ overrides: { storage: { s3: { bucket: 'blobs', region: 'eu-west-1', chunksize } } } });
      expect(config.storage.s3?.chunkSize).toBe(chunksize);
    }
  });

  it('refuses v4auth: false, saying only SigV4 is supported', async () => {
    const message = configError({ path: await configFile('storage:\n  s3:\n    bucket: blobs\n    v4auth: false\n') });
    expect(message).toMatch(/storage\.s3\.v4auth: .*only SigV4/);
  });

  it('refuses an s3 key it does not know', async () => {
    const path = await configFile('storage:\n  s3:\n    bucket: blobs\n    storageclass: STANDARD\n');
    expect(configError({ path })).toMatch(/storage\.s3: .*"storageclass"/);
  });

  it('refuses both drivers at once and points at REGISTRY_STORAGE', async () => {
    const path = await configFile('storage:\n  filesystem:\n    rootdirectory: /data\n  s3:\n    bucket: blobs\n    region: eu-west-1\n');
    const message = configError({ path });
    expect(message).toMatch(/one storage driver/);
    expect(message).toContain('REGISTRY_STORAGE');
    // A driver section from the environment counts the same as one from the file.
    expect(configError({ path: await configFile(DISTRIBUTION_DEFAULT, 'fs.yml'), env: { REGISTRY_STORAGE_S3_BUCKET: 'blobs' } })).toMatch(
      /one storage driver/,
    );
  });
});

describe('REGISTRY_STORAGE', () => {
  it('s3 drops the filesystem section, even one set by REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY', async () => {
    const config = load({
      path: await configFile(DISTRIBUTION_S3),
      env: { REGISTRY_STORAGE: 's3', REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: '/srv/registry' },
    });
    expect(config.storage.s3).toBeDefined();
    expect(config.storage.s3?.bucket).toBe('registry-blobs');
    expect(config.storage.rootDirectory).toBe(join(dir, 'storage'));
  });

  it('filesystem drops the s3 section, case-insensitively', async () => {
    const config = load({
      path: await configFile(DISTRIBUTION_S3),
      env: { REGISTRY_STORAGE: 'FileSystem', REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: '/srv/registry' },
    });
    expect(config.storage.s3).toBeUndefined();
    expect(config.storage.s3).toBeUndefined();
    expect(config.storage.rootDirectory).toBe('/srv/registry');
    // The dropped section's ignored keys are not reported; storage.redirect is ignored again.
    expect([...config.ignoredKeys].sort()).toEqual(['storage.redirect', 'version']);
  });

  it('chooses s3 over a file that configures the filesystem driver', async () => {
    const config = load({
      path: await configFile(DISTRIBUTION_DEFAULT),
      env: { REGISTRY_STORAGE: 'S3', REGISTRY_STORAGE_S3_BUCKET: 'blobs', REGISTRY_STORAGE_S3_REGION: 'eu-west-1' },
    });
    expect(config.storage.s3).toBeDefined();
    expect(config.storage.s3?.bucket).toBe('blobs');
  });

  it('s3 without an s3 section asks for a bucket', () => {
    expect(configError({ env: { REGISTRY_STORAGE: 's3' } })).toContain('storage.s3.bucket:');
  });

  it('filesystem without a filesystem section uses the default root', () => {
    const config = load({ env: { REGISTRY_STORAGE: 'filesystem' } });
    expect(config.storage.s3).toBeUndefined();
    expect(config.storage.rootDirectory).toBe(join(dir, 'storage'));
  });

  it('is ignored when empty', async () => {
    expect(load({ path: await configFile(DISTRIBUTION_S3), env: { REGISTRY_STORAGE: '' } }).storage.s3).toBeDefined();
  });

  it.each(['azure', 'inmemory', 'gcs'])('refuses %j, naming the variable', (value) => {
    expect(configError({ env: { REGISTRY_STORAGE: value } })).toMatch(new RegExp(`REGISTRY_STORAGE: .*"${value}"`));
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

  it('hides the S3 access key and secret key and keeps the rest', async () => {
    const config = load({ path: await configFile(DISTRIBUTION_S3) });
    const safe = redact(config) as { storage: { s3: Record<string, unknown>; driver: string } };
    expect(safe.storage.s3).toBeDefined();
    expect(safe.storage.s3).toMatchObject({ bucket: 'registry-blobs', accessKey: '[redacted]', secretKey: '[redacted]' });
    const text = JSON.stringify(safe);
    expect(text).not.toContain('AKIAEXAMPLEACCESSKEY');
    expect(text).not.toContain('wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY');
    expect(config.storage.s3?.secretKey).toBe('wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY');
  });

  it('hides credentials that come from the environment along with the TLS key', () => {
    const config = load({
      env: {
        REGISTRY_HTTP_TLS_CERTIFICATE: 'server.pem',
        REGISTRY_HTTP_TLS_KEY: 'secret.key',
        REGISTRY_STORAGE_S3_BUCKET: 'blobs',
        REGISTRY_STORAGE_S3_REGION: 'eu-west-1',
        REGISTRY_STORAGE_S3_ACCESSKEY: 'env-access-key-id',
        REGISTRY_STORAGE_S3_SECRETKEY: 'env-secret-access-key',
      },
    });
    const text = JSON.stringify(redact(config));
    expect(text).not.toContain('secret.key');
    expect(text).not.toContain('env-access-key-id');
    expect(text).not.toContain('env-secret-access-key');
  });

  it('works without TLS', () => {
    const safe = redact(load()) as { http: { tls?: unknown; port: number } };
    expect(safe.http.tls).toBeUndefined();
    expect(safe.http.port).toBe(5000);
  });
});

describe('http.debug (metrics on a second address)', () => {
  it('is off unless an address is given, and metrics are off unless enabled', () => {
    expect(loadConfig({ env: {} }).http.debug).toBeUndefined();
    expect(loadConfig({ env: {}, overrides: { http: { debug: { addr: '127.0.0.1:5001' } } } }).http.debug).toEqual({ host: '127.0.0.1', port: 5001 });
  });

  it('serves metrics at /metrics by default, without repository labels', () => {
    const config = loadConfig({ env: {}, overrides: { http: { debug: { addr: ':5001', prometheus: { enabled: true } } } } });
    expect(config.http.debug).toEqual({ host: '0.0.0.0', port: 5001, prometheus: { path: '/metrics', repositoryLabels: false } });
  });

  it('takes REGISTRY_HTTP_DEBUG_* variables', () => {
    const config = loadConfig({
      env: {
        REGISTRY_HTTP_DEBUG_ADDR: '127.0.0.1:5101',
        REGISTRY_HTTP_DEBUG_PROMETHEUS_ENABLED: 'true',
        REGISTRY_HTTP_DEBUG_PROMETHEUS_PATH: '/prom',
        REGISTRY_HTTP_DEBUG_PROMETHEUS_REPOSITORYLABELS: 'true',
      },
    });
    expect(config.http.debug).toEqual({ host: '127.0.0.1', port: 5101, prometheus: { path: '/prom', repositoryLabels: true } });
  });

  it('refuses metrics without a debug address, the public port, a bad address or a bad path, naming the key', () => {
    const error = (http: object) => {
      try {
        loadConfig({ env: {}, overrides: { http } as never });
      } catch (err) {
        expect(err).toBeInstanceOf(ConfigError);
        return (err as Error).message;
      }
      throw new Error('the configuration was accepted');
    };
    expect(error({ debug: { prometheus: { enabled: true } } })).toMatch(/http\.debug\.prometheus\.enabled.*http\.debug\.addr/);
    expect(error({ addr: '127.0.0.1:5000', debug: { addr: '127.0.0.1:5000' } })).toMatch(/http\.debug\.addr: port 5000 is the public port/);
    expect(error({ debug: { addr: 'localhost' } })).toMatch(/http\.debug\.addr: expected host:port/);
    expect(error({ debug: { addr: ':5001', prometheus: { enabled: true, path: 'metrics' } } })).toMatch(/http\.debug\.prometheus\.path/);
  });
});

describe('http.secret and ui', () => {
  it('keeps http.secret (it signs the web UI sessions), never prints it, and turns the UI off with ui.enabled', () => {
    const config = loadConfig({ env: { REGISTRY_UI_ENABLED: 'false' }, overrides: { http: { secret: 'a shared secret' } } });
    expect(config.http.secret).toBe('a shared secret');
    expect(config.ignoredKeys).not.toContain('http.secret');
    expect(JSON.stringify(redact(config))).not.toContain('a shared secret');
    expect(config.ui.enabled).toBe(false);
    expect(loadConfig({ env: {} }).ui.enabled).toBe(true);
  });
});

describe('archives', () => {
  it('bounds imported archives: 16 GiB and 4096 entries unless archives.maxsize and .maxentries say otherwise', () => {
    expect(loadConfig({ env: {} }).archives).toEqual({ maxBytes: 16 * 1024 ** 3, maxEntries: 4096 });
    expect(loadConfig({ env: {}, overrides: { archives: { maxsize: 1048576, maxentries: 10 } } }).archives).toEqual({ maxBytes: 1048576, maxEntries: 10 });
    expect(loadConfig({ env: { REGISTRY_ARCHIVES_MAXSIZE: '2048', REGISTRY_ARCHIVES_MAXENTRIES: '7' } }).archives).toEqual({ maxBytes: 2048, maxEntries: 7 });
    expect(() => loadConfig({ env: {}, overrides: { archives: { maxentries: 0 } } })).toThrow(ConfigError);
    expect(() => loadConfig({ env: {}, overrides: { archives: { maxsize: 10 } } })).toThrow(/archives\.maxsize/);
    expect(() => loadConfig({ env: {}, overrides: { archives: { limit: 1 } } as never })).toThrow(ConfigError);
  });
});

describe('notifications', () => {
  const load = (notifications: object) => loadConfig({ env: {}, overrides: { notifications } as never });
  const error = (notifications: object) => {
    try {
      load(notifications);
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      return (err as Error).message;
    }
    throw new Error('the configuration was accepted');
  };

  it("takes distribution's endpoint keys, with its defaults, and leaves disabled endpoints out", () => {
    const config = load({
      events: { includereferences: true },
      endpoints: [
        {
          name: 'alistener',
          url: 'https://listener.example.com/event',
          headers: { Authorization: ['Bearer t0ken'], 'X-One': 'single' },
          timeout: '500ms',
          threshold: 5,
          backoff: '2s',
          ignoredmediatypes: ['application/octet-stream'],
          ignore: { mediatypes: ['application/vnd.oci.image.index.v1+json', 'application/octet-stream'], actions: ['pull'] },
        },
        { name: 'plain', url: 'http://127.0.0.1:9000/' },
        { name: 'off', url: 'http://127.0.0.1:9001/', disabled: true },
      ],
    });
    expect(config.notifications).toEqual({
      outboxMaxEvents: 1_000_000,
      endpoints: [
        {
          name: 'alistener',
          url: 'https://listener.example.com/event',
          headers: { Authorization: ['Bearer t0ken'], 'X-One': ['single'] },
          timeoutMs: 500,
          threshold: 5,
          backoffMs: 2000,
          ignoredMediaTypes: ['application/octet-stream', 'application/vnd.oci.image.index.v1+json'],
          ignoredActions: ['pull'],
        },
        { name: 'plain', url: 'http://127.0.0.1:9000/', headers: {}, timeoutMs: 1000, threshold: 10, backoffMs: 1000, ignoredMediaTypes: [], ignoredActions: [] },
      ],
    });
    expect(config.ignoredKeys).toContain('notifications.events');
    expect(load({ endpoints: [{ name: 'off', url: 'http://x/', disabled: true }] }).notifications).toBeUndefined();
    expect(load({ endpoints: [{ name: 'a', url: 'http://x/' }], outbox: { maxevents: 50 } }).notifications?.outboxMaxEvents).toBe(50);
  });

  it('never prints the headers or the credentials and query of the URL', () => {
    const config = load({ endpoints: [{ name: 'a', url: 'https://user:pw-secret@hooks.example.com/in?token=q-secret', headers: { Authorization: 'Bearer h-secret' } }] });
    const text = JSON.stringify(redact(config));
    for (const secret of ['pw-secret', 'q-secret', 'h-secret']) expect(text).not.toContain(secret);
    expect(text).toContain('hooks.example.com');
  });

  it('refuses bad endpoints, naming the key', () => {
    expect(error({ endpoints: [{ name: 'a', url: 'not a url' }] })).toMatch(/notifications\.endpoints\[0\]\.url: not a URL/);
    expect(error({ endpoints: [{ name: 'a', url: 'ftp://x/' }] })).toMatch(/notifications\.endpoints\[0\]\.url: must be http/);
    expect(error({ endpoints: [{ name: 'a', url: 'http://x/' }, { name: 'a', url: 'http://y/' }] })).toMatch(/endpoints\[1\]\.name: "a" names another/);
    expect(error({ endpoints: [{ name: 'a', url: 'http://x/', timeout: '0s' }] })).toMatch(/endpoints\[0\]\.timeout/);
    expect(error({ endpoints: [{ name: 'a', url: 'http://x/', backoff: '2h' }] })).toMatch(/endpoints\[0\]\.backoff/);
    expect(error({ endpoints: [{ name: 'a', url: 'http://x/', ignore: { actions: ['tag'] } }] })).toMatch(/notifications\.endpoints\.0\.ignore\.actions|actions/);
    expect(error({ endpoints: [{ name: 'a', url: 'http://x/', retries: 3 }] })).toMatch(/retries/);
  });
});
