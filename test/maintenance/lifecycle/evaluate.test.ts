import { describe, expect, it } from 'vitest';
import { evaluateLifecycle, matchesTagPattern, type ImageFacts } from '../../../src/maintenance/lifecycle/evaluate.js';
import { parseLifecyclePolicy } from '../../../src/maintenance/lifecycle/policy.js';

const DAY = 24 * 60 * 60 * 1000;
const NOW = Date.UTC(2024, 5, 30, 12, 0, 0);

type Doc = Record<string, unknown>;

/** An image named `name` (its digest is `sha256:<name>`), pushed `daysAgo` days before NOW. */
function image(name: string, tags: string[], daysAgo: number, laterMs = 0): ImageFacts {
  return { digest: `sha256:${name}`, tags, pushedAt: NOW - daysAgo * DAY + laterMs };
}

/** A policy read through the parser, from rules written as in the user guide. */
function policy(...rules: Doc[]) {
  return parseLifecyclePolicy(JSON.stringify({ rules: rules.map((r) => ({ action: { type: 'expire' }, ...r })) }));
}

/** [image name, the priority of the rule expiring it], in the evaluator's order. */
function expired(p: ReturnType<typeof policy>, images: ImageFacts[], now = NOW): [string, number][] {
  return evaluateLifecycle(p, images, now).map((e) => [e.digest.slice('sha256:'.length), e.rulePriority]);
}

