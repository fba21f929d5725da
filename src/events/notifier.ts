/**
 * Delivers the outbox's events to the configured endpoints (distribution's notifications.endpoints),
 * each endpoint in outbox order, in envelopes of up to ENVELOPE_EVENTS events, retried with a
 * growing delay until the endpoint takes them (any 2xx or 3xx): a receiver that is down for an hour
 * gets everything once it is back, and a restart resumes at the endpoint's cursor in the index.
 *
 * Over several nodes sharing a PostgreSQL index, one node at a time delivers to an endpoint (an
 * index lock per endpoint), so the order holds. Delivery is at least once: an envelope whose answer
 * was lost (a timeout after the receiver took it) is sent again, with the same event ids.
 *
 * Pulls do not write in their request: their events are kept in memory and appended in batches
 * (PULL_FLUSH_MS), so a crash may lose the last second of pull events, never a push or a delete.
 * The outbox is bounded (notifications.outbox.maxevents): past it the oldest undelivered events are
 * dropped, counted per endpoint and logged.
 */
import type { FastifyBaseLogger } from 'fastify';
import type { NotificationEndpoint, NotificationsConfig } from '../config/config.js';
import type { IndexLocks, OutboxIndex } from '../index/contract.js';
import { ENVELOPE_MEDIA_TYPE, EventFactory, type EventSink } from './events.js';
import type { RegistryMetrics } from './metrics.js';

/** Events per envelope at most. */
export const ENVELOPE_EVENTS = 100;

export interface NotifierOptions {
  /** How often an idle endpoint looks at the outbox for events written by other nodes. */
  pollMs?: number;
  /** How often buffered pull events are appended to the outbox. */
  pullFlushMs?: number;
  /** How often delivered events are deleted and the bound is enforced. */
  maintenanceMs?: number;
  /** Pull events buffered at most between flushes; past it the oldest are dropped. */
  pullBuffer?: number;
  /** The longest delay between two attempts. */
  maxBackoffMs?: number;
}

export class Notifier implements EventSink {
  readonly factory: EventFactory;
  private readonly pollMs: number;
  private readonly pullFlushMs: number;
  private readonly maintenanceMs: number;
  private readonly pullBuffer: number;
  private readonly maxBackoffMs: number;
  private pulls: string[] = [];
  private flushing: Promise<void> | undefined;
  private readonly stop = new AbortController();
  private readonly wakers = new Set<() => void>();
  private loops: Promise<void>[] = [];
  private timers: NodeJS.Timeout[] = [];

  constructor(
    private readonly outbox: OutboxIndex,
    private readonly locks: IndexLocks,
    private readonly config: NotificationsConfig,
    private readonly log: FastifyBaseLogger,
    private readonly metrics: RegistryMetrics | undefined,
    sourceAddr: string,
    options: NotifierOptions = {},
  ) {
    this.factory = new EventFactory(sourceAddr);
    this.pollMs = options.pollMs ?? 1000;
    this.pullFlushMs = options.pullFlushMs ?? 1000;
    this.maintenanceMs = options.maintenanceMs ?? 5000;
    this.pullBuffer = options.pullBuffer ?? 10_000;
    this.maxBackoffMs = options.maxBackoffMs ?? 60_000;
  }

  /**
   * Gives a new endpoint a cursor at the outbox's end (it gets the events from now on, not the
   * history), then starts one delivery loop per endpoint.
   */
  async start(): Promise<void> {
    const cursors = await this.outbox.cursors();
    const { last } = await this.outbox.stats();
    for (const ep of this.config.endpoints) {
      if (!cursors.has(ep.name)) await this.outbox.setCursor(ep.name, last);
      this.log.info({ endpoint: ep.name, url: safeUrl(ep.url), timeoutMs: ep.timeoutMs, threshold: ep.threshold, backoffMs: ep.backoffMs }, 'notification endpoint configured');
    }
    this.loops = this.config.endpoints.map((ep) => this.run(ep));
    this.timers.push(setInterval(() => void this.flushPulls(), this.pullFlushMs).unref());
    this.timers.push(setInterval(() => void this.maintain(), this.maintenanceMs).unref());
  }

  /** Stops: buffered pulls go to the outbox, deliveries in flight end (bounded by their timeout), retries wait for the next start. */
  async close(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    this.stop.abort();
    for (const wake of this.wakers) wake();
    await this.flushPulls();
    await Promise.all(this.loops);
  }

