/**
 * At most `limit` tasks at once; the rest wait in order. bcrypt runs on libuv's thread pool,
 * which file I/O shares (4 threads by default): a flood of wrong passwords must not take it all,
 * or pulls would wait behind password checks.
 */
export class Limiter {
  #running = 0;
  readonly #waiting: Array<() => void> = [];

  constructor(private readonly limit: number) {}

  get pending(): number {
    return this.#waiting.length;
  }

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.#running >= this.limit) await new Promise<void>((resolve) => this.#waiting.push(resolve));
    this.#running++;
    try {
      return await task();
    } finally {
      this.#running--;
      this.#waiting.shift()?.();
    }
  }
}
