/**
 * Pushes to the repositories the pull-through cache serves are refused (405 UNSUPPORTED, as
 * distribution refuses pushes to a proxy): their content is the upstream's. The refusal sits in
 * the registry's push rules, so that every way in (/v2/, ECR's layer and image API, archive
 * imports, mounts) meets it; the cache's own writes run inside `asCacheWrite`, which it lets by.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { RegistryError } from '../oci/errors.js';
import type { RepositoryRules } from '../registry/repository-rules.js';

const cacheWrites = new AsyncLocalStorage<true>();

/** Runs `fn` as a write of the cache itself (the push rules let it by). */
export function asCacheWrite<T>(fn: () => Promise<T>): Promise<T> {
  return cacheWrites.run(true, fn);
}

export class ProxiedPushError extends RegistryError {
  override name = 'ProxiedPushError';
  constructor(readonly repository: string) {
    super('UNSUPPORTED', `${repository} is served by the pull-through cache from its upstream: pushes to it are not supported`, {
      status: 405,
      detail: { name: repository },
    });
  }
}

/** The rules `inner` with pushes refused to the repositories that `proxied` names. */
export function guardPushes(inner: RepositoryRules, proxied: (repo: string) => Promise<boolean>): RepositoryRules {
  return Object.freeze({
    admitPush: async (repo: string) => {
      if (cacheWrites.getStore() !== true && (await proxied(repo))) throw new ProxiedPushError(repo);
      await inner.admitPush(repo);
    },
    checkTagMoves: (repo: string, moves: Parameters<RepositoryRules['checkTagMoves']>[1]) => inner.checkTagMoves(repo, moves),
  });
}
