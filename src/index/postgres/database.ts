import { IndexTextError } from '../contract.js';
import { userInfo } from 'node:os';
import type { ConnectionOptions } from 'node:tls';
import pg from 'pg';
import { MIGRATIONS, type Migration } from './migrations/index.js';

export type SslMode = 'disable' | 'prefer' | 'require' | 'verify-ca' | 'verify-full';
const SSL_MODES: readonly SslMode[] = ['disable', 'prefer', 'require', 'verify-ca', 'verify-full'];

export interface PostgresIndexOptions {
  /** postgres://user:pass@host:port/db?sslmode=... (the options below win over its parts). */
  url?: string;
  host?: string;
  port?: number;
  database?: string;
  user?: string;
  password?: string;
  sslmode?: SslMode;
  /** The most connections of the pool (default 10); the locks use one more. */
  poolSize?: number;
}

/** Where and how to connect, with every default filled in. */
export interface Target {
  host: string;
  port: number;
  database: string;
  user: string;
  password: string | undefined;
  sslmode: SslMode;
  poolSize: number;
}

/** Resolves the options (the URL's parts, then PostgreSQL's usual PG* variables, then libpq's defaults). */
export function resolveTarget(options: PostgresIndexOptions): Target {
  const fromUrl = options.url ? parseUrl(options.url) : {};
  const env = process.env;
  const user = options.user ?? fromUrl.user ?? env.PGUSER ?? userInfo().username;
  const envPort = env.PGPORT ? Number(env.PGPORT) : undefined;
  const port = options.port ?? fromUrl.port ?? envPort ?? 5432;
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`invalid PostgreSQL port: ${String(port)}`);
  const sslmode = options.sslmode ?? fromUrl.sslmode ?? envSslMode() ?? 'prefer';
  if (!SSL_MODES.includes(sslmode)) throw new Error(`invalid sslmode ${String(sslmode)}: expected one of ${SSL_MODES.join(', ')}`);
  const poolSize = options.poolSize ?? 10;
  if (!Number.isInteger(poolSize) || poolSize < 1) throw new Error(`invalid PostgreSQL pool size: ${String(poolSize)}`);
  return {
    host: options.host ?? fromUrl.host ?? env.PGHOST ?? 'localhost',
    port,
    database: options.database ?? fromUrl.database ?? env.PGDATABASE ?? user,
    user,
    // Undefined lets pg look for PGPASSWORD and ~/.pgpass itself.
    password: options.password ?? fromUrl.password,
    sslmode,
    poolSize,
  };
}

/** How a target is named in logs and errors: never with its password. */
export function describeTarget(t: Target): string {
  const host = t.host.includes(':') ? `[${t.host}]` : t.host;
  return `postgres://${t.user}@${host}:${t.port}/${t.database}`;
}

function envSslMode(): SslMode | undefined {
  const mode = process.env.PGSSLMODE;
  return SSL_MODES.includes(mode as SslMode) ? (mode as SslMode) : undefined;
}

