import { describe, expect, it } from 'vitest';
import { Digest } from '../../src/oci/digest.js';
import { RegistryError } from '../../src/oci/errors.js';

const SHA256_EMPTY = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
const SHA256_ABC = 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad';
const SHA512_ABC =
  'ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f';

describe('Digest.parse and tryParse', () => {
  it('accepts sha256 with 64 lower-case hex digits', () => {
    const d = Digest.parse(`sha256:${SHA256_ABC}`);
    expect(d.algorithm).toBe('sha256');
    expect(d.hex).toBe(SHA256_ABC);
    expect(d.toString()).toBe(`sha256:${SHA256_ABC}`);
  });

  it('accepts sha512 with 128 lower-case hex digits', () => {
    const d = Digest.parse(`sha512:${SHA512_ABC}`);
    expect(d.algorithm).toBe('sha512');
    expect(d.hex).toBe(SHA512_ABC);
    expect(d.toString()).toBe(`sha512:${SHA512_ABC}`);
  });

  it.each([
    ['upper-case hex', `sha256:${SHA256_ABC.toUpperCase()}`],
    ['one upper-case hex digit', `sha256:${SHA256_ABC.slice(0, 63)}F`],
    ['upper-case algorithm', `SHA256:${SHA256_ABC}`],
    ['63 hex digits', `sha256:${SHA256_ABC.slice(0, 63)}`],
    ['65 hex digits', `sha256:${SHA256_ABC}0`],
    ['sha512 with 64 hex digits', `sha512:${SHA256_ABC}`],
    ['sha256 with 128 hex digits', `sha256:${SHA512_ABC}`],
    ['non-hex characters', `sha256:${'g'.repeat(64)}`],
    ['an unknown algorithm', `md5:${SHA256_ABC}`],
    ['sha384', `sha384:${SHA512_ABC.slice(0, 96)}`],
    ['a missing colon', `sha256${SHA256_ABC}`],
    ['only the hex', SHA256_ABC],
    ['an empty encoded part', 'sha256:'],
    ['an empty algorithm', `:${SHA256_ABC}`],
    ['surrounding spaces', ` sha256:${SHA256_ABC} `],
    ['the empty string', ''],
  ])('rejects %s', (_label, value) => {
    expect(Digest.tryParse(value)).toBeNull();
    expect(() => Digest.parse(value)).toThrow(RegistryError);
  });

  it('throws DIGEST_INVALID (400) with the offending value as detail', () => {
    const bad = `sha256:${SHA256_ABC.toUpperCase()}`;
    expect(() => Digest.parse(bad)).toThrow(
      expect.objectContaining({ code: 'DIGEST_INVALID', status: 400, detail: { digest: bad } }),
    );
  });
});

describe('Digest.of', () => {
  it('hashes with sha256 by default', () => {
    expect(Digest.of('').toString()).toBe(`sha256:${SHA256_EMPTY}`);
    expect(Digest.of('abc').toString()).toBe(`sha256:${SHA256_ABC}`);
  });

  it('hashes with sha512 when asked', () => {
    expect(Digest.of('abc', 'sha512').toString()).toBe(`sha512:${SHA512_ABC}`);
  });

  it('gives the same digest for bytes and for the string they encode', () => {
    expect(Digest.of(Buffer.from('abc')).equals(Digest.of('abc'))).toBe(true);
    expect(Digest.of(new Uint8Array([0x61, 0x62, 0x63]), 'sha512').toString()).toBe(`sha512:${SHA512_ABC}`);
  });

  it('round-trips through parse', () => {
    const d = Digest.of('some content', 'sha512');
    expect(Digest.parse(d.toString()).equals(d)).toBe(true);
  });
});

describe('Digest.equals', () => {
  it('compares algorithm and hex', () => {
    expect(Digest.of('a').equals(Digest.of('a'))).toBe(true);
    expect(Digest.of('a').equals(Digest.of('b'))).toBe(false);
    expect(Digest.of('a').equals(Digest.of('a', 'sha512'))).toBe(false);
  });
});
