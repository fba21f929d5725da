/**
 * The index contract: everything the registry records about its content and settings, behind
 * one asynchronous interface with two implementations, SQLite (src/index/sqlite/, the embedded
 * default for one machine) and PostgreSQL (src/index/postgres/, shared by several nodes). The
 * contract suite in test/index/contract/ runs over both.
 *
 * Every method is one short query or one transaction: callers do their store I/O first and
 * then call in here. A text argument holding a NUL character, which nothing the registry stores
 * contains, may be refused with IndexTextError (PostgreSQL cannot take one; SQLite finds nothing). Numeric repository ids are the index's own and are only passed back to it.
 */
// ---- rows ----

export interface ManifestRow {
  id: number;
  digest: string;
  mediaType: string;
  size: number;
  content: Buffer;
}

export interface ReferrerRow {
  digest: string;
  mediaType: string;
  size: number;
  artifactType: string | null;
  annotations: string | null;
}

export interface NewManifest {
  digest: string;
  mediaType: string;
  content: Buffer;
  artifactType?: string | undefined;
  subject?: string | undefined;
  annotations?: Record<string, string> | undefined;
  blobs: string[];
  children: string[];
}

export interface UploadRow {
  id: string;
  repository: string;
  createdAt: number;
  updatedAt: number;
}

/** One row of `access_keys`, as stored (scopes as their JSON text, times in ms since the epoch). */
export interface AccessKeyRow {
  id: string;
  user: string;
  secretHash: string;
  scopes: string;
  description: string | null;
  createdAt: number;
  expiresAt: number | null;
  lastUsedAt: number | null;
  revokedAt: number | null;
}

/** A row without its secret's hash: what listings show. */
export type AccessKeyListRow = Omit<AccessKeyRow, 'secretHash'>;

/**
 * ECR's settings of a repository as stored: JSON members as their text, times in ms. A
 * repository that the registry holds (a row of `repositories`) without a row of its own in
 * `ecr_repositories` has ECR's defaults and the time it was first pushed to.
 */
export interface EcrRepositoryRow {
  name: string;
  createdAt: number;
  tagMutability: string;
  /** JSON: [{filterType, filter}] */
  mutabilityExclusions: string;
  scanOnPush: boolean;
  /** JSON: {encryptionType, kmsKey?} */
  encryption: string;
  /** JSON: [{Key, Value}] */
  resourceTags: string;
  policy: string | null;
  lifecyclePolicy: string | null;
  /** When the lifecycle policy was last put or evaluated. */
  lifecyclePolicyUpdatedAt: number | null;
}

/** A new repository's settings (what CreateRepository or a push under a template gives it). */
export type NewEcrRepository = Omit<EcrRepositoryRow, 'lifecyclePolicyUpdatedAt'> & { lifecyclePolicyUpdatedAt?: number | null };

export interface CreationTemplateRow {
  prefix: string;
  /** JSON: the template's fields as the API has them. */
  template: string;
  createdAt: number;
  updatedAt: number;
}

/** A manifest of a repository, as DescribeImages and BatchGetImage need it. */
export interface ImageRow {
  digest: string;
  mediaType: string;
  /** artifactType, or the config's media type (null for an index without artifactType). */
  artifactType: string | null;
  /** The digest of the manifest's subject, for a referrer. */
  subject: string | null;
  /** The manifest's own size, in bytes. */
  size: number;
  /** When it was pushed (ms). */
  createdAt: number;
  content: Buffer;
}

/** One image id of ListImages: a tag and its digest, or a digest alone for an untagged manifest. */
export interface ImageIdRow {
  digest: string;
  tag: string | null;
}

/** What the lifecycle needs of every manifest: no content. */
export interface ManifestFactsRow {
  digest: string;
  subject: string | null;
  createdAt: number;
}

export interface ImageReferrerRow {
  digest: string;
  mediaType: string;
  size: number;
  artifactType: string | null;
  annotations: string | null;
}

export type TagStatus = 'TAGGED' | 'UNTAGGED' | 'ANY';

/** Where a page of image ids ends: the last id given (tag '' for an untagged manifest). */
export interface ImageIdCursor {
  digest: string;
  tag: string;
}

/** The settings of an ECR repository that can change after its creation. */
export type EcrSetting =
  | 'tagMutability'
  | 'mutabilityExclusions'
  | 'scanOnPush'
  | 'resourceTags'
  | 'policy'
  | 'lifecyclePolicy'
  | 'lifecyclePolicyUpdatedAt';
export type SettingValue<K extends EcrSetting> = K extends 'scanOnPush'
  ? boolean
  : K extends 'lifecyclePolicyUpdatedAt'
    ? number | null
    : EcrRepositoryRow[K];

// ---- the parts of the index ----

/** Repositories, blobs and their links, manifests, tags, references and upload sessions. */
export interface RegistryIndex {
  repositoryId(name: string): Promise<number | undefined>;
  /** Creates the repository if needed and returns its id. */
  ensureRepository(name: string, now?: number): Promise<number>;
  /** Removes a repository with its manifests, tags and blob links (the blobs stay). */
  deleteRepository(name: string): Promise<boolean>;
  repositoryHasManifests(name: string): Promise<boolean>;
  /** Repository names after `after`, in byte order, at most `limit`. */
  catalog(after: string, limit: number): Promise<string[]>;

