/**
 * Repository patterns, as written in the access rules and in access-key scopes:
 * `*` matches within one path segment (never `/`), `**` matches any characters, `/` included.
 * So `team-a/**` matches `team-a/x` and `team-a/x/y` but not `team-a`, and `**` matches every name.
 *
 * Matching is a hand-written automaton run over the name once (O(name × pattern)); no regular
 * expression is built from the pattern, so no pattern can make matching backtrack.
 */

export class PatternError extends Error {
  override name = 'PatternError';
}

export interface CompiledPattern {
  /** The pattern as written. */
  readonly pattern: string;
  /** How many of its characters are not wildcards: the more, the more specific the pattern. */
  readonly literal: number;
  matches(name: string): boolean;
}

const ALLOWED = /^[a-z0-9._/*-]+$/;

/** One step of a pattern: a literal character, `*` (within a segment) or `**` (anything). */
const STAR = -1;
const GLOBSTAR = -2;

export function compilePattern(p: string): CompiledPattern {
  validate(p);
  const steps: number[] = [];
  for (let i = 0; i < p.length; i++) {
    if (p[i] === '*') {
      if (p[i + 1] === '*') {
        steps.push(GLOBSTAR);
        i++;
      } else {
        steps.push(STAR);
      }
    } else {
      steps.push(p.charCodeAt(i));
    }
  }
  const literal = steps.filter((s) => s >= 0).length;
  return { pattern: p, literal, matches: matcher(p, steps, literal) };
}

function validate(p: string): void {
  const quoted = JSON.stringify(p);
  if (p === '') throw new PatternError('repository pattern must not be empty');
  if (!ALLOWED.test(p)) {
    throw new PatternError(
      `repository pattern ${quoted} may contain only a-z, 0-9, ".", "_", "-", "/" and the wildcards * and **`,
    );
  }
  if (p.split('/').some((segment) => segment === '')) {
    throw new PatternError(`repository pattern ${quoted} has an empty path segment (leading, trailing or double "/")`);
  }
  if (p.includes('***')) throw new PatternError(`repository pattern ${quoted} has "***"; use * or **`);
}

function matcher(p: string, steps: readonly number[], literal: number): (name: string) => boolean {
  if (literal === steps.length) return (name) => name === p;
  if (steps.length === 1 && steps[0] === GLOBSTAR) return () => true;
  const prefix = p.slice(0, -2);
  if (steps[steps.length - 1] === GLOBSTAR && literal === steps.length - 1) {
    return (name) => name.startsWith(prefix);
  }
  return (name) => run(steps, name);
}

const SLASH = 0x2f;

/**
 * Simulates the pattern's automaton: `state[i]` is set when the first i steps can have consumed
 * the characters read so far. A wildcard may consume nothing, so a set state before a wildcard
 * also sets the state after it.
 */
function run(steps: readonly number[], name: string): boolean {
  const n = steps.length;
  let current = new Uint8Array(n + 1);
  let next = new Uint8Array(n + 1);
  current[0] = 1;
  close(steps, current);
  for (let j = 0; j < name.length; j++) {
    const c = name.charCodeAt(j);
    next.fill(0);
    let any = false;
    for (let i = 0; i < n; i++) {
      if (current[i] === 0) continue;
      const step = steps[i]!;
      if (step === GLOBSTAR || (step === STAR && c !== SLASH)) {
        next[i] = 1;
        any = true;
      } else if (step === c) {
        next[i + 1] = 1;
        any = true;
      }
    }
    if (!any) return false;
    close(steps, next);
    [current, next] = [next, current];
  }
  return current[n] === 1;
}

function close(steps: readonly number[], state: Uint8Array): void {
  for (let i = 0; i < steps.length; i++) {
    if (state[i] === 1 && steps[i]! < 0) state[i + 1] = 1;
  }
}
