import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Digest } from '../../src/oci/digest.js';
import { ImmutableTagError } from '../../src/registry/repository-rules.js';
import { isTagImmutable, wildcardMatches, type ExclusionFilter, type TagMutability } from '../../src/ecr/tag-mutability.js';
import { OCI_INDEX, OCI_MANIFEST } from '../helpers.js';
import { openFixture, type EcrFixture } from './repositories-support.js';

const wildcard = (...filters: string[]): ExclusionFilter[] => filters.map((filter) => ({ filterType: 'WILDCARD', filter }));

describe('wildcard filters', () => {
  it.each([
    ['dev-*', 'dev-1', true],
    ['dev-*', 'dev-', true],
    ['dev-*', 'xdev-1', false],
    ['*-rc', 'v1.2-rc', true],
    ['*-rc', 'v1.2-rc1', false],
    ['v*.*', 'v1.2', true],
    ['v*.*', 'v12', false],
    ['*', '', true],
    ['*', 'anything', true],
    ['**a**', 'banana', true],
    ['a*b*c', 'aXbYc', true],
    ['a*b*c', 'aXcYb', false],
    ['latest', 'latest', true],
    ['latest', 'Latest', false], // tags are case-sensitive
    ['latest', 'latest2', false],
    ['release.1', 'release-1', false], // `.` is itself, not "any character"
  ])('%s against %s: %s', (pattern, tag, expected) => {
    expect(wildcardMatches(pattern, tag)).toBe(expected);
  });

  it('takes no time on patterns that make regular expressions backtrack', () => {
    const pattern = '*a*a*a*a*a*a*a*a*a*a*b';
    expect(wildcardMatches(pattern, 'a'.repeat(128))).toBe(false);
  });

  it.each<[TagMutability, string[], string, boolean]>([
    ['MUTABLE', [], 'v1', false],
    ['IMMUTABLE', [], 'v1', true],
    ['IMMUTABLE_WITH_EXCLUSION', ['dev-*', 'latest'], 'v1', true],
    ['IMMUTABLE_WITH_EXCLUSION', ['dev-*', 'latest'], 'dev-7', false],
    ['IMMUTABLE_WITH_EXCLUSION', ['dev-*', 'latest'], 'latest', false],
    ['MUTABLE_WITH_EXCLUSION', ['release-*'], 'release-2', true],
    ['MUTABLE_WITH_EXCLUSION', ['release-*'], 'latest', false],
  ])('%s with %j: %s immutable is %s', (mutability, filters, tag, expected) => {
    expect(isTagImmutable(mutability, wildcard(...filters), tag)).toBe(expected);
  });
});

describe('tag mutability on pushes', () => {
  let f: EcrFixture;
  beforeEach(async () => {
    f = await openFixture();
  });
  afterEach(async () => {
    await f.close();
  });

  const setMutability = (repo: string, imageTagMutability: TagMutability, filters: string[] = []) =>
    f.call('PutImageTagMutability', {
      repositoryName: repo,
      imageTagMutability,
      ...(filters.length ? { imageTagMutabilityExclusionFilters: wildcard(...filters) } : {}),
    });

  it('IMMUTABLE: a tag may be created and re-pushed to its image, never moved', async () => {
    await f.call('CreateRepository', { repositoryName: 'app/web', imageTagMutability: 'IMMUTABLE' });
    const a = await f.pushImage('app/web', 'v1', 'a');
    expect(await f.pushImage('app/web', 'v1', 'a')).toBe(a); // the same digest: not a move
    const err = await f.pushImage('app/web', 'v1', 'b').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ImmutableTagError);
    expect((err as Error).message).toBe(
      "The image tag 'v1' already exists in the 'app/web' repository and cannot be overwritten because the tag is immutable.",
    );
    expect(await f.registry.index.tagDigest('app/web', 'v1')).toBe(a);
    // Untagged pushes and new tags are not moves.
    await f.pushImage('app/web', undefined, 'c');
    await f.pushImage('app/web', 'v2', 'b');
    // A deleted tag is a tag no more: it may be pushed again, anywhere.
    await f.registry.manifests.delete('app/web', { tag: 'v1' });
    await f.pushImage('app/web', 'v1', 'b');
  });

  it('a multi-platform push to an immutable repository: children by digest are never refused', async () => {
    await f.call('CreateRepository', { repositoryName: 'app/multi', imageTagMutability: 'IMMUTABLE' });
    const children: Array<{ digest: string; size: number }> = [];
    for (const layer of ['amd64', 'arm64']) {
      const digest = await f.pushImage('app/multi', undefined, layer);
      children.push({ digest, size: (await f.registry.index.manifest('app/multi', digest))!.size });
    }
    const index = Buffer.from(
      JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: children.map((c) => ({ mediaType: OCI_MANIFEST, ...c })) }),
    );
    await f.registry.manifests.put('app/multi', { tag: 'v1' }, index, OCI_INDEX);
    // Pushing the same list again (docker does) is not a move either.
    await f.registry.manifests.put('app/multi', { tag: 'v1' }, index, OCI_INDEX);
    for (const c of children) await f.registry.manifests.put('app/multi', { digest: Digest.parse(c.digest) }, (await f.registry.index.manifest('app/multi', c.digest))!.content, OCI_MANIFEST);
    expect(await f.registry.index.tagDigest('app/multi', 'v1')).toBe(Digest.of(index).toString());
  });

  it('IMMUTABLE_WITH_EXCLUSION: tags a filter matches move, the others do not', async () => {
    await f.call('CreateRepository', { repositoryName: 'app/web' });
    await setMutability('app/web', 'IMMUTABLE_WITH_EXCLUSION', ['dev-*', 'latest']);
    for (const tag of ['v1', 'dev-1', 'latest']) await f.pushImage('app/web', tag, 'a');
    await f.pushImage('app/web', 'dev-1', 'b');
    await f.pushImage('app/web', 'latest', 'b');
    await expect(f.pushImage('app/web', 'v1', 'b')).rejects.toBeInstanceOf(ImmutableTagError);
  });

  it('MUTABLE_WITH_EXCLUSION: tags a filter matches do not move, the others do', async () => {
    await f.call('CreateRepository', { repositoryName: 'app/web' });
    await setMutability('app/web', 'MUTABLE_WITH_EXCLUSION', ['release-*']);
    for (const tag of ['latest', 'release-1']) await f.pushImage('app/web', tag, 'a');
    await f.pushImage('app/web', 'latest', 'b');
    await expect(f.pushImage('app/web', 'release-1', 'b')).rejects.toMatchObject({ code: 'TAG_INVALID', status: 400 });
  });

  it('a change of mutability holds for the next push; MUTABLE lets every tag move again', async () => {
    await f.call('CreateRepository', { repositoryName: 'app/web' });
    await f.pushImage('app/web', 'v1', 'a');
    await f.pushImage('app/web', 'v1', 'b');
    await setMutability('app/web', 'IMMUTABLE');
    await expect(f.pushImage('app/web', 'v1', 'a')).rejects.toBeInstanceOf(ImmutableTagError);
    await setMutability('app/web', 'MUTABLE');
    await f.pushImage('app/web', 'v1', 'a');
  });
});
