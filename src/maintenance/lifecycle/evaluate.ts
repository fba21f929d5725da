/**
 * What a lifecycle policy expires, as ECR's user guide states it (a pure function: the same policy,
 * images and clock give the same answer, so a preview is exactly what a run then does):
 *
 *  - every rule is evaluated over every image; the rules are then applied from the lowest
 *    rulePriority number up;
 *  - an image is expired by one rule or none;
 *  - an image that a rule selects (its tags meet the rule's tagStatus and lists) cannot be expired
 *    by any rule applied after it, although those rules still see it: `imageCountMoreThan` counts
 *    it among the images it keeps or would expire. (User guide, "Filtering on multiple rules",
 *    Example A: image B, selected but kept by rule 1, is not expired by rule 2.)
 *  - several entries in tagPrefixList or tagPatternList must all match, each against any of the
 *    image's tags; `untagged` selects images without tags, `any` every image;
 *  - `imageCountMoreThan N` keeps the N most recently pushed images it selects and expires the
 *    rest, oldest first; `sinceImagePushed N days` expires the images pushed more than N days
 *    (N × 24 h, to the millisecond) before `now`;
 *  - `sinceImagePulled N days` expires the images last pulled more than N days before `now`; an
 *    image never pulled counts from its push, as ECR's does. A pull recorded before the push
 *    (the pull times of a deleted manifest outlive it, and the same digest may be pushed again)
 *    counts as the push: an image is never older by its pulls than by its push.
 *
 * Push-time ties are broken by digest, so that every run orders the same images the same way.
 */
import type { LifecyclePolicy, LifecycleRule } from './policy.js';

export interface ImageFacts {
  readonly digest: string;
  readonly tags: readonly string[];
  /** When the image was pushed, in ms since the epoch. */
  readonly pushedAt: number;
  /** When it was last pulled (ms), if recorded; `sinceImagePulled` reads it. */
  readonly lastPulledAt?: number;
}

export interface Expiration {
  readonly digest: string;
  readonly tags: readonly string[];
  readonly pushedAt: number;
  /** When it was last pulled (ms), as the plan saw it, if recorded. */
  readonly lastPulledAt?: number;
  /** The rule that expires the image. */
  readonly rulePriority: number;
}

const DAY_MS = 24 * 60 * 60 * 1000;

/**
 * The images the policy expires at `now`, ordered by rulePriority, then pushedAt (oldest first),
 * then digest. Images are identified by digest; a digest given twice is counted once (its first facts).
 */
export function evaluateLifecycle(policy: LifecyclePolicy, images: readonly ImageFacts[], now: number): Expiration[] {
  const distinct = firstOfEachDigest(images);
  const rules = [...policy.rules].sort((a, b) => a.rulePriority - b.rulePriority);
  /** Images selected by a rule already applied: later rules may count them, never expire them. */
  const claimed = new Set<string>();
  const expired: Expiration[] = [];
  for (const rule of rules) {
    const selected = distinct.filter((image) => selects(rule, image));
    for (const image of candidates(rule, selected, now)) {
      if (claimed.has(image.digest)) continue;
      expired.push(
        Object.freeze({
          digest: image.digest,
          tags: Object.freeze([...image.tags]),
          pushedAt: image.pushedAt,
          ...(image.lastPulledAt !== undefined ? { lastPulledAt: image.lastPulledAt } : {}),
          rulePriority: rule.rulePriority,
        }),
      );
    }
    for (const image of selected) claimed.add(image.digest);
  }
  return expired.sort(
    (a, b) => a.rulePriority - b.rulePriority || a.pushedAt - b.pushedAt || compareStrings(a.digest, b.digest),
  );
}

/** Whether `pattern` matches the whole of `tag`; `*` stands for any run of characters, even none. */
export function matchesTagPattern(pattern: string, tag: string): boolean {
  const parts = pattern.split('*');
  if (parts.length === 1) return pattern === tag;
  const first = parts[0]!;
  const last = parts[parts.length - 1]!;
  const end = tag.length - last.length;
  if (end < first.length || !tag.startsWith(first) || !tag.endsWith(last)) return false;
  // Between the fixed ends, each middle part at its leftmost place after the one before it.
  let at = first.length;
  for (const part of parts.slice(1, -1)) {
    const found = tag.indexOf(part, at);
    if (found < 0 || found + part.length > end) return false;
    at = found + part.length;
  }
  return true;
}

function firstOfEachDigest(images: readonly ImageFacts[]): ImageFacts[] {
  const seen = new Set<string>();
  return images.filter((image) => {
    if (seen.has(image.digest)) return false;
    seen.add(image.digest);
    return true;
  });
}

function selects(rule: LifecycleRule, image: ImageFacts): boolean {
  const { tagStatus, tagPrefixList, tagPatternList } = rule.selection;
  if (tagStatus === 'any') return true;
  if (tagStatus === 'untagged') return image.tags.length === 0;
  if (image.tags.length === 0) return false;
  if (tagPrefixList) return tagPrefixList.every((prefix) => image.tags.some((tag) => tag.startsWith(prefix)));
  if (tagPatternList) return tagPatternList.every((pattern) => image.tags.some((tag) => matchesTagPattern(pattern, tag)));
  return false; // a `tagged` rule without a list does not parse
}

/** The selected images the rule would expire, were no earlier rule in the way. */
function candidates(rule: LifecycleRule, selected: readonly ImageFacts[], now: number): readonly ImageFacts[] {
  const { countType, countNumber } = rule.selection;
  if (countType === 'imageCountMoreThan') return [...selected].sort(newestFirst).slice(countNumber);
  const limit = countNumber * DAY_MS;
  if (countType === 'sinceImagePulled') return selected.filter((image) => now - lastUsed(image) > limit);
  return selected.filter((image) => now - image.pushedAt > limit);
}

/** What `sinceImagePulled` counts from: the last recorded pull, the push if it is later or there is none. */
export function lastUsed(image: Pick<ImageFacts, 'pushedAt' | 'lastPulledAt'>): number {
  return Math.max(image.pushedAt, image.lastPulledAt ?? image.pushedAt);
}

function newestFirst(a: ImageFacts, b: ImageFacts): number {
  return b.pushedAt - a.pushedAt || compareStrings(a.digest, b.digest);
}

function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
