/**
 * The registry's background jobs (upload purging, lifecycle and retention runs, garbage
 * collection): each runs every interval, never twice at once in a process, and with several
 * nodes under its `job:<name>` lock, so that one node runs it while the others skip that round.
 */
import type { IndexLocks } from '../index/contract.js';

export interface JobLog {
  error(fields: object, message: string): void;
}

export class ScheduledJob {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;

  constructor(
    private readonly locks: IndexLocks,
    /** The lock is `job:<name>`; the log names the job by it too. */
    readonly name: string,
    private readonly intervalMs: number,
    /** One run, holding the lock; `lost` aborts if the lock is lost meanwhile. */
    private readonly work: (lost: AbortSignal) => Promise<void>,
    private readonly log: JobLog,
  ) {}

  /** Starts the timer; with `now`, also runs once at once. */
  start(options: { now?: boolean } = {}): void {
    if (options.now) this.tick();
    this.timer = setInterval(() => this.tick(), this.intervalMs);
    this.timer.unref();
  }

  /** Runs once now unless a run is in progress; resolves when that run ends. */
  runNow(): Promise<void> {
    this.tick();
    return this.running ?? Promise.resolve();
  }

  /** Stops the timer and waits for the run in progress. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await this.running;
  }

  private tick(): void {
    if (this.running || this.stopped) return;
    this.running = this.locks
      .tryRun(`job:${this.name}`, (lost) => this.work(lost))
      .then(() => undefined)
      .catch((err: unknown) => this.log.error({ err, job: this.name }, `${this.name} run failed`))
      .finally(() => (this.running = undefined));
  }
}
