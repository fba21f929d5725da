// The repository operations through the real @aws-sdk/client-ecr against a running registry:
// CreateRepository, DescribeRepositories, DeleteRepository, PutImageTagMutability,
// PutImageScanningConfiguration, Set/Get/DeleteRepositoryPolicy, TagResource, UntagResource and
// ListTagsForResource, each with its response shape and its errors (not found, already exists,
// validation, the reader and the dev key refused).
import {
  CreateRepositoryCommand,
  DeleteRepositoryCommand,
  DeleteRepositoryPolicyCommand,
  DescribeRepositoriesCommand,
  GetRepositoryPolicyCommand,
  ListImagesCommand,
  ListTagsForResourceCommand,
  PutImageScanningConfigurationCommand,
  PutImageTagMutabilityCommand,
  SetRepositoryPolicyCommand,
  TagResourceCommand,
  UntagResourceCommand,
  type ECRClient,
  type Repository,
} from '@aws-sdk/client-ecr';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { awsLogin, invalidAt, pushImage } from './sdk-fixtures.js';
import { ACCOUNT, REGION, failure, startEcrRegistry, type EcrTestRegistry } from './sdk-support.js';

let registry: EcrTestRegistry;
let admin: ECRClient;
let dev: ECRClient;
let reader: ECRClient;
let host: string;

beforeAll(async () => {
  registry = await startEcrRegistry();
  admin = registry.client('admin');
  dev = registry.client('dev');
  reader = registry.client('reader');
  host = new URL(registry.url).host;
});
afterAll(async () => {
  await registry?.destroy();
});

const arn = (name: string) => `arn:aws:ecr:${REGION}:${ACCOUNT}:repository/${name}`;
const notFound = (name: string, registryId = ACCOUNT) => `The repository with name '${name}' does not exist in the registry with id '${registryId}'`;
const denied = (user: string, operation: string, name: string) =>
  `User: arn:aws:iam::${ACCOUNT}:user/${user} is not authorized to perform: ecr:${operation} on resource: ${arn(name)} because no identity-based policy allows the ecr:${operation} action`;

