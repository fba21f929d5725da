/**
 * ECR's pull-through cache rule operations: Create, Describe, Update, Delete and Validate
 * PullThroughCacheRule(s). Rules are registry-wide settings: they need ctx.requireRegistry().
 * Each reads its input against the service model, then checks the registry id and the caller,
 * then lets src/ecr/pull-through-rules.ts check the upstream, the secret and the prefix.
 */
import { ecrErrors } from '../errors.js';
import type { OperationContext, OperationTable } from '../operation.js';
import {
  UPSTREAM_REGISTRIES,
  pullThroughErrors,
  ruleKey,
  ruleOptions,
  ruleShape,
  type UpstreamRegistry,
} from '../pull-through-rules.js';
import { InputReader, MAX_RESULTS, REGISTRY_ID, type StringRule } from '../validate.js';
import { decodeToken, encodeToken } from './repository-inputs.js';

/** The model's PullThroughCacheRuleRepositoryPrefix (and upstreamRepositoryPrefix): a namespace, a trailing `/` allowed, or ROOT. */
export const RULE_PREFIX: StringRule = {
  min: 2,
  max: 30,
  pattern: /^(?:[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*\/?|ROOT)$/,
};
/** The model's CredentialArn: a Secrets Manager secret whose name starts with `ecr-pullthroughcache/`. */
export const CREDENTIAL_ARN: StringRule = {
  min: 50,
  max: 612,
  pattern: /^arn:aws(?:-\w+)*:secretsmanager:[a-zA-Z0-9-:]+:secret:ecr-pullthroughcache\/[a-zA-Z0-9/_+=.@-]+$/,
};
const CUSTOM_ROLE_ARN: StringRule = { max: 2048 };
const PREFIX = { ...RULE_PREFIX, required: true };
/** DescribePullThroughCacheRules' page without maxResults, as ECR's. */
const DEFAULT_PAGE = 100;

export const pullThroughOperations: OperationTable = {
  async CreatePullThroughCacheRule(input, ctx) {
    const v = new InputReader(input);
    const prefix = v.string('ecrRepositoryPrefix', PREFIX)!;
    const upstreamRegistryUrl = v.string('upstreamRegistryUrl', { required: true })!;
    const registryId = v.string('registryId', REGISTRY_ID);
    const upstreamRegistry = v.string('upstreamRegistry', { enum: UPSTREAM_REGISTRIES }) as UpstreamRegistry | undefined;
    const credentialArn = v.string('credentialArn', CREDENTIAL_ARN);
    const customRoleArn = v.string('customRoleArn', CUSTOM_ROLE_ARN);
    const upstreamRepositoryPrefix = v.string('upstreamRepositoryPrefix', RULE_PREFIX);
    v.done();
    if (registryId !== undefined && registryId !== ctx.ecr.accountId) {
      throw ecrErrors.invalidParameter(
        `Invalid parameter at 'registryId': pull through cache rules can only be created in this registry, whose id is '${ctx.ecr.accountId}'`,
      );
    }
    ctx.requireRegistry();
    const rule = await ctx.services.pullThroughRules.create(prefix, {
      upstreamRegistryUrl,
      ...(upstreamRegistry !== undefined ? { upstreamRegistry } : {}),
      ...(credentialArn !== undefined ? { credentialArn } : {}),
      ...(customRoleArn !== undefined ? { customRoleArn } : {}),
      ...(upstreamRepositoryPrefix !== undefined ? { upstreamRepositoryPrefix } : {}),
    });
    return {
      ecrRepositoryPrefix: rule.ecrRepositoryPrefix,
      upstreamRegistryUrl: rule.upstreamRegistryUrl,
      createdAt: rule.createdAt / 1000,
      registryId: ctx.ecr.accountId,
      ...(rule.upstreamRegistry !== undefined ? { upstreamRegistry: rule.upstreamRegistry } : {}),
      ...ruleOptions(rule),
    };
  },

  async DescribePullThroughCacheRules(input, ctx) {
    const v = new InputReader(input);
    const registryId = v.string('registryId', REGISTRY_ID);
    const prefixes = v.strings('ecrRepositoryPrefixes', { min: 1, max: 100 }, RULE_PREFIX);
    const nextToken = v.string('nextToken');
    const maxResults = v.integer('maxResults', MAX_RESULTS);
    v.done();
    if (prefixes && (nextToken !== undefined || maxResults !== undefined)) {
      throw ecrErrors.invalidParameter('Invalid parameter: nextToken and maxResults cannot be used together with ecrRepositoryPrefixes');
    }
    ctx.requireRegistry();
    if (registryId !== undefined && registryId !== ctx.ecr.accountId) {
      // A registry this server does not hold has no rules.
      if (prefixes) throw pullThroughErrors.notFound(prefixes[0]!, registryId);
      return { pullThroughCacheRules: [] };
    }
    const rules = ctx.services.pullThroughRules;
    if (prefixes) return { pullThroughCacheRules: (await rules.describe(prefixes)).map((r) => ruleShape(r, ctx.ecr.accountId)) };
    const limit = maxResults ?? DEFAULT_PAGE;
    const page = await rules.list(nextToken === undefined ? '' : decodeToken(nextToken), limit + 1);
    const shown = page.slice(0, limit);
    return {
      pullThroughCacheRules: shown.map((r) => ruleShape(r, ctx.ecr.accountId)),
      ...(page.length > limit ? { nextToken: encodeToken(ruleKey(shown[shown.length - 1]!.ecrRepositoryPrefix)) } : {}),
    };
  },

  async UpdatePullThroughCacheRule(input, ctx) {
    const v = new InputReader(input);
    const prefix = v.string('ecrRepositoryPrefix', PREFIX)!;
    const registryId = v.string('registryId', REGISTRY_ID);
    const credentialArn = v.string('credentialArn', CREDENTIAL_ARN);
    const customRoleArn = v.string('customRoleArn', CUSTOM_ROLE_ARN);
    v.done();
    if (credentialArn === undefined && customRoleArn === undefined) {
      throw ecrErrors.invalidParameter('Invalid parameter: give credentialArn, customRoleArn or both: they are what a rule can change');
    }
    ctx.requireRegistry();
    checkRuleRegistry(ctx, registryId, prefix);
    const rule = await ctx.services.pullThroughRules.update(prefix, {
      ...(credentialArn !== undefined ? { credentialArn } : {}),
      ...(customRoleArn !== undefined ? { customRoleArn } : {}),
    });
    return { ecrRepositoryPrefix: rule.ecrRepositoryPrefix, registryId: ctx.ecr.accountId, updatedAt: rule.updatedAt / 1000, ...ruleOptions(rule) };
  },

  async DeletePullThroughCacheRule(input, ctx) {
    const { prefix } = readRule(input, ctx);
    const rule = await ctx.services.pullThroughRules.delete(prefix);
    return {
      ecrRepositoryPrefix: rule.ecrRepositoryPrefix,
      upstreamRegistryUrl: rule.upstreamRegistryUrl,
      createdAt: rule.createdAt / 1000,
      registryId: ctx.ecr.accountId,
      ...ruleOptions(rule),
    };
  },

  async ValidatePullThroughCacheRule(input, ctx) {
    const { prefix } = readRule(input, ctx);
    const { rule, isValid, failure } = await ctx.services.pullThroughRules.validate(prefix);
    return {
      ecrRepositoryPrefix: rule.ecrRepositoryPrefix,
      registryId: ctx.ecr.accountId,
      upstreamRegistryUrl: rule.upstreamRegistryUrl,
      ...ruleOptions(rule),
      isValid,
      ...(failure !== undefined ? { failure } : {}),
    };
  },
};

/** The input of an operation on one rule that takes nothing else (ecrRepositoryPrefix and registryId), read and checked. */
function readRule(input: Readonly<Record<string, unknown>>, ctx: OperationContext): { prefix: string } {
  const v = new InputReader(input);
  const prefix = v.string('ecrRepositoryPrefix', PREFIX)!;
  const registryId = v.string('registryId', REGISTRY_ID);
  v.done();
  ctx.requireRegistry();
  checkRuleRegistry(ctx, registryId, prefix);
  return { prefix };
}

/** A registryId other than ours names a registry this server does not hold: it has no such rule. */
function checkRuleRegistry(ctx: OperationContext, registryId: string | undefined, prefix: string): void {
  if (registryId !== undefined && registryId !== ctx.ecr.accountId) throw pullThroughErrors.notFound(prefix, registryId);
}