  blobSize(digest: string): Promise<number | undefined>;
  /** Size of a blob linked into any repository (what an automatic mount may take). */
  anyLinkedBlobSize(digest: string): Promise<number | undefined>;
  /** Repositories (after `after`, sorted) that the blob is linked into, with its size. */
  blobRepositories(digest: string, after: string, limit: number): Promise<Array<{ name: string; size: number }>>;
  /** Size of a blob as seen from a repository: undefined unless linked there. */
  linkedBlobSize(repo: string, digest: string): Promise<number | undefined>;
  /** Records a blob (if new) and links it into a repository (created if needed), in one transaction. */
  addBlob(repo: string, digest: string, size: number, now?: number): Promise<void>;
  unlinkBlob(repo: string, digest: string): Promise<boolean>;
  /** Sizes of blobs linked into the repository, by digest; absent ones are missing. */
  linkedBlobSizes(repoId: number | undefined, digests: string[]): Promise<Map<string, number>>;
  /** Records a blob without linking it (reindex). */
  insertBlob(digest: string, size: number, createdAt: number): Promise<void>;

  manifest(repo: string, digest: string): Promise<ManifestRow | undefined>;
  manifestByTag(repo: string, tag: string): Promise<ManifestRow | undefined>;
  tagDigest(repo: string, tag: string): Promise<string | undefined>;
  hasManifest(repoId: number | undefined, digest: string): Promise<boolean>;
  /** Adds a manifest (idempotently: a known one keeps its row) and points the tags at it, in one transaction. */
  putManifest(repo: string, m: NewManifest, tags: string[], now?: number): Promise<void>;
  tagsOf(repo: string, digest: string): Promise<string[]>;
  /** Removes a manifest and every tag pointing at it. */
  deleteManifest(repo: string, digest: string): Promise<boolean>;
  /**
   * Removes a manifest and its tags only if `accept` takes the tags it has at that moment and the
   * manifests of the repository that list it as a child (an index's), in one transaction that no
   * tag or manifest write interleaves. Returns the tags removed, or undefined.
   */
  deleteManifestIf(
    repo: string,
    digest: string,
    accept: (tags: readonly string[], parents: readonly string[]) => boolean,
  ): Promise<string[] | undefined>;
  deleteTag(repo: string, tag: string): Promise<boolean>;
  /** Every tag of a repository, in byte order. */
  allTags(repoId: number): Promise<string[]>;
  /**
   * A value that changes whenever the repository's tags change, through any process or node:
   * what a cache of tag lists checks before it answers.
   */
  tagsVersion(repo: string): Promise<string>;
  referrers(repo: string, subject: string, after?: string): Promise<ReferrerRow[]>;

  insertUpload(id: string, repo: string, now?: number, updatedAt?: number): Promise<void>;
  upload(id: string): Promise<UploadRow | undefined>;
  touchUpload(id: string, now?: number): Promise<void>;
  deleteUpload(id: string): Promise<void>;
  uploadsOf(repo: string): Promise<string[]>;
  staleUploads(before: number): Promise<string[]>;

  /** Throws when the database does not answer. */
  ping(): Promise<void>;
  /** Empties the tables that reindex rebuilds from the store (settings and keys stay). */
  clear(): Promise<void>;
}

/** Access keys (robot accounts). Not in the store: reindex leaves them alone. */
export interface AccessKeyIndex {
  insert(row: Omit<AccessKeyRow, 'lastUsedAt' | 'revokedAt'>): Promise<void>;
  byId(id: string): Promise<AccessKeyRow | undefined>;
  /** Every key, oldest first, without the secrets' hashes. */
  list(): Promise<AccessKeyListRow[]>;
  /** False when no key has this id; a key revoked before keeps its first revocation time. */
  revoke(id: string, at: number): Promise<boolean>;
  touch(id: string, lastUsedAt: number): Promise<void>;
}

/** ECR's repository settings, creation templates and registry-wide settings. */
export interface EcrIndex {
  repository(name: string): Promise<EcrRepositoryRow | undefined>;
  exists(name: string): Promise<boolean>;
  repositories(after: string, limit: number): Promise<EcrRepositoryRow[]>;
  /** Creates the repository; false (and nothing written) if one of that name exists. */
  insertRepository(row: NewEcrRepository): Promise<boolean>;
  /** Changes settings in one transaction; false if there is no such repository. */
  update(name: string, changes: { readonly [K in EcrSetting]?: SettingValue<K> }): Promise<boolean>;
  deleteRepository(name: string): Promise<boolean>;
  withLifecyclePolicies(): Promise<string[]>;

  template(prefix: string): Promise<CreationTemplateRow | undefined>;
  templates(after: string, limit: number): Promise<CreationTemplateRow[]>;
  insertTemplate(prefix: string, template: string, now: number): Promise<boolean>;
  updateTemplate(prefix: string, template: string, now: number): Promise<boolean>;
  deleteTemplate(prefix: string): Promise<boolean>;

