import type { OutboxIndex, OutboxRow } from '../contract.js';
import { limitOf, type PgDb, type Querier } from './database.js';

/**
 * The transaction lock every writer of the outbox takes just before it inserts (the two-key form:
 * no named lock can collide). Held until commit, it makes the sequence's numbers follow commit
 * order, so that a reader that has seen number n will never later find an event below n. Writers
 * take it last, after their row locks, so it adds no lock cycle; they hold it only for the insert
 * and the commit.
 */
const OUTBOX_LOCK = [0x6f636972, 5] as const;

/** Writes events into the outbox inside the transaction of `q`. */
export async function writeOutbox(q: Querier, events: readonly string[] | undefined, now: number): Promise<void> {
  if (!events || events.length === 0) return;
  await q.run('SELECT pg_advisory_xact_lock($1, $2)', [...OUTBOX_LOCK]);
  await q.run('INSERT INTO notification_outbox (created_at, event) SELECT $1, e FROM unnest($2::text[]) WITH ORDINALITY AS u(e, n) ORDER BY n', [
    now,
    [...events],
  ]);
}

export class PostgresOutboxIndex implements OutboxIndex {
  constructor(private readonly db: PgDb) {}

  async append(events: readonly string[], now = Date.now()): Promise<void> {
    if (events.length === 0) return;
    await this.db.tx((q) => writeOutbox(q, events, now));
  }

  async after(seq: number, limit: number): Promise<OutboxRow[]> {
    return this.db.rows<OutboxRow>('SELECT seq, event FROM notification_outbox WHERE seq > $1 ORDER BY seq LIMIT $2', [seq, limitOf(limit)]);
  }

  async stats(): Promise<{ last: number; count: number }> {
    const row = await this.db.one<{ last: number | null; count: number }>('SELECT max(seq) AS last, count(*) AS count FROM notification_outbox');
    return { last: row?.last ?? 0, count: row?.count ?? 0 };
  }

  async countBetween(after: number, through: number): Promise<number> {
    const row = await this.db.one<{ n: number }>('SELECT count(*) AS n FROM notification_outbox WHERE seq > $1 AND seq <= $2', [after, through]);
    return row?.n ?? 0;
  }

  async nthNewest(n: number): Promise<number | undefined> {
    if (n < 1) return undefined;
    const row = await this.db.one<{ seq: number }>('SELECT seq FROM notification_outbox ORDER BY seq DESC LIMIT 1 OFFSET $1', [n - 1]);
    return row?.seq;
  }

  async deleteThrough(seq: number): Promise<number> {
    return this.db.run('DELETE FROM notification_outbox WHERE seq <= $1', [seq]);
  }

  async cursors(): Promise<Map<string, number>> {
    const rows = await this.db.rows<{ endpoint: string; seq: number }>('SELECT endpoint, seq FROM notification_cursors');
    return new Map(rows.map((r) => [r.endpoint, r.seq]));
  }

  async setCursor(endpoint: string, seq: number, now = Date.now()): Promise<void> {
    await this.db.run(
      `INSERT INTO notification_cursors (endpoint, seq, updated_at) VALUES ($1, $2, $3)
       ON CONFLICT (endpoint) DO UPDATE SET seq = GREATEST(notification_cursors.seq, EXCLUDED.seq), updated_at = EXCLUDED.updated_at`,
      [endpoint, seq, now],
    );
  }
}
