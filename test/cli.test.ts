import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { Agent, request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  buildCli,
  freePort,
  runCli,
  startCli,
  waitUntilReady,
  type BuiltCli,
  type CliProcess,
} from './support/built-server.js';
import { AccessKeys } from '../src/auth/access-keys.js';
import { parseGrant } from '../src/auth/scope.js';
import { openSqliteIndex } from '../src/index/sqlite/index.js';
import { listKeys, registryS3Env, startS3Server, type S3Server } from './support/s3.js';
import { fileSize, send, testBytes, waitFor } from './support/socket.js';

const REPO = 'team/app';

let built: BuiltCli | undefined;
const dirs: string[] = [];
const procs: CliProcess[] = [];
const requests: ClientRequest[] = [];

beforeAll(async () => {
  built = await buildCli();
}, 200_000);

afterEach(async () => {
  for (const req of requests.splice(0)) req.destroy();
  for (const p of procs.splice(0)) await p.kill();
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

afterAll(async () => {
  await built?.remove();
});

function cli(): string {
  if (!built) throw new Error('the CLI was not built');
  return built.cli;
}

async function tmp(prefix = 'ocireg-cli-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  dirs.push(dir);
  return dir;
}

/** A distribution-style config.yml (keys distribution has and this registry ignores included). */
function distributionConfig(port: number, root: string, extraHttp = ''): string {
  return [
    'version: 0.1',
    'log:',
    '  level: warn',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${root}`,
    '  cache:',
    '    blobdescriptor: inmemory',
    'http:',
    `  addr: 127.0.0.1:${port}`,
    ...(extraHttp ? [`  ${extraHttp}`] : []),
    '',
  ].join('\n');
}

interface Setup {
  dir: string;
  root: string;
  configPath: string;
  port: number;
  url: string;
}

/** A temp folder holding a storage root and a config.yml for 127.0.0.1:<free port>. */
async function setup(extraHttp = ''): Promise<Setup> {
  const dir = await tmp();
  const root = join(dir, 'data');
  const port = await freePort();
  const configPath = join(dir, 'config.yml');
  await writeFile(configPath, distributionConfig(port, root, extraHttp));
  return { dir, root, configPath, port, url: `http://127.0.0.1:${port}` };
}

function start(args: string[], cwd: string, env: Record<string, string> = {}): CliProcess {
  const p = startCli(cli(), args, { cwd, env });
  procs.push(p);
  return p;
}

/** Resolves with the error code of a TCP connect to 127.0.0.1:port, or 'connected' (bounded). */
function connectResult(port: number, timeoutMs = 2000): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    const timer = setTimeout(() => {
      socket.destroy();
      resolve('timeout');
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.destroy();
      resolve('connected');
    });
    socket.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve(err.code ?? err.message);
    });
  });
}

async function startUpload(url: string): Promise<{ id: string; location: string }> {
  const res = await send(`${url}/v2/${REPO}/blobs/uploads/`, { method: 'POST', timeoutMs: 10_000 });
  expect(res.status, res.body.toString()).toBe(202);
  const location = res.headers.location;
  const id = res.headers['docker-upload-uuid'];
  expect(typeof location).toBe('string');
  expect(typeof id).toBe('string');
  return { id: id as string, location: new URL(location as string, url).toString() };
}

/**
 * Opens a PATCH that declares `total` bytes and writes the first `first` of
 * `data`; the rest is up to the caller. The response promise is bounded.
 */
function openPatch(location: string, data: Buffer, first: number, timeoutMs = 60_000, agent: Agent | false = false) {
  const req = httpRequest(location, {
    method: 'PATCH',
    agent,
    headers: { 'content-type': 'application/octet-stream', 'content-length': String(data.length) },
  });
  requests.push(req);
  const response = new Promise<{ res: IncomingMessage; body: string }>((resolve, reject) => {
    const timer = setTimeout(() => req.destroy(new Error(`the PATCH took more than ${timeoutMs} ms`)), timeoutMs);
    req.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    req.once('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      res.once('end', () => {
        clearTimeout(timer);
        resolve({ res, body });
      });
    });
  });
  response.catch(() => {}); // awaited (or deliberately abandoned) by the caller
  const written = (async () => {
    if (!req.write(data.subarray(0, first))) await once(req, 'drain');
  })();
  return { req, response, written };
}

