import { describe, expect, it } from 'vitest';
import {
  challengeScope,
  formatScope,
  grantAllows,
  grantAllowsCatalog,
  parseGrant,
  parseScopes,
  ScopeError,
} from '../../src/auth/scope.js';
import type { ScopeGrant } from '../../src/auth/types.js';

describe('parseScopes', () => {
  it('parses one repository scope', () => {
    expect(parseScopes('repository:library/ubuntu:pull,push')).toEqual([
      { type: 'repository', name: 'library/ubuntu', actions: ['pull', 'push'] },
    ]);
  });

  it('keeps colons in the name (host:port)', () => {
    expect(parseScopes('repository:localhost:5000/foo/bar:pull,push')).toEqual([
      { type: 'repository', name: 'localhost:5000/foo/bar', actions: ['pull', 'push'] },
    ]);
  });

  it('parses several space-separated scopes, as repeated parameters joined by spaces', () => {
    expect(parseScopes('repository:a:pull  repository:b/c:push\tregistry:catalog:*')).toEqual([
      { type: 'repository', name: 'a', actions: ['pull'] },
      { type: 'repository', name: 'b/c', actions: ['push'] },
      { type: 'registry', name: 'catalog', actions: ['*'] },
    ]);
  });

  it('drops the resource class from the type', () => {
    expect(parseScopes('repository(plugin):vieux/sshfs:pull')).toEqual([
      { type: 'repository', name: 'vieux/sshfs', actions: ['pull'] },
    ]);
  });

  it('drops empty and repeated actions', () => {
    expect(parseScopes('repository:a:pull,,push,pull,')).toEqual([
      { type: 'repository', name: 'a', actions: ['pull', 'push'] },
    ]);
    expect(parseScopes('repository:a:')).toEqual([{ type: 'repository', name: 'a', actions: [] }]);
  });

  it('returns nothing for an empty or blank value', () => {
    expect(parseScopes('')).toEqual([]);
    expect(parseScopes('   ')).toEqual([]);
  });

  it.each(['repository', 'repository:foo', 'repository::pull', ':foo:pull', 'repository(x:foo:pull', 'a(b)(c):foo:pull'])(
    'rejects the malformed scope %j',
    (scope) => {
      expect(() => parseScopes(scope)).toThrow(ScopeError);
    },
  );

  it('rejects the whole value when one of its scopes is malformed', () => {
    expect(() => parseScopes('repository:a:pull bogus')).toThrow(/"bogus"/);
  });
});

describe('formatScope and challengeScope', () => {
  it('formats a scope back into its string form', () => {
    expect(formatScope({ type: 'repository', name: 'localhost:5000/a', actions: ['pull', 'push'] })).toBe(
      'repository:localhost:5000/a:pull,push',
    );
    const text = 'repository:localhost:5000/foo:pull,delete';
    expect(formatScope(parseScopes(text)[0]!)).toBe(text);
  });

  it('names repository actions in the order pull, push, delete', () => {
    expect(challengeScope({ kind: 'repository', name: 'team/app', actions: ['delete', 'pull', 'push'] })).toBe(
      'repository:team/app:pull,push,delete',
    );
    expect(challengeScope({ kind: 'repository', name: 'app', actions: ['push', 'push'] })).toBe('repository:app:push');
  });

  it('names the catalog, and nothing for public or authenticated needs', () => {
    expect(challengeScope({ kind: 'catalog' })).toBe('registry:catalog:*');
    expect(challengeScope({ kind: 'public' })).toBeUndefined();
    expect(challengeScope({ kind: 'authenticated' })).toBeUndefined();
  });
});

describe('parseGrant', () => {
  it('parses repository patterns with actions, in canonical order', () => {
    expect(parseGrant('repository:team-a/**:push,pull')).toEqual({
      type: 'repository',
      pattern: 'team-a/**',
      actions: ['pull', 'push'],
    });
    expect(parseGrant(' repository:app:delete ')).toEqual({ type: 'repository', pattern: 'app', actions: ['delete'] });
  });

  it('reads * as every action, manage included', () => {
    expect(parseGrant('repository:**:*').actions).toEqual(['pull', 'push', 'delete', 'manage']);
  });

  it('takes manage as an action of its own', () => {
    expect(parseGrant('repository:app:manage,pull').actions).toEqual(['pull', 'manage']);
    expect(() => parseGrant('repository:app:admin')).toThrow(/expected pull, push, delete, manage or \*/);
  });

  it('parses the catalog grant', () => {
    expect(parseGrant('registry:catalog:*')).toEqual({ type: 'registry', pattern: 'catalog', actions: ['*'] });
  });

  it.each([
    ['repository:app', /expected repository:<pattern>:<actions>/],
    ['repository:localhost:5000/app:pull', /cannot contain ":"/],
    ['repo:app:pull', /unknown type "repo"/],
    ['repository:App:pull', /"App".*may contain only/],
    ['repository:a//b:pull', /empty path segment/],
    ['repository:app:', /at least one action/],
    ['repository:app:pull,write,admin', /unknown actions "write", "admin"/],
    ['registry:catalog:pull', /registry:catalog:\*/],
    ['registry:other:*', /registry:catalog:\*/],
  ])('rejects %j', (value, message) => {
    expect(() => parseGrant(value)).toThrow(ScopeError);
    expect(() => parseGrant(value)).toThrow(message);
  });
});

describe('grantAllows and grantAllowsCatalog', () => {
  const grants: ScopeGrant[] = [parseGrant('repository:team-a/**:pull,push'), parseGrant('repository:tools/*:pull')];

  it('allows the granted actions on matching repositories only', () => {
    expect(grantAllows(grants, 'team-a/app', 'push')).toBe(true);
    expect(grantAllows(grants, 'team-a/x/y', 'pull')).toBe(true);
    expect(grantAllows(grants, 'team-a/app', 'delete')).toBe(false);
    expect(grantAllows(grants, 'tools/lint', 'pull')).toBe(true);
    expect(grantAllows(grants, 'tools/lint', 'push')).toBe(false);
    expect(grantAllows(grants, 'tools/lint/x', 'pull')).toBe(false);
    expect(grantAllows(grants, 'team-b/app', 'pull')).toBe(false);
    expect(grantAllows([], 'team-a/app', 'pull')).toBe(false);
  });

  it('accepts * in a grant and denies on an invalid stored pattern', () => {
    expect(grantAllows([{ type: 'repository', pattern: '**', actions: ['*'] }], 'x/y', 'delete')).toBe(true);
    expect(grantAllows([{ type: 'repository', pattern: 'a//b', actions: ['pull'] }], 'a//b', 'pull')).toBe(false);
  });

  it('does not take a registry grant for a repository and vice versa', () => {
    const catalog = [parseGrant('registry:catalog:*')];
    expect(grantAllows(catalog, 'catalog', 'pull')).toBe(false);
    expect(grantAllowsCatalog(catalog)).toBe(true);
    expect(grantAllowsCatalog(grants)).toBe(false);
    expect(grantAllowsCatalog([{ type: 'repository', pattern: 'catalog', actions: ['*'] }])).toBe(false);
  });
});