function parseUrl(url: string): Partial<Omit<Target, 'poolSize'>> {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    // The URL itself is not repeated: it may hold the password.
    throw new Error('invalid PostgreSQL URL: expected postgres://user:password@host:port/database');
  }
  if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') {
    throw new Error(`invalid PostgreSQL URL: the scheme must be postgres:// or postgresql://, not ${u.protocol}//`);
  }
  const out: Partial<Omit<Target, 'poolSize'>> = {};
  const host = u.hostname.replace(/^\[(.*)\]$/, '$1');
  if (host) out.host = decodeURIComponent(host);
  if (u.port) out.port = Number(u.port);
  if (u.username) out.user = decodeURIComponent(u.username);
  if (u.password) out.password = decodeURIComponent(u.password);
  const database = decodeURIComponent(u.pathname.replace(/^\//, ''));
  if (database) out.database = database;
  const sslmode = u.searchParams.get('sslmode');
  if (sslmode !== null) {
    if (!SSL_MODES.includes(sslmode as SslMode)) {
      throw new Error(`invalid sslmode ${sslmode} in the PostgreSQL URL: expected one of ${SSL_MODES.join(', ')}`);
    }
    out.sslmode = sslmode as SslMode;
  }
  return out;
}

/** pg's ssl setting for a mode ('prefer' tries TLS first: see openTarget's fallback). */
export function sslOption(mode: SslMode): false | ConnectionOptions {
  switch (mode) {
    case 'disable':
      return false;
    case 'prefer':
    case 'require':
      return { rejectUnauthorized: false };
    case 'verify-ca':
      // The chain is checked, the host name is not.
      return { rejectUnauthorized: true, checkServerIdentity: () => undefined };
    case 'verify-full':
      return { rejectUnauthorized: true };
  }
}

/** BIGINT columns (times in ms, sizes) as numbers, for this index's connections only. */
function int8AsNumber(): pg.CustomTypesConfig {
  const types = new pg.TypeOverrides();
  types.setTypeParser(pg.types.builtins.INT8, (value: string) => Number(value));
  return types;
}

/** The longest any query of the index may take (statement_timeout, and the client's own bound). */
const QUERY_TIMEOUT_MS = 60_000;
/** How long a new connection may take, and how long a query may wait for a pooled one. */
const CONNECT_TIMEOUT_MS = 10_000;
const POOL_WAIT_MS = 30_000;

export function clientConfig(t: Target, ssl: false | ConnectionOptions): pg.ClientConfig {
  return {
    host: t.host,
    port: t.port,
    database: t.database,
    user: t.user,
    password: t.password,
    ssl,
    types: int8AsNumber(),
    keepAlive: true,
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    // Every query is bounded: a stuck one would otherwise hold its caller (and any lock it holds) forever.
    query_timeout: QUERY_TIMEOUT_MS,
    statement_timeout: QUERY_TIMEOUT_MS,
    application_name: 'ocireg',
  };
}

export function poolConfig(t: Target, ssl: false | ConnectionOptions): pg.PoolConfig {
  return { ...clientConfig(t, ssl), connectionTimeoutMillis: POOL_WAIT_MS, max: t.poolSize };
}

/** The text of an error, whatever its shape (a refused connection may be an AggregateError without a message). */
export function reasonOf(err: unknown): string {
  if (err instanceof AggregateError && err.errors.length > 0) return reasonOf(err.errors[0]);
  if (err instanceof Error) return err.message || (err as NodeJS.ErrnoException).code || err.name;
  return String(err);
}

// ---- queries ----

type Params = readonly unknown[];

/** The few ways the parts query: on the pool, or on the client of a transaction. */
export class Querier {
  constructor(protected readonly on: pg.Pool | pg.PoolClient) {}

  async rows<R extends pg.QueryResultRow>(sql: string, params: Params = []): Promise<R[]> {
    return (await this.on.query<R>(sql, checked(params))).rows;
  }

  async one<R extends pg.QueryResultRow>(sql: string, params: Params = []): Promise<R | undefined> {
    return (await this.on.query<R>(sql, checked(params))).rows[0];
  }

  /** Runs a statement and returns how many rows it changed. */
  async run(sql: string, params: Params = []): Promise<number> {
    return (await this.on.query(sql, checked(params))).rowCount ?? 0;
  }
}

/**
 * The parameters, once none is a text PostgreSQL refuses (a NUL character): such a value comes
 * from a client, never from what the registry holds, and gets IndexTextError (a 400) rather than
 * the database's error (a 500).
 */
function checked(params: Params): unknown[] {
  for (const p of params) {
    if (typeof p === 'string' && p.includes('\u0000')) throw new IndexTextError();
    if (Array.isArray(p) && p.some((v) => typeof v === 'string' && v.includes('\u0000'))) throw new IndexTextError();
  }
  return params as unknown[];
}

/** Thrown inside a transaction to roll it back and have `tx` return `value`. */
export class Rollback<T> {
  constructor(readonly value: T) {}
}

/** Errors after which the whole transaction is run again: serialization failure and deadlock. */
const RETRIED = new Set(['40001', '40P01']);
const ATTEMPTS = 5;

export class PgDb extends Querier {
  constructor(readonly pool: pg.Pool) {
    super(pool);
  }

  /**
   * Runs `fn` in one transaction on one client of the pool, committed if it returns, rolled back
   * if it throws (a Rollback gives its value back). A serialization failure or a deadlock
   * (or one of `alsoRetry`) runs it again, at most ATTEMPTS times in all.
   */
  async tx<T>(fn: (q: Querier) => Promise<T>, alsoRetry: readonly string[] = []): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.once(fn);
      } catch (err) {
        const code = (err as { code?: unknown }).code;
        const retried = typeof code === 'string' && (RETRIED.has(code) || alsoRetry.includes(code));
        if (!retried || attempt >= ATTEMPTS) throw err;
        // A short random pause, so that the transactions that collided do not collide again.
        await new Promise((resolve) => setTimeout(resolve, Math.random() * 10 * attempt));
      }
    }
  }

  private async once<T>(fn: (q: Querier) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    let broken: Error | undefined;
    try {
      await client.query('BEGIN');
      try {
        const value = await fn(new Querier(client));
        await client.query('COMMIT');
        return value;
      } catch (err) {
        try {
          await client.query('ROLLBACK');
        } catch (rollbackErr) {
          // A client that cannot even roll back is dropped rather than given back to the pool.
          broken = rollbackErr instanceof Error ? rollbackErr : new Error(String(rollbackErr));
        }
        if (err instanceof Rollback) return err.value as T;
        throw err;
      }
    } finally {
      client.release(broken);
    }
  }
}

// ---- migrations ----

/** The key of the transaction lock that migrations hold (the two-key form: no named lock can collide). */
const MIGRATION_LOCK = [0x6f636972, 1] as const;

/**
 * Applies the pending migrations in one transaction holding an advisory lock, so that nodes
 * starting at once migrate one after the other (the later ones find nothing to do). Refuses a
 * schema newer than this registry's.
 */
export async function migrate(client: pg.ClientBase, migrations: readonly Migration[] = MIGRATIONS): Promise<void> {
  await client.query('BEGIN');
  try {
    // Bounded like every query (statement_timeout): a node stuck while migrating does not hold the others forever.
    await client.query('SELECT pg_advisory_xact_lock($1, $2)', [...MIGRATION_LOCK]);
    await client.query(
      'CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at bigint NOT NULL)',
    );
    const applied = new Set(
      (await client.query<{ version: number }>('SELECT version FROM schema_migrations')).rows.map((r) => r.version),
    );
    const newest = Math.max(0, ...applied);
    const known = Math.max(0, ...migrations.map((m) => m.version));
    if (newest > known) {
      throw new Error(`the index at schema version ${newest} is newer than this registry (${known}); upgrade the registry`);
    }
    for (const m of [...migrations].sort((a, b) => a.version - b.version)) {
      if (applied.has(m.version)) continue;
      try {
        await client.query(m.sql);
      } catch (err) {
        throw new Error(`migration ${m.version} (${m.name}) of the index failed: ${reasonOf(err)}`);
      }
      await client.query('INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)', [m.version, m.name, Date.now()]);
    }
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

/** A limit as SQLite takes it: a negative one means none (PostgreSQL's LIMIT NULL). */
export function limitOf(limit: number): number | null {
  return limit < 0 || !Number.isFinite(limit) ? null : Math.floor(limit);
}