  setting(name: string): Promise<string | undefined>;
  putSetting(name: string, value: string): Promise<void>;
  deleteSetting(name: string): Promise<boolean>;
}

/** The read queries of ECR's image operations and of the lifecycle engine. */
export interface ImageIndex {
  repositoryId(repo: string): Promise<number | undefined>;
  images(repoId: number, status: TagStatus, afterDigest: string, limit: number): Promise<ImageRow[]>;
  imageIds(repoId: number, status: TagStatus, after: ImageIdCursor, limit: number): Promise<ImageIdRow[]>;
  imagesByDigest(repoId: number, digests: readonly string[]): Promise<Map<string, ImageRow>>;
  image(repoId: number, digest: string): Promise<ImageRow | undefined>;
  tagDigest(repoId: number, tag: string): Promise<string | undefined>;
  tagsOf(repoId: number, digests: readonly string[]): Promise<Map<string, string[]>>;
  allTags(repoId: number): Promise<Map<string, string[]>>;
  manifestFacts(repoId: number): Promise<ManifestFactsRow[]>;
  childDigests(repoId: number): Promise<Set<string>>;
  parentsOf(repoId: number, digest: string): Promise<string[]>;
  blobReferenced(repoId: number, digest: string): Promise<boolean>;
  referrers(repoId: number, subject: string, after: string, limit: number, artifactTypes?: readonly string[]): Promise<ImageReferrerRow[]>;
}

export interface PullTimeRow {
  repository: string;
  digest: string;
  pulledAt: number;
}

/** When each manifest was last pulled. */
export interface PullTimeIndex {
  /** Writes the batch in one transaction; a pull time only moves forward. */
  record(batch: readonly PullTimeRow[]): Promise<void>;
  lastPulled(repo: string, digest: string): Promise<number | undefined>;
  forget(repo: string): Promise<void>;
  /** Every row, in (repository, digest) order, after the given key (index copy). */
  page(after: { repository: string; digest: string }, limit: number): Promise<PullTimeRow[]>;
}

export type PreviewStatus = 'IN_PROGRESS' | 'COMPLETE' | 'EXPIRED' | 'FAILED';

export interface PreviewRow {
  repository: string;
  policy: string;
  status: PreviewStatus;
  result: string | null;
  startedAt: number;
}

/** The last lifecycle policy preview of each repository. */
export interface LifecyclePreviewIndex {
  save(row: PreviewRow): Promise<void>;
  get(repo: string): Promise<PreviewRow | undefined>;
  forget(repo: string): Promise<void>;
  /** Every row, in repository order (index copy). */
  all(): Promise<PreviewRow[]>;
}

/**
 * Mutual exclusion by name, across every process sharing the index (PostgreSQL advisory locks;
 * in one process for SQLite, the single-node case). A lock is released when its holder ends,
 * normally or not: a node that dies drops its locks with its connection.
 */
export interface IndexLocks {
  /**
   * Runs `fn` holding the lock, waiting for it at most `waitMs` (then LockTimeoutError). Not
   * reentrant: a holder must not ask for the same name again. `lost` aborts if the lock is lost
   * while `fn` runs (the connection that held it broke, and another node may now hold it): `fn`
   * must then stop before its next write (LockLostError).
   */
  run<T>(name: string, fn: (lost: AbortSignal) => Promise<T>, waitMs?: number): Promise<T>;
  /** Runs `fn` holding the lock if it is free now; `{ ran: false }` (and `fn` not run) if it is not. */
  tryRun<T>(name: string, fn: (lost: AbortSignal) => Promise<T>): Promise<{ ran: true; value: T } | { ran: false }>;
}

/** A value the index cannot hold or look up (a text with a NUL character): the client's mistake. */
export class IndexTextError extends Error {
  override name = 'IndexTextError';
  constructor() {
    super('a name or value contains a NUL character');
  }
}

/** A lock was lost while its holder ran: what the holder throws instead of writing on. */
export class LockLostError extends Error {
  override name = 'LockLostError';
  constructor(readonly lock: string) {
    super(`the lock ${lock} was lost (the connection that held it broke)`);
  }
}

export class LockTimeoutError extends Error {
  override name = 'LockTimeoutError';
  constructor(readonly lock: string, waitedMs: number) {
    super(`waited ${waitedMs} ms for the lock ${lock}`);
  }
}

export type IndexDriver = 'sqlite' | 'postgres';

/** The whole index, as `openIndex` gives it. */
export interface Index {
  readonly driver: IndexDriver;
  readonly registry: RegistryIndex;
  readonly accessKeys: AccessKeyIndex;
  readonly ecr: EcrIndex;
  readonly images: ImageIndex;
  readonly pullTimes: PullTimeIndex;
  readonly previews: LifecyclePreviewIndex;
  readonly locks: IndexLocks;
  /** A short description for logs (the file, or the database's host and name, never a password). */
  readonly where: string;
  close(): Promise<void>;
}