  written(): void {
    for (const wake of this.wakers) wake();
  }

  pulled(event: string): void {
    if (this.stop.signal.aborted) return;
    this.pulls.push(event);
    if (this.pulls.length > this.pullBuffer) {
      // The outbox does not answer fast enough: the oldest buffered pulls go.
      const dropped = this.pulls.length - this.pullBuffer;
      this.pulls.splice(0, dropped);
      for (const ep of this.config.endpoints) this.metrics?.notificationEvents(ep.name, 'dropped', dropped);
      this.log.warn({ dropped }, 'notifications: pull events dropped (the index did not take them fast enough)');
    }
  }

  /** Appends the buffered pull events to the outbox, in one transaction; kept for the next try if it fails. */
  flushPulls(): Promise<void> {
    this.flushing ??= (async () => {
      const batch = this.pulls;
      if (batch.length === 0) return;
      this.pulls = [];
      try {
        await this.outbox.append(batch);
        this.written();
      } catch (err) {
        this.pulls = [...batch, ...this.pulls];
        this.log.warn({ err, events: batch.length }, 'notifications: could not append pull events to the outbox; will retry');
      }
    })().finally(() => {
      this.flushing = undefined;
    });
    return this.flushing;
  }

  /** Deletes what every endpoint has received, then enforces the bound. One node at a time. */
  async maintain(): Promise<void> {
    try {
      await this.locks.tryRun('notifications:outbox', async () => {
        const cursors = await this.outbox.cursors();
        const positions = this.config.endpoints.map((ep) => cursors.get(ep.name) ?? 0);
        const delivered = Math.min(...positions);
        if (delivered > 0) await this.outbox.deleteThrough(delivered);
        const { count } = await this.outbox.stats();
        if (count <= this.config.outboxMaxEvents) return;
        const keptFrom = await this.outbox.nthNewest(this.config.outboxMaxEvents);
        if (keptFrom === undefined) return;
        const through = keptFrom - 1;
        for (const ep of this.config.endpoints) {
          const at = cursors.get(ep.name) ?? 0;
          if (at >= through) continue;
          const dropped = await this.outbox.countBetween(at, through);
          await this.outbox.setCursor(ep.name, through);
          if (dropped === 0) continue;
          this.metrics?.notificationEvents(ep.name, 'dropped', dropped);
          this.log.warn(
            { endpoint: ep.name, dropped, maxEvents: this.config.outboxMaxEvents },
            'notification outbox full: the oldest undelivered events were dropped',
          );
        }
        await this.outbox.deleteThrough(through);
      });
    } catch (err) {
      this.log.warn({ err }, 'notifications: outbox maintenance failed; will retry');
    }
  }

  /** One endpoint's loop: deliver while this node holds its lock, then wait for a write or the poll. */
  private async run(ep: NotificationEndpoint): Promise<void> {
    while (!this.stop.signal.aborted) {
      try {
        await this.locks.tryRun(`notifications:${ep.name}`, (lost) => this.drain(ep, lost));
      } catch (err) {
        this.log.warn({ err, endpoint: ep.name }, 'notifications: delivery interrupted; will resume');
      }
      await this.idle(this.pollMs);
    }
  }

  /** Sends the endpoint's events after its cursor, envelope by envelope, until none is left. */
  private async drain(ep: NotificationEndpoint, lost: AbortSignal): Promise<void> {
    for (;;) {
      if (this.stop.signal.aborted || lost.aborted) return;
      // Read each time: the bound may have moved it past events that were dropped.
      const cursor = await this.cursor(ep);
      const rows = await this.outbox.after(cursor, ENVELOPE_EVENTS);
      if (rows.length === 0) return;
      const events = rows.map((r) => r.event).filter((e) => wanted(ep, e));
      if (events.length > 0) {
        this.metrics?.notificationEvents(ep.name, 'queued', events.length);
        const outcome = await this.deliver(ep, events, rows[0]!.seq, lost);
        if (outcome === 'stopped') return;
        if (outcome === 'stale') continue; // some of it was dropped meanwhile: the rest goes in a new envelope
        this.metrics?.notificationEvents(ep.name, 'delivered', events.length);
      }
      await this.outbox.setCursor(ep.name, rows[rows.length - 1]!.seq);
    }
  }

