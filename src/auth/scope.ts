/**
 * Scopes in Docker's token authentication (`repository:<name>:<actions>`, `registry:catalog:*`):
 * parsing what a client asks for, writing what a challenge names, and the grants an access key
 * carries (repository patterns with actions) together with the checks against them.
 */
import { ACTIONS, type Action, type Need, type ResourceScope, type ScopeGrant } from './types.js';
import { compilePattern, PatternError, type CompiledPattern } from './patterns.js';

export class ScopeError extends Error {
  override name = 'ScopeError';
}

/**
 * Parses the value of `scope=` parameters: one or more scopes separated by spaces (repeated
 * parameters may be joined with spaces). The name may contain colons (`localhost:5000/foo`): the
 * type is what precedes the first colon, the actions what follows the last one. A class after the
 * type (`repository(plugin)`) is dropped. Empty and repeated actions are dropped.
 */
export function parseScopes(value: string): ResourceScope[] {
  return value
    .split(/\s+/)
    .filter((s) => s !== '')
    .map(parseScope);
}

function parseScope(text: string): ResourceScope {
  const first = text.indexOf(':');
  const last = text.lastIndexOf(':');
  if (first === -1 || first === last) {
    throw new ScopeError(`malformed scope ${JSON.stringify(text)}: expected type:name:actions`);
  }
  const rawType = text.slice(0, first);
  const name = text.slice(first + 1, last);
  const type = /^([^()]+)\([^()]*\)$/.exec(rawType)?.[1] ?? rawType;
  if (type === '' || /[()]/.test(type)) {
    throw new ScopeError(`malformed scope ${JSON.stringify(text)}: bad resource type ${JSON.stringify(rawType)}`);
  }
  if (name === '') throw new ScopeError(`malformed scope ${JSON.stringify(text)}: the name is empty`);
  const actions = [...new Set(text.slice(last + 1).split(',').filter((a) => a !== ''))];
  return { type, name, actions };
}

export function formatScope(scope: ResourceScope): string {
  return `${scope.type}:${scope.name}:${scope.actions.join(',')}`;
}

/** The scope a 401 challenge names for a Need; undefined when the need names no resource. */
export function challengeScope(need: Need): string | undefined {
  switch (need.kind) {
    case 'repository':
      return `repository:${need.name}:${ACTIONS.filter((a) => need.actions.includes(a)).join(',')}`;
    case 'catalog':
      return 'registry:catalog:*';
    default:
      return undefined;
  }
}

/**
 * An access key's scope as a user types it: `repository:<pattern>:<actions>` with actions among
 * pull, push, delete, manage (comma separated) or `*` for all of them, or `registry:catalog:*`.
 * The grant's actions are returned deduplicated, in the order pull, push, delete, manage.
 */
export function parseGrant(value: string): ScopeGrant {
  const text = value.trim();
  const quoted = JSON.stringify(value);
  const parts = text.split(':');
  if (parts.length !== 3) {
    throw new ScopeError(
      `scope ${quoted}: expected repository:<pattern>:<actions> or registry:catalog:*` +
        (parts.length > 3 ? ' (a pattern cannot contain ":")' : ''),
    );
  }
  const [type, name, actionText] = parts as [string, string, string];
  if (type === 'registry') {
    if (name !== 'catalog' || actionText !== '*') {
      throw new ScopeError(`scope ${quoted}: the only registry scope is registry:catalog:*`);
    }
    return { type: 'registry', pattern: 'catalog', actions: ['*'] };
  }
  if (type !== 'repository') {
    throw new ScopeError(`scope ${quoted}: unknown type ${JSON.stringify(type)}; expected repository or registry`);
  }
  try {
    compilePattern(name);
  } catch (err) {
    if (err instanceof PatternError) throw new ScopeError(`scope ${quoted}: ${err.message}`);
    throw err;
  }
  const listed = actionText.split(',').map((a) => a.trim());
  if (listed.every((a) => a === '')) {
    throw new ScopeError(`scope ${quoted}: name at least one action (pull, push, delete, manage or *)`);
  }
  const unknown = listed.filter((a) => a !== '' && a !== '*' && !(ACTIONS as readonly string[]).includes(a));
  if (unknown.length > 0) {
    throw new ScopeError(
      `scope ${quoted}: unknown action${unknown.length > 1 ? 's' : ''} ${unknown.map((a) => JSON.stringify(a)).join(', ')}; expected pull, push, delete, manage or *`,
    );
  }
  const actions = listed.includes('*') ? ACTIONS : ACTIONS.filter((a) => listed.includes(a));
  return { type: 'repository', pattern: name, actions: [...actions] };
}

/** Whether some repository grant matches the repository and allows the action. */
export function grantAllows(grants: readonly ScopeGrant[], repo: string, action: Action): boolean {
  return grants.some(
    (g) =>
      g.type === 'repository' &&
      (g.actions.includes(action) || g.actions.includes('*')) &&
      (compiled(g.pattern)?.matches(repo) ?? false),
  );
}

export function grantAllowsCatalog(grants: readonly ScopeGrant[]): boolean {
  return grants.some((g) => g.type === 'registry' && g.pattern === 'catalog' && g.actions.includes('*'));
}

const CACHE_LIMIT = 10_000;
const cache = new Map<string, CompiledPattern | null>();

/** The compiled pattern, or null when it is invalid (an invalid grant allows nothing). */
function compiled(pattern: string): CompiledPattern | null {
  let found = cache.get(pattern);
  if (found === undefined) {
    try {
      found = compilePattern(pattern);
    } catch {
      found = null;
    }
    if (cache.size >= CACHE_LIMIT) cache.clear();
    cache.set(pattern, found);
  }
  return found;
}
