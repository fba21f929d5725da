import type { Index, RegistryIndex } from '../index/contract.js';
import type { BlobStore } from '../storage/blob-store.js';
import { BlobService } from './blobs.js';
import { ManifestService } from './manifests.js';
import { PullTimes } from './pull-times.js';
import { OPEN_RULES, type RepositoryRules } from './repository-rules.js';
import { UploadService } from './uploads.js';
import type { EventOrigin, EventSink, EventSubject } from '../events/events.js';

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
  /** Where the use cases' events go: set by the app when notifications are on. */
  events: EventSink | undefined;

  constructor(
    readonly store: BlobStore,
    /** The whole index: the registry's part (`index`), and ECR's, access keys, locks... */
    readonly database: Index,
    options: RegistryOptions = {},
  ) {
    this.rules = options.rules ?? OPEN_RULES;
    this.index = database.registry;
    this.pulls = new PullTimes(database.pullTimes);
    // The services read the rules through a getter: they are installed after construction.
    const rules = () => this.rules;
    this.blobs = new BlobService(store, this.index, rules, database.gc);
    this.uploads = new UploadService(store, this.index, this.blobs, rules, database.locks);
    this.manifests = new ManifestService(store, this.index, rules, database.locks, this.blobs);
    const sink = () => this.events;
    this.blobs.sink = sink;
    this.uploads.sink = sink;
    this.manifests.sink = sink;
  }

  /** A pull (a manifest's or a blob's GET): its event is batched, never waited for. */
  pulled(subject: EventSubject, origin: EventOrigin | undefined): void {
    const sink = this.events;
    if (sink && origin) sink.pulled(sink.factory.make('pull', subject, origin));
  }

  /** Checks that the index and the store answer. */
  async healthy(): Promise<boolean> {
    await this.index.ping();
    await this.store.stat('health-check');
    return true;
  }
}
