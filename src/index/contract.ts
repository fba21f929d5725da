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

export interface PullThroughRuleRow {
  /** The repository prefix without its trailing `/`, or `ROOT`. */
  prefix: string;
  /** JSON: the rule's fields as the API has them (src/ecr/pull-through-rules.ts). */
  rule: string;
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
  /** Size of a blob linked into any repository (what an automatic mount may take); never a blob being deleted. */
  anyLinkedBlobSize(digest: string): Promise<number | undefined>;
  /** Repositories (after `after`, sorted) that the blob is linked into, with its size; none for a blob being deleted. */
  blobRepositories(digest: string, after: string, limit: number): Promise<Array<{ name: string; size: number }>>;
  /**
   * Size of a blob as seen from a repository: undefined unless linked there, and undefined for a
   * blob being deleted (the client then uploads it again). A deletion candidate that is looked at
   * (a HEAD or GET) is taken back: it becomes live, touched at `now`.
   */
  linkedBlobSize(repo: string, digest: string, now?: number): Promise<number | undefined>;
  /**
   * Records a blob (if new) and links it into a repository (created if needed), in one
   * transaction: the blob becomes live (a candidate is taken back) and touched at `now`; holds
   * (GcIndex.claimBlob) are left to their releases. Throws BlobDeletingError, writing nothing,
   * when it is being deleted.
   */
  addBlob(repo: string, digest: string, size: number, now?: number, events?: readonly string[]): Promise<void>;
  /** Unlinks a blob from a repository; `events` go to the outbox in the same transaction, if it was linked. */
  unlinkBlob(repo: string, digest: string, events?: readonly string[]): Promise<boolean>;
  /** Sizes of blobs linked into the repository, by digest; absent ones (and those being deleted) are missing. */
  linkedBlobSizes(repoId: number | undefined, digests: string[]): Promise<Map<string, number>>;
  /** Records a blob without linking it (reindex, index copy), touched at `touchedAt` (default now), never from file times. */
  insertBlob(digest: string, size: number, createdAt: number, touchedAt?: number): Promise<void>;

  manifest(repo: string, digest: string): Promise<ManifestRow | undefined>;
  manifestByTag(repo: string, tag: string): Promise<ManifestRow | undefined>;
  tagDigest(repo: string, tag: string): Promise<string | undefined>;
  hasManifest(repoId: number | undefined, digest: string): Promise<boolean>;
  /**
   * Adds a manifest (idempotently: a known one keeps its row) and points the tags at it, in one
   * transaction. The manifest's own blob row is recorded (or, if known, touched at `now`; holds
   * are left to their releases). With `checkReferences` (a push), the same transaction first checks that every
   * blob of `m.blobs` is linked into the repository and not being deleted, and every child of
   * `m.children` is a manifest of the repository, and throws ManifestReferencesError (nothing
   * written) naming each one that is not; the referenced blobs that are deletion candidates are
   * taken back. This is the transaction the collector's compare-and-set respects: once it commits,
   * no blob it references can be deleted. Without it (reindex, index copy) nothing is checked.
   * The blobs in `external` (foreign layers, whose bytes live at their `urls`) are not checked.
   */
  putManifest(repo: string, m: NewManifest, tags: string[], now?: number, options?: PutManifestOptions): Promise<void>;
  tagsOf(repo: string, digest: string): Promise<string[]>;
  /** Removes a manifest and every tag pointing at it; `events` go to the outbox in the same transaction, if it was there. */
  deleteManifest(repo: string, digest: string, events?: readonly string[]): Promise<boolean>;
  /**
   * Removes a manifest and its tags only if `accept` takes the tags it has at that moment and the
   * manifests of the repository that list it as a child (an index's), in one transaction that no
   * tag or manifest write interleaves. Returns the tags removed, or undefined.
   */
  deleteManifestIf(
    repo: string,
    digest: string,
    accept: (tags: readonly string[], parents: readonly string[]) => boolean,
    events?: readonly string[],
  ): Promise<string[] | undefined>;
  deleteTag(repo: string, tag: string, events?: readonly string[]): Promise<boolean>;
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

/** Where a blob stands in garbage collection. */
export type BlobState = 'live' | 'candidate' | 'deleting';

export interface BlobStateRow {
  digest: string;
  size: number;
  state: BlobState;
  /** When it was last completed, linked, written or taken back (ms): the grace window counts from it. */
  touchedAt: number;
  /** When it became a candidate or began being deleted (ms), else null. */
  stateAt: number | null;
  /** Until when a write in flight holds it (ms), else null. */
  heldUntil: number | null;
}

/** A manifest of a repository as the collector's marking sees it. */
export interface ManifestNode {
  digest: string;
  /** The digest of its subject (a referrer), else null. */
  subject: string | null;
  /** The later of its push and the last write of its bytes (a push again): the grace window counts from it. */
  touchedAt: number;
  /** Its tags, in byte order. */
  tags: string[];
  /** The manifests it lists (an index's), as recorded. */
  children: string[];
}

/** A blob the collector is deleting: what has to go from the store with it. */
export interface DeletingBlob {
  digest: string;
  size: number;
  /** The repositories linking it (their `_layers` links go with it), in byte order. */
  repositories: string[];
}

/** The space a repository's manifests hold. */
export interface UsageRow {
  repository: string;
  manifests: number;
  /** Distinct blobs: the manifests' own bytes and every blob they reference. */
  blobs: number;
  /** Their bytes: each distinct blob once. */
  bytes: number;
  /** The part of `bytes` that no other repository's manifests hold (what deleting the repository frees). */
  uniqueBytes: number;
  /** The part of `bytes` that other repositories' manifests hold too. */
  sharedBytes: number;
}

/** A manifest that uses a digest (as a layer or config, or as a child), with its tags. */
export interface ManifestUse {
  repository: string;
  digest: string;
  tags: string[];
}

/**
 * Garbage collection's side of the index: the blob state machine (live → candidate → deleting →
 * gone), holds for writes in flight, the collector's reads, space, and what `verify` reads.
 *
 * A blob is a candidate only if no manifest of any repository references it (as a layer or
 * config) and it is not itself a manifest of any repository. Candidates are taken back by any
 * use (linkedBlobSize, addBlob, claimBlob, a checked putManifest); `beginDeleting` is the
 * compare-and-set that the collector's deletion passes, and it checks the references again in its
 * own transaction, so that a manifest committed before it keeps every blob it references.
 */
/** How RegistryIndex.putManifest checks what a manifest references. */
export interface PutManifestOptions {
  /** Check (and take back) the blobs and children in the transaction (a push). */
  readonly checkReferences?: boolean;
  /** Blobs the registry need not hold (foreign layers with urls): not checked. */
  readonly external?: readonly string[];
  /** Events for the outbox (OutboxIndex), written in the same transaction. */
  readonly events?: readonly string[];
}

export interface GcIndex {
  /**
   * Claims a blob about to be written to the store (an upload's commit, a manifest's bytes):
   * records it if new (size, times `now`), takes it back if a candidate, and holds it until
   * `holdUntil` (no marking takes it meanwhile). Holds are counted: two writes of the same blob
   * hold it until both release it (or the later `holdUntil` passes, for a writer that died).
   * Returns false, changing nothing, while it is being deleted.
   */
  claimBlob(digest: string, size: number, now: number, holdUntil: number): Promise<boolean>;
  /** Ends one claim's hold (its write is linked or recorded, or failed); the last one ends the hold. */
  releaseBlob(digest: string): Promise<void>;
  blobState(digest: string): Promise<BlobStateRow | undefined>;

