/**
 * The ECR room, built from the configuration: repository settings and the push rules they
 * enforce, images, lifecycle runs, and the operations table the HTTP surface serves.
 */
import type { EcrConfig } from '../config/config.js';
import type { EcrCredentials } from '../auth/ecr-credentials.js';
import { LifecycleService } from '../maintenance/lifecycle/service.js';
import type { Registry } from '../registry/registry.js';
import { EcrImages } from './images.js';
import type { OperationTable } from './operation.js';
import { authorizationOperations } from './operations/authorization.js';
import { imageOperations } from './operations/images.js';
import { layerOperations } from './operations/layers.js';
import { lifecyclePreviewOperations } from './operations/lifecycle-preview.js';
import { repositoryOperations } from './operations/repositories.js';
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
});

/** Builds the ECR room over the registry's index and installs its push rules in the registry. */
export function openEcr(registry: Registry, ecr: EcrConfig, credentials: EcrCredentials): Ecr {
  const repositories = new EcrRepositories(registry, registry.database.ecr, ecr);
  const images = new EcrImages(registry, registry.database.images);
  const lifecycle = new LifecycleService(registry, {
    policyOf: async (repo) => (await repositories.lifecyclePolicy(repo))?.text,
    repositoriesWithPolicies: () => repositories.withLifecyclePolicies(),
    images: (repo) => images.lifecycleImages(repo),
    referenced: async (repo, digest) => (await images.parentsOf(repo, digest)).length > 0,
    evaluated: (repo, at) => repositories.noteLifecycleEvaluated(repo, at),
  });
  registry.rules = repositories.rules;
  return { services: { credentials, repositories, images, lifecycle }, operations: OPERATIONS };
}
