// Paths never escape the storage root. Requests whose repository name,
// reference, digest or upload id try to climb out (`..`, encoded and
// double-encoded dots and slashes, backslashes, NUL, absolute paths, over-long
// values), with every method on every endpoint family, answer an error
// envelope with a 4xx status; afterwards nothing new exists anywhere under the
// root's parent folder, and what was pushed before is served as it was.
//
// Each request goes twice: through app.inject (whose URL parser normalises dot
// segments and backslashes) and verbatim over a socket (Node's parser does not).
import { readdir, rm } from 'node:fs/promises';
import { connect, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OCI_MANIFEST, digestOf, makeImage, pushBlob, putManifest, startRegistry, tempDir, type TestRegistry } from '../helpers.js';

const REPO = 'lib/app';
const METHODS = ['GET', 'HEAD', 'PUT', 'PATCH', 'DELETE', 'POST'] as const;
type Method = (typeof METHODS)[number];

/** Codes a refused path may get; a 5xx or a success is a failure of this suite. */
const CODES = new Set([
  'NAME_INVALID',
  'NAME_UNKNOWN',
  'DIGEST_INVALID',
  'MANIFEST_INVALID',
  'MANIFEST_UNKNOWN',
  'MANIFEST_BLOB_UNKNOWN',
  'BLOB_UNKNOWN',
  'BLOB_UPLOAD_UNKNOWN',
  'BLOB_UPLOAD_INVALID',
  'SIZE_INVALID',
  'UNSUPPORTED',
]);

/** As they go into the URL: already percent-encoded where the point is the encoding. */
const HOSTILE = [
  '..',
  '.',
  '../..',
  '../../../../../../tmp/escaped',
  '%2e%2e',
  '%2E%2E%2F%2E%2E%2Fescaped',
  '%252e%252e',
  '%252e%252e%252fescaped',
  '..%2f..%2f..%2fescaped',
  '..%252f..%252fescaped',
  'a%2f..%2f..%2fescaped',
  '..\\..\\escaped',
  '%5c..%5c..%5cescaped',
  'a%00b',
  '%00',
  '..%00',
  '/tmp/escaped',
  '%2ftmp%2fescaped',
  '%252ftmp%252fescaped',
  'x'.repeat(300),
  `${'a/'.repeat(150)}a`,
];

interface Answer {
  status: number;
  contentType: string | undefined;
  body: string;
}

/** One request, sent byte for byte as written, on its own connection. */
function rawRequest(port: number, method: Method, target: string, body?: Buffer, headers: Record<string, string> = {}): Promise<Answer> {
  return new Promise<Answer>((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`${method} ${target} got no answer in 10 s`));
    }, 10_000);
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.once('close', () => {
      clearTimeout(timer);
      const text = Buffer.concat(chunks).toString('latin1');
      const split = text.indexOf('\r\n\r\n');
      const head = split < 0 ? text : text.slice(0, split);
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0);
      const contentType = /\r\ncontent-type: *([^\r\n]*)/i.exec(head)?.[1];
      resolve({ status, contentType, body: split < 0 ? '' : text.slice(split + 4) });
    });
    const extra = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
    const length = body ? `Content-Length: ${body.length}\r\n` : '';
    socket.write(`${method} ${target} HTTP/1.1\r\nHost: registry.test\r\nConnection: close\r\n${extra}${length}\r\n`, 'latin1');
    if (body) socket.write(body);
  });
}

async function injected(app: FastifyInstance, method: Method, target: string, body?: Buffer, headers: Record<string, string> = {}): Promise<Answer> {
  const res = await app.inject({ method, url: target, headers, ...(body ? { payload: body } : {}) });
  return { status: res.statusCode, contentType: res.headers['content-type'] as string | undefined, body: res.body };
}

/** Every file and folder under `dir`, as sorted paths relative to it. */
async function tree(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.map((e) => join(e.parentPath, e.name).slice(dir.length + 1)).sort();
}

