import { describe, expect, it } from 'vitest';
import { compileAccessRules } from '../../src/auth/access-rules.js';
import { Authorizer } from '../../src/auth/authorizer.js';
import { parseGrant } from '../../src/auth/scope.js';
import { ANONYMOUS, type Identity } from '../../src/auth/types.js';

const rules = compileAccessRules({
  admins: ['root'],
  repositories: {
    'team/**': { users: { lead: ['pull', 'push', 'manage'], dev: ['pull', 'push'] } },
    'public/**': { anonymous: ['pull'] },
  },
});
const authorizer = new Authorizer(rules);
const user = (name: string, extra: Partial<Extract<Identity, { kind: 'user' }>> = {}): Identity => ({ kind: 'user', name, via: 'password', ...extra });

describe('Authorizer', () => {
  it('lets a signed need through for anyone: the surface serving it verifies the signature', () => {
    expect(authorizer.decide(ANONYMOUS, { kind: 'signed' })).toEqual({ allowed: true });
    expect(authorizer.decide(user('dev'), { kind: 'signed' })).toEqual({ allowed: true });
  });

  it('decides manage like any other action on a repository, for an ECR key pair\'s user too', () => {
    const lead: Identity = { kind: 'user', name: 'lead', via: 'ecr', keyId: 'AKIAEXAMPLELEAD001' };
    expect(authorizer.decide(lead, { kind: 'repository', name: 'team/app', actions: ['manage'] })).toEqual({ allowed: true });
    expect(authorizer.decide(user('dev'), { kind: 'repository', name: 'team/app', actions: ['manage'] })).toEqual({ allowed: false, reason: 'denied' });
    expect(authorizer.decide(ANONYMOUS, { kind: 'repository', name: 'public/x', actions: ['manage'] })).toEqual({
      allowed: false,
      reason: 'unauthenticated',
    });
  });

  it('lets only whom the policy names manage the registry, never the anonymous caller, a key or a token', () => {
    expect(authorizer.managesRegistry(user('root'))).toBe(true);
    expect(authorizer.managesRegistry({ kind: 'user', name: 'root', via: 'ecr', keyId: 'AKIAEXAMPLEROOT001' })).toBe(true);
    expect(authorizer.managesRegistry(user('lead'))).toBe(false);
    expect(authorizer.managesRegistry(ANONYMOUS)).toBe(false);
    expect(authorizer.managesRegistry({ kind: 'anonymous', tokenAccess: [{ type: 'registry', name: 'catalog', actions: ['*'] }] })).toBe(false);
    expect(authorizer.managesRegistry(user('root', { via: 'key', keyId: 'k', keyScopes: [parseGrant('repository:**:*')] }))).toBe(false);
    expect(authorizer.managesRegistry(user('root', { via: 'token', tokenAccess: [] }))).toBe(false);
    // Without an access section every signed-in user does.
    const open = new Authorizer(compileAccessRules(undefined));
    expect(open.managesRegistry(user('anyone'))).toBe(true);
    expect(open.managesRegistry(ANONYMOUS)).toBe(false);
  });

  it('grants manage for a token\'s `*` where the rules give it, and a token\'s `*` carries it', () => {
    expect(authorizer.grant(user('lead'), [{ type: 'repository', name: 'team/app', actions: ['*'] }])).toEqual([
      { type: 'repository', name: 'team/app', actions: ['pull', 'push', 'manage'] },
    ]);
    expect(authorizer.grant(user('dev'), [{ type: 'repository', name: 'team/app', actions: ['*'] }])).toEqual([
      { type: 'repository', name: 'team/app', actions: ['pull', 'push'] },
    ]);
    const star = user('lead', { via: 'token', tokenAccess: [{ type: 'repository', name: 'team/app', actions: ['*'] }] });
    expect([...authorizer.actions(star, 'team/app')].sort()).toEqual(['manage', 'pull', 'push']);
    const pullOnly = user('lead', { via: 'token', tokenAccess: [{ type: 'repository', name: 'team/app', actions: ['pull'] }] });
    expect(authorizer.decide(pullOnly, { kind: 'repository', name: 'team/app', actions: ['manage'] })).toEqual({
      allowed: false,
      reason: 'insufficient_scope',
    });
  });
});
