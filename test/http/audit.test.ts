// The audit log: one structured line per write (push, mount, delete, ECR settings) and per failed
// login, with the user and the client address; none for reads or for a client's credential-less
// first attempt. And /readyz, for load balancers.
import { Writable } from 'node:stream';
import { rm } from 'node:fs/promises';
import { afterEach, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config/config.js';
import type { ConfigFile } from '../../src/config/schema.js';
import { OCI_MANIFEST, digestOf, tempDir } from '../helpers.js';
import { PASSWORDS, basic, call, pushBlobAs, writeHtpasswd } from './auth-support.js';
import { CreateRepositoryCommand, DescribeRepositoriesCommand, ECRClient, PutImageTagMutabilityCommand } from '@aws-sdk/client-ecr';
import { ACCOUNT, ECR_ACCESS, KEYS, REGION } from '../ecr/sdk-support.js';
import { listen } from '../support/socket.js';
import { dockerSaveEntries, formOf, tarOf, testImage } from '../archive/archives.js';

interface Line {
  msg: string;
  audit?: Record<string, unknown>;
  [key: string]: unknown;
}

let app: FastifyInstance | undefined;
let dir: string | undefined;
afterEach(async () => {
  await app?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
  app = undefined;
  dir = undefined;
});

/** An app whose log lines are kept, parsed, in `lines`. */
async function start(overrides: ConfigFile = {}): Promise<{ app: FastifyInstance; lines: Line[] }> {
  dir ??= await tempDir();
  const lines: Line[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const text of chunk.toString().split('\n')) if (text) lines.push(JSON.parse(text) as Line);
      done();
    },
  });
  const config = loadConfig({ env: {}, overrides: { ...overrides, storage: { filesystem: { rootdirectory: dir } } } });
  app = await buildApp(config, { logger: { level: 'info', stream } });
  await app.ready();
  return { app, lines };
}

const audits = (lines: Line[]) => lines.filter((l) => l.audit !== undefined).map((l) => l.audit!);

describe('the audit log', () => {
  it('writes one line per write with the user, address, repository, reference or digest and status', async () => {
    const { app, lines } = await start({
      auth: { htpasswd: { path: await writeHtpasswd((dir = await tempDir())) } },
      access: { repositories: { 'team/**': { users: { alice: ['pull', 'push', 'delete'], bob: ['pull'] } } } },
    });
    const alice = basic('alice');
    const config = Buffer.from('{"architecture":"amd64","os":"linux"}');
    const pushed = await pushBlobAs(app, alice, 'team/app', config);
    expect(pushed.res.statusCode).toBe(201);
    const manifest = Buffer.from(
      JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: pushed.digest, size: config.length }, layers: [] }),
    );
    const put = await call(app, alice, { method: 'PUT', url: '/v2/team/app/manifests/v1', headers: { 'content-type': OCI_MANIFEST }, payload: manifest });
    expect(put.statusCode).toBe(201);
    // Reads are not audited.
    expect((await call(app, alice, { method: 'GET', url: '/v2/team/app/manifests/v1', headers: { accept: OCI_MANIFEST } })).statusCode).toBe(200);
    // bob may pull but not push: his attempt is refused, and audited.
    expect((await pushBlobAs(app, basic('bob'), 'team/app', 'bob was here')).res.statusCode).toBe(403);
    // A client's first, credential-less attempt (every docker push starts so) is not.
    expect((await call(app, undefined, { method: 'POST', url: '/v2/team/app/blobs/uploads/' })).statusCode).toBe(401);
    // A wrong password is a failed login.
    expect((await call(app, basic('alice', 'guess'), { method: 'GET', url: '/v2/' })).statusCode).toBe(401);
    expect((await call(app, alice, { method: 'DELETE', url: '/v2/team/app/manifests/v1' })).statusCode).toBe(202);
    expect((await call(app, alice, { method: 'DELETE', url: `/v2/team/app/manifests/${digestOf(manifest)}` })).statusCode).toBe(202);

    const entries = audits(lines);
    expect(entries).toEqual([
      { action: 'blob.push', user: 'alice', addr: '127.0.0.1', repository: 'team/app', digest: pushed.digest, status: 201 },
      { action: 'manifest.push', user: 'alice', addr: '127.0.0.1', repository: 'team/app', reference: 'v1', digest: digestOf(manifest), status: 201 },
      { action: 'blob.push', user: 'bob', addr: '127.0.0.1', repository: 'team/app', digest: digestOf('bob was here'), status: 403 },
      { action: 'login.failure', user: 'alice', addr: '127.0.0.1', reason: 'invalid' },
      { action: 'tag.delete', user: 'alice', addr: '127.0.0.1', repository: 'team/app', reference: 'v1', status: 202 },
      { action: 'manifest.delete', user: 'alice', addr: '127.0.0.1', repository: 'team/app', reference: digestOf(manifest), status: 202 },
    ]);
    // No password, and no Authorization header, in any line.
    const text = JSON.stringify(lines);
    expect(text).not.toContain(PASSWORDS.alice);
    expect(text).not.toContain('guess');
    expect(text).not.toContain(alice.slice(6));
  });

  it('names anonymous writers as anonymous when auth is off, and audits uploads started and cancelled', async () => {
    const { app, lines } = await start();
    const started = await app.inject({ method: 'POST', url: '/v2/lib/x/blobs/uploads/' });
    expect(started.statusCode).toBe(202);
    expect((await app.inject({ method: 'DELETE', url: started.headers.location as string })).statusCode).toBe(204);
    expect((await app.inject({ method: 'POST', url: `/v2/lib/y/blobs/uploads/?mount=${digestOf('none')}&from=lib/x` })).statusCode).toBe(202);
    expect(audits(lines).map((a) => [a.action, a.user, a.repository, a.status])).toEqual([
      ['upload.start', 'anonymous', 'lib/x', 202],
      ['upload.cancel', 'anonymous', 'lib/x', 204],
      // A mount of a blob that is not there falls back to an upload: audited as the mount asked for.
      ['blob.mount', 'anonymous', 'lib/y', 202],
    ]);
  });
});