describe('ocireg CLI usage', () => {
  it('--help prints usage naming serve and reindex and exits 0', async () => {
    for (const flag of ['--help', '-h']) {
      const r = await runCli(cli(), [flag], {}, 15_000);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/usage/i);
      expect(r.stdout).toContain('serve');
      expect(r.stdout).toContain('reindex');
    }
  });

  it('no arguments prints usage and exits 2', async () => {
    const r = await runCli(cli(), [], {}, 15_000);
    expect(r.code).toBe(2);
    expect(r.stdout + r.stderr).toMatch(/usage/i);
    expect(r.stdout + r.stderr).toContain('serve');
  });

  it('an unknown command exits 2 with a message on stderr', async () => {
    const r = await runCli(cli(), ['frobnicate'], {}, 15_000);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('frobnicate');
  });

  it('extra arguments exit 2 with a message on stderr', async () => {
    const dir = await tmp();
    const a = join(dir, 'a.yml');
    const b = join(dir, 'b.yml');
    for (const command of ['serve', 'reindex']) {
      const r = await runCli(cli(), [command, a, b], {}, 15_000);
      expect(r.code, `${command}: ${r.stderr}`).toBe(2);
      expect(r.stderr).toContain(b);
    }
  });
});

describe('ocireg serve: configuration errors', () => {
  it('exits 1 naming an unknown key of the config file', async () => {
    const s = await setup('bogusoption: 1');
    const r = await runCli(cli(), ['serve', s.configPath], {}, 15_000);
    expect(r.code, r.stdout + r.stderr).toBe(1);
    expect(r.stderr).toContain('bogusoption');

    const top = join(s.dir, 'top.yml');
    await writeFile(top, `${distributionConfig(s.port, s.root)}notakey: true\n`);
    const r2 = await runCli(cli(), ['serve', top], {}, 15_000);
    expect(r2.code, r2.stdout + r2.stderr).toBe(1);
    expect(r2.stderr).toContain('notakey');
  });

  it('exits 1 on invalid YAML', async () => {
    const s = await setup();
    const bad = join(s.dir, 'bad.yml');
    await writeFile(bad, `http:\n  addr: "127.0.0.1:${s.port}\n  headers: [unclosed\n`);
    const r = await runCli(cli(), ['serve', bad], {}, 15_000);
    expect(r.code, r.stdout + r.stderr).toBe(1);
    expect(r.stderr).toContain(bad);
  });

  it('exits 1 when the config file is missing', async () => {
    const dir = await tmp();
    const missing = join(dir, 'nope.yml');
    const r = await runCli(cli(), ['serve', missing], {}, 15_000);
    expect(r.code, r.stdout + r.stderr).toBe(1);
    expect(r.stderr).toContain(missing);
    const viaEnv = await runCli(cli(), ['serve'], { REGISTRY_CONFIGURATION_PATH: missing }, 15_000);
    expect(viaEnv.code, viaEnv.stdout + viaEnv.stderr).toBe(1);
    expect(viaEnv.stderr).toContain(missing);
  });

  it('exits 1 naming REGISTRY_STORAGE_DELETE_ENABLED when it is not a boolean', async () => {
    const s = await setup();
    const r = await runCli(cli(), ['serve', s.configPath], { REGISTRY_STORAGE_DELETE_ENABLED: 'maybe' }, 15_000);
    expect(r.code, r.stdout + r.stderr).toBe(1);
    expect(r.stderr).toContain('REGISTRY_STORAGE_DELETE_ENABLED');
  });
});

