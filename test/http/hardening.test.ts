// The HTTP server's own defences: TLS with client certificates and a minimum
// version, a bound on how long a request's head may take (slowloris) and on its
// size, and none on how long a body may take while its bytes flow.
//
// Each case runs twice: on a bare Fastify server built from serverOptions() the
// way buildApp builds the registry's, with a short headers timeout; and on the
// registry itself (startRegistry), which has these defences once app.ts spreads
// serverOptions(config) into Fastify's options.
import { execFileSync } from 'node:child_process';
import { connect as netConnect, type AddressInfo, type Socket } from 'node:net';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config/config.js';
import type { ConfigFile } from '../../src/config/schema.js';
import { HEADERS_TIMEOUT_MS, MAX_HEADER_SIZE, serverOptions } from '../../src/http/server-options.js';
import { digestOf, startRegistry, tempDir } from '../helpers.js';
import { send, sleep, testBytes } from '../support/socket.js';

/** The short headers timeout of the bare server. */
const HEADERS_TIMEOUT = 2_000;
/** How late after the timeout a connection may still be open (the checking interval, a slow machine). */
const MARGIN = 5_000; // generous: without the bound a connection would stay open for minutes

interface Certificates {
  dir: string;
  serverCert: string;
  serverKey: string;
  ca: string;
  /** Signed by `ca`. */
  client: { cert: Buffer; key: Buffer };
  /** Signed by another CA. */
  stranger: { cert: Buffer; key: Buffer };
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: 'pipe', timeout: 30_000 });
}

/** A self-signed server certificate, a CA with a client certificate, and another CA with another. */
async function makeCertificates(): Promise<Certificates> {
  const dir = await tempDir('ocireg-hardening-');
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl(['req', '-x509', ...ec, '-subj', '/CN=localhost', '-days', '1', '-keyout', 'server.key', '-out', 'server.pem'], dir);
  await writeFile(join(dir, 'client.ext'), 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n');
  for (const name of ['ca', 'other-ca']) {
    openssl(
      ['req', '-x509', ...ec, '-subj', `/CN=${name}`, '-days', '1', '-keyout', `${name}.key`, '-out', `${name}.pem`,
        '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'],
      dir,
    );
    openssl(['req', ...ec, '-subj', `/CN=client of ${name}`, '-keyout', `${name}-client.key`, '-out', `${name}-client.csr`], dir);
    openssl(
      ['x509', '-req', '-in', `${name}-client.csr`, '-CA', `${name}.pem`, '-CAkey', `${name}.key`, '-set_serial', '2',
        '-days', '1', '-extfile', 'client.ext', '-out', `${name}-client.pem`],
      dir,
    );
  }
  const pair = async (name: string) => ({
    cert: await readFile(join(dir, `${name}-client.pem`)),
    key: await readFile(join(dir, `${name}-client.key`)),
  });
  return {
    dir,
    serverCert: join(dir, 'server.pem'),
    serverKey: join(dir, 'server.key'),
    ca: join(dir, 'ca.pem'),
    client: await pair('ca'),
    stranger: await pair('other-ca'),
  };
}

interface Served {
  port: number;
  app: FastifyInstance;
  close(): Promise<void>;
}

type Serve = (http?: ConfigFile['http']) => Promise<Served>;

/** A bare server with the registry's server options: GET /v2/ and a PATCH that counts its body. */
const bareServer: Serve = async (http) => {
  const dir = await tempDir();
  const config = loadConfig({ env: {}, overrides: { ...(http ? { http } : {}), storage: { filesystem: { rootdirectory: dir } } } });
  const app = Fastify({ ...serverOptions(config, { headersTimeoutMs: HEADERS_TIMEOUT }), logger: false });
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_request, _payload, done) => done(null));
  app.get('/v2/', async (_request, reply) => reply.type('application/json').send('{}'));
  app.patch('/v2/lib/app/blobs/uploads/slow', async (request, reply) => {
    let bytes = 0;
    for await (const chunk of request.raw) bytes += (chunk as Buffer).length;
    return reply.code(202).send({ bytes });
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  return {
    port: (app.server.address() as AddressInfo).port,
    app,
    close: async () => {
      await app.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
};

/** The registry, as startRegistry builds it. */
const registryServer: Serve = async (http) => {
  const reg = await startRegistry(http ? { http } : {});
  try {
    await reg.app.listen({ host: '127.0.0.1', port: 0 });
  } catch (err) {
    await reg.destroy();
    throw err;
  }
  return { port: (reg.app.server.address() as AddressInfo).port, app: reg.app, close: reg.destroy };
};

/** GET /v2/ over TLS; resolves to the status, rejects when the connection is refused. */
function tlsGet(port: number, options: ConnectionOptions = {}): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const req = httpsRequest(
      { host: '127.0.0.1', port, path: '/v2/', agent: false, rejectUnauthorized: false, timeout: 10_000, ...options },
      (res) => {
        res.resume();
        res.once('end', () => resolve(res.statusCode ?? 0));
        res.once('error', reject);
      },
    );
    req.once('timeout', () => req.destroy(new Error('timed out')));
    req.once('error', reject);
    req.end();
  });
}

