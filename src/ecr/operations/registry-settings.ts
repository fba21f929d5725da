/**
 * ECR's registry-wide operations: repository creation templates, the registry policy and
 * DescribeRegistry. Templates and the registry policy are the registry's own settings: they
 * need ctx.requireRegistry(). Templates for CREATE_ON_PUSH shape the repositories a push
 * creates, those for PULL_THROUGH_CACHE the repositories a first pull under a pull-through cache
 * rule creates (src/ecr/repositories.ts); those for REPLICATION are kept only (no replication).
 */
import { ecrErrors } from '../errors.js';
import type { OperationTable } from '../operation.js';
import {
  APPLIED_FOR,
  templateKey,
  templateShape,
  type AppliedFor,
  type CreationTemplate,
  type TemplateSettings,
} from '../creation-templates.js';
import { repositoryErrors } from '../repositories.js';
import { takesExclusions, type ExclusionFilter, type TagMutability } from '../tag-mutability.js';
import { InputReader, MAX_RESULTS, type StringRule } from '../validate.js';
import {
  POLICY_TEXT,
  TAG_MUTABILITY,
  checkEncryption,
  checkLifecyclePolicy,
  checkMutability,
  checkPolicyText,
  checkTags,
  decodeToken,
  encodeToken,
  readEncryption,
  readExclusionFilters,
  readTags,
} from './repository-inputs.js';