describe('ocireg serve: a distribution-style config file', () => {
  async function expectServing(url: string, p: CliProcess): Promise<void> {
    await waitUntilReady(p, url);
    const v2 = await fetch(`${url}/v2/`, { signal: AbortSignal.timeout(5000) });
    await v2.arrayBuffer();
    expect(v2.status).toBe(200);
    expect(v2.headers.get('docker-distribution-api-version')).toBe('registry/2.0');
    const health = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(5000) });
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: 'ok' });
  }

  async function stopCleanly(p: CliProcess): Promise<void> {
    p.signal('SIGTERM');
    const exit = await p.waitExit(15_000);
    expect(exit, p.output()).toEqual(expect.objectContaining({ code: 0, signal: null }));
  }

  it('serves /v2/ and /healthz from the path given as an argument', async () => {
    const s = await setup();
    const p = start(['serve', s.configPath], s.dir);
    await expectServing(s.url, p);
    // The storage root is the configured one.
    expect(await fileSize(join(s.root, 'index.db'))).not.toBeNull();
    // Keys accepted for compatibility are warned about at log.level warn.
    await waitFor(() => p.output().includes('storage.cache'), { timeoutMs: 5000, what: 'the ignored-keys warning' });
    await stopCleanly(p);
  });

  it('serves Prometheus metrics on http.debug.addr, and not on the public port', async () => {
    const debugPort = await freePort();
    const s = await setup(`debug: { addr: "127.0.0.1:${debugPort}", prometheus: { enabled: true } }`);
    const p = start(['serve', s.configPath], s.dir);
    await expectServing(s.url, p);
    const ready = await fetch(`${s.url}/readyz`, { signal: AbortSignal.timeout(5000) });
    expect(await ready.json()).toEqual({ status: 'ready', index: 'ok', store: 'ok' });
    const metrics = await fetch(`http://127.0.0.1:${debugPort}/metrics`, { signal: AbortSignal.timeout(5000) });
    expect(metrics.status).toBe(200);
    const text = await metrics.text();
    expect(text).toMatch(/^registry_http_requests_total\{route="\/v2\/",method="GET",status="200"\} [1-9]\d*$/m);
    expect(text).toMatch(/^process_resident_memory_bytes \d+/m);
    const onPublic = await fetch(`${s.url}/metrics`, { signal: AbortSignal.timeout(5000) });
    await onPublic.arrayBuffer();
    expect(onPublic.status).toBe(404);
    await stopCleanly(p);
    // Both listeners are closed on the way out.
    expect(await connectResult(debugPort)).toBe('ECONNREFUSED');
  });

  it('takes the path from REGISTRY_CONFIGURATION_PATH as well', async () => {
    const s = await setup();
    const p = start(['serve'], s.dir, { REGISTRY_CONFIGURATION_PATH: s.configPath });
    await expectServing(s.url, p);
    expect(await fileSize(join(s.root, 'index.db'))).not.toBeNull();
    await stopCleanly(p);
  });

  it('lets an environment variable override the file (REGISTRY_HTTP_ADDR)', async () => {
    const s = await setup();
    let other = await freePort();
    while (other === s.port) other = await freePort();
    const p = start(['serve', s.configPath], s.dir, { REGISTRY_HTTP_ADDR: `127.0.0.1:${other}` });
    await expectServing(`http://127.0.0.1:${other}`, p);
    expect(await connectResult(s.port)).toBe('ECONNREFUSED');
    await stopCleanly(p);
  });
});