  /** Every manifest of the repository, in digest order. */
  manifestGraph(repoId: number): Promise<ManifestNode[]>;
  /**
   * Removes the manifests of the repository that `decide` names, given the repository's graph as
   * it is inside one transaction that no manifest or tag write of the repository interleaves
   * (with their references; a named manifest that has tags keeps them and is not removed). Bumps
   * the repository's tags version. Returns the digests removed, in digest order.
   */
  removeManifestsIf(repoId: number, decide: (graph: readonly ManifestNode[]) => readonly string[]): Promise<string[]>;

  /**
   * The blobs that marking would make candidates now (dry run): unreferenced, not a manifest,
   * live, not held at `now`, touched before `cutoff`; in digest order after `after`.
   */
  unreferencedBlobs(cutoff: number, now: number, after: string, limit: number): Promise<Array<{ digest: string; size: number }>>;
  /** Makes those blobs candidates (stateAt `now`), in one statement; returns how many and their bytes. */
  markCandidates(cutoff: number, now: number): Promise<{ count: number; bytes: number }>;
  /** Candidates in digest order after `after`. */
  candidates(after: string, limit: number): Promise<string[]>;
  /**
   * The compare-and-set: of `digests`, those that are still candidates, not held at `now`, still
   * unreferenced and still not a manifest become 'deleting' (stateAt `now`), in one transaction.
   * Returns them (with the repositories linking them), in digest order; the other candidates among
   * `digests` (held, or referenced again) become live again, to be judged afresh by a later run.
   */
  beginDeleting(digests: readonly string[], now: number): Promise<DeletingBlob[]>;
  /** Blobs left 'deleting' since before `before` (a run cut short), in digest order after `after`. */
  staleDeleting(before: number, after: string, limit: number): Promise<DeletingBlob[]>;
  /** Removes the rows (links and blob) of blobs being deleted whose bytes are gone; others are left alone. */
  finishDeleting(digests: readonly string[]): Promise<void>;
  /** Puts blobs being deleted back to live, touched at `now` (the store would not delete them). */
  abortDeleting(digests: readonly string[], now: number): Promise<void>;

