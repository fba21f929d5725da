/**
 * The pull-through cache: which upstream serves a repository name (proxy.remoteurl at the root,
 * proxy.rules and ECR's rules by prefix), and the cache policy over the registry's own use cases.
 *
 * - A manifest by tag is served from the cache for `ttl` after it was fetched or last checked;
 *   after that, a HEAD asks the upstream for the tag's digest (Docker Hub does not count HEADs
 *   against its pull limits), and a moved tag is fetched anew by its new digest.
 * - A manifest by digest and every blob are immutable: once cached they are never asked again.
 * - A blob not cached is fetched once, however many clients ask at once (blob-fetch.ts), and
 *   verified against its digest before it is indexed.
 * - When the upstream is down, slow or answers 429/5xx, what is cached is served (stale-if-error,
 *   with a log line and a metric); what is not answers 503 with Retry-After.
 *
 * Cached content is the registry's ordinary content: the access rules, garbage collection and
 * retention apply to it as to what was pushed.
 */
import { Digest } from '../oci/digest.js';
import { RegistryError } from '../oci/errors.js';
import { INDEX_MEDIA_TYPES, accepts, baseMediaType } from '../oci/media-types.js';
import { upstreamMatches, type ProxyConfig, type UpstreamConfig } from '../config/config.js';
import type { Registry } from '../registry/registry.js';
import type { Reference, StoredManifest } from '../registry/manifests.js';
import { ImmutableTagError } from '../registry/repository-rules.js';
import { BlobFetches, type BlobFetch } from './blob-fetch.js';
import { asCacheWrite } from './push-guard.js';
import type { EcrRuleSource, EcrRuleView } from './sources.js';
import { MANIFEST_ACCEPT, UpstreamClient, UpstreamDeniedError, UpstreamUnavailableError, readBytes, type UpstreamResponse } from './upstream.js';

/** Where a repository name is served from. */
export interface ProxyRoute {
  /** The rule's prefix ('' for the root mirror, ECR's `ROOT` for its root rule). */
  readonly prefix: string;
  readonly client: UpstreamClient;
  readonly ttlMs: number;
  /** The repository's name at the upstream. */
  readonly upstreamName: string;
}

/** What the cache logs with (pino's shape; request.log in a request). */
export interface ProxyLog {
  warn(fields: object, message: string): void;
  info(fields: object, message: string): void;
}

/** What the cache counts (src/events/metrics.ts keeps it when metrics are on). */
export interface ProxyCounters {
  /** kind: manifest or blob; result: hit, miss, revalidated, updated, stale, unavailable. */
  proxied(kind: 'manifest' | 'blob', result: ProxyResult): void;
}
export type ProxyResult = 'hit' | 'miss' | 'revalidated' | 'updated' | 'stale' | 'unavailable';

/** The upstream cannot answer and nothing cached can: 503 with Retry-After. */
export class ProxyUnavailableError extends RegistryError {
  override name = 'ProxyUnavailableError';
  constructor(
    message: string,
    readonly retryAfter: number,
  ) {
    super('UNAVAILABLE', message, { status: 503 });
  }
}

/** Seconds a client is told to wait when the upstream said nothing of it. */
const DEFAULT_RETRY_AFTER = 30;
/** How long ECR's rules are read from the index before they are read again (other nodes change them). */
const ECR_RULES_TTL_MS = 5_000;
/** Blob fetches in flight at most: each may outlive its clients, and takes a connection and disk. */
const MAX_FETCHES = 64;
/** After a failed check, a held tag is served this long (at most its ttl) before it is checked again. */
const STALE_RETRY_MS = 10_000;
/** Tags whose last check time is remembered (past it, the oldest are checked again sooner). */
const MAX_VALIDATED = 100_000;
const MANIFEST_LIMIT = 4 * 1024 * 1024;

export interface PullThroughCacheOptions {
  readonly registry: Registry;
  readonly config: ProxyConfig;
  /** ECR's rules and repository creation, when the ECR API is on. */
  readonly ecr?: EcrRuleSource;
  readonly counters?: ProxyCounters;
  /** A logger for what happens outside a request (a fetch that outlives its first client). */
  readonly log: ProxyLog;
  /** storage.maintenance.readonly: the cache serves what it holds and fetches nothing (it could not keep it). */
  readonly readOnly?: boolean;
  /** Blob fetches in flight at most (MAX_FETCHES). */
  readonly maxFetches?: number;
  readonly now?: () => number;
}