describe('ocireg serve: graceful shutdown', () => {
  const FIRST = 1024 * 1024;
  const TOTAL = FIRST + 256 * 1024;

  it('drains an in-flight PATCH, refuses new connections, exits 0 with the WAL checkpointed, and the upload survives a restart', async () => {
    const s = await setup();
    const p = start(['serve', s.configPath], s.dir);
    await waitUntilReady(p, s.url);

    const { id, location } = await startUpload(s.url);
    const data = testBytes(TOTAL, 7);
    // A keep-alive client, as docker and containerd are: the drain must not wait for it to go idle.
    const agent = new Agent({ keepAlive: true });
    const patch = openPatch(location, data, FIRST, 60_000, agent);
    await patch.written;
    const dataFile = join(s.root, 'uploads', id, 'data');
    await waitFor(async () => ((await fileSize(dataFile)) ?? 0) >= FIRST, {
      timeoutMs: 10_000,
      what: 'the server to write the first MiB',
    });

    p.signal('SIGTERM');
    // The listener closes: new connections are refused while the PATCH is still open.
    await waitFor(async () => (await connectResult(s.port)) === 'ECONNREFUSED', {
      timeoutMs: 5000,
      intervalMs: 100,
      what: 'new connections to be refused after SIGTERM',
    });
    expect(p.exited(), p.output()).toBe(false);

    patch.req.end(data.subarray(FIRST));
    const { res, body } = await patch.response;
    expect(res.statusCode, body).toBe(202);
    expect(res.headers.range).toBe(`0-${TOTAL - 1}`);
    expect(res.headers['docker-upload-uuid']).toBe(id);
    expect(res.headers.connection).toBe('close');

    // Exits well within the default drain timeout (10 s), without having to cut connections.
    const exit = await p.waitExit(9000);
    agent.destroy();
    expect(exit, p.output()).toEqual(expect.objectContaining({ code: 0, signal: null }));
    expect(p.output()).not.toContain('drain timeout passed');
    expect(await connectResult(s.port)).toBe('ECONNREFUSED');

    // The index was closed: the WAL was checkpointed into index.db.
    expect(await fileSize(join(s.root, 'index.db'))).not.toBeNull();
    expect((await fileSize(join(s.root, 'index.db-wal'))) ?? 0).toBe(0);
    expect(await fileSize(dataFile)).toBe(TOTAL);

    // A restarted server on the same root sees the upload at the same offset, and can finish it.
    const again = start(['serve', s.configPath], s.dir);
    await waitUntilReady(again, s.url);
    const status = await send(location, { method: 'GET', timeoutMs: 10_000 });
    expect(status.status, status.body.toString()).toBe(204);
    expect(status.headers.range).toBe(`0-${TOTAL - 1}`);
    const digest = `sha256:${createHash('sha256').update(data).digest('hex')}`;
    const put = await send(`${location}?digest=${digest}`, { method: 'PUT', timeoutMs: 10_000 });
    expect(put.status, put.body.toString()).toBe(201);
    expect(put.headers['docker-content-digest']).toBe(digest);

    again.signal('SIGTERM');
    const exit2 = await again.waitExit(15_000);
    expect(exit2, again.output()).toEqual(expect.objectContaining({ code: 0, signal: null }));
  }, 90_000);

  it('with http.draintimeout: 1s, exits within a few seconds of SIGTERM although a request never finishes', async () => {
    const s = await setup('draintimeout: 1s');
    const p = start(['serve', s.configPath], s.dir);
    await waitUntilReady(p, s.url);

    const { id, location } = await startUpload(s.url);
    const data = testBytes(TOTAL, 9);
    const patch = openPatch(location, data, 64 * 1024);
    await patch.written;
    await waitFor(async () => ((await fileSize(join(s.root, 'uploads', id, 'data'))) ?? 0) >= 64 * 1024, {
      timeoutMs: 10_000,
      what: 'the server to write the first 64 KiB',
    });

    p.signal('SIGTERM');
    const exit = await p.waitExit(10_000);
    expect(exit.signal, p.output()).toBeNull();
    expect(exit.ms, p.output()).toBeLessThan(5000);
    expect(exit.ms).toBeGreaterThanOrEqual(900); // it did wait for the drain timeout
    expect(exit.code, p.output()).toBe(0);
    expect((await fileSize(join(s.root, 'index.db-wal'))) ?? 0).toBe(0);
    // The client's request was cut, never answered with success.
    await expect(patch.response).rejects.toThrow();
  }, 60_000);
});