/** A bare TLS handshake; resolves to the version agreed, rejects when refused. */
function handshake(port: number, options: ConnectionOptions): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false, timeout: 10_000, ...options });
    socket.once('secureConnect', () => {
      const version = socket.getProtocol() ?? '';
      socket.end();
      resolve(version);
    });
    socket.once('timeout', () => socket.destroy(new Error('timed out')));
    socket.once('error', reject);
  });
}

/**
 * Opens a plain TCP connection, writes `first`, then one byte of `next()` per
 * second; resolves when the server closes the connection, with how long that
 * took and what it sent. Fails after `limitMs`.
 */
function trickle(port: number, first: Buffer | string, next: () => Buffer | string, limitMs: number) {
  return new Promise<{ afterMs: number; received: string }>((resolve, reject) => {
    const started = Date.now();
    const socket: Socket = netConnect({ host: '127.0.0.1', port });
    const chunks: Buffer[] = [];
    const drip = setInterval(() => {
      if (socket.writable) socket.write(next());
    }, 1_000);
    const limit = setTimeout(() => {
      socket.destroy();
      reject(new Error(`the server kept a trickling connection open for ${limitMs} ms`));
    }, limitMs);
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', () => {}); // a reset is a close too
    socket.once('close', () => {
      clearInterval(drip);
      clearTimeout(limit);
      resolve({ afterMs: Date.now() - started, received: Buffer.concat(chunks).toString('latin1') });
    });
    socket.write(first);
  });
}

let certs: Certificates;
beforeAll(async () => {
  certs = await makeCertificates();
});
afterAll(async () => {
  if (certs) await rm(certs.dir, { recursive: true, force: true });
});

