/**
 * ECR's repository creation templates: the settings of repositories that ECR creates on the
 * user's behalf, by repository namespace prefix. A prefix `prod` covers the repositories under
 * `prod/` (ECR reads it as `prod/`, so `prod` and `prod/` are one template); `ROOT` covers
 * every repository no other template does. This registry creates repositories on push
 * (CREATE_ON_PUSH) and on the first pull under a pull-through cache rule (PULL_THROUGH_CACHE);
 * templates for REPLICATION are kept, not applied (there is no replication).
 */
import type { EcrConfig } from '../config/config.js';
import type { EcrIndex } from '../index/contract.js';
import { EcrError } from './errors.js';
import type { Encryption, ResourceTag } from './repositories.js';
import type { ExclusionFilter, TagMutability } from './tag-mutability.js';

export const APPLIED_FOR = ['REPLICATION', 'PULL_THROUGH_CACHE', 'CREATE_ON_PUSH'] as const;
export type AppliedFor = (typeof APPLIED_FOR)[number];

/** A template's settings, as the API has them. */
export interface TemplateSettings {
  readonly description?: string;
  readonly encryptionConfiguration?: Encryption;
  readonly resourceTags?: readonly ResourceTag[];
  readonly imageTagMutability?: TagMutability;
  readonly imageTagMutabilityExclusionFilters?: readonly ExclusionFilter[];
  readonly repositoryPolicy?: string;
  readonly lifecyclePolicy?: string;
  readonly appliedFor: readonly AppliedFor[];
  readonly customRoleArn?: string;
}

export interface CreationTemplate extends TemplateSettings {
  /** As it was given (`prod`, `prod/` or `ROOT`). */
  readonly prefix: string;
  /** ms since the epoch */
  readonly createdAt: number;
  readonly updatedAt: number;
}

/** The prefix of the template that applies to every repository no other template covers. */
export const ROOT_PREFIX = 'ROOT';

export class CreationTemplates {
  constructor(
    private readonly index: EcrIndex,
    private readonly ecr: EcrConfig,
    private readonly now: () => number = Date.now,
  ) {}

  async get(prefix: string): Promise<CreationTemplate | undefined> {
    const row = await this.index.template(templateKey(prefix));
    return row ? toTemplate(row) : undefined;
  }

  /** Templates after the key `after` (a prefix without its trailing `/`), sorted, at most `limit`. */
  async list(after: string, limit: number): Promise<CreationTemplate[]> {
    return (await this.index.templates(after, limit)).map(toTemplate);
  }

  /** TemplateAlreadyExistsException if a template has the prefix. */
  async create(prefix: string, settings: TemplateSettings): Promise<CreationTemplate> {
    if (!(await this.index.insertTemplate(templateKey(prefix), JSON.stringify({ ...settings, prefix }), this.now()))) {
      throw templateErrors.alreadyExists(prefix, this.ecr.accountId);
    }
    return (await this.get(prefix))!;
  }

  /** Changes the settings given; TemplateNotFoundException if no template has the prefix. */
  async update(prefix: string, changes: Partial<TemplateSettings>): Promise<CreationTemplate> {
    const current = await this.require(prefix);
    const { createdAt: _created, updatedAt: _updated, ...settings } = current;
    const defined = Object.fromEntries(Object.entries(changes).filter(([, v]) => v !== undefined));
    await this.index.updateTemplate(templateKey(prefix), JSON.stringify({ ...settings, ...defined }), this.now());
    return (await this.get(prefix))!;
  }

  /** Removes the template and returns it; TemplateNotFoundException if there is none. */
  async delete(prefix: string): Promise<CreationTemplate> {
    const current = await this.require(prefix);
    if (!(await this.index.deleteTemplate(templateKey(prefix)))) throw templateErrors.notFound(prefix, this.ecr.accountId);
    return current;
  }

  async require(prefix: string): Promise<CreationTemplate> {
    const found = await this.get(prefix);
    if (!found) throw templateErrors.notFound(prefix, this.ecr.accountId);
    return found;
  }

  /**
   * The template for a new repository created for `purpose`: the one of the longest prefix
   * that covers the name (`a/b` covers `a/b/c`, not `a/b` itself nor `a/bc`), else ROOT's.
   * Templates that are not for `purpose` are passed over. One lookup per namespace level.
   */
  async applicableTo(name: string, purpose: AppliedFor): Promise<CreationTemplate | undefined> {
    const parts = name.split('/');
    for (let n = parts.length - 1; n >= 1; n--) {
      const found = await this.get(parts.slice(0, n).join('/'));
      if (found?.appliedFor.includes(purpose)) return found;
    }
    const root = await this.get(ROOT_PREFIX);
    return root?.appliedFor.includes(purpose) ? root : undefined;
  }
}

/** A template's key: ECR reads `prod` as `prod/`, so both name one template. */
export function templateKey(prefix: string): string {
  return prefix !== ROOT_PREFIX && prefix.endsWith('/') ? prefix.slice(0, -1) : prefix;
}

/** ECR's RepositoryCreationTemplate shape of the API (times in epoch seconds). */
export function templateShape(t: CreationTemplate): object {
  return {
    prefix: t.prefix,
    ...(t.description !== undefined ? { description: t.description } : {}),
    encryptionConfiguration: t.encryptionConfiguration ?? { encryptionType: 'AES256' },
    resourceTags: t.resourceTags ?? [],
    imageTagMutability: t.imageTagMutability ?? 'MUTABLE',
    ...(t.imageTagMutabilityExclusionFilters?.length ? { imageTagMutabilityExclusionFilters: t.imageTagMutabilityExclusionFilters } : {}),
    ...(t.repositoryPolicy ? { repositoryPolicy: t.repositoryPolicy } : {}),
    ...(t.lifecyclePolicy ? { lifecyclePolicy: t.lifecyclePolicy } : {}),
    appliedFor: t.appliedFor,
    ...(t.customRoleArn ? { customRoleArn: t.customRoleArn } : {}),
    createdAt: t.createdAt / 1000,
    updatedAt: t.updatedAt / 1000,
  };
}

export const templateErrors = {
  alreadyExists: (prefix: string, registryId: string) =>
    new EcrError(
      'TemplateAlreadyExistsException',
      `The repository creation template with prefix '${prefix}' already exists in the registry with id '${registryId}'`,
    ),
  notFound: (prefix: string, registryId: string) =>
    new EcrError(
      'TemplateNotFoundException',
      `The repository creation template with prefix '${prefix}' does not exist in the registry with id '${registryId}'`,
    ),
};

function toTemplate(row: { template: string; createdAt: number; updatedAt: number }): CreationTemplate {
  return { ...(JSON.parse(row.template) as TemplateSettings & { prefix: string }), createdAt: row.createdAt, updatedAt: row.updatedAt };
}
