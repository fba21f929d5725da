import { createHash } from 'node:crypto';
import pg from 'pg';
import { LockTimeoutError, type IndexLocks } from '../contract.js';
import { DEFAULT_LOCK_WAIT_MS, LocalLocks } from '../local-locks.js';

/** The advisory lock key of a name: the first 8 bytes of its SHA-256, as a signed bigint (in text). */
export function lockKey(name: string): string {
  return createHash('sha256').update(name, 'utf8').digest().readBigInt64BE(0).toString();
}

/** How long one lock query may take before the session is given up as broken. */
const QUERY_TIMEOUT_MS = 30_000;
const FIRST_POLL_MS = 10;
const LAST_POLL_MS = 200;

/** The one connection that holds this node's session locks. */
interface Session {
  readonly client: pg.Client;
  /** Rejects when the connection breaks: what pending attempts race against. */
  readonly broken: Promise<never>;
  /** Aborts when the connection breaks: the holders of its locks are told they lost them. */
  readonly lost: AbortSignal;
  isBroken: boolean;
  /** The last query sent: the next waits for it (pg wants one query at a time per client). */
  tail: Promise<unknown>;
  break(reason: string): void;
}

/**
 * Locks across every node sharing the database. A name is first taken within this process
 * (LocalLocks), so that a node asks the database once per name; then as a session-level
 * advisory lock on one dedicated connection, outside the pool: the pool's clients are shared and
 * short-lived, and a session lock lives as long as its session. A node that dies loses that
 * connection and with it its locks, which is how another node takes over.
 */
export class PostgresLocks implements IndexLocks {
  private readonly local = new LocalLocks();
  private session: Session | undefined;
  private opening: Promise<Session> | undefined;
  private closed = false;

  constructor(private readonly config: pg.ClientConfig) {}

  async run<T>(name: string, fn: (lost: AbortSignal) => Promise<T>, waitMs = DEFAULT_LOCK_WAIT_MS): Promise<T> {
    const deadline = Date.now() + waitMs;
    return this.local.run(
      name,
      async () => {
        const key = lockKey(name);
        const session = await this.acquire(name, key, deadline, waitMs);
        try {
          return await fn(session.lost);
        } finally {
          await this.release(session, key);
        }
      },
      waitMs,
    );
  }

  async tryRun<T>(name: string, fn: (lost: AbortSignal) => Promise<T>): Promise<{ ran: true; value: T } | { ran: false }> {
    const outcome = await this.local.tryRun(name, async (): Promise<{ got: true; value: T } | { got: false }> => {
      const key = lockKey(name);
      const session = await this.connected();
      if (!(await this.tryLock(session, key))) return { got: false };
      try {
        return { got: true, value: await fn(session.lost) };
      } finally {
        await this.release(session, key);
      }
    });
    return outcome.ran && outcome.value.got ? { ran: true, value: outcome.value.value } : { ran: false };
  }

  /** Ends the lock connection: its locks are released, pending attempts fail. */
  async close(): Promise<void> {
    this.closed = true;
    const session = this.session ?? (await this.opening?.catch(() => undefined));
    this.session = undefined;
    if (!session) return;
    session.break('the index was closed');
    await session.client.end().catch(() => undefined);
  }

  // ---- the cluster stage ----

  /** Polls for the lock, backing off from 10 to 200 ms, until the deadline. */
  private async acquire(name: string, key: string, deadline: number, waitMs: number): Promise<Session> {
    let pause = FIRST_POLL_MS;
    // Bounded by the deadline: every turn either returns, throws, or sleeps towards it.
    for (;;) {
      const session = await this.connected();
      if (await this.tryLock(session, key)) return session;
      const left = deadline - Date.now();
      if (left <= 0) throw new LockTimeoutError(name, waitMs);
      await Promise.race([sleep(Math.min(pause, left)), session.broken]);
      pause = Math.min(pause * 2, LAST_POLL_MS);
    }
  }

  private async tryLock(session: Session, key: string): Promise<boolean> {
    const row = await this.ask<{ locked: boolean }>(session, 'SELECT pg_try_advisory_lock($1::bigint) AS locked', key);
    return row?.locked === true;
  }

  /**
   * Gives the lock back. A session that broke has lost its locks already; one that cannot
   * unlock is ended, since a lock it keeps would otherwise stay held as long as the node runs.
   */
  private async release(session: Session, key: string): Promise<void> {
    if (session.isBroken) return;
    try {
      await this.ask(session, 'SELECT pg_advisory_unlock($1::bigint)', key);
    } catch {
      // ask() has already given the session up.
    }
  }

  /** One query on the lock connection; any failure breaks the session (a lock query cannot fail otherwise). */
  private async ask<R extends pg.QueryResultRow>(session: Session, sql: string, key: string): Promise<R | undefined> {
    const query = session.tail.then(() => session.client.query<R>(sql, [key]));
    session.tail = query.catch(() => undefined); // its failure is reported through the race below
    try {
      return (await Promise.race([query, session.broken])).rows[0];
    } catch (err) {
      session.break(`the lock connection to PostgreSQL failed: ${err instanceof Error ? err.message : String(err)}`);
      throw err;
    }
  }

  /** The lock connection, opened (again) if there is none or it broke. */
  private async connected(): Promise<Session> {
    if (this.closed) throw new Error('the PostgreSQL index is closed');
    if (this.session && !this.session.isBroken) return this.session;
    this.opening ??= this.open().finally(() => {
      this.opening = undefined;
    });
    return this.opening;
  }

  private async open(): Promise<Session> {
    const client = new pg.Client({ ...this.config, query_timeout: QUERY_TIMEOUT_MS });
    let reject!: (err: Error) => void;
    const broken = new Promise<never>((_, r) => {
      reject = r;
    });
    broken.catch(() => undefined); // nobody may be waiting when it breaks
    const lost = new AbortController();
    const session: Session = {
      client,
      broken,
      lost: lost.signal,
      isBroken: false,
      tail: Promise.resolve(),
      break: (reason) => {
        if (session.isBroken) return;
        session.isBroken = true;
        if (this.session === session) this.session = undefined;
        reject(new Error(reason));
        lost.abort(new Error(reason));
        // A session given up must really end, or the server would keep its locks.
        client.end().catch(() => undefined);
      },
    };
    client.on('error', (err) => session.break(`the lock connection to PostgreSQL broke: ${err.message}`));
    client.on('end', () => session.break('the lock connection to PostgreSQL ended'));
    try {
      await client.connect();
    } catch (err) {
      session.break('the lock connection to PostgreSQL could not be opened');
      throw err;
    }
    if (this.closed) {
      session.break('the index was closed');
      throw new Error('the PostgreSQL index is closed');
    }
    this.session = session;
    return session;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
