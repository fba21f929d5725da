import { describe, expect, it } from 'vitest';
import { RegistryError } from '../../src/oci/errors.js';
import { MAX_NAME_LENGTH, assertName, assertTag, isValidName, isValidTag } from '../../src/oci/names.js';

describe('repository names', () => {
  it.each([
    'a',
    'library/ubuntu',
    'my.registry/team/app',
    'a_b',
    'a__b',
    'a-b',
    'a---b',
    'a.b_c__d-e--f',
    '0/1/2',
    'a/b/c/d/e/f/g',
  ])('accepts %j', (name) => {
    expect(isValidName(name)).toBe(true);
    expect(assertName(name)).toBe(name);
  });

  it.each([
    ['the empty string', ''],
    ['upper case', 'Library/ubuntu'],
    ['a leading separator', '-a'],
    ['a trailing separator', 'a-'],
    ['a trailing dot', 'a.'],
    ['a trailing underscore', 'a_'],
    ['three underscores', 'a___b'],
    ['two dots', 'a..b'],
    ['mixed separators', 'a.-b'],
    ['a `..` segment', 'a/../b'],
    ['a `.` segment', 'a/./b'],
    ['an empty segment', 'a//b'],
    ['a leading slash', '/a'],
    ['a trailing slash', 'a/'],
    ['a component ending in a separator', 'a-/b'],
    ['a space', 'a b'],
    ['a plus', 'a+b'],
    ['a colon', 'a:b'],
  ])('rejects %s', (_label, name) => {
    expect(isValidName(name)).toBe(false);
  });

  it('accepts a name of exactly 256 characters (ECR\'s longest) and rejects 257', () => {
    expect(MAX_NAME_LENGTH).toBe(256);
    const at256 = `library/${'a'.repeat(248)}`;
    expect(at256).toHaveLength(256);
    expect(isValidName(at256)).toBe(true);
    expect(isValidName('a'.repeat(256))).toBe(true);
    expect(isValidName(`${at256}a`)).toBe(false);
    expect(isValidName('a'.repeat(257))).toBe(false);
  });

  it('assertName throws NAME_INVALID (400) naming the repository', () => {
    expect(() => assertName('Bad/Name')).toThrow(RegistryError);
    expect(() => assertName('Bad/Name')).toThrow(
      expect.objectContaining({ code: 'NAME_INVALID', status: 400, detail: { name: 'Bad/Name' } }),
    );
  });
});

describe('tags', () => {
  it.each(['latest', 'v1.0.0', 'V1', '_private', '1', 'a-b_c.d', 'x'.repeat(128)])('accepts %j', (tag) => {
    expect(isValidTag(tag)).toBe(true);
    expect(assertTag(tag)).toBe(tag);
  });

  it.each([
    ['the empty string', ''],
    ['a leading dot', '.hidden'],
    ['a leading dash', '-rc1'],
    ['129 characters', 'x'.repeat(129)],
    ['a slash', 'a/b'],
    ['a colon', 'a:b'],
    ['a plus', '1.0+build'],
    ['a space', 'a b'],
  ])('rejects %s', (_label, tag) => {
    expect(isValidTag(tag)).toBe(false);
  });

  it('assertTag throws MANIFEST_INVALID (400) naming the tag', () => {
    expect(() => assertTag('-bad')).toThrow(
      expect.objectContaining({ code: 'MANIFEST_INVALID', status: 400, detail: { tag: '-bad' } }),
    );
  });
});
