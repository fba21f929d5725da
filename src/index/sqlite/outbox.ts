import type { OutboxIndex, OutboxRow } from '../contract.js';
import type { Db } from './database.js';

/** Writes events into the outbox (inside the caller's transaction, when there is one). */
export function outboxWriter(db: Db): (events: readonly string[] | undefined, now: number) => void {
  const insert = db.prepare('INSERT INTO notification_outbox (created_at, event) VALUES (?, ?)');
  return (events, now) => {
    for (const event of events ?? []) insert.run(now, event);
  };
}

/** The SQLite outbox: one writer at a time, so numbers are given in commit order. */
export class SqliteOutboxIndex implements OutboxIndex {
  private readonly s;
  private readonly write;

  constructor(private readonly db: Db) {
    this.write = outboxWriter(db);
    this.s = {
      after: db.prepare<[number, number], OutboxRow>('SELECT seq, event FROM notification_outbox WHERE seq > ? ORDER BY seq LIMIT ?'),
      stats: db.prepare<[], { last: number | null; count: number }>('SELECT max(seq) AS last, count(*) AS count FROM notification_outbox'),
      between: db.prepare<[number, number], number>('SELECT count(*) FROM notification_outbox WHERE seq > ? AND seq <= ?').pluck(),
      nth: db.prepare<[number], number>('SELECT seq FROM notification_outbox ORDER BY seq DESC LIMIT 1 OFFSET ?').pluck(),
      deleteThrough: db.prepare('DELETE FROM notification_outbox WHERE seq <= ?'),
      cursors: db.prepare<[], { endpoint: string; seq: number }>('SELECT endpoint, seq FROM notification_cursors'),
      setCursor: db.prepare(
        `INSERT INTO notification_cursors (endpoint, seq, updated_at) VALUES (?, ?, ?)
         ON CONFLICT (endpoint) DO UPDATE SET seq = max(seq, excluded.seq), updated_at = excluded.updated_at`,
      ),
    };
  }

  async append(events: readonly string[], now = Date.now()): Promise<void> {
    if (events.length === 0) return;
    this.db.transaction(() => this.write(events, now))();
  }

  async after(seq: number, limit: number): Promise<OutboxRow[]> {
    return this.s.after.all(seq, limit);
  }

  async stats(): Promise<{ last: number; count: number }> {
    const row = this.s.stats.get()!;
    return { last: row.last ?? 0, count: row.count };
  }

  async countBetween(after: number, through: number): Promise<number> {
    return this.s.between.get(after, through) ?? 0;
  }

  async nthNewest(n: number): Promise<number | undefined> {
    return n < 1 ? undefined : this.s.nth.get(n - 1);
  }

  async deleteThrough(seq: number): Promise<number> {
    return this.s.deleteThrough.run(seq).changes;
  }

  async cursors(): Promise<Map<string, number>> {
    return new Map(this.s.cursors.all().map((r) => [r.endpoint, r.seq]));
  }

  async setCursor(endpoint: string, seq: number, now = Date.now()): Promise<void> {
    this.s.setCursor.run(endpoint, seq, now);
  }
}