export class PullThroughCache {
  private readonly registry: Registry;
  private readonly config: ProxyConfig;
  private readonly ecr: EcrRuleSource | undefined;
  private readonly counters: ProxyCounters | undefined;
  private readonly log: ProxyLog;
  private readonly now: () => number;
  private readonly readOnly: boolean;
  private readonly maxFetches: number;
  private readonly clients = new Map<string, UpstreamClient>();
  /** Until when each cached tag (`repo:tag`) is served without asking the upstream (fetched or confirmed, plus ttl). */
  private readonly freshUntil = new Map<string, number>();
  private readonly pending = new Map<string, Promise<void>>();
  private readonly fetches: BlobFetches;
  private ecrRules: { at: number; rules: Promise<readonly EcrRuleView[]> } | undefined;

  constructor(options: PullThroughCacheOptions) {
    this.registry = options.registry;
    this.config = options.config;
    this.ecr = options.ecr;
    this.counters = options.counters;
    this.log = options.log;
    this.now = options.now ?? Date.now;
    this.readOnly = options.readOnly ?? false;
    this.maxFetches = options.maxFetches ?? MAX_FETCHES;
    this.fetches = new BlobFetches(2 * options.config.timeoutMs);
  }

  /** Whether anything can be proxied: a configured upstream, or ECR's rules. */
  get active(): boolean {
    return this.config.rules.length > 0 || this.ecr !== undefined;
  }

  /**
   * The route of a repository name, or undefined when no upstream serves it (it is the registry's
   * own). The rule of the longest prefix that covers the name wins, a configuration rule (or the
   * root mirror) before an ECR rule of the same length (ECR's ROOT is as long as the root mirror).
   */
  async route(name: string): Promise<ProxyRoute | undefined> {
    const configured = this.config.rules.find((r) => r.prefix === '' || name.startsWith(`${r.prefix}/`));
    const configuredLength = configured ? coverage(configured.prefix) : -1;
    const ecr = await this.ecrRule(name);
    if (ecr && coverage(ecr.ecrRepositoryPrefix) > configuredLength) return this.ecrRoute(name, ecr);
    if (!configured) return undefined;
    return this.makeRoute(configured.prefix, configured.upstream, configured.ttlMs, name.slice(coverage(configured.prefix)));
  }

  /** Whether pushes to `name` are refused (it is served from an upstream). */
  async proxies(name: string): Promise<boolean> {
    return (await this.route(name)) !== undefined;
  }

  /** The ECR rule of the longest prefix that covers the name (ROOT covers every name). */
  private async ecrRule(name: string): Promise<EcrRuleView | undefined> {
    if (!this.ecr) return undefined;
    let best: EcrRuleView | undefined;
    for (const rule of await this.currentEcrRules()) {
      const covers = rule.ecrRepositoryPrefix === ECR_ROOT || name.startsWith(`${rule.ecrRepositoryPrefix}/`);
      if (covers && (!best || coverage(rule.ecrRepositoryPrefix) > coverage(best.ecrRepositoryPrefix))) best = rule;
    }
    return best;
  }

  private ecrRoute(name: string, rule: EcrRuleView): ProxyRoute | undefined {
    const rest = name.slice(coverage(rule.ecrRepositoryPrefix));
    if (rest === '') return undefined; // the prefix itself names no upstream repository
    const upstreamPrefix = rule.upstreamRepositoryPrefix && rule.upstreamRepositoryPrefix !== ECR_ROOT ? rule.upstreamRepositoryPrefix : undefined;
    const credentials = rule.credentialName !== undefined ? this.config.credentials[rule.credentialName] : undefined;
    if (rule.credentialName !== undefined && !credentials) {
      throw new ProxyUnavailableError(`the pull-through cache rule ${rule.ecrRepositoryPrefix} names credentials the configuration no longer has`, DEFAULT_RETRY_AFTER);
    }
    if (credentials?.upstreams && !credentials.upstreams.some((entry) => upstreamMatches(entry, rule.upstreamUrl))) {
      // The configuration changed since the rule was made: the credentials are not sent where they are not for.
      throw new ProxyUnavailableError(`the pull-through cache rule ${rule.ecrRepositoryPrefix} names credentials that are not for its upstream`, DEFAULT_RETRY_AFTER);
    }
    const upstream: UpstreamConfig = {
      url: rule.upstreamUrl,
      dockerHub: new URL(rule.upstreamUrl).hostname === 'registry-1.docker.io',
      ...(credentials ? { username: credentials.username, password: credentials.password } : {}),
    };
    return this.makeRoute(rule.ecrRepositoryPrefix, upstream, this.config.ttlMs, upstreamPrefix ? `${upstreamPrefix}/${rest}` : rest);
  }

