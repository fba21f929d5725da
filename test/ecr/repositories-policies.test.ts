import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ACCOUNT, LIFECYCLE_POLICY, REGION, REPOSITORY_POLICY, openFixture, type EcrFixture } from './repositories-support.js';

const arn = (name: string) => `arn:aws:ecr:${REGION}:${ACCOUNT}:repository/${name}`;
const REPO = 'app/web';

describe('ECR repository policies, resource tags, lifecycle policies and the registry', () => {
  let f: EcrFixture;
  beforeEach(async () => {
    f = await openFixture();
    await f.call('CreateRepository', { repositoryName: REPO });
  });
  afterEach(async () => {
    await f.close();
  });

  describe('repository policy', () => {
    it('is set, read and deleted, each answering the text', async () => {
      const set = await f.call('SetRepositoryPolicy', { repositoryName: REPO, policyText: REPOSITORY_POLICY, force: true });
      expect(set).toEqual({ registryId: ACCOUNT, repositoryName: REPO, policyText: REPOSITORY_POLICY });
      expect(await f.call('GetRepositoryPolicy', { repositoryName: REPO })).toEqual(set);
      expect(await f.call('DeleteRepositoryPolicy', { repositoryName: REPO })).toEqual(set);
      const gone = await f.fails('GetRepositoryPolicy', { repositoryName: REPO });
      expect(gone.type).toBe('RepositoryPolicyNotFoundException');
      expect(gone.message).toBe(`Repository policy does not exist for the repository with name '${REPO}' in the registry with id '${ACCOUNT}'`);
      expect((await f.fails('DeleteRepositoryPolicy', { repositoryName: REPO })).type).toBe('RepositoryPolicyNotFoundException');
    });

    it("refuses what is not a resource policy, with ECR's message", async () => {
      const statement = { Effect: 'Allow', Principal: '*', Action: 'ecr:BatchGetImage' };
      for (const text of [
        'not json',
        '[]',
        JSON.stringify({ Version: '2012-10-17' }),
        JSON.stringify({ Statement: [] }),
        JSON.stringify({ Statement: [{ ...statement, Effect: 'Maybe' }] }),
        JSON.stringify({ Statement: [{ Effect: 'Allow', Action: 'ecr:*' }] }),
        JSON.stringify({ Statement: [{ Effect: 'Allow', Principal: '*' }] }),
        JSON.stringify({ Statement: [{ ...statement, Resource: '*' }] }),
        JSON.stringify({ Version: '2020-01-01', Statement: [statement] }),
      ]) {
        const err = await f.fails('SetRepositoryPolicy', { repositoryName: REPO, policyText: text });
        expect(err.type, text).toBe('InvalidParameterException');
        expect(err.message).toBe("Invalid parameter at 'PolicyText' failed to satisfy constraint: 'Invalid repository policy provided'");
      }
      // One statement as an object is a policy too.
      await f.call('SetRepositoryPolicy', { repositoryName: REPO, policyText: JSON.stringify({ Statement: statement }) });
      const long = await f.fails('SetRepositoryPolicy', { repositoryName: REPO, policyText: ' '.repeat(10241) });
      expect(long.message).toContain("at 'policyText' failed to satisfy constraint: Member must have length less than or equal to 10240");
    });

    it('needs manage to set or delete, pull to read, and an existing repository', async () => {
      await f.call('SetRepositoryPolicy', { repositoryName: REPO, policyText: REPOSITORY_POLICY });
      const pullOnly = { deny: [`${REPO}:manage`] };
      expect((await f.fails('SetRepositoryPolicy', { repositoryName: REPO, policyText: REPOSITORY_POLICY }, pullOnly)).type).toBe('AccessDeniedException');
      expect((await f.fails('DeleteRepositoryPolicy', { repositoryName: REPO }, pullOnly)).type).toBe('AccessDeniedException');
      expect((await f.call('GetRepositoryPolicy', { repositoryName: REPO }, pullOnly)).policyText).toBe(REPOSITORY_POLICY);
      expect((await f.fails('GetRepositoryPolicy', { repositoryName: REPO }, { deny: [`${REPO}:pull`] })).type).toBe('AccessDeniedException');
      expect((await f.fails('SetRepositoryPolicy', { repositoryName: 'app/none', policyText: REPOSITORY_POLICY })).type).toBe('RepositoryNotFoundException');
      expect((await f.fails('GetRepositoryPolicy', { repositoryName: 'app/none' })).type).toBe('RepositoryNotFoundException');
    });
  });

  describe('resource tags', () => {
    it('are added (a key again replaces its value), listed and removed by key', async () => {
      expect(await f.call('TagResource', { resourceArn: arn(REPO), tags: [{ Key: 'team', Value: 'web' }, { Key: 'env', Value: 'dev' }] })).toEqual({});
      await f.call('TagResource', { resourceArn: arn(REPO), tags: [{ Key: 'env', Value: 'prod' }] });
      expect(await f.call('ListTagsForResource', { resourceArn: arn(REPO) })).toEqual({
        tags: [
          { Key: 'team', Value: 'web' },
          { Key: 'env', Value: 'prod' },
        ],
      });
      expect(await f.call('UntagResource', { resourceArn: arn(REPO), tagKeys: ['team', 'absent'] })).toEqual({});
      expect(await f.call('ListTagsForResource', { resourceArn: arn(REPO) })).toEqual({ tags: [{ Key: 'env', Value: 'prod' }] });
    });

    it('count towards 50 with those the repository has', async () => {
      await f.call('TagResource', { resourceArn: arn(REPO), tags: Array.from({ length: 49 }, (_, i) => ({ Key: `k${i}`, Value: '' })) });
      await f.call('TagResource', { resourceArn: arn(REPO), tags: [{ Key: 'k0', Value: 'again' }, { Key: 'k49', Value: '' }] });
      const over = await f.fails('TagResource', { resourceArn: arn(REPO), tags: [{ Key: 'k50', Value: '' }] });
      expect(over.type).toBe('TooManyTagsException');
      expect(((await f.call('ListTagsForResource', { resourceArn: arn(REPO) })).tags as unknown[]).length).toBe(50);
    });

    it('name one of this registry\'s repositories by its ARN', async () => {
      for (const resourceArn of [
        'nonsense',
        `arn:aws:ecr:${REGION}:999999999999:repository/${REPO}`,
        `arn:aws:ecr:us-west-2:${ACCOUNT}:repository/${REPO}`,
        `arn:aws:ecr:${REGION}:${ACCOUNT}:repository/`,
        `arn:aws:ecr:${REGION}:${ACCOUNT}:repository/Bad_Name`,
      ]) {
        const err = await f.fails('ListTagsForResource', { resourceArn });
        expect(err.type, resourceArn).toBe('InvalidParameterException');
      }
      expect((await f.fails('TagResource', { resourceArn: arn('app/none'), tags: [{ Key: 'a', Value: 'b' }] })).type).toBe('RepositoryNotFoundException');
      expect((await f.fails('UntagResource', { resourceArn: arn(REPO) })).message).toContain("Value null at 'tagKeys'");
      expect((await f.fails('UntagResource', { resourceArn: arn(REPO), tagKeys: ['aws:x'] })).type).toBe('InvalidTagParameterException');
    });

    it('need manage to change and pull to list', async () => {
      const pullOnly = { deny: [`${REPO}:manage`] };
      expect((await f.fails('TagResource', { resourceArn: arn(REPO), tags: [{ Key: 'a', Value: 'b' }] }, pullOnly)).type).toBe('AccessDeniedException');
      expect((await f.fails('UntagResource', { resourceArn: arn(REPO), tagKeys: ['a'] }, pullOnly)).type).toBe('AccessDeniedException');
      expect(await f.call('ListTagsForResource', { resourceArn: arn(REPO) }, pullOnly)).toEqual({ tags: [] });
      expect((await f.fails('ListTagsForResource', { resourceArn: arn(REPO) }, { deny: [`${REPO}:pull`] })).type).toBe('AccessDeniedException');
    });
  });

  describe('lifecycle policy', () => {
    it('is put, read with lastEvaluatedAt in epoch seconds, and deleted', async () => {
      const put = await f.call('PutLifecyclePolicy', { repositoryName: REPO, lifecyclePolicyText: LIFECYCLE_POLICY });
      expect(put).toEqual({ registryId: ACCOUNT, repositoryName: REPO, lifecyclePolicyText: LIFECYCLE_POLICY });
      const putAt = f.clock.now;
      expect(await f.repositories.withLifecyclePolicies()).toEqual([REPO]);
      f.clock.now += 5_000;
      const expected = { ...put, lastEvaluatedAt: putAt / 1000 };
      expect(await f.call('GetLifecyclePolicy', { repositoryName: REPO })).toEqual(expected);
      // A run that evaluated it moves lastEvaluatedAt.
      await f.repositories.noteLifecycleEvaluated(REPO, f.clock.now);
      expect((await f.call('GetLifecyclePolicy', { repositoryName: REPO })).lastEvaluatedAt).toBe(f.clock.now / 1000);
      expect(await f.call('DeleteLifecyclePolicy', { repositoryName: REPO })).toEqual({ ...put, lastEvaluatedAt: f.clock.now / 1000 });
      const gone = await f.fails('GetLifecyclePolicy', { repositoryName: REPO });
      expect(gone.type).toBe('LifecyclePolicyNotFoundException');
      expect(gone.message).toBe(`Lifecycle policy does not exist for the repository with name '${REPO}' in the registry with id '${ACCOUNT}'`);
      expect((await f.fails('DeleteLifecyclePolicy', { repositoryName: REPO })).type).toBe('LifecyclePolicyNotFoundException');
      expect(await f.repositories.withLifecyclePolicies()).toEqual([]);
    });

    it("refuses a policy ECR would, with the lifecycle checker's message, and keeps the one it had", async () => {
      await f.call('PutLifecyclePolicy', { repositoryName: REPO, lifecyclePolicyText: LIFECYCLE_POLICY });
      const bad = JSON.stringify({
        rules: [
          { rulePriority: 1, selection: { tagStatus: 'tagged', countType: 'imageCountMoreThan', countNumber: 3 }, action: { type: 'expire' } },
        ],
      });
      const err = await f.fails('PutLifecyclePolicy', { repositoryName: REPO, lifecyclePolicyText: bad });
      expect(err.type).toBe('InvalidParameterException');
      expect(err.message).toMatch(/^Invalid parameter at 'LifecyclePolicyText' failed to satisfy constraint: 'Lifecycle policy validation failure: /);
      const short = await f.fails('PutLifecyclePolicy', { repositoryName: REPO, lifecyclePolicyText: '{"rules":[]}' });
      expect(short.message).toContain("at 'lifecyclePolicyText' failed to satisfy constraint: Member must have length greater than or equal to 100");
      expect((await f.call('GetLifecyclePolicy', { repositoryName: REPO })).lifecyclePolicyText).toBe(LIFECYCLE_POLICY);
    });

    it('needs manage to put or delete, pull to read, and an existing repository', async () => {
      const pullOnly = { deny: [`${REPO}:manage`] };
      expect((await f.fails('PutLifecyclePolicy', { repositoryName: REPO, lifecyclePolicyText: LIFECYCLE_POLICY }, pullOnly)).type).toBe('AccessDeniedException');
      await f.call('PutLifecyclePolicy', { repositoryName: REPO, lifecyclePolicyText: LIFECYCLE_POLICY });
      expect((await f.call('GetLifecyclePolicy', { repositoryName: REPO }, pullOnly)).lifecyclePolicyText).toBe(LIFECYCLE_POLICY);
      expect((await f.fails('DeleteLifecyclePolicy', { repositoryName: REPO }, pullOnly)).type).toBe('AccessDeniedException');
      expect((await f.fails('GetLifecyclePolicy', { repositoryName: REPO }, { deny: [`${REPO}:pull`] })).type).toBe('AccessDeniedException');
      expect((await f.fails('PutLifecyclePolicy', { repositoryName: 'app/none', lifecyclePolicyText: LIFECYCLE_POLICY })).type).toBe('RepositoryNotFoundException');
      expect((await f.fails('GetLifecyclePolicy', { repositoryName: 'app/none' })).type).toBe('RepositoryNotFoundException');
      expect((await f.fails('GetLifecyclePolicy', { repositoryName: REPO, registryId: '999999999999' })).type).toBe('RepositoryNotFoundException');
    });
  });

  describe('registry policy and DescribeRegistry', () => {
    const policy = JSON.stringify({
      Version: '2012-10-17',
      Statement: [{ Effect: 'Allow', Principal: { AWS: 'arn:aws:iam::210987654321:root' }, Action: ['ecr:ReplicateImage'], Resource: [`arn:aws:ecr:${REGION}:${ACCOUNT}:repository/*`] }],
    });

    it('is put, read and deleted by a caller who manages the registry', async () => {
      expect((await f.fails('GetRegistryPolicy', {})).message).toBe(`Registry policy does not exist in the registry with id '${ACCOUNT}'`);
      expect(await f.call('PutRegistryPolicy', { policyText: policy })).toEqual({ registryId: ACCOUNT, policyText: policy });
      expect(await f.call('GetRegistryPolicy', {})).toEqual({ registryId: ACCOUNT, policyText: policy });
      expect(await f.call('DeleteRegistryPolicy', {})).toEqual({ registryId: ACCOUNT, policyText: policy });
      expect((await f.fails('DeleteRegistryPolicy', {})).type).toBe('RegistryPolicyNotFoundException');
    });

    it('refuses a caller who does not manage the registry, and a text that is not a policy', async () => {
      for (const op of ['PutRegistryPolicy', 'GetRegistryPolicy', 'DeleteRegistryPolicy']) {
        expect((await f.fails(op, { policyText: policy }, { registry: false })).type, op).toBe('AccessDeniedException');
      }
      expect(await f.repositories.registryPolicy()).toBeUndefined();
      const bad = await f.fails('PutRegistryPolicy', { policyText: '{"Statement":[]}' });
      expect(bad.message).toBe("Invalid parameter at 'PolicyText' failed to satisfy constraint: 'Invalid registry policy provided'");
      expect((await f.fails('PutRegistryPolicy', {})).type).toBe('ValidationException');
    });

    it('DescribeRegistry answers the id and no replication, to any signed-in caller', async () => {
      expect(await f.call('DescribeRegistry', {}, { registry: false, deny: [`${REPO}:pull`] })).toEqual({
        registryId: ACCOUNT,
        replicationConfiguration: { rules: [] },
      });
    });
  });
});
