// Event notifications end to end: a registry with notifications.endpoints, a receiver in the test
// that is down, then slow, then up; every event arrives once and in order, in distribution's
// envelope (checked field by field); a restart loses nothing; the outbox's bound drops the oldest
// with a metric and a log line; ignore rules; pulls batched; headers sent and never logged.
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config/config.js';
import type { ConfigFile } from '../../src/config/schema.js';
import { ENVELOPE_MEDIA_TYPE } from '../../src/events/events.js';
import { OCI_CONFIG, OCI_MANIFEST, digestOf, tempDir } from '../helpers.js';
import { basic, writeHtpasswd } from '../http/auth-support.js';
import {
  BatchDeleteImageCommand,
  CompleteLayerUploadCommand,
  CreateRepositoryCommand,
  ECRClient,
  InitiateLayerUploadCommand,
  PutImageCommand,
  UploadLayerPartCommand,
} from '@aws-sdk/client-ecr';
import { ACCOUNT, ECR_ACCESS, KEYS, REGION } from '../ecr/sdk-support.js';
import { dockerSaveEntries, formOf, tarOf, testImage } from '../archive/archives.js';

const SECRET_HEADER = 'Bearer notification-secret-4711';

interface Delivery {
  headers: IncomingHttpHeaders;
  body: { events: Array<Record<string, any>> };
}

/** A webhook receiver on a fixed loopback port: up, down (not listening), or slow. */
class Receiver {
  readonly deliveries: Delivery[] = [];
  delayMs = 0;
  private server: Server | undefined;
  constructor(readonly port: number) {}

  static async create(): Promise<Receiver> {
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const { port } = probe.address() as AddressInfo;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    return new Receiver(port);
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}/hook?token=query-secret`;
  }

  async up(): Promise<void> {
    if (this.server) return;
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = JSON.parse(Buffer.concat(chunks).toString()) as Delivery['body'];
        setTimeout(() => {
          this.deliveries.push({ headers: req.headers, body });
          res.writeHead(202).end();
        }, this.delayMs);
      });
    });
    await new Promise<void>((resolve) => server.listen(this.port, '127.0.0.1', resolve));
    this.server = server;
  }

  async down(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  events(): Array<Record<string, any>> {
    return this.deliveries.flatMap((d) => d.body.events);
  }

  /** Waits (bounded) until `n` events have arrived. */
  async waitFor(n: number, timeoutMs = 20_000): Promise<Array<Record<string, any>>> {
    const deadline = Date.now() + timeoutMs;
    while (this.events().length < n) {
      if (Date.now() > deadline) throw new Error(`only ${this.events().length} of ${n} events arrived`);
      await sleep(25);
    }
    return this.events();
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

let apps: FastifyInstance[] = [];
let receivers: Receiver[] = [];
let dirs: string[] = [];
afterEach(async () => {
  for (const app of apps) await app.close();
  for (const r of receivers) await r.down();
  for (const d of dirs) await rm(d, { recursive: true, force: true });
  apps = [];
  receivers = [];
  dirs = [];
});

interface Started {
  app: FastifyInstance;
  url: string;
  lines: Array<Record<string, any>>;
  logText: () => string;
}

async function start(dir: string, receiver: Receiver, overrides: ConfigFile = {}, endpoint: Record<string, unknown> = {}): Promise<Started> {
  const lines: Array<Record<string, any>> = [];
  const raw: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      raw.push(chunk.toString());
      for (const text of chunk.toString().split('\n')) if (text) lines.push(JSON.parse(text) as Record<string, any>);
      done();
    },
  });
  const config = loadConfig({
    env: {},
    overrides: {
      storage: { filesystem: { rootdirectory: join(dir, 'data') } },
      index: { path: join(dir, 'index.db') },
      notifications: {
        endpoints: [
          { name: 'hook', url: receiver.url, headers: { Authorization: [SECRET_HEADER] }, timeout: '2s', threshold: 2, backoff: '100ms', ...endpoint },
        ],
      },
      ...overrides,
    } as ConfigFile,
  });
  const app = await buildApp(config, { logger: { level: 'debug', stream } });
  apps.push(app);
  await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.address() as AddressInfo;
  return { app, url: `http://127.0.0.1:${port}`, lines, logText: () => raw.join('') };
}

