import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RepositoryNotFoundError } from '../../src/registry/repository-rules.js';
import { ACCOUNT, HOST, REGION, openFixture, type EcrFixture } from './repositories-support.js';

const arn = (name: string) => `arn:aws:ecr:${REGION}:${ACCOUNT}:repository/${name}`;

describe('ECR repositories', () => {
  let f: EcrFixture;
  beforeEach(async () => {
    f = await openFixture();
  });
  afterEach(async () => {
    await f.close();
  });

  describe('CreateRepository', () => {
    it("answers ECR's Repository shape with the defaults, createdAt in epoch seconds", async () => {
      const out = await f.call('CreateRepository', { repositoryName: 'app/web' });
      expect(out).toEqual({
        repository: {
          repositoryArn: arn('app/web'),
          registryId: ACCOUNT,
          repositoryName: 'app/web',
          repositoryUri: `${HOST}/app/web`,
          createdAt: f.clock.now / 1000,
          imageTagMutability: 'MUTABLE',
          imageScanningConfiguration: { scanOnPush: false },
          encryptionConfiguration: { encryptionType: 'AES256' },
        },
      });
    });

    it('stores every setting it is given', async () => {
      const out = await f.call('CreateRepository', {
        registryId: ACCOUNT,
        repositoryName: 'app/api',
        imageTagMutability: 'IMMUTABLE_WITH_EXCLUSION',
        imageTagMutabilityExclusionFilters: [{ filterType: 'WILDCARD', filter: 'dev-*' }],
        imageScanningConfiguration: { scanOnPush: true },
        encryptionConfiguration: { encryptionType: 'KMS', kmsKey: 'alias/app' },
        tags: [
          { Key: 'team', Value: 'web' },
          { Key: 'cost center', Value: '' },
        ],
      });
      expect(out.repository).toMatchObject({
        imageTagMutability: 'IMMUTABLE_WITH_EXCLUSION',
        imageTagMutabilityExclusionFilters: [{ filterType: 'WILDCARD', filter: 'dev-*' }],
        imageScanningConfiguration: { scanOnPush: true },
        encryptionConfiguration: { encryptionType: 'KMS', kmsKey: 'alias/app' },
      });
      const described = await f.call('DescribeRepositories', { repositoryNames: ['app/api'] });
      expect(described.repositories).toEqual([out.repository]);
      expect(await f.call('ListTagsForResource', { resourceArn: arn('app/api') })).toEqual({
        tags: [
          { Key: 'team', Value: 'web' },
          { Key: 'cost center', Value: '' },
        ],
      });
    });

    it('refuses a name that exists, whether created or only pushed to', async () => {
      await f.call('CreateRepository', { repositoryName: 'app/web' });
      const err = await f.fails('CreateRepository', { repositoryName: 'app/web' });
      expect(err.type).toBe('RepositoryAlreadyExistsException');
      expect(err.message).toBe(`The repository with name 'app/web' already exists in the registry with id '${ACCOUNT}'`);

      const open = await openFixture({ createOnPush: true });
      try {
        await open.pushImage('pushed/first', 'v1', 'a');
        expect((await open.fails('CreateRepository', { repositoryName: 'pushed/first' })).type).toBe('RepositoryAlreadyExistsException');
      } finally {
        await open.close();
      }
    });

    it("answers a bad or missing name with AWS's ValidationException text", async () => {
      const bad = await f.fails('CreateRepository', { repositoryName: 'App/Web' });
      expect(bad.type).toBe('ValidationException');
      expect(bad.message).toMatch(
        /^1 validation error detected: Value 'App\/Web' at 'repositoryName' failed to satisfy constraint: Member must satisfy regular expression pattern: /,
      );
      const short = await f.fails('CreateRepository', { repositoryName: 'a' });
      expect(short.message).toBe("1 validation error detected: Value 'a' at 'repositoryName' failed to satisfy constraint: Member must have length greater than or equal to 2");
      const both = await f.fails('CreateRepository', { repositoryName: 'A' });
      expect(both.message).toMatch(/^2 validation errors detected: Value 'A' at 'repositoryName' failed to satisfy constraint: Member must have length greater than or equal to 2; Value 'A' at/);
      const missing = await f.fails('CreateRepository', {});
      expect(missing.message).toBe("1 validation error detected: Value null at 'repositoryName' failed to satisfy constraint: Member must not be null");
      const long = await f.fails('CreateRepository', { repositoryName: 'a'.repeat(257) });
      expect(long.message).toContain('Member must have length less than or equal to 256');
      expect((await f.fails('CreateRepository', { repositoryName: 42 })).type).toBe('SerializationException');
    });

    it('refuses a paging token holding a NUL once decoded', async () => {
      const token = Buffer.from(JSON.stringify({ a: 'app\u0000' })).toString('base64url');
      expect((await f.fails('DescribeRepositories', { nextToken: token })).type).toBe('InvalidParameterException');
    });

    it('checks the mutability against its exclusion filters', async () => {
      const none = await f.fails('CreateRepository', { repositoryName: 'app/web', imageTagMutability: 'MUTABLE_WITH_EXCLUSION' });
      expect(none.type).toBe('InvalidParameterException');
      const extra = await f.fails('CreateRepository', {
        repositoryName: 'app/web',
        imageTagMutability: 'IMMUTABLE',
        imageTagMutabilityExclusionFilters: [{ filterType: 'WILDCARD', filter: 'x*' }],
      });
      expect(extra.type).toBe('InvalidParameterException');
      const badFilter = await f.fails('CreateRepository', {
        repositoryName: 'app/web',
        imageTagMutability: 'IMMUTABLE_WITH_EXCLUSION',
        imageTagMutabilityExclusionFilters: [{ filterType: 'REGEX', filter: 'a b' }],
      });
      expect(badFilter.type).toBe('ValidationException');
      expect(badFilter.message).toContain("at 'imageTagMutabilityExclusionFilters.1.member.filterType' failed to satisfy constraint: Member must satisfy enum value set: [WILDCARD]");
      expect(badFilter.message).toContain("Value 'a b' at 'imageTagMutabilityExclusionFilters.1.member.filter'");
      const six = await f.fails('CreateRepository', {
        repositoryName: 'app/web',
        imageTagMutability: 'IMMUTABLE_WITH_EXCLUSION',
        imageTagMutabilityExclusionFilters: Array.from({ length: 6 }, (_, i) => ({ filterType: 'WILDCARD', filter: `t${i}*` })),
      });
      expect(six.message).toContain("at 'imageTagMutabilityExclusionFilters' failed to satisfy constraint: Member must have length less than or equal to 5");
      const enumBad = await f.fails('CreateRepository', { repositoryName: 'app/web', imageTagMutability: 'SOMETIMES' });
      expect(enumBad.message).toContain('Member must satisfy enum value set: [MUTABLE, IMMUTABLE, IMMUTABLE_WITH_EXCLUSION, MUTABLE_WITH_EXCLUSION]');
      expect(await f.repositories.get('app/web')).toBeUndefined();
    });

    it('checks encryption and resource tags as ECR does', async () => {
      const kms = await f.fails('CreateRepository', { repositoryName: 'app/web', encryptionConfiguration: { encryptionType: 'AES256', kmsKey: 'k' } });
      expect(kms.type).toBe('InvalidParameterException');
      const type = await f.fails('CreateRepository', { repositoryName: 'app/web', encryptionConfiguration: { encryptionType: 'ROT13' } });
      expect(type.type).toBe('ValidationException');
      const noType = await f.fails('CreateRepository', { repositoryName: 'app/web', encryptionConfiguration: {} });
      expect(noType.message).toContain("Value null at 'encryptionConfiguration.encryptionType' failed to satisfy constraint: Member must not be null");

      const tooMany = Array.from({ length: 51 }, (_, i) => ({ Key: `k${i}`, Value: 'v' }));
      expect((await f.fails('CreateRepository', { repositoryName: 'app/web', tags: tooMany })).type).toBe('TooManyTagsException');
      for (const tags of [
        [{ Key: 'k'.repeat(129), Value: 'v' }],
        [{ Key: '', Value: 'v' }],
        [{ Key: 'k', Value: 'v'.repeat(257) }],
        [{ Key: 'aws:owner', Value: 'me' }],
        [{ Key: 'bad\u0000key', Value: 'v' }],
        [
          { Key: 'same', Value: '1' },
          { Key: 'same', Value: '2' },
        ],
      ]) {
        expect((await f.fails('CreateRepository', { repositoryName: 'app/web', tags })).type, JSON.stringify(tags)).toBe('InvalidTagParameterException');
      }
      const noValue = await f.fails('CreateRepository', { repositoryName: 'app/web', tags: [{ Key: 'k' }] });
      expect(noValue.message).toContain("Value null at 'tags.1.member.Value' failed to satisfy constraint: Member must not be null");
      expect(await f.repositories.get('app/web')).toBeUndefined();
    });

    it("needs the manage right on the name, and this registry's id", async () => {
      const denied = await f.fails('CreateRepository', { repositoryName: 'app/web' }, { deny: ['app/web:manage'] });
      expect(denied.type).toBe('AccessDeniedException');
      expect(denied.message).toContain(`on resource: ${arn('app/web')}`);
      const other = await f.fails('CreateRepository', { repositoryName: 'app/web', registryId: '999999999999' });
      expect(other.type).toBe('InvalidParameterException');
      expect((await f.fails('CreateRepository', { repositoryName: 'app/web', registryId: '12345' })).type).toBe('ValidationException');
      expect(await f.repositories.get('app/web')).toBeUndefined();
    });
  });

  describe('DescribeRepositories', () => {
    it('lists created repositories and those only pushed to, sorted, the pushed ones with the defaults', async () => {
      const open = await openFixture({ createOnPush: true });
      try {
        await open.pushImage('b/pushed', 'v1', 'x');
        // A repository pushed to before ECR was on: in the registry's index only.
        open.db.prepare('DELETE FROM ecr_repositories').run();
        await open.call('CreateRepository', { repositoryName: 'c/created' });
        await open.call('CreateRepository', { repositoryName: 'a/created' });
        const out = await open.call('DescribeRepositories', {});
        const repos = out.repositories as Array<Record<string, unknown>>;
        expect(repos.map((r) => r.repositoryName)).toEqual(['a/created', 'b/pushed', 'c/created']);
        const pushedAt = (open.db.prepare("SELECT created_at AS t FROM repositories WHERE name = 'b/pushed'").get() as { t: number }).t;
        expect(repos[1]).toEqual({
          repositoryArn: arn('b/pushed'),
          registryId: ACCOUNT,
          repositoryName: 'b/pushed',
          repositoryUri: `${HOST}/b/pushed`,
          createdAt: pushedAt / 1000,
          imageTagMutability: 'MUTABLE',
          imageScanningConfiguration: { scanOnPush: false },
          encryptionConfiguration: { encryptionType: 'AES256' },
        });
        expect(out.nextToken).toBeUndefined();
      } finally {
        await open.close();
      }
    });

    it('pages with maxResults and an opaque nextToken, over the repositories the caller may pull only', async () => {
      for (const n of ['r/a', 'r/b', 'r/c', 'r/d', 'r/e']) await f.call('CreateRepository', { repositoryName: n });
      const rights = { deny: ['r/b:pull', 'r/d:pull'] };
      const seen: string[] = [];
      let token: string | undefined;
      let pages = 0;
      do {
        const out = await f.call('DescribeRepositories', { maxResults: 1, ...(token ? { nextToken: token } : {}) }, rights);
        seen.push(...(out.repositories as Array<{ repositoryName: string }>).map((r) => r.repositoryName));
        token = out.nextToken as string | undefined;
        expect(token === undefined || !token.includes('r/')).toBe(true); // opaque
        pages++;
      } while (token && pages < 10);
      expect(seen).toEqual(['r/a', 'r/c', 'r/e']);
      expect(pages).toBe(3);

      const all = await f.call('DescribeRepositories', { maxResults: 2 });
      expect((all.repositories as unknown[]).length).toBe(2);
      const rest = await f.call('DescribeRepositories', { nextToken: all.nextToken });
      expect((rest.repositories as Array<{ repositoryName: string }>).map((r) => r.repositoryName)).toEqual(['r/c', 'r/d', 'r/e']);
      expect(rest.nextToken).toBeUndefined();
    });

    it('answers at most 100 without maxResults', async () => {
      for (let i = 0; i < 101; i++) await f.repositories.create(`many/r${String(i).padStart(3, '0')}`);
      const out = await f.call('DescribeRepositories', {});
      expect((out.repositories as unknown[]).length).toBe(100);
      const next = await f.call('DescribeRepositories', { nextToken: out.nextToken });
      expect((next.repositories as Array<{ repositoryName: string }>).map((r) => r.repositoryName)).toEqual(['many/r100']);
    });

    it('describes named repositories: in the order asked, each once; the caller must pull each, and each must exist', async () => {
      await f.call('CreateRepository', { repositoryName: 'x/one' });
      await f.call('CreateRepository', { repositoryName: 'x/two' });
      const out = await f.call('DescribeRepositories', { repositoryNames: ['x/two', 'x/one', 'x/two'] });
      expect((out.repositories as Array<{ repositoryName: string }>).map((r) => r.repositoryName)).toEqual(['x/two', 'x/one']);

      const missing = await f.fails('DescribeRepositories', { repositoryNames: ['x/one', 'x/none'] });
      expect(missing.type).toBe('RepositoryNotFoundException');
      expect(missing.message).toBe(`The repository with name 'x/none' does not exist in the registry with id '${ACCOUNT}'`);
      // Rights come before existence: a refused caller learns nothing of what exists.
      expect((await f.fails('DescribeRepositories', { repositoryNames: ['x/none'] }, { deny: ['x/none:pull'] })).type).toBe('AccessDeniedException');
      expect((await f.fails('DescribeRepositories', { repositoryNames: ['x/one'] }, { deny: ['x/one:pull'] })).type).toBe('AccessDeniedException');
    });

    it('refuses paging with names, a token it did not give, and out-of-range sizes', async () => {
      const withToken = await f.fails('DescribeRepositories', { repositoryNames: ['x/one'], nextToken: 'abc' });
      expect(withToken.type).toBe('InvalidParameterException');
      expect((await f.fails('DescribeRepositories', { repositoryNames: ['x/one'], maxResults: 5 })).type).toBe('InvalidParameterException');
      expect((await f.fails('DescribeRepositories', { nextToken: 'not-a-token' })).type).toBe('InvalidParameterException');
      const zero = await f.fails('DescribeRepositories', { maxResults: 0 });
      expect(zero.message).toBe("1 validation error detected: Value 0 at 'maxResults' failed to satisfy constraint: Member must have value greater than or equal to 1");
      expect((await f.fails('DescribeRepositories', { maxResults: 1001 })).type).toBe('ValidationException');
      expect((await f.fails('DescribeRepositories', { repositoryNames: [] })).type).toBe('ValidationException');
      const many = Array.from({ length: 101 }, (_, i) => `n/r${i}`);
      expect((await f.fails('DescribeRepositories', { repositoryNames: many })).message).toContain('Member must have length less than or equal to 100');
    });

    it("has nothing in another account's registry", async () => {
      await f.call('CreateRepository', { repositoryName: 'x/one' });
      expect(await f.call('DescribeRepositories', { registryId: '999999999999' })).toEqual({ repositories: [] });
      const named = await f.fails('DescribeRepositories', { registryId: '999999999999', repositoryNames: ['x/one'] });
      expect(named.type).toBe('RepositoryNotFoundException');
      expect(named.message).toBe("The repository with name 'x/one' does not exist in the registry with id '999999999999'");
    });
  });

  describe('DeleteRepository', () => {
    it('deletes an empty repository and answers it as it was', async () => {
      const created = await f.call('CreateRepository', { repositoryName: 'app/web', imageTagMutability: 'IMMUTABLE' });
      const out = await f.call('DeleteRepository', { repositoryName: 'app/web' });
      expect(out).toEqual(created);
      expect((await f.fails('DescribeRepositories', { repositoryNames: ['app/web'] })).type).toBe('RepositoryNotFoundException');
      // The name is free again, with fresh settings.
      const again = await f.call('CreateRepository', { repositoryName: 'app/web' });
      expect((again.repository as { imageTagMutability: string }).imageTagMutability).toBe('MUTABLE');
    });

    it('refuses a repository with images without force, and deletes it and its content links with force', async () => {
      await f.call('CreateRepository', { repositoryName: 'app/web' });
      const digest = await f.pushImage('app/web', 'v1', 'a');
      f.registry.pulls.record('app/web', digest);
      await f.repositories.setLifecyclePolicy('app/web', 'x'.repeat(100));
      f.db.prepare("INSERT INTO ecr_lifecycle_previews (repository, policy, status, result, started_at) VALUES ('app/web', 'p', 'COMPLETE', '[]', 1)").run();

      const refused = await f.fails('DeleteRepository', { repositoryName: 'app/web' });
      expect(refused.type).toBe('RepositoryNotEmptyException');
      expect(refused.message).toBe(
        `The repository with name 'app/web' in registry with id '${ACCOUNT}' cannot be deleted because it still contains images`,
      );
      expect(await f.registry.index.tagDigest('app/web', 'v1')).toBe(digest);

      const deniedDelete = await f.fails('DeleteRepository', { repositoryName: 'app/web', force: true }, { deny: ['app/web:delete'] });
      expect(deniedDelete.type).toBe('AccessDeniedException');
      expect(await f.registry.index.tagDigest('app/web', 'v1')).toBe(digest);

      await f.call('DeleteRepository', { repositoryName: 'app/web', force: true });
      const keys: string[] = [];
      for await (const o of f.store.list('repositories/')) keys.push(o.key);
      expect(keys).toEqual([]);
      expect(await f.registry.index.repositoryId('app/web')).toBeUndefined();
      expect(await f.registry.pulls.lastPulled('app/web', digest)).toBeUndefined();
      expect(await f.repositories.get('app/web')).toBeUndefined();
      expect(f.db.prepare("SELECT 1 FROM ecr_lifecycle_previews WHERE repository = 'app/web'").get()).toBeUndefined();
      // Pushes do not create repositories here: the deleted one stays deleted.
      await expect(f.registry.uploads.start('app/web')).rejects.toBeInstanceOf(RepositoryNotFoundError);
    });

    it('needs manage, an existing repository and this registry', async () => {
      await f.call('CreateRepository', { repositoryName: 'app/web' });
      expect((await f.fails('DeleteRepository', { repositoryName: 'app/web' }, { deny: ['app/web:manage'] })).type).toBe('AccessDeniedException');
      expect((await f.fails('DeleteRepository', { repositoryName: 'app/none' })).type).toBe('RepositoryNotFoundException');
      const other = await f.fails('DeleteRepository', { repositoryName: 'app/web', registryId: '999999999999' });
      expect(other.message).toBe("The repository with name 'app/web' does not exist in the registry with id '999999999999'");
      expect((await f.fails('DeleteRepository', { repositoryName: 'app/web', force: 'yes' })).type).toBe('SerializationException');
      expect(await f.repositories.get('app/web')).toBeDefined();
    });
  });

  describe('PutImageTagMutability and PutImageScanningConfiguration', () => {
    it('change the settings and answer them', async () => {
      await f.call('CreateRepository', { repositoryName: 'app/web' });
      expect(await f.call('PutImageTagMutability', { repositoryName: 'app/web', imageTagMutability: 'IMMUTABLE' })).toEqual({
        registryId: ACCOUNT,
        repositoryName: 'app/web',
        imageTagMutability: 'IMMUTABLE',
      });
      const filters = [
        { filterType: 'WILDCARD', filter: 'dev-*' },
        { filterType: 'WILDCARD', filter: 'pr-*-build' },
      ];
      expect(
        await f.call('PutImageTagMutability', { repositoryName: 'app/web', imageTagMutability: 'IMMUTABLE_WITH_EXCLUSION', imageTagMutabilityExclusionFilters: filters }),
      ).toEqual({ registryId: ACCOUNT, repositoryName: 'app/web', imageTagMutability: 'IMMUTABLE_WITH_EXCLUSION', imageTagMutabilityExclusionFilters: filters });
      expect((await f.repositories.get('app/web'))?.imageTagMutabilityExclusionFilters).toEqual(filters);
      // Back to MUTABLE: the filters go.
      await f.call('PutImageTagMutability', { repositoryName: 'app/web', imageTagMutability: 'MUTABLE' });
      expect((await f.repositories.get('app/web'))?.imageTagMutabilityExclusionFilters).toEqual([]);

      expect(await f.call('PutImageScanningConfiguration', { repositoryName: 'app/web', imageScanningConfiguration: { scanOnPush: true } })).toEqual({
        registryId: ACCOUNT,
        repositoryName: 'app/web',
        imageScanningConfiguration: { scanOnPush: true },
      });
      expect((await f.repositories.get('app/web'))?.scanOnPush).toBe(true);
    });

    it('give a repository only pushed to settings of its own, keeping the time of its first push', async () => {
      const open = await openFixture({ createOnPush: true });
      try {
        await open.pushImage('old/repo', 'v1', 'a');
        open.db.prepare('DELETE FROM ecr_repositories').run();
        const before = (await open.repositories.require('old/repo')).createdAt;
        open.clock.now += 60_000;
        await open.call('PutImageTagMutability', { repositoryName: 'old/repo', imageTagMutability: 'IMMUTABLE' });
        expect(await open.repositories.require('old/repo')).toMatchObject({ createdAt: before, imageTagMutability: 'IMMUTABLE' });
      } finally {
        await open.close();
      }
    });

    it('refuse bad input, another right, a repository that does not exist', async () => {
      await f.call('CreateRepository', { repositoryName: 'app/web' });
      expect((await f.fails('PutImageTagMutability', { repositoryName: 'app/web' })).message).toContain(
        "Value null at 'imageTagMutability' failed to satisfy constraint: Member must not be null",
      );
      expect((await f.fails('PutImageTagMutability', { repositoryName: 'app/web', imageTagMutability: 'IMMUTABLE_WITH_EXCLUSION' })).type).toBe(
        'InvalidParameterException',
      );
      expect((await f.fails('PutImageTagMutability', { repositoryName: 'app/none', imageTagMutability: 'MUTABLE' })).type).toBe('RepositoryNotFoundException');
      expect((await f.fails('PutImageTagMutability', { repositoryName: 'app/web', imageTagMutability: 'MUTABLE' }, { deny: ['app/web:manage'] })).type).toBe(
        'AccessDeniedException',
      );
      expect((await f.fails('PutImageScanningConfiguration', { repositoryName: 'app/web' })).message).toContain(
        "Value null at 'imageScanningConfiguration' failed to satisfy constraint: Member must not be null",
      );
      expect((await f.fails('PutImageScanningConfiguration', { repositoryName: 'app/none', imageScanningConfiguration: {} })).type).toBe(
        'RepositoryNotFoundException',
      );
      expect(await f.repositories.get('app/web')).toMatchObject({ imageTagMutability: 'MUTABLE', scanOnPush: false });
    });
  });
});