describe('evaluateLifecycle: the worked examples of "Examples of lifecycle policies in Amazon ECR"', () => {
  // Repository of "Filtering on multiple rules", Examples A and B.
  const multipleRulesRepo = [
    image('A', ['beta-1', 'prod-1'], 10),
    image('B', ['beta-2', 'prod-2'], 9),
    image('C', ['beta-3'], 8),
  ];

  it('Filtering on multiple rules, Example A: Image A is expired', () => {
    // "Rule 2 ... marks both Image A and Image B for expiration. However, Image A has already been seen
    // by Rule 1 and if Image B were expired it would violate Rule 1 and thus is skipped."
    const p = policy(
      { rulePriority: 1, description: 'Rule 1', selection: { tagStatus: 'tagged', tagPrefixList: ['prod'], countType: 'imageCountMoreThan', countNumber: 1 } },
      { rulePriority: 2, description: 'Rule 2', selection: { tagStatus: 'tagged', tagPrefixList: ['beta'], countType: 'imageCountMoreThan', countNumber: 1 } },
    );
    expect(expired(p, multipleRulesRepo)).toEqual([['A', 1]]);
  });

  it('Filtering on multiple rules, Example B: Images A and B are expired', () => {
    // "Rule 2 ... would see no images because all available images were already seen by Rule 1."
    const p = policy(
      { rulePriority: 1, description: 'Rule 1', selection: { tagStatus: 'tagged', tagPrefixList: ['beta'], countType: 'imageCountMoreThan', countNumber: 1 } },
      { rulePriority: 2, description: 'Rule 2', selection: { tagStatus: 'tagged', tagPrefixList: ['prod'], countType: 'imageCountMoreThan', countNumber: 1 } },
    );
    expect(expired(p, multipleRulesRepo)).toEqual([['A', 1], ['B', 1]]);
  });

  it('Filtering on multiple tags in a single rule, Example A: Image C is expired', () => {
    // "When multiple tag prefixes are specified on a single rule, images must match all listed tag prefixes."
    const images = [
      image('A', ['alpha-1'], 12),
      image('B', ['beta-1'], 11),
      image('C', ['alpha-2', 'beta-2'], 10),
      image('D', ['alpha-3'], 4),
      image('E', ['beta-3'], 3),
      image('F', ['alpha-4', 'beta-4'], 2),
    ];
    const p = policy({
      rulePriority: 1,
      description: 'Rule 1',
      selection: { tagStatus: 'tagged', tagPrefixList: ['alpha', 'beta'], countType: 'sinceImagePushed', countNumber: 5, countUnit: 'days' },
    });
    expect(expired(p, images)).toEqual([['C', 1]]);
  });

  it('Filtering on multiple tags in a single rule, Example B: Images A and B are expired', () => {
    // "The following example illustrates that tags are not exclusive."
    const images = [
      image('A', ['alpha-1', 'beta-1', 'gamma-1'], 10),
      image('B', ['alpha-2', 'beta-2'], 9),
      image('C', ['alpha-3', 'beta-3', 'gamma-2'], 8),
    ];
    const p = policy({
      rulePriority: 1,
      description: 'Rule 1',
      selection: { tagStatus: 'tagged', tagPrefixList: ['alpha', 'beta'], countType: 'imageCountMoreThan', countNumber: 1 },
    });
    expect(expired(p, images)).toEqual([['A', 1], ['B', 1]]);
  });

  it('Filtering on all images, Example A: Images A, B, and C are expired', () => {
    const images = [image('A', ['alpha-1'], 4), image('B', ['beta-1'], 3), image('C', [], 2), image('D', ['alpha-2'], 1)];
    const p = policy({ rulePriority: 1, description: 'Rule 1', selection: { tagStatus: 'any', countType: 'imageCountMoreThan', countNumber: 1 } });
    expect(expired(p, images)).toEqual([['A', 1], ['B', 1], ['C', 1]]);
  });

  it('Filtering on all images, Example B: Images A, B, and D are expired', () => {
    // The guide pushes D and E "1 day ago" and has rule 3 keep the newest and expire D, so E is the later
    // of the two (a minute later here); E, pushed less than a day ago, is not "older than one day" for rule 2.
    const images = [
      image('A', ['alpha-1', 'beta-1'], 4),
      image('B', [], 3),
      image('C', ['alpha-2'], 2),
      image('D', ['git hash'], 1),
      image('E', [], 1, 60_000),
    ];
    // "Rule 3 ... can't mark images A, B, C, or E because they were identified by higher priority rules."
    const p = policy(
      { rulePriority: 1, description: 'Rule 1', selection: { tagStatus: 'tagged', tagPrefixList: ['alpha'], countType: 'imageCountMoreThan', countNumber: 1 } },
      { rulePriority: 2, description: 'Rule 2', selection: { tagStatus: 'untagged', countType: 'sinceImagePushed', countUnit: 'days', countNumber: 1 } },
      { rulePriority: 3, description: 'Rule 3', selection: { tagStatus: 'any', countType: 'imageCountMoreThan', countNumber: 1 } },
    );
    expect(expired(p, images)).toEqual([['A', 1], ['B', 2], ['D', 3]]);
  });

  // The guide gives these two policies without a repository; the images are ours.
  it('Filtering on image age: untagged images older than 14 days', () => {
    const p = policy({
      rulePriority: 1,
      description: 'Expire images older than 14 days',
      selection: { tagStatus: 'untagged', countType: 'sinceImagePushed', countUnit: 'days', countNumber: 14 },
    });
    const images = [image('old', [], 20), image('young', [], 3), image('oldtagged', ['v1'], 30)];
    expect(expired(p, images)).toEqual([['old', 1]]);
  });

  it('Filtering on image age: tags matching prod* older than 14 days', () => {
    const p = policy({
      rulePriority: 1,
      description: 'Expire images older than 14 days',
      selection: { tagStatus: 'tagged', tagPatternList: ['prod*'], countType: 'sinceImagePushed', countUnit: 'days', countNumber: 14 },
    });
    const images = [image('prod', ['prod'], 20), image('prod2', ['x', 'prod2'], 15), image('young', ['prod3'], 2), image('dev', ['dev-1'], 40), image('none', [], 40)];
    expect(expired(p, images)).toEqual([['prod', 1], ['prod2', 1]]);
  });

  it('Filtering on image count: keeps only one untagged image and expires all others', () => {
    const p = policy({
      rulePriority: 1,
      description: 'Keep only one untagged image, expire all others',
      selection: { tagStatus: 'untagged', countType: 'imageCountMoreThan', countNumber: 1 },
    });
    const images = [image('u1', [], 5), image('u2', [], 4), image('u3', [], 3), image('t', ['latest'], 9)];
    expect(expired(p, images)).toEqual([['u1', 1], ['u2', 1]]);
  });
});

