/**
 * The services ECR's operations share, built once per app (src/http/ecr/ wires them).
 * Each lives in its room: credentials in src/auth/, repository settings in src/ecr/,
 * images over the index in src/ecr/, pull-through cache rules in src/ecr/, pull times in
 * src/registry/, lifecycle runs in src/maintenance/.
 */
import type { EcrCredentials } from '../auth/ecr-credentials.js';
import type { EcrRepositories } from './repositories.js';
import type { EcrImages } from './images.js';
import type { PullThroughRules } from './pull-through-rules.js';
import type { LifecycleService } from '../maintenance/lifecycle/service.js';

export interface EcrServices {
  readonly credentials: EcrCredentials;
  readonly repositories: EcrRepositories;
  readonly images: EcrImages;
  readonly lifecycle: LifecycleService;
  readonly pullThroughRules: PullThroughRules;
}
