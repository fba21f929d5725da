import { describe, expect, it } from 'vitest';
import {
  LIFECYCLE_POLICY_TEXT,
  LifecyclePolicyError,
  parseLifecyclePolicy,
  type LifecyclePolicy,
} from '../../../src/maintenance/lifecycle/policy.js';

const PREFIX = "Invalid parameter at 'LifecyclePolicyText' failed to satisfy constraint: 'Lifecycle policy validation failure: ";
const ONE_OF = 'instance failed to match exactly one schema (matched 0 out of 2)';

type Doc = Record<string, unknown>;

/** A valid rule (untagged, keep one), with members replaced by `over`. */
function rule(over: Doc = {}, selection: Doc = {}): Doc {
  return {
    rulePriority: 1,
    selection: { tagStatus: 'untagged', countType: 'imageCountMoreThan', countNumber: 1, ...selection },
    action: { type: 'expire' },
    ...over,
  };
}

/** A rule whose selection is exactly `selection`. */
function selecting(selection: Doc, over: Doc = {}): Doc {
  return { rulePriority: 1, selection, action: { type: 'expire' }, ...over };
}

const text = (doc: unknown) => JSON.stringify(doc);
const rules = (...list: unknown[]) => text({ rules: list });

/** The reason ECR gives after its prefix, or a failure if the text parses. */
function refusal(policyText: string): string {
  try {
    parseLifecyclePolicy(policyText);
  } catch (err) {
    expect(err).toBeInstanceOf(LifecyclePolicyError);
    const { message, reason } = err as LifecyclePolicyError;
    expect(message).toBe(`${PREFIX}${reason}'`);
    return reason;
  }
  throw new Error(`the policy was accepted: ${policyText}`);
}

