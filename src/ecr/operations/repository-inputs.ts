/**
 * The inputs the repository operations share, read and checked as ECR checks them: resource
 * tags, tag mutability with its exclusion filters, encryption, policy documents, lifecycle
 * policies, paging tokens and the registry id.
 */
import { LifecyclePolicyError, parseLifecyclePolicy } from '../../maintenance/lifecycle/policy.js';
import { EcrError, ecrErrors } from '../errors.js';
import type { OperationContext } from '../operation.js';
import { ENCRYPTION_TYPES, MAX_RESOURCE_TAGS, repositoryErrors, type Encryption, type ResourceTag } from '../repositories.js';
import {
  EXCLUSION_FILTER_VALUE,
  EXCLUSION_FILTERS,
  TAG_MUTABILITIES,
  takesExclusions,
  type ExclusionFilter,
  type TagMutability,
} from '../tag-mutability.js';
import type { InputReader, StringRule } from '../validate.js';

export const TAG_MUTABILITY: StringRule = { enum: TAG_MUTABILITIES };
/** The service model's RepositoryPolicyText and RegistryPolicyText. */
export const POLICY_TEXT: StringRule = { min: 0, max: 10240 };
export const LIFECYCLE_TEXT: StringRule = { min: 100, max: 30720 };

// ---- resource tags ----

const TAG_KEY_MAX = 128;
const TAG_VALUE_MAX = 256;
/** Letters, digits, spaces and `_ . : / = + - @`, as AWS's tagging rules have them. */
const TAG_CHARS = /^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$/u;

/** A list of {Key, Value} (the model requires both members of each). */
export function readTags(v: InputReader, path: string, required = false): ResourceTag[] | undefined {
  const list = v.list(path, { required });
  if (!list) return undefined;
  return list.map((item, i) => {
    const at = `${path}.${i + 1}.member`;
    const o = v.object(at, true, item);
    const Key = v.string(`${at}.Key`, { required: true }, o?.Key);
    const Value = v.string(`${at}.Value`, { required: true }, o?.Value);
    return { Key: Key ?? '', Value: Value ?? '' };
  });
}

/** InvalidTagParameterException for a key or value ECR refuses; TooManyTagsException past 50 in one request. */
export function checkTags(tags: readonly ResourceTag[]): void {
  const keys = new Set<string>();
  for (const t of tags) checkTagKey(t.Key, keys);
  for (const t of tags) {
    if (t.Value.length > TAG_VALUE_MAX || !TAG_CHARS.test(t.Value)) {
      throw invalidTag(`The tag value of key '${t.Key}' must be at most ${TAG_VALUE_MAX} characters of letters, digits, spaces and _ . : / = + - @`);
    }
  }
  if (keys.size > MAX_RESOURCE_TAGS) throw repositoryErrors.tooManyTags(keys.size);
}

/** Tag keys of UntagResource: the same rules as keys being set (duplicates allowed). */
export function checkTagKeys(keys: readonly string[]): void {
  for (const key of keys) checkTagKey(key);
}

function checkTagKey(key: string, seen?: Set<string>): void {
  if (key.length < 1 || key.length > TAG_KEY_MAX || !TAG_CHARS.test(key)) {
    throw invalidTag(`Tag keys must be 1 to ${TAG_KEY_MAX} characters of letters, digits, spaces and _ . : / = + - @: '${key}' is not`);
  }
  if (key.toLowerCase().startsWith('aws:')) throw invalidTag(`The tag key '${key}' uses the prefix aws:, which is reserved for AWS`);
  if (seen) {
    if (seen.has(key)) throw invalidTag(`The tag key '${key}' is given more than once`);
    seen.add(key);
  }
}

function invalidTag(message: string): EcrError {
  return new EcrError('InvalidTagParameterException', message);
}

// ---- tag mutability ----

/** A list of {filterType: WILDCARD, filter} (1 to 5). */
export function readExclusionFilters(v: InputReader, path: string): ExclusionFilter[] | undefined {
  const list = v.list(path, EXCLUSION_FILTERS);
  if (!list) return undefined;
  return list.map((item, i) => {
    const at = `${path}.${i + 1}.member`;
    const o = v.object(at, true, item);
    v.string(`${at}.filterType`, { required: true, enum: ['WILDCARD'] }, o?.filterType);
    const filter = v.string(`${at}.filter`, { required: true, ...EXCLUSION_FILTER_VALUE }, o?.filter);
    return { filterType: 'WILDCARD' as const, filter: filter ?? '' };
  });
}

