/**
 * ECR's repositories: their settings (tag mutability, scanning, encryption, resource tags,
 * repository and lifecycle policies), the creation templates and the registry policy, and the
 * push rules they make the registry enforce (`rules`): a push needs an existing repository or
 * one that a CREATE_ON_PUSH template (or `ecr.createOnPush`) creates, and an immutable tag
 * does not move. A first pull under a pull-through cache rule creates its repository with a
 * PULL_THROUGH_CACHE template's settings (createForPullThrough). Settings live in the index (EcrIndex of src/index/contract.ts); a
 * repository's content is the registry's.
 */
import type { EcrConfig } from '../config/config.js';
import type { EcrIndex, EcrRepositoryRow } from '../index/contract.js';
import { RegistryError } from '../oci/errors.js';
import type { Registry } from '../registry/registry.js';
import { ImmutableTagError, RepositoryNotFoundError, type RepositoryRules, type TagMove } from '../registry/repository-rules.js';
import { CreationTemplates, type CreationTemplate } from './creation-templates.js';
import { EcrError, ecrErrors } from './errors.js';
import type { OperationContext } from './operation.js';
import { isTagImmutable, type ExclusionFilter, type TagMutability } from './tag-mutability.js';
import { REPOSITORY_NAME } from './validate.js';

export const ENCRYPTION_TYPES = ['AES256', 'KMS', 'KMS_DSSE'] as const;
export type EncryptionType = (typeof ENCRYPTION_TYPES)[number];
export interface Encryption {
  readonly encryptionType: EncryptionType;
  readonly kmsKey?: string;
}

/** A resource tag, spelt as ECR's API spells it. */
export interface ResourceTag {
  readonly Key: string;
  readonly Value: string;
}
/** At most this many resource tags on a repository (TooManyTagsException past it). */
export const MAX_RESOURCE_TAGS = 50;

export interface EcrRepository {
  readonly name: string;
  /** ms since the epoch */
  readonly createdAt: number;
  readonly imageTagMutability: TagMutability;
  readonly imageTagMutabilityExclusionFilters: readonly ExclusionFilter[];
  readonly scanOnPush: boolean;
  readonly encryption: Encryption;
}

/** What a new repository may be given; the rest has ECR's defaults. */
export interface RepositorySettings {
  readonly imageTagMutability?: TagMutability;
  readonly imageTagMutabilityExclusionFilters?: readonly ExclusionFilter[];
  readonly scanOnPush?: boolean;
  readonly encryption?: Encryption;
  readonly resourceTags?: readonly ResourceTag[];
  readonly policy?: string;
  readonly lifecyclePolicy?: string;
}

const REGISTRY_POLICY = 'registryPolicy';

/** Settings of a repository or of the registry, kept by ECR's API and enforced on pushes. */
export class EcrRepositories {
  /** The push rules the registry enforces (the app installs them: registry.rules = this.rules). */
  readonly rules: RepositoryRules;
  /** The repository creation templates (CREATE_ON_PUSH ones shape the repositories a push creates). */
  readonly templates: CreationTemplates;
  /** Repositories being deleted now: pushes to them are refused until it is done. */
  private readonly deleting = new Set<string>();

  constructor(
    private readonly registry: Registry,
    private readonly index: EcrIndex,
    private readonly ecr: EcrConfig,
    private readonly now: () => number = Date.now,
  ) {
    this.templates = new CreationTemplates(index, ecr, now);
    this.rules = Object.freeze({
      admitPush: (repo: string) => this.admitPush(repo),
      checkTagMoves: (repo: string, moves: readonly TagMove[]) => this.checkTagMoves(repo, moves),
    });
  }

  // ---- repositories ----

  async get(name: string): Promise<EcrRepository | undefined> {
    const row = await this.index.repository(name);
    return row ? toRepository(row) : undefined;
  }

  /** The repository, or RepositoryNotFoundException. */
  async require(name: string): Promise<EcrRepository> {
    const repo = await this.get(name);
    if (!repo) throw ecrErrors.repositoryNotFound(name, this.ecr.accountId);
    return repo;
  }

  /** Repositories named after `after`, sorted by name, at most `limit`. */
  async list(after: string, limit: number): Promise<EcrRepository[]> {
    return (await this.index.repositories(after, limit)).map(toRepository);
  }