async function req(url: string, method: string, path: string, body?: Buffer, headers: Record<string, string> = {}): Promise<Response> {
  const res = await fetch(url + path, { method, headers: { 'user-agent': 'notify-test/1.0', ...headers }, ...(body ? { body } : {}), signal: AbortSignal.timeout(10_000) });
  await res.arrayBuffer();
  return res;
}

/** Pushes a config blob, a layer and a manifest tagged `tag`; returns their digests and sizes. */
async function pushImage(url: string, repo: string, tag: string, seed: string, headers: Record<string, string> = {}) {
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', seed }));
  const layer = Buffer.from(`layer of ${seed}`);
  for (const blob of [config, layer]) {
    expect((await req(url, 'POST', `/v2/${repo}/blobs/uploads/?digest=${digestOf(blob)}`, blob, { 'content-type': 'application/octet-stream', ...headers })).status).toBe(201);
  }
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: OCI_CONFIG, digest: digestOf(config), size: config.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: digestOf(layer), size: layer.length }],
    }),
  );
  expect((await req(url, 'PUT', `/v2/${repo}/manifests/${tag}`, manifest, { 'content-type': OCI_MANIFEST, ...headers })).status).toBe(201);
  return { config, layer, manifest, digest: digestOf(manifest) };
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

describe('event notifications', () => {
  it('a receiver down, then slow, then up gets every event once, in order, in distribution\'s envelope', async () => {
    const dir = await tempDir();
    dirs.push(dir);
    const receiver = await Receiver.create();
    receivers.push(receiver);
    const { app, url } = await start(dir, receiver);

    // Down: the events wait in the outbox.
    const img = await pushImage(url, 'team/app', 'v1', 'one');
    expect((await req(url, 'GET', '/v2/team/app/manifests/v1', undefined, { accept: OCI_MANIFEST })).status).toBe(200);
    expect((await req(url, 'GET', `/v2/team/app/blobs/${digestOf(img.layer)}`)).status).toBe(200);
    // Pulls reach the outbox with their batch (within a second): flushed now, they come before the mount.
    await app.notifier!.flushPulls();
    expect((await req(url, 'POST', `/v2/team/copy/blobs/uploads/?mount=${digestOf(img.layer)}&from=team/app`)).status).toBe(201);
    await sleep(400);
    expect(receiver.deliveries).toHaveLength(0);
    // Slow (but within the timeout): deliveries wait for each answer.
    receiver.delayMs = 300;
    await receiver.up();
    await receiver.waitFor(1);
    expect((await req(url, 'DELETE', '/v2/team/app/manifests/v1')).status).toBe(202);
    expect((await req(url, 'DELETE', `/v2/team/app/manifests/${img.digest}`)).status).toBe(202);
    receiver.delayMs = 0;
    expect((await req(url, 'DELETE', `/v2/team/copy/blobs/${digestOf(img.layer)}`)).status).toBe(202);

    const events = await receiver.waitFor(9);
    await sleep(300); // nothing more comes
    expect(receiver.events()).toHaveLength(9);
    expect(new Set(events.map((e) => e.id)).size).toBe(9);
    expect(events.map((e) => [e.action, e.target.repository, e.target.digest, e.target.tag])).toEqual([
      ['push', 'team/app', digestOf(img.config), undefined],
      ['push', 'team/app', digestOf(img.layer), undefined],
      ['push', 'team/app', img.digest, 'v1'],
      ['pull', 'team/app', img.digest, 'v1'],
      ['pull', 'team/app', digestOf(img.layer), undefined],
      ['mount', 'team/copy', digestOf(img.layer), undefined],
      ['delete', 'team/app', img.digest, 'v1'],
      ['delete', 'team/app', img.digest, undefined],
      ['delete', 'team/copy', digestOf(img.layer), undefined],
    ]);

    // The envelope, field by field, as distribution documents it.
    for (const d of receiver.deliveries) {
      expect(d.headers['content-type']).toBe(ENVELOPE_MEDIA_TYPE);
      expect(d.headers.authorization).toBe(SECRET_HEADER);
      expect(Object.keys(d.body)).toEqual(['events']);
    }
    const host = new URL(url).host;
    for (const e of events) {
      expect(Object.keys(e).sort()).toEqual(['action', 'actor', 'id', 'request', 'source', 'target', 'timestamp']);
      expect(e.id).toMatch(UUID);
      expect(new Date(e.timestamp).toISOString()).toBe(e.timestamp);
      expect(Object.keys(e.request).sort()).toEqual(['addr', 'host', 'id', 'method', 'useragent']);
      expect(e.request.addr).toMatch(/^127\.0\.0\.1:\d+$/);
      expect(e.request.host).toBe(host);
      expect(e.request.useragent).toBe('notify-test/1.0');
      expect(e.actor).toEqual({});
      expect(Object.keys(e.source).sort()).toEqual(['addr', 'instanceID']);
      expect(e.source.instanceID).toMatch(UUID);
    }
    expect(new Set(events.map((e) => e.source.instanceID)).size).toBe(1);
    expect(events.map((e) => e.request.method)).toEqual(['POST', 'POST', 'PUT', 'GET', 'GET', 'POST', 'DELETE', 'DELETE', 'DELETE']);
    const [configPush, , manifestPush, manifestPull, blobPull, mount, tagDelete, manifestDelete, blobDelete] = events as [any, any, any, any, any, any, any, any, any];
    expect(configPush.target).toEqual({
      mediaType: 'application/octet-stream',
      digest: digestOf(img.config),
      size: img.config.length,
      length: img.config.length,
      repository: 'team/app',
      url: `${url}/v2/team/app/blobs/${digestOf(img.config)}`,
    });
    expect(manifestPush.target).toEqual({
      mediaType: OCI_MANIFEST,
      digest: img.digest,
      size: img.manifest.length,
      length: img.manifest.length,
      repository: 'team/app',
      url: `${url}/v2/team/app/manifests/${img.digest}`,
      tag: 'v1',
    });
    expect(manifestPull.target).toEqual(manifestPush.target);
    expect(blobPull.target).toEqual({
      mediaType: 'application/octet-stream',
      digest: digestOf(img.layer),
      size: img.layer.length,
      length: img.layer.length,
      repository: 'team/app',
      url: `${url}/v2/team/app/blobs/${digestOf(img.layer)}`,
    });
    expect(mount.target).toEqual({
      mediaType: 'application/octet-stream',
      digest: digestOf(img.layer),
      size: img.layer.length,
      length: img.layer.length,
      repository: 'team/copy',
      fromRepository: 'team/app',
      url: `${url}/v2/team/copy/blobs/${digestOf(img.layer)}`,
    });
    // Deletes name only the repository and the digest (and the tag, for a tag's).
    expect(tagDelete.target).toEqual({ digest: img.digest, repository: 'team/app', tag: 'v1' });
    expect(manifestDelete.target).toEqual({ digest: img.digest, repository: 'team/app' });
    expect(blobDelete.target).toEqual({ digest: digestOf(img.layer), repository: 'team/copy' });

    // Delivered events leave the outbox.
    await app.notifier!.maintain();
    expect((await app.registry.database.outbox.stats()).count).toBe(0);
  });

  it('a restart in the middle loses nothing: the next process resumes at the cursor', async () => {
    const dir = await tempDir();
    dirs.push(dir);
    const receiver = await Receiver.create();
    receivers.push(receiver);
    await receiver.up();
    const first = await start(dir, receiver);
    await pushImage(first.url, 'r', 'a', 'first');
    await receiver.waitFor(3);
    await receiver.down();
    const second = await pushImage(first.url, 'r', 'b', 'second');
    await first.app.close();
    apps = apps.filter((a) => a !== first.app);

    const again = await start(dir, receiver);
    const third = await pushImage(again.url, 'r', 'c', 'third');
    await receiver.up();
    const events = await receiver.waitFor(9);
    await sleep(300);
    expect(receiver.events()).toHaveLength(9);
    expect(new Set(events.map((e) => e.id)).size).toBe(9);
    expect(events.filter((e) => e.target.tag !== undefined).map((e) => [e.target.tag, e.target.digest])).toEqual([
      ['a', expect.any(String)],
      ['b', second.digest],
      ['c', third.digest],
    ]);
    // Two processes, two instance ids, each event from the process that made it.
    expect(events.slice(0, 6).every((e) => e.source.instanceID === events[0]!.source.instanceID)).toBe(true);
    expect(events[6]!.source.instanceID).not.toBe(events[0]!.source.instanceID);
  });

  it('an answer that comes after the timeout gets the envelope again with the same ids (at least once)', async () => {
    const dir = await tempDir();
    dirs.push(dir);
    const receiver = await Receiver.create();
    receivers.push(receiver);
    receiver.delayMs = 600;
    await receiver.up();
    const { url } = await start(dir, receiver, {}, { timeout: '200ms' });
    await pushImage(url, 'r', 'a', 'slow');
    await receiver.waitFor(3);
    receiver.delayMs = 0;
    await sleep(1500);
    const events = receiver.events();
    expect(events.length).toBeGreaterThan(3);
    // Deduplicated by id, they are the three events, in the order of the pushes.
    const unique = [...new Map(events.map((e) => [e.id as string, e])).values()];
    expect(unique).toHaveLength(3);
    expect(unique.map((e) => e.target.mediaType)).toEqual(['application/octet-stream', 'application/octet-stream', OCI_MANIFEST]);
    // Each resent envelope is the same as the first: a later event never overtakes an earlier one.
    const firstSeen = events.map((e) => unique.indexOf(unique.find((u) => u.id === e.id)!));
    expect([...firstSeen].sort((a, b) => a - b)).toEqual(firstSeen);
  });

  it('past the bound the oldest undelivered events are dropped, with a metric and a log line', async () => {
    const dir = await tempDir();
    dirs.push(dir);
    const receiver = await Receiver.create();
    receivers.push(receiver);
    const { app, url, lines } = await start(dir, receiver, {
      http: { debug: { addr: '127.0.0.1:0', prometheus: { enabled: true } } },
      notifications: {
        endpoints: [{ name: 'hook', url: receiver.url, timeout: '2s', threshold: 2, backoff: '100ms' }],
        outbox: { maxevents: 2 },
      },
    } as ConfigFile);
    const one = await pushImage(url, 'r', 'one', 'one');
    const two = await pushImage(url, 'r', 'two', 'two');
    await app.notifier!.maintain();
    expect((await app.registry.database.outbox.stats()).count).toBe(2);
    const line = lines.find((l) => l.msg === 'notification outbox full: the oldest undelivered events were dropped');
    expect(line).toMatchObject({ endpoint: 'hook', dropped: 4, maxEvents: 2 });
    const metrics = await app.metrics!.registry.metrics();
    expect(metrics).toContain('registry_notification_events_total{endpoint="hook",result="dropped"} 4');
    await receiver.up();
    const events = await receiver.waitFor(2);
    await sleep(300);
    expect(receiver.events()).toHaveLength(2);
    expect(events.map((e) => e.target.digest)).toEqual([digestOf(two.layer), two.digest]);
    expect(one.digest).not.toBe(two.digest);
    const after = await app.metrics!.registry.metrics();
    expect(after).toContain('registry_notification_events_total{endpoint="hook",result="delivered"} 2');
    expect(after).toMatch(/registry_notification_delivery_failures_total\{endpoint="hook"\} [1-9]/);
  });

  it('ignore.actions and ignoredmediatypes leave events out; a disabled endpoint gets nothing; the user is the actor', async () => {
    const dir = await tempDir();
    dirs.push(dir);
    const receiver = await Receiver.create();
    const other = await Receiver.create();
    receivers.push(receiver, other);
    await receiver.up();
    await other.up();
    const { url, logText } = await start(dir, receiver, {
      auth: { htpasswd: { path: await writeHtpasswd(dir) } },
      notifications: {
        endpoints: [
          { name: 'hook', url: receiver.url, headers: { Authorization: SECRET_HEADER }, ignoredmediatypes: ['application/octet-stream'], ignore: { actions: ['pull'] } },
          { name: 'off', url: other.url, disabled: true },
        ],
      },
    } as ConfigFile);
    const alice = { authorization: basic('alice') };
    const img = await pushImage(url, 'team/app', 'v1', 'filtered', alice);
    expect((await req(url, 'GET', '/v2/team/app/manifests/v1', undefined, { ...alice, accept: OCI_MANIFEST })).status).toBe(200);
    expect((await req(url, 'DELETE', '/v2/team/app/manifests/v1', undefined, alice)).status).toBe(202);
    const events = await receiver.waitFor(2);
    await sleep(1500); // the pull's batch has been flushed by now, and was left out
    expect(receiver.events()).toHaveLength(2);
    expect(events.map((e) => [e.action, e.target.digest])).toEqual([
      ['push', img.digest],
      ['delete', img.digest],
    ]);
    expect(events.every((e) => e.actor.name === 'alice')).toBe(true);
    expect(other.deliveries).toHaveLength(0);
    // The endpoint's header and its URL's query are secrets: in no log line.
    expect(logText()).not.toContain('notification-secret-4711');
    expect(logText()).not.toContain('query-secret');
  });

  it('a pull does not write in its request: its event is appended with the next batch', async () => {
    const dir = await tempDir();
    dirs.push(dir);
    const receiver = await Receiver.create();
    receivers.push(receiver);
    const { app, url } = await start(dir, receiver);
    await pushImage(url, 'r', 'v1', 'pulled');
    const outbox = app.registry.database.outbox;
    const before = (await outbox.stats()).count;
    expect((await req(url, 'GET', '/v2/r/manifests/v1', undefined, { accept: OCI_MANIFEST })).status).toBe(200);
    expect((await req(url, 'HEAD', '/v2/r/manifests/v1', undefined, { accept: OCI_MANIFEST })).status).toBe(200);
    expect((await outbox.stats()).count).toBe(before);
    await app.notifier!.flushPulls();
    const rows = await outbox.after(0, 100);
    expect(rows).toHaveLength(before + 1); // the GET; a HEAD is no pull
    expect(JSON.parse(rows[rows.length - 1]!.event)).toMatchObject({ action: 'pull', target: { repository: 'r', tag: 'v1' } });
  });

  it('a registry without endpoints writes no outbox rows', async () => {
    const dir = await tempDir();
    dirs.push(dir);
    const receiver = await Receiver.create();
    const { app, url } = await start(dir, receiver, { notifications: { endpoints: [{ name: 'off', url: receiver.url, disabled: true }] } } as ConfigFile);
    expect(app.notifier).toBeUndefined();
    await pushImage(url, 'r', 'v1', 'quiet');
    expect((await app.registry.database.outbox.stats()).count).toBe(0);
  });
});