describe('ocireg on S3', () => {
  const SECRET = 'not-to-be-logged-7f3a9c';
  let s3: S3Server | undefined;

  beforeAll(async () => {
    s3 = await startS3Server();
  });
  afterAll(async () => {
    await s3?.stop();
  });

  /** The registry's environment for the s3rver; s3rver checks the access key only, so the secret can be any. */
  async function s3Env(bucket?: string): Promise<{ dir: string; env: Record<string, string> }> {
    const dir = await tmp();
    const env: Record<string, string> = { ...registryS3Env(s3!, join(dir, 'index.db'), '/cli'), REGISTRY_STORAGE_S3_SECRETKEY: SECRET };
    if (bucket) env.REGISTRY_STORAGE_S3_BUCKET = bucket;
    return { dir, env };
  }

  it('serve exits 1 with one line naming a bucket that does not exist', async () => {
    const { dir, env } = await s3Env('no-such-bucket');
    const r = await runCli(cli(), ['serve'], { ...env, REGISTRY_HTTP_ADDR: `127.0.0.1:${await freePort()}` }, 30_000);
    expect(r.code, r.stdout + r.stderr).toBe(1);
    // The message alone, no stack (the AWS SDK may print its Node-version warning before it).
    expect(r.stderr.trim().split('\n').pop()).toBe('cannot open S3 bucket "no-such-bucket": it does not exist');
    expect(r.stderr).not.toMatch(/^\s+at /m);
    expect(await fileSize(join(dir, 'index.db'))).toBeNull();
  });

  it('serves from the bucket without logging its secret, and reindex rebuilds from the bucket', async () => {
    const { dir, env } = await s3Env();
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const p = start(['serve'], dir, { ...env, REGISTRY_HTTP_ADDR: `127.0.0.1:${port}`, REGISTRY_LOG_LEVEL: 'debug' });
    await waitUntilReady(p, url);
    const blob = Buffer.from('a blob kept in the bucket');
    const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;
    const pushed = await fetch(`${url}/v2/${REPO}/blobs/uploads/?digest=${digest}`, {
      method: 'POST',
      body: blob,
      headers: { 'content-type': 'application/octet-stream' },
      signal: AbortSignal.timeout(10_000),
    });
    expect(pushed.status).toBe(201);
    const keys = await listKeys(s3!, 'cli/blobs/');
    expect(keys).toEqual([`cli/blobs/sha256/${digest.slice(7, 9)}/${digest.slice(7)}`]);
    p.signal('SIGTERM');
    expect((await p.waitExit(15_000)).code, p.output()).toBe(0);
    expect(p.output()).toContain('"configuration"'); // the debug line with the configuration was written
    expect(p.output()).not.toContain(SECRET);

    await rm(join(dir, 'index.db'), { force: true });
    const r = await runCli(cli(), ['reindex'], env, 30_000);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain(`reindexed s3://${s3!.bucket}/cli: 1 repositories, 0 manifests, 0 tags, 1 blobs, 0 uploads in progress`);
    expect(r.stdout + r.stderr).not.toContain(SECRET);
  });
});