  /** Creates a repository; RepositoryAlreadyExistsException if one has the name. */
  async create(name: string, settings: RepositorySettings = {}): Promise<EcrRepository> {
    const now = this.now();
    const created = await this.index.insertRepository({
      name,
      createdAt: now,
      tagMutability: settings.imageTagMutability ?? 'MUTABLE',
      mutabilityExclusions: JSON.stringify(settings.imageTagMutabilityExclusionFilters ?? []),
      scanOnPush: settings.scanOnPush ?? false,
      encryption: JSON.stringify(settings.encryption ?? { encryptionType: 'AES256' }),
      resourceTags: JSON.stringify(settings.resourceTags ?? []),
      policy: settings.policy ?? null,
      lifecyclePolicy: settings.lifecyclePolicy ?? null,
      lifecyclePolicyUpdatedAt: settings.lifecyclePolicy !== undefined ? now : null,
    });
    if (!created) throw ecrErrors.repositoryAlreadyExists(name, this.ecr.accountId);
    return this.require(name);
  }

  /** Whether the repository holds an image (a manifest). */
  hasImages(name: string): Promise<boolean> {
    return this.registry.index.repositoryHasManifests(name);
  }

  /**
   * Deletes a repository: without `force`, only if it holds no image (RepositoryNotEmptyException);
   * with it, its images, tags and layer links too. Its open uploads end, its settings and pull
   * times are forgotten. Returns the repository as it was.
   */
  async delete(name: string, force: boolean, signal?: AbortSignal): Promise<EcrRepository> {
    const repo = await this.require(name);
    if (!force && (await this.hasImages(name))) throw ecrErrors.repositoryNotEmpty(name, this.ecr.accountId);
    if (this.deleting.has(name)) throw ecrErrors.repositoryNotFound(name, this.ecr.accountId);
    // While it is deleted, pushes to it are refused (admitPush), also uploads that began before.
    this.deleting.add(name);
    try {
      await this.registry.uploads.cancelRepository(name);
      // Checked again under the repository's write lock: a push may have landed meanwhile.
      const deleted = await this.registry.manifests.deleteRepository(name, { onlyIfEmpty: !force, ...(signal ? { signal } : {}) });
      if (!deleted) throw ecrErrors.repositoryNotEmpty(name, this.ecr.accountId);
      await this.index.deleteRepository(name);
      await this.registry.pulls.forget(name);
    } finally {
      this.deleting.delete(name);
    }
    return repo;
  }

  async setTagMutability(name: string, mutability: TagMutability, filters: readonly ExclusionFilter[]): Promise<EcrRepository> {
    await this.change(name, { tagMutability: mutability, mutabilityExclusions: JSON.stringify(filters) });
    return this.require(name);
  }

  async setScanOnPush(name: string, scanOnPush: boolean): Promise<EcrRepository> {
    await this.change(name, { scanOnPush });
    return this.require(name);
  }

  // ---- repository policy ----

  async policy(name: string): Promise<string | undefined> {
    return (await this.row(name)).policy ?? undefined;
  }

  async setPolicy(name: string, text: string): Promise<void> {
    await this.change(name, { policy: text });
  }

  /** Removes the policy and returns it; RepositoryPolicyNotFoundException if there is none. */
  async deletePolicy(name: string): Promise<string> {
    const text = await this.policy(name);
    if (text === undefined) throw repositoryErrors.policyNotFound(name, this.ecr.accountId);
    await this.change(name, { policy: null });
    return text;
  }

  // ---- lifecycle policy ----

  /** The policy text and when it was last put or evaluated (ms), if the repository has one. */
  async lifecyclePolicy(name: string): Promise<{ text: string; updatedAt: number } | undefined> {
    const row = await this.index.repository(name);
    if (!row?.lifecyclePolicy) return undefined;
    return { text: row.lifecyclePolicy, updatedAt: row.lifecyclePolicyUpdatedAt ?? row.createdAt };
  }

  /** Puts the (already validated) policy text; the repository must exist. */
  async setLifecyclePolicy(name: string, text: string): Promise<{ text: string; updatedAt: number }> {
    const at = this.now();
    await this.change(name, { lifecyclePolicy: text, lifecyclePolicyUpdatedAt: at });
    return { text, updatedAt: at };
  }

