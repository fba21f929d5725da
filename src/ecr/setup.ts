/**
 * The ECR room, built from the configuration: repository settings and the push rules they
 * enforce, images, lifecycle runs, and the operations table the HTTP surface serves.
 */
import type { EcrConfig } from '../config/config.js';
import type { EcrCredentials } from '../auth/ecr-credentials.js';
import type { Db } from '../index/database.js';
import { EcrIndex } from '../index/ecr-index.js';
import { ImageIndex } from '../index/image-index.js';
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

/** Builds the ECR room and installs its push rules in the registry. */
export function openEcr(registry: Registry, db: Db, ecr: EcrConfig, credentials: EcrCredentials): Ecr {
  const repositories = new EcrRepositories(registry, new EcrIndex(db), ecr);
  const images = new EcrImages(registry, new ImageIndex(db));
  const lifecycle = new LifecycleService(registry, db, {
    policyOf: (repo) => repositories.lifecyclePolicy(repo)?.text,
    repositoriesWithPolicies: () => repositories.withLifecyclePolicies(),
    images: (repo) => images.lifecycleImages(repo),
    referenced: (repo, digest) => images.parentsOf(repo, digest).length > 0,
    evaluated: (repo, at) => repositories.noteLifecycleEvaluated(repo, at),
  });
  registry.rules = repositories.rules;
  return { services: { credentials, repositories, images, lifecycle }, operations: OPERATIONS };
}