  private async cursor(ep: NotificationEndpoint): Promise<number> {
    return (await this.outbox.cursors()).get(ep.name) ?? 0;
  }

  /**
   * Posts one envelope (whose first event is numbered `first`) until the endpoint takes it:
   * 'stopped' when the notifier stops or the lock is lost first, 'stale' when, between two
   * attempts, the outbox's bound dropped some of its events.
   */
  private async deliver(ep: NotificationEndpoint, events: readonly string[], first: number, lost: AbortSignal): Promise<'sent' | 'stopped' | 'stale'> {
    const body = `{"events":[${events.join(',')}]}`;
    const headers: Record<string, string> = {};
    for (const [name, values] of Object.entries(ep.headers)) headers[name] = values.join(', ');
    headers['content-type'] = ENVELOPE_MEDIA_TYPE;
    for (let failures = 0; ; ) {
      if (this.stop.signal.aborted || lost.aborted) return 'stopped';
      if (failures > 0 && (await this.cursor(ep)) >= first) return 'stale';
      let reason: string;
      try {
        // Not cut by a shutdown: an envelope the receiver may already hold is not left half-sent.
        const res = await fetch(ep.url, { method: 'POST', headers, body, redirect: 'follow', signal: AbortSignal.timeout(ep.timeoutMs) });
        await res.body?.cancel().catch(() => undefined);
        if (res.status >= 200 && res.status < 400) {
          if (failures > 0) this.log.info({ endpoint: ep.name, failures }, 'notification endpoint answers again');
          return 'sent';
        }
        reason = `answered ${res.status}`;
      } catch (err) {
        reason = (err as Error).name === 'TimeoutError' ? `no answer within ${ep.timeoutMs} ms` : causeOf(err);
      }
      failures++;
      this.metrics?.notificationFailed(ep.name);
      const delayMs = retryDelay(ep, failures, this.maxBackoffMs);
      // The first failure, the one that starts the backoff, then one line in ten: a receiver down for an hour does not flood the log.
      if (failures === 1 || failures === ep.threshold || failures % 10 === 0) {
        this.log.warn({ endpoint: ep.name, url: safeUrl(ep.url), failures, reason, retryInMs: delayMs }, 'notification delivery failed; will retry');
      }
      await this.idle(delayMs, false);
    }
  }

  /** Waits `ms`, or less when stopped (or, if `wakes`, when an event is written). */
  private idle(ms: number, wakes = true): Promise<void> {
    if (this.stop.signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.wakers.delete(done);
        this.stop.signal.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      if (wakes) this.wakers.add(done);
      this.stop.signal.addEventListener('abort', done, { once: true });
    });
  }
}

/**
 * The delay before attempt `failures + 1`: short and growing slowly while the failures are fewer
 * than the endpoint's threshold, then `backoff`, doubled with each further failure up to the cap.
 */
export function retryDelay(ep: Pick<NotificationEndpoint, 'threshold' | 'backoffMs'>, failures: number, maxMs: number): number {
  if (failures < ep.threshold) return Math.min(ep.backoffMs, 50 * failures);
  return Math.min(Math.max(ep.backoffMs, maxMs), ep.backoffMs * 2 ** Math.min(failures - ep.threshold, 20));
}

/** Whether the endpoint wants the event (its ignored actions and target media types). */
export function wanted(ep: Pick<NotificationEndpoint, 'ignoredActions' | 'ignoredMediaTypes'>, event: string): boolean {
  if (ep.ignoredActions.length === 0 && ep.ignoredMediaTypes.length === 0) return true;
  let parsed: { action?: string; target?: { mediaType?: string } };
  try {
    parsed = JSON.parse(event) as typeof parsed;
  } catch {
    return true;
  }
  if (parsed.action !== undefined && ep.ignoredActions.includes(parsed.action)) return false;
  const mediaType = parsed.target?.mediaType;
  return mediaType === undefined || !ep.ignoredMediaTypes.includes(mediaType);
}

/** An endpoint's URL for a log line: no user information, no query (either may hold a secret). */
export function safeUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return '(invalid URL)';
  }
}

function causeOf(err: unknown): string {
  const e = err as Error & { cause?: { code?: string; message?: string } };
  return e.cause?.code ?? e.cause?.message ?? e.message ?? String(err);
}
