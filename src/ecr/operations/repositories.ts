/**
 * ECR's repository operations: repositories and their settings, repository policies, resource
 * tags and lifecycle policies (with the registry-wide ones of ./registry-settings.ts). Each reads
 * its input against the service model, then checks the registry id, then the caller's right on
 * the repository (reads need pull; settings need manage), then that the repository exists.
 */
import type { EcrRepository } from '../repositories.js';
import { isRepositoryName, repositoryErrors, repositoryShape } from '../repositories.js';
import { ecrErrors } from '../errors.js';
import type { OperationContext, OperationTable } from '../operation.js';
import type { TagMutability } from '../tag-mutability.js';
import { InputReader, MAX_RESULTS, REGISTRY_ID, REPOSITORY_NAME } from '../validate.js';
import { registrySettingsOperations } from './registry-settings.js';
import {
  LIFECYCLE_TEXT,
  POLICY_TEXT,
  TAG_MUTABILITY,
  checkEncryption,
  checkLifecyclePolicy,
  checkMutability,
  checkPolicyText,
  checkRegistry,
  checkTagKeys,
  checkTags,
  decodeToken,
  encodeToken,
  readEncryption,
  readExclusionFilters,
  readTags,
} from './repository-inputs.js';

/** DescribeRepositories' page without maxResults, as ECR's. */
const DEFAULT_PAGE = 100;
/** Repositories read per index query while a page of those the caller may pull is assembled. */
const SCAN_BATCH = 1000;
/** Repositories one page reads at most (a bound keeps a request short). */
const SCAN_BUDGET = 20_000;

const NAME = { ...REPOSITORY_NAME, required: true };