describe('parseLifecyclePolicy: documents ECR accepts', () => {
  // The policies of the user guide's "Examples of lifecycle policies in Amazon ECR".
  it.each([
    [
      'Filtering on image age (untagged, older than 14 days)',
      rules(rule({ description: 'Expire images older than 14 days' }, { countType: 'sinceImagePushed', countUnit: 'days', countNumber: 14 })),
    ],
    [
      'Filtering on image age (tagPatternList prod*, older than 14 days)',
      rules(selecting({ tagStatus: 'tagged', tagPatternList: ['prod*'], countType: 'sinceImagePushed', countUnit: 'days', countNumber: 14 })),
    ],
    ['Filtering on image count (keep only one untagged image)', rules(rule())],
    [
      'Filtering on multiple rules',
      rules(
        selecting({ tagStatus: 'tagged', tagPrefixList: ['prod'], countType: 'imageCountMoreThan', countNumber: 1 }, { rulePriority: 1 }),
        selecting({ tagStatus: 'tagged', tagPrefixList: ['beta'], countType: 'imageCountMoreThan', countNumber: 1 }, { rulePriority: 2 }),
      ),
    ],
    [
      'Filtering on multiple tags in a single rule',
      rules(selecting({ tagStatus: 'tagged', tagPrefixList: ['alpha', 'beta'], countType: 'sinceImagePushed', countNumber: 5, countUnit: 'days' })),
    ],
    [
      'Filtering on all images, Example B (all rule types in one policy)',
      rules(
        selecting({ tagStatus: 'tagged', tagPrefixList: ['alpha'], countType: 'imageCountMoreThan', countNumber: 1 }, { rulePriority: 1 }),
        selecting({ tagStatus: 'untagged', countType: 'sinceImagePushed', countUnit: 'days', countNumber: 1 }, { rulePriority: 2 }),
        selecting({ tagStatus: 'any', countType: 'imageCountMoreThan', countNumber: 1 }, { rulePriority: 3 }),
      ),
    ],
    // "Values don't need to be sequential across rules in a policy."
    [
      'non-sequential priorities, listed out of order',
      rules(
        selecting({ tagStatus: 'any', countType: 'imageCountMoreThan', countNumber: 50 }, { rulePriority: 1000 }),
        selecting({ tagStatus: 'tagged', tagPrefixList: ['latest'], countType: 'imageCountMoreThan', countNumber: 5 }, { rulePriority: 10 }),
        selecting({ tagStatus: 'untagged', countType: 'sinceImagePushed', countUnit: 'days', countNumber: 7 }, { rulePriority: 990 }),
      ),
    ],
    // "For example, ["*test*1*2*3", "test*1*2*3*"] is valid" (four wildcards each).
    [
      'four wildcards per pattern',
      rules(selecting({ tagStatus: 'tagged', tagPatternList: ['*test*1*2*3', 'test*1*2*3*'], countType: 'imageCountMoreThan', countNumber: 3 })),
    ],
    // ECR documents sinceImagePulled with `transition` (its archive storage class); this registry expires by it.
    [
      'sinceImagePulled with expire (ours: ECR pairs it with transition)',
      rules(selecting({ tagStatus: 'any', countType: 'sinceImagePulled', countUnit: 'days', countNumber: 30 }, { description: 'Expire images not pulled for 30 days' })),
    ],
    [
      'sinceImagePulled beside the other count types',
      rules(
        selecting({ tagStatus: 'tagged', tagPatternList: ['release-*'], countType: 'imageCountMoreThan', countNumber: 10 }, { rulePriority: 1 }),
        selecting({ tagStatus: 'untagged', countType: 'sinceImagePushed', countUnit: 'days', countNumber: 7 }, { rulePriority: 2 }),
        selecting({ tagStatus: 'any', countType: 'sinceImagePulled', countUnit: 'days', countNumber: 90 }, { rulePriority: 3 }),
      ),
    ],
    // The same prefixes in a prefix list and in a pattern list are different selections.
    [
      'the same strings as prefixes in one rule and patterns in another',
      rules(
        selecting({ tagStatus: 'tagged', tagPrefixList: ['prod'], countType: 'imageCountMoreThan', countNumber: 3 }, { rulePriority: 1 }),
        selecting({ tagStatus: 'tagged', tagPatternList: ['prod'], countType: 'imageCountMoreThan', countNumber: 3 }, { rulePriority: 2 }),
      ),
    ],
  ])('%s', (_title, policyText) => {
    const policy = parseLifecyclePolicy(policyText);
    expect(policy.rules.length).toBe((JSON.parse(policyText) as { rules: unknown[] }).rules.length);
  });

  it('returns the rules as written, keeping countUnit only where it belongs, frozen', () => {
    const policy: LifecyclePolicy = parseLifecyclePolicy(
      rules(
        selecting({ tagStatus: 'tagged', tagPatternList: ['v*'], countType: 'sinceImagePushed', countUnit: 'days', countNumber: 30 }, {
          rulePriority: 5,
          description: 'old releases',
        }),
        selecting({ tagStatus: 'untagged', countType: 'sinceImagePulled', countUnit: 'days', countNumber: 60 }, { rulePriority: 7 }),
        selecting({ tagStatus: 'any', countType: 'imageCountMoreThan', countNumber: 100 }, { rulePriority: 9 }),
      ),
    );
    expect(policy.rules).toEqual([
      {
        rulePriority: 5,
        description: 'old releases',
        selection: { tagStatus: 'tagged', tagPatternList: ['v*'], countType: 'sinceImagePushed', countUnit: 'days', countNumber: 30 },
        action: { type: 'expire' },
      },
      {
        rulePriority: 7,
        selection: { tagStatus: 'untagged', countType: 'sinceImagePulled', countUnit: 'days', countNumber: 60 },
        action: { type: 'expire' },
      },
      {
        rulePriority: 9,
        selection: { tagStatus: 'any', countType: 'imageCountMoreThan', countNumber: 100 },
        action: { type: 'expire' },
      },
    ]);
    expect(Object.isFrozen(policy.rules)).toBe(true);
    expect(Object.isFrozen(policy.rules[0]!.selection)).toBe(true);
    expect(Object.isFrozen(policy.rules[0]!.selection.tagPatternList)).toBe(true);
  });

  it('accepts a policy of exactly the maximum length', () => {
    const base = rules(rule({ description: '' }));
    const padded = base.replace('"description":""', `"description":"${'x'.repeat(LIFECYCLE_POLICY_TEXT.max - base.length)}"`);
    expect(padded.length).toBe(LIFECYCLE_POLICY_TEXT.max);
    expect(parseLifecyclePolicy(padded).rules[0]!.description).toHaveLength(LIFECYCLE_POLICY_TEXT.max - base.length);
  });
});