describe('ocireg keys', () => {
  /** A config file whose index is <dir>/data/index.db, with an htpasswd file listing `alice` when asked. */
  async function keysSetup(withHtpasswd = false): Promise<{ dir: string; configPath: string; indexPath: string }> {
    const s = await setup();
    if (withHtpasswd) {
      const htpasswd = join(s.dir, 'htpasswd');
      await writeFile(htpasswd, `alice:$2y$05$${'a'.repeat(53)}\n`);
      await writeFile(s.configPath, `${distributionConfig(s.port, s.root)}auth:\n  htpasswd:\n    path: ${htpasswd}\n`);
    }
    return { dir: s.dir, configPath: s.configPath, indexPath: join(s.root, 'index.db') };
  }

  /** Runs `fn` over AccessKeys on the CLI's index (opened after the CLI has exited). */
  async function withKeys<T>(indexPath: string, fn: (keys: AccessKeys) => Promise<T>): Promise<T> {
    const index = openSqliteIndex(indexPath);
    try {
      return await fn(new AccessKeys(index.accessKeys));
    } finally {
      await index.close();
    }
  }

  it('--help names the keys commands', async () => {
    const r = await runCli(cli(), ['--help'], {}, 15_000);
    expect(r.code).toBe(0);
    for (const word of ['keys create', 'keys list', 'keys revoke', '--scope', '--expires']) expect(r.stdout).toContain(word);
  });

  it('create prints the secret alone on stdout; it then verifies for its user, with its scopes', async () => {
    const k = await keysSetup();
    const r = await runCli(
      cli(),
      ['keys', 'create', '--user', 'ci', '--scope', 'repository:app/*:pull,push', '--scope', 'registry:catalog:*', '--description', 'CI pipeline', '--config', k.configPath],
      {},
      15_000,
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^ocik_[0-9a-f]{16}_[A-Za-z0-9_-]{43}\n$/);
    const secret = r.stdout.trim();
    const id = secret.split('_')[1]!;
    expect(r.stderr).toContain(id);
    expect(r.stderr).toMatch(/cannot be shown again/);
    expect(r.stderr).not.toContain(secret);
    const verified = await withKeys(k.indexPath, (keys) => keys.verify('ci', secret));
    expect(verified).toEqual({ id, scopes: [parseGrant('repository:app/*:pull,push'), parseGrant('registry:catalog:*')] });
    expect(await withKeys(k.indexPath, (keys) => keys.verify('alice', secret))).toBeUndefined();
  });

  it('list shows the key without its secret; revoke stops it; the configuration may come from the environment', async () => {
    const k = await keysSetup();
    const env = { REGISTRY_CONFIGURATION_PATH: k.configPath };
    const created = await runCli(cli(), ['keys', 'create', '--user', 'ci', '--scope', 'repository:app/**:pull', '--expires', '30d', '--description', 'nightly build'], env, 15_000);
    expect(created.code, created.stderr).toBe(0);
    const secret = created.stdout.trim();
    const id = secret.split('_')[1]!;
    const expiresAt = await withKeys(k.indexPath, async (keys) => (await keys.list())[0]!.expiresAt!);
    expect(Math.abs(expiresAt - (Date.now() + 30 * 86_400_000))).toBeLessThan(60_000);

    const listed = await runCli(cli(), ['keys', 'list', '--config', k.configPath], {}, 15_000);
    expect(listed.code, listed.stderr).toBe(0);
    const [header, line, ...more] = listed.stdout.trimEnd().split('\n');
    expect(header).toMatch(/^ID\s+USER\s+SCOPES\s+DESCRIPTION\s+CREATED\s+EXPIRES\s+LAST USED\s+REVOKED$/);
    expect(more).toEqual([]);
    expect(line).toContain(id);
    expect(line).toContain('ci');
    expect(line).toContain('repository:app/**:pull');
    expect(line).toContain('nightly build');
    expect(line).toContain(new Date(expiresAt).toISOString().slice(0, 10));
    expect(line).toMatch(/-\s+-$/); // never used, not revoked
    expect(listed.stdout).not.toContain(secret.slice(-43));

    const revoked = await runCli(cli(), ['keys', 'revoke', id], env, 15_000);
    expect(revoked.code, revoked.stderr).toBe(0);
    expect(revoked.stdout).toContain(id);
    expect(await withKeys(k.indexPath, (keys) => keys.verify('ci', secret))).toBeUndefined();
    const after = await runCli(cli(), ['keys', 'list'], env, 15_000);
    expect(after.stdout.trimEnd().split('\n')[1]).toMatch(/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);

    const unknown = await runCli(cli(), ['keys', 'revoke', '0123456789abcdef'], env, 15_000);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('0123456789abcdef');
  });

  it('warns, without failing, when the user is not in the configured htpasswd file', async () => {
    const k = await keysSetup(true);
    const known = await runCli(cli(), ['keys', 'create', '--user', 'alice', '--scope', 'repository:a:pull', '--config', k.configPath], {}, 15_000);
    expect(known.code, known.stderr).toBe(0);
    expect(known.stderr).not.toMatch(/warning/);
    const unknown = await runCli(cli(), ['keys', 'create', '--user', 'robot', '--scope', 'repository:a:pull', '--config', k.configPath], {}, 15_000);
    expect(unknown.code, unknown.stderr).toBe(0);
    expect(unknown.stderr).toMatch(/warning: user "robot" is not in .*htpasswd/);
    expect(unknown.stdout).toMatch(/^ocik_/);
  });

  it('exits 2 with a clear message on bad arguments', async () => {
    const k = await keysSetup();
    const c = ['--config', k.configPath];
    const cases: Array<[string[], RegExp]> = [
      [['keys'], /name a subcommand/],
      [['keys', 'rotate'], /unknown subcommand "rotate"/],
      [['keys', 'create', '--scope', 'repository:a:pull', ...c], /--user is required/],
      [['keys', 'create', '--user', 'ci', ...c], /at least one --scope/],
      [['keys', 'create', '--user', 'ci', '--scope', 'repository:a:fly', ...c], /unknown action "fly"/],
      [['keys', 'create', '--user', 'ci', '--scope', 'repository:a:pull', '--expires', 'soon', ...c], /--expires "soon"/],
      [['keys', 'create', '--user', 'ci', '--scope', 'repository:a:pull', '--expires', '0d', ...c], /greater than zero/],
      [['keys', 'create', '--user', 'ci', '--scope', 'repository:a:pull', '--colour', ...c], /--colour/],
      [['keys', 'create', '--user', 'ci', '--scope', 'repository:a:pull', 'extra', ...c], /unexpected argument "extra"/],
      [['keys', 'list', '--user', 'ci', ...c], /--user/],
      [['keys', 'revoke', ...c], /expected 1 argument/],
      [['keys', 'revoke', 'a', 'b', ...c], /unexpected argument "b"/],
    ];
    for (const [args, message] of cases) {
      const r = await runCli(cli(), args, {}, 15_000);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2);
      expect(r.stderr, args.join(' ')).toMatch(message);
      expect(r.stdout).toBe('');
    }
    // Nothing was created by the refused commands.
    expect(await fileSize(k.indexPath)).toBeNull();
  });

  it('exits 1 when the configuration file is missing', async () => {
    const k = await keysSetup();
    const missing = join(k.dir, 'nope.yml');
    const r = await runCli(cli(), ['keys', 'list', '--config', missing], {}, 15_000);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(missing);
  });
});

