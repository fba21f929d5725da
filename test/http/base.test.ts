import { rm } from 'node:fs/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config/config.js';
import { errorCode, startRegistry, tempDir, type TestRegistry } from '../helpers.js';

describe('base endpoints', () => {
  let reg: TestRegistry;
  beforeEach(async () => {
    reg = await startRegistry();
  });
  afterEach(async () => {
    await reg.destroy();
  });

  it('GET /v2/ answers 200 {} with the API version header', async () => {
    const res = await reg.app.inject({ method: 'GET', url: '/v2/' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({});
    expect(res.headers['docker-distribution-api-version']).toBe('registry/2.0');
    expect(res.headers['content-type']).toMatch(/^application\/json/);
  });

  it('HEAD /v2/ answers 200 without a body', async () => {
    const res = await reg.app.inject({ method: 'HEAD', url: '/v2/' });
    expect(res.statusCode).toBe(200);
    expect(res.body).toBe('');
  });

  it('answers unknown endpoints under /v2/ with the error envelope', async () => {
    const res = await reg.app.inject({ method: 'GET', url: '/v2/foo/bar' });
    expect(res.statusCode).toBe(404);
    expect(errorCode(res)).toBe('UNSUPPORTED');
    const outside = await reg.app.inject({ method: 'GET', url: '/nothing' });
    expect(outside.statusCode).toBe(404);
    expect(errorCode(outside)).toBe('UNSUPPORTED');
  });

  it('answers a wrong method on a known endpoint with 405 UNSUPPORTED and Allow', async () => {
    const res = await reg.app.inject({ method: 'POST', url: '/v2/foo/tags/list' });
    expect(res.statusCode).toBe(405);
    expect(errorCode(res)).toBe('UNSUPPORTED');
    expect(res.headers.allow).toBe('GET');
  });

  it('reports health', async () => {
    const res = await reg.app.inject({ method: 'GET', url: '/healthz' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ status: 'ok' });
  });

  it('adds the configured response headers', async () => {
    const custom = await startRegistry({ http: { headers: { 'X-Content-Type-Options': ['nosniff'] } } });
    try {
      const res = await custom.app.inject({ method: 'GET', url: '/v2/' });
      expect(res.headers['x-content-type-options']).toBe('nosniff');
    } finally {
      await custom.destroy();
    }
  });
});

describe('malformed requests', () => {
  let reg: TestRegistry;
  beforeEach(async () => {
    reg = await startRegistry();
  });
  afterEach(async () => {
    await reg.destroy();
  });

  it.each(['/v2/%zz/tags/list', '/v2/a/manifests/%ff'])('a badly encoded URL %s answers 400 with the envelope', async (url) => {
    const res = await reg.app.inject({ method: 'GET', url });
    expect(res.statusCode).toBe(400);
    expect(errorCode(res)).toBe('UNSUPPORTED');
  });

  it('a percent-encoded colon in a digest is decoded', async () => {
    const res = await reg.app.inject({ method: 'GET', url: '/v2/a/blobs/sha256%3Aabc' });
    expect(res.statusCode).toBe(400);
    expect(errorCode(res)).toBe('DIGEST_INVALID');
  });
});

describe('access log', () => {
  /** A registry logging at info into an array of parsed lines. */
  async function withLog(accessLogDisabled: boolean) {
    const dir = await tempDir();
    const lines: Array<Record<string, unknown>> = [];
    const stream = { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) };
    const config = loadConfig({
      env: {},
      overrides: { log: { accesslog: { disabled: accessLogDisabled } }, storage: { filesystem: { rootdirectory: dir } } },
    });
    const app = await buildApp(config, { logger: { level: 'info', stream } });
    await app.ready();
    return { app, lines, destroy: async () => { await app.close(); await rm(dir, { recursive: true, force: true }); } };
  }

  it('writes one line per request, when it ends, with method, URL, status and time', async () => {
    const reg = await withLog(false);
    try {
      await reg.app.inject({ method: 'GET', url: '/v2/' });
      await reg.app.inject({ method: 'GET', url: '/v2/no/such/manifests/latest' });
      const requests = reg.lines.filter((l) => l.req !== undefined || l.res !== undefined);
      expect(requests).toHaveLength(2);
      expect(requests[0]).toMatchObject({ level: 30, msg: 'request completed', req: { method: 'GET', url: '/v2/' }, res: { statusCode: 200 } });
      expect(requests[1]).toMatchObject({ req: { method: 'GET', url: '/v2/no/such/manifests/latest' }, res: { statusCode: 404 } });
      expect(typeof requests[1]!.responseTime).toBe('number');
      expect(requests[0]!.reqId).not.toBe(requests[1]!.reqId);
    } finally {
      await reg.destroy();
    }
  });

  it('writes none with log.accesslog.disabled', async () => {
    const reg = await withLog(true);
    try {
      await reg.app.inject({ method: 'GET', url: '/v2/' });
      expect(reg.lines.filter((l) => l.req !== undefined || l.res !== undefined)).toEqual([]);
    } finally {
      await reg.destroy();
    }
  });
});