/** Exclusion filters go with the *_WITH_EXCLUSION settings, and only with them. */
export function checkMutability(mutability: TagMutability, filters: readonly ExclusionFilter[] | undefined): readonly ExclusionFilter[] {
  if (takesExclusions(mutability)) {
    if (!filters || filters.length === 0) {
      throw ecrErrors.invalidParameter(`Invalid parameter: imageTagMutabilityExclusionFilters must be specified with imageTagMutability ${mutability}`);
    }
    return filters;
  }
  if (filters && filters.length > 0) {
    throw ecrErrors.invalidParameter(`Invalid parameter: imageTagMutabilityExclusionFilters cannot be specified with imageTagMutability ${mutability}`);
  }
  return [];
}

// ---- encryption ----

/** {encryptionType, kmsKey?}; a key only with KMS or KMS_DSSE. */
export function readEncryption(v: InputReader, path: string, kmsKey: StringRule): Encryption | undefined {
  const o = v.object(path);
  if (!o) return undefined;
  const encryptionType = v.string(`${path}.encryptionType`, { required: true, enum: ENCRYPTION_TYPES }, o.encryptionType);
  const key = v.string(`${path}.kmsKey`, kmsKey, o.kmsKey);
  return { encryptionType: (encryptionType ?? 'AES256') as Encryption['encryptionType'], ...(key ? { kmsKey: key } : {}) };
}

export function checkEncryption(e: Encryption): void {
  if (e.encryptionType === 'AES256' && e.kmsKey !== undefined) {
    throw ecrErrors.invalidParameter("Invalid parameter at 'encryptionConfiguration': a kmsKey can only be given with the KMS or KMS_DSSE encryption type");
  }
}

// ---- policies ----

/**
 * A resource policy as ECR accepts one: a JSON object whose Statement is a statement or a
 * non-empty list of them, each with an Effect of Allow or Deny, a Principal (or NotPrincipal)
 * and an Action (or NotAction). A repository policy names no Resource: it is the repository.
 * The statements are stored, not evaluated (access is the access rules' to decide).
 */
export function checkPolicyText(text: string, kind: 'repository' | 'registry'): void {
  if (!isPolicy(text, kind)) {
    throw ecrErrors.invalidParameter(`Invalid parameter at 'PolicyText' failed to satisfy constraint: 'Invalid ${kind} policy provided'`);
  }
}

function isPolicy(text: string, kind: 'repository' | 'registry'): boolean {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return false;
  }
  if (!isObject(doc)) return false;
  if (doc.Version !== undefined && doc.Version !== '2012-10-17' && doc.Version !== '2008-10-17') return false;
  if (doc.Id !== undefined && typeof doc.Id !== 'string') return false;
  const statements = Array.isArray(doc.Statement) ? doc.Statement : [doc.Statement];
  if (statements.length === 0) return false;
  return statements.every((s: unknown) => {
    if (!isObject(s)) return false;
    if (s.Sid !== undefined && typeof s.Sid !== 'string') return false;
    if (s.Effect !== 'Allow' && s.Effect !== 'Deny') return false;
    if ((s.Principal === undefined) === (s.NotPrincipal === undefined)) return false;
    if ((s.Action === undefined) === (s.NotAction === undefined)) return false;
    if (!isStrings(s.Action ?? s.NotAction)) return false;
    if (kind === 'repository' && (s.Resource !== undefined || s.NotResource !== undefined)) return false;
    return true;
  });
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isStrings(v: unknown): boolean {
  return typeof v === 'string' || (Array.isArray(v) && v.length > 0 && v.every((a) => typeof a === 'string'));
}

/** InvalidParameterException with ECR's message for a lifecycle policy it refuses. */
export function checkLifecyclePolicy(text: string): void {
  try {
    parseLifecyclePolicy(text);
  } catch (err) {
    if (err instanceof LifecyclePolicyError) throw ecrErrors.invalidParameter(err.message);
    throw err;
  }
}

// ---- paging and the registry ----

/** An opaque page token: where the listing goes on from. */
export function encodeToken(after: string): string {
  return Buffer.from(JSON.stringify({ a: after })).toString('base64url');
}

export function decodeToken(token: string): string {
  try {
    const { a } = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as { a?: unknown };
    if (typeof a === 'string' && !a.includes('\u0000')) return a;
  } catch {
    // falls through
  }
  throw ecrErrors.invalidParameter("Invalid parameter at 'nextToken': the token is not one this registry gave");
}

/**
 * A registryId other than ours names a registry this server does not hold: it has no
 * repository of that name (RepositoryNotFoundException naming that registry), as the lifecycle
 * preview operations answer too.
 */
export function checkRegistry(ctx: OperationContext, registryId: string | undefined, repositoryName: string): void {
  if (registryId !== undefined && registryId !== ctx.ecr.accountId) throw ecrErrors.repositoryNotFound(repositoryName, registryId);
}
