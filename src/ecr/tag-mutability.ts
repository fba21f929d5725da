/**
 * ECR's tag mutability: which tags of a repository may be moved to another image. Pure.
 *
 * - MUTABLE: every tag may move.
 * - IMMUTABLE: no tag may move.
 * - IMMUTABLE_WITH_EXCLUSION: no tag may move, except those an exclusion filter matches.
 * - MUTABLE_WITH_EXCLUSION: every tag may move, except those an exclusion filter matches.
 *
 * Filters are WILDCARD patterns (the model: 1 to 128 of `0-9a-zA-Z._*-`, 1 to 5 filters), where
 * `*` stands for any run of characters, the empty one too, and every other character for itself
 * (case-sensitively, as tags are). A tag that does not exist yet is never a move.
 */

export const TAG_MUTABILITIES = ['MUTABLE', 'IMMUTABLE', 'IMMUTABLE_WITH_EXCLUSION', 'MUTABLE_WITH_EXCLUSION'] as const;
export type TagMutability = (typeof TAG_MUTABILITIES)[number];

export interface ExclusionFilter {
  readonly filterType: 'WILDCARD';
  readonly filter: string;
}

/** The model's limits on exclusion filters. */
export const EXCLUSION_FILTERS = { min: 1, max: 5 } as const;
export const EXCLUSION_FILTER_VALUE = { min: 1, max: 128, pattern: /^[0-9a-zA-Z._*-]{1,128}$/ } as const;

/** Whether the mutability takes exclusion filters (and needs at least one). */
export function takesExclusions(mutability: TagMutability): boolean {
  return mutability === 'IMMUTABLE_WITH_EXCLUSION' || mutability === 'MUTABLE_WITH_EXCLUSION';
}

/** Whether an existing tag may not be moved to another image. */
export function isTagImmutable(mutability: TagMutability, filters: readonly ExclusionFilter[], tag: string): boolean {
  switch (mutability) {
    case 'MUTABLE':
      return false;
    case 'IMMUTABLE':
      return true;
    case 'IMMUTABLE_WITH_EXCLUSION':
      return !filters.some((f) => wildcardMatches(f.filter, tag));
    case 'MUTABLE_WITH_EXCLUSION':
      return filters.some((f) => wildcardMatches(f.filter, tag));
  }
}

/**
 * Whether `text` matches `pattern` as a whole, `*` matching any run of characters. Greedy with
 * one backtrack point (the last `*`): at most the product of the lengths in steps, never the
 * exponential backtracking a regular expression can fall into.
 */
export function wildcardMatches(pattern: string, text: string): boolean {
  let p = 0;
  let t = 0;
  let star = -1; // the position in `pattern` after the last `*` seen
  let resume = 0; // where in `text` that `*` would next take one more character
  while (t < text.length) {
    if (p < pattern.length && pattern[p] === '*') {
      star = ++p;
      resume = t;
    } else if (p < pattern.length && pattern[p] === text[t]) {
      p++;
      t++;
    } else if (star >= 0) {
      p = star;
      t = ++resume;
    } else {
      return false;
    }
  }
  while (p < pattern.length && pattern[p] === '*') p++;
  return p === pattern.length;
}