  /** Removes the policy and returns it; LifecyclePolicyNotFoundException if there is none. */
  async deleteLifecyclePolicy(name: string): Promise<{ text: string; updatedAt: number }> {
    await this.require(name);
    const policy = await this.lifecyclePolicy(name);
    if (!policy) throw repositoryErrors.lifecyclePolicyNotFound(name, this.ecr.accountId);
    await this.change(name, { lifecyclePolicy: null, lifecyclePolicyUpdatedAt: null });
    return policy;
  }

  /** Notes that the lifecycle policy was evaluated at `at` (GetLifecyclePolicy's lastEvaluatedAt). */
  async noteLifecycleEvaluated(name: string, at: number): Promise<void> {
    if ((await this.index.repository(name))?.lifecyclePolicy) await this.index.update(name, { lifecyclePolicyUpdatedAt: at });
  }

  /** Every repository with a lifecycle policy, sorted. */
  withLifecyclePolicies(): Promise<string[]> {
    return this.index.withLifecyclePolicies();
  }

  // ---- resource tags ----

  async tags(name: string): Promise<ResourceTag[]> {
    return JSON.parse((await this.row(name)).resourceTags) as ResourceTag[];
  }

  /** Adds tags, a tag of an existing key replacing its value; TooManyTagsException past 50. */
  async tag(name: string, tags: readonly ResourceTag[]): Promise<void> {
    const merged = new Map((await this.tags(name)).map((t) => [t.Key, t.Value]));
    for (const t of tags) merged.set(t.Key, t.Value);
    if (merged.size > MAX_RESOURCE_TAGS) throw repositoryErrors.tooManyTags(merged.size);
    await this.change(name, { resourceTags: JSON.stringify([...merged].map(([Key, Value]) => ({ Key, Value }))) });
  }

  /** Removes the tags of these keys (a key the repository has no tag for is ignored). */
  async untag(name: string, keys: readonly string[]): Promise<void> {
    const drop = new Set(keys);
    const kept = (await this.tags(name)).filter((t) => !drop.has(t.Key));
    await this.change(name, { resourceTags: JSON.stringify(kept) });
  }

  // ---- registry policy ----

  registryPolicy(): Promise<string | undefined> {
    return this.index.setting(REGISTRY_POLICY);
  }

  setRegistryPolicy(text: string): Promise<void> {
    return this.index.putSetting(REGISTRY_POLICY, text);
  }

  /** Removes the registry policy and returns it; RegistryPolicyNotFoundException if there is none. */
  async deleteRegistryPolicy(): Promise<string> {
    const text = await this.registryPolicy();
    if (text === undefined || !(await this.index.deleteSetting(REGISTRY_POLICY))) throw repositoryErrors.registryPolicyNotFound(this.ecr.accountId);
    return text;
  }

  // ---- the push rules ----

  private async admitPush(repo: string): Promise<void> {
    if (this.deleting.has(repo)) throw new RepositoryNotFoundError(repo, this.ecr.accountId);
    if (await this.index.exists(repo)) return;
    const template = await this.templates.applicableTo(repo, 'CREATE_ON_PUSH');
    if (!template && !this.ecr.createOnPush) throw new RepositoryNotFoundError(repo, this.ecr.accountId);
    await this.createFromTemplate(repo, template);
  }

  /**
   * Creates the repository of a first pull under a pull-through cache rule, as ECR does: with
   * the settings of the PULL_THROUGH_CACHE template that covers the name, if one does, else
   * ECR's defaults. Nothing if it exists; a name ECR cannot take is NAME_INVALID.
   */
  async createForPullThrough(name: string): Promise<void> {
    if (this.deleting.has(name)) throw new RepositoryNotFoundError(name, this.ecr.accountId);
    if (await this.index.exists(name)) return;
    await this.createFromTemplate(name, await this.templates.applicableTo(name, 'PULL_THROUGH_CACHE'));
  }

  /** Creates a repository on the user's behalf, with a template's settings; one created meanwhile is as good. */
  private async createFromTemplate(name: string, template: CreationTemplate | undefined): Promise<void> {
    if (!isRepositoryName(name)) {
      // /v2/ takes names ECR does not (one character, or longer than 256): ECR cannot create them.
      throw new RegistryError('NAME_INVALID', 'ECR repository names are 2 to 256 characters of its pattern', { detail: { name } });
    }
    try {
      await this.create(name, template ? templateSettings(template) : {});
    } catch (err) {
      // Another request created it meanwhile: it exists, which is all the caller needs.
      if (!(err instanceof EcrError && err.type === 'RepositoryAlreadyExistsException')) throw err;
    }
  }