describe.each([
  ['a server built with serverOptions()', bareServer],
  ['the registry (startRegistry)', registryServer],
])('hardening: %s', (_what, serve) => {
  const servers: Served[] = [];
  afterEach(async () => {
    for (const s of servers.splice(0)) await s.close();
  });
  async function start(http?: ConfigFile['http']): Promise<Served> {
    const s = await serve(http);
    servers.push(s);
    return s;
  }

  describe('TLS with http.tls.clientcas', () => {
    const tls = () => ({ tls: { certificate: certs.serverCert, key: certs.serverKey, clientcas: [certs.ca] } });

    it('serves a client whose certificate the CA signed', async () => {
      const { port } = await start(tls());
      expect(await tlsGet(port, certs.client)).toBe(200);
    });

    it('refuses, at the handshake, a client without a certificate', async () => {
      const { port } = await start(tls());
      await expect(tlsGet(port)).rejects.toThrow();
      await expect(handshake(port, { maxVersion: 'TLSv1.2' })).rejects.toMatchObject({
        code: expect.stringMatching(/ERR_SSL|ECONNRESET/),
      });
    });

    it('refuses a client whose certificate another CA signed', async () => {
      const { port } = await start(tls());
      await expect(tlsGet(port, certs.stranger)).rejects.toThrow();
      await expect(handshake(port, { ...certs.stranger, maxVersion: 'TLSv1.2' })).rejects.toMatchObject({
        code: expect.stringMatching(/ERR_SSL|ECONNRESET/),
      });
    });

    it('without clientcas, asks no certificate', async () => {
      const { port } = await start({ tls: { certificate: certs.serverCert, key: certs.serverKey } });
      expect(await tlsGet(port)).toBe(200);
    });
  });

  describe('http.tls.minimumtls', () => {
    it('tls1.3 refuses a client that speaks TLS 1.2 at most, and serves one that speaks 1.3', async () => {
      const { port } = await start({ tls: { certificate: certs.serverCert, key: certs.serverKey, minimumtls: 'tls1.3' } });
      await expect(handshake(port, { maxVersion: 'TLSv1.2' })).rejects.toMatchObject({
        code: expect.stringMatching(/ERR_SSL/),
      });
      expect(await handshake(port, {})).toBe('TLSv1.3');
      expect(await tlsGet(port)).toBe(200);
    });

    it('by default (tls1.2) serves a TLS 1.2 client', async () => {
      const { port } = await start({ tls: { certificate: certs.serverCert, key: certs.serverKey } });
      expect(await handshake(port, { maxVersion: 'TLSv1.2' })).toBe('TLSv1.2');
      await expect(handshake(port, { maxVersion: 'TLSv1.1', minVersion: 'TLSv1' })).rejects.toThrow();
    });
  });

  describe('request heads', () => {
    it(`answers a head over ${MAX_HEADER_SIZE} bytes with 431 in the error envelope, and takes a bearer token of several KB`, async () => {
      const { port } = await start();
      const big = await send(`http://127.0.0.1:${port}/v2/`, { method: 'GET', headers: { 'x-filler': 'a'.repeat(20 * 1024) }, timeoutMs: 10_000 });
      expect(big.status).toBe(431);
      expect(JSON.parse(big.body.toString()).errors[0].code).toBe('UNSUPPORTED');
      const token = `Bearer ${'e'.repeat(8 * 1024)}`;
      const fine = await send(`http://127.0.0.1:${port}/v2/`, { method: 'GET', headers: { 'x-token': token }, timeoutMs: 10_000 });
      expect(fine.status).toBe(200);
    });

    it('a body may take longer than the head is allowed, as long as bytes flow', async () => {
      const { port } = await start();
      const body = testBytes(64 * 1024, 11);
      const pieces = 8;
      const started = Date.now();
      async function* slowly() {
        for (let i = 0; i < pieces; i++) {
          yield body.subarray((i * body.length) / pieces, ((i + 1) * body.length) / pieces);
          await sleep((HEADERS_TIMEOUT + 1_000) / pieces);
        }
      }
      const base = `http://127.0.0.1:${port}`;
      if (serve === bareServer) {
        const res = await send(`${base}/v2/lib/app/blobs/uploads/slow`, {
          method: 'PATCH',
          headers: { 'content-type': 'application/octet-stream', 'content-length': String(body.length) },
          body: Readable.from(slowly()),
          timeoutMs: 20_000,
        });
        expect(res.status).toBe(202);
        expect(JSON.parse(res.body.toString())).toEqual({ bytes: body.length });
      } else {
        const post = await send(`${base}/v2/lib/app/blobs/uploads/`, { method: 'POST', timeoutMs: 10_000 });
        expect(post.status).toBe(202);
        const location = new URL(post.headers.location as string, base);
        const patch = await send(location, {
          method: 'PATCH',
          headers: { 'content-type': 'application/octet-stream', 'content-length': String(body.length) },
          body: Readable.from(slowly()),
          timeoutMs: 20_000,
        });
        expect(patch.status).toBe(202);
        expect(patch.headers.range).toBe(`0-${body.length - 1}`);
        location.searchParams.set('digest', digestOf(body));
        expect((await send(location, { method: 'PUT', timeoutMs: 10_000 })).status).toBe(201);
      }
      expect(Date.now() - started).toBeGreaterThan(HEADERS_TIMEOUT);
    });
  });
});