  private currentEcrRules(): Promise<readonly EcrRuleView[]> {
    const now = this.now();
    if (!this.ecrRules || now - this.ecrRules.at > ECR_RULES_TTL_MS) {
      const rules = this.ecr!.all();
      this.ecrRules = { at: now, rules };
      // A failed read is not remembered: the next request reads again.
      rules.catch(() => {
        if (this.ecrRules?.rules === rules) this.ecrRules = undefined;
      });
    }
    return this.ecrRules.rules;
  }

  /** Forgets ECR's rules as read, so that the next request reads them again (a rule changed on this node). */
  rulesChanged(): void {
    this.ecrRules = undefined;
  }

  private makeRoute(prefix: string, upstream: UpstreamConfig, ttlMs: number, rest: string): ProxyRoute | undefined {
    if (rest === '') return undefined;
    // Docker Hub's official images live under library/ (docker itself adds it to a bare name).
    const upstreamName = upstream.dockerHub && !rest.includes('/') ? `library/${rest}` : rest;
    return { prefix, client: this.client(upstream), ttlMs, upstreamName };
  }

  private client(upstream: UpstreamConfig): UpstreamClient {
    const key = `${upstream.url}\n${upstream.username ?? ''}\n${upstream.password ?? ''}`;
    let client = this.clients.get(key);
    if (!client) {
      client = new UpstreamClient(upstream, { timeoutMs: this.config.timeoutMs });
      this.clients.set(key, client);
    }
    return client;
  }

  // ---- manifests ----

  /** The manifest a reference names, from the cache or fetched from the upstream first. */
  async manifest(name: string, ref: Reference, accept: string | string[] | undefined, route: ProxyRoute, log: ProxyLog): Promise<StoredManifest> {
    await this.refresh(name, ref, route, log);
    try {
      return await this.registry.manifests.get(name, ref, accept);
    } catch (err) {
      // An index the client cannot take is answered with its linux/amd64 image (as the registry
      // does): that child may not be cached yet.
      if (!(err instanceof RegistryError && err.code === 'MANIFEST_UNKNOWN')) throw err;
      const child = await this.platformChild(name, ref, accept);
      if (!child) throw err;
      await this.refresh(name, { digest: child }, route, log);
      return this.registry.manifests.get(name, ref, accept);
    }
  }

  /** The linux/amd64 child of a cached index that the Accept header refuses, if it names one. */
  private async platformChild(name: string, ref: Reference, accept: string | string[] | undefined): Promise<Digest | undefined> {
    const digest = 'tag' in ref ? await this.registry.index.tagDigest(name, ref.tag) : ref.digest.toString();
    const row = digest ? await this.registry.index.manifest(name, digest) : undefined;
    if (!row || !INDEX_MEDIA_TYPES.has(row.mediaType) || accepts(accept, row.mediaType)) return undefined;
    try {
      const doc = JSON.parse(row.content.toString('utf8')) as { manifests?: Array<{ digest?: string; platform?: { os?: string; architecture?: string } }> };
      const child = doc.manifests?.find((m) => m.platform?.os === 'linux' && m.platform.architecture === 'amd64');
      return child?.digest ? Digest.parse(child.digest) : undefined;
    } catch {
      return undefined;
    }
  }

  /** Makes the cache hold what `ref` names, fresh enough; one upstream exchange for concurrent callers. */
  private refresh(name: string, ref: Reference, route: ProxyRoute, log: ProxyLog): Promise<void> {
    const key = `${name}\n${'tag' in ref ? `:${ref.tag}` : `@${ref.digest}`}`;
    let pending = this.pending.get(key);
    if (!pending) {
      pending = this.refreshNow(name, ref, route, log).finally(() => this.pending.delete(key));
      this.pending.set(key, pending);
    }
    return pending;
  }

