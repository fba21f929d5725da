/**
 * ECR lifecycle policies: the document, read and checked exactly as ECR checks it (a pure function,
 * no I/O). ECR validates in two steps and answers the first problem only, as an
 * InvalidParameterException:
 *
 *  1. the JSON schema (types, required and unknown properties, enums, minimums), in the words of
 *     the schema validator ECR runs ("object has missing required properties ([\"action\"])");
 *     `selection` is a "one of two schemas" keyed by countType (a count, or an age in days), so a
 *     misplaced or missing countUnit, an unknown countType or a null in it answers "instance
 *     failed to match exactly one schema (matched 0 out of 2)", as ECR does;
 *  2. the rules the user guide states: `tagged` needs tagPrefixList or tagPatternList (not both),
 *     `untagged` and `any` take neither, at most four `*` per pattern, unique rulePriority values,
 *     the `any` rule last, one rule at most for untagged images, no two rules with the same set
 *     of tag prefixes.
 *
 * Only what this registry carries out is accepted: `expire` actions over a count, the push time
 * (sinceImagePushed) or the last recorded pull time (sinceImagePulled; an image never pulled
 * counts from its push, as ECR does). Both ages take `countUnit: days`. ECR documents
 * sinceImagePulled with its archive storage class, for `transition` rules; expiring by it is this
 * registry's extension. The archive storage class itself (storageClass, transition,
 * targetStorageClass, sinceImageTransitioned) is refused with a message saying so, rather than
 * stored and ignored.
 */

export type TagStatus = 'tagged' | 'untagged' | 'any';
export type CountType = 'imageCountMoreThan' | 'sinceImagePushed' | 'sinceImagePulled';

export interface LifecycleRule {
  readonly rulePriority: number;
  readonly description?: string;
  readonly selection: {
    readonly tagStatus: TagStatus;
    readonly tagPrefixList?: readonly string[];
    readonly tagPatternList?: readonly string[];
    readonly countType: CountType;
    readonly countUnit?: 'days';
    readonly countNumber: number;
  };
  readonly action: { readonly type: 'expire' };
}

export interface LifecyclePolicy {
  readonly rules: readonly LifecycleRule[];
}

/** The service model's LifecyclePolicyText: 100 to 30,720 characters (the API layer checks the minimum). */
export const LIFECYCLE_POLICY_TEXT = Object.freeze({ min: 100, max: 30_720 });
/** The user guide: "a maximum of four wildcards (*) per string". */
export const MAX_WILDCARDS_PER_PATTERN = 4;

const PREFIX = "Invalid parameter at 'LifecyclePolicyText' failed to satisfy constraint: 'Lifecycle policy validation failure: ";
/** ECR's rulePriority and countNumber are Java integers. */
const INT_MAX = 2_147_483_647;
const ONE_OF = 'instance failed to match exactly one schema (matched 0 out of 2)';

/** A policy ECR would refuse. `message` is the whole text ECR answers; `reason` the part after its prefix. */
export class LifecyclePolicyError extends Error {
  override name = 'LifecyclePolicyError';
  constructor(readonly reason: string) {
    super(`${PREFIX}${reason}'`);
  }
}

const TOP_KEYS = ['rules'] as const;
const RULE_KEYS = ['rulePriority', 'description', 'selection', 'action'] as const;
const RULE_REQUIRED = ['rulePriority', 'selection', 'action'] as const;
const SELECTION_KEYS = ['tagStatus', 'tagPrefixList', 'tagPatternList', 'countType', 'countUnit', 'countNumber'] as const;
const SELECTION_REQUIRED = ['tagStatus', 'countType', 'countNumber'] as const;
const ACTION_KEYS = ['type'] as const;
const TAG_STATUSES: readonly TagStatus[] = ['any', 'tagged', 'untagged'];
const COUNT_TYPES: readonly CountType[] = ['imageCountMoreThan', 'sinceImagePushed', 'sinceImagePulled'];
/** The count types that measure an age, in countUnit (days). */
const AGE_COUNT_TYPES: readonly CountType[] = ['sinceImagePushed', 'sinceImagePulled'];

/** ECR features of the archive storage class, which this registry does not have. */
const UNSUPPORTED_KEYS: Readonly<Record<string, string>> = {
  storageClass: 'storageClass is not supported by this registry: it has no archive storage class.',
  targetStorageClass: 'targetStorageClass is not supported by this registry: it has no archive storage class.',
};
const UNSUPPORTED_VALUES: Readonly<Record<string, string>> = {
  sinceImageTransitioned: "countType 'sinceImageTransitioned' is not supported by this registry: it has no archive storage class.",
  transition: "action type 'transition' is not supported by this registry: it has no archive storage class.",
};