describe('evaluateLifecycle: the evaluation rules of "How lifecycle policies work"', () => {
  it('expires nothing in an empty repository', () => {
    const p = policy({ rulePriority: 1, selection: { tagStatus: 'any', countType: 'imageCountMoreThan', countNumber: 1 } });
    expect(evaluateLifecycle(p, [], NOW)).toEqual([]);
  });

  it('applies rules by rulePriority, not by their order in the document', () => {
    // "Sets the order in which rules are applied, lowest to highest."
    const images = [image('A', ['beta-1', 'prod-1'], 10), image('B', ['beta-2', 'prod-2'], 9), image('C', ['beta-3'], 8)];
    const p = policy(
      { rulePriority: 20, selection: { tagStatus: 'tagged', tagPrefixList: ['beta'], countType: 'imageCountMoreThan', countNumber: 1 } },
      { rulePriority: 10, selection: { tagStatus: 'tagged', tagPrefixList: ['prod'], countType: 'imageCountMoreThan', countNumber: 1 } },
    );
    expect(expired(p, images)).toEqual([['A', 10]]);
  });

  it('expires an image selected by two rules once, by the rule applied first', () => {
    // "An image is expired by exactly one or zero rules."
    const p = policy(
      { rulePriority: 1, selection: { tagStatus: 'tagged', tagPatternList: ['prod-*'], countType: 'sinceImagePushed', countUnit: 'days', countNumber: 7 } },
      { rulePriority: 2, selection: { tagStatus: 'tagged', tagPatternList: ['*-rc'], countType: 'sinceImagePushed', countUnit: 'days', countNumber: 1 } },
    );
    const images = [image('both', ['prod-1', '1.0-rc'], 30), image('rc', ['2.0-rc'], 3)];
    expect(expired(p, images)).toEqual([['both', 1], ['rc', 2]]);
  });

  it('never lets a later rule expire an image that an earlier rule selected and kept', () => {
    // "An image that matches the tagging requirements of a rule cannot be expired by a rule with a lower priority."
    const p = policy(
      { rulePriority: 1, selection: { tagStatus: 'tagged', tagPrefixList: ['release'], countType: 'sinceImagePushed', countUnit: 'days', countNumber: 365 } },
      { rulePriority: 2, selection: { tagStatus: 'any', countType: 'imageCountMoreThan', countNumber: 1 } },
    );
    const images = [image('r1', ['release-1', 'latest'], 200), image('r2', ['release-2'], 100), image('dev', ['dev'], 50), image('new', [], 1)];
    expect(expired(p, images)).toEqual([['dev', 2]]);
  });

  it('still counts images a higher-priority rule expired when keeping the newest N', () => {
    // "Rules can never mark images that are marked by higher priority rules, but can still identify them as
    // if they haven't been expired." The two pr- images, expired by rule 1, are the newest two that rule 2
    // keeps, so rule 2 expires all three others.
    const p = policy(
      { rulePriority: 1, selection: { tagStatus: 'tagged', tagPrefixList: ['pr-'], countType: 'sinceImagePushed', countUnit: 'days', countNumber: 1 } },
      { rulePriority: 2, selection: { tagStatus: 'any', countType: 'imageCountMoreThan', countNumber: 2 } },
    );
    const images = [image('P1', ['pr-1'], 2), image('P2', ['pr-2'], 3), image('R1', ['v1'], 5), image('R2', ['v2'], 6), image('R3', ['v3'], 7)];
    expect(expired(p, images)).toEqual([['P2', 1], ['P1', 1], ['R3', 2], ['R2', 2], ['R1', 2]]);
  });

  it('keeps the most recently pushed images and expires older ones first', () => {
    // "With countType = imageCountMoreThan, images are sorted from youngest to oldest based on pushed_at_time
    // and then all images greater than the specified count are expired."
    const p = policy({ rulePriority: 1, selection: { tagStatus: 'tagged', tagPatternList: ['*'], countType: 'imageCountMoreThan', countNumber: 2 } });
    const images = [image('mid', ['b'], 5), image('newest', ['c'], 1), image('oldest', ['a'], 9), image('older', ['d'], 7)];
    expect(expired(p, images)).toEqual([['oldest', 1], ['older', 1]]);
  });

  it('breaks push-time ties by digest, whatever the order of the images', () => {
    const p = policy({ rulePriority: 1, selection: { tagStatus: 'untagged', countType: 'imageCountMoreThan', countNumber: 1 } });
    const images = [image('c', [], 3), image('a', [], 3), image('b', [], 3)];
    const forward = expired(p, images);
    expect(forward).toEqual([['b', 1], ['c', 1]]); // 'a' sorts first among equals and counts as the newest
    expect(expired(p, [...images].reverse())).toEqual(forward);
  });

  it('expires only images pushed more than N days before now', () => {
    // "With countType = sinceImagePushed, all images whose pushed_at_time is older than the specified number
    // of days based on countNumber are expired."
    const p = policy({ rulePriority: 1, selection: { tagStatus: 'any', countType: 'sinceImagePushed', countUnit: 'days', countNumber: 14 } });
    const images = [
      image('exactly', [], 14),
      image('justOver', [], 14, -1),
      image('justUnder', [], 14, 1),
      image('future', [], -1),
    ];
    expect(expired(p, images)).toEqual([['justOver', 1]]);
    expect(expired(p, images, NOW + 1)).toEqual([['justOver', 1], ['exactly', 1]]);
  });

  it('requires every prefix to match, each against any of the image\'s tags', () => {
    // "When using the tagPrefixList, an image is successfully matched if all of the tags in the tagPrefixList
    // value are matched against any of the image's tags."
    const p = policy({ rulePriority: 1, selection: { tagStatus: 'tagged', tagPrefixList: ['app-', 'v'], countType: 'sinceImagePushed', countUnit: 'days', countNumber: 1 } });
    const images = [
      image('both', ['app-web', 'v1.2'], 5),
      image('oneTagBoth', ['app-v1'], 5), // 'app-v1' starts with 'app-' but not with 'v'
      image('onlyApp', ['app-api'], 5),
      image('prefixInside', ['my-app-x', 'v2'], 5),
    ];
    expect(expired(p, images)).toEqual([['both', 1]]);
  });

  it('requires every pattern to match a whole tag, each against any of the image\'s tags', () => {
    const p = policy({ rulePriority: 1, selection: { tagStatus: 'tagged', tagPatternList: ['prod', '*-202?'], countType: 'imageCountMoreThan', countNumber: 1 } });
    const images = [
      image('newest', ['prod', 'build-202?'], 1),
      image('match', ['build-202?', 'prod'], 2),
      image('prefixOnly', ['prod1', 'x-202?'], 3), // 'prod' without a wildcard is the whole tag 'prod'
      image('literalQuestionMark', ['prod', 'x-2024'], 4), // '?' is not a wildcard
    ];
    expect(expired(p, images)).toEqual([['match', 1]]);
  });

  it('selects with untagged only images without tags, and with tagged only images with a tag', () => {
    const p = policy(
      { rulePriority: 1, selection: { tagStatus: 'tagged', tagPatternList: ['*'], countType: 'sinceImagePushed', countUnit: 'days', countNumber: 30 } },
      { rulePriority: 2, selection: { tagStatus: 'untagged', countType: 'sinceImagePushed', countUnit: 'days', countNumber: 7 } },
    );
    const images = [image('oldTagged', ['x'], 40), image('midTagged', ['y'], 10), image('midUntagged', [], 10), image('newUntagged', [], 2)];
    expect(expired(p, images)).toEqual([['oldTagged', 1], ['midUntagged', 2]]);
  });

  it('orders the result by rulePriority, then push time, then digest', () => {
    const p = policy(
      { rulePriority: 1, selection: { tagStatus: 'tagged', tagPrefixList: ['tmp'], countType: 'sinceImagePushed', countUnit: 'days', countNumber: 1 } },
      { rulePriority: 2, selection: { tagStatus: 'untagged', countType: 'sinceImagePushed', countUnit: 'days', countNumber: 1 } },
    );
    const images = [image('u-new', [], 2), image('t-b', ['tmp-2'], 3), image('u-old', [], 9), image('t-a', ['tmp-1'], 3), image('t-old', ['tmp-0'], 8)];
    expect(expired(p, images)).toEqual([['t-old', 1], ['t-a', 1], ['t-b', 1], ['u-old', 2], ['u-new', 2]]);
  });

  it('reports each expired image with its tags and push time, and counts a repeated digest once', () => {
    const p = policy({ rulePriority: 4, selection: { tagStatus: 'any', countType: 'imageCountMoreThan', countNumber: 1 } });
    const older = image('old', ['a', 'b'], 5);
    const result = evaluateLifecycle(p, [older, image('new', [], 1), { ...older, tags: ['ignored'] }], NOW);
    expect(result).toEqual([{ digest: 'sha256:old', tags: ['a', 'b'], pushedAt: NOW - 5 * DAY, rulePriority: 4 }]);
  });
});

