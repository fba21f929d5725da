import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { parseChallenges } from '../../src/proxy/challenge.js';
import { UpstreamClient, UpstreamDeniedError, UpstreamUnavailableError, readLimited, retryAfterSeconds } from '../../src/proxy/upstream.js';

describe('parseChallenges', () => {
  it("reads Docker's Bearer challenge and Basic's", () => {
    expect(parseChallenges('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull"')).toEqual([
      { scheme: 'bearer', params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/alpine:pull' } },
    ]);
    expect(parseChallenges('Basic realm="Registry Realm"')).toEqual([{ scheme: 'basic', params: { realm: 'Registry Realm' } }]);
  });

  it('reads several challenges, unquoted and escaped values, and keeps the first of a scheme', () => {
    expect(parseChallenges('Basic realm=x, Bearer realm="a\\"b", service=s, Basic realm=y')).toEqual([
      { scheme: 'basic', params: { realm: 'x' } },
      { scheme: 'bearer', params: { realm: 'a"b', service: 's' } },
    ]);
  });

  it('gives nothing for nothing, and stops at what it cannot read', () => {
    expect(parseChallenges(undefined)).toEqual([]);
    expect(parseChallenges('')).toEqual([]);
    expect(parseChallenges('=garbage')).toEqual([]);
    expect(parseChallenges('Bearer realm="x", "stray"')).toEqual([{ scheme: 'bearer', params: { realm: 'x' } }]);
  });
});

describe('retryAfterSeconds', () => {
  it('reads seconds and dates, bounded to a day', () => {
    expect(retryAfterSeconds('120')).toBe(120);
    expect(retryAfterSeconds(new Date(Date.now() + 60_000).toUTCString())).toBeGreaterThanOrEqual(58);
    expect(retryAfterSeconds('9999999')).toBe(86_400);
    expect(retryAfterSeconds('soon')).toBeUndefined();
    expect(retryAfterSeconds(null)).toBeUndefined();
  });
});

type Handler = (request: IncomingMessage, response: ServerResponse, base: string) => void;
const servers: Server[] = [];

async function serve(handler: Handler): Promise<{ url: string; requests: IncomingMessage[] }> {
  const requests: IncomingMessage[] = [];
  let base = '';
  const server = createServer((request, response) => {
    requests.push(request);
    handler(request, response, base);
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  return { url: base, requests };
}

afterEach(async () => {
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

describe('UpstreamClient', () => {
  it('asks the realm for a token of the scope, caches it until it expires, then asks again', async () => {
    let tokens = 0;
    const upstream = await serve((request, response, base) => {
      const url = new URL(request.url!, base);
      if (url.pathname === '/token') {
        tokens++;
        expect(url.searchParams.get('scope')).toBe('repository:library/alpine:pull');
        expect(url.searchParams.get('service')).toBe('test');
        expect(request.headers.authorization).toBe(`Basic ${Buffer.from('u:p').toString('base64')}`);
        return void response.end(JSON.stringify({ token: `t${tokens}`, expires_in: 300 }));
      }
      if (request.headers.authorization === `Bearer t${tokens}`) return void response.writeHead(200).end('ok');
      response.writeHead(401, { 'www-authenticate': `Bearer realm="${base}/token",service="test"` }).end();
    });
    let now = Date.now();
    const client = new UpstreamClient({ url: upstream.url, dockerHub: false, username: 'u', password: 'p' }, { timeoutMs: 5_000, now: () => now });
    const get = async () => {
      const res = await client.request('GET', '/v2/library/alpine/manifests/latest', 'library/alpine', {});
      res.discard();
      return res.status;
    };
    expect(await get()).toBe(200);
    expect(await get()).toBe(200);
    expect(tokens).toBe(1);
    // One 401 (the first request), then the token sent at once.
    expect(upstream.requests.filter((r) => r.url!.startsWith('/v2/')).length).toBe(3);
    now += 296_000; // past expiry, less the renewal margin
    expect(await get()).toBe(200);
    expect(tokens).toBe(2);
  });

  it('asks for a new token when the upstream stops taking the cached one', async () => {
    let tokens = 0;
    let accepted = 't1';
    const upstream = await serve((request, response, base) => {
      if (request.url!.startsWith('/token')) {
        tokens++;
        return void response.end(JSON.stringify({ token: `t${tokens}`, expires_in: 3600 }));
      }
      if (request.headers.authorization === `Bearer ${accepted}`) return void response.writeHead(200).end();
      response.writeHead(401, { 'www-authenticate': `Bearer realm="${base}/token"` }).end();
    });
    const client = new UpstreamClient({ url: upstream.url, dockerHub: false }, { timeoutMs: 5_000 });
    expect((await client.request('GET', '/v2/r/manifests/t', 'r', {})).status).toBe(200);
    accepted = 't2'; // revoked upstream
    expect((await client.request('GET', '/v2/r/manifests/t', 'r', {})).status).toBe(200);
    expect(tokens).toBe(2);
  });

  it('takes access_token and a token without expires_in (60 s)', async () => {
    let tokens = 0;
    const upstream = await serve((request, response, base) => {
      if (request.url!.startsWith('/token')) {
        tokens++;
        return void response.end(JSON.stringify({ access_token: 'at' }));
      }
      if (request.headers.authorization === 'Bearer at') return void response.writeHead(200).end();
      response.writeHead(401, { 'www-authenticate': `Bearer realm="${base}/token"` }).end();
    });
    let now = Date.now();
    const client = new UpstreamClient({ url: upstream.url, dockerHub: false }, { timeoutMs: 5_000, now: () => now });
    expect((await client.request('GET', '/v2/r/manifests/t', 'r', {})).status).toBe(200);
    now += 50_000;
    expect((await client.request('GET', '/v2/r/manifests/t', 'r', {})).status).toBe(200);
    expect(tokens).toBe(1);
    now += 20_000;
    expect((await client.request('GET', '/v2/r/manifests/t', 'r', {})).status).toBe(200);
    expect(tokens).toBe(2);
  });

  it('sends no credentials to a token realm on another host over http', async () => {
    const realm = await serve((_request, response) => void response.end(JSON.stringify({ token: 'x' })));
    const upstream = await serve((_request, response) => {
      response.writeHead(401, { 'www-authenticate': `Bearer realm="${realm.url.replace('127.0.0.1', 'localhost')}/token"` }).end();
    });
    const client = new UpstreamClient({ url: upstream.url, dockerHub: false, username: 'u', password: 'secret' }, { timeoutMs: 5_000 });
    await expect(client.request('GET', '/v2/r/manifests/t', 'r', {})).rejects.toThrow(/neither https nor the upstream's host/);
    expect(realm.requests).toHaveLength(0);
  });

  it('answers Basic only when it has credentials; a refused credential is UpstreamDeniedError', async () => {
    const upstream = await serve((request, response) => {
      if (request.headers.authorization === `Basic ${Buffer.from('u:p').toString('base64')}`) return void response.writeHead(200).end();
      response.writeHead(401, { 'www-authenticate': 'Basic realm="r"' }).end();
    });
    const good = new UpstreamClient({ url: upstream.url, dockerHub: false, username: 'u', password: 'p' }, { timeoutMs: 5_000 });
    expect((await good.request('GET', '/v2/', undefined, {})).status).toBe(200);
    expect(await good.probe()).toEqual({ ok: true });
    const wrong = new UpstreamClient({ url: upstream.url, dockerHub: false, username: 'u', password: 'nope' }, { timeoutMs: 5_000 });
    await expect(wrong.request('GET', '/v2/', undefined, {})).rejects.toBeInstanceOf(UpstreamDeniedError);
    expect(await wrong.probe()).toEqual({ ok: false, reason: 'the upstream refused the credentials' });
    const anonymous = new UpstreamClient({ url: upstream.url, dockerHub: false }, { timeoutMs: 5_000 });
    await expect(anonymous.request('GET', '/v2/', undefined, {})).rejects.toBeInstanceOf(UpstreamDeniedError);
  });

  it('treats 429 and 5xx as unavailable, with the Retry-After it was given', async () => {
    let status = 429;
    const upstream = await serve((_request, response) => void response.writeHead(status, { 'retry-after': '17' }).end());
    const client = new UpstreamClient({ url: upstream.url, dockerHub: false }, { timeoutMs: 5_000 });
    for (status of [429, 500, 502, 503]) {
      const err = await client.request('GET', '/v2/', undefined, {}).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(UpstreamUnavailableError);
      expect(err).toMatchObject({ status, retryAfter: 17 });
    }
  });

  it('gives up on an upstream that does not answer, or stops sending, within the timeout', async () => {
    const silent = await serve(() => undefined);
    const client = new UpstreamClient({ url: silent.url, dockerHub: false }, { timeoutMs: 200 });
    const started = Date.now();
    await expect(client.request('GET', '/v2/', undefined, {})).rejects.toThrow(/no answer within 200 ms/);
    expect(Date.now() - started).toBeLessThan(2_000);
    const stalls = await serve((_request, response) => {
      response.writeHead(200, { 'content-length': '100' });
      response.write('part');
    });
    const stalled = new UpstreamClient({ url: stalls.url, dockerHub: false }, { timeoutMs: 200 });
    const res = await stalled.request('GET', '/v2/r/blobs/x', 'r', {});
    await expect(readLimited(res.body, 1000)).rejects.toThrow(/sent nothing for 200 ms/);
    const closed = await serve(() => undefined);
    const server = servers.pop()!;
    await new Promise((resolve) => server.close(resolve));
    const down = new UpstreamClient({ url: closed.url, dockerHub: false }, { timeoutMs: 1_000 });
    await expect(down.request('GET', '/v2/', undefined, {})).rejects.toThrow(/could not be reached: ECONNREFUSED/);
  });

  it('follows redirects to its own host or to https, at most five, and drops credentials for another host', async () => {
    const upstream = await serve((request, response, base) => {
      const n = Number(/\/hop\/(\d+)/.exec(request.url!)?.[1] ?? -1);
      if (request.url === '/v2/r/blobs/start') return void response.writeHead(302, { location: '/hop/0' }).end();
      if (n >= 0 && n < 3) return void response.writeHead(307, { location: `${base}/hop/${n + 1}` }).end();
      if (n === 3) return void response.writeHead(200).end('arrived');
      if (request.url === '/v2/r/blobs/loop') return void response.writeHead(302, { location: '/v2/r/blobs/loop' }).end();
      if (request.url === '/v2/r/blobs/nowhere') return void response.writeHead(302).end();
      response.writeHead(404).end();
    });
    const client = new UpstreamClient({ url: upstream.url, dockerHub: false }, { timeoutMs: 5_000 });
    const res = await client.request('GET', '/v2/r/blobs/start', 'r', {});
    expect(await readLimited(res.body, 100)).toBe('arrived');
    await expect(client.request('GET', '/v2/r/blobs/loop', 'r', {})).rejects.toThrow(/redirected too many times/);
    await expect(client.request('GET', '/v2/r/blobs/nowhere', 'r', {})).rejects.toThrow(/without a Location/);
  });

  it('reads at most the limit of a small answer', async () => {
    const upstream = await serve((_request, response) => void response.end('x'.repeat(2000)));
    const client = new UpstreamClient({ url: upstream.url, dockerHub: false }, { timeoutMs: 5_000 });
    const res = await client.request('GET', '/v2/', undefined, {});
    await expect(readLimited(res.body, 1000)).rejects.toThrow(/exceeds 1000 bytes/);
  });
});