const repositoryOps: OperationTable = {
  async CreateRepository(input, ctx) {
    const v = new InputReader(input);
    const registryId = v.string('registryId', REGISTRY_ID);
    const name = v.string('repositoryName', NAME)!;
    const tags = readTags(v, 'tags');
    const mutability = v.string('imageTagMutability', TAG_MUTABILITY) as TagMutability | undefined;
    const filters = readExclusionFilters(v, 'imageTagMutabilityExclusionFilters');
    const scanning = v.object('imageScanningConfiguration');
    const scanOnPush = v.boolean('imageScanningConfiguration.scanOnPush', false, scanning?.scanOnPush);
    const encryption = readEncryption(v, 'encryptionConfiguration', { min: 1, max: 2048 });
    v.done();
    const exclusions = checkMutability(mutability ?? 'MUTABLE', filters);
    if (tags) checkTags(tags);
    if (encryption) checkEncryption(encryption);
    if (registryId !== undefined && registryId !== ctx.ecr.accountId) {
      throw ecrErrors.invalidParameter(
        `Invalid parameter at 'registryId': repositories can only be created in this registry, whose id is '${ctx.ecr.accountId}'`,
      );
    }
    ctx.require(name, 'manage');
    const repo = await ctx.services.repositories.create(name, {
      ...(mutability ? { imageTagMutability: mutability } : {}),
      imageTagMutabilityExclusionFilters: exclusions,
      scanOnPush: scanOnPush ?? false,
      ...(encryption ? { encryption } : {}),
      ...(tags ? { resourceTags: tags } : {}),
    });
    return { repository: repositoryShape(repo, ctx) };
  },

  async DescribeRepositories(input, ctx) {
    const v = new InputReader(input);
    const registryId = v.string('registryId', REGISTRY_ID);
    const names = v.strings('repositoryNames', { min: 1, max: 100 }, REPOSITORY_NAME);
    const nextToken = v.string('nextToken');
    const maxResults = v.integer('maxResults', MAX_RESULTS);
    v.done();
    if (names && (nextToken !== undefined || maxResults !== undefined)) {
      throw ecrErrors.invalidParameter('Invalid parameter: nextToken and maxResults cannot be used together with repositoryNames');
    }
    if (registryId !== undefined && registryId !== ctx.ecr.accountId) {
      if (names) throw ecrErrors.repositoryNotFound(names[0]!, registryId);
      return { repositories: [] }; // a registry this server does not hold has nothing to show
    }
    if (names) {
      const unique = [...new Set(names)];
      for (const name of unique) ctx.require(name, 'pull');
      const repositories: object[] = [];
      for (const name of unique) repositories.push(repositoryShape(await ctx.services.repositories.require(name), ctx));
      return { repositories };
    }
    const after = nextToken === undefined ? '' : decodeToken(nextToken);
    const page = await visibleRepositories(ctx, after, maxResults ?? DEFAULT_PAGE);
    return {
      repositories: page.repositories.map((r) => repositoryShape(r, ctx)),
      ...(page.next !== undefined ? { nextToken: encodeToken(page.next) } : {}),
    };
  },

  async DeleteRepository(input, ctx) {
    const v = new InputReader(input);
    const registryId = v.string('registryId', REGISTRY_ID);
    const name = v.string('repositoryName', NAME)!;
    const force = v.boolean('force') ?? false;
    v.done();
    checkRegistry(ctx, registryId, name);
    ctx.require(name, 'manage');
    const repositories = ctx.services.repositories;
    await repositories.require(name);
    // Deleting its images with it is a delete of images: that right too.
    if (force && (await repositories.hasImages(name))) ctx.require(name, 'delete');
    const repo = await repositories.delete(name, force, ctx.signal);
    await ctx.services.lifecycle.forget(name);
    return { repository: repositoryShape(repo, ctx) };
  },

  async PutImageTagMutability(input, ctx) {
    const v = new InputReader(input);
    const registryId = v.string('registryId', REGISTRY_ID);
    const name = v.string('repositoryName', NAME)!;
    const mutability = v.string('imageTagMutability', { ...TAG_MUTABILITY, required: true }) as TagMutability;
    const filters = readExclusionFilters(v, 'imageTagMutabilityExclusionFilters');
    v.done();
    const exclusions = checkMutability(mutability, filters);
    checkRegistry(ctx, registryId, name);
    ctx.require(name, 'manage');
    const repo = await ctx.services.repositories.setTagMutability(name, mutability, exclusions);
    return {
      registryId: ctx.ecr.accountId,
      repositoryName: name,
      imageTagMutability: repo.imageTagMutability,
      ...(repo.imageTagMutabilityExclusionFilters.length > 0 ? { imageTagMutabilityExclusionFilters: repo.imageTagMutabilityExclusionFilters } : {}),
    };
  },

  async PutImageScanningConfiguration(input, ctx) {
    const v = new InputReader(input);
    const registryId = v.string('registryId', REGISTRY_ID);
    const name = v.string('repositoryName', NAME)!;
    const scanning = v.object('imageScanningConfiguration', true);
    const scanOnPush = v.boolean('imageScanningConfiguration.scanOnPush', false, scanning?.scanOnPush) ?? false;
    v.done();
    checkRegistry(ctx, registryId, name);
    ctx.require(name, 'manage');
    const repo = await ctx.services.repositories.setScanOnPush(name, scanOnPush);
    return { registryId: ctx.ecr.accountId, repositoryName: name, imageScanningConfiguration: { scanOnPush: repo.scanOnPush } };
  },

  async SetRepositoryPolicy(input, ctx) {
    const v = new InputReader(input);
    const registryId = v.string('registryId', REGISTRY_ID);
    const name = v.string('repositoryName', NAME)!;
    const policyText = v.string('policyText', { ...POLICY_TEXT, required: true })!;
    // `force` guards against a policy that locks its setter out; policies are stored, not
    // evaluated here (the access rules decide), so no policy can: it is accepted and has no effect.
    v.boolean('force');
    v.done();
    checkPolicyText(policyText, 'repository');
    checkRegistry(ctx, registryId, name);
    ctx.require(name, 'manage');
    await ctx.services.repositories.setPolicy(name, policyText);
    return { registryId: ctx.ecr.accountId, repositoryName: name, policyText };
  },

  async GetRepositoryPolicy(input, ctx) {
    const { name } = await readRepository(input, ctx, 'pull');
    const policyText = await ctx.services.repositories.policy(name);
    if (policyText === undefined) throw repositoryErrors.policyNotFound(name, ctx.ecr.accountId);
    return { registryId: ctx.ecr.accountId, repositoryName: name, policyText };
  },

  async DeleteRepositoryPolicy(input, ctx) {
    const { name } = await readRepository(input, ctx, 'manage');
    const policyText = await ctx.services.repositories.deletePolicy(name);
    return { registryId: ctx.ecr.accountId, repositoryName: name, policyText };
  },

  async TagResource(input, ctx) {
    const v = new InputReader(input);
    const arn = v.string('resourceArn', { required: true })!;
    const tags = readTags(v, 'tags', true)!;
    v.done();
    checkTags(tags);
    const name = repositoryOfArn(ctx, arn);
    ctx.require(name, 'manage');
    await ctx.services.repositories.tag(name, tags);
    return {};
  },

  async UntagResource(input, ctx) {
    const v = new InputReader(input);
    const arn = v.string('resourceArn', { required: true })!;
    const keys = v.strings('tagKeys', { required: true })!;
    v.done();
    checkTagKeys(keys);
    const name = repositoryOfArn(ctx, arn);
    ctx.require(name, 'manage');
    await ctx.services.repositories.untag(name, keys);
    return {};
  },

  async ListTagsForResource(input, ctx) {
    const v = new InputReader(input);
    const arn = v.string('resourceArn', { required: true })!;
    v.done();
    const name = repositoryOfArn(ctx, arn);
    ctx.require(name, 'pull');
    return { tags: await ctx.services.repositories.tags(name) };
  },

  async PutLifecyclePolicy(input, ctx) {
    const v = new InputReader(input);
    const registryId = v.string('registryId', REGISTRY_ID);
    const name = v.string('repositoryName', NAME)!;
    const text = v.string('lifecyclePolicyText', { ...LIFECYCLE_TEXT, required: true })!;
    v.done();
    checkRegistry(ctx, registryId, name);
    ctx.require(name, 'manage');
    await ctx.services.repositories.require(name);
    checkLifecyclePolicy(text);
    await ctx.services.repositories.setLifecyclePolicy(name, text);
    return { registryId: ctx.ecr.accountId, repositoryName: name, lifecyclePolicyText: text };
  },

  async GetLifecyclePolicy(input, ctx) {
    const { name } = await readRepository(input, ctx, 'pull');
    const policy = await ctx.services.repositories.lifecyclePolicy(name);
    if (!policy) throw repositoryErrors.lifecyclePolicyNotFound(name, ctx.ecr.accountId);
    return { registryId: ctx.ecr.accountId, repositoryName: name, lifecyclePolicyText: policy.text, lastEvaluatedAt: policy.updatedAt / 1000 };
  },

  async DeleteLifecyclePolicy(input, ctx) {
    const { name } = await readRepository(input, ctx, 'manage');
    const policy = await ctx.services.repositories.deleteLifecyclePolicy(name);
    return { registryId: ctx.ecr.accountId, repositoryName: name, lifecyclePolicyText: policy.text, lastEvaluatedAt: policy.updatedAt / 1000 };
  },
};