describe('evaluateLifecycle: sinceImagePulled (ECR pairs it with transition; here it expires)', () => {
  /** `image(...)` last pulled `pulledDaysAgo` days before NOW (and `laterMs` after that). */
  const pulled = (name: string, tags: string[], pushedDaysAgo: number, pulledDaysAgo: number, laterMs = 0): ImageFacts => ({
    ...image(name, tags, pushedDaysAgo),
    lastPulledAt: NOW - pulledDaysAgo * DAY + laterMs,
  });
  const notPulledFor = (days: number, selection: Doc = {}) =>
    policy({ rulePriority: 1, description: `Expire images not pulled for ${days} days`, selection: { tagStatus: 'any', countType: 'sinceImagePulled', countUnit: 'days', countNumber: days, ...selection } });

  it('expires only images last pulled more than N days before now, whenever they were pushed', () => {
    const images = [
      pulled('recent', ['v1'], 400, 2),
      pulled('stale', ['v2'], 400, 31),
      pulled('exactly', [], 90, 30),
      pulled('justOver', [], 90, 30, -1),
      pulled('justUnder', [], 90, 30, 1),
    ];
    expect(expired(notPulledFor(30), images)).toEqual([['stale', 1], ['justOver', 1]]);
    expect(expired(notPulledFor(30), images, NOW + 1)).toEqual([['stale', 1], ['exactly', 1], ['justOver', 1]]);
  });

  it('counts an image never pulled from its push', () => {
    const images = [image('oldNeverPulled', [], 45), image('newNeverPulled', [], 3), pulled('oldPulledToday', [], 45, 0)];
    expect(expired(notPulledFor(30), images)).toEqual([['oldNeverPulled', 1]]);
  });

  it('counts a pull recorded before the push as the push', () => {
    // A digest deleted and pushed again keeps the pull time of its earlier life.
    const images = [pulled('repushed', ['v1'], 2, 60), pulled('old', ['v0'], 60, 60)];
    expect(expired(notPulledFor(30), images)).toEqual([['old', 1]]);
  });

  it('follows the evaluation rules like the other count types', () => {
    // An image kept by a higher-priority rule is not expired by the pull rule, however long unpulled.
    const p = policy(
      { rulePriority: 1, selection: { tagStatus: 'tagged', tagPrefixList: ['release'], countType: 'imageCountMoreThan', countNumber: 5 } },
      { rulePriority: 2, selection: { tagStatus: 'any', countType: 'sinceImagePulled', countUnit: 'days', countNumber: 30 } },
    );
    const images = [pulled('release', ['release-1'], 200, 100), pulled('cache', ['7.2'], 200, 100), image('untagged', [], 200), pulled('busy', ['8.0'], 200, 1)];
    expect(expired(p, images)).toEqual([['cache', 2], ['untagged', 2]]);
  });

  it('reports the pull time the plan saw, with the push time', () => {
    const result = evaluateLifecycle(notPulledFor(30), [pulled('stale', ['a'], 50, 40), image('never', [], 50, 1)], NOW);
    expect(result).toEqual([
      { digest: 'sha256:stale', tags: ['a'], pushedAt: NOW - 50 * DAY, lastPulledAt: NOW - 40 * DAY, rulePriority: 1 },
      { digest: 'sha256:never', tags: [], pushedAt: NOW - 50 * DAY + 1, rulePriority: 1 },
    ]);
  });
});

