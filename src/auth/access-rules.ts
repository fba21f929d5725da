/**
 * The `access` section compiled into a pure policy: who (a user name, or undefined for an
 * anonymous caller) may do what on which repository.
 *
 * Without an access section every signed-in user may pull, push, delete and manage everywhere and the
 * anonymous caller nothing. With one: admins may do everything; for anyone else the most specific
 * repository pattern that matches the name decides alone (most literal characters, then the
 * longer pattern, then the first declared), and within it a user gets the union of its own entry,
 * its groups' entries, `authenticated` and `anonymous`; an anonymous caller gets `anonymous`.
 */
import { ConfigError, type AccessConfig } from '../config/config.js';
import { compilePattern, PatternError, type CompiledPattern } from './patterns.js';
import { ACTIONS, type Action } from './types.js';

export interface AccessPolicy {
  /** Actions the user (undefined = anonymous) may take on the repository under the rules. */
  actionsFor(user: string | undefined, repo: string): ReadonlySet<Action>;
  isAdmin(user: string | undefined): boolean;
  /**
   * Whether the user may change the registry's own settings (ECR's registry policy and repository
   * creation templates): the admins, or, without an access section, every signed-in user.
   */
  managesRegistry(user: string | undefined): boolean;
  /** Whether the caller may ask for the catalog at all (its listing is then filtered with actionsFor). */
  mayListCatalog(user: string | undefined): boolean;
}

/** Actions as bits, so that unions are an `|`; SETS[mask] is the shared set for a mask. */
const BIT: Readonly<Record<Action, number>> = { pull: 1, push: 2, delete: 4, manage: 8 };
const ALL = 15;
const SETS: readonly ReadonlySet<Action>[] = Array.from(
  { length: 16 },
  (_, mask) => new Set(ACTIONS.filter((a) => (mask & BIT[a]) !== 0)),
);

interface Rule {
  readonly compiled: CompiledPattern;
  readonly order: number;
  /** Per user: its own actions and its groups' actions. */
  readonly users: ReadonlyMap<string, number>;
  /** `authenticated` and `anonymous`: what every signed-in user may do. */
  readonly authenticated: number;
  readonly anonymous: number;
}

const CACHE_LIMIT = 10_000;

export function compileAccessRules(access: AccessConfig | undefined): AccessPolicy {
  if (access === undefined) return DEFAULT_POLICY;
  const problems: string[] = [];
  const groups = compileGroups(access.groups ?? {}, problems);
  const admins = new Set<string>();
  (access.admins ?? []).forEach((name, i) => {
    if (name === '') problems.push(`access.admins[${i}]: empty user name`);
    else admins.add(name);
  });
  const rules = Object.entries(access.repositories ?? {}).flatMap(([pattern, entry], order) => {
    const rule = compileRule(pattern, entry, order, groups, problems);
    return rule ? [rule] : [];
  });
  if (problems.length === 1) throw new ConfigError(problems[0]);
  if (problems.length > 1) {
    throw new ConfigError(`access: ${problems.length} problems:\n${problems.map((p) => `  ${p}`).join('\n')}`);
  }
  rules.sort(
    (a, b) =>
      b.compiled.literal - a.compiled.literal ||
      b.compiled.pattern.length - a.compiled.pattern.length ||
      a.order - b.order,
  );
  const anonymousCatalog = rules.some((r) => (r.anonymous & BIT.pull) !== 0);

  // The rule deciding a repository depends on the repository only: cache that, not per user.
  const decided = new Map<string, Rule | null>();
  const ruleFor = (repo: string): Rule | null => {
    let rule = decided.get(repo);
    if (rule === undefined) {
      rule = rules.find((r) => r.compiled.matches(repo)) ?? null;
      if (decided.size >= CACHE_LIMIT) decided.clear();
      decided.set(repo, rule);
    }
    return rule;
  };

  return {
    actionsFor(user, repo) {
      if (user !== undefined && admins.has(user)) return SETS[ALL]!;
      const rule = ruleFor(repo);
      if (rule === null) return SETS[0]!;
      const mask = user === undefined ? rule.anonymous : (rule.users.get(user) ?? 0) | rule.authenticated;
      return SETS[mask]!;
    },
    isAdmin: (user) => user !== undefined && admins.has(user),
    managesRegistry: (user) => user !== undefined && admins.has(user),
    mayListCatalog: (user) => user !== undefined || anonymousCatalog,
  };
}

