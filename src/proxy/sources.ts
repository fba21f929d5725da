/**
 * What the pull-through cache reads from outside src/proxy/: ECR's pull-through cache rules (kept
 * in the index by src/ecr/, changed over ECR's API) and the hook that creates a repository for a
 * first pull as ECR does. The app wires src/ecr/'s implementation in; without ECR there is none.
 */
import type { UpstreamConfig } from '../config/config.js';

/** An ECR pull-through cache rule as the cache needs it. */
export interface EcrRuleView {
  /** The repository-name prefix it covers (`docker-hub` covers `docker-hub/...`); `ROOT` covers every name. */
  readonly ecrRepositoryPrefix: string;
  /** The upstream's base URL, `scheme://host[:port]` (upstreamRegistryUrl, https:// when it named none). */
  readonly upstreamUrl: string;
  /** The upstream repository prefix the rest of the name goes under; undefined (or `ROOT`) for none. */
  readonly upstreamRepositoryPrefix?: string;
  /** The name of the proxy.credentials entry its credentialArn names, if any. */
  readonly credentialName?: string;
}

export interface EcrRuleSource {
  /** Every ECR pull-through cache rule, as stored now. */
  all(): Promise<readonly EcrRuleView[]>;
  /** Creates `name` for its first pull under a rule, as ECR does (a PULL_THROUGH_CACHE template's settings); nothing if it exists. */
  ensureRepository(name: string): Promise<void>;
}

/** Checks that an upstream answers its /v2/ with these credentials (ECR's ValidatePullThroughCacheRule). */
export type UpstreamProbe = (upstream: UpstreamConfig) => Promise<{ ok: true } | { ok: false; reason: string }>;