  private async refreshNow(name: string, ref: Reference, route: ProxyRoute, log: ProxyLog): Promise<void> {
    if ('digest' in ref) {
      if (await this.registry.index.manifest(name, ref.digest.toString())) return this.counters?.proxied('manifest', 'hit');
      if (this.readOnly) throw readOnlyMiss('manifest');
      try {
        await this.fetchManifest(name, route, ref.digest.toString(), ref.digest, []);
        this.counters?.proxied('manifest', 'miss');
      } catch (err) {
        throw this.failure(err, 'manifest', name, route, log);
      }
      return;
    }
    const tag = ref.tag;
    const key = `${name}:${tag}`;
    const local = await this.registry.index.tagDigest(name, tag);
    const until = this.freshUntil.get(key);
    if (local !== undefined && until !== undefined && this.now() < until) return this.counters?.proxied('manifest', 'hit');
    if (this.readOnly) {
      // Nothing can be written: what is held is served as it is, and nothing else.
      if (local === undefined) throw readOnlyMiss('manifest');
      return this.counters?.proxied('manifest', 'hit');
    }
    try {
      if (local === undefined) {
        await this.fetchManifest(name, route, tag, undefined, [tag]);
        this.counters?.proxied('manifest', 'miss');
      } else {
        const current = await this.headManifest(route, tag);
        if (current === local) {
          this.counters?.proxied('manifest', 'revalidated');
        } else {
          const held = current !== undefined ? await this.registry.index.manifest(name, current) : undefined;
          // Moved back to an image the cache holds: the tag follows without fetching it again.
          const moved = held
            ? await this.keep(name, Digest.parse(current!), held.content, held.mediaType, [tag])
            : await this.fetchManifest(name, route, current ?? tag, current !== undefined ? Digest.parse(current) : undefined, [tag]);
          if (moved) {
            this.counters?.proxied('manifest', 'updated');
            log.info({ repository: name, tag, from: local, upstream: route.client.url }, 'cached tag moved to follow the upstream');
          } else {
            this.counters?.proxied('manifest', 'revalidated');
          }
        }
      }
      this.markValidated(key, route.ttlMs);
    } catch (err) {
      // A held tag is served whatever stops its check: the upstream down, slow or rate limiting,
      // refusing the credentials, or no longer having the tag (as distribution does).
      const refused = err instanceof UpstreamDeniedError || (err instanceof RegistryError && err.status < 500);
      if (local !== undefined && (err instanceof UpstreamUnavailableError || refused)) {
        this.counters?.proxied('manifest', 'stale');
        const reason = err instanceof Error ? err.message : String(err);
        if (refused) log.warn({ repository: name, tag, upstream: route.client.url, reason }, 'upstream refused the check: serving the cached manifest');
        else log.warn({ repository: name, tag, upstream: route.client.url, reason }, 'upstream unavailable: serving the cached manifest');
        // Checked again after a short while rather than on every pull: each check may wait proxy.timeout.
        this.markValidated(key, Math.min(route.ttlMs, STALE_RETRY_MS));
        return;
      }
      throw this.failure(err, 'manifest', name, route, log);
    }
  }

  /** Notes that the tag is served without a check for `ms` from now (its ttl, or less after a failed check). */
  private markValidated(key: string, ms: number): void {
    this.freshUntil.delete(key);
    if (this.freshUntil.size >= MAX_VALIDATED) this.freshUntil.delete(this.freshUntil.keys().next().value!);
    this.freshUntil.set(key, this.now() + ms);
  }

  /** The tag's digest at the upstream (a HEAD); undefined when it does not say (a GET then tells). */
  private async headManifest(route: ProxyRoute, tag: string): Promise<string | undefined> {
    const response = await route.client.request('HEAD', `/v2/${route.upstreamName}/manifests/${tag}`, route.upstreamName, { accept: MANIFEST_ACCEPT });
    if (response.status === 404) throw manifestUnknownUpstream(route, tag);
    if (response.status !== 200) throw new UpstreamUnavailableError(`the upstream answered ${response.status} to a HEAD of the manifest`, response.status);
    const digest = response.headers.get('docker-content-digest');
    return digest && Digest.tryParse(digest) ? digest : undefined;
  }

  /**
   * Fetches a manifest by tag or digest and records it (with `tags`): its digest is the one asked
   * for, else the one the upstream says (checked), else its bytes' sha256. False when the tags
   * could not move (they are immutable).
   */
  private async fetchManifest(name: string, route: ProxyRoute, reference: string, expected: Digest | undefined, tags: string[]): Promise<boolean> {
    const response = await route.client.request('GET', `/v2/${route.upstreamName}/manifests/${reference}`, route.upstreamName, { accept: MANIFEST_ACCEPT });
    if (response.status === 404) {
      response.discard();
      throw manifestUnknownUpstream(route, reference);
    }
    if (response.status !== 200) {
      response.discard();
      throw new UpstreamUnavailableError(`the upstream answered ${response.status} to a GET of the manifest`, response.status);
    }
    const body = await readBytes(response.body, MANIFEST_LIMIT);
    const said = response.headers.get('docker-content-digest');
    const digest = expected ?? (said && Digest.tryParse(said) ? Digest.parse(said) : Digest.of(body));
    if (!Digest.of(body, digest.algorithm).equals(digest)) {
      throw new UpstreamUnavailableError(`the upstream's manifest does not have the digest ${digest}`);
    }
    const mediaType = baseMediaType(response.headers.get('content-type') ?? undefined) || undefined;
    return this.keep(name, digest, body, mediaType, tags);
  }

