import { describe, expect, it } from 'vitest';
import { compileAccessRules } from '../../src/auth/access-rules.js';
import { ConfigError, type AccessConfig } from '../../src/config/config.js';

const actions = (policy: ReturnType<typeof compileAccessRules>, user: string | undefined, repo: string) =>
  [...policy.actionsFor(user, repo)].sort();

describe('without an access section', () => {
  const policy = compileAccessRules(undefined);

  it('lets every signed-in user pull, push, delete and manage everywhere', () => {
    expect(actions(policy, 'alice', 'any/repo')).toEqual(['delete', 'manage', 'pull', 'push']);
  });

  it('lets the anonymous caller do nothing', () => {
    expect(actions(policy, undefined, 'any/repo')).toEqual([]);
    expect(policy.mayListCatalog(undefined)).toBe(false);
  });

  it('lets every signed-in user manage the registry, and the anonymous caller not', () => {
    expect(policy.managesRegistry('alice')).toBe(true);
    expect(policy.managesRegistry(undefined)).toBe(false);
  });

  it('lets signed-in users list the catalog and makes nobody admin', () => {
    expect(policy.mayListCatalog('alice')).toBe(true);
    expect(policy.isAdmin('alice')).toBe(false);
    expect(policy.isAdmin(undefined)).toBe(false);
  });
});

describe('with access rules', () => {
  const config: AccessConfig = {
    groups: { devs: ['alice', 'bob'], ops: ['carol', 'alice'] },
    admins: ['root'],
    repositories: {
      '**': { authenticated: ['pull'] },
      'team-a/**': {
        users: { alice: ['pull', 'push', 'delete'] },
        groups: { devs: ['pull', 'push'] },
        authenticated: ['pull'],
      },
      'team-a/*': { groups: { ops: ['delete'] } }, // loses to team-a/** (same literals, shorter)
      'team-a/w*': { groups: { ops: ['delete'] } },
      'team-a/app': { users: { dave: ['push'] } },
      'public/*': { anonymous: ['pull'], users: { bob: ['push'] } },
      'ops/**': { groups: { ops: ['*'] } },
    },
  };
  const policy = compileAccessRules(config);

  it('gives admins every right everywhere, even where no pattern matches', () => {
    const closed = compileAccessRules({ admins: ['root'], repositories: { 'a/*': { users: { bob: ['pull'] } } } });
    expect(actions(closed, 'root', 'unmatched')).toEqual(['delete', 'manage', 'pull', 'push']);
    expect(actions(policy, 'root', 'team-a/app')).toEqual(['delete', 'manage', 'pull', 'push']);
    expect(policy.isAdmin('root')).toBe(true);
    expect(policy.isAdmin('alice')).toBe(false);
    expect(policy.isAdmin(undefined)).toBe(false);
    expect(closed.mayListCatalog('root')).toBe(true);
  });

  it('lets the more literal pattern win: team-a/** over **', () => {
    expect(actions(policy, 'bob', 'team-a/x/y')).toEqual(['pull', 'push']);
    expect(actions(policy, 'bob', 'other/x')).toEqual(['pull']);
  });

  it('lets team-a/app win over team-a/* and team-a/w* over team-a/**', () => {
    expect(actions(policy, 'dave', 'team-a/app')).toEqual(['push']);
    expect(actions(policy, 'carol', 'team-a/web')).toEqual(['delete']);
    expect(actions(policy, 'carol', 'team-a/web/x')).toEqual(['pull']);
    const p = compileAccessRules({
      repositories: { 'team-a/*': { users: { u: ['pull'] } }, 'team-a/app': { users: { u: ['push'] } } },
    });
    expect(actions(p, 'u', 'team-a/app')).toEqual(['push']);
    expect(actions(p, 'u', 'team-a/web')).toEqual(['pull']);
  });

  it('applies only the most specific pattern: one that does not mention the user shadows one that does', () => {
    // team-a/app mentions only dave; alice's rights on team-a/** do not apply there.
    expect(actions(policy, 'alice', 'team-a/app')).toEqual([]);
    // team-a/w* mentions ops (alice is in it): only its delete applies, not team-a/**'s rights.
    expect(actions(policy, 'alice', 'team-a/web')).toEqual(['delete']);
    expect(actions(policy, 'bob', 'team-a/web')).toEqual([]);
  });

  it('unites the user entry, the groups, authenticated and anonymous', () => {
    expect(actions(policy, 'alice', 'team-a/x/y')).toEqual(['delete', 'pull', 'push']);
    expect(actions(policy, 'bob', 'public/img')).toEqual(['pull', 'push']);
    expect(actions(policy, 'carol', 'ops/db')).toEqual(['delete', 'manage', 'pull', 'push']); // ops: ['*']
    expect(actions(policy, 'bob', 'ops/db')).toEqual([]);
  });

  it('lets every signed-in user do what anonymous users may', () => {
    expect(actions(policy, undefined, 'public/img')).toEqual(['pull']);
    expect(actions(policy, 'zed', 'public/img')).toEqual(['pull']);
  });

  it('gives anonymous callers only the anonymous entry', () => {
    expect(actions(policy, undefined, 'team-a/x')).toEqual([]);
    expect(actions(policy, undefined, 'other')).toEqual([]);
  });

  it('gives nothing where no pattern matches', () => {
    const narrow = compileAccessRules({ repositories: { 'team-a/**': { authenticated: ['*'] } } });
    expect(actions(narrow, 'alice', 'team-b/x')).toEqual([]);
    expect(actions(narrow, 'alice', 'team-a')).toEqual([]);
    expect(actions(narrow, 'alice', 'team-a/x')).toEqual(['delete', 'manage', 'pull', 'push']);
  });

  it('gives manage only where it is granted, and lets only admins manage the registry', () => {
    const p = compileAccessRules({
      admins: ['root'],
      repositories: { 'team/**': { users: { lead: ['pull', 'manage'] }, authenticated: ['pull', 'push'] } },
    });
    expect(actions(p, 'lead', 'team/app')).toEqual(['manage', 'pull', 'push']);
    expect(actions(p, 'dev', 'team/app')).toEqual(['pull', 'push']);
    expect(p.managesRegistry('root')).toBe(true);
    expect(p.managesRegistry('lead')).toBe(false);
    expect(p.managesRegistry(undefined)).toBe(false);
  });

  it('implies no action from another', () => {
    const p = compileAccessRules({ repositories: { a: { users: { u: ['push'] } }, b: { users: { u: ['delete'] } } } });
    expect(actions(p, 'u', 'a')).toEqual(['push']);
    expect(actions(p, 'u', 'b')).toEqual(['delete']);
  });

  it('breaks ties by the longer pattern, then by declaration order', () => {
    const longer = compileAccessRules({
      repositories: { 'a/*': { users: { u: ['pull'] } }, 'a/**': { users: { u: ['push'] } } },
    });
    expect(actions(longer, 'u', 'a/b')).toEqual(['push']);
    expect(actions(policy, 'carol', 'team-a/xyz')).toEqual(['pull']); // team-a/** beats team-a/*
    const first = compileAccessRules({
      repositories: { 'a/*': { users: { u: ['pull'] } }, '*/a': { users: { u: ['push'] } } },
    });
    expect(actions(first, 'u', 'a/a')).toEqual(['pull']);
    const swapped = compileAccessRules({
      repositories: { '*/a': { users: { u: ['push'] } }, 'a/*': { users: { u: ['pull'] } } },
    });
    expect(actions(swapped, 'u', 'a/a')).toEqual(['push']);
  });

  it('lets signed-in users list the catalog, and anonymous ones only when some pattern grants anonymous pull', () => {
    expect(policy.mayListCatalog('zed')).toBe(true);
    expect(policy.mayListCatalog(undefined)).toBe(true);
    const noAnonymousPull = compileAccessRules({ repositories: { '**': { anonymous: ['push'], authenticated: ['pull'] } } });
    expect(noAnonymousPull.mayListCatalog(undefined)).toBe(false);
    expect(noAnonymousPull.mayListCatalog('zed')).toBe(true);
  });

  it('gives the same answers from its cache, for many repositories', () => {
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < 12_000; i++) {
        expect(policy.actionsFor('bob', `team-a/r${i}/x`).has('push')).toBe(true);
      }
      expect(actions(policy, 'alice', 'team-a/app')).toEqual([]);
      expect(actions(policy, 'dave', 'team-a/app')).toEqual(['push']);
    }
  });
});