type Json = Readonly<Record<string, unknown>>;

/** Reads a lifecycle policy text; throws LifecyclePolicyError with ECR's message for the first problem. */
export function parseLifecyclePolicy(text: string): LifecyclePolicy {
  if (text.length > LIFECYCLE_POLICY_TEXT.max) {
    fail(`The lifecycle policy text is ${text.length} characters long; the limit is ${LIFECYCLE_POLICY_TEXT.max}.`);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    fail('Could not map policyString into LifecyclePolicy.');
  }
  if (jsonType(doc) !== 'object') fail('Could not map policyString into LifecyclePolicy.');
  const top = doc as Json;
  checkMembers(top, TOP_KEYS, TOP_KEYS);
  const list = top.rules;
  if (!Array.isArray(list)) wrongType(list, 'array');
  if (list.length === 0) fail('array is too short: must have at least 1 elements but instance has 0 elements');

  // 1. The schema, rule by rule.
  const rules = list.map(readRule);
  // 2. What the user guide says of each rule, then of the rules together.
  rules.forEach(checkTagSelection);
  checkAcrossRules(rules);
  return Object.freeze({ rules: Object.freeze(rules) });
}

function readRule(value: unknown): LifecycleRule {
  if (jsonType(value) !== 'object') wrongType(value, 'object');
  const rule = value as Json;
  checkMembers(rule, RULE_KEYS, RULE_REQUIRED);
  const rulePriority = integer(rule.rulePriority);
  const description = rule.description;
  if (description !== undefined && typeof description !== 'string') wrongType(description, 'string');
  const selection = readSelection(rule.selection);
  const action = readAction(rule.action);
  return Object.freeze({ rulePriority, ...(description !== undefined ? { description } : {}), selection, action });
}

function readSelection(value: unknown): LifecycleRule['selection'] {
  if (jsonType(value) !== 'object') wrongType(value, 'object');
  const sel = value as Json;
  // ECR's schema for `selection` is "one of" two, so a null anywhere in it matches neither.
  if (Object.values(sel).some((v) => v === null)) fail(ONE_OF);
  checkMembers(sel, SELECTION_KEYS, SELECTION_REQUIRED, ['storageClass']);

  const tagStatus = sel.tagStatus;
  if (typeof tagStatus !== 'string') wrongType(tagStatus, 'string');
  if (!(TAG_STATUSES as readonly string[]).includes(tagStatus)) notInEnum(tagStatus, TAG_STATUSES);
  const tagPrefixList = stringList(sel.tagPrefixList);
  const tagPatternList = stringList(sel.tagPatternList);

  const countType = sel.countType;
  if (countType === 'sinceImageTransitioned') fail(UNSUPPORTED_VALUES[countType]!);
  if (typeof countType !== 'string' || !(COUNT_TYPES as readonly string[]).includes(countType)) fail(ONE_OF);
  const byAge = (AGE_COUNT_TYPES as readonly string[]).includes(countType);
  const countUnit = sel.countUnit;
  if (!byAge && countUnit !== undefined) fail(ONE_OF);
  if (byAge) {
    if (countUnit === undefined) fail(ONE_OF);
    if (typeof countUnit !== 'string') wrongType(countUnit, 'string');
    if (countUnit !== 'days') notInEnum(countUnit, ['days']);
  }
  const countNumber = integer(sel.countNumber);

  return Object.freeze({
    tagStatus: tagStatus as TagStatus,
    ...(tagPrefixList !== undefined ? { tagPrefixList } : {}),
    ...(tagPatternList !== undefined ? { tagPatternList } : {}),
    countType: countType as CountType,
    ...(byAge ? { countUnit: 'days' as const } : {}),
    countNumber,
  });
}

function readAction(value: unknown): LifecycleRule['action'] {
  if (jsonType(value) !== 'object') wrongType(value, 'object');
  const action = value as Json;
  // Like `selection`, ECR's `action` is "one of" two schemas (expire, transition).
  if (Object.values(action).some((v) => v === null)) fail(ONE_OF);
  if (action.type === 'transition') fail(UNSUPPORTED_VALUES.transition!);
  checkMembers(action, ACTION_KEYS, ACTION_KEYS, ['targetStorageClass']);
  const type = action.type;
  if (typeof type !== 'string') wrongType(type, 'string');
  if (type !== 'expire') notInEnum(type, ['expire']);
  return Object.freeze({ type: 'expire' as const });
}

