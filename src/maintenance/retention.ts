/**
 * Retention policies (config `retention.policies`): ECR lifecycle policies that the operator
 * assigns to repositories by name pattern, for every registry, with or without the ECR API.
 * There is one engine: this is the lifecycle service (LifecycleService) over other sources, so a
 * retention policy expires exactly what the same policy put on the repository through ECR would.
 *
 * A repository that has an ECR lifecycle policy of its own is left out: its own policy wins, and
 * the ECR lifecycle job applies it.
 */
import { compilePattern, type CompiledPattern } from '../auth/patterns.js';
import type { RetentionConfig } from '../config/config.js';
import { EcrImages } from '../ecr/images.js';
import { keysetPages } from '../index/pages.js';
import type { Registry } from '../registry/registry.js';
import { LifecycleService, type LifecycleSources } from './lifecycle/service.js';


/** Repository names read per catalog page while listing the repositories a policy covers. */
const CATALOG_PAGE = 500;

interface CompiledPolicy {
  readonly patterns: readonly CompiledPattern[];
  readonly policyText: string;
}

/**
 * The retention engine over the registry. `now` is the lifecycle's clock (tests move it to
 * make images old).
 */
export function openRetention(registry: Registry, retention: RetentionConfig, now: () => number = Date.now): LifecycleService {
  return new LifecycleService(registry, retentionSources(registry, retention), now);
}

/** The lifecycle's sources for the configured policies. */
function retentionSources(registry: Registry, retention: RetentionConfig): LifecycleSources {
  // Patterns are checked when the configuration is loaded; compiled once here.
  const policies: CompiledPolicy[] = retention.policies.map((p) => ({
    patterns: p.repositories.map(compilePattern),
    policyText: p.policyText,
  }));
  const configured = (repo: string) => policies.find((p) => p.patterns.some((pattern) => pattern.matches(repo)))?.policyText;
  // EcrImages reads only the image index and the pull times: nothing of the ECR configuration.
  const images = new EcrImages(registry, registry.database.images);
  const ecr = registry.database.ecr;
  return {
    policyOf: async (repo) => {
      const text = configured(repo);
      if (text === undefined) return undefined;
      return (await ecr.repository(repo))?.lifecyclePolicy ? undefined : text;
    },
    repositoriesWithPolicies: async () => {
      const own = new Set(await ecr.withLifecyclePolicies());
      return (await allRepositories(registry)).filter((repo) => !own.has(repo) && configured(repo) !== undefined);
    },
    images: (repo) => images.lifecycleImages(repo),
    referenced: async (repo, digest) => (await images.parentsOf(repo, digest)).length > 0,
    // ECR records lastEvaluatedAt on its repository row; a retention policy has no row to note it on.
    evaluated: async () => undefined,
  };
}

/** Every repository of the catalog, in byte order (as the catalog gives them). */
async function allRepositories(registry: Registry): Promise<string[]> {
  const names: string[] = [];
  for await (const name of keysetPages((after: string, limit) => registry.index.catalog(after, limit), '', (n) => n, CATALOG_PAGE)) names.push(name);
  return names;
}