describe('matchesTagPattern', () => {
  it.each([
    ['prod*', 'prod', true],
    ['prod*', 'prod1', true],
    ['prod*', 'xprod', false],
    ['*prod', 'myprod', true],
    ['*prod', 'prod-x', false],
    ['prod', 'prod', true],
    ['prod', 'prod1', false],
    ['*', 'anything', true],
    ['**', 'x', true],
    ['a*a', 'a', false],
    ['a*a', 'aa', true],
    ['a*b*c', 'abc', true],
    ['a*b*c', 'aXbYc', true],
    ['a*b*c', 'acb', false],
    ['a*b*b', 'abb', true],
    ['*ab*ab', 'abab', true],
    ['*ab*ab', 'abXab', true],
    ['*ab*ab', 'ab', false],
    ['*test*1*2*3', 'mytestA1B2C3', true],
    ['test*1*2*3*', 'test123', true],
    ['test*1*2*3*', 'test132', false],
    ['v*.*.*', 'v1.2.3', true],
    ['v*.*.*', 'v1.2', false],
    ['v1.?', 'v1.?', true],
    ['v1.?', 'v1.2', false],
    ['Prod*', 'prod', false],
  ])('%j against %j → %s', (pattern, tag, expected) => {
    expect(matchesTagPattern(pattern, tag)).toBe(expected);
  });

  it('matches a 300-character tag against a four-wildcard pattern without backtracking blow-up', () => {
    const tag = `${'a'.repeat(299)}b`;
    expect(matchesTagPattern('*a*a*a*a', tag)).toBe(false);
    expect(matchesTagPattern('*a*a*a*b', tag)).toBe(true);
  });
});