  /** Records a manifest of the upstream's in the cache, with `tags`; false when the tags could not move (they are immutable). */
  private async keep(name: string, digest: Digest, body: Buffer, mediaType: string | undefined, tags: string[]): Promise<boolean> {
    await this.ensureRepository(name);
    try {
      await asCacheWrite(() => this.registry.manifests.putCached(name, digest, body, mediaType, tags));
      return true;
    } catch (err) {
      if (err instanceof ImmutableTagError) {
        // The repository's tags are immutable (an ECR template said so): the cached one stays.
        this.log.info({ repository: name, tag: err.tag }, 'upstream tag moved; the cached tag is immutable and stays');
        return false;
      }
      if (err instanceof RegistryError && err.status < 500) {
        throw new RegistryError('MANIFEST_UNKNOWN', `the upstream's manifest cannot be stored here: ${err.message}`, { detail: { name, digest: digest.toString() } });
      }
      throw err;
    }
  }

  private async ensureRepository(name: string): Promise<void> {
    await this.ecr?.ensureRepository(name);
  }

  // ---- blobs ----

  /** A blob the repository already holds was served from the cache (counted as a hit). */
  heldBlob(): void {
    this.counters?.proxied('blob', 'hit');
  }

  /**
   * A blob of a proxied repository that the repository does not hold yet: linked from the store
   * when the registry has its bytes (once the upstream confirms it has them there too), else
   * fetched. Undefined when the repository holds it (the caller reads it as usual).
   */
  async blob(name: string, digest: Digest, route: ProxyRoute, log: ProxyLog): Promise<BlobFetch | undefined> {
    if ((await this.registry.index.linkedBlobSize(name, digest.toString())) !== undefined) {
      this.counters?.proxied('blob', 'hit');
      return undefined;
    }
    if (this.readOnly) throw readOnlyMiss('blob');
    try {
      if ((await this.registry.index.anyLinkedBlobSize(digest.toString())) !== undefined) {
        // Linked only when the upstream holds it in this repository: a digest is not a right to read
        // another repository's content.
        await this.headBlob(route, digest);
        await this.ensureRepository(name);
        const linked = await asCacheWrite(() => this.registry.blobs.mount(name, digest, undefined));
        if (linked) {
          this.counters?.proxied('blob', 'hit');
          return undefined;
        }
      }
      const key = `${name}\n${digest}`;
      if (!this.fetches.has(key) && this.fetches.size >= this.maxFetches) {
        throw new ProxyUnavailableError(`the pull-through cache is fetching ${this.maxFetches} blobs already; retry later`, 5);
      }
      return await this.fetches.join(key, () => this.startBlobFetch(name, digest, route));
    } catch (err) {
      throw this.failure(err, 'blob', name, route, log);
    }
  }

  /** The size of a blob the repository does not hold, from a HEAD to the upstream (nothing is fetched). */
  async blobSize(name: string, digest: Digest, route: ProxyRoute, log: ProxyLog): Promise<number | undefined> {
    try {
      return await this.headBlob(route, digest);
    } catch (err) {
      throw this.failure(err, 'blob', name, route, log);
    }
  }

  private async headBlob(route: ProxyRoute, digest: Digest): Promise<number | undefined> {
    const response = await route.client.request('HEAD', `/v2/${route.upstreamName}/blobs/${digest}`, route.upstreamName, {});
    if (response.status === 404) throw blobUnknownUpstream(route, digest);
    if (response.status !== 200) throw new UpstreamUnavailableError(`the upstream answered ${response.status} to a HEAD of the blob`, response.status);
    return contentLength(response);
  }

