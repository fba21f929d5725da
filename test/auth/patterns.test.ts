import { describe, expect, it } from 'vitest';
import { compilePattern, PatternError } from '../../src/auth/patterns.js';

const matches = (pattern: string, name: string) => compilePattern(pattern).matches(name);

describe('compilePattern: matching', () => {
  it.each([
    ['library/ubuntu', 'library/ubuntu', true],
    ['library/ubuntu', 'library/ubuntu2', false],
    ['library/ubuntu', 'library', false],
    ['team-a/*', 'team-a/app', true],
    ['team-a/*', 'team-a/app/web', false],
    ['team-a/*', 'team-a', false],
    ['team-a/**', 'team-a/x', true],
    ['team-a/**', 'team-a/x/y', true],
    ['team-a/**', 'team-a', false],
    ['team-a/**', 'team-ab/x', false],
    ['**', 'a', true],
    ['**', 'a/b/c/d', true],
    ['*', 'a', true],
    ['*', 'a/b', false],
    ['*/app', 'team/app', true],
    ['*/app', 'x/team/app', false],
    ['**/app', 'x/team/app', true],
    ['**/app', 'app', false],
    ['team-*/app', 'team-a/app', true],
    ['team-*/app', 'team-/app', true],
    ['team-*/app', 'team-a/b/app', false],
    ['team-**', 'team-a/b/app', true],
    ['a/**/z', 'a/b/c/z', true],
    ['a/**/z', 'a/z', false],
    ['*-*', 'a-b', true],
    ['*-*', 'ab', false],
    ['*.io/**', 'ghcr.io/x', true],
    ['*.io/**', 'ghcrxio/x', false],
    ['a*b*c', 'aXbYc', true],
    ['a*b*c', 'aXbY/c', false],
  ])('%j against %j → %s', (pattern, name, expected) => {
    expect(matches(pattern, name)).toBe(expected);
  });

  it('treats "." literally, not as "any character"', () => {
    expect(matches('a.b', 'a.b')).toBe(true);
    expect(matches('a.b', 'axb')).toBe(false);
    expect(matches('a.*', 'axy')).toBe(false);
  });

  it('matches a long name against a pathological pattern quickly', () => {
    const pattern = compilePattern('*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b');
    const globs = compilePattern('**a**a**a**a**a**a**a**a**a**a**a**b');
    const name = 'a'.repeat(5000);
    const started = performance.now();
    expect(pattern.matches(name)).toBe(false);
    expect(globs.matches(name)).toBe(false);
    expect(globs.matches(`${'a/'.repeat(2000)}b`)).toBe(true);
    expect(performance.now() - started).toBeLessThan(1000);
  });
});

describe('compilePattern: literal count', () => {
  it.each([
    ['**', 0],
    ['*', 0],
    ['team-a/**', 7],
    ['team-a/*', 7],
    ['team-a/app', 10],
    ['*/x/**', 3],
  ])('%j has %d literal characters', (pattern, literal) => {
    const compiled = compilePattern(pattern);
    expect(compiled.literal).toBe(literal);
    expect(compiled.pattern).toBe(pattern);
  });
});

describe('compilePattern: validation', () => {
  it.each([
    ['', /empty/],
    ['Team/app', /"Team\/app".*may contain only/],
    ['team a', /"team a"/],
    ['team:a', /"team:a"/],
    ['a//b', /"a\/\/b".*empty path segment/],
    ['/a', /"\/a".*empty path segment/],
    ['a/', /"a\/".*empty path segment/],
    ['a/***', /"a\/\*\*\*".*\*\*\*/],
    ['****', /\*\*\*/],
  ])('rejects %j', (pattern, message) => {
    expect(() => compilePattern(pattern)).toThrow(PatternError);
    expect(() => compilePattern(pattern)).toThrow(message);
  });
});
