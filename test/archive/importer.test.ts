// The importer under ECR's repository rules: an archive that would move an immutable tag, or push
// to a repository that does not exist where pushes do not create one, is refused before anything
// is committed.
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ArchiveImporter } from '../../src/archive/importer.js';
import { ImmutableTagError, RepositoryNotFoundError } from '../../src/registry/repository-rules.js';
import { openFixture, type EcrFixture } from '../ecr/repositories-support.js';
import { dockerSaveEntries, sha256, tarOf, testImage } from './archives.js';

let f: EcrFixture;
beforeEach(async () => {
  f = await openFixture();
});
afterEach(async () => {
  await f.close();
});

async function importOf(repoTags: string[], name: string, options: { repository?: string } = {}) {
  const image = await testImage(name);
  const importer = new ArchiveImporter(f.registry, { maxBytes: 1 << 30, maxEntries: 100 }, 4 * 1024 * 1024);
  const tar = await tarOf(dockerSaveEntries([{ image, repoTags }]));
  const contents = await importer.read((async function* () {
    yield tar;
  })());
  const result = importer.commit(contents, { ...options, mayPush: () => true });
  return { image, result };
}

const uploadsLeft = async () => (await readdir(join(f.root, 'uploads')).catch(() => [])).length;

describe('archive imports under ECR rules', () => {
  it('refuses to move an immutable tag, and links none of the new image\'s blobs', async () => {
    await f.call('CreateRepository', { repositoryName: 'app/web', imageTagMutability: 'IMMUTABLE' });
    const first = await importOf(['app/web:v1'], 'first');
    expect(await first.result).toEqual([{ repository: 'app/web', tag: 'v1', digest: first.image.digest, mediaType: expect.any(String) }]);
    const second = await importOf(['app/web:v1'], 'second');
    await expect(second.result).rejects.toBeInstanceOf(ImmutableTagError);
    expect(await f.registry.index.tagDigest('app/web', 'v1')).toBe(first.image.digest);
    for (const blob of [second.image.config, ...second.image.layers]) {
      expect(await f.registry.index.linkedBlobSize('app/web', sha256(blob))).toBeUndefined();
    }
    expect(await uploadsLeft()).toBe(0);
    // The same image again is no move.
    const again = await importOf(['app/web:v1'], 'first');
    await expect(again.result).resolves.toHaveLength(1);
  });

  it('refuses a repository that does not exist when pushes do not create one, and creates nothing', async () => {
    const { result } = await importOf(['app/missing:v1'], 'missing');
    await expect(result).rejects.toBeInstanceOf(RepositoryNotFoundError);
    expect(await f.registry.index.tagDigest('app/missing', 'v1')).toBeUndefined();
    expect(await uploadsLeft()).toBe(0);
  });
});