describe('hardening: slow request heads (slowloris), on a server built with serverOptions()', () => {
  const servers: Served[] = [];
  afterEach(async () => {
    for (const s of servers.splice(0)) await s.close();
  });

  it('closes a connection that sends its headers a byte a second, within the headers timeout', async () => {
    const s = await bareServer();
    servers.push(s);
    const { afterMs, received } = await trickle(s.port, 'GET /v2/ HTTP/1.1\r\nHost: x\r\n', () => 'a', HEADERS_TIMEOUT + MARGIN + 5_000);
    expect(afterMs).toBeGreaterThanOrEqual(HEADERS_TIMEOUT - 100);
    expect(afterMs).toBeLessThan(HEADERS_TIMEOUT + MARGIN);
    expect(received).toMatch(/^HTTP\/1\.1 408 /);
    expect(received).toContain('"errors"');
  });

  it('closes a connection that sends nothing, within the headers timeout', async () => {
    const s = await bareServer();
    servers.push(s);
    const { afterMs } = await trickle(s.port, '', () => '', HEADERS_TIMEOUT + MARGIN + 5_000);
    expect(afterMs).toBeLessThan(HEADERS_TIMEOUT + MARGIN);
  });

  it('closes a TLS connection whose handshake trickles, within the headers timeout', async () => {
    const s = await bareServer({ tls: { certificate: certs.serverCert, key: certs.serverKey } });
    servers.push(s);
    // A handshake record header that announces 16 KiB, then its body a byte a second.
    const { afterMs } = await trickle(s.port, Buffer.from([0x16, 0x03, 0x01, 0x40, 0x00]), () => Buffer.from([0x01]), HEADERS_TIMEOUT + MARGIN + 5_000);
    expect(afterMs).toBeLessThan(HEADERS_TIMEOUT + MARGIN);
  });
});

describe('hardening: the registry (startRegistry) takes the server options', () => {
  it('has the head timeout and size limit, no limit on a whole request, and drops silent connections', async () => {
    const reg = await startRegistry();
    try {
      // Node keeps the last two options on the server, where its types do not say so.
      const server = reg.app.server as typeof reg.app.server & { connectionsCheckingInterval: number; maxHeaderSize: number };
      expect(server.headersTimeout).toBe(HEADERS_TIMEOUT_MS);
      expect(server.connectionsCheckingInterval).toBeLessThanOrEqual(1_000);
      expect(server.maxHeaderSize).toBe(MAX_HEADER_SIZE);
      expect(server.requestTimeout).toBe(0);
      expect(server.timeout).toBe(300_000);
      expect(server.keepAliveTimeout).toBe(75_000);
    } finally {
      await reg.destroy();
    }
  });

  it('refuses to start when a TLS file cannot be read, naming the key and the path', async () => {
    const missing = join(certs.dir, 'missing.pem');
    /** The error startRegistry fails with (a registry that starts after all is closed again). */
    const refusal = async (tls: NonNullable<ConfigFile['http']>['tls']): Promise<unknown> => {
      try {
        await (await startRegistry({ http: { tls } })).destroy();
        return undefined;
      } catch (err) {
        return err;
      }
    };
    const badCa = await refusal({ certificate: certs.serverCert, key: certs.serverKey, clientcas: [missing] });
    expect(badCa).toBeInstanceOf(ConfigError);
    expect((badCa as Error).message).toContain(`http.tls.clientcas ${missing}`);
    const badKey = await refusal({ certificate: certs.serverCert, key: missing });
    expect(badKey).toBeInstanceOf(ConfigError);
    expect((badKey as Error).message).toContain(`http.tls.key ${missing}`);
  });
});

describe('serverOptions()', () => {
  it('names the TLS file it cannot read', () => {
    const missing = join(certs.dir, 'nowhere', 'ca.pem');
    const config = (tls: NonNullable<ConfigFile['http']>['tls']) =>
      loadConfig({ env: {}, overrides: { http: { tls }, storage: { filesystem: { rootdirectory: certs.dir } } } });
    expect(() => serverOptions(config({ certificate: missing, key: certs.serverKey }))).toThrow(`http.tls.certificate ${missing}`);
    expect(() => serverOptions(config({ certificate: certs.serverCert, key: missing }))).toThrow(`http.tls.key ${missing}`);
    expect(() => serverOptions(config({ certificate: certs.serverCert, key: certs.serverKey, clientcas: [certs.ca, missing] }))).toThrow(
      `http.tls.clientcas ${missing}`,
    );
  });
});