describe('parseLifecyclePolicy: the schema, in the words ECR answers', () => {
  it.each([
    // The document itself.
    ['text that is not JSON', '{"rules": [', 'Could not map policyString into LifecyclePolicy.'],
    ['a JSON array', text([rule()]), 'Could not map policyString into LifecyclePolicy.'],
    ['a JSON string', text('rules'), 'Could not map policyString into LifecyclePolicy.'],
    ['JSON null', 'null', 'Could not map policyString into LifecyclePolicy.'],
    ['no rules', text({}), 'object has missing required properties (["rules"])'],
    ['rules that are an object', text({ rules: rule() }), 'instance type (object) does not match any allowed primitive type (allowed: ["array"])'],
    ['rules that are null', text({ rules: null }), 'instance type (null) does not match any allowed primitive type (allowed: ["array"])'],
    ['an empty list of rules', text({ rules: [] }), 'array is too short: must have at least 1 elements but instance has 0 elements'],
    ['an unknown top-level member', text({ rules: [rule()], version: 1 }), 'object instance has properties which are not allowed by the schema: (["version"])'],
    // A rule.
    ['a rule that is a string', rules('rule'), 'instance type (string) does not match any allowed primitive type (allowed: ["object"])'],
    ['a rule without rulePriority', rules({ selection: rule().selection, action: rule().action }), 'object has missing required properties (["rulePriority"])'],
    ['a rule with only a priority', rules({ rulePriority: 1 }), 'object has missing required properties (["action", "selection"])'],
    ['a rule with an unknown member', rules(rule({ name: 'x' })), 'object instance has properties which are not allowed by the schema: (["name"])'],
    ['a rule with a __proto__ member', `{"rules":[{"rulePriority":1,"__proto__":{},"selection":${text(rule().selection)},"action":{"type":"expire"}}]}`, 'object instance has properties which are not allowed by the schema: (["__proto__"])'],
    ['rulePriority 0', rules(rule({ rulePriority: 0 })), 'numeric instance is lower than the required minimum (minimum: 1, found: 0)'],
    ['a negative rulePriority', rules(rule({ rulePriority: -3 })), 'numeric instance is lower than the required minimum (minimum: 1, found: -3)'],
    ['a fractional rulePriority', rules(rule({ rulePriority: 1.5 })), 'instance type (number) does not match any allowed primitive type (allowed: ["integer"])'],
    ['rulePriority as a string', rules(rule({ rulePriority: '1' })), 'instance type (string) does not match any allowed primitive type (allowed: ["integer"])'],
    ['rulePriority null', rules(rule({ rulePriority: null })), 'instance type (null) does not match any allowed primitive type (allowed: ["integer"])'],
    ['rulePriority beyond a 32-bit integer', rules(rule({ rulePriority: 2147483648 })), 'numeric instance is greater than the required maximum (maximum: 2147483647, found: 2147483648)'],
    ['a description that is a number', rules(rule({ description: 5 })), 'instance type (integer) does not match any allowed primitive type (allowed: ["string"])'],
    ['a null description', rules(rule({ description: null })), 'instance type (null) does not match any allowed primitive type (allowed: ["string"])'],
    // A selection.
    ['a null selection', rules(rule({ selection: null })), 'instance type (null) does not match any allowed primitive type (allowed: ["object"])'],
    ['a selection without tagStatus', rules(selecting({ countType: 'imageCountMoreThan', countNumber: 1 })), 'object has missing required properties (["tagStatus"])'],
    ['a selection without countType', rules(selecting({ tagStatus: 'untagged', countNumber: 1 })), 'object has missing required properties (["countType"])'],
    ['a selection without countNumber', rules(selecting({ tagStatus: 'untagged', countType: 'imageCountMoreThan' })), 'object has missing required properties (["countNumber"])'],
    ['a selection with an unknown member', rules(rule({}, { maxAge: 3 })), 'object instance has properties which are not allowed by the schema: (["maxAge"])'],
    ['tagStatus in capitals', rules(rule({}, { tagStatus: 'UNTAGGED' })), 'instance value (UNTAGGED) not found in enum :(possible values: ["any", "tagged", "untagged"])'],
    ['tagStatus as a number', rules(rule({}, { tagStatus: 1 })), 'instance type (integer) does not match any allowed primitive type (allowed: ["string"])'],
    ['an unknown countType', rules(rule({}, { countType: 'imageCountLessThan' })), ONE_OF],
    ['countUnit with imageCountMoreThan', rules(rule({}, { countUnit: 'days' })), ONE_OF],
    ['sinceImagePushed without countUnit', rules(rule({}, { countType: 'sinceImagePushed', countNumber: 14 })), ONE_OF],
    ['a countUnit other than days', rules(rule({}, { countType: 'sinceImagePushed', countUnit: 'hours' })), 'instance value (hours) not found in enum :(possible values: ["days"])'],
    ['a countUnit that is a number', rules(rule({}, { countType: 'sinceImagePushed', countUnit: 1 })), 'instance type (integer) does not match any allowed primitive type (allowed: ["string"])'],
    // sinceImagePulled takes countUnit as sinceImagePushed does: required, and only `days`.
    ['sinceImagePulled without countUnit', rules(rule({}, { countType: 'sinceImagePulled', countNumber: 30 })), ONE_OF],
    ['sinceImagePulled with a countUnit other than days', rules(rule({}, { countType: 'sinceImagePulled', countUnit: 'weeks' })), 'instance value (weeks) not found in enum :(possible values: ["days"])'],
    ['sinceImagePulled with a countUnit that is a number', rules(rule({}, { countType: 'sinceImagePulled', countUnit: 30 })), 'instance type (integer) does not match any allowed primitive type (allowed: ["string"])'],
    ['sinceImagePulled with a null countUnit', rules(rule({}, { countType: 'sinceImagePulled', countUnit: null })), ONE_OF],
    ['sinceImagePulled in capitals', rules(rule({}, { countType: 'SINCEIMAGEPULLED', countUnit: 'days' })), ONE_OF],
    ['sinceImagePulled with countNumber 0', rules(rule({}, { countType: 'sinceImagePulled', countUnit: 'days', countNumber: 0 })), 'numeric instance is lower than the required minimum (minimum: 1, found: 0)'],
    // "Expected: no nulls": a null anywhere in a selection matches neither of its schemas.
    ['a null countUnit', rules(rule({}, { countUnit: null })), ONE_OF],
    ['a null tagPrefixList', rules(rule({}, { tagPrefixList: null })), ONE_OF],
    ['a null tagStatus', rules(rule({}, { tagStatus: null })), ONE_OF],
    ['a null countNumber', rules(rule({}, { countNumber: null })), ONE_OF],
    // "Acceptable values are positive integers (0 is not an accepted value)."
    ['countNumber 0', rules(rule({}, { countNumber: 0 })), 'numeric instance is lower than the required minimum (minimum: 1, found: 0)'],
    ['a negative countNumber', rules(rule({}, { countNumber: -1 })), 'numeric instance is lower than the required minimum (minimum: 1, found: -1)'],
    ['a fractional countNumber', rules(rule({}, { countNumber: 2.5 })), 'instance type (number) does not match any allowed primitive type (allowed: ["integer"])'],
    ['countNumber as a string', rules(rule({}, { countNumber: '5' })), 'instance type (string) does not match any allowed primitive type (allowed: ["integer"])'],
    ['tagPrefixList as a string', rules(selecting({ tagStatus: 'tagged', tagPrefixList: 'prod', countType: 'imageCountMoreThan', countNumber: 1 })), 'instance type (string) does not match any allowed primitive type (allowed: ["array"])'],
    ['tagPatternList with a number', rules(selecting({ tagStatus: 'tagged', tagPatternList: ['v*', 7], countType: 'imageCountMoreThan', countNumber: 1 })), 'instance type (integer) does not match any allowed primitive type (allowed: ["string"])'],
    ['tagPatternList with a null', rules(selecting({ tagStatus: 'tagged', tagPatternList: [null], countType: 'imageCountMoreThan', countNumber: 1 })), 'instance type (null) does not match any allowed primitive type (allowed: ["string"])'],
    // An action.
    ['a null action', rules(rule({ action: null })), 'instance type (null) does not match any allowed primitive type (allowed: ["object"])'],
    ['an action without type', rules(rule({ action: {} })), 'object has missing required properties (["type"])'],
    ['an action type other than expire', rules(rule({ action: { type: 'keep' } })), 'instance value (keep) not found in enum :(possible values: ["expire"])'],
    ['an action type in capitals', rules(rule({ action: { type: 'EXPIRE' } })), 'instance value (EXPIRE) not found in enum :(possible values: ["expire"])'],
    ['an action with an unknown member', rules(rule({ action: { type: 'expire', days: 1 } })), 'object instance has properties which are not allowed by the schema: (["days"])'],
    ['a null action type', rules(rule({ action: { type: null } })), ONE_OF],
    ['a null targetStorageClass', rules(rule({ action: { type: 'expire', targetStorageClass: null } })), ONE_OF],
  ])('refuses %s', (_title, policyText, reason) => {
    expect(refusal(policyText)).toBe(reason);
  });

  it('refuses a text longer than 30,720 characters before reading it', () => {
    const base = rules(rule({ description: '' }));
    const long = base.replace('"description":""', `"description":"${'x'.repeat(LIFECYCLE_POLICY_TEXT.max + 1 - base.length)}"`);
    expect(long.length).toBe(LIFECYCLE_POLICY_TEXT.max + 1);
    expect(refusal(long)).toBe('The lifecycle policy text is 30721 characters long; the limit is 30720.');
  });
});

