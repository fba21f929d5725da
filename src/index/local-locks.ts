import { KeyedMutex } from '../registry/keyed-mutex.js';
import { LockTimeoutError, type IndexLocks } from './contract.js';

/** How long `run` waits for a lock unless told otherwise. */
export const DEFAULT_LOCK_WAIT_MS = 60_000;

/**
 * Locks within this process: what one node needs (the SQLite index is one machine's), and the
 * first stage of the cluster's locks, so that a node asks the database only once per name.
 */
export class LocalLocks implements IndexLocks {
  private readonly mutex = new KeyedMutex();

  async run<T>(name: string, fn: (lost: AbortSignal) => Promise<T>, waitMs = DEFAULT_LOCK_WAIT_MS): Promise<T> {
    let timedOut = false;
    let timer: NodeJS.Timeout | undefined;
    const gate = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        timedOut = true;
        reject(new LockTimeoutError(name, waitMs));
      }, waitMs);
      timer.unref();
    });
    gate.catch(() => undefined);
    const section = this.mutex.run(name, async () => {
      clearTimeout(timer);
      if (timedOut) throw new LockTimeoutError(name, waitMs); // gave up before its turn came
      return fn(NEVER_LOST);
    });
    return Promise.race([section, gate]);
  }

  async tryRun<T>(name: string, fn: (lost: AbortSignal) => Promise<T>): Promise<{ ran: true; value: T } | { ran: false }> {
    if (this.mutex.isLocked(name)) return { ran: false };
    return { ran: true, value: await this.mutex.run(name, () => fn(NEVER_LOST)) };
  }
}

/** A lock held within one process is lost only with the process. */
const NEVER_LOST: AbortSignal = new AbortController().signal;