  /** The space of every repository (or of one), in name order; a repository without manifests has zeros. */
  usage(repo?: string): Promise<UsageRow[]>;

  // ---- what verify reads and repairs ----
  /** Blob rows in digest order after `after`. */
  blobs(after: string, limit: number): Promise<BlobStateRow[]>;
  /** Blob links in (repository, digest) order after the given key. */
  links(after: { repository: string; digest: string }, limit: number): Promise<Array<{ repository: string; digest: string }>>;
  /** Manifests in (repository, digest) order after the given key, without content. */
  manifests(
    after: { repository: string; digest: string },
    limit: number,
  ): Promise<Array<{ repository: string; digest: string; mediaType: string; size: number }>>;
  /** Tags in (repository, tag) order after the given key. */
  tags(after: { repository: string; tag: string }, limit: number): Promise<Array<{ repository: string; tag: string; digest: string }>>;
  /** The manifests of any repository that reference `digest` (as a blob or as a child), in (repository, digest) order. */
  usersOf(digest: string): Promise<ManifestUse[]>;
  /** The repositories in which `digest` is a manifest, in byte order (a dry run's accounting). */
  manifestRepositories(digest: string): Promise<string[]>;
  /** Removes a blob's row and its links whatever its state (its bytes are gone or quarantined). */
  removeBlob(digest: string): Promise<boolean>;
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

/** ECR's repository settings, creation templates, pull-through cache rules and registry-wide settings. */
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

  pullThroughRule(prefix: string): Promise<PullThroughRuleRow | undefined>;
  /** Rules with a prefix after `after` (byte order), at most `limit`. */
  pullThroughRules(after: string, limit: number): Promise<PullThroughRuleRow[]>;
  /** False (and nothing written) if a rule has this prefix. */
  insertPullThroughRule(prefix: string, rule: string, now: number): Promise<boolean>;
  /** False if no rule has this prefix. */
  updatePullThroughRule(prefix: string, rule: string, now: number): Promise<boolean>;
  deletePullThroughRule(prefix: string): Promise<boolean>;

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

/** The blob is being deleted by the collector: nothing was written (the caller waits or gives up). */
export class BlobDeletingError extends Error {
  override name = 'BlobDeletingError';
  constructor(readonly digest: string) {
    super(`the blob ${digest} is being deleted by the garbage collector`);
  }
}

/** A checked putManifest found references the repository cannot satisfy; nothing was written. */
export class ManifestReferencesError extends Error {
  override name = 'ManifestReferencesError';
  constructor(readonly problems: ReadonlyArray<{ digest: string; reason: string }>) {
    super(`the manifest references content unknown to the repository: ${problems.map((p) => p.digest).join(', ')}`);
  }
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
/** An event of the outbox, numbered in commit order. */
export interface OutboxRow {
  seq: number;
  /** The event's JSON text (src/events/events.ts). */
  event: string;
}

/**
 * The outbox of event notifications: events are written by the registry's writes in their own
 * transactions (the `events` arguments of RegistryIndex), or appended here (batched pulls), and
 * read in order by the notifier, which keeps one cursor per endpoint (the last number delivered).
 * Numbers grow in commit order: no event ever appears before one with a lower number.
 */
export interface OutboxIndex {
  /** Appends events in a transaction of their own. */
  append(events: readonly string[], now?: number): Promise<void>;
  /** Events numbered after `seq`, oldest first, at most `limit`. */
  after(seq: number, limit: number): Promise<OutboxRow[]>;
  /** The highest number the outbox holds (0 when it is empty) and how many events it holds. */
  stats(): Promise<{ last: number; count: number }>;
  /** How many events are numbered after `after` and up to `through`. */
  countBetween(after: number, through: number): Promise<number>;
  /** The number of the `n`th newest event (what a trim down to `n` events keeps from), or undefined if there are fewer. */
  nthNewest(n: number): Promise<number | undefined>;
  /** Deletes the events numbered up to `seq`; returns how many went. */
  deleteThrough(seq: number): Promise<number>;
  /** The endpoints' cursors (the last number each has received). */
  cursors(): Promise<Map<string, number>>;
  /** Sets an endpoint's cursor (never moving it back). */
  setCursor(endpoint: string, seq: number, now?: number): Promise<void>;
}

export interface Index {
  readonly driver: IndexDriver;
  readonly registry: RegistryIndex;
  readonly accessKeys: AccessKeyIndex;
  readonly ecr: EcrIndex;
  readonly images: ImageIndex;
  readonly pullTimes: PullTimeIndex;
  readonly previews: LifecyclePreviewIndex;
  readonly gc: GcIndex;
  readonly outbox: OutboxIndex;
  readonly locks: IndexLocks;
  /** A short description for logs (the file, or the database's host and name, never a password). */
  readonly where: string;
  close(): Promise<void>;
}