  private async checkTagMoves(repo: string, moves: readonly TagMove[]): Promise<void> {
    const settings = await this.get(repo);
    if (!settings || settings.imageTagMutability === 'MUTABLE') return;
    for (const move of moves) {
      if (move.from === undefined || move.from === move.to) continue; // a new tag, or not a move
      if (isTagImmutable(settings.imageTagMutability, settings.imageTagMutabilityExclusionFilters, move.tag)) {
        throw new ImmutableTagError(repo, move.tag);
      }
    }
  }

  // ---- internals ----

  private async row(name: string): Promise<EcrRepositoryRow> {
    const row = await this.index.repository(name);
    if (!row) throw ecrErrors.repositoryNotFound(name, this.ecr.accountId);
    return row;
  }

  private async change(name: string, changes: Parameters<EcrIndex['update']>[1]): Promise<void> {
    if (!(await this.index.update(name, changes))) throw ecrErrors.repositoryNotFound(name, this.ecr.accountId);
  }
}

/** ECR's Repository shape of the API (createdAt in epoch seconds). */
export function repositoryShape(repo: EcrRepository, ctx: Pick<OperationContext, 'ecr' | 'registryHost' | 'repositoryArn'>): object {
  return {
    repositoryArn: ctx.repositoryArn(repo.name),
    registryId: ctx.ecr.accountId,
    repositoryName: repo.name,
    repositoryUri: `${ctx.registryHost}/${repo.name}`,
    createdAt: repo.createdAt / 1000,
    imageTagMutability: repo.imageTagMutability,
    ...(repo.imageTagMutabilityExclusionFilters.length > 0
      ? { imageTagMutabilityExclusionFilters: repo.imageTagMutabilityExclusionFilters.map((f) => ({ ...f })) }
      : {}),
    imageScanningConfiguration: { scanOnPush: repo.scanOnPush },
    encryptionConfiguration: { ...repo.encryption },
  };
}

/** ECR's messages for the failures of this room that src/ecr/errors.ts does not hold. */
export const repositoryErrors = {
  policyNotFound: (name: string, registryId: string) =>
    new EcrError(
      'RepositoryPolicyNotFoundException',
      `Repository policy does not exist for the repository with name '${name}' in the registry with id '${registryId}'`,
    ),
  lifecyclePolicyNotFound: (name: string, registryId: string) =>
    new EcrError(
      'LifecyclePolicyNotFoundException',
      `Lifecycle policy does not exist for the repository with name '${name}' in the registry with id '${registryId}'`,
    ),
  registryPolicyNotFound: (registryId: string) =>
    new EcrError('RegistryPolicyNotFoundException', `Registry policy does not exist in the registry with id '${registryId}'`),
  tooManyTags: (count: number) =>
    new EcrError(
      'TooManyTagsException',
      `The repository would have ${count} tags; a repository can have at most ${MAX_RESOURCE_TAGS}`,
    ),
};

/** Whether ECR accepts the name for a repository (2 to 256 characters of its pattern). */
export function isRepositoryName(name: string): boolean {
  return name.length >= REPOSITORY_NAME.min! && name.length <= REPOSITORY_NAME.max! && REPOSITORY_NAME.pattern!.test(name);
}

/** The settings a template gives the repositories created under it. */
function templateSettings(template: CreationTemplate): RepositorySettings {
  return {
    ...(template.imageTagMutability ? { imageTagMutability: template.imageTagMutability } : {}),
    ...(template.imageTagMutabilityExclusionFilters ? { imageTagMutabilityExclusionFilters: template.imageTagMutabilityExclusionFilters } : {}),
    ...(template.encryptionConfiguration ? { encryption: template.encryptionConfiguration } : {}),
    ...(template.resourceTags ? { resourceTags: template.resourceTags } : {}),
    ...(template.repositoryPolicy ? { policy: template.repositoryPolicy } : {}),
    ...(template.lifecyclePolicy ? { lifecyclePolicy: template.lifecyclePolicy } : {}),
  };
}

function toRepository(row: EcrRepositoryRow): EcrRepository {
  return {
    name: row.name,
    createdAt: row.createdAt,
    imageTagMutability: row.tagMutability as TagMutability,
    imageTagMutabilityExclusionFilters: JSON.parse(row.mutabilityExclusions) as ExclusionFilter[],
    scanOnPush: row.scanOnPush,
    encryption: JSON.parse(row.encryption) as Encryption,
  };
}
