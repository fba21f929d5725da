import { describe, expect, it } from 'vitest';
import { MediaType, accepts, baseMediaType } from '../../src/oci/media-types.js';

const OCI = MediaType.OciManifest;
const DOCKER = MediaType.DockerManifest;

describe('accepts', () => {
  it.each([
    ['an absent header', undefined],
    ['an empty header', ''],
    ['an empty list of headers', []],
  ])('admits anything with %s', (_label, header) => {
    expect(accepts(header, OCI)).toBe(true);
  });

  it('lets the most specific range decide: a type refused with q=0 stays refused beside */*', () => {
    expect(accepts(`${MediaType.DockerManifest};q=0, */*`, MediaType.DockerManifest)).toBe(false);
    expect(accepts(`${MediaType.DockerManifest};q=0, */*`, MediaType.OciManifest)).toBe(true);
    expect(accepts('application/*;q=0, */*', MediaType.OciManifest)).toBe(false);
    expect(accepts(`*/*;q=0, ${MediaType.OciManifest}`, MediaType.OciManifest)).toBe(true);
  });

  it('admits exactly the listed type and nothing else', () => {
    expect(accepts(OCI, OCI)).toBe(true);
    expect(accepts(OCI, DOCKER)).toBe(false);
  });

  it('compares the range case-insensitively and ignores its parameters', () => {
    expect(accepts(OCI.toUpperCase(), OCI)).toBe(true);
    expect(accepts(`${OCI}; q=0.5`, OCI)).toBe(true);
  });

  it('admits anything with */*', () => {
    expect(accepts('*/*', OCI)).toBe(true);
    expect(accepts('text/html, */*;q=0.1', DOCKER)).toBe(true);
  });

  it('admits types of the same top-level type with type/*', () => {
    expect(accepts('application/*', OCI)).toBe(true);
    expect(accepts('text/*', OCI)).toBe(false);
  });

  it('excludes a range with q=0', () => {
    expect(accepts(`${OCI};q=0`, OCI)).toBe(false);
    expect(accepts(`${OCI}; q=0.0`, OCI)).toBe(false);
    expect(accepts('*/*;q=0', OCI)).toBe(false);
  });

  it('reads comma-separated lists', () => {
    const header = `${DOCKER}, ${MediaType.DockerManifestList} ,${OCI}`;
    expect(accepts(header, OCI)).toBe(true);
    expect(accepts(header, DOCKER)).toBe(true);
    expect(accepts(header, MediaType.OciIndex)).toBe(false);
  });

  it('reads several Accept headers', () => {
    const headers = [DOCKER, `${MediaType.OciIndex}, ${OCI}`];
    expect(accepts(headers, OCI)).toBe(true);
    expect(accepts(headers, DOCKER)).toBe(true);
    expect(accepts(headers, MediaType.DockerManifestList)).toBe(false);
  });
});

describe('baseMediaType', () => {
  it.each([
    [undefined, ''],
    ['', ''],
    [OCI, OCI],
    ['application/json; charset=utf-8', 'application/json'],
    ['  Application/JSON ;charset=utf-8', 'application/json'],
    [`${OCI.toUpperCase()}`, OCI],
  ])('%j → %j', (input, expected) => {
    expect(baseMediaType(input)).toBe(expected);
  });
});
