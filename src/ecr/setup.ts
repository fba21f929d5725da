/**
 * The ECR room, built from the configuration: repository settings and the push rules they
 * enforce, images, lifecycle runs, pull-through cache rules, and the operations table the HTTP
 * surface serves.
 */
import { DEFAULT_PROXY, type EcrConfig, type ProxyConfig } from '../config/config.js';
import type { EcrCredentials } from '../auth/ecr-credentials.js';
import { LifecycleService } from '../maintenance/lifecycle/service.js';
import type { UpstreamProbe } from '../proxy/sources.js';
import type { Registry } from '../registry/registry.js';
import { EcrImages } from './images.js';
import type { OperationTable } from './operation.js';
import { authorizationOperations } from './operations/authorization.js';
import { imageOperations } from './operations/images.js';
import { layerOperations } from './operations/layers.js';
import { lifecyclePreviewOperations } from './operations/lifecycle-preview.js';
import { pullThroughOperations } from './operations/pull-through.js';
import { repositoryOperations } from './operations/repositories.js';
import { NO_PROBE, PullThroughRules } from './pull-through-rules.js';
import { EcrRepositories } from './repositories.js';
import type { EcrServices } from './services.js';

export interface Ecr {
  readonly services: EcrServices;
  readonly operations: OperationTable;
}

/** Every operation this registry serves; any other answers UnknownOperationException. */
export const OPERATIONS: OperationTable = Object.freeze({
  ...authorizationOperations,
  ...repositoryOperations,
  ...imageOperations,
  ...layerOperations,
  ...lifecyclePreviewOperations,
  ...pullThroughOperations,
});

export interface EcrOptions {
  /** The pull-through cache's configuration (`config.proxy ?? DEFAULT_PROXY`): the upstreams and credentials rules may name. */
  readonly proxy?: ProxyConfig;
  /** Checks an upstream for ValidatePullThroughCacheRule; without one, every rule is reported not valid ('no upstream probe'). */
  readonly probe?: UpstreamProbe;
}

/** Builds the ECR room over the registry's index and installs its push rules in the registry. */
export function openEcr(registry: Registry, ecr: EcrConfig, credentials: EcrCredentials, options: EcrOptions = {}): Ecr {
  const repositories = new EcrRepositories(registry, registry.database.ecr, ecr);
  const pullThroughRules = new PullThroughRules(registry.database.ecr, ecr, options.proxy ?? DEFAULT_PROXY, options.probe ?? NO_PROBE, repositories);
  const images = new EcrImages(registry, registry.database.images);
  const lifecycle = new LifecycleService(registry, {
    policyOf: async (repo) => (await repositories.lifecyclePolicy(repo))?.text,
    repositoriesWithPolicies: () => repositories.withLifecyclePolicies(),
    images: (repo) => images.lifecycleImages(repo),
    referenced: async (repo, digest) => (await images.parentsOf(repo, digest)).length > 0,
    evaluated: (repo, at) => repositories.noteLifecycleEvaluated(repo, at),
  });
  registry.rules = repositories.rules;
  return { services: { credentials, repositories, images, lifecycle, pullThroughRules }, operations: OPERATIONS };
}