// ---- the index: PostgreSQL at start-up, and `ocireg index copy` through the built CLI ----
// (Imports are hoisted: these are here to keep the additions to this file in one place.)
import { createTestDatabase, describeWithPostgres, type TestDatabase } from './support/postgres.js';

describe('ocireg with the postgres index: start-up failures', () => {
  const PASSWORD = 'Cl1-secret_pw';

  /** A storage root that is "shared", with the postgres index at a closed port of 127.0.0.1. */
  async function unreachable(): Promise<{ dir: string; env: Record<string, string>; port: number }> {
    const dir = await tmp();
    const port = await freePort();
    return {
      dir,
      port,
      env: {
        REGISTRY_HTTP_ADDR: `127.0.0.1:${await freePort()}`,
        REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: join(dir, 'data'),
        REGISTRY_STORAGE_FILESYSTEM_SHARED: 'true',
        REGISTRY_INDEX_DRIVER: 'postgres',
        REGISTRY_INDEX_POSTGRES_URL: `postgres://ocireg:${PASSWORD}@127.0.0.1:${port}/cli_index`,
      },
    };
  }

  function expectOneCleanLine(stderr: string): void {
    const lines = stderr.trimEnd().split('\n');
    expect(lines, stderr).toHaveLength(1);
    expect(stderr).not.toContain(PASSWORD);
    expect(stderr).not.toMatch(/^\s+at /m);
    expect(stderr).not.toMatch(/Error:/);
  }

  it('serve exits 1 with one line naming the database, without the password or a stack', async () => {
    const { env, port } = await unreachable();
    const started = Date.now();
    const r = await runCli(cli(), ['serve'], env, 30_000);
    expect(Date.now() - started).toBeLessThan(25_000);
    expect(r.code, r.stderr).toBe(1);
    expectOneCleanLine(r.stderr);
    expect(r.stderr).toContain(`127.0.0.1:${port}`);
    expect(r.stderr).toContain('cli_index');
    expect(r.stdout).not.toContain(PASSWORD);
  });

  it('reindex exits 1 the same way', async () => {
    const { env } = await unreachable();
    const r = await runCli(cli(), ['reindex'], env, 30_000);
    expect(r.code, r.stderr).toBe(1);
    expectOneCleanLine(r.stderr);
    expect(r.stderr).toContain('cli_index');
  });

  it('serve refuses the postgres index over an unshared filesystem, naming storage.filesystem.shared', async () => {
    const { env } = await unreachable();
    const r = await runCli(cli(), ['serve'], { ...env, REGISTRY_STORAGE_FILESYSTEM_SHARED: 'false' }, 30_000);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('storage.filesystem.shared');
    expect(r.stderr).not.toContain(PASSWORD);
  });

  it('index copy exits 2 on bad arguments and 1, with one line, when the target cannot be reached', async () => {
    const noTo = await runCli(cli(), ['index', 'copy'], {}, 15_000);
    expect(noTo.code).toBe(2);
    expect(noTo.stderr).toContain('--to');
    const unknown = await runCli(cli(), ['index', 'merge'], {}, 15_000);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('merge');

    const { dir, port } = await unreachable();
    const source = join(dir, 'source.yml');
    await writeFile(source, `storage:\n  filesystem:\n    rootdirectory: ${join(dir, 'data')}\n`);
    await openSqliteIndex(join(dir, 'data', 'index.db')).close(); // an empty source index
    const target = join(dir, 'target.yml');
    await writeFile(
      target,
      `storage:\n  filesystem:\n    rootdirectory: ${join(dir, 'data')}\n    shared: true\nindex:\n  driver: postgres\n  postgres:\n    url: postgres://ocireg:${PASSWORD}@127.0.0.1:${port}/cli_index\n`,
    );
    const r = await runCli(cli(), ['index', 'copy', '--to', target, source], {}, 30_000);
    expect(r.code, r.stderr).toBe(1);
    expectOneCleanLine(r.stderr);
    expect(r.stderr).toContain('cli_index');
  });
});

