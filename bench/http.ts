// A small HTTP/1.1 client over node:http with keep-alive agents, bounded in time, and the
// checks that make a broken run fail loudly with the server's answer.
import { Agent, request as httpRequest, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';

export interface Response {
  status: number;
  headers: IncomingHttpHeaders;
  /** The body, or its first 64 KiB when it was to be discarded. */
  body: Buffer;
  /** Bytes of body received. */
  bytes: number;
}

export interface RequestOptions {
  method: string;
  headers?: OutgoingHttpHeaders;
  /** A buffer, or a function making a fresh stream (sent with the headers' Content-Length). */
  body?: Buffer | (() => Readable);
  agent: Agent;
  /** Idle time (no bytes either way) after which the request fails. */
  timeoutMs?: number;
  /** Count the body's bytes without keeping them (beyond 64 KiB, for error messages). */
  discard?: boolean;
}

/** `localAddress`: the client address to connect from (any of 127.0.0.0/8 reaches a loopback server). */
export function keepAliveAgent(maxSockets: number, localAddress?: string): Agent {
  return new Agent({ keepAlive: true, maxSockets, maxFreeSockets: maxSockets, ...(localAddress ? { localAddress } : {}) });
}

const KEEP_WHEN_DISCARDING = 64 * 1024;

export function request(url: string, options: RequestOptions): Promise<Response> {
  return new Promise<Response>((resolve, reject) => {
    const headers: OutgoingHttpHeaders = { ...options.headers };
    if (Buffer.isBuffer(options.body)) headers['content-length'] = options.body.length;
    else if (options.body === undefined && options.method !== 'GET' && options.method !== 'HEAD' && headers['content-length'] === undefined) {
      headers['content-length'] = 0;
    }
    const req = httpRequest(url, { method: options.method, headers, agent: options.agent });
    const timeoutMs = options.timeoutMs ?? 60_000;
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`${options.method} ${url}: no progress for ${timeoutMs} ms`)));
    req.once('error', reject);
    req.once('response', (res) => {
      const chunks: Buffer[] = [];
      let bytes = 0;
      let kept = 0;
      res.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
        if (!options.discard) chunks.push(chunk);
        else if (kept < KEEP_WHEN_DISCARDING) {
          chunks.push(chunk);
          kept += chunk.length;
        }
      });
      res.once('error', reject);
      res.once('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), bytes }));
    });
    if (options.body === undefined) req.end();
    else if (Buffer.isBuffer(options.body)) req.end(options.body);
    else {
      const source = options.body();
      source.once('error', (err) => req.destroy(err));
      source.pipe(req);
    }
  });
}

/** A failed check: what was sent and what the server answered. */
export class BenchError extends Error {
  override name = 'BenchError';
}

/** The answer, shortened, for an error message. */
export function describe(res: Response): string {
  const headers = Object.entries(res.headers)
    .map(([k, v]) => `  ${k}: ${Array.isArray(v) ? v.join(', ') : v}`)
    .join('\n');
  const text = res.body.subarray(0, 2000).toString('utf8');
  return `HTTP ${res.status}\n${headers}\n${text}${res.body.length > 2000 || res.bytes > res.body.length ? '…' : ''}`;
}

/** Throws, with the server's answer, unless the status is one of `expected`. */
export function expectStatus(res: Response, expected: number | readonly number[], what: string): void {
  const ok = typeof expected === 'number' ? [expected] : expected;
  if (!ok.includes(res.status)) {
    throw new BenchError(`${what}: expected HTTP ${ok.join(' or ')}, got:\n${describe(res)}`);
  }
}

export function header(res: Response, name: string): string | undefined {
  const v = res.headers[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}

/** A header that must be there. */
export function requireHeader(res: Response, name: string, what: string): string {
  const v = header(res, name);
  if (v === undefined || v === '') throw new BenchError(`${what}: no ${name} header in:\n${describe(res)}`);
  return v;
}

/** A Location (absolute or relative) as an absolute URL. */
export function resolveLocation(location: string, base: string): string {
  return new URL(location, base).href;
}

/** Adds a query parameter to a URL as written, keeping its existing query untouched. */
export function addQuery(url: string, name: string, value: string): string {
  const hash = url.indexOf('#');
  const head = hash < 0 ? url : url.slice(0, hash);
  const sep = head.includes('?') ? (head.endsWith('?') || head.endsWith('&') ? '' : '&') : '?';
  return `${head}${sep}${name}=${encodeURIComponent(value)}`;
}

/**
 * The target of the rel="next" link of a Link header (RFC 8288), or undefined. Several links
 * may be given in one header, separated by commas; rel may be quoted or not and hold several
 * space-separated relations.
 */
export function nextLink(link: string | undefined): string | undefined {
  if (!link) return undefined;
  const re = /<([^>]*)>((?:\s*;\s*[^;,]+)*)/g;
  for (let m = re.exec(link); m !== null; m = re.exec(link)) {
    for (const param of m[2]!.split(';')) {
      const pm = /^\s*rel\s*=\s*(?:"([^"]*)"|([^\s"]+))\s*$/i.exec(param);
      const rels = (pm?.[1] ?? pm?.[2] ?? '').toLowerCase().split(/\s+/);
      if (rels.includes('next')) return m[1]!;
    }
  }
  return undefined;
}