/** The model's Prefix: a repository namespace (a trailing `/` allowed) or ROOT. */
export const TEMPLATE_PREFIX: StringRule = {
  min: 1,
  max: 256,
  pattern: /^(?:[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*\/?|ROOT)$/,
};
/** A template's KMS key: empty or a key's full ARN. */
const TEMPLATE_KMS_KEY: StringRule = { min: 0, max: 2048, pattern: /^(?:|arn:aws[a-z0-9-]*:kms:[a-z0-9-]+:[0-9]{12}:key\/[a-z0-9-]+)$/ };
const DEFAULT_PAGE = 100;

export const registrySettingsOperations: OperationTable = {
  async CreateRepositoryCreationTemplate(input, ctx) {
    const v = new InputReader(input);
    const prefix = v.string('prefix', { ...TEMPLATE_PREFIX, required: true })!;
    const settings = readTemplate(v, true);
    v.done();
    const mutability = settings.imageTagMutability ?? 'MUTABLE';
    checkTemplate(settings, mutability, settings.imageTagMutabilityExclusionFilters);
    ctx.requireRegistry();
    const created = await ctx.services.repositories.templates.create(prefix, settings as TemplateSettings);
    return { registryId: ctx.ecr.accountId, repositoryCreationTemplate: templateShape(created) };
  },

  async DescribeRepositoryCreationTemplates(input, ctx) {
    const v = new InputReader(input);
    const prefixes = v.strings('prefixes', {}, TEMPLATE_PREFIX);
    const nextToken = v.string('nextToken');
    const maxResults = v.integer('maxResults', MAX_RESULTS);
    v.done();
    if (prefixes && (nextToken !== undefined || maxResults !== undefined)) {
      throw ecrErrors.invalidParameter('Invalid parameter: nextToken and maxResults cannot be used together with prefixes');
    }
    ctx.requireRegistry();
    const templates = ctx.services.repositories.templates;
    if (prefixes) {
      const keys = [...new Set(prefixes.map(templateKey))];
      const found: CreationTemplate[] = [];
      for (const k of keys) {
        const t = await templates.get(k);
        if (t !== undefined) found.push(t);
      }
      return { registryId: ctx.ecr.accountId, repositoryCreationTemplates: found.map(templateShape) };
    }
    const limit = maxResults ?? DEFAULT_PAGE;
    const page = await templates.list(nextToken === undefined ? '' : decodeToken(nextToken), limit + 1);
    const more = page.length > limit;
    const shown = page.slice(0, limit);
    return {
      registryId: ctx.ecr.accountId,
      repositoryCreationTemplates: shown.map(templateShape),
      ...(more ? { nextToken: encodeToken(templateKey(shown[shown.length - 1]!.prefix)) } : {}),
    };
  },

  async UpdateRepositoryCreationTemplate(input, ctx) {
    const v = new InputReader(input);
    const prefix = v.string('prefix', { ...TEMPLATE_PREFIX, required: true })!;
    const changes = readTemplate(v, false);
    v.done();
    ctx.requireRegistry();
    const templates = ctx.services.repositories.templates;
    const current = await templates.require(prefix);
    // A mutability without exclusions drops the filters it no longer takes.
    const mutability = changes.imageTagMutability ?? current.imageTagMutability ?? 'MUTABLE';
    const filters = changes.imageTagMutabilityExclusionFilters ?? (takesExclusions(mutability) ? current.imageTagMutabilityExclusionFilters : undefined);
    checkTemplate(changes, mutability, filters);
    const updated = await templates.update(prefix, { ...changes, imageTagMutabilityExclusionFilters: filters ?? [] });
    return { registryId: ctx.ecr.accountId, repositoryCreationTemplate: templateShape(updated) };
  },

  async DeleteRepositoryCreationTemplate(input, ctx) {
    const v = new InputReader(input);
    const prefix = v.string('prefix', { ...TEMPLATE_PREFIX, required: true })!;
    v.done();
    ctx.requireRegistry();
    const deleted = await ctx.services.repositories.templates.delete(prefix);
    return { registryId: ctx.ecr.accountId, repositoryCreationTemplate: templateShape(deleted) };
  },

  async PutRegistryPolicy(input, ctx) {
    const v = new InputReader(input);
    const policyText = v.string('policyText', { ...POLICY_TEXT, required: true })!;
    v.done();
    checkPolicyText(policyText, 'registry');
    ctx.requireRegistry();
    await ctx.services.repositories.setRegistryPolicy(policyText);
    return { registryId: ctx.ecr.accountId, policyText };
  },

  async GetRegistryPolicy(_input, ctx) {
    ctx.requireRegistry();
    const policyText = await ctx.services.repositories.registryPolicy();
    if (policyText === undefined) throw repositoryErrors.registryPolicyNotFound(ctx.ecr.accountId);
    return { registryId: ctx.ecr.accountId, policyText };
  },

  async DeleteRegistryPolicy(_input, ctx) {
    ctx.requireRegistry();
    return { registryId: ctx.ecr.accountId, policyText: await ctx.services.repositories.deleteRegistryPolicy() };
  },

  /** Any signed-in caller: the registry's id, and no replication (this registry has none). */
  async DescribeRegistry(_input, ctx) {
    return { registryId: ctx.ecr.accountId, replicationConfiguration: { rules: [] } };
  },
};

type TemplateInput = { -readonly [K in keyof TemplateSettings]?: TemplateSettings[K] };

/** A template's settings as the request gives them (appliedFor required on create). */
function readTemplate(v: InputReader, create: boolean): TemplateInput {
  const description = v.string('description', { max: 256 });
  const encryption = readEncryption(v, 'encryptionConfiguration', TEMPLATE_KMS_KEY);
  const resourceTags = readTags(v, 'resourceTags');
  const mutability = v.string('imageTagMutability', TAG_MUTABILITY) as TagMutability | undefined;
  const filters = readExclusionFilters(v, 'imageTagMutabilityExclusionFilters');
  const repositoryPolicy = v.string('repositoryPolicy', POLICY_TEXT);
  const lifecyclePolicy = v.string('lifecyclePolicy', { min: 0, max: 30720 });
  const appliedFor = v.strings('appliedFor', { required: create }, { enum: APPLIED_FOR }) as AppliedFor[] | undefined;
  const customRoleArn = v.string('customRoleArn', { max: 2048 });
  return {
    ...(description !== undefined ? { description } : {}),
    ...(encryption ? { encryptionConfiguration: encryption } : {}),
    ...(resourceTags ? { resourceTags } : {}),
    ...(mutability ? { imageTagMutability: mutability } : {}),
    ...(filters ? { imageTagMutabilityExclusionFilters: filters } : {}),
    ...(repositoryPolicy !== undefined ? { repositoryPolicy } : {}),
    ...(lifecyclePolicy !== undefined ? { lifecyclePolicy } : {}),
    ...(appliedFor ? { appliedFor: [...new Set(appliedFor)] } : {}),
    ...(customRoleArn !== undefined ? { customRoleArn } : {}),
  };
}

/** What the model states in words: the same checks as a repository's settings get. */
function checkTemplate(t: TemplateInput, mutability: TagMutability, filters: readonly ExclusionFilter[] | undefined): void {
  checkMutability(mutability, filters);
  if (t.resourceTags) checkTags(t.resourceTags);
  if (t.encryptionConfiguration) checkEncryption(t.encryptionConfiguration);
  if (t.repositoryPolicy) checkPolicyText(t.repositoryPolicy, 'repository');
  if (t.lifecyclePolicy) checkLifecyclePolicy(t.lifecyclePolicy);
  if (t.appliedFor && t.appliedFor.length === 0) {
    throw ecrErrors.invalidParameter("Invalid parameter at 'appliedFor': name at least one of CREATE_ON_PUSH, PULL_THROUGH_CACHE, REPLICATION");
  }
}