const POLICY = JSON.stringify({
  Version: '2012-10-17',
  Statement: [{ Sid: 'AllowPull', Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${ACCOUNT}:root` }, Action: ['ecr:BatchGetImage', 'ecr:GetDownloadUrlForLayer'] }],
});

async function create(name: string, client = admin): Promise<Repository> {
  return (await client.send(new CreateRepositoryCommand({ repositoryName: name }))).repository!;
}

describe('CreateRepository', () => {
  it('creates a repository with ECR defaults and answers its full shape', async () => {
    const before = Date.now();
    const out = await admin.send(new CreateRepositoryCommand({ repositoryName: 'team/create-defaults' }));
    const repo = out.repository!;
    expect(Object.keys(repo).sort()).toEqual(
      ['createdAt', 'encryptionConfiguration', 'imageScanningConfiguration', 'imageTagMutability', 'registryId', 'repositoryArn', 'repositoryName', 'repositoryUri'].sort(),
    );
    expect(repo.repositoryArn).toBe(arn('team/create-defaults'));
    expect(repo.registryId).toBe(ACCOUNT);
    expect(repo.repositoryName).toBe('team/create-defaults');
    expect(repo.repositoryUri).toBe(`${host}/team/create-defaults`);
    expect(repo.createdAt).toBeInstanceOf(Date);
    expect(repo.createdAt!.getTime()).toBeGreaterThanOrEqual(before - 1000);
    expect(repo.createdAt!.getTime()).toBeLessThanOrEqual(Date.now() + 1000);
    expect(repo.imageTagMutability).toBe('MUTABLE');
    expect(repo.imageScanningConfiguration).toEqual({ scanOnPush: false });
    expect(repo.encryptionConfiguration).toEqual({ encryptionType: 'AES256' });
  });

  it('stores mutability with exclusion filters, scanning, KMS encryption and tags', async () => {
    const kmsKey = `arn:aws:kms:${REGION}:${ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab`;
    const out = await admin.send(
      new CreateRepositoryCommand({
        repositoryName: 'team/create-full',
        registryId: ACCOUNT,
        imageTagMutability: 'IMMUTABLE_WITH_EXCLUSION',
        imageTagMutabilityExclusionFilters: [{ filterType: 'WILDCARD', filter: 'latest' }, { filterType: 'WILDCARD', filter: 'dev-*' }],
        imageScanningConfiguration: { scanOnPush: true },
        encryptionConfiguration: { encryptionType: 'KMS', kmsKey },
        tags: [{ Key: 'team', Value: 'web' }, { Key: 'cost-center', Value: '42' }],
      }),
    );
    const repo = out.repository!;
    expect(repo.imageTagMutability).toBe('IMMUTABLE_WITH_EXCLUSION');
    expect(repo.imageTagMutabilityExclusionFilters).toEqual([{ filterType: 'WILDCARD', filter: 'latest' }, { filterType: 'WILDCARD', filter: 'dev-*' }]);
    expect(repo.imageScanningConfiguration).toEqual({ scanOnPush: true });
    expect(repo.encryptionConfiguration).toEqual({ encryptionType: 'KMS', kmsKey });
    const described = (await admin.send(new DescribeRepositoriesCommand({ repositoryNames: ['team/create-full'] }))).repositories![0]!;
    expect(described).toEqual(repo);
    const tags = await admin.send(new ListTagsForResourceCommand({ resourceArn: repo.repositoryArn }));
    expect(tags.tags).toEqual([{ Key: 'team', Value: 'web' }, { Key: 'cost-center', Value: '42' }]);
  });

  it('lets the dev key create under team/ (with manage there)', async () => {
    const repo = await create('team/by-dev', dev);
    expect(repo.repositoryName).toBe('team/by-dev');
  });

  it('answers RepositoryAlreadyExistsException with ECR\'s message for a name taken', async () => {
    await create('team/taken');
    const f = await failure(admin.send(new CreateRepositoryCommand({ repositoryName: 'team/taken', imageTagMutability: 'IMMUTABLE' })));
    expect(f.name).toBe('RepositoryAlreadyExistsException');
    expect(f.status).toBe(400);
    expect(f.message).toBe(`The repository with name 'team/taken' already exists in the registry with id '${ACCOUNT}'`);
    // The first one is left as it was.
    const repo = (await admin.send(new DescribeRepositoriesCommand({ repositoryNames: ['team/taken'] }))).repositories![0]!;
    expect(repo.imageTagMutability).toBe('MUTABLE');
  });

  it.each([
    ['an upper-case name', 'Team/App', 'pattern'],
    ['a name of one character', 'a', 'length greater than or equal to 2'],
    ['a name longer than 256 characters', `team/${'a'.repeat(252)}`, 'length less than or equal to 256'],
    ['an empty namespace', 'team//app', 'pattern'],
    ['a leading separator', '-team/app', 'pattern'],
    ['a trailing slash', 'team/app/', 'pattern'],
  ])('refuses %s with InvalidParameterException (CreateRepository\'s model lists no ValidationException)', async (_what, name, constraint) => {
    const f = await failure(admin.send(new CreateRepositoryCommand({ repositoryName: name })));
    expect(f.name).toBe('InvalidParameterException');
    expect(f.status).toBe(400);
    if (constraint === 'pattern') expect(f.message.startsWith("Invalid parameter at 'repositoryName' failed to satisfy constraint: 'Member must satisfy regular expression pattern: ")).toBe(true);
    else expect(f.message).toBe(invalidAt('repositoryName', `Member must have ${constraint}`));
    const list = await admin.send(new DescribeRepositoriesCommand({}));
    expect(list.repositories!.map((r) => r.repositoryName)).not.toContain(name);
  });

  it('refuses a missing name, then an unknown mutability, naming the first problem', async () => {
    const f = await failure(admin.send(new CreateRepositoryCommand({ imageTagMutability: 'SOMETIMES' } as never)));
    expect(f.name).toBe('InvalidParameterException');
    expect(f.message).toBe(invalidAt('repositoryName', 'Member must not be null'));
    const g = await failure(admin.send(new CreateRepositoryCommand({ repositoryName: 'team/sometimes', imageTagMutability: 'SOMETIMES' as never })));
    expect(g.name).toBe('InvalidParameterException');
    expect(g.message).toBe(invalidAt('imageTagMutability', 'Member must satisfy enum value set: [MUTABLE, IMMUTABLE, IMMUTABLE_WITH_EXCLUSION, MUTABLE_WITH_EXCLUSION]'));
  });

  it('wants exclusion filters with *_WITH_EXCLUSION, and only then', async () => {
    const without = await failure(admin.send(new CreateRepositoryCommand({ repositoryName: 'team/excl-a', imageTagMutability: 'MUTABLE_WITH_EXCLUSION' })));
    expect(without.name).toBe('InvalidParameterException');
    expect(without.message).toBe('Invalid parameter: imageTagMutabilityExclusionFilters must be specified with imageTagMutability MUTABLE_WITH_EXCLUSION');
    const stray = await failure(
      admin.send(
        new CreateRepositoryCommand({ repositoryName: 'team/excl-b', imageTagMutability: 'IMMUTABLE', imageTagMutabilityExclusionFilters: [{ filterType: 'WILDCARD', filter: 'x' }] }),
      ),
    );
    expect(stray.name).toBe('InvalidParameterException');
    expect(stray.message).toBe('Invalid parameter: imageTagMutabilityExclusionFilters cannot be specified with imageTagMutability IMMUTABLE');
    const badFilter = await failure(
      admin.send(
        new CreateRepositoryCommand({
          repositoryName: 'team/excl-c',
          imageTagMutability: 'IMMUTABLE_WITH_EXCLUSION',
          imageTagMutabilityExclusionFilters: [{ filterType: 'WILDCARD', filter: 'not a tag!' }],
        }),
      ),
    );
    expect(badFilter.name).toBe('InvalidParameterException');
    expect(badFilter.message).toBe(invalidAt('imageTagMutabilityExclusionFilters.1.member.filter', 'Member must satisfy regular expression pattern: [0-9a-zA-Z._*-]{1,128}'));
    const list = await admin.send(new DescribeRepositoriesCommand({}));
    expect(list.repositories!.map((r) => r.repositoryName).filter((n) => n!.startsWith('team/excl-'))).toEqual([]);
  });

  it('refuses a KMS key with AES256 encryption', async () => {
    const f = await failure(
      admin.send(new CreateRepositoryCommand({ repositoryName: 'team/aes-key', encryptionConfiguration: { encryptionType: 'AES256', kmsKey: 'arn:aws:kms:us-east-1:123456789012:key/x' } })),
    );
    expect(f.name).toBe('InvalidParameterException');
    expect(f.message).toContain('kmsKey');
  });

  it('refuses tags ECR refuses: a reserved aws: key, a value over 256 characters, more than 50', async () => {
    const reserved = await failure(admin.send(new CreateRepositoryCommand({ repositoryName: 'team/tags-a', tags: [{ Key: 'aws:owner', Value: 'x' }] })));
    expect(reserved.name).toBe('InvalidTagParameterException');
    const long = await failure(admin.send(new CreateRepositoryCommand({ repositoryName: 'team/tags-b', tags: [{ Key: 'k', Value: 'v'.repeat(257) }] })));
    expect(long.name).toBe('InvalidTagParameterException');
    const many = Array.from({ length: 51 }, (_, i) => ({ Key: `k${i}`, Value: 'v' }));
    const tooMany = await failure(admin.send(new CreateRepositoryCommand({ repositoryName: 'team/tags-c', tags: many })));
    expect(tooMany.name).toBe('TooManyTagsException');
    const noValue = await failure(admin.send(new CreateRepositoryCommand({ repositoryName: 'team/tags-d', tags: [{ Key: 'k' }] } as never)));
    expect(noValue.name).toBe('InvalidParameterException');
    expect(noValue.message).toBe(invalidAt('tags.1.member.Value', 'Member must not be null'));
    const names = (await admin.send(new DescribeRepositoriesCommand({}))).repositories!.map((r) => r.repositoryName);
    expect(names.filter((n) => n!.startsWith('team/tags-'))).toEqual([]);
  });

  it('refuses another registry id with InvalidParameterException', async () => {
    const f = await failure(admin.send(new CreateRepositoryCommand({ repositoryName: 'team/elsewhere', registryId: '210987654321' })));
    expect(f.name).toBe('InvalidParameterException');
  });

  it('refuses the reader, and the dev key outside team/, with AccessDeniedException', async () => {
    const r = await failure(reader.send(new CreateRepositoryCommand({ repositoryName: 'team/by-reader' })));
    expect(r.name).toBe('AccessDeniedException');
    expect(r.status).toBe(400);
    expect(r.message).toBe(denied('reader', 'CreateRepository', 'team/by-reader'));
    const d = await failure(dev.send(new CreateRepositoryCommand({ repositoryName: 'ops/by-dev' })));
    expect(d.name).toBe('AccessDeniedException');
    expect(d.message).toBe(denied('dev', 'CreateRepository', 'ops/by-dev'));
    const names = (await admin.send(new DescribeRepositoriesCommand({}))).repositories!.map((r) => r.repositoryName);
    expect(names).not.toContain('team/by-reader');
    expect(names).not.toContain('ops/by-dev');
  });
});

describe('DescribeRepositories', () => {
  let paging: EcrTestRegistry;
  beforeAll(async () => {
    paging = await startEcrRegistry();
    const c = paging.client('admin');
    for (let i = 0; i < 25; i++) await c.send(new CreateRepositoryCommand({ repositoryName: `page/repo-${String(i).padStart(2, '0')}` }));
  });
  afterAll(async () => {
    await paging?.destroy();
  });

  it('walks 25 repositories 10 at a time with nextToken, in name order, nothing repeated or lost', async () => {
    const c = paging.client('reader');
    const seen: string[] = [];
    const pages: number[] = [];
    let nextToken: string | undefined;
    for (let n = 0; n < 10; n++) {
      const out = await c.send(new DescribeRepositoriesCommand({ maxResults: 10, ...(nextToken ? { nextToken } : {}) }));
      pages.push(out.repositories!.length);
      seen.push(...out.repositories!.map((r) => r.repositoryName!));
      nextToken = out.nextToken;
      if (!nextToken) break;
    }
    expect(pages).toEqual([10, 10, 5]);
    expect(nextToken).toBeUndefined();
    expect(seen).toEqual(Array.from({ length: 25 }, (_, i) => `page/repo-${String(i).padStart(2, '0')}`));
  });

  it('answers a full page without nextToken when nothing follows it', async () => {
    const out = await paging.client('admin').send(new DescribeRepositoriesCommand({ maxResults: 25 }));
    expect(out.repositories).toHaveLength(25);
    expect(out.nextToken).toBeUndefined();
    const one = await paging.client('admin').send(new DescribeRepositoriesCommand({ maxResults: 1 }));
    expect(one.repositories!.map((r) => r.repositoryName)).toEqual(['page/repo-00']);
    expect(typeof one.nextToken).toBe('string');
  });

  it('describes named repositories, each once, in the order asked', async () => {
    const out = await paging.client('admin').send(new DescribeRepositoriesCommand({ repositoryNames: ['page/repo-07', 'page/repo-03', 'page/repo-07'] }));
    expect(out.repositories!.map((r) => r.repositoryName)).toEqual(['page/repo-07', 'page/repo-03']);
    const r = out.repositories![0]!;
    expect(r.repositoryArn).toBe(arn('page/repo-07'));
    expect(r.repositoryUri).toBe(`${new URL(paging.url).host}/page/repo-07`);
    expect(r.createdAt).toBeInstanceOf(Date);
    expect(out.nextToken).toBeUndefined();
  });

  it('answers RepositoryNotFoundException with ECR\'s message for a name it does not hold', async () => {
    const f = await failure(paging.client('admin').send(new DescribeRepositoriesCommand({ repositoryNames: ['page/repo-01', 'page/missing'] })));
    expect(f.name).toBe('RepositoryNotFoundException');
    expect(f.status).toBe(400);
    expect(f.message).toBe(notFound('page/missing'));
  });

  it('refuses nextToken or maxResults together with repositoryNames', async () => {
    const c = paging.client('admin');
    const first = await c.send(new DescribeRepositoriesCommand({ maxResults: 2 }));
    const withToken = await failure(c.send(new DescribeRepositoriesCommand({ repositoryNames: ['page/repo-01'], nextToken: first.nextToken })));
    expect(withToken.name).toBe('InvalidParameterException');
    expect(withToken.message).toBe('Invalid parameter: nextToken and maxResults cannot be used together with repositoryNames');
    const withMax = await failure(c.send(new DescribeRepositoriesCommand({ repositoryNames: ['page/repo-01'], maxResults: 5 })));
    expect(withMax.name).toBe('InvalidParameterException');
  });

  it.each([0, 1001, -1])('refuses maxResults %i with InvalidParameterException in ECR\'s words', async (maxResults) => {
    const f = await failure(paging.client('admin').send(new DescribeRepositoriesCommand({ maxResults })));
    expect(f.name).toBe('InvalidParameterException');
    const bound = maxResults > 1000 ? 'less than or equal to 1000' : 'greater than or equal to 1';
    expect(f.message).toBe(invalidAt('maxResults', `Member must have value ${bound}`));
  });

  it('refuses a nextToken it did not give', async () => {
    const f = await failure(paging.client('admin').send(new DescribeRepositoriesCommand({ nextToken: 'not-a-token' })));
    expect(f.name).toBe('InvalidParameterException');
    expect(f.message).toContain('nextToken');
  });

  it('refuses more than 100 names, and an invalid one, with InvalidParameterException', async () => {
    const many = Array.from({ length: 101 }, (_, i) => `page/n${i}`);
    const f = await failure(paging.client('admin').send(new DescribeRepositoriesCommand({ repositoryNames: many })));
    expect(f.name).toBe('InvalidParameterException');
    expect(f.message).toBe(invalidAt('repositoryNames', 'Member must have length less than or equal to 100'));
    const bad = await failure(paging.client('admin').send(new DescribeRepositoriesCommand({ repositoryNames: ['Page/Bad'] })));
    expect(bad.name).toBe('InvalidParameterException');
    expect(bad.message.startsWith("Invalid parameter at 'repositoryNames.1.member' failed to satisfy constraint: 'Member must satisfy regular expression pattern: ")).toBe(true);
  });

  it('shows nothing of another registry id', async () => {
    const c = paging.client('admin');
    expect((await c.send(new DescribeRepositoriesCommand({ registryId: '210987654321' }))).repositories).toEqual([]);
    const f = await failure(c.send(new DescribeRepositoriesCommand({ registryId: '210987654321', repositoryNames: ['page/repo-01'] })));
    expect(f.name).toBe('RepositoryNotFoundException');
    expect(f.message).toBe(notFound('page/repo-01', '210987654321'));
  });

  it('lists only the repositories the caller may pull, and refuses to describe another by name', async () => {
    const limited = await startEcrRegistry({
      access: { admins: ['admin'], repositories: { 'team/**': { users: { reader: ['pull'] } } } },
    });
    try {
      const a = limited.client('admin');
      for (const name of ['ops/a', 'team/a', 'ops/b', 'team/b', 'zz/c']) await a.send(new CreateRepositoryCommand({ repositoryName: name }));
      const r = limited.client('reader');
      const seen: string[] = [];
      const pages: number[] = [];
      let nextToken: string | undefined;
      for (let n = 0; n < 10; n++) {
        const out = await r.send(new DescribeRepositoriesCommand({ maxResults: 1, ...(nextToken ? { nextToken } : {}) }));
        pages.push(out.repositories!.length);
        seen.push(...out.repositories!.map((x) => x.repositoryName!));
        nextToken = out.nextToken;
        if (!nextToken) break;
      }
      expect(seen).toEqual(['team/a', 'team/b']);
      expect(pages).toEqual([1, 1]); // no empty page at the end
      const f = await failure(r.send(new DescribeRepositoriesCommand({ repositoryNames: ['ops/a'] })));
      expect(f.name).toBe('AccessDeniedException');
      expect(f.message).toBe(denied('reader', 'DescribeRepositories', 'ops/a'));
    } finally {
      await limited.destroy();
    }
  });
});

describe('DeleteRepository', () => {
  it('deletes an empty repository and answers it as it was', async () => {
    const created = await create('team/delete-empty');
    const out = await admin.send(new DeleteRepositoryCommand({ repositoryName: 'team/delete-empty' }));
    expect(out.repository).toEqual(created);
    const f = await failure(admin.send(new DescribeRepositoriesCommand({ repositoryNames: ['team/delete-empty'] })));
    expect(f.name).toBe('RepositoryNotFoundException');
    // The name is free again.
    const again = await create('team/delete-empty');
    expect(again.createdAt!.getTime()).toBeGreaterThanOrEqual(created.createdAt!.getTime());
  });

  it('refuses a repository with images without force (RepositoryNotEmptyException), and deletes it and its images with force', async () => {
    await create('team/delete-full');
    const auth = await awsLogin(registry);
    await pushImage(registry, auth, 'team/delete-full', 'v1', 'delete-full');
    const f = await failure(admin.send(new DeleteRepositoryCommand({ repositoryName: 'team/delete-full' })));
    expect(f.name).toBe('RepositoryNotEmptyException');
    expect(f.message).toBe(`The repository with name 'team/delete-full' in registry with id '${ACCOUNT}' cannot be deleted because it still contains images`);
    expect((await admin.send(new ListImagesCommand({ repositoryName: 'team/delete-full' }))).imageIds).toHaveLength(1);

    const out = await dev.send(new DeleteRepositoryCommand({ repositoryName: 'team/delete-full', force: true }));
    expect(out.repository!.repositoryName).toBe('team/delete-full');
    const gone = await failure(admin.send(new ListImagesCommand({ repositoryName: 'team/delete-full' })));
    expect(gone.name).toBe('RepositoryNotFoundException');
    // Recreated, it starts empty: the old images went with it.
    await create('team/delete-full');
    expect((await admin.send(new ListImagesCommand({ repositoryName: 'team/delete-full' }))).imageIds).toEqual([]);
  });

  it('wants the delete right as well as manage to force away a repository with images', async () => {
    const custom = await startEcrRegistry({
      access: { admins: ['admin'], repositories: { 'mg/**': { users: { reader: ['pull', 'push', 'manage'] } }, '**': { authenticated: ['pull'] } } },
    });
    try {
      const manager = custom.client('reader');
      await manager.send(new CreateRepositoryCommand({ repositoryName: 'mg/full' }));
      await manager.send(new CreateRepositoryCommand({ repositoryName: 'mg/empty' }));
      await pushImage(custom, await awsLogin(custom, 'reader'), 'mg/full', 'v1', 'manage-no-delete');
      const forced = await failure(manager.send(new DeleteRepositoryCommand({ repositoryName: 'mg/full', force: true })));
      expect(forced.name).toBe('AccessDeniedException');
      expect(forced.message).toBe(denied('reader', 'DeleteRepository', 'mg/full'));
      const plain = await failure(manager.send(new DeleteRepositoryCommand({ repositoryName: 'mg/full' })));
      expect(plain.name).toBe('RepositoryNotEmptyException');
      expect((await custom.client('admin').send(new ListImagesCommand({ repositoryName: 'mg/full' }))).imageIds).toHaveLength(1);
      // An empty repository takes manage alone, with force or without.
      expect((await manager.send(new DeleteRepositoryCommand({ repositoryName: 'mg/empty', force: true }))).repository!.repositoryName).toBe('mg/empty');
    } finally {
      await custom.destroy();
    }
  });

  it('answers RepositoryNotFoundException for a repository it does not hold', async () => {
    const f = await failure(admin.send(new DeleteRepositoryCommand({ repositoryName: 'team/never', force: true })));
    expect(f.name).toBe('RepositoryNotFoundException');
    expect(f.message).toBe(notFound('team/never'));
  });

  it('refuses an invalid name with InvalidParameterException', async () => {
    const f = await failure(admin.send(new DeleteRepositoryCommand({ repositoryName: 'UPPER' })));
    expect(f.name).toBe('InvalidParameterException');
    expect(f.message).toContain("Invalid parameter at 'repositoryName'");
  });

  it('refuses the reader and the dev key outside team/, and leaves the repository', async () => {
    await create('team/delete-guarded');
    await create('ops/delete-guarded');
    const r = await failure(reader.send(new DeleteRepositoryCommand({ repositoryName: 'team/delete-guarded' })));
    expect(r.name).toBe('AccessDeniedException');
    expect(r.message).toBe(denied('reader', 'DeleteRepository', 'team/delete-guarded'));
    const d = await failure(dev.send(new DeleteRepositoryCommand({ repositoryName: 'ops/delete-guarded' })));
    expect(d.name).toBe('AccessDeniedException');
    const left = await admin.send(new DescribeRepositoriesCommand({ repositoryNames: ['team/delete-guarded', 'ops/delete-guarded'] }));
    expect(left.repositories).toHaveLength(2);
  });
});

describe('PutImageTagMutability', () => {
  it('sets each mutability and answers it; DescribeRepositories shows it', async () => {
    await create('team/mutability');
    const out = await dev.send(new PutImageTagMutabilityCommand({ repositoryName: 'team/mutability', imageTagMutability: 'IMMUTABLE' }));
    expect(out.registryId).toBe(ACCOUNT);
    expect(out.repositoryName).toBe('team/mutability');
    expect(out.imageTagMutability).toBe('IMMUTABLE');
    expect(out.imageTagMutabilityExclusionFilters).toBeUndefined();

    const filters = [{ filterType: 'WILDCARD' as const, filter: 'latest' }, { filterType: 'WILDCARD' as const, filter: 'nightly-*' }];
    const excl = await admin.send(
      new PutImageTagMutabilityCommand({ repositoryName: 'team/mutability', imageTagMutability: 'IMMUTABLE_WITH_EXCLUSION', imageTagMutabilityExclusionFilters: filters }),
    );
    expect(excl.imageTagMutability).toBe('IMMUTABLE_WITH_EXCLUSION');
    expect(excl.imageTagMutabilityExclusionFilters).toEqual(filters);
    let repo = (await admin.send(new DescribeRepositoriesCommand({ repositoryNames: ['team/mutability'] }))).repositories![0]!;
    expect(repo.imageTagMutability).toBe('IMMUTABLE_WITH_EXCLUSION');
    expect(repo.imageTagMutabilityExclusionFilters).toEqual(filters);

    // Back to MUTABLE: the filters go.
    await admin.send(new PutImageTagMutabilityCommand({ repositoryName: 'team/mutability', imageTagMutability: 'MUTABLE' }));
    repo = (await admin.send(new DescribeRepositoriesCommand({ repositoryNames: ['team/mutability'] }))).repositories![0]!;
    expect(repo.imageTagMutability).toBe('MUTABLE');
    expect(repo.imageTagMutabilityExclusionFilters).toBeUndefined();
  });

  it('refuses what ECR refuses: no mutability, an unknown one, filters that do not belong, more than 5 filters', async () => {
    await create('team/mutability-bad');
    const none = await failure(admin.send(new PutImageTagMutabilityCommand({ repositoryName: 'team/mutability-bad' } as never)));
    expect(none.name).toBe('InvalidParameterException');
    expect(none.message).toBe(invalidAt('imageTagMutability', 'Member must not be null'));
    const unknown = await failure(admin.send(new PutImageTagMutabilityCommand({ repositoryName: 'team/mutability-bad', imageTagMutability: 'FROZEN' as never })));
    expect(unknown.name).toBe('InvalidParameterException');
    expect(unknown.message).toContain("Invalid parameter at 'imageTagMutability' failed to satisfy constraint: 'Member must satisfy enum value set: ");
    const stray = await failure(
      admin.send(
        new PutImageTagMutabilityCommand({ repositoryName: 'team/mutability-bad', imageTagMutability: 'MUTABLE', imageTagMutabilityExclusionFilters: [{ filterType: 'WILDCARD', filter: 'x' }] }),
      ),
    );
    expect(stray.name).toBe('InvalidParameterException');
    const six = Array.from({ length: 6 }, (_, i) => ({ filterType: 'WILDCARD' as const, filter: `f${i}` }));
    const tooMany = await failure(
      admin.send(new PutImageTagMutabilityCommand({ repositoryName: 'team/mutability-bad', imageTagMutability: 'MUTABLE_WITH_EXCLUSION', imageTagMutabilityExclusionFilters: six })),
    );
    expect(tooMany.name).toBe('InvalidParameterException');
    expect(tooMany.message).toBe(invalidAt('imageTagMutabilityExclusionFilters', 'Member must have length less than or equal to 5'));
    const repo = (await admin.send(new DescribeRepositoriesCommand({ repositoryNames: ['team/mutability-bad'] }))).repositories![0]!;
    expect(repo.imageTagMutability).toBe('MUTABLE');
  });

  it('answers RepositoryNotFoundException, and refuses the reader and the dev key outside team/', async () => {
    const f = await failure(admin.send(new PutImageTagMutabilityCommand({ repositoryName: 'team/no-such', imageTagMutability: 'IMMUTABLE' })));
    expect(f.name).toBe('RepositoryNotFoundException');
    expect(f.message).toBe(notFound('team/no-such'));
    await create('ops/mutability');
    const r = await failure(reader.send(new PutImageTagMutabilityCommand({ repositoryName: 'ops/mutability', imageTagMutability: 'IMMUTABLE' })));
    expect(r.name).toBe('AccessDeniedException');
    expect(r.message).toBe(denied('reader', 'PutImageTagMutability', 'ops/mutability'));
    const d = await failure(dev.send(new PutImageTagMutabilityCommand({ repositoryName: 'ops/mutability', imageTagMutability: 'IMMUTABLE' })));
    expect(d.name).toBe('AccessDeniedException');
    const repo = (await admin.send(new DescribeRepositoriesCommand({ repositoryNames: ['ops/mutability'] }))).repositories![0]!;
    expect(repo.imageTagMutability).toBe('MUTABLE');
  });
});

describe('PutImageScanningConfiguration', () => {
  it('stores scanOnPush and answers it', async () => {
    await create('team/scanning');
    const out = await dev.send(new PutImageScanningConfigurationCommand({ repositoryName: 'team/scanning', imageScanningConfiguration: { scanOnPush: true } }));
    expect(out).toMatchObject({ registryId: ACCOUNT, repositoryName: 'team/scanning', imageScanningConfiguration: { scanOnPush: true } });
    let repo = (await admin.send(new DescribeRepositoriesCommand({ repositoryNames: ['team/scanning'] }))).repositories![0]!;
    expect(repo.imageScanningConfiguration).toEqual({ scanOnPush: true });
    await admin.send(new PutImageScanningConfigurationCommand({ repositoryName: 'team/scanning', imageScanningConfiguration: { scanOnPush: false } }));
    repo = (await admin.send(new DescribeRepositoriesCommand({ repositoryNames: ['team/scanning'] }))).repositories![0]!;
    expect(repo.imageScanningConfiguration).toEqual({ scanOnPush: false });
  });

  it('wants the configuration, answers RepositoryNotFoundException, refuses the reader and the dev key outside team/', async () => {
    const missing = await failure(admin.send(new PutImageScanningConfigurationCommand({ repositoryName: 'team/scanning' } as never)));
    expect(missing.name).toBe('ValidationException');
    expect(missing.message).toBe("1 validation error detected: Value null at 'imageScanningConfiguration' failed to satisfy constraint: Member must not be null");
    const f = await failure(admin.send(new PutImageScanningConfigurationCommand({ repositoryName: 'team/no-scan', imageScanningConfiguration: { scanOnPush: true } })));
    expect(f.name).toBe('RepositoryNotFoundException');
    expect(f.message).toBe(notFound('team/no-scan'));
    await create('ops/scanning');
    const r = await failure(reader.send(new PutImageScanningConfigurationCommand({ repositoryName: 'ops/scanning', imageScanningConfiguration: { scanOnPush: true } })));
    expect(r.name).toBe('AccessDeniedException');
    const d = await failure(dev.send(new PutImageScanningConfigurationCommand({ repositoryName: 'ops/scanning', imageScanningConfiguration: { scanOnPush: true } })));
    expect(d.name).toBe('AccessDeniedException');
    expect(d.message).toBe(denied('dev', 'PutImageScanningConfiguration', 'ops/scanning'));
  });
});

describe('Set/Get/DeleteRepositoryPolicy', () => {
  it('stores a policy, answers it, and deletes it', async () => {
    await create('team/policy');
    const set = await dev.send(new SetRepositoryPolicyCommand({ repositoryName: 'team/policy', policyText: POLICY }));
    expect(set).toMatchObject({ registryId: ACCOUNT, repositoryName: 'team/policy', policyText: POLICY });
    const got = await reader.send(new GetRepositoryPolicyCommand({ repositoryName: 'team/policy' }));
    expect(got).toMatchObject({ registryId: ACCOUNT, repositoryName: 'team/policy', policyText: POLICY });

    const replaced = JSON.stringify({ Statement: { Effect: 'Deny', Principal: '*', Action: 'ecr:*' } });
    await admin.send(new SetRepositoryPolicyCommand({ repositoryName: 'team/policy', policyText: replaced, force: true }));
    expect((await admin.send(new GetRepositoryPolicyCommand({ repositoryName: 'team/policy' }))).policyText).toBe(replaced);

    const deleted = await admin.send(new DeleteRepositoryPolicyCommand({ repositoryName: 'team/policy' }));
    expect(deleted).toMatchObject({ registryId: ACCOUNT, repositoryName: 'team/policy', policyText: replaced });
    const message = `Repository policy does not exist for the repository with name 'team/policy' in the registry with id '${ACCOUNT}'`;
    const gone = await failure(admin.send(new GetRepositoryPolicyCommand({ repositoryName: 'team/policy' })));
    expect(gone.name).toBe('RepositoryPolicyNotFoundException');
    expect(gone.message).toBe(message);
    const again = await failure(admin.send(new DeleteRepositoryPolicyCommand({ repositoryName: 'team/policy' })));
    expect(again.name).toBe('RepositoryPolicyNotFoundException');
    expect(again.message).toBe(message);
  });

  it.each([
    ['not JSON', '{"Statement":'],
    ['no statement', '{"Version":"2012-10-17"}'],
    ['an effect ECR does not know', JSON.stringify({ Statement: [{ Effect: 'Maybe', Principal: '*', Action: 'ecr:*' }] })],
    ['a Resource (a repository policy has none)', JSON.stringify({ Statement: [{ Effect: 'Allow', Principal: '*', Action: 'ecr:*', Resource: '*' }] })],
  ])('refuses a policy with %s', async (_what, policyText) => {
    await create(`team/policy-bad-${policyText.length}`);
    const f = await failure(admin.send(new SetRepositoryPolicyCommand({ repositoryName: `team/policy-bad-${policyText.length}`, policyText })));
    expect(f.name).toBe('InvalidParameterException');
    expect(f.message).toBe("Invalid parameter at 'PolicyText' failed to satisfy constraint: 'Invalid repository policy provided'");
    const none = await failure(admin.send(new GetRepositoryPolicyCommand({ repositoryName: `team/policy-bad-${policyText.length}` })));
    expect(none.name).toBe('RepositoryPolicyNotFoundException');
  });

  it('refuses a policy over 10240 characters with InvalidParameterException', async () => {
    await create('team/policy-long');
    const policyText = JSON.stringify({ Statement: [{ Effect: 'Allow', Principal: '*', Action: 'ecr:*', Sid: 'x'.repeat(10_300) }] });
    const f = await failure(admin.send(new SetRepositoryPolicyCommand({ repositoryName: 'team/policy-long', policyText })));
    expect(f.name).toBe('InvalidParameterException');
    expect(f.message).toBe(invalidAt('policyText', 'Member must have length less than or equal to 10240'));
  });

  it('answers RepositoryNotFoundException for each of the three', async () => {
    for (const command of [
      new SetRepositoryPolicyCommand({ repositoryName: 'team/no-policy-repo', policyText: POLICY }),
      new GetRepositoryPolicyCommand({ repositoryName: 'team/no-policy-repo' }),
      new DeleteRepositoryPolicyCommand({ repositoryName: 'team/no-policy-repo' }),
    ]) {
      const f = await failure(admin.send(command as never));
      expect(f.name).toBe('RepositoryNotFoundException');
      expect(f.message).toBe(notFound('team/no-policy-repo'));
    }
  });

  it('lets the reader read a policy, never set or delete one; the dev key is refused outside team/', async () => {
    await create('ops/policy');
    await admin.send(new SetRepositoryPolicyCommand({ repositoryName: 'ops/policy', policyText: POLICY }));
    expect((await reader.send(new GetRepositoryPolicyCommand({ repositoryName: 'ops/policy' }))).policyText).toBe(POLICY);
    const set = await failure(reader.send(new SetRepositoryPolicyCommand({ repositoryName: 'ops/policy', policyText: POLICY })));
    expect(set.name).toBe('AccessDeniedException');
    const del = await failure(reader.send(new DeleteRepositoryPolicyCommand({ repositoryName: 'ops/policy' })));
    expect(del.name).toBe('AccessDeniedException');
    expect(del.message).toBe(denied('reader', 'DeleteRepositoryPolicy', 'ops/policy'));
    const devSet = await failure(dev.send(new SetRepositoryPolicyCommand({ repositoryName: 'ops/policy', policyText: POLICY })));
    expect(devSet.name).toBe('AccessDeniedException');
    const devDel = await failure(dev.send(new DeleteRepositoryPolicyCommand({ repositoryName: 'ops/policy' })));
    expect(devDel.name).toBe('AccessDeniedException');
    expect((await admin.send(new GetRepositoryPolicyCommand({ repositoryName: 'ops/policy' }))).policyText).toBe(POLICY);
  });
});

describe('TagResource, UntagResource, ListTagsForResource', () => {
  it('adds tags (a known key taking the new value), lists them, and removes them by key', async () => {
    const repo = await create('team/tagged');
    const resourceArn = repo.repositoryArn!;
    expect((await admin.send(new ListTagsForResourceCommand({ resourceArn }))).tags).toEqual([]);
    expect(await dev.send(new TagResourceCommand({ resourceArn, tags: [{ Key: 'env', Value: 'dev' }, { Key: 'owner', Value: 'web@example.com' }] }))).toMatchObject({});
    await admin.send(new TagResourceCommand({ resourceArn, tags: [{ Key: 'env', Value: 'prod' }, { Key: 'tier', Value: '' }] }));
    const listed = await reader.send(new ListTagsForResourceCommand({ resourceArn }));
    expect(listed.tags).toEqual([{ Key: 'env', Value: 'prod' }, { Key: 'owner', Value: 'web@example.com' }, { Key: 'tier', Value: '' }]);

    await dev.send(new UntagResourceCommand({ resourceArn, tagKeys: ['owner', 'not-there'] }));
    expect((await admin.send(new ListTagsForResourceCommand({ resourceArn }))).tags).toEqual([{ Key: 'env', Value: 'prod' }, { Key: 'tier', Value: '' }]);
  });

  it('refuses an ARN that is not one of this registry\'s repositories', async () => {
    for (const resourceArn of ['arn:aws:ecr:eu-west-1:123456789012:repository/team/tagged', `arn:aws:ecr:${REGION}:210987654321:repository/team/tagged`, 'team/tagged', arn('Bad/Name')]) {
      const f = await failure(admin.send(new ListTagsForResourceCommand({ resourceArn })));
      expect(f.name, resourceArn).toBe('InvalidParameterException');
      expect(f.message).toContain("Invalid parameter at 'resourceArn'");
    }
    const tag = await failure(admin.send(new TagResourceCommand({ resourceArn: 'arn:aws:s3:::bucket', tags: [{ Key: 'a', Value: 'b' }] })));
    expect(tag.name).toBe('InvalidParameterException');
    const untag = await failure(admin.send(new UntagResourceCommand({ resourceArn: 'arn:aws:s3:::bucket', tagKeys: ['a'] })));
    expect(untag.name).toBe('InvalidParameterException');
  });

  it('answers RepositoryNotFoundException for the ARN of a repository it does not hold', async () => {
    const resourceArn = arn('team/untagged-ghost');
    for (const command of [
      new TagResourceCommand({ resourceArn, tags: [{ Key: 'a', Value: 'b' }] }),
      new UntagResourceCommand({ resourceArn, tagKeys: ['a'] }),
      new ListTagsForResourceCommand({ resourceArn }),
    ]) {
      const f = await failure(admin.send(command as never));
      expect(f.name).toBe('RepositoryNotFoundException');
      expect(f.message).toBe(notFound('team/untagged-ghost'));
    }
  });

  it('refuses invalid tags and keys, and more than 50 tags in all', async () => {
    const repo = await create('team/tag-limits');
    const resourceArn = repo.repositoryArn!;
    const reserved = await failure(admin.send(new TagResourceCommand({ resourceArn, tags: [{ Key: 'AWS:thing', Value: 'x' }] })));
    expect(reserved.name).toBe('InvalidTagParameterException');
    const longKey = await failure(admin.send(new TagResourceCommand({ resourceArn, tags: [{ Key: 'k'.repeat(129), Value: 'x' }] })));
    expect(longKey.name).toBe('InvalidTagParameterException');
    const badChars = await failure(admin.send(new TagResourceCommand({ resourceArn, tags: [{ Key: 'a*b', Value: 'x' }] })));
    expect(badChars.name).toBe('InvalidTagParameterException');
    const twice = await failure(admin.send(new TagResourceCommand({ resourceArn, tags: [{ Key: 'a', Value: '1' }, { Key: 'a', Value: '2' }] })));
    expect(twice.name).toBe('InvalidTagParameterException');
    const emptyKey = await failure(admin.send(new UntagResourceCommand({ resourceArn, tagKeys: [''] })));
    expect(emptyKey.name).toBe('InvalidTagParameterException');
    const noTags = await failure(admin.send(new TagResourceCommand({ resourceArn } as never)));
    expect(noTags.name).toBe('InvalidParameterException');
    expect(noTags.message).toBe(invalidAt('tags', 'Member must not be null'));

    await admin.send(new TagResourceCommand({ resourceArn, tags: Array.from({ length: 45 }, (_, i) => ({ Key: `k${i}`, Value: 'v' })) }));
    const over = await failure(admin.send(new TagResourceCommand({ resourceArn, tags: Array.from({ length: 6 }, (_, i) => ({ Key: `n${i}`, Value: 'v' })) })));
    expect(over.name).toBe('TooManyTagsException');
    expect((await admin.send(new ListTagsForResourceCommand({ resourceArn }))).tags).toHaveLength(45);
    // Replacing values of keys it has is no new tag.
    await admin.send(new TagResourceCommand({ resourceArn, tags: Array.from({ length: 5 }, (_, i) => ({ Key: `k${i}`, Value: 'w' })) }));
    await admin.send(new TagResourceCommand({ resourceArn, tags: Array.from({ length: 5 }, (_, i) => ({ Key: `n${i}`, Value: 'v' })) }));
    expect((await admin.send(new ListTagsForResourceCommand({ resourceArn }))).tags).toHaveLength(50);
  });

  it('lets the reader list tags, never change them; the dev key is refused outside team/', async () => {
    const repo = await create('ops/tagged');
    const resourceArn = repo.repositoryArn!;
    await admin.send(new TagResourceCommand({ resourceArn, tags: [{ Key: 'env', Value: 'ops' }] }));
    expect((await reader.send(new ListTagsForResourceCommand({ resourceArn }))).tags).toEqual([{ Key: 'env', Value: 'ops' }]);
    const r = await failure(reader.send(new TagResourceCommand({ resourceArn, tags: [{ Key: 'x', Value: 'y' }] })));
    expect(r.name).toBe('AccessDeniedException');
    expect(r.message).toBe(denied('reader', 'TagResource', 'ops/tagged'));
    const ru = await failure(reader.send(new UntagResourceCommand({ resourceArn, tagKeys: ['env'] })));
    expect(ru.name).toBe('AccessDeniedException');
    const d = await failure(dev.send(new TagResourceCommand({ resourceArn, tags: [{ Key: 'x', Value: 'y' }] })));
    expect(d.name).toBe('AccessDeniedException');
    const du = await failure(dev.send(new UntagResourceCommand({ resourceArn, tagKeys: ['env'] })));
    expect(du.name).toBe('AccessDeniedException');
    expect(du.message).toBe(denied('dev', 'UntagResource', 'ops/tagged'));
    expect((await admin.send(new ListTagsForResourceCommand({ resourceArn }))).tags).toEqual([{ Key: 'env', Value: 'ops' }]);
  });
});