interface Case {
  method: Method;
  target: string;
  body?: Buffer;
  headers?: Record<string, string>;
}

describe('paths never escape the storage root', () => {
  let parent: string;
  let root: string;
  let reg: TestRegistry;
  let port: number;
  let manifest: { body: Buffer; digest: string; mediaType: string };
  let blob: Buffer;
  let blobDigest: string;
  let uploadId: string;
  let before: string[];

  beforeAll(async () => {
    parent = await tempDir('ocireg-paths-');
    // Deep, so that a climb of a few levels out of the root still lands inside `parent`.
    root = join(parent, 'l1', 'l2', 'l3', 'root');
    reg = await startRegistry({}, root);
    await reg.app.listen({ host: '127.0.0.1', port: 0 });
    port = (reg.app.server.address() as AddressInfo).port;

    // What legitimate requests create.
    blob = Buffer.from('a blob that must stay as it is');
    blobDigest = await pushBlob(reg.app, REPO, blob);
    manifest = await makeImage(reg.app, REPO);
    expect((await putManifest(reg.app, REPO, 'v1', manifest)).statusCode).toBe(201);
    const session = await reg.app.inject({ method: 'POST', url: `/v2/${REPO}/blobs/uploads/` });
    expect(session.statusCode).toBe(202);
    uploadId = session.headers['docker-upload-uuid'] as string;
    before = await tree(parent);
  });

  afterAll(async () => {
    await reg?.close();
    if (parent) await rm(parent, { recursive: true, force: true });
  });

  /** Every endpoint family with every method, where `part` replaces one path element. */
  function cases(part: 'name' | 'reference' | 'digest' | 'upload', value: string): Case[] {
    const name = part === 'name' ? value : REPO;
    const reference = part === 'reference' ? value : 'v1';
    const digest = part === 'digest' ? value : blobDigest;
    const upload = part === 'upload' ? value : uploadId;
    const out: Case[] = [];
    const body = Buffer.from('payload');
    // Only the endpoints whose path holds the hostile part.
    const has = (...parts: Array<typeof part>) => part === 'name' || parts.includes(part);
    for (const method of METHODS) {
      const withBody = method === 'PUT' || method === 'PATCH' || method === 'POST';
      if (has('digest')) out.push({ method, target: `/v2/${name}/blobs/${digest}`, ...(withBody ? { body } : {}) });
      if (has('upload')) {
        out.push({ method, target: `/v2/${name}/blobs/uploads/${upload}`, ...(withBody ? { body } : {}) });
        out.push({ method, target: `/v2/${name}/blobs/uploads/${upload}?digest=${digestOf(body)}`, ...(withBody ? { body } : {}) });
      }
      if (has('reference')) {
        out.push({
          method,
          target: `/v2/${name}/manifests/${reference}`,
          ...(withBody ? { body: manifest.body, headers: { 'content-type': OCI_MANIFEST } } : {}),
        });
      }
      if (has()) out.push({ method, target: `/v2/${name}/tags/list` });
      if (has('digest')) out.push({ method, target: `/v2/${name}/referrers/${digest}` });
    }
    if (has('digest')) {
      out.push({ method: 'POST', target: `/v2/${name}/blobs/uploads/?digest=${digest}`, body });
      out.push({ method: 'POST', target: `/v2/${name}/blobs/uploads/?mount=${digest}` });
    }
    if (part === 'name') {
      out.push({ method: 'POST', target: `/v2/${name}/blobs/uploads/` });
      out.push({ method: 'POST', target: `/v2/lib/other/blobs/uploads/?mount=${blobDigest}&from=${name}` });
    }
    if (part === 'reference') {
      // Tags given as query parameters of a manifest PUT, and as the `last` of listings.
      out.push({ method: 'PUT', target: `/v2/${REPO}/manifests/${manifest.digest}?tag=${value}`, body: manifest.body, headers: { 'content-type': OCI_MANIFEST } });
    }
    return out;
  }

  const families = [
    ['repository name', 'name'],
    ['tag or reference', 'reference'],
    ['digest', 'digest'],
    ['upload id', 'upload'],
  ] as const;

  function check(c: Case, answer: Answer, via: string): void {
    const what = `${via} ${c.method} ${c.target.slice(0, 120)} -> ${answer.status} ${answer.body.slice(0, 200)}`;
    expect(answer.status >= 400 && answer.status < 500, what).toBe(true);
    if (c.method === 'HEAD') return;
    expect(answer.contentType, what).toMatch(/^application\/json/);
    const code = (JSON.parse(answer.body) as { errors?: Array<{ code?: string }> }).errors?.[0]?.code;
    expect(CODES.has(code ?? ''), what).toBe(true);
  }

  for (const [label, part] of families) {
    it(`a hostile ${label} is refused on every endpoint, through inject and verbatim over a socket`, async () => {
      for (const value of HOSTILE) {
        for (const c of cases(part, value)) {
          // inject's URL parser makes `/uploads/.` the URL that starts an upload: a legitimate request.
          if (!new URL(c.target, 'http://registry.test').pathname.endsWith('/blobs/uploads/')) {
            check(c, await injected(reg.app, c.method, c.target, c.body, c.headers), 'inject');
          }
          check(c, await rawRequest(port, c.method, c.target, c.body, c.headers), 'socket');
        }
      }
    });
  }

  it("another repository's upload id is unknown there", async () => {
    for (const method of ['GET', 'PATCH', 'PUT', 'DELETE'] as const) {
      const target = `/v2/lib/other/blobs/uploads/${uploadId}${method === 'PUT' ? `?digest=${digestOf('')}` : ''}`;
      const c: Case = { method, target, ...(method === 'PATCH' ? { body: Buffer.from('x') } : {}) };
      const answer = await rawRequest(port, method, target, c.body);
      check(c, answer, 'socket');
      expect(JSON.parse(answer.body).errors[0].code).toBe('BLOB_UPLOAD_UNKNOWN');
    }
  });

  it('listings take hostile `last` and `n` as plain values', async () => {
    for (const value of HOSTILE) {
      for (const target of [`/v2/_catalog?last=${value}`, `/v2/${REPO}/tags/list?last=${value}&n=1`, `/v2/${REPO}/referrers/${blobDigest}?last=${value}`]) {
        const answer = await rawRequest(port, 'GET', target);
        // A listing may well answer 200 (an empty page): nothing is read from a path.
        expect(answer.status, `${target} -> ${answer.status}`).toBeLessThan(500);
      }
      const answer = await rawRequest(port, 'GET', `/v2/_catalog?n=${value}`);
      expect(answer.status, value).toBe(400);
    }
  });

  it('odd request targets are refused in the envelope', async () => {
    for (const target of ['/v2/../../../etc/passwd', '/v2/..', '/v2/%2e%2e/%2e%2e/etc/passwd', '/v2//', '/v2/\\..\\..\\etc', '/v2/a/%2e%2e%2f%2e%2e%2f']) {
      for (const method of METHODS) check({ method, target }, await rawRequest(port, method, target), 'socket');
    }
  });

  it('afterwards nothing exists under the parent folder that legitimate requests did not create, and pulls are unchanged', async () => {
    expect(await tree(parent)).toEqual(before);
    const got = await reg.app.inject({ method: 'GET', url: `/v2/${REPO}/blobs/${blobDigest}` });
    expect(got.statusCode).toBe(200);
    expect(got.rawPayload.equals(blob)).toBe(true);
    const pulled = await reg.app.inject({ method: 'GET', url: `/v2/${REPO}/manifests/v1`, headers: { accept: OCI_MANIFEST } });
    expect(pulled.statusCode).toBe(200);
    expect(pulled.rawPayload.equals(manifest.body)).toBe(true);
    const status = await reg.app.inject({ method: 'GET', url: `/v2/${REPO}/blobs/uploads/${uploadId}` });
    expect(status.statusCode).toBe(204);
  });
});
