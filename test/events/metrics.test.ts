// Prometheus metrics on the debug server: scraped after a known workload, the counters equal
// what was done; the public port does not serve them; repository names appear only when asked.
import { connect } from 'node:net';
import { once } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { OCI_MANIFEST, digestOf, makeImage, pushBlob, putManifest, startRegistry, tempDir, type TestRegistry } from '../helpers.js';
import { basic, writeHtpasswd } from '../http/auth-support.js';
import type { ConfigFile } from '../../src/config/schema.js';
import { Readable } from 'node:stream';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../support/built-server.js';
import { listen, send, sleep, waitFor } from '../support/socket.js';

const DEBUG: ConfigFile['http'] = { debug: { addr: '127.0.0.1:0', prometheus: { enabled: true } } };

/** The samples of a scrape, by `name{labels}` as Prometheus prints them (labels in the printed order). */
async function scrape(app: FastifyInstance, path = '/metrics'): Promise<Map<string, number>> {
  const res = await app.debugServer!.inject({ method: 'GET', url: path });
  expect(res.statusCode).toBe(200);
  expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
  const samples = new Map<string, number>();
  for (const line of res.body.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const space = line.lastIndexOf(' ');
    samples.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return samples;
}

/** The sum of every sample of `name` whose labels include all of `labels`. */
function sum(samples: Map<string, number>, name: string, labels: Record<string, string> = {}): number {
  let total = 0;
  for (const [key, value] of samples) {
    const brace = key.indexOf('{');
    const metric = brace < 0 ? key : key.slice(0, brace);
    if (metric !== name) continue;
    const text = brace < 0 ? '' : key.slice(brace);
    if (Object.entries(labels).every(([k, v]) => text.includes(`${k}="${v}"`))) total += value;
  }
  return total;
}

let reg: TestRegistry | undefined;
afterEach(async () => {
  await reg?.destroy();
  reg = undefined;
});

describe('metrics on the debug server', () => {
  it('counts requests by area, method and status, uploads, storage and index calls, cache hits and GC runs', async () => {
    reg = await startRegistry({ http: DEBUG, storage: { maintenance: { gc: { enabled: true, delay: '0s', interval: '24h' } } } });
    const { app } = reg;
    const repo = 'team/app';
    // Two monolithic blob pushes (config, layer), then the manifest, tagged.
    const image = await makeImage(app, repo, { layer: 'one' });
    expect((await putManifest(app, repo, 'v1', image)).statusCode).toBe(201);
    // A chunked upload: POST (202), PATCH (202), PUT (201).
    const data = Buffer.from('chunked blob data');
    const start = await app.inject({ method: 'POST', url: `/v2/${repo}/blobs/uploads/` });
    expect(start.statusCode).toBe(202);
    const location = start.headers.location as string;
    const patch = await app.inject({ method: 'PATCH', url: location, headers: { 'content-type': 'application/octet-stream' }, payload: data });
    expect(patch.statusCode).toBe(202);
    const next = patch.headers.location as string;
    const put = await app.inject({ method: 'PUT', url: `${next}${next.includes('?') ? '&' : '?'}digest=${digestOf(data)}` });
    expect(put.statusCode).toBe(201);
    for (let i = 0; i < 3; i++) {
      expect((await app.inject({ method: 'GET', url: `/v2/${repo}/manifests/v1`, headers: { accept: OCI_MANIFEST } })).statusCode).toBe(200);
    }
    expect((await app.inject({ method: 'HEAD', url: `/v2/${repo}/blobs/${digestOf(data)}` })).statusCode).toBe(200);
    expect((await app.inject({ method: 'GET', url: `/v2/${repo}/blobs/${digestOf('nothing')}` })).statusCode).toBe(404);
    expect((await app.inject({ method: 'GET', url: `/v2/${repo}/tags/list` })).statusCode).toBe(200);
    expect((await app.inject({ method: 'GET', url: `/v2/${repo}/tags/list` })).statusCode).toBe(200);
    expect((await app.inject({ method: 'GET', url: '/v2/no/such/endpoint/here' })).statusCode).toBe(404);

    let s = await scrape(app);
    const requests = (labels: Record<string, string>) => sum(s, 'registry_http_requests_total', labels);
    expect(requests({ route: 'blob_upload', method: 'POST', status: '201' })).toBe(2);
    expect(requests({ route: 'blob_upload', method: 'POST', status: '202' })).toBe(1);
    expect(requests({ route: 'blob_upload', method: 'PATCH', status: '202' })).toBe(1);
    expect(requests({ route: 'blob_upload', method: 'PUT', status: '201' })).toBe(1);
    expect(requests({ route: 'manifest', method: 'PUT', status: '201' })).toBe(1);
    expect(requests({ route: 'manifest', method: 'GET', status: '200' })).toBe(3);
    expect(requests({ route: 'blob', method: 'HEAD', status: '200' })).toBe(1);
    expect(requests({ route: 'blob', method: 'GET', status: '404' })).toBe(1);
    expect(requests({ route: 'tags', method: 'GET', status: '200' })).toBe(2);
    expect(requests({ route: 'unknown', status: '404' })).toBe(1);
    expect(requests({})).toBe(14);
    expect(sum(s, 'registry_http_request_duration_seconds_count', { route: 'manifest', method: 'GET' })).toBe(3);
    expect(sum(s, 'registry_uploads_in_flight')).toBe(0);
    // The second listing came from the tag cache.
    expect(sum(s, 'registry_cache_lookups_total', { cache: 'tags', result: 'miss' })).toBe(1);
    expect(sum(s, 'registry_cache_lookups_total', { cache: 'tags', result: 'hit' })).toBe(1);
    // Three uploads were committed into the store, each timed once, by the backend it went to.
    expect(sum(s, 'registry_storage_operation_duration_seconds_count', { backend: 'filesystem', operation: 'commitUpload', outcome: 'ok' })).toBe(3);
    expect(sum(s, 'registry_index_query_duration_seconds_count', { operation: 'registry.putManifest' })).toBe(1);
    expect(sum(s, 'registry_index_query_duration_seconds_count')).toBeGreaterThan(10);
    expect(sum(s, 'registry_gc_runs_total')).toBe(0);
    expect(sum(s, 'process_cpu_seconds_total')).toBeGreaterThan(0);
    expect(sum(s, 'nodejs_heap_size_used_bytes')).toBeGreaterThan(0);
    // No repository names in any label unless asked.
    const text = (await app.debugServer!.inject({ method: 'GET', url: '/metrics' })).body;
    expect(text).not.toContain('team/app');
    expect(text).not.toContain('repository=');

    // Delete the manifest, then collect: what it used goes, and the chunked blob too (never used).
    expect((await app.inject({ method: 'DELETE', url: `/v2/${repo}/manifests/${image.digest}` })).statusCode).toBe(202);
    await app.jobs.find((j) => j.name === 'gc')!.runNow();
    s = await scrape(app);
    expect(sum(s, 'registry_gc_runs_total', { mode: 'delete' })).toBe(1);
    // The config, the layer, the chunked blob and the manifest's own bytes (stored as a blob).
    expect(sum(s, 'registry_gc_removed_total', { kind: 'blob', mode: 'delete' })).toBe(4);
    const config = Buffer.byteLength(JSON.stringify({ architecture: 'amd64', os: 'linux', layer: 'one' }));
    expect(sum(s, 'registry_gc_removed_bytes_total', { mode: 'delete' })).toBe(config + 'layer:one'.length + data.length + image.body.length);
    expect(sum(s, 'registry_gc_duration_seconds_count')).toBe(1);
  });

  it('is not served on the public port, and the debug server serves nothing else', async () => {
    reg = await startRegistry({ http: DEBUG });
    expect((await reg.app.inject({ method: 'GET', url: '/metrics' })).statusCode).toBe(404);
    expect((await reg.app.debugServer!.inject({ method: 'GET', url: '/v2/' })).statusCode).toBe(404);
    expect((await reg.app.debugServer!.inject({ method: 'GET', url: '/' })).statusCode).toBe(404);
  });

  it('serves them at http.debug.prometheus.path', async () => {
    reg = await startRegistry({ http: { debug: { addr: '127.0.0.1:0', prometheus: { enabled: true, path: '/internal/prom' } } } });
    expect((await reg.app.debugServer!.inject({ method: 'GET', url: '/metrics' })).statusCode).toBe(404);
    expect(sum(await scrape(reg.app, '/internal/prom'), 'registry_uploads_in_flight')).toBe(0);
  });

  it('has no metrics, and no debug server, unless configured', async () => {
    reg = await startRegistry();
    expect(reg.app.metrics).toBeUndefined();
    expect(reg.app.debugServer).toBeUndefined();
    expect((await reg.app.inject({ method: 'GET', url: '/metrics' })).statusCode).toBe(404);
  });

  it('labels requests with the repository when repositorylabels is on', async () => {
    reg = await startRegistry({ http: { debug: { addr: '127.0.0.1:0', prometheus: { enabled: true, repositorylabels: true } } } });
    await pushBlob(reg.app, 'team/app', 'x');
    await pushBlob(reg.app, 'other', 'y');
    // An invalid name is not a label value: it could be anything a client sends.
    expect((await reg.app.inject({ method: 'GET', url: '/v2/BAD..NAME/tags/list' })).statusCode).toBe(400);
    const s = await scrape(reg.app);
    expect(sum(s, 'registry_http_requests_total', { route: 'blob_upload', repository: 'team/app' })).toBe(1);
    expect(sum(s, 'registry_http_requests_total', { route: 'blob_upload', repository: 'other' })).toBe(1);
    expect(sum(s, 'registry_http_requests_total', { route: 'tags', repository: '' })).toBe(1);
  });

  it('counts the bytes of each request and response exactly, headers included', async () => {
    reg = await startRegistry({ http: DEBUG });
    await reg.app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = reg.app.server.address() as { port: number };
    const socket = connect(port, '127.0.0.1');
    await once(socket, 'connect');
    const body = Buffer.from('monolithic blob body');
    // Two requests on one kept-alive connection: each is charged its own bytes.
    const first = `GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n`;
    const second =
      `POST /v2/r/blobs/uploads/?digest=${digestOf(body)} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n` +
      `Content-Length: ${body.length}\r\nConnection: close\r\n\r\n${body.toString()}`;
    const received: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => received.push(chunk));
    socket.write(first);
    // The first answer has arrived before the second request is sent.
    for (let i = 0; i < 100 && !Buffer.concat(received).includes('{}'); i++) await new Promise((r) => setTimeout(r, 20));
    const firstAnswer = Buffer.concat(received).length;
    socket.write(second);
    await once(socket, 'close');
    const total = Buffer.concat(received).length;
    // The response has ended; its close event is counted a moment later.
    let s = await scrape(reg.app);
    for (let i = 0; i < 50 && sum(s, 'registry_http_requests_total') < 2; i++) {
      await new Promise((r) => setTimeout(r, 20));
      s = await scrape(reg.app);
    }
    expect(sum(s, 'registry_http_received_bytes_total', { route: '/v2/' })).toBe(first.length);
    expect(sum(s, 'registry_http_sent_bytes_total', { route: '/v2/' })).toBe(firstAnswer);
    expect(sum(s, 'registry_http_received_bytes_total', { route: 'blob_upload' })).toBe(Buffer.byteLength(second));
    expect(sum(s, 'registry_http_sent_bytes_total', { route: 'blob_upload' })).toBe(total - firstAnswer);
  });

  it('shows an upload in flight while its body is being received', async () => {
    reg = await startRegistry({ http: DEBUG });
    const url = await listen(reg.app);
    const start = await reg.app.inject({ method: 'POST', url: '/v2/slow/blobs/uploads/' });
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    const body = Readable.from(
      (async function* () {
        yield Buffer.from('first half, ');
        await released;
        yield Buffer.from('second half');
      })(),
    );
    const patch = send(`${url}${start.headers.location as string}`, { method: 'PATCH', headers: { 'content-type': 'application/octet-stream' }, body });
    let inFlight = 0;
    for (let i = 0; i < 100 && inFlight === 0; i++) {
      await sleep(20);
      inFlight = sum(await scrape(reg.app), 'registry_uploads_in_flight');
    }
    expect(inFlight).toBe(1);
    release();
    expect((await patch).status).toBe(202);
    await waitFor(async () => sum(await scrape(reg!.app), 'registry_uploads_in_flight') === 0, { timeoutMs: 5000, what: 'the upload to end' });
  });

  it('has every metric the Grafana dashboard in docs/ queries', async () => {
    reg = await startRegistry({ http: DEBUG });
    const text = (await reg.app.debugServer!.inject({ method: 'GET', url: '/metrics' })).body;
    const declared = new Set([...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]!));
    const dashboard = JSON.parse(await readFile(join(PROJECT_ROOT, 'docs', 'grafana-dashboard.json'), 'utf8')) as {
      panels: Array<{ targets: Array<{ expr: string }> }>;
    };
    const queried = new Set(
      dashboard.panels.flatMap((p) => p.targets.flatMap((t) => [...t.expr.matchAll(/\b((?:registry|process|nodejs)_[a-z0-9_]+)/g)].map((m) => m[1]!))),
    );
    expect(queried.size).toBeGreaterThan(15);
    for (const name of queried) expect(declared, name).toContain(name.replace(/_(bucket|count|sum)$/, ''));
  });

  it('counts retention runs and the images they expired, and failed job runs', async () => {
    const policy = JSON.stringify({
      rules: [{ rulePriority: 1, selection: { tagStatus: 'tagged', tagPrefixList: ['v'], countType: 'imageCountMoreThan', countNumber: 1 }, action: { type: 'expire' } }],
    });
    reg = await startRegistry({ http: DEBUG, retention: { policies: [{ repositories: ['apps/**'], policy }] } });
    for (const tag of ['v1', 'v2', 'v3']) {
      const image = await makeImage(reg.app, 'apps/web', { layer: tag });
      expect((await putManifest(reg.app, 'apps/web', tag, image)).statusCode).toBe(201);
      await sleep(3);
    }
    await reg.app.jobs.find((j) => j.name === 'retention')!.runNow();
    let s = await scrape(reg.app);
    expect(sum(s, 'registry_lifecycle_runs_total', { job: 'retention' })).toBe(1);
    expect(sum(s, 'registry_lifecycle_expired_images_total', { job: 'retention', mode: 'delete' })).toBe(2);
    expect(sum(s, 'registry_lifecycle_duration_seconds_count', { job: 'retention' })).toBe(1);
    // A run that fails is counted as a failure of its job.
    const index = reg.app.registry.database.registry;
    const staleUploads = index.staleUploads;
    index.staleUploads = async () => {
      throw new Error('the index is gone');
    };
    try {
      await reg.app.jobs.find((j) => j.name === 'upload-purge')!.runNow().catch(() => undefined);
    } finally {
      index.staleUploads = staleUploads;
    }
    s = await scrape(reg.app);
    expect(sum(s, 'registry_job_failures_total', { job: 'upload-purge' })).toBe(1);
  });

  it('counts refused logins by reason and the locks they lead to', async () => {
    const dir = await tempDir();
    const path = await writeHtpasswd(dir);
    reg = await startRegistry({ http: DEBUG, auth: { htpasswd: { path } } }, dir);
    const wrong = basic('alice', 'not-her-password');
    for (let i = 0; i < 5; i++) {
      expect((await reg.app.inject({ method: 'GET', url: '/v2/', headers: { authorization: wrong } })).statusCode).toBe(401);
    }
    // The pair is locked now: the next attempt is refused without a password check.
    expect((await reg.app.inject({ method: 'GET', url: '/v2/', headers: { authorization: wrong } })).statusCode).toBe(429);
    // A good login, twice: one bcrypt check, then the cache of recent verifications.
    for (let i = 0; i < 2; i++) {
      expect((await reg.app.inject({ method: 'GET', url: '/v2/', headers: { authorization: basic('bob') } })).statusCode).toBe(200);
    }
    const s = await scrape(reg.app);
    expect(sum(s, 'registry_auth_failures_total', { reason: 'invalid' })).toBe(5);
    expect(sum(s, 'registry_auth_failures_total', { reason: 'throttled' })).toBe(1);
    expect(sum(s, 'registry_auth_lockouts_total', { scope: 'user' })).toBe(1);
    expect(sum(s, 'registry_auth_lockouts_total', { scope: 'address' })).toBe(0);
    expect(sum(s, 'registry_cache_lookups_total', { cache: 'passwords', result: 'hit' })).toBe(1);
    // The challenge-only first request (no credentials) is not a failure.
    expect((await reg.app.inject({ method: 'GET', url: '/v2/' })).statusCode).toBe(401);
    expect(sum(await scrape(reg.app), 'registry_auth_failures_total')).toBe(6);
  });
});
