/**
 * The client of one upstream registry: its /v2/ API, with the upstream's authentication
 * (anonymous, Basic, or Docker's token flow with tokens cached until they expire), bounded waits,
 * and a redirect policy. The upstream's URL comes from the configuration (or an ECR rule checked
 * against proxy.allowedupstreams), never from a request; a redirect is followed only to https or
 * to the upstream's own host, and credentials go only to the upstream's host (and its token
 * realm, under the same rule). Nothing here logs: credentials and tokens never leave this file
 * except in the Authorization headers they are for.
 */
import { Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import type { UpstreamConfig } from '../config/config.js';
import { MediaType } from '../oci/media-types.js';
import { parseChallenges, type Challenge } from './challenge.js';

/** The manifest types asked of an upstream: every one this registry stores. */
export const MANIFEST_ACCEPT = [MediaType.OciIndex, MediaType.OciManifest, MediaType.DockerManifestList, MediaType.DockerManifest].join(', ');

const MAX_REDIRECTS = 5;
/** A token whose lifetime is not given lasts 60 s (Docker's token specification). */
const DEFAULT_TOKEN_SECONDS = 60;
/** A token is renewed this long before it expires. */
const TOKEN_MARGIN_MS = 5_000;
const MAX_TOKENS = 1_000;
/** The most a token server's answer may be. */
const MAX_TOKEN_RESPONSE = 64 * 1024;

/** The upstream could not be used: down, timed out, rate limited, answering 5xx, or answering nonsense. */
export class UpstreamUnavailableError extends Error {
  override name = 'UpstreamUnavailableError';
  constructor(
    message: string,
    /** The upstream's status, when it answered. */
    readonly status?: number,
    /** Seconds from the upstream's Retry-After, when it sent one. */
    readonly retryAfter?: number,
  ) {
    super(message);
  }
}

/** The upstream refused the credentials (or their absence): 401 or 403 once authentication was tried. */
export class UpstreamDeniedError extends Error {
  override name = 'UpstreamDeniedError';
  constructor(readonly status: number) {
    super(`the upstream answered ${status}`);
  }
}

export interface UpstreamClientOptions {
  /** How long to wait for an answer's headers, and between two chunks of a body. */
  readonly timeoutMs: number;
  /** For tests: the clock of token expiry. */
  readonly now?: () => number;
}

/** An upstream's answer: status, headers, and the body as a Node stream (absent for HEAD and empty answers). */
export interface UpstreamResponse {
  readonly status: number;
  readonly headers: Headers;
  /** Read it or call `discard`; it errors when the upstream goes quiet for the timeout. */
  readonly body: Readable | undefined;
  discard(): void;
}

interface CachedToken {
  readonly token: string;
  readonly expires: number;
}

export class UpstreamClient {
  private readonly base: URL;
  private readonly tokens = new Map<string, CachedToken>();
  private readonly pendingTokens = new Map<string, Promise<string>>();
  /** The scheme the upstream asked for last (its first answer tells): Basic is then sent at once. */
  private basicFirst = false;
  /** The Bearer challenge seen last, to ask a token for a new scope before the first request of it. */
  private bearer: Challenge | undefined;
  private readonly now: () => number;

  constructor(
    readonly upstream: UpstreamConfig,
    private readonly options: UpstreamClientOptions,
  ) {
    this.base = new URL(upstream.url);
    this.now = options.now ?? Date.now;
  }

  /** `scheme://host[:port]` of the upstream, for log lines (it holds no credentials). */
  get url(): string {
    return this.upstream.url;
  }

  /**
   * One request to the upstream's `path` (under /v2/) for the repository `repo` (the token's scope;
   * undefined for /v2/ itself). Authenticates as the upstream asks, once; follows allowed redirects.
   * Throws UpstreamUnavailableError when the upstream cannot be reached or answers 429 or 5xx;
   * answers every other status as it is (401/403 after authenticating throw UpstreamDeniedError).
   */
  async request(method: 'GET' | 'HEAD', path: string, repo: string | undefined, headers: Record<string, string>, signal?: AbortSignal): Promise<UpstreamResponse> {
    const scope = repo === undefined ? undefined : `repository:${repo}:pull`;
    let authorization = await this.authorizationFor(scope, signal);
    for (let attempt = 0; ; attempt++) {
      const response = await this.send(method, new URL(path, this.base), { ...headers, ...(authorization ? { authorization } : {}) }, signal);
      if (response.status !== 401 || attempt > 0) {
        if (response.status === 401 || response.status === 403) {
          response.discard();
          throw new UpstreamDeniedError(response.status);
        }
        return response;
      }
      const challenges = parseChallenges(response.headers.get('www-authenticate'));
      response.discard();
      // A token the upstream no longer takes (revoked, or its clock is ahead of ours) is not asked again.
      if (authorization?.startsWith('Bearer ') && this.bearer) this.tokens.delete(this.tokenKey(this.bearer, scope));
      const next = await this.answer(challenges, scope, signal);
      if (next === undefined) throw new UpstreamDeniedError(401);
      authorization = next;
    }
  }

  /** Whether /v2/ answers with these credentials: ECR's ValidatePullThroughCacheRule. */
  async probe(signal?: AbortSignal): Promise<{ ok: true } | { ok: false; reason: string }> {
    try {
      const response = await this.request('GET', '/v2/', undefined, {}, signal);
      response.discard();
      if (response.status === 200) return { ok: true };
      return { ok: false, reason: `the upstream's /v2/ answered ${response.status}` };
    } catch (err) {
      if (err instanceof UpstreamDeniedError) return { ok: false, reason: 'the upstream refused the credentials' };
      return { ok: false, reason: (err as Error).message };
    }
  }

  /** The Authorization to send before any challenge: Basic when the upstream asked for it, a cached or new token for a known realm. */
  private async authorizationFor(scope: string | undefined, signal?: AbortSignal): Promise<string | undefined> {
    if (this.basicFirst) return this.basic();
    if (this.bearer && scope !== undefined) {
      const cached = this.cachedToken(this.bearer, scope);
      if (cached) return `Bearer ${cached}`;
      return `Bearer ${await this.token(this.bearer, scope, signal)}`;
    }
    return undefined;
  }

  /** The Authorization that answers a 401's challenges, or undefined when none can be answered. */
  private async answer(challenges: readonly Challenge[], scope: string | undefined, signal?: AbortSignal): Promise<string | undefined> {
    const bearer = challenges.find((c) => c.scheme === 'bearer');
    if (bearer?.params.realm) {
      this.bearer = bearer;
      this.basicFirst = false;
      // The scope of the request, or the one the challenge names (for /v2/ itself, none).
      return `Bearer ${await this.token(bearer, scope ?? bearer.params.scope, signal)}`;
    }
    if (challenges.some((c) => c.scheme === 'basic') && this.upstream.username !== undefined) {
      this.basicFirst = true;
      return this.basic();
    }
    return undefined;
  }

  private basic(): string | undefined {
    const { username, password } = this.upstream;
    if (username === undefined) return undefined;
    return `Basic ${Buffer.from(`${username}:${password ?? ''}`).toString('base64')}`;
  }

  private tokenKey(challenge: Challenge, scope: string | undefined): string {
    return `${challenge.params.realm}\n${challenge.params.service ?? ''}\n${scope ?? ''}`;
  }

  private cachedToken(challenge: Challenge, scope: string | undefined): string | undefined {
    const key = this.tokenKey(challenge, scope);
    const found = this.tokens.get(key);
    if (found && found.expires > this.now()) return found.token;
    if (found) this.tokens.delete(key);
    return undefined;
  }

  /** A token for the scope from the challenge's realm: cached until it expires; one request at a time per scope. */
  private async token(challenge: Challenge, scope: string | undefined, signal?: AbortSignal): Promise<string> {
    const cached = this.cachedToken(challenge, scope);
    if (cached) return cached;
    const key = this.tokenKey(challenge, scope);
    let pending = this.pendingTokens.get(key);
    if (!pending) {
      pending = this.fetchToken(challenge, scope, signal).finally(() => this.pendingTokens.delete(key));
      this.pendingTokens.set(key, pending);
    }
    return pending;
  }

  private async fetchToken(challenge: Challenge, scope: string | undefined, signal?: AbortSignal): Promise<string> {
    let realm: URL;
    try {
      realm = new URL(challenge.params.realm!);
    } catch {
      throw new UpstreamUnavailableError('the upstream named a token realm that is not a URL');
    }
    // Credentials go to the realm only under the redirect rule: https, or the upstream's own host.
    if (!this.mayFollow(realm)) throw new UpstreamUnavailableError(`the upstream's token realm ${realm.origin} is neither https nor the upstream's host`);
    if (challenge.params.service) realm.searchParams.set('service', challenge.params.service);
    if (scope) realm.searchParams.set('scope', scope);
    const basic = this.basic();
    const response = await this.send('GET', realm, basic ? { authorization: basic } : {}, signal);
    if (response.status === 401 || response.status === 403) {
      response.discard();
      throw new UpstreamDeniedError(response.status);
    }
    if (response.status !== 200) {
      response.discard();
      throw new UpstreamUnavailableError(`the upstream's token server answered ${response.status}`, response.status);
    }
    const text = await readLimited(response.body, MAX_TOKEN_RESPONSE);
    let doc: { token?: unknown; access_token?: unknown; expires_in?: unknown; issued_at?: unknown };
    try {
      doc = JSON.parse(text) as typeof doc;
    } catch {
      throw new UpstreamUnavailableError("the upstream's token server answered something other than JSON");
    }
    const token = typeof doc.token === 'string' && doc.token !== '' ? doc.token : typeof doc.access_token === 'string' ? doc.access_token : '';
    if (token === '') throw new UpstreamUnavailableError("the upstream's token server answered no token");
    const seconds = typeof doc.expires_in === 'number' && doc.expires_in > 0 ? doc.expires_in : DEFAULT_TOKEN_SECONDS;
    const issued = typeof doc.issued_at === 'string' ? Date.parse(doc.issued_at) : NaN;
    const from = Number.isFinite(issued) && issued <= this.now() ? issued : this.now();
    const expires = from + seconds * 1000 - TOKEN_MARGIN_MS;
    if (this.tokens.size >= MAX_TOKENS) this.tokens.delete(this.tokens.keys().next().value!);
    this.tokens.set(this.tokenKey(challenge, scope), { token, expires });
    return token;
  }

  /** Whether a redirect (or a token realm) may be followed: https, or the upstream's own host and port. */
  private mayFollow(url: URL): boolean {
    return url.protocol === 'https:' || (url.protocol === this.base.protocol && url.host === this.base.host);
  }

  /**
   * Sends one request, following allowed redirects (Authorization only to the upstream's host),
   * with the timeout on the headers and, after them, between chunks of the body.
   */
  private async send(method: 'GET' | 'HEAD', url: URL, headers: Record<string, string>, signal?: AbortSignal): Promise<UpstreamResponse> {
    let target = url;
    for (let hop = 0; ; hop++) {
      // Credentials go where they were meant for (the first URL's host), never to a redirect's other host.
      const sent = hop === 0 || target.host === url.host ? headers : withoutAuthorization(headers);
      const response = await this.fetchOnce(method, target, sent, signal);
      if (hop > 0 && (response.status === 401 || response.status === 403)) {
        // Where a redirect led (a CDN, a bucket's signed URL) refusing is the upstream failing, not a verdict on access.
        response.discard();
        throw new UpstreamUnavailableError(`the upstream's redirect answered ${response.status}`, response.status);
      }
      if (response.status < 300 || response.status >= 400 || response.status === 304) return response;
      const location = response.headers.get('location');
      response.discard();
      if (!location) throw new UpstreamUnavailableError(`the upstream answered ${response.status} without a Location`, response.status);
      if (hop >= MAX_REDIRECTS) throw new UpstreamUnavailableError('the upstream redirected too many times');
      let next: URL;
      try {
        next = new URL(location, target);
      } catch {
        throw new UpstreamUnavailableError('the upstream redirected to something that is not a URL');
      }
      if (!this.mayFollow(next)) throw new UpstreamUnavailableError(`the upstream redirected to ${next.origin}, which is neither https nor the upstream's host`);
      target = next;
    }
  }

  private async fetchOnce(method: 'GET' | 'HEAD', url: URL, headers: Record<string, string>, signal?: AbortSignal): Promise<UpstreamResponse> {
    const controller = new AbortController();
    const onAbort = () => controller.abort(signal!.reason);
    if (signal?.aborted) throw signal.reason as Error;
    signal?.addEventListener('abort', onAbort, { once: true });
    const timeout = this.options.timeoutMs;
    let timer: NodeJS.Timeout | undefined = setTimeout(() => controller.abort(new Error('timeout')), timeout);
    const done = () => {
      if (timer) clearTimeout(timer);
      timer = undefined;
      signal?.removeEventListener('abort', onAbort);
    };
    let response: Response;
    try {
      // identity: a blob's bytes and Content-Length are the digest's, not a compressed transfer's.
      response = await fetch(url, {
        method,
        headers: { 'user-agent': 'ocireg-proxy', 'accept-encoding': 'identity', ...headers },
        redirect: 'manual',
        signal: controller.signal,
      });
    } catch (err) {
      done();
      if (signal?.aborted) throw signal.reason as Error;
      const reason = controller.signal.aborted ? `no answer within ${timeout} ms` : describeFetchError(err);
      throw new UpstreamUnavailableError(`the upstream ${this.base.origin} could not be reached: ${reason}`);
    }
    if (response.status === 429 || response.status >= 500) {
      done();
      void response.body?.cancel().catch(() => undefined);
      throw new UpstreamUnavailableError(`the upstream answered ${response.status}`, response.status, retryAfterSeconds(response.headers.get('retry-after')));
    }
    if (timer) clearTimeout(timer);
    timer = undefined;
    const discard = () => {
      done();
      controller.abort(new Error('discarded'));
      void response.body?.cancel().catch(() => undefined);
    };
    if (!response.body || method === 'HEAD') {
      done();
      void response.body?.cancel().catch(() => undefined);
      return { status: response.status, headers: response.headers, body: undefined, discard: () => undefined };
    }
    const body = idleTimed(response.body as unknown as WebReadableStream<Uint8Array>, timeout, () => controller.abort(new Error('idle')));
    body.once('close', done);
    return { status: response.status, headers: response.headers, body, discard };
  }
}

function withoutAuthorization(headers: Record<string, string>): Record<string, string> {
  const { authorization: _dropped, ...rest } = headers;
  return rest;
}

/**
 * The body's chunks, failing when the upstream sends nothing for `ms` while the stream is read
 * (the time its reader takes between chunks is not counted).
 */
function idleTimed(source: AsyncIterable<Uint8Array>, ms: number, abort: () => void): Readable {
  async function* chunks(): AsyncIterable<Uint8Array> {
    const iterator = source[Symbol.asyncIterator]();
    try {
      for (;;) {
        let idle = false;
        const timer = setTimeout(() => {
          idle = true;
          abort();
        }, ms);
        let next: IteratorResult<Uint8Array>;
        try {
          next = await iterator.next();
        } catch (err) {
          throw idle ? new UpstreamUnavailableError(`the upstream sent nothing for ${ms} ms`) : new UpstreamUnavailableError(`the upstream's answer broke off: ${(err as Error).message}`);
        } finally {
          clearTimeout(timer);
        }
        if (next.done) return;
        yield next.value;
      }
    } finally {
      await iterator.return?.();
    }
  }
  return Readable.from(chunks(), { objectMode: false });
}

function describeFetchError(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ?? cause?.message ?? (err as Error).message;
}

/** Retry-After in seconds (a number of seconds or an HTTP date), bounded to a day. */
export function retryAfterSeconds(value: string | null): number | undefined {
  if (!value) return undefined;
  const seconds = /^\d+$/.test(value.trim()) ? Number(value.trim()) : Math.ceil((Date.parse(value) - Date.now()) / 1000);
  if (!Number.isFinite(seconds) || seconds < 0) return undefined;
  return Math.min(seconds, 86_400);
}

/** Reads a small body whole, or throws past `limit` bytes. */
export async function readLimited(body: Readable | undefined, limit: number): Promise<string> {
  return (await readBytes(body, limit)).toString('utf8');
}

/** Reads a small body whole as bytes, or throws past `limit`. */
export async function readBytes(body: Readable | undefined, limit: number): Promise<Buffer> {
  if (!body) return Buffer.alloc(0);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += (chunk as Buffer).length;
    if (size > limit) {
      body.destroy();
      throw new UpstreamUnavailableError(`the upstream's answer exceeds ${limit} bytes`);
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}