describeWithPostgres('ocireg with the postgres index', () => {
  const databases: TestDatabase[] = [];
  afterEach(async () => {
    for (const db of databases.splice(0)) await db.drop();
  });

  async function database(): Promise<TestDatabase> {
    const db = await createTestDatabase();
    databases.push(db);
    return db;
  }

  it('serve with the token server stops when its key file is missing, and does not create it', async () => {
    const db = await database();
    const dir = await tmp();
    const keyPath = join(dir, 'token.pem');
    const r = await runCli(
      cli(),
      ['serve'],
      {
        REGISTRY_HTTP_ADDR: `127.0.0.1:${await freePort()}`,
        REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: join(dir, 'data'),
        REGISTRY_STORAGE_FILESYSTEM_SHARED: 'true',
        REGISTRY_INDEX_DRIVER: 'postgres',
        REGISTRY_INDEX_POSTGRES_URL: db.url,
        REGISTRY_AUTH_TOKENSERVER_ENABLED: 'true',
        REGISTRY_AUTH_TOKENSERVER_KEY: keyPath,
      },
      30_000,
    );
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain('auth.tokenserver.key');
    expect(r.stderr).toContain(keyPath);
    expect(r.stderr).toMatch(/does not exist/);
    expect(await fileSize(keyPath)).toBeNull();
  });

  it('index copy copies an SQLite index into the database and reports what it copied', async () => {
    const db = await database();
    const dir = await tmp();
    const source = join(dir, 'source.yml');
    await writeFile(source, `storage:\n  filesystem:\n    rootdirectory: ${join(dir, 'data')}\n`);
    const index = openSqliteIndex(join(dir, 'data', 'index.db'));
    try {
      await index.registry.addBlob('team/app', `sha256:${'a'.repeat(64)}`, 3, 1_700_000_000_000);
      await index.ecr.putSetting('registryPolicy', '{}');
    } finally {
      await index.close();
    }
    const target = join(dir, 'target.yml');
    await writeFile(target, `storage:\n  filesystem:\n    rootdirectory: ${join(dir, 'data')}\n    shared: true\nindex:\n  driver: postgres\n  postgres:\n    url: ${db.url}\n`);
    const r = await runCli(cli(), ['index', 'copy', '--to', target, source], {}, 60_000);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^copied .*index\.db to postgres:\/\/.*: 1 repositories, 0 manifests, 0 tags, 1 blobs, .*1 registry settings/);
    const again = await runCli(cli(), ['index', 'copy', '--to', target, source], {}, 60_000);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/not empty/);
  });
});
