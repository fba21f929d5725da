import type { Db } from '../index/database.js';
import { RegistryIndex } from '../index/registry-index.js';
import type { BlobStore } from '../storage/blob-store.js';
import { BlobService } from './blobs.js';
import { ManifestService } from './manifests.js';
import { PullTimes } from './pull-times.js';
import { OPEN_RULES, type RepositoryRules } from './repository-rules.js';
import { UploadService } from './uploads.js';

export interface RegistryOptions {
  /** ECR's rules on pushes (repositories must exist, immutable tags); none by default. */
  rules?: RepositoryRules;
}

/** The registry's use cases over one blob store and one index. Knows nothing of HTTP. */
export class Registry {
  readonly index: RegistryIndex;
  readonly blobs: BlobService;
  readonly uploads: UploadService;
  readonly manifests: ManifestService;
  readonly pulls: PullTimes;
  /** The rules pushes obey: set once, by the ECR room, before the app serves. */
  rules: RepositoryRules;

  constructor(
    readonly store: BlobStore,
    readonly db: Db,
    options: RegistryOptions = {},
  ) {
    this.rules = options.rules ?? OPEN_RULES;
    this.index = new RegistryIndex(db);
    this.pulls = new PullTimes(db);
    // The services read the rules through a getter: they are installed after construction.
    const rules = () => this.rules;
    this.blobs = new BlobService(store, this.index, rules);
    this.uploads = new UploadService(store, this.index, this.blobs, rules);
    this.manifests = new ManifestService(store, this.index, rules);
  }

  /** Checks that the index and the store answer. */
  async healthy(): Promise<boolean> {
    this.index.ping();
    await this.store.stat('health-check');
    return true;
  }
}