describe('event notifications from the ECR API', () => {
  it('CompleteLayerUpload, PutImage and BatchDeleteImage send the events of the same changes over /v2/', async () => {
    const dir = await tempDir();
    dirs.push(dir);
    const receiver = await Receiver.create();
    receivers.push(receiver);
    await receiver.up();
    const credentials = Object.entries(KEYS).map(([user, k]) => ({ accesskeyid: k.accessKeyId, secretaccesskey: k.secretAccessKey, user }));
    const { url } = await start(dir, receiver, { access: ECR_ACCESS, ecr: { enabled: true, accountid: ACCOUNT, region: REGION, credentials } } as ConfigFile);
    const ecr = new ECRClient({ endpoint: url, region: REGION, credentials: KEYS.dev, maxAttempts: 1 });
    await ecr.send(new CreateRepositoryCommand({ repositoryName: 'team/svc' }));
    const config = Buffer.from('{"architecture":"amd64","os":"linux"}');
    const { uploadId } = await ecr.send(new InitiateLayerUploadCommand({ repositoryName: 'team/svc' }));
    await ecr.send(new UploadLayerPartCommand({ repositoryName: 'team/svc', uploadId, partFirstByte: 0, partLastByte: config.length - 1, layerPartBlob: config }));
    await ecr.send(new CompleteLayerUploadCommand({ repositoryName: 'team/svc', uploadId, layerDigests: [digestOf(config)] }));
    const manifest = JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: OCI_CONFIG, digest: digestOf(config), size: config.length }, layers: [] });
    await ecr.send(new PutImageCommand({ repositoryName: 'team/svc', imageManifest: manifest, imageManifestMediaType: OCI_MANIFEST, imageTag: 'v1' }));
    await ecr.send(new BatchDeleteImageCommand({ repositoryName: 'team/svc', imageIds: [{ imageTag: 'v1' }] }));
    const events = await receiver.waitFor(4);
    await sleep(300);
    expect(receiver.events()).toHaveLength(4);
    expect(events.map((e) => [e.action, e.target.repository, e.target.digest, e.target.tag, e.actor.name])).toEqual([
      ['push', 'team/svc', digestOf(config), undefined, 'dev'],
      ['push', 'team/svc', digestOf(manifest), 'v1', 'dev'],
      ['delete', 'team/svc', digestOf(manifest), 'v1', 'dev'],
      ['delete', 'team/svc', digestOf(manifest), undefined, 'dev'],
    ]);
    expect(events[1]!.target.url).toBe(`${url}/v2/team/svc/manifests/${digestOf(manifest)}`);
  });
});

