import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { BlobFetches, type FetchJob } from '../../src/proxy/blob-fetch.js';

/** A job whose bytes the test hands over one chunk at a time, and whose verdict it decides. */
function controlledJob(size?: number) {
  const queue: Array<Uint8Array | null> = [];
  let wake: (() => void) | undefined;
  let verify!: () => void;
  let refuse!: (err: Error) => void;
  let store!: () => void;
  let consumed = 0;
  const verdict = new Promise<void>((resolve, reject) => {
    verify = resolve;
    refuse = reject;
  });
  const storedGate = new Promise<void>((resolve) => (store = resolve));
  async function* source(): AsyncIterable<Uint8Array> {
    for (;;) {
      while (queue.length === 0) await new Promise<void>((resolve) => (wake = resolve));
      const next = queue.shift()!;
      if (next === null) return;
      yield next;
    }
  }
  const job: FetchJob = {
    size,
    cancel: () => undefined,
    run: (spool) => {
      const drained = (async () => {
        for await (const chunk of spool(source())) consumed += chunk.length;
      })();
      const verified = drained.then(() => verdict);
      return { verified, stored: verified.then(() => storedGate) };
    },
  };
  return {
    job,
    push: (chunk: Uint8Array | null) => {
      queue.push(chunk);
      wake?.();
    },
    verify: () => verify(),
    refuse: (err: Error) => refuse(err),
    store: () => store(),
    consumed: () => consumed,
  };
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function spoolFiles(parent: string): Promise<number> {
  let count = 0;
  for (const entry of await readdir(parent)) count += (await readdir(join(parent, entry)).catch(() => [])).length;
  return count;
}

const tick = () => new Promise((resolve) => setTimeout(resolve, 20));
let fetches: BlobFetches;
afterEach(async () => fetches?.close());

describe('BlobFetches', () => {
  it('one job for every joiner; each reader gets every byte, the last only once the digest is verified', async () => {
    fetches = new BlobFetches(5_000);
    const c = controlledJob(6);
    let starts = 0;
    const start = async () => {
      starts++;
      return c.job;
    };
    const [a, b] = await Promise.all([fetches.join('k', start), fetches.join('k', start)]);
    expect(starts).toBe(1);
    expect(a).toBe(b);
    const first = a.reader()!;
    const reading = readAll(first);
    c.push(Buffer.from('abc'));
    c.push(Buffer.from('def'));
    c.push(null);
    await tick();
    // Everything but the last byte has gone out; a second reader, joining late, starts from the beginning.
    const late = readAll(a.reader()!);
    expect(c.consumed()).toBe(6);
    c.verify();
    expect((await reading).toString()).toBe('abcdef');
    expect((await late).toString()).toBe('abcdef');
    c.store();
    await a.stored;
    await tick();
    expect(fetches.has('k')).toBe(false);
    // Over and its spool file gone: a reader now is none (the blob is read from the store).
    expect(a.reader()).toBeUndefined();
  });

  it('a fetch that does not verify cuts every reader off, and the next join starts anew', async () => {
    fetches = new BlobFetches(5_000);
    const c = controlledJob();
    const fetch = await fetches.join('k', async () => c.job);
    const reading = readAll(fetch.reader()!);
    c.push(Buffer.from('wrong bytes'));
    c.push(null);
    await tick();
    c.refuse(new Error('digest mismatch'));
    await expect(reading).rejects.toThrow('digest mismatch');
    await expect(fetch.stored).rejects.toThrow('digest mismatch');
    await tick();
    expect(fetches.has('k')).toBe(false);
    const again = controlledJob();
    expect(await fetches.join('k', async () => again.job)).not.toBe(fetch);
  });

  it('a failed start reaches every joiner and leaves nothing behind', async () => {
    fetches = new BlobFetches(5_000);
    const failing = async (): Promise<FetchJob> => {
      throw new Error('upstream down');
    };
    await expect(Promise.all([fetches.join('k', failing), fetches.join('k', failing)])).rejects.toThrow('upstream down');
    await tick();
    expect(fetches.size).toBe(0);
  });

  it('a reader dropped before its first read gives its hold back: the spool file goes with the fetch', async () => {
    const parent = await mkdtemp(join(tmpdir(), 'ocireg-spool-test-'));
    fetches = new BlobFetches(5_000, parent);
    const c = controlledJob(3);
    const fetch = await fetches.join('k', async () => c.job);
    const dropped = fetch.reader()!;
    dropped.destroy(); // a client gone before the body was sent
    c.push(Buffer.from('abc'));
    c.push(null);
    await tick();
    c.verify();
    c.store();
    await fetch.stored;
    await tick();
    expect(await spoolFiles(parent)).toBe(0);
    await fetches.close();
    await rm(parent, { recursive: true, force: true });
  });

  it('a reader waits a bounded time for a fetch that stalls', async () => {
    fetches = new BlobFetches(100);
    const c = controlledJob();
    const fetch = await fetches.join('k', async () => c.job);
    const reading = readAll(fetch.reader()!);
    c.push(Buffer.from('ab'));
    await expect(reading).rejects.toThrow(/made no progress for 100 ms/);
    c.push(null);
    c.refuse(new Error('gone'));
    await expect(fetch.stored).rejects.toThrow();
  });
});