/** No access section: signed-in users may do everything, anonymous callers nothing, nobody is admin. */
const DEFAULT_POLICY: AccessPolicy = Object.freeze({
  actionsFor: (user: string | undefined) => SETS[user === undefined ? 0 : ALL]!,
  isAdmin: () => false,
  managesRegistry: (user: string | undefined) => user !== undefined,
  mayListCatalog: (user: string | undefined) => user !== undefined,
});

function compileGroups(
  groups: Readonly<Record<string, readonly string[]>>,
  problems: string[],
): ReadonlyMap<string, readonly string[]> {
  const result = new Map<string, readonly string[]>();
  for (const [group, members] of Object.entries(groups)) {
    if (group.trim() === '') {
      problems.push('access.groups: empty group name');
      continue;
    }
    members.forEach((member, i) => {
      if (member.trim() === '') problems.push(`access.groups.${key(group)}[${i}]: empty user name`);
    });
    result.set(group, members.filter((m) => m.trim() !== ''));
  }
  return result;
}

type RepositoryEntry = NonNullable<AccessConfig['repositories']>[string];

function compileRule(
  pattern: string,
  entry: RepositoryEntry,
  order: number,
  groups: ReadonlyMap<string, readonly string[]>,
  problems: string[],
): Rule | undefined {
  const path = `access.repositories.${JSON.stringify(pattern)}`;
  let compiled: CompiledPattern | undefined;
  try {
    compiled = compilePattern(pattern);
  } catch (err) {
    if (!(err instanceof PatternError)) throw err;
    problems.push(`${path}: ${err.message}`);
  }
  const users = new Map<string, number>();
  const grant = (user: string, mask: number) => users.set(user, (users.get(user) ?? 0) | mask);
  for (const [user, actions] of Object.entries(entry.users ?? {})) {
    if (user.trim() === '') {
      problems.push(`${path}.users: empty user name`);
      continue;
    }
    grant(user, actionMask(actions, `${path}.users.${key(user)}`, problems));
  }
  for (const [group, actions] of Object.entries(entry.groups ?? {})) {
    const members = groups.get(group);
    if (members === undefined) {
      problems.push(
        group.trim() === '' ? `${path}.groups: empty group name` : `${path}.groups: unknown group ${JSON.stringify(group)}`,
      );
      continue;
    }
    const mask = actionMask(actions, `${path}.groups.${key(group)}`, problems);
    for (const member of members) grant(member, mask);
  }
  const anonymous = actionMask(entry.anonymous ?? [], `${path}.anonymous`, problems);
  const authenticated = actionMask(entry.authenticated ?? [], `${path}.authenticated`, problems) | anonymous;
  return compiled && { compiled, order, users, authenticated, anonymous };
}

function actionMask(actions: readonly string[], path: string, problems: string[]): number {
  let mask = 0;
  for (const action of actions) {
    if (action === '*') mask = ALL;
    else if (Object.hasOwn(BIT, action)) mask |= BIT[action as Action];
    else problems.push(`${path}: unknown action ${JSON.stringify(action)} (expected pull, push, delete, manage or *)`);
  }
  return mask;
}

/** A key in a path: bare when it is a plain word, quoted otherwise. */
function key(name: string): string {
  return /^[A-Za-z0-9_-]+$/.test(name) ? name : JSON.stringify(name);
}