describe('event notifications from archive imports', () => {
  it('an import sends the push events of its blobs and manifest with the request\'s origin, and an export a pull', async () => {
    const dir = await tempDir();
    dirs.push(dir);
    const receiver = await Receiver.create();
    receivers.push(receiver);
    await receiver.up();
    const { url } = await start(dir, receiver);
    const image = await testImage('notified');
    const form = formOf(await tarOf(dockerSaveEntries([{ image, repoTags: ['team/notified:v1'] }])));
    expect((await req(url, 'POST', '/api/v1/import', form.payload, form.headers)).status).toBe(201);
    expect((await req(url, 'GET', '/api/v1/export/team/notified:v1')).status).toBe(200);
    const events = await receiver.waitFor(5);
    await sleep(300);
    expect(receiver.events()).toHaveLength(5);
    const blobs = [image.config, ...image.layers].map((b) => digestOf(b));
    expect(events.slice(0, 3).map((e) => [e.action, e.target.repository, e.target.mediaType]).every(([a, r, m]) => a === 'push' && r === 'team/notified' && m === 'application/octet-stream')).toBe(true);
    expect(events.slice(0, 3).map((e) => e.target.digest).sort()).toEqual([...blobs].sort());
    expect(events.slice(3).map((e) => [e.action, e.target.repository, e.target.digest, e.target.tag, e.target.mediaType])).toEqual([
      ['push', 'team/notified', image.digest, 'v1', OCI_MANIFEST],
      ['pull', 'team/notified', image.digest, 'v1', OCI_MANIFEST],
    ]);
    expect(events[3]!.request.method).toBe('POST');
    expect(events[3]!.request.useragent).toBe('notify-test/1.0');
  });
});