describe('validation', () => {
  const problemsOf = (access: AccessConfig): string => {
    try {
      compileAccessRules(access);
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      return (err as Error).message;
    }
    throw new Error('expected a ConfigError');
  };

  it('accepts an empty section', () => {
    expect(actions(compileAccessRules({}), 'alice', 'a')).toEqual([]);
  });

  it.each<[string, AccessConfig, string]>([
    [
      'an unknown group',
      { groups: { devs: ['a'] }, repositories: { 'team-a/**': { groups: { qa: ['pull'] } } } },
      'access.repositories."team-a/**".groups: unknown group "qa"',
    ],
    ['a bad pattern', { repositories: { 'a//b': { authenticated: ['pull'] } } }, 'access.repositories."a//b": repository pattern "a//b"'],
    [
      'an unknown user action',
      { repositories: { a: { users: { alice: ['pull', 'write'] } } } },
      'access.repositories."a".users.alice: unknown action "write"',
    ],
    [
      'an unknown group action',
      { groups: { devs: ['a'] }, repositories: { a: { groups: { devs: ['Pull'] } } } },
      'access.repositories."a".groups.devs: unknown action "Pull"',
    ],
    ['an unknown authenticated action', { repositories: { a: { authenticated: ['read'] } } }, 'access.repositories."a".authenticated: unknown action "read"'],
    ['an unknown anonymous action', { repositories: { a: { anonymous: ['all'] } } }, 'access.repositories."a".anonymous: unknown action "all"'],
    ['an empty group name', { groups: { '': ['alice'] } }, 'access.groups: empty group name'],
    ['an empty group member', { groups: { devs: ['alice', ''] } }, 'access.groups.devs[1]: empty user name'],
    ['an empty user name in a repository', { repositories: { a: { users: { '': ['pull'] } } } }, 'access.repositories."a".users: empty user name'],
    ['an empty admin', { admins: ['root', ''] }, 'access.admins[1]: empty user name'],
  ])('rejects %s', (_what, access, message) => {
    expect(problemsOf(access)).toContain(message);
  });

  it('reports every problem together, one line each', () => {
    const message = problemsOf({
      groups: { devs: ['alice', ''] },
      admins: [''],
      repositories: {
        'Bad/*': { authenticated: ['pull'] },
        'team-a/**': { groups: { qa: ['pull'], devs: ['write'] } },
      },
    });
    const lines = message.split('\n');
    expect(lines[0]).toBe('access: 5 problems:');
    expect(lines.slice(1).map((l) => l.trim())).toEqual([
      'access.groups.devs[1]: empty user name',
      'access.admins[0]: empty user name',
      expect.stringContaining('access.repositories."Bad/*": repository pattern "Bad/*"'),
      'access.repositories."team-a/**".groups: unknown group "qa"',
      'access.repositories."team-a/**".groups.devs: unknown action "write" (expected pull, push, delete, manage or *)',
    ]);
  });
});
