import type { Db } from '../index/database.js';
import { RegistryIndex } from '../index/registry-index.js';
import type { BlobStore } from '../storage/blob-store.js';
import { BlobService } from './blobs.js';
import { ManifestService } from './manifests.js';
import { UploadService } from './uploads.js';

/** The registry's use cases over one blob store and one index. Knows nothing of HTTP. */
export class Registry {
  readonly index: RegistryIndex;
  readonly blobs: BlobService;
  readonly uploads: UploadService;
  readonly manifests: ManifestService;

  constructor(
    readonly store: BlobStore,
    readonly db: Db,
  ) {
    this.index = new RegistryIndex(db);
    this.blobs = new BlobService(store, this.index);
    this.uploads = new UploadService(store, this.index, this.blobs);
    this.manifests = new ManifestService(store, this.index);
  }

  /** Checks that the index and the store answer. */
  async healthy(): Promise<boolean> {
    this.index.ping();
    await this.store.stat('health-check');
    return true;
  }
}
