// What the key and token tests share: a temporary folder with two signing keys, and the
// error a promise is refused with.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect } from 'vitest';
import { loadSigningKey, type SigningKey } from '../../src/auth/signing-key.js';

/** A folder made before the file's tests (removed after) with `key.pem` and `other.pem` loaded in it. */
export function useSigningKeys(prefix: string): { readonly dir: string; readonly key: SigningKey; readonly otherKey: SigningKey } {
  const state = {} as { dir: string; key: SigningKey; otherKey: SigningKey };
  beforeAll(async () => {
    state.dir = await mkdtemp(join(tmpdir(), prefix));
    state.key = await loadSigningKey(join(state.dir, 'key.pem'));
    state.otherKey = await loadSigningKey(join(state.dir, 'other.pem'));
  });
  afterAll(async () => {
    await rm(state.dir, { recursive: true, force: true });
  });
  return state;
}

/** The error the promise is rejected with, which must be a `type`; fails the test when it resolves. */
export async function rejectionOf<E extends Error>(promise: Promise<unknown>, type: abstract new (...args: never[]) => E): Promise<E> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(type);
  return err as E;
}