export const repositoryOperations: OperationTable = Object.freeze({ ...repositoryOps, ...registrySettingsOperations });

/**
 * The input of an operation on one repository that takes nothing else (registryId and
 * repositoryName): read, the registry checked, the right required, the repository found.
 */
async function readRepository(input: Readonly<Record<string, unknown>>, ctx: OperationContext, right: 'pull' | 'manage'): Promise<{ name: string }> {
  const v = new InputReader(input);
  const registryId = v.string('registryId', REGISTRY_ID);
  const name = v.string('repositoryName', NAME)!;
  v.done();
  checkRegistry(ctx, registryId, name);
  ctx.require(name, right);
  await ctx.services.repositories.require(name);
  return { name };
}

/** The repository a resource ARN names: one of this registry's (InvalidParameterException otherwise). */
function repositoryOfArn(ctx: OperationContext, arn: string): string {
  const prefix = ctx.repositoryArn('');
  const name = arn.startsWith(prefix) ? arn.slice(prefix.length) : '';
  if (!isRepositoryName(name)) {
    throw ecrErrors.invalidParameter(
      `Invalid parameter at 'resourceArn' failed to satisfy constraint: 'Invalid ARN': expected ${prefix}<repository name>`,
    );
  }
  return name;
}

/**
 * At most `limit` repositories after `after` that the caller may pull, reading at most
 * SCAN_BUDGET of them; `next` is where the following page starts, when there may be one.
 */
async function visibleRepositories(ctx: OperationContext, after: string, limit: number): Promise<{ repositories: EcrRepository[]; next?: string }> {
  const found: EcrRepository[] = [];
  let cursor = after;
  let scanned = 0;
  while (scanned < SCAN_BUDGET) {
    const want = Math.min(SCAN_BATCH, SCAN_BUDGET - scanned);
    const batch = await ctx.services.repositories.list(cursor, want);
    for (const repo of batch) {
      scanned++;
      if (ctx.may(repo.name, 'pull')) {
        // One more the caller may see: the page is full, and the next starts after its last.
        if (found.length === limit) return { repositories: found, next: found[found.length - 1]!.name };
        found.push(repo);
      }
      cursor = repo.name;
    }
    if (batch.length < want) return { repositories: found };
  }
  return { repositories: found, next: cursor };
}