describe('parseLifecyclePolicy: what this registry does not carry out', () => {
  it.each([
    ['the archive storage class in a selection', rules(rule({}, { storageClass: 'standard' })), 'storageClass is not supported by this registry: it has no archive storage class.'],
    ['a transition action', rules(rule({ action: { type: 'transition', targetStorageClass: 'archive' } })), "action type 'transition' is not supported by this registry: it has no archive storage class."],
    ['a targetStorageClass on an expire action', rules(rule({ action: { type: 'expire', targetStorageClass: 'archive' } })), 'targetStorageClass is not supported by this registry: it has no archive storage class.'],
    // ECR's own pairing, a sinceImagePulled rule that archives: the action is refused, not the count type.
    ['sinceImagePulled with a transition action', rules(rule({ action: { type: 'transition', targetStorageClass: 'archive' } }, { countType: 'sinceImagePulled', countUnit: 'days' })), "action type 'transition' is not supported by this registry: it has no archive storage class."],
    ['sinceImagePulled on the standard storage class', rules(rule({}, { countType: 'sinceImagePulled', countUnit: 'days', storageClass: 'standard' })), 'storageClass is not supported by this registry: it has no archive storage class.'],
    ['countType sinceImageTransitioned', rules(rule({}, { countType: 'sinceImageTransitioned', countUnit: 'days' })), "countType 'sinceImageTransitioned' is not supported by this registry: it has no archive storage class."],
  ])('refuses %s, saying so', (_title, policyText, reason) => {
    expect(refusal(policyText)).toBe(reason);
  });
});

