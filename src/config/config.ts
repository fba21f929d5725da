import { readFileSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { ENV_KEYS, IGNORED_KEYS, fileSchema, type ConfigFile } from './schema.js';
import { parseDuration } from './duration.js';
import { compilePattern } from '../auth/patterns.js';
import { LifecyclePolicyError, parseLifecyclePolicy } from '../maintenance/lifecycle/policy.js';

export interface Config {
  readonly http: {
    readonly host: string;
    readonly port: number;
    /** External base URL (distribution's http.host); Locations are relative without it. */
    readonly publicUrl?: string;
    readonly tls?: TlsConfig;
    /** Reverse proxies (addresses, CIDR ranges) trusted for X-Forwarded-For and -Proto; empty: none. */
    readonly trustProxy: readonly string[];
    /** Request rate limiting per client address; absent: none. */
    readonly rateLimit?: RateLimitConfig;
    readonly headers: Readonly<Record<string, readonly string[]>>;
    readonly drainTimeoutMs: number;
    /** distribution's http.secret: here, the key that signs the web UI's sessions (shared by every node). */
    readonly secret?: string;
    /** The debug server (http.debug.addr): Prometheus metrics, off the public port; absent: none. */
    readonly debug?: DebugConfig;
  };
  readonly storage: {
    /** The S3 driver's settings; without them the driver is the filesystem. */
    readonly s3?: S3Config;
    /**
     * Whether blob reads may be answered with a redirect to the backend
     * (!storage.redirect.disable, true by default as in distribution); only the s3 driver acts on it.
     */
    readonly redirect: boolean;
    /** The filesystem driver's root, and the default directory of the index. */
    readonly rootDirectory: string;
    readonly deleteEnabled: boolean;
    readonly readOnly: boolean;
    readonly uploadPurging: {
      readonly enabled: boolean;
      readonly ageMs: number;
      readonly intervalMs: number;
      readonly dryRun: boolean;
    };
    /** Online garbage collection (storage.maintenance.gc). */
    readonly gc: GcConfig;
  };
  readonly index: IndexConfig;
  readonly log: {
    readonly level: string;
    readonly fields: Readonly<Record<string, string | number | boolean>>;
    readonly accessLog: boolean;
  };
  readonly limits: { readonly manifestMaxBytes: number };
  /** Who may sign in and how; absent: no authentication (everyone may do everything). */
  readonly auth?: AuthConfig;
  /** The `access` rules as written (checked and compiled by src/auth/access-rules.ts); absent: the default rules. */
  readonly access?: AccessConfig;
  /** The Amazon ECR API; absent when `ecr.enabled` is not true. */
  readonly ecr?: EcrConfig;
  /** Retention policies for every user, with or without the ECR API; absent when none are configured. */
  readonly retention?: RetentionConfig;
  /** Event notifications; absent when no endpoint is enabled. */
  readonly notifications?: NotificationsConfig;
  /** The web UI at /ui/ (on unless ui.enabled is false). */
  readonly ui: { readonly enabled: boolean };
  /** Limits on the image archives imported over /api/v1/import. */
  readonly archives: ArchivesConfig;
  /** The pull-through cache: upstreams mirrored at the root or under prefixes; absent when none is configured. */
  readonly proxy?: ProxyConfig;
  /** Configured keys that are accepted for compatibility but have no effect. */
  readonly ignoredKeys: readonly string[];
}

export interface ArchivesConfig {
  /** The most bytes an archive may have, as sent and once decompressed. */
  readonly maxBytes: number;
  /** The most entries (files, folders, links) an archive may hold. */
  readonly maxEntries: number;
}

/** 16 GiB: more than the largest images people move as archives, less than a full disk. */
export const ARCHIVE_MAX_BYTES = 16 * 1024 ** 3;
/** A docker save holds a few entries per layer; a 10,000-entry archive is a bomb, not an image. */
export const ARCHIVE_MAX_ENTRIES = 4096;

/** An upstream registry that the pull-through cache reads from. */
export interface UpstreamConfig {
  /** `scheme://host[:port]`: the upstream's /v2/ API is under it. */
  readonly url: string;
  readonly username?: string;
  readonly password?: string;
  /** Docker Hub (registry-1.docker.io): its official images are `library/<name>`. */
  readonly dockerHub: boolean;
}

/** Where a pull of a repository name is served from: the upstream of the longest prefix that covers it. */
export interface ProxyRuleConfig {
  /** A repository-name prefix (`hub` covers `hub/...`); '' for the root mirror (proxy.remoteurl), which covers every name. */
  readonly prefix: string;
  readonly upstream: UpstreamConfig;
  /** How long a manifest fetched by tag is served before it is revalidated with a HEAD to the upstream. */
  readonly ttlMs: number;
}

export interface ProxyCredential {
  readonly username: string;
  readonly password: string;
  /** The upstreams (allowedupstreams' syntax) a rule may send them to; absent: any upstream a rule may name. */
  readonly upstreams?: readonly string[];
}

export interface ProxyConfig {
  /** proxy.remoteurl's rule (prefix '') and proxy.rules, longest prefix first. */
  readonly rules: readonly ProxyRuleConfig[];
  /** Upstream credentials by name, for ECR's pull-through cache rules (credentialArn's secret name). */
  readonly credentials: Readonly<Record<string, ProxyCredential>>;
  /**
   * The upstreams that ECR's CreatePullThroughCacheRule may name, as `scheme://host[:port]`; a host
   * may start with `*.` (any subdomain). By default the registries ECR itself supports.
   */
  readonly allowedUpstreams: readonly string[];
  /** The ttl of ECR's rules, and of proxy.rules that set none (proxy.ttl, else 5 minutes). */
  readonly ttlMs: number;
  /** How long an upstream request may wait for the answer's headers, or between two chunks of its body. */
  readonly timeoutMs: number;
}

/** The upstreams ECR's pull-through cache supports (its upstreamRegistryUrl values); *.azurecr.io for Azure's. */
export const ECR_UPSTREAMS: readonly string[] = [
  'https://registry-1.docker.io',
  'https://public.ecr.aws',
  'https://quay.io',
  'https://registry.k8s.io',
  'https://ghcr.io',
  'https://registry.gitlab.com',
  'https://*.azurecr.io',
];

/** What the cache runs with when the configuration has no proxy section (ECR's rules may still name upstreams). */
export const DEFAULT_PROXY: ProxyConfig = Object.freeze({
  rules: [],
  credentials: {},
  allowedUpstreams: ECR_UPSTREAMS,
  ttlMs: 5 * 60_000,
  timeoutMs: 30_000,
});

export interface DebugConfig {
  readonly host: string;
  readonly port: number;
  /** Metrics at `path` on the debug server; absent when http.debug.prometheus.enabled is not true. */
  readonly prometheus?: { readonly path: string; readonly repositoryLabels: boolean };
}

export interface GcConfig {
  readonly enabled: boolean;
  readonly intervalMs: number;
  /** The grace window: content written, linked or used more recently than this is kept. */
  readonly delayMs: number;
  readonly dryRun: boolean;
  readonly deleteUntagged: boolean;
}

export interface RetentionPolicyConfig {
  /** Repository patterns (the access rules' syntax: `*` within a segment, `**` across). */
  readonly repositories: readonly string[];
  /** The ECR lifecycle policy document, as its JSON text (checked at load). */
  readonly policyText: string;
}

export interface RetentionConfig {
  readonly policies: readonly RetentionPolicyConfig[];
  readonly dryRun: boolean;
  readonly intervalMs: number;
}

/** Where the index lives: an SQLite file (one machine), or PostgreSQL (shared by several nodes). */
export interface IndexConfig {
  readonly driver: 'sqlite' | 'postgres';
  /** The SQLite file (index.path; storage/index.db by default). Unused with PostgreSQL. */
  readonly path: string;
  /** With the postgres driver: how to reach the database. */
  readonly postgres?: PostgresConfig;
}

export interface PostgresConfig {
  /** A connection URL (postgres://user:password@host:port/database?sslmode=...); the fields below override its parts. */
  readonly url?: string;
  readonly host?: string;
  readonly port?: number;
  readonly database?: string;
  readonly user?: string;
  readonly password?: string;
  readonly sslmode?: 'disable' | 'prefer' | 'require' | 'verify-ca' | 'verify-full';
  /** Connections per node (default 10). */
  readonly poolSize: number;
}

export interface TlsConfig {
  readonly certificate: string;
  readonly key: string;
  /** CA files; when given, every client must present a certificate signed by one of them. */
  readonly clientCas: readonly string[];
  /** Node's name of the oldest TLS version accepted. */
  readonly minimumTls: 'TLSv1.2' | 'TLSv1.3';
}

export interface RateLimitConfig {
  /** Requests per second per client address, refilled continuously. */
  readonly rate: number;
  /** How many requests may come at once (the bucket's size). */
  readonly burst: number;
  /** Per-method rate and burst, replacing the defaults for that method. */
  readonly methods: Readonly<Record<string, { readonly rate: number; readonly burst: number }>>;
}

export interface AuthConfig {
  /** Users and their bcrypt password hashes. */
  readonly htpasswd?: { readonly realm: string; readonly path: string };
  /** The built-in token server (Docker token authentication). */
  readonly tokenServer?: {
    readonly issuer: string;
    readonly service: string;
    /** PEM private key file; created (EC P-256, mode 0600) when missing. */
    readonly keyPath: string;
    readonly expirationMs: number;
    readonly refreshExpirationMs: number;
  };
  /** An external token issuer whose tokens this registry trusts. */
  readonly token?: {
    readonly realm: string;
    readonly service: string;
    readonly issuer: string;
    readonly rootCertBundle?: string;
    readonly jwks?: string;
    readonly signingAlgorithms: readonly string[];
  };
}

/**
 * The rights the access rules give. `manage` is a repository's settings (create, delete,
 * policies, lifecycle, tag mutability), through the ECR API.
 */
export type Action = 'pull' | 'push' | 'delete' | 'manage';

export interface EcrConfig {
  /** The 12-digit registry id (`registryId`, in ARNs). */
  readonly accountId: string;
  readonly region: string;
  /** Whether a push to a repository that does not exist creates it (ECR refuses it). */
  readonly createOnPush: boolean;
  /** The key pairs that sign ECR requests; each acts as `user` under the access rules. */
  readonly credentials: readonly EcrCredential[];
  /** How often lifecycle policies run. */
  readonly lifecycleIntervalMs: number;
}

export interface EcrCredential {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly user: string;
}

export interface AccessConfig {
  readonly groups?: Readonly<Record<string, readonly string[]>>;
  readonly admins?: readonly string[];
  readonly repositories?: Readonly<
    Record<
      string,
      {
        readonly users?: Readonly<Record<string, readonly string[]>>;
        readonly groups?: Readonly<Record<string, readonly string[]>>;
        readonly authenticated?: readonly string[];
        readonly anonymous?: readonly string[];
      }
    >
  >;
}

export interface S3Config {
  readonly region: string;
  readonly bucket: string;
  /** storage.s3.regionendpoint with a scheme (https:// unless storage.s3.secure is false), trailing slashes removed. */
  readonly endpoint?: string;
  /** Static credentials: both or neither; without them the SDK's default credential chain applies. */
  readonly accessKey?: string;
  readonly secretKey?: string;
  readonly forcePathStyle: boolean;
  /** Key prefix inside the bucket: '' or 'a/b', without leading or trailing slashes. */
  readonly rootDirectory: string;
  /** Size in bytes of each multipart upload part. */
  readonly chunkSize: number;
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

export interface LoadOptions {
  /** Path of a YAML file; when absent, REGISTRY_CONFIGURATION_PATH, else defaults only. */
  path?: string;
  env?: NodeJS.ProcessEnv;
  /** Directory that relative paths are resolved against (default: the process's cwd). */
  cwd?: string;
  /** Overrides applied after the file and the environment (used by tests). */
  overrides?: ConfigFile;
}

export const DEFAULT_PORT = 5000;
export const MANIFEST_MAX_BYTES = 4 * 1024 * 1024;
export const S3_DEFAULT_CHUNK_SIZE = 10 * 1024 * 1024;

export function loadConfig(options: LoadOptions = {}): Config {
  const env = options.env ?? process.env;
  const cwd = options.cwd ?? process.cwd();
  const given = options.path ?? (env.REGISTRY_CONFIGURATION_PATH || undefined);
  const path = given ? resolve(cwd, given) : undefined;

  let raw: Record<string, unknown> = {};
  if (path) {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      throw new ConfigError(`cannot read configuration file ${path}: ${(err as Error).message}`);
    }
    try {
      const doc: unknown = parseYaml(text);
      if (doc !== null && doc !== undefined) {
        if (typeof doc !== 'object' || Array.isArray(doc)) throw new Error('the document must be a mapping');
        raw = doc as Record<string, unknown>;
      }
    } catch (err) {
      throw new ConfigError(`configuration file ${path} is not valid YAML: ${(err as Error).message}`);
    }
  }
  applyEnv(raw, env);
  if (options.overrides) deepMerge(raw, options.overrides as Record<string, unknown>);

  const result = fileSchema.safeParse(raw);
  if (!result.success) {
    const problems = result.error.issues.map((i) => {
      const at = i.path.join('.') || '(top level)';
      if (i.code === 'unrecognized_keys') return `${at}: unknown key(s) ${i.keys.map((k) => JSON.stringify(k)).join(', ')}`;
      return `${at}: ${i.message}`;
    });
    throw new ConfigError(`invalid configuration${path ? ` in ${path}` : ''}:\n  ${problems.join('\n  ')}`);
  }
  return resolveConfig(result.data, cwd, env);
}

function resolveIndex(file: ConfigFile, path: string): IndexConfig {
  const driver = file.index?.driver ?? 'sqlite';
  const pg = file.index?.postgres;
  if (driver === 'sqlite') return { driver, path };
  if (!pg?.url && !pg?.host) {
    throw new ConfigError('index.postgres: the postgres driver needs index.postgres.url or index.postgres.host');
  }
  if (pg.url !== undefined) {
    let url: URL;
    try {
      url = new URL(pg.url);
    } catch {
      throw new ConfigError('index.postgres.url: not a URL (postgres://user:password@host:port/database)');
    }
    if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') {
      throw new ConfigError(`index.postgres.url: expected a postgres:// URL, not ${url.protocol}//`);
    }
    // A password holding '#', '/', '?' or '@' unencoded is read as something else (a host, a path,
    // a fragment), and could then be printed as part of the address: refuse it, without echoing it.
    const authority = pg.url.slice(pg.url.indexOf('//') + 2).split(/[/?#]/)[0] ?? '';
    if (url.hash !== '' || (url.username === '' && pg.url.includes('@')) || authority.split('@').length > 2) {
      throw new ConfigError(
        'index.postgres.url: not a URL that can be read safely; percent-encode special characters in the user and password ' +
          '(# / ? @ : %), or give the password as index.postgres.password',
      );
    }
  }
  // Several nodes over one filesystem root only work when every node sees the same files.
  if (!file.storage?.s3 && !file.storage?.filesystem?.shared) {
    throw new ConfigError(
      'storage: the postgres index is for several nodes, which need one shared store: use the s3 driver, or mark a volume ' +
        'that every node mounts as storage.filesystem.shared: true',
    );
  }
  return {
    driver,
    path,
    postgres: {
      ...(pg.url !== undefined ? { url: pg.url } : {}),
      ...(pg.host !== undefined ? { host: pg.host } : {}),
      ...(pg.port !== undefined ? { port: pg.port } : {}),
      ...(pg.database !== undefined ? { database: pg.database } : {}),
      ...(pg.user !== undefined ? { user: pg.user } : {}),
      ...(pg.password !== undefined ? { password: pg.password } : {}),
      ...(pg.sslmode !== undefined ? { sslmode: pg.sslmode } : {}),
      poolSize: pg.poolsize ?? 10,
    },
  };
}

function resolveConfig(file: ConfigFile, cwd: string, env: NodeJS.ProcessEnv): Config {
  if (file.storage?.filesystem && file.storage.s3) {
    throw new ConfigError(
      'storage: configure one storage driver, filesystem or s3, not both, or choose one with REGISTRY_STORAGE',
    );
  }
  const s3 = file.storage?.s3 ? resolveS3(file.storage.s3, env) : undefined;
  const { host, port } = parseAddr(file.http?.addr ?? `0.0.0.0:${DEFAULT_PORT}`);
  const root = resolve(cwd, file.storage?.filesystem?.rootdirectory ?? 'storage');
  const indexPath = file.index?.path
    ? isAbsolute(file.index.path)
      ? file.index.path
      : resolve(cwd, file.index.path)
    : join(root, 'index.db');
  const purging = file.storage?.maintenance?.uploadpurging;
  const config: Config = {
    http: {
      host,
      port,
      ...(file.http?.host ? { publicUrl: file.http.host.replace(/\/+$/, '') } : {}),
      ...(file.http?.tls ? { tls: resolveTls(file.http.tls, cwd) } : {}),
      trustProxy: file.http?.trustproxy ?? [],
      ...(file.http?.ratelimit ? { rateLimit: resolveRateLimit(file.http.ratelimit) } : {}),
      headers: file.http?.headers ?? {},
      drainTimeoutMs: parseDuration(file.http?.draintimeout ?? '10s'),
      ...(file.http?.debug ? resolveDebug(file.http.debug, port) : {}),
      ...(file.http?.secret ? { secret: file.http.secret } : {}),
    },
    storage: {
      ...(s3 ? { s3 } : {}),
      redirect: !(file.storage?.redirect?.disable ?? false),
      rootDirectory: root,
      deleteEnabled: file.storage?.delete?.enabled ?? true,
      readOnly: file.storage?.maintenance?.readonly?.enabled ?? false,
      uploadPurging: {
        enabled: purging?.enabled ?? true,
        ageMs: parseDuration(purging?.age ?? '24h'),
        intervalMs: parseDuration(purging?.interval ?? '1h'),
        dryRun: purging?.dryrun ?? false,
      },
      gc: resolveGc(file.storage?.maintenance?.gc),
    },
    index: resolveIndex(file, indexPath),
    log: {
      level: file.log?.level ?? 'info',
      fields: file.log?.fields ?? {},
      accessLog: !(file.log?.accesslog?.disabled ?? false),
    },
    limits: { manifestMaxBytes: MANIFEST_MAX_BYTES },
    ...(file.auth ? { auth: resolveAuth(file.auth, cwd, root) } : {}),
    ...(file.access ? { access: file.access } : {}),
    ...(file.ecr?.enabled ? { ecr: resolveEcr(file.ecr) } : {}),
    ...(file.retention?.policies?.length ? { retention: resolveRetention(file.retention) } : {}),
    ...resolveNotifications(file.notifications),
    ui: { enabled: file.ui?.enabled ?? true },
    archives: { maxBytes: file.archives?.maxsize ?? ARCHIVE_MAX_BYTES, maxEntries: file.archives?.maxentries ?? ARCHIVE_MAX_ENTRIES },
    ...(file.proxy ? { proxy: resolveProxy(file.proxy) } : {}),
    ignoredKeys: IGNORED_KEYS.filter(
      (k) => getPath(file, k) !== undefined && !(k === 'storage.redirect' && s3),
    ),
  };
  if (config.storage.uploadPurging.intervalMs <= 0) {
    throw new ConfigError('storage.maintenance.uploadpurging.interval must be greater than zero');
  }
  return deepFreeze(config);
}

type HttpFile = NonNullable<ConfigFile['http']>;

function resolveGc(gc: NonNullable<NonNullable<ConfigFile['storage']>['maintenance']>['gc']): GcConfig {
  const resolved = {
    enabled: gc?.enabled ?? true,
    intervalMs: parseDuration(gc?.interval ?? '1h'),
    delayMs: parseDuration(gc?.delay ?? '1h'),
    dryRun: gc?.dryrun ?? false,
    deleteUntagged: gc?.deleteuntagged ?? false,
  };
  if (resolved.intervalMs <= 0 || resolved.intervalMs > MAX_TIMER_MS) {
    throw new ConfigError('storage.maintenance.gc.interval must be greater than zero and at most 24 days');
  }
  return resolved;
}

export interface NotificationEndpoint {
  readonly name: string;
  readonly url: string;
  /** Sent with every request (an Authorization header, say): never logged. */
  readonly headers: Readonly<Record<string, readonly string[]>>;
  readonly timeoutMs: number;
  /** Consecutive failures before the delay between attempts starts growing from `backoffMs`. */
  readonly threshold: number;
  readonly backoffMs: number;
  /** Events whose target has one of these media types are not sent (ignoredmediatypes and ignore.mediatypes). */
  readonly ignoredMediaTypes: readonly string[];
  readonly ignoredActions: readonly string[];
}

export interface NotificationsConfig {
  /** The enabled endpoints (those with `disabled: true` are left out). */
  readonly endpoints: readonly NotificationEndpoint[];
  /** Undelivered events kept at most; past it the oldest are dropped (counted and logged). */
  readonly outboxMaxEvents: number;
}

export const OUTBOX_MAX_EVENTS = 1_000_000;

function resolveNotifications(n: ConfigFile['notifications']): { notifications?: NotificationsConfig } {
  const names = new Set<string>();
  const endpoints: NotificationEndpoint[] = [];
  for (const [i, e] of (n?.endpoints ?? []).entries()) {
    const at = `notifications.endpoints[${i}]`;
    if (names.has(e.name)) throw new ConfigError(`${at}.name: "${e.name}" names another endpoint too`);
    names.add(e.name);
    let url: URL;
    try {
      url = new URL(e.url);
    } catch {
      throw new ConfigError(`${at}.url: not a URL`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new ConfigError(`${at}.url: must be http:// or https://`);
    const timeoutMs = parseDuration(e.timeout ?? '1s');
    const backoffMs = parseDuration(e.backoff ?? '1s');
    if (timeoutMs <= 0 || timeoutMs > 10 * 60_000) throw new ConfigError(`${at}.timeout: must be greater than zero and at most 10m`);
    if (backoffMs <= 0 || backoffMs > 60 * 60_000) throw new ConfigError(`${at}.backoff: must be greater than zero and at most 1h`);
    if (e.disabled) continue;
    const headers = Object.fromEntries(Object.entries(e.headers ?? {}).map(([k, v]) => [k, typeof v === 'string' ? [v] : v]));
    endpoints.push({
      name: e.name,
      url: url.toString(),
      headers,
      timeoutMs,
      threshold: e.threshold ?? 10,
      backoffMs,
      ignoredMediaTypes: [...new Set([...(e.ignoredmediatypes ?? []), ...(e.ignore?.mediatypes ?? [])])],
      ignoredActions: [...new Set(e.ignore?.actions ?? [])],
    });
  }
  if (endpoints.length === 0) return {};
  return { notifications: { endpoints, outboxMaxEvents: n?.outbox?.maxevents ?? OUTBOX_MAX_EVENTS } };
}

function resolveRetention(retention: NonNullable<ConfigFile['retention']>): RetentionConfig {
  const policies = (retention.policies ?? []).map((p, i) => {
    for (const pattern of p.repositories) {
      try {
        compilePattern(pattern);
      } catch (err) {
        throw new ConfigError(`retention.policies[${i}].repositories: ${(err as Error).message}`);
      }
    }
    const policyText = typeof p.policy === 'string' ? p.policy : JSON.stringify(p.policy);
    try {
      parseLifecyclePolicy(policyText);
    } catch (err) {
      // ECR's wording without its API prefix ("Invalid parameter at 'LifecyclePolicyText'..."): no API call here.
      const reason = err instanceof LifecyclePolicyError ? err.reason : (err as Error).message;
      throw new ConfigError(`retention.policies[${i}].policy: ${reason}`);
    }
    return { repositories: p.repositories, policyText };
  });
  const intervalMs = parseDuration(retention.interval ?? '24h');
  if (intervalMs <= 0 || intervalMs > MAX_TIMER_MS) {
    throw new ConfigError('retention.interval must be greater than zero and at most 24 days');
  }
  return { policies, dryRun: retention.dryrun ?? false, intervalMs };
}

function resolveTls(tls: NonNullable<HttpFile['tls']>, cwd: string): TlsConfig {
  return {
    certificate: resolve(cwd, tls.certificate),
    key: resolve(cwd, tls.key),
    clientCas: (tls.clientcas ?? []).map((p) => resolve(cwd, p)),
    minimumTls: tls.minimumtls === 'tls1.3' ? 'TLSv1.3' : 'TLSv1.2',
  };
}

function resolveRateLimit(limit: NonNullable<HttpFile['ratelimit']>): RateLimitConfig {
  const burstOf = (rate: number, burst: number | undefined) => burst ?? Math.max(1, Math.ceil(rate));
  const methods: Record<string, { rate: number; burst: number }> = {};
  for (const m of limit.methods ?? []) {
    if (methods[m.method]) throw new ConfigError(`http.ratelimit.methods: ${m.method} is listed twice`);
    methods[m.method] = { rate: m.rate, burst: burstOf(m.rate, m.burst) };
  }
  return { rate: limit.rate, burst: burstOf(limit.rate, limit.burst), methods };
}

function resolveAuth(auth: NonNullable<ConfigFile['auth']>, cwd: string, root: string): AuthConfig {
  const server = auth.tokenserver?.enabled ? auth.tokenserver : undefined;
  if (server && auth.token) {
    throw new ConfigError('auth: enable the built-in token server (auth.tokenserver) or trust an external issuer (auth.token), not both');
  }
  if (auth.token && !auth.token.rootcertbundle && !auth.token.jwks) {
    throw new ConfigError('auth.token: set rootcertbundle or jwks (or both): without them no token can be verified');
  }
  if (!auth.htpasswd && !server && !auth.token) {
    throw new ConfigError('auth: configure htpasswd, tokenserver (enabled: true) or token; an empty auth section would let nobody in');
  }
  const algorithms = auth.token?.signingalgorithms;
  const refused = algorithms?.filter((a) => !ASYMMETRIC_ALGORITHMS.includes(a));
  if (refused && refused.length > 0) {
    throw new ConfigError(
      `auth.token.signingalgorithms: ${refused.join(', ')} not accepted; choose among ${ASYMMETRIC_ALGORITHMS.join(', ')} (never none or HMAC)`,
    );
  }
  if (algorithms && algorithms.length === 0) throw new ConfigError('auth.token.signingalgorithms: name at least one algorithm');
  const positiveDuration = (key: string, value: string) => {
    const ms = parseDuration(value);
    if (ms <= 0) throw new ConfigError(`${key} must be greater than zero`);
    return ms;
  };
  return {
    ...(auth.htpasswd
      ? { htpasswd: { realm: auth.htpasswd.realm ?? 'ocireg', path: resolve(cwd, auth.htpasswd.path) } }
      : {}),
    ...(server
      ? {
          tokenServer: {
            issuer: server.issuer ?? 'ocireg',
            service: server.service ?? 'ocireg',
            keyPath: server.key ? resolve(cwd, server.key) : join(root, 'token-key.pem'),
            expirationMs: positiveDuration('auth.tokenserver.expiration', server.expiration ?? '5m'),
            refreshExpirationMs: positiveDuration('auth.tokenserver.refreshexpiration', server.refreshexpiration ?? '720h'),
          },
        }
      : {}),
    ...(auth.token
      ? {
          token: {
            realm: auth.token.realm,
            service: auth.token.service,
            issuer: auth.token.issuer,
            ...(auth.token.rootcertbundle ? { rootCertBundle: resolve(cwd, auth.token.rootcertbundle) } : {}),
            ...(auth.token.jwks ? { jwks: resolve(cwd, auth.token.jwks) } : {}),
            signingAlgorithms: auth.token.signingalgorithms ?? ASYMMETRIC_ALGORITHMS,
          },
        }
      : {}),
  };
}

/** The longest delay a Node timer takes (2^31 - 1 ms, about 24.8 days). */
const MAX_TIMER_MS = 2 ** 31 - 1;

function resolveEcr(ecr: NonNullable<ConfigFile['ecr']>): EcrConfig {
  const credentials = (ecr.credentials ?? []).map((c) => ({ accessKeyId: c.accesskeyid, secretAccessKey: c.secretaccesskey, user: c.user }));
  if (credentials.length === 0) {
    throw new ConfigError('ecr.credentials: list at least one {accesskeyid, secretaccesskey, user}: every ECR request is signed by one');
  }
  const seen = new Set<string>();
  for (const c of credentials) {
    if (seen.has(c.accessKeyId)) throw new ConfigError(`ecr.credentials: access key id ${c.accessKeyId} is listed twice`);
    seen.add(c.accessKeyId);
  }
  const lifecycleIntervalMs = parseDuration(ecr.lifecycle?.interval ?? '24h');
  if (lifecycleIntervalMs <= 0 || lifecycleIntervalMs > MAX_TIMER_MS) {
    throw new ConfigError('ecr.lifecycle.interval must be greater than zero and at most 24 days (576h)');
  }
  return {
    accountId: ecr.accountid ?? '000000000000',
    region: ecr.region ?? 'us-east-1',
    createOnPush: ecr.createonpush ?? false,
    credentials,
    lifecycleIntervalMs,
  };
}

const DEFAULT_PROXY_TTL = '5m';
const DOCKER_HUB_HOSTS = new Set(['registry-1.docker.io', 'docker.io', 'index.docker.io', 'registry.hub.docker.com']);

function resolveProxy(proxy: NonNullable<ConfigFile['proxy']>): ProxyConfig {
  const ttl = (text: string | undefined, key: string): number => {
    const ms = parseDuration(text ?? proxy.ttl ?? DEFAULT_PROXY_TTL);
    if (ms > MAX_TIMER_MS) throw new ConfigError(`${key} must be at most 24 days (576h)`);
    return ms;
  };
  const rules: ProxyRuleConfig[] = [];
  if (proxy.remoteurl !== undefined) {
    rules.push({ prefix: '', upstream: resolveUpstream(proxy.remoteurl, proxy.username, proxy.password, 'proxy'), ttlMs: ttl(undefined, 'proxy.ttl') });
  } else if (proxy.username !== undefined || proxy.password !== undefined) {
    throw new ConfigError('proxy.username and proxy.password need proxy.remoteurl');
  }
  const seen = new Set<string>();
  for (const [i, rule] of (proxy.rules ?? []).entries()) {
    const key = `proxy.rules[${i}]`;
    const prefix = rule.prefix.replace(/\/+$/, '');
    if (!/^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$/.test(prefix)) {
      throw new ConfigError(`${key}.prefix: expected a repository name prefix such as "hub" or "mirrors/quay", not ${JSON.stringify(rule.prefix)}`);
    }
    if (seen.has(prefix)) throw new ConfigError(`${key}.prefix: ${JSON.stringify(prefix)} is the prefix of an earlier rule`);
    seen.add(prefix);
    rules.push({ prefix, upstream: resolveUpstream(rule.remoteurl, rule.username, rule.password, key), ttlMs: ttl(rule.ttl, `${key}.ttl`) });
  }
  rules.sort((a, b) => b.prefix.length - a.prefix.length);
  const allowedUpstreams = (proxy.allowedupstreams ?? ECR_UPSTREAMS).map((text, i) => upstreamPattern(text, `proxy.allowedupstreams[${i}]`));
  const credentials: Record<string, ProxyCredential> = {};
  for (const [name, c] of Object.entries(proxy.credentials ?? {})) {
    credentials[name] = {
      username: c.username,
      password: c.password,
      ...(c.upstreams ? { upstreams: c.upstreams.map((text, i) => upstreamPattern(text, `proxy.credentials.${name}.upstreams[${i}]`)) } : {}),
    };
  }
  for (const name of Object.keys(proxy.credentials ?? {})) {
    // The name a credentialArn ends with (ecr-pullthroughcache/<name>), in Secrets Manager's alphabet.
    if (!/^[a-zA-Z0-9/_+=.@-]{1,200}$/.test(name)) {
      throw new ConfigError(`proxy.credentials: ${JSON.stringify(name)} is not a secret name (1 to 200 letters, digits and /_+=.@-)`);
    }
  }
  const timeoutMs = parseDuration(proxy.timeout ?? '30s');
  if (timeoutMs < 100 || timeoutMs > 3_600_000) throw new ConfigError('proxy.timeout must be at least 100ms and at most 1h');
  return {
    rules,
    credentials,
    allowedUpstreams,
    ttlMs: ttl(undefined, 'proxy.ttl'),
    timeoutMs,
  };
}

function resolveUpstream(text: string, username: string | undefined, password: string | undefined, key: string): UpstreamConfig {
  if ((username === undefined) !== (password === undefined)) throw new ConfigError(`${key}: give both username and password, or neither`);
  let url = upstreamUrl(text, `${key}.remoteurl`);
  const host = new URL(url).hostname;
  const dockerHub = DOCKER_HUB_HOSTS.has(host);
  // docker.io and index.docker.io name Docker Hub; its registry API answers at registry-1.docker.io.
  if (dockerHub) url = 'https://registry-1.docker.io';
  return { url, dockerHub, ...(username !== undefined ? { username, password: password! } : {}) };
}

/** An upstream pattern: `scheme://host[:port]`, the host possibly starting with `*.` (any subdomain). */
function upstreamPattern(text: string, key: string): string {
  const wildcard = /^(https?:\/\/)\*\./.exec(text);
  const url = upstreamUrl(wildcard ? text.replace('*.', 'wildcard.') : text, key);
  return wildcard ? url.replace('//wildcard.', '//*.') : url;
}

/** Whether an upstream's URL (`scheme://host[:port]`) matches a pattern of proxy.allowedupstreams (a `*.` host: a strict subdomain). */
export function upstreamMatches(entry: string, url: string): boolean {
  const e = /^(https?):\/\/(\*\.)?(\[[0-9a-f:.]+\]|[^/:[\]]+)(?::(\d+))?$/i.exec(entry);
  if (!e) return false;
  const u = new URL(url);
  if (u.protocol !== `${e[1]!.toLowerCase()}:` || u.port !== (e[4] ?? '')) return false;
  const host = u.hostname;
  const domain = e[3]!.toLowerCase();
  return e[2] ? host.endsWith(`.${domain}`) && host.length > domain.length + 1 : host === domain;
}

/** An upstream's base URL, `scheme://host[:port]` (no path, credentials, query or fragment). */
export function upstreamUrl(text: string, key: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new ConfigError(`${key}: expected a URL such as https://registry-1.docker.io, not ${JSON.stringify(text)}`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new ConfigError(`${key}: expected an http or https URL`);
  if (url.username !== '' || url.password !== '') throw new ConfigError(`${key}: put credentials in username and password, not in the URL`);
  if ((url.pathname !== '/' && url.pathname !== '') || url.search !== '' || url.hash !== '') {
    throw new ConfigError(`${key}: expected the registry's base URL, without a path, query or fragment (the API is under /v2/)`);
  }
  return url.origin;
}

/** The JWS algorithms a token may be signed with: public-key ones only. */
export const ASYMMETRIC_ALGORITHMS: readonly string[] = ['ES256', 'ES384', 'ES512', 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'EdDSA'];

type S3File = NonNullable<NonNullable<ConfigFile['storage']>['s3']>;

function resolveS3(s3: S3File, env: NodeJS.ProcessEnv): S3Config {
  // An empty string means unset, as it does for distribution (and for REGISTRY_* variables).
  const given = (v: string | undefined): string | undefined => (v === undefined || v === '' ? undefined : v);
  const regionEndpoint = given(s3.regionendpoint);
  const endpoint = regionEndpoint === undefined ? undefined : endpointUrl(regionEndpoint, s3.secure ?? true);
  const region = given(s3.region) ?? given(env.AWS_REGION) ?? given(env.AWS_DEFAULT_REGION) ?? (endpoint ? 'us-east-1' : undefined);
  if (region === undefined) {
    throw new ConfigError('storage.s3.region is required (or AWS_REGION) unless storage.s3.regionendpoint is set');
  }
  const accessKey = given(s3.accesskey);
  const secretKey = given(s3.secretkey);
  if ((accessKey === undefined) !== (secretKey === undefined)) {
    throw new ConfigError('storage.s3: set both accesskey and secretkey, or neither to use the default AWS credential chain');
  }
  return {
    region,
    bucket: s3.bucket,
    ...(endpoint ? { endpoint } : {}),
    ...(accessKey !== undefined ? { accessKey, secretKey: secretKey! } : {}),
    forcePathStyle: s3.forcepathstyle ?? false,
    rootDirectory: keyPrefix(s3.rootdirectory ?? ''),
    chunkSize: s3.chunksize ?? S3_DEFAULT_CHUNK_SIZE,
  };
}

/** regionendpoint as a URL: a bare host[:port] gets https://, or http:// when `secure` is false. */
function endpointUrl(value: string, secure: boolean): string {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(value) ? value : `${secure ? 'https' : 'http'}://${value}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new ConfigError(`storage.s3.regionendpoint: expected a URL or host[:port], got ${JSON.stringify(value)}`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new ConfigError(`storage.s3.regionendpoint: expected an http or https URL, got ${JSON.stringify(value)}`);
  }
  return withScheme.replace(/\/+$/, '');
}

/** storage.s3.rootdirectory as a key prefix: '' or 'a/b'. */
function keyPrefix(value: string): string {
  const prefix = value.replace(/^\/+|\/+$/g, '');
  if (prefix !== '' && prefix.split('/').some((segment) => segment === '' || segment === '.' || segment === '..')) {
    throw new ConfigError(
      `storage.s3.rootdirectory: expected a path such as /registry, without empty, "." or ".." segments, got ${JSON.stringify(value)}`,
    );
  }
  return prefix;
}

function resolveDebug(debug: NonNullable<NonNullable<ConfigFile['http']>['debug']>, publicPort: number): { debug?: DebugConfig } {
  const prometheus = debug.prometheus?.enabled
    ? { path: debug.prometheus.path ?? '/metrics', repositoryLabels: debug.prometheus.repositorylabels ?? false }
    : undefined;
  if (debug.addr === undefined || debug.addr === '') {
    if (prometheus) throw new ConfigError('http.debug.prometheus.enabled: metrics are served on the debug server; set http.debug.addr too');
    return {};
  }
  const { host, port } = parseAddr(debug.addr, 'http.debug.addr');
  if (port !== 0 && port === publicPort) throw new ConfigError(`http.debug.addr: port ${port} is the public port (http.addr)`);
  return { debug: { host, port, ...(prometheus ? { prometheus } : {}) } };
}

/** Parses distribution-style `host:port`, `:port` or `[v6]:port`. */
export function parseAddr(addr: string, key = 'http.addr'): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(addr.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new ConfigError(`${key}: expected host:port or :port, got ${JSON.stringify(addr)}`);
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}

function applyEnv(raw: Record<string, unknown>, env: NodeJS.ProcessEnv): void {
  for (const [key, type] of Object.entries(ENV_KEYS)) {
    const name = `REGISTRY_${key.replace(/\./g, '_').toUpperCase()}`;
    const value = env[name];
    if (value === undefined || value === '') continue;
    let typed: unknown = value;
    if (type === 'boolean') {
      if (!/^(true|false)$/i.test(value)) throw new ConfigError(`${name}: expected true or false, got ${JSON.stringify(value)}`);
      typed = value.toLowerCase() === 'true';
    } else if (type === 'list') {
      typed = value.split(',').map((v) => v.trim()).filter((v) => v !== '');
    } else if (type === 'number') {
      typed = Number(value);
      if (!Number.isFinite(typed)) throw new ConfigError(`${name}: expected a number, got ${JSON.stringify(value)}`);
    }
    setPath(raw, key, typed);
  }
  selectStorageDriver(raw, env);
}

const STORAGE_DRIVERS = ['filesystem', 's3'] as const;

/**
 * distribution's REGISTRY_STORAGE: the named driver's section is kept (created empty if absent) and the
 * other driver's section is dropped, so a file configured for one driver can be run with the other.
 */
function selectStorageDriver(raw: Record<string, unknown>, env: NodeJS.ProcessEnv): void {
  const value = env.REGISTRY_STORAGE;
  if (value === undefined || value === '') return;
  const driver = STORAGE_DRIVERS.find((d) => d === value.toLowerCase());
  if (!driver) {
    throw new ConfigError(`REGISTRY_STORAGE: expected ${STORAGE_DRIVERS.join(' or ')}, got ${JSON.stringify(value)}`);
  }
  if (getPath(raw, `storage.${driver}`) === undefined) setPath(raw, `storage.${driver}`, {});
  const storage = raw.storage as Record<string, unknown>;
  for (const other of STORAGE_DRIVERS) if (other !== driver) delete storage[other];
}

function getPath(obj: unknown, key: string): unknown {
  let cur: unknown = obj;
  for (const part of key.split('.')) {
    if (typeof cur !== 'object' || cur === null) return undefined;
    cur = (cur as Record<string, unknown>)[part];
  }
  return cur;
}

function setPath(obj: Record<string, unknown>, key: string, value: unknown): void {
  const parts = key.split('.');
  let cur = obj;
  for (const part of parts.slice(0, -1)) {
    const next = cur[part];
    if (typeof next !== 'object' || next === null || Array.isArray(next)) cur[part] = {};
    cur = cur[part] as Record<string, unknown>;
  }
  cur[parts[parts.length - 1]!] = value;
}

function deepMerge(target: Record<string, unknown>, source: Record<string, unknown>): void {
  for (const [k, v] of Object.entries(source)) {
    if (v && typeof v === 'object' && !Array.isArray(v) && typeof target[k] === 'object' && target[k] !== null) {
      deepMerge(target[k] as Record<string, unknown>, v as Record<string, unknown>);
    } else {
      target[k] = v;
    }
  }
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

/** A copy of the configuration that is safe to log. */
export function redact(config: Config): unknown {
  const s3 = config.storage.s3;
  return {
    ...config,
    http: {
      ...config.http,
      tls: config.http.tls ? { certificate: config.http.tls.certificate, key: '[redacted]' } : undefined,
      secret: config.http.secret === undefined ? undefined : '[redacted]',
    },
    storage: {
      ...config.storage,
      s3: s3
        ? {
            ...s3,
            accessKey: s3.accessKey === undefined ? undefined : '[redacted]',
            secretKey: s3.secretKey === undefined ? undefined : '[redacted]',
          }
        : undefined,
    },
    index: config.index.postgres
      ? {
          ...config.index,
          postgres: {
            ...config.index.postgres,
            url: config.index.postgres.url === undefined ? undefined : redactUrl(config.index.postgres.url),
            password: config.index.postgres.password === undefined ? undefined : '[redacted]',
          },
        }
      : config.index,
    // An endpoint's headers (Authorization, ...) and the user information or query of its URL may be secrets.
    notifications: config.notifications
      ? {
          ...config.notifications,
          endpoints: config.notifications.endpoints.map((e) => ({
            ...e,
            url: redactEndpointUrl(e.url),
            headers: Object.fromEntries(Object.keys(e.headers).map((k) => [k, ['[redacted]']])),
          })),
        }
      : undefined,
    ecr: config.ecr
      ? { ...config.ecr, credentials: config.ecr.credentials.map((c) => ({ ...c, secretAccessKey: '[redacted]' })) }
      : undefined,
    proxy: config.proxy
      ? {
          ...config.proxy,
          rules: config.proxy.rules.map((r) => ({
            ...r,
            upstream: { ...r.upstream, ...(r.upstream.password !== undefined ? { password: '[redacted]' } : {}) },
          })),
          credentials: Object.fromEntries(Object.entries(config.proxy.credentials).map(([name, c]) => [name, { ...c, password: '[redacted]' }])),
        }
      : undefined,
  };
}

/** A connection URL without its password. */
function redactEndpointUrl(text: string): string {
  try {
    const url = new URL(text);
    if (url.username !== '' || url.password !== '') url.username = url.password = 'redacted';
    if (url.search !== '') url.search = '?redacted';
    return url.toString();
  } catch {
    return '[redacted]';
  }
}

export function redactUrl(text: string): string {
  try {
    const url = new URL(text);
    if (url.password !== '') url.password = 'redacted';
    for (const key of [...url.searchParams.keys()]) if (/pass/i.test(key)) url.searchParams.set(key, 'redacted');
    return url.toString();
  } catch {
    return '[redacted]';
  }
}
