// The timing wrappers keep what they wrap unchanged to its callers: the same results and errors,
// the same optional methods (absent stays absent), private fields that still work; each call is
// observed once, with its outcome.
import { describe, expect, it } from 'vitest';
import { instrumentStore } from '../../src/events/instrument.js';
import { RegistryMetrics } from '../../src/events/metrics.js';
import type { BlobStore } from '../../src/storage/blob-store.js';

class FakeStore {
  readonly #objects = new Map<string, Buffer>([['a', Buffer.from('bytes')]]);
  async get(key: string): Promise<Buffer | null> {
    return this.#objects.get(key) ?? null;
  }
  async delete(key: string): Promise<void> {
    if (!this.#objects.has(key)) throw new Error(`no ${key}`);
    this.#objects.delete(key);
  }
  async *list(): AsyncIterable<{ key: string; size: number; modified: Date }> {
    for (const [key, body] of this.#objects) yield { key, size: body.length, modified: new Date(0) };
  }
}

async function observed(metrics: RegistryMetrics): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const line of (await metrics.exposition()).body.split('\n')) {
    const m = /^registry_storage_operation_duration_seconds_count\{backend="fake",operation="(\w+)",outcome="(\w+)"\} (\d+)$/.exec(line);
    if (m) out[`${m[1]}:${m[2]}`] = Number(m[3]);
  }
  return out;
}

describe('instrumentStore', () => {
  it('passes calls through, times each once with its outcome, and keeps optional methods absent', async () => {
    const metrics = new RegistryMetrics({ storageBackend: 'fake', indexDriver: 'none' });
    const store = instrumentStore(new FakeStore() as unknown as BlobStore, metrics);
    expect(await store.get('a')).toEqual(Buffer.from('bytes'));
    expect(await store.get('b')).toBeNull();
    await expect(store.delete('b')).rejects.toThrow('no b');
    await store.delete('a');
    const listed = [];
    for await (const o of store.list('')) listed.push(o);
    expect(listed).toEqual([]);
    expect(store.openObject).toBeUndefined();
    expect(store.deleteMany).toBeUndefined();
    expect(await observed(metrics)).toEqual({ 'get:ok': 2, 'delete:error': 1, 'delete:ok': 1 });
  });
});