describe('parseLifecyclePolicy: the rules the user guide states', () => {
  const tagged = (list: Doc, over: Doc = {}) =>
    selecting({ tagStatus: 'tagged', ...list, countType: 'imageCountMoreThan', countNumber: 1 }, over);
  const any = (over: Doc = {}) => selecting({ tagStatus: 'any', countType: 'imageCountMoreThan', countNumber: 1 }, over);
  const untagged = (over: Doc = {}) => selecting({ tagStatus: 'untagged', countType: 'imageCountMoreThan', countNumber: 1 }, over);

  it.each([
    // "If you specify tagged, then you must also specify a tagPrefixList value or a tagPatternList value."
    ['a tagged rule without a list', rules(tagged({})), 'Must specify tagPrefixList or tagPatternList when tagStatus=TAGGED.'],
    ['a tagged rule with an empty prefix list', rules(tagged({ tagPrefixList: [] })), 'Must specify tagPrefixList or tagPatternList when tagStatus=TAGGED.'],
    ['a tagged rule with an empty pattern list', rules(tagged({ tagPatternList: [] })), 'Must specify tagPrefixList or tagPatternList when tagStatus=TAGGED.'],
    // CDK, from ECR's API: "Both tagPrefixList and tagPatternList cannot be specified together in a rule."
    ['a rule with both lists', rules(tagged({ tagPrefixList: ['prod'], tagPatternList: ['prod*'] })), 'tagPrefixList and tagPatternList cannot both be specified in one rule.'],
    // "If you specify untagged, then you must omit both tagPrefixList and tagPatternList."
    ['an untagged rule with a prefix list', rules(untagged({ selection: { ...(untagged().selection as Doc), tagPrefixList: ['prod'] } })), 'tagPrefixList and tagPatternList can only be specified when tagStatus=TAGGED, not tagStatus=UNTAGGED.'],
    ['an any rule with an empty pattern list', rules(any({ selection: { ...(any().selection as Doc), tagPatternList: [] } })), 'tagPrefixList and tagPatternList can only be specified when tagStatus=TAGGED, not tagStatus=ANY.'],
    // "a maximum of four wildcards (*) per string ... ["test*1*2*3*4*5*6"] is invalid."
    ['the guide\'s pattern with six wildcards', rules(tagged({ tagPatternList: ['test*1*2*3*4*5*6'] })), "The tag pattern 'test*1*2*3*4*5*6' has 6 wildcards (*); a pattern may have at most 4."],
    ['a pattern with five wildcards', rules(tagged({ tagPatternList: ['v*', '*a*b*c*d*'] })), "The tag pattern '*a*b*c*d*' has 5 wildcards (*); a pattern may have at most 4."],
    // "you must give them each a unique value for rulePriority."
    ['two rules with one priority', rules(tagged({ tagPrefixList: ['a'] }, { rulePriority: 3 }), tagged({ tagPrefixList: ['b'] }, { rulePriority: 3 })), 'Rule priorities must be unique; 3 is given to more than one rule.'],
    // "A rule with a tagStatus value of any must have the highest value for rulePriority and be evaluated last."
    ['an any rule before a tagged one', rules(any({ rulePriority: 1 }), tagged({ tagPrefixList: ['prod'] }, { rulePriority: 2 })), 'Rule for tagStatus=ANY must have the lowest priority.'],
    ['an any rule listed last but numbered first', rules(untagged({ rulePriority: 5 }), any({ rulePriority: 4 })), 'Rule for tagStatus=ANY must have the lowest priority.'],
    ['two any rules', rules(any({ rulePriority: 1 }), any({ rulePriority: 2 })), 'Rule for tagStatus=ANY must have the lowest priority.'],
    // "Only one rule is allowed to select untagged images."
    ['two untagged rules', rules(untagged({ rulePriority: 1 }), untagged({ rulePriority: 2 })), 'Only one rule can select Untagged images.'],
    // "The set of rules must contain a unique set of tag prefixes."
    ['two rules with the same tag prefixes', rules(tagged({ tagPrefixList: ['prod', 'v'] }, { rulePriority: 1 }), tagged({ tagPrefixList: ['v', 'prod'] }, { rulePriority: 7 })), 'The rules with priorities 1 and 7 select the same tag prefixes; each rule must have a unique set of tag prefixes.'],
  ])('refuses %s', (_title, policyText, reason) => {
    expect(refusal(policyText)).toBe(reason);
  });

  it('reports a schema problem in a later rule before a rule problem in an earlier one', () => {
    const policyText = rules(tagged({}, { rulePriority: 1 }), { rulePriority: 2, selection: untagged().selection });
    expect(refusal(policyText)).toBe('object has missing required properties (["action"])');
  });

  it('reports the first problem only, in document order', () => {
    const policyText = rules(rule({ rulePriority: 0 }), rule({ rulePriority: 2, description: 5 }));
    expect(refusal(policyText)).toBe('numeric instance is lower than the required minimum (minimum: 1, found: 0)');
  });
});
