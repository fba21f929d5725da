import pg from 'pg';
import type { Index } from '../contract.js';
import { PostgresAccessKeyIndex } from './access-keys.js';
import {
  clientConfig,
  describeTarget,
  migrate,
  PgDb,
  poolConfig,
  reasonOf,
  resolveTarget,
  sslOption,
  type PostgresIndexOptions,
  type Target,
} from './database.js';
import { PostgresEcrIndex } from './ecr.js';
import { PostgresGcIndex } from './gc.js';
import { PostgresOutboxIndex } from './outbox.js';
import { PostgresImageIndex } from './images.js';
import { PostgresLocks } from './locks.js';
import { PostgresLifecyclePreviewIndex } from './previews.js';
import { PostgresPullTimeIndex } from './pull-times.js';
import { PostgresRegistryIndex } from './registry.js';

export type { PostgresIndexOptions, SslMode } from './database.js';

/** The index in a PostgreSQL database (`pg`, pooled): what several registry nodes share. */
export class PostgresIndex implements Index {
  readonly driver = 'postgres' as const;
  readonly registry: PostgresRegistryIndex;
  readonly accessKeys: PostgresAccessKeyIndex;
  readonly ecr: PostgresEcrIndex;
  readonly images: PostgresImageIndex;
  readonly pullTimes: PostgresPullTimeIndex;
  readonly previews: PostgresLifecyclePreviewIndex;
  readonly gc: PostgresGcIndex;
  readonly outbox: PostgresOutboxIndex;
  private closing: Promise<void> | undefined;

  constructor(
    readonly pool: pg.Pool,
    readonly locks: PostgresLocks,
    /** postgres://user@host:port/database: never the password. */
    readonly where: string,
  ) {
    const db = new PgDb(pool);
    this.registry = new PostgresRegistryIndex(db);
    this.accessKeys = new PostgresAccessKeyIndex(db);
    this.ecr = new PostgresEcrIndex(db);
    this.images = new PostgresImageIndex(db);
    this.pullTimes = new PostgresPullTimeIndex(db);
    this.previews = new PostgresLifecyclePreviewIndex(db);
    this.gc = new PostgresGcIndex(db);
    this.outbox = new PostgresOutboxIndex(db);
  }

  /** Ends the pool and the lock connection (releasing this node's locks). */
  async close(): Promise<void> {
    this.closing ??= Promise.all([this.locks.close(), this.pool.end()]).then(() => undefined);
    return this.closing;
  }
}

/**
 * Connects, checks and migrates the schema (refusing one newer than this registry's), and opens
 * the pool. Fails with one clear line, without the password, when the database cannot be reached.
 */
export async function openPostgresIndex(options: PostgresIndexOptions): Promise<PostgresIndex> {
  const target = resolveTarget(options);
  const where = describeTarget(target);
  const ssl = await connectAndMigrate(target, where);
  const pool = new pg.Pool(poolConfig(target, ssl));
  // An idle client whose connection breaks is dropped by the pool; without a listener the
  // error would end the process.
  pool.on('error', () => undefined);
  return new PostgresIndex(pool, new PostgresLocks(clientConfig(target, ssl)), where);
}

/** Migrates on a connection of its own; returns the ssl setting that worked ('prefer' may fall back to none). */
async function connectAndMigrate(target: Target, where: string): Promise<ReturnType<typeof sslOption>> {
  let ssl = sslOption(target.sslmode);
  let client = new pg.Client(clientConfig(target, ssl));
  client.on('error', () => undefined); // a failure is reported by the awaited calls below
  try {
    try {
      await client.connect();
    } catch (err) {
      // 'prefer' as libpq has it: TLS when the server offers it, a plain connection otherwise.
      if (target.sslmode !== 'prefer' || !/does not support SSL/i.test(reasonOf(err))) throw err;
      await client.end().catch(() => undefined);
      ssl = false;
      client = new pg.Client(clientConfig(target, ssl));
      client.on('error', () => undefined);
      await client.connect();
    }
  } catch (err) {
    await client.end().catch(() => undefined);
    throw new Error(`cannot connect to PostgreSQL at ${where.replace(/^postgres:\/\//, '')}: ${withoutPassword(reasonOf(err), target)}`);
  }
  try {
    await migrate(client);
  } finally {
    await client.end().catch(() => undefined);
  }
  return ssl;
}

/** An error's text with the password blotted out, should a driver ever repeat it. */
function withoutPassword(text: string, target: Target): string {
  const password = target.password;
  if (!password) return text;
  return text.split(password).join('***').split(encodeURIComponent(password)).join('***');
}