  private async startBlobFetch(name: string, digest: Digest, route: ProxyRoute) {
    // Not tied to the first client's request: the others (and the cache) still want it if it leaves.
    const response = await route.client.request('GET', `/v2/${route.upstreamName}/blobs/${digest}`, route.upstreamName, {});
    if (response.status === 404) {
      response.discard();
      throw blobUnknownUpstream(route, digest);
    }
    if (response.status !== 200 || !response.body) {
      response.discard();
      throw new UpstreamUnavailableError(`the upstream answered ${response.status} to a GET of the blob`, response.status);
    }
    const size = contentLength(response);
    const body = response.body;
    this.counters?.proxied('blob', 'miss');
    return {
      size,
      cancel: () => response.discard(),
      run: (spool: (chunks: AsyncIterable<Uint8Array>) => AsyncIterable<Uint8Array>) => {
        const staged = (async () => {
          const blob = await this.registry.uploads.stage(spool(body), digest.algorithm);
          if (!blob.digest.equals(digest) || (size !== undefined && blob.size !== size)) {
            await this.registry.uploads.discardStaged(blob.id);
            throw new UpstreamUnavailableError(`the upstream's blob ${digest} has the digest ${blob.digest} (${blob.size} bytes)`);
          }
          return blob;
        })();
        const stored = staged.then(async (blob) => {
          try {
            await this.ensureRepository(name);
            await asCacheWrite(() => this.registry.uploads.commitStaged([name], blob));
          } catch (err) {
            await this.registry.uploads.discardStaged(blob.id).catch(() => undefined);
            throw err;
          }
        });
        stored.catch((err: Error) => {
          response.discard();
          this.log.warn({ repository: name, digest: digest.toString(), upstream: route.client.url, reason: err.message }, 'pull-through fetch of a blob failed');
        });
        return { verified: staged.then(() => undefined), stored };
      },
    };
  }

  /** What the client is told when the upstream fails it: 503 when it is unavailable, its 404s as 404s. */
  private failure(err: unknown, kind: 'manifest' | 'blob', name: string, route: ProxyRoute, log: ProxyLog): unknown {
    if (err instanceof UpstreamUnavailableError) {
      this.counters?.proxied(kind, 'unavailable');
      log.warn({ repository: name, upstream: route.client.url, reason: err.message }, `upstream unavailable: the ${kind} is not cached`);
      return new ProxyUnavailableError(`the upstream registry is unavailable and the ${kind} is not cached; retry later`, err.retryAfter ?? DEFAULT_RETRY_AFTER);
    }
    if (err instanceof UpstreamDeniedError) {
      // Docker Hub answers 401 for a repository it does not have; a wrong credential looks the same.
      log.warn({ repository: name, upstream: route.client.url, status: err.status }, 'upstream refused the request');
      return new RegistryError('NAME_UNKNOWN', `the upstream registry refused access to ${route.upstreamName} (it answered ${err.status})`, { detail: { name } });
    }
    return err;
  }

  /** Ends the fetches' spool folder (the app closes). */
  close(): Promise<void> {
    return this.fetches.close();
  }
}

/** Checks an upstream's /v2/ with its credentials (ECR's ValidatePullThroughCacheRule). */
export function probeUpstream(upstream: UpstreamConfig, config: Pick<ProxyConfig, 'timeoutMs'>): Promise<{ ok: true } | { ok: false; reason: string }> {
  return new UpstreamClient(upstream, { timeoutMs: config.timeoutMs }).probe();
}

function readOnlyMiss(kind: 'manifest' | 'blob'): ProxyUnavailableError {
  return new ProxyUnavailableError(`the registry is in read-only mode: the pull-through cache serves the ${kind}s it holds and fetches no other`, DEFAULT_RETRY_AFTER);
}

/** ECR's prefix of the rule that covers every name. */
const ECR_ROOT = 'ROOT';

/** How much of a name a prefix takes (with its `/`): 0 for the root mirror and ECR's ROOT. */
function coverage(prefix: string): number {
  return prefix === '' || prefix === ECR_ROOT ? 0 : prefix.length + 1;
}

function contentLength(response: UpstreamResponse): number | undefined {
  const text = response.headers.get('content-length');
  return text !== null && /^\d+$/.test(text) ? Number(text) : undefined;
}

function manifestUnknownUpstream(route: ProxyRoute, reference: string): RegistryError {
  return new RegistryError('MANIFEST_UNKNOWN', `the upstream has no manifest ${route.upstreamName}:${reference}`, { detail: { name: route.upstreamName, reference } });
}

function blobUnknownUpstream(route: ProxyRoute, digest: Digest): RegistryError {
  return new RegistryError('BLOB_UNKNOWN', `the upstream has no blob ${digest} in ${route.upstreamName}`, { detail: { digest: digest.toString() } });
}