/** tagStatus against tagPrefixList and tagPatternList, and the wildcard limit. */
function checkTagSelection(rule: LifecycleRule): void {
  const { tagStatus, tagPrefixList, tagPatternList } = rule.selection;
  if (tagStatus === 'tagged') {
    if (tagPrefixList !== undefined && tagPatternList !== undefined) {
      fail('tagPrefixList and tagPatternList cannot both be specified in one rule.');
    }
    const list = tagPrefixList ?? tagPatternList;
    if (list === undefined || list.length === 0) fail('Must specify tagPrefixList or tagPatternList when tagStatus=TAGGED.');
  } else if (tagPrefixList !== undefined || tagPatternList !== undefined) {
    fail(`tagPrefixList and tagPatternList can only be specified when tagStatus=TAGGED, not tagStatus=${tagStatus.toUpperCase()}.`);
  }
  for (const pattern of tagPatternList ?? []) {
    const wildcards = pattern.split('*').length - 1;
    if (wildcards > MAX_WILDCARDS_PER_PATTERN) {
      fail(`The tag pattern '${pattern}' has ${wildcards} wildcards (*); a pattern may have at most ${MAX_WILDCARDS_PER_PATTERN}.`);
    }
  }
}

function checkAcrossRules(rules: readonly LifecycleRule[]): void {
  const priorities = new Set<number>();
  for (const { rulePriority } of rules) {
    if (priorities.has(rulePriority)) fail(`Rule priorities must be unique; ${rulePriority} is given to more than one rule.`);
    priorities.add(rulePriority);
  }
  const highest = Math.max(...priorities);
  // Two `any` rules cannot both have the highest priority number, so this also refuses a second one.
  if (rules.some((r) => r.selection.tagStatus === 'any' && r.rulePriority !== highest)) {
    fail('Rule for tagStatus=ANY must have the lowest priority.');
  }
  if (rules.filter((r) => r.selection.tagStatus === 'untagged').length > 1) fail('Only one rule can select Untagged images.');
  const prefixSets = new Map<string, number>();
  for (const rule of rules) {
    if (rule.selection.tagPrefixList === undefined) continue;
    const key = JSON.stringify([...new Set(rule.selection.tagPrefixList)].sort());
    const earlier = prefixSets.get(key);
    if (earlier !== undefined) {
      fail(`The rules with priorities ${earlier} and ${rule.rulePriority} select the same tag prefixes; each rule must have a unique set of tag prefixes.`);
    }
    prefixSets.set(key, rule.rulePriority);
  }
}

// --- the schema validator's words ---

/** Required members first, then ECR members this registry lacks, then members ECR does not know. */
function checkMembers(obj: Json, allowed: readonly string[], required: readonly string[], unsupported: readonly string[] = []): void {
  const missing = required.filter((k) => !Object.hasOwn(obj, k)).sort();
  if (missing.length > 0) fail(`object has missing required properties (${list(missing)})`);
  const lacking = unsupported.find((k) => Object.hasOwn(obj, k));
  if (lacking !== undefined) fail(UNSUPPORTED_KEYS[lacking]!);
  const unknown = Object.keys(obj).filter((k) => !allowed.includes(k)).sort();
  if (unknown.length > 0) fail(`object instance has properties which are not allowed by the schema: (${list(unknown)})`);
}

function integer(value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value)) wrongType(value, 'integer');
  if (value < 1) fail(`numeric instance is lower than the required minimum (minimum: 1, found: ${value})`);
  if (value > INT_MAX) fail(`numeric instance is greater than the required maximum (maximum: ${INT_MAX}, found: ${value})`);
  return value;
}

function stringList(value: unknown): readonly string[] | undefined {
  if (value === undefined) return undefined;
  if (!Array.isArray(value)) wrongType(value, 'array');
  for (const item of value) if (typeof item !== 'string') wrongType(item, 'string');
  return Object.freeze([...(value as string[])]);
}

function wrongType(value: unknown, allowed: string): never {
  fail(`instance type (${jsonType(value)}) does not match any allowed primitive type (allowed: ["${allowed}"])`);
}

function notInEnum(value: string, allowed: readonly string[]): never {
  fail(`instance value (${value}) not found in enum :(possible values: ${list(allowed)})`);
}

function jsonType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number';
  return typeof value;
}

function list(names: readonly string[]): string {
  return `[${names.map((n) => JSON.stringify(n)).join(', ')}]`;
}

function fail(reason: string): never {
  throw new LifecyclePolicyError(reason);
}
