/**
 * Timing of storage and index calls for the metrics: wrappers that keep the wrapped object's
 * shape (optional methods stay absent, private fields keep working: every call goes to the
 * object itself) and time each call that returns a promise, until it settles. Built only when
 * metrics are on, so that a registry without them pays nothing.
 */
import type { Index } from '../index/contract.js';
import type { BlobStore } from '../storage/blob-store.js';
import type { RegistryMetrics } from './metrics.js';

type Observe = (operation: string, seconds: number, ok: boolean) => void;

/** Calls that are not one storage operation: listings are walked by their caller, the rest are bookkeeping. */
const STORE_UNTIMED = new Set(['list', 'listUploads', 'close', 'init', 'retries']);

export function instrumentStore(store: BlobStore, metrics: RegistryMetrics): BlobStore {
  return timed(store, (name) => (STORE_UNTIMED.has(name) ? undefined : name), metrics.storageCall.bind(metrics));
}

/** The index's areas whose calls are queries; the locks are held for as long as a job runs, not timed. */
const INDEX_AREAS = ['registry', 'accessKeys', 'ecr', 'images', 'pullTimes', 'previews', 'gc', 'outbox'] as const;

export function instrumentIndex(index: Index, metrics: RegistryMetrics): Index {
  const observe = metrics.indexCall.bind(metrics);
  const areas = new Map<string | symbol, unknown>();
  for (const area of INDEX_AREAS) {
    areas.set(area, timed(index[area] as object, (name) => `${area}.${name}`, observe));
  }
  return new Proxy(index, {
    get(target, property) {
      if (areas.has(property)) return areas.get(property);
      const value = Reflect.get(target, property, target) as unknown;
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

/**
 * A proxy of `target` whose methods named by `operation` (undefined: not timed) are timed. The
 * wrapped functions are made once per method, not per call.
 */
function timed<T extends object>(target: T, operation: (name: string) => string | undefined, observe: Observe): T {
  // Keyed by the function itself: a method replaced on the object gets a wrapper of its own.
  const wrappers = new WeakMap<object, unknown>();
  return new Proxy(target, {
    get(object, property) {
      const value = Reflect.get(object, property, object) as unknown;
      if (typeof value !== 'function') return value;
      let wrapper = wrappers.get(value);
      if (wrapper === undefined) {
        const name = typeof property === 'string' ? operation(property) : undefined;
        const method = value as (...args: unknown[]) => unknown;
        wrapper = name === undefined ? method.bind(object) : timeCalls(object, method, name, observe);
        wrappers.set(value, wrapper);
      }
      return wrapper;
    },
  });
}

function timeCalls(self: object, method: (...args: unknown[]) => unknown, name: string, observe: Observe) {
  return (...args: unknown[]): unknown => {
    const start = performance.now();
    let result: unknown;
    try {
      result = method.apply(self, args);
    } catch (err) {
      observe(name, (performance.now() - start) / 1000, false);
      throw err;
    }
    if (result instanceof Promise) {
      return result.then(
        (value: unknown) => {
          observe(name, (performance.now() - start) / 1000, true);
          return value;
        },
        (err: unknown) => {
          observe(name, (performance.now() - start) / 1000, false);
          throw err;
        },
      );
    }
    observe(name, (performance.now() - start) / 1000, true);
    return result;
  };
}