describe('the audit log of archive imports', () => {
  it('audits an import with the user, the repository and the status, refused or not, but not an export', async () => {
    const { app, lines } = await start({
      auth: { htpasswd: { path: await writeHtpasswd((dir = await tempDir())) } },
      access: { repositories: { 'team/**': { users: { alice: ['pull', 'push'], bob: ['pull'] } } } },
    });
    const image = await testImage('audited');
    const form = formOf(await tarOf(dockerSaveEntries([{ image, repoTags: ['team/audited:v1'] }])));
    for (const user of ['alice', 'bob']) {
      const res = await app.inject({ method: 'POST', url: '/api/v1/import', payload: form.payload, headers: { ...form.headers, authorization: basic(user) } });
      expect(res.statusCode).toBe(user === 'alice' ? 201 : 403);
    }
    expect((await app.inject({ method: 'GET', url: '/api/v1/export/team/audited:v1', headers: { authorization: basic('bob') } })).statusCode).toBe(200);
    const imports = audits(lines).filter((a) => a.action === 'archive.import');
    expect(imports).toEqual([
      { action: 'archive.import', user: 'alice', addr: '127.0.0.1', repository: 'team/audited', status: 201 },
      { action: 'archive.import', user: 'bob', addr: '127.0.0.1', status: 403 },
    ]);
    expect(audits(lines).filter((a) => String(a.action).includes('export'))).toEqual([]);
    // The import's own pushes go through the use cases, not through /v2/: the one line says it all.
    expect(audits(lines)).toHaveLength(2);
  });
});

describe('the audit log of the ECR API', () => {
  it('audits writes with the operation, user and repository, and refused signatures, but not reads', async () => {
    const credentials = Object.entries(KEYS).map(([user, k]) => ({ accesskeyid: k.accessKeyId, secretaccesskey: k.secretAccessKey, user }));
    const { app, lines } = await start({ access: ECR_ACCESS, ecr: { enabled: true, accountid: ACCOUNT, region: REGION, credentials } });
    const url = await listen(app);
    const client = (secretAccessKey: string = KEYS.dev.secretAccessKey) =>
      new ECRClient({ endpoint: url, region: REGION, credentials: { accessKeyId: KEYS.dev.accessKeyId, secretAccessKey }, maxAttempts: 1 });
    const dev = client();
    const forger = client('not-the-secret-at-all-000000000');
    try {
      await dev.send(new CreateRepositoryCommand({ repositoryName: 'team/svc' }));
      await dev.send(new DescribeRepositoriesCommand({}));
      await dev.send(new PutImageTagMutabilityCommand({ repositoryName: 'team/svc', imageTagMutability: 'IMMUTABLE' }));
      // Outside team/: refused by the access rules, and audited as refused.
      await expect(dev.send(new CreateRepositoryCommand({ repositoryName: 'other/svc' }))).rejects.toThrow();
      await expect(forger.send(new DescribeRepositoriesCommand({}))).rejects.toThrow();
    } finally {
      dev.destroy();
      forger.destroy();
    }
    const entries = audits(lines);
    expect(entries.slice(0, 3)).toEqual([
      { action: 'ecr.CreateRepository', user: 'dev', addr: '127.0.0.1', repository: 'team/svc', status: 200 },
      { action: 'ecr.PutImageTagMutability', user: 'dev', addr: '127.0.0.1', repository: 'team/svc', status: 200 },
      { action: 'ecr.CreateRepository', user: 'dev', addr: '127.0.0.1', repository: 'other/svc', status: 400 },
    ]);
    expect(entries[3]).toEqual({ action: 'login.failure', via: 'sigv4', addr: '127.0.0.1', reason: expect.stringMatching(/Signature/) });
    expect(entries).toHaveLength(4);
    expect(JSON.stringify(lines)).not.toContain(KEYS.dev.secretAccessKey);
  });
});

describe('/readyz', () => {
  it('answers ready when the index and the store answer, without credentials', async () => {
    const { app } = await start({ auth: { htpasswd: { path: await writeHtpasswd((dir = await tempDir())) } } });
    const res = await app.inject({ method: 'GET', url: '/readyz' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ status: 'ready', index: 'ok', store: 'ok' });
  });

  it('answers 503 naming the index when it cannot be reached', async () => {
    const { app } = await start();
    const ping = app.registry.database.registry.ping;
    app.registry.database.registry.ping = async () => {
      throw new Error('database is down');
    };
    try {
      const res = await app.inject({ method: 'GET', url: '/readyz' });
      expect(res.statusCode).toBe(503);
      expect(res.json()).toEqual({ status: 'unavailable', index: 'unreachable', store: 'ok' });
    } finally {
      app.registry.database.registry.ping = ping;
    }
  });
});
