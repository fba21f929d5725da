/**
 * The one place that decides: who (an Identity), what (a Need) → allowed or why not.
 * Rules come from the `access` section (an AccessPolicy); an access key narrows its user's
 * rights to its scopes, and a bearer token to its `access` claim. Nothing here knows HTTP.
 */
import type { AccessPolicy } from './access-rules.js';
import { grantAllows, grantAllowsCatalog } from './scope.js';
import { ACTIONS, type Action, type Identity, type Need, type ResourceScope } from './types.js';

export type Decision =
  | { readonly allowed: true }
  /**
   * - `unauthenticated`: sign in (401 with a challenge); the caller is anonymous.
   * - `insufficient_scope`: the token lacks a right its user has (401, the client asks for a new token).
   * - `denied`: the caller is known and lacks the right (403).
   */
  | { readonly allowed: false; readonly reason: 'unauthenticated' | 'insufficient_scope' | 'denied' };

const ALLOWED: Decision = Object.freeze({ allowed: true });
const ALL: ReadonlySet<Action> = new Set(ACTIONS);
const NONE: ReadonlySet<Action> = new Set();

export class Authorizer {
  constructor(private readonly policy: AccessPolicy) {}

  /** The actions the rules (and an access key's scopes) give the caller on `repo`, before any token bound. */
  ruleActions(identity: Identity, repo: string): ReadonlySet<Action> {
    const user = identity.kind === 'user' ? identity.name : undefined;
    const actions = this.policy.actionsFor(user, repo);
    if (identity.kind !== 'user' || !identity.keyScopes) return actions;
    const scopes = identity.keyScopes;
    return new Set([...actions].filter((a) => grantAllows(scopes, repo, a)));
  }

  /** What the caller may do on `repo` in this request: the rules, bounded by the token it presented. */
  actions(identity: Identity, repo: string): ReadonlySet<Action> {
    const byRules = this.ruleActions(identity, repo);
    const access = identity.tokenAccess;
    if (!access) return byRules;
    const byToken = tokenActions(access, repo);
    if (byToken === ALL) return byRules;
    return new Set([...byRules].filter((a) => byToken.has(a)));
  }

  /** Whether the caller may pull from `repo` (a catalog entry, a mount source). */
  mayPull(identity: Identity, repo: string): boolean {
    return this.actions(identity, repo).has('pull');
  }

  /**
   * Whether the catalog lists `repo` to the caller: the rules decide (a token's
   * `registry:catalog:*` lets it see what its user may pull, as the rules say).
   */
  listsInCatalog(identity: Identity, repo: string): boolean {
    return this.ruleActions(identity, repo).has('pull');
  }

  /** Whether the caller sees every repository in the catalog without filtering. */
  seesWholeCatalog(identity: Identity): boolean {
    return identity.kind === 'user' && !identity.keyScopes && this.policy.isAdmin(identity.name) && this.catalogByToken(identity);
  }

  /**
   * Whether the caller may change the registry's own settings (ECR's registry policy, repository
   * creation templates): a user the policy says so of, signed in with its own credentials. An
   * access key or a token is bounded to repositories, so it never does.
   */
  managesRegistry(identity: Identity): boolean {
    if (identity.kind !== 'user' || identity.keyScopes || identity.tokenAccess) return false;
    return this.policy.managesRegistry(identity.name);
  }

  decide(identity: Identity, need: Need): Decision {
    switch (need.kind) {
      case 'public':
        return ALLOWED;
      // Verified by the surface serving the route (SigV4 on the ECR API), which then asks for each right.
      case 'signed':
        return ALLOWED;
      case 'authenticated':
        return identity.kind === 'user' || identity.tokenAccess ? ALLOWED : { allowed: false, reason: 'unauthenticated' };
      case 'repository': {
        const granted = this.actions(identity, need.name);
        if (need.actions.every((a) => granted.has(a))) return ALLOWED;
        return this.refusal(identity, need.actions.every((a) => this.ruleActions(identity, need.name).has(a)));
      }
      case 'catalog': {
        const byRules = this.catalogByRules(identity);
        if (byRules && this.catalogByToken(identity)) return ALLOWED;
        return this.refusal(identity, byRules);
      }
    }
  }

  /**
   * What a token for these scopes may carry: each scope cut down to what the caller may do.
   * Scopes the caller may do nothing with are left out; less than asked is not an error.
   */
  grant(identity: Identity, requested: readonly ResourceScope[]): ResourceScope[] {
    const granted: ResourceScope[] = [];
    for (const scope of requested) {
      if (scope.type === 'repository') {
        const may = this.ruleActions(identity, scope.name);
        const asked = scope.actions.includes('*') ? ACTIONS : scope.actions;
        const actions = ACTIONS.filter((a) => asked.includes(a) && may.has(a));
        if (actions.length > 0) merge(granted, { type: 'repository', name: scope.name, actions });
      } else if (scope.type === 'registry' && scope.name === 'catalog' && scope.actions.includes('*')) {
        if (this.catalogByRules(identity)) merge(granted, { type: 'registry', name: 'catalog', actions: ['*'] });
      }
    }
    return granted;
  }

  private refusal(identity: Identity, rulesAllow: boolean): Decision {
    if (identity.kind === 'anonymous') return { allowed: false, reason: 'unauthenticated' };
    if (identity.tokenAccess && rulesAllow) return { allowed: false, reason: 'insufficient_scope' };
    return { allowed: false, reason: 'denied' };
  }

  private catalogByRules(identity: Identity): boolean {
    const user = identity.kind === 'user' ? identity.name : undefined;
    if (!this.policy.mayListCatalog(user)) return false;
    return identity.kind !== 'user' || !identity.keyScopes || grantAllowsCatalog(identity.keyScopes);
  }

  private catalogByToken(identity: Identity): boolean {
    const access = identity.tokenAccess;
    return !access || access.some((s) => s.type === 'registry' && s.name === 'catalog' && s.actions.includes('*'));
  }
}

/** The repository actions a token's `access` claim carries for `repo` (`*` meaning all). */
function tokenActions(access: readonly ResourceScope[], repo: string): ReadonlySet<Action> {
  let found: Set<Action> | undefined;
  for (const scope of access) {
    if (scope.type !== 'repository' || scope.name !== repo) continue;
    if (scope.actions.includes('*')) return ALL;
    found ??= new Set();
    for (const a of scope.actions) if ((ACTIONS as readonly string[]).includes(a)) found.add(a as Action);
  }
  return found ?? NONE;
}

/** Adds a scope, merging the actions of one already there for the same resource. */
function merge(into: ResourceScope[], scope: ResourceScope): void {
  const same = into.find((s) => s.type === scope.type && s.name === scope.name);
  if (!same) {
    into.push(scope);
    return;
  }
  const actions = [...new Set([...same.actions, ...scope.actions])];
  into[into.indexOf(same)] = { ...same, actions: scope.type === 'repository' ? ACTIONS.filter((a) => actions.includes(a)) : actions };
}
