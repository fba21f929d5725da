/**
 * Several indexes on one database, as several registry nodes have it: what one writes the others
 * see at once, and concurrent writes of the same names through different nodes neither fail nor
 * leave the index inconsistent. Only for implementations that can be shared.
 */
import { expect, it } from 'vitest';
import { describeIndex } from './implementations.js';
import { blob, image, tagState, TagsVersionWatch } from './fixtures.js';

describeIndex(
  'Index shared by several nodes',
  (fixture) => {
    it('a tag written through one node is seen at once through the other, with a new tagsVersion', async () => {
      const one = fixture().index.registry;
      const two = (await fixture().another()).registry;
      await one.ensureRepository('r');
      const before = await two.tagsVersion('r');
      expect(await two.tagsVersion('r')).toBe(before);
      const m = image('m');
      await one.putManifest('r', m, ['latest']);
      expect(await two.tagDigest('r', 'latest')).toBe(m.digest);
      const afterPut = await two.tagsVersion('r');
      expect(afterPut).not.toBe(before);
      await one.deleteTag('r', 'latest');
      expect(await two.tagDigest('r', 'latest')).toBeUndefined();
      const afterDelete = await two.tagsVersion('r');
      expect([before, afterPut]).not.toContain(afterDelete);
      // The writer's own view agrees.
      expect(await one.tagsVersion('r')).toBe(afterDelete);
    });

    it('tagsVersion read through one node follows every tag change made through the other', async () => {
      const one = fixture().index.registry;
      const twoIndex = await fixture().another();
      const m = image('m');
      const w = new TagsVersionWatch(async () => {
        const version = await twoIndex.registry.tagsVersion('r');
        return { version, tags: await tagState(twoIndex, 'r') };
      });
      await w.start();
      await one.putManifest('r', m, ['latest']);
      await w.changed('putManifest');
      await one.deleteManifest('r', m.digest);
      await w.changed('deleteManifest');
      await one.putManifest('r', m, ['latest', 'v1']);
      await w.changed('putManifest');
      await one.deleteTag('r', 'v1');
      await w.changed('deleteTag');
      await one.deleteManifestIf('r', m.digest, () => true);
      await w.changed('deleteManifestIf');
      await one.putManifest('r', m, ['latest']);
      await w.changed('putManifest');
      await one.deleteRepository('r');
      await w.changed('deleteRepository');
      await one.putManifest('r', image('n'), ['latest']);
      await w.changed('putManifest into a new repository of that name');
      await one.clear();
      await w.changed('clear');
      await one.putManifest('r', image('o'), ['latest']);
      await w.changed('putManifest after clear');
      await one.addBlob('r', blob('b'), 1);
      await w.unchanged('addBlob');
    });

    it('settings, keys and uploads written through one node are read through the other', async () => {
      const one = fixture().index;
      const two = await fixture().another();
      await one.registry.insertUpload('u', 'r', 1_000);
      await one.accessKeys.insert({ id: 'k', user: 'ci', secretHash: 'h', scopes: '[]', description: null, createdAt: 1, expiresAt: null });
      await one.ecr.putSetting('registryPolicy', '{}');
      await one.pullTimes.record([{ repository: 'r', digest: image('m').digest, pulledAt: 9 }]);
      expect(await two.registry.upload('u')).toEqual({ id: 'u', repository: 'r', createdAt: 1_000, updatedAt: 1_000 });
      expect((await two.accessKeys.byId('k'))!.user).toBe('ci');
      expect(await two.ecr.setting('registryPolicy')).toBe('{}');
      expect(await two.pullTimes.lastPulled('r', image('m').digest)).toBe(9);
      await two.registry.touchUpload('u', 2_000);
      expect((await one.registry.upload('u'))!.updatedAt).toBe(2_000);
    });

    it('20 concurrent pushes of one tag through two nodes end with the tag on one of them', async () => {
      const nodes = [fixture().index.registry, (await fixture().another()).registry];
      await nodes[0]!.ensureRepository('r');
      const before = await nodes[1]!.tagsVersion('r');
      const manifests = Array.from({ length: 20 }, (_, i) => image(`racer ${i}`));
      const results = await Promise.allSettled(manifests.map((m, i) => nodes[i % 2]!.putManifest('r', m, ['latest'])));
      expect(results.filter((r) => r.status === 'rejected')).toEqual([]);

      const winner = await nodes[0]!.tagDigest('r', 'latest');
      expect(manifests.map((m) => m.digest)).toContain(winner);
      expect(await nodes[1]!.tagDigest('r', 'latest')).toBe(winner);
      const repoId = (await nodes[0]!.repositoryId('r'))!;
      expect(await nodes[1]!.allTags(repoId)).toEqual(['latest']);
      for (const m of manifests) {
        expect(await nodes[1]!.hasManifest(repoId, m.digest)).toBe(true);
        expect(await nodes[0]!.tagsOf('r', m.digest)).toEqual(m.digest === winner ? ['latest'] : []);
      }
      expect(await nodes[0]!.tagsVersion('r')).not.toBe(before);
      expect(await nodes[1]!.tagsVersion('r')).not.toBe(before);
    });

    it('concurrent pushes of the same manifest through two nodes do not fail and leave one row', async () => {
      const nodes = [fixture().index.registry, (await fixture().another()).registry];
      const m = image('same');
      const results = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => nodes[i % 2]!.putManifest('new-repo', m, [`t${i}`], 1_000 + i)));
      expect(results.filter((r) => r.status === 'rejected')).toEqual([]);
      const repoId = (await nodes[0]!.repositoryId('new-repo'))!;
      expect(await nodes[0]!.catalog('', 10)).toEqual(['new-repo']);
      expect((await nodes[1]!.tagsOf('new-repo', m.digest)).length).toBe(20);
      const facts = await fixture().index.images.manifestFacts(repoId);
      expect(facts.map((f) => f.digest)).toEqual([m.digest]);
    });

    it('concurrent ensureRepository and addBlob of the same names through two nodes do not fail', async () => {
      const nodes = [fixture().index.registry, (await fixture().another()).registry];
      const ids = await Promise.all(Array.from({ length: 20 }, (_, i) => nodes[i % 2]!.ensureRepository('fresh')));
      expect(new Set(ids).size).toBe(1);
      expect(await nodes[1]!.repositoryId('fresh')).toBe(ids[0]);

      const shared = blob('shared layer');
      const adds = await Promise.allSettled(
        Array.from({ length: 20 }, (_, i) => nodes[i % 2]!.addBlob(i % 4 === 0 ? 'other' : `repo${i % 3}`, shared, 321)),
      );
      expect(adds.filter((r) => r.status === 'rejected')).toEqual([]);
      expect((await nodes[0]!.blobRepositories(shared, '', 10)).map((r) => r.name)).toEqual(['other', 'repo0', 'repo1', 'repo2']);
      expect(await nodes[1]!.blobSize(shared)).toBe(321);

      // Different blobs into one new repository at once.
      const many = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => nodes[i % 2]!.addBlob('burst', blob(`b${i}`), i + 1)));
      expect(many.filter((r) => r.status === 'rejected')).toEqual([]);
      const burst = (await nodes[0]!.repositoryId('burst'))!;
      expect((await nodes[1]!.linkedBlobSizes(burst, Array.from({ length: 20 }, (_, i) => blob(`b${i}`)))).size).toBe(20);
    });

    it('concurrent ECR creation of one name through two nodes: exactly one succeeds', async () => {
      const nodes = [fixture().index.ecr, (await fixture().another()).ecr];
      const row = (i: number) => ({
        name: 'contested',
        createdAt: 1_000 + i,
        tagMutability: 'MUTABLE',
        mutabilityExclusions: '[]',
        scanOnPush: false,
        encryption: '{"encryptionType":"AES256"}',
        resourceTags: `[{"Key":"n","Value":"${i}"}]`,
        policy: null,
        lifecyclePolicy: null,
      });
      const results = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => nodes[i % 2]!.insertRepository(row(i))));
      expect(results.filter((r) => r.status === 'rejected')).toEqual([]);
      const created = results.map((r) => (r as PromiseFulfilledResult<boolean>).value);
      expect(created.filter(Boolean).length).toBe(1);
      const winner = created.indexOf(true);
      expect((await nodes[1]!.repository('contested'))!.resourceTags).toBe(row(winner).resourceTags);
    });

    it('deleteManifestIf through one node and a tag pushed through the other: never a tag on a deleted manifest', async () => {
      const nodes = [fixture().index.registry, (await fixture().another()).registry];
      for (let round = 0; round < 10; round++) {
        const m = image(`victim ${round}`);
        await nodes[0]!.putManifest('r', m, []);
        const [deleted] = await Promise.all([
          nodes[0]!.deleteManifestIf('r', m.digest, (tags) => tags.length === 0),
          nodes[1]!.putManifest('r', m, [`keep${round}`]),
        ]);
        const tag = await nodes[1]!.tagDigest('r', `keep${round}`);
        const repoId = (await nodes[1]!.repositoryId('r'))!;
        const present = await nodes[1]!.hasManifest(repoId, m.digest);
        // Either the delete went first (and the put brought the manifest back with its tag), or
        // the put went first (and the delete, seeing a tag, refused): the tag always has its manifest.
        expect(tag).toBe(m.digest);
        expect(present).toBe(true);
        if (deleted !== undefined) expect(deleted).toEqual([]);
      }
    });
  },
  (impl) => impl.shared,
);
