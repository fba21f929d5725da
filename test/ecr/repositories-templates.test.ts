import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RegistryError } from '../../src/oci/errors.js';
import { RepositoryNotFoundError } from '../../src/registry/repository-rules.js';
import { ACCOUNT, LIFECYCLE_POLICY, REGION, REPOSITORY_POLICY, openFixture, type EcrFixture } from './repositories-support.js';

const arn = (name: string) => `arn:aws:ecr:${REGION}:${ACCOUNT}:repository/${name}`;
const KMS_KEY = `arn:aws:kms:${REGION}:${ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab`;

describe('ECR repository creation templates', () => {
  let f: EcrFixture;
  beforeEach(async () => {
    f = await openFixture();
  });
  afterEach(async () => {
    await f.close();
  });

  const template = (prefix: string, extra: Record<string, unknown> = {}) =>
    f.call('CreateRepositoryCreationTemplate', { prefix, appliedFor: ['CREATE_ON_PUSH'], ...extra });

  describe('the operations', () => {
    it("create, describe, update and delete a template, in ECR's shape", async () => {
      const created = await template('prod', {
        description: 'production images',
        imageTagMutability: 'IMMUTABLE',
        resourceTags: [{ Key: 'env', Value: 'prod' }],
        encryptionConfiguration: { encryptionType: 'KMS', kmsKey: KMS_KEY },
        repositoryPolicy: REPOSITORY_POLICY,
        lifecyclePolicy: LIFECYCLE_POLICY,
        customRoleArn: `arn:aws:iam::${ACCOUNT}:role/ecr-templates`,
      });
      const shape = {
        prefix: 'prod',
        description: 'production images',
        encryptionConfiguration: { encryptionType: 'KMS', kmsKey: KMS_KEY },
        resourceTags: [{ Key: 'env', Value: 'prod' }],
        imageTagMutability: 'IMMUTABLE',
        repositoryPolicy: REPOSITORY_POLICY,
        lifecyclePolicy: LIFECYCLE_POLICY,
        appliedFor: ['CREATE_ON_PUSH'],
        customRoleArn: `arn:aws:iam::${ACCOUNT}:role/ecr-templates`,
        createdAt: f.clock.now / 1000,
        updatedAt: f.clock.now / 1000,
      };
      expect(created).toEqual({ registryId: ACCOUNT, repositoryCreationTemplate: shape });
      expect(await f.call('DescribeRepositoryCreationTemplates', {})).toEqual({ registryId: ACCOUNT, repositoryCreationTemplates: [shape] });

      f.clock.now += 1000;
      const updated = await f.call('UpdateRepositoryCreationTemplate', {
        prefix: 'prod/',
        imageTagMutability: 'MUTABLE_WITH_EXCLUSION',
        imageTagMutabilityExclusionFilters: [{ filterType: 'WILDCARD', filter: 'release-*' }],
      });
      expect(updated.repositoryCreationTemplate).toEqual({
        ...shape,
        imageTagMutability: 'MUTABLE_WITH_EXCLUSION',
        imageTagMutabilityExclusionFilters: [{ filterType: 'WILDCARD', filter: 'release-*' }],
        updatedAt: f.clock.now / 1000,
      });
      // A mutability without exclusions drops the filters.
      const plain = await f.call('UpdateRepositoryCreationTemplate', { prefix: 'prod', imageTagMutability: 'IMMUTABLE' });
      expect(plain.repositoryCreationTemplate).not.toHaveProperty('imageTagMutabilityExclusionFilters');

      const deleted = await f.call('DeleteRepositoryCreationTemplate', { prefix: 'prod' });
      expect((deleted.repositoryCreationTemplate as { prefix: string }).prefix).toBe('prod');
      expect(await f.call('DescribeRepositoryCreationTemplates', {})).toEqual({ registryId: ACCOUNT, repositoryCreationTemplates: [] });
    });

    it('a template has the defaults it was not given', async () => {
      const out = await template('ROOT');
      expect(out.repositoryCreationTemplate).toEqual({
        prefix: 'ROOT',
        encryptionConfiguration: { encryptionType: 'AES256' },
        resourceTags: [],
        imageTagMutability: 'MUTABLE',
        appliedFor: ['CREATE_ON_PUSH'],
        createdAt: f.clock.now / 1000,
        updatedAt: f.clock.now / 1000,
      });
    });

    it('one prefix has one template, `prod` and `prod/` alike; an unknown one is not found', async () => {
      await template('prod');
      const again = await f.fails('CreateRepositoryCreationTemplate', { prefix: 'prod/', appliedFor: ['REPLICATION'] });
      expect(again.type).toBe('TemplateAlreadyExistsException');
      expect(again.message).toBe(`The repository creation template with prefix 'prod/' already exists in the registry with id '${ACCOUNT}'`);
      for (const op of ['UpdateRepositoryCreationTemplate', 'DeleteRepositoryCreationTemplate']) {
        const err = await f.fails(op, { prefix: 'staging' });
        expect(err.type, op).toBe('TemplateNotFoundException');
        expect(err.message).toBe(`The repository creation template with prefix 'staging' does not exist in the registry with id '${ACCOUNT}'`);
      }
    });

    it('describes the prefixes asked for, or pages through all', async () => {
      for (const p of ['a', 'b', 'c/d', 'ROOT']) await template(p);
      const some = await f.call('DescribeRepositoryCreationTemplates', { prefixes: ['c/d/', 'a', 'missing'] });
      expect((some.repositoryCreationTemplates as Array<{ prefix: string }>).map((t) => t.prefix)).toEqual(['c/d', 'a']);
      const first = await f.call('DescribeRepositoryCreationTemplates', { maxResults: 3 });
      expect((first.repositoryCreationTemplates as Array<{ prefix: string }>).map((t) => t.prefix)).toEqual(['ROOT', 'a', 'b']);
      const rest = await f.call('DescribeRepositoryCreationTemplates', { nextToken: first.nextToken });
      expect((rest.repositoryCreationTemplates as Array<{ prefix: string }>).map((t) => t.prefix)).toEqual(['c/d']);
      expect(rest.nextToken).toBeUndefined();
      expect((await f.fails('DescribeRepositoryCreationTemplates', { prefixes: ['a'], maxResults: 1 })).type).toBe('InvalidParameterException');
      expect((await f.fails('DescribeRepositoryCreationTemplates', { nextToken: '%%%' })).type).toBe('InvalidParameterException');
    });

    it('refuses bad input with the exception ECR gives', async () => {
      const prefix = await f.fails('CreateRepositoryCreationTemplate', { prefix: 'Prod', appliedFor: ['CREATE_ON_PUSH'] });
      expect(prefix.type).toBe('ValidationException');
      expect(prefix.message).toContain("Value 'Prod' at 'prefix' failed to satisfy constraint: Member must satisfy regular expression pattern");
      const applied = await f.fails('CreateRepositoryCreationTemplate', { prefix: 'prod' });
      expect(applied.message).toContain("Value null at 'appliedFor' failed to satisfy constraint: Member must not be null");
      const purpose = await f.fails('CreateRepositoryCreationTemplate', { prefix: 'prod', appliedFor: ['ON_PULL'] });
      expect(purpose.message).toContain("Value 'ON_PULL' at 'appliedFor.1.member' failed to satisfy constraint: Member must satisfy enum value set: [REPLICATION, PULL_THROUGH_CACHE, CREATE_ON_PUSH]");
      expect((await f.fails('CreateRepositoryCreationTemplate', { prefix: 'prod', appliedFor: [] })).type).toBe('InvalidParameterException');
      const kms = await f.fails('CreateRepositoryCreationTemplate', {
        prefix: 'prod',
        appliedFor: ['CREATE_ON_PUSH'],
        encryptionConfiguration: { encryptionType: 'KMS', kmsKey: 'alias/mine' },
      });
      expect(kms.type).toBe('ValidationException');
      for (const extra of [
        { lifecyclePolicy: '{"rules": "none"}' },
        { repositoryPolicy: '{"Statement": "none"}' },
        { imageTagMutability: 'IMMUTABLE_WITH_EXCLUSION' },
        { imageTagMutabilityExclusionFilters: [{ filterType: 'WILDCARD', filter: 'x*' }] },
      ]) {
        const err = await f.fails('CreateRepositoryCreationTemplate', { prefix: 'prod', appliedFor: ['CREATE_ON_PUSH'], ...extra });
        expect(err.type, JSON.stringify(extra)).toBe('InvalidParameterException');
      }
      const tags = await f.fails('CreateRepositoryCreationTemplate', { prefix: 'prod', appliedFor: ['CREATE_ON_PUSH'], resourceTags: [{ Key: 'aws:x', Value: '' }] });
      expect(tags.type).toBe('InvalidTagParameterException');
      expect((await f.call('DescribeRepositoryCreationTemplates', {})).repositoryCreationTemplates).toEqual([]);
    });

    it("need the right to manage the registry's settings", async () => {
      await template('prod');
      for (const [op, input] of [
        ['CreateRepositoryCreationTemplate', { prefix: 'dev', appliedFor: ['CREATE_ON_PUSH'] }],
        ['DescribeRepositoryCreationTemplates', {}],
        ['UpdateRepositoryCreationTemplate', { prefix: 'prod', description: 'x' }],
        ['DeleteRepositoryCreationTemplate', { prefix: 'prod' }],
      ] as const) {
        expect((await f.fails(op, input, { registry: false })).type, op).toBe('AccessDeniedException');
      }
      expect((await f.repositories.templates.get('prod'))?.description).toBeUndefined();
      expect(await f.repositories.templates.get('dev')).toBeUndefined();
    });
  });

  describe('which template applies', () => {
    it('the longest prefix that covers the name as a namespace, else ROOT; only templates for the purpose', async () => {
      await template('ROOT');
      await template('prod');
      await template('prod/team');
      await f.call('CreateRepositoryCreationTemplate', { prefix: 'prod/team/web', appliedFor: ['PULL_THROUGH_CACHE'] });
      const applies = async (name: string) => (await f.repositories.templates.applicableTo(name, 'CREATE_ON_PUSH'))?.prefix;
      expect(await applies('prod/team/api')).toBe('prod/team');
      expect(await applies('prod/team/web/x')).toBe('prod/team'); // prod/team/web is not for pushes
      expect(await applies('prod/other')).toBe('prod');
      expect(await applies('prod/team')).toBe('prod'); // a prefix covers what is under it, not itself
      expect(await applies('prod')).toBe('ROOT');
      expect(await applies('production/app')).toBe('ROOT'); // `prod` reads as `prod/`
      expect((await f.repositories.templates.applicableTo('prod/team/web/x', 'PULL_THROUGH_CACHE'))?.prefix).toBe('prod/team/web');
      await f.call('DeleteRepositoryCreationTemplate', { prefix: 'ROOT' });
      expect(await applies('dev/app')).toBeUndefined();
    });
  });

  describe('pushes under a CREATE_ON_PUSH template', () => {
    it("create the repository with the template's settings", async () => {
      await template('prod', {
        imageTagMutability: 'IMMUTABLE_WITH_EXCLUSION',
        imageTagMutabilityExclusionFilters: [{ filterType: 'WILDCARD', filter: 'latest' }],
        resourceTags: [{ Key: 'env', Value: 'prod' }],
        encryptionConfiguration: { encryptionType: 'KMS', kmsKey: KMS_KEY },
        repositoryPolicy: REPOSITORY_POLICY,
        lifecyclePolicy: LIFECYCLE_POLICY,
      });
      f.clock.now += 10_000;
      const up = await f.registry.uploads.start('prod/web');
      await f.registry.uploads.cancel('prod/web', up.id);
      expect(await f.repositories.require('prod/web')).toEqual({
        name: 'prod/web',
        createdAt: f.clock.now,
        imageTagMutability: 'IMMUTABLE_WITH_EXCLUSION',
        imageTagMutabilityExclusionFilters: [{ filterType: 'WILDCARD', filter: 'latest' }],
        scanOnPush: false,
        encryption: { encryptionType: 'KMS', kmsKey: KMS_KEY },
      });
      expect(await f.call('ListTagsForResource', { resourceArn: arn('prod/web') })).toEqual({ tags: [{ Key: 'env', Value: 'prod' }] });
      expect((await f.call('GetRepositoryPolicy', { repositoryName: 'prod/web' })).policyText).toBe(REPOSITORY_POLICY);
      expect(await f.call('GetLifecyclePolicy', { repositoryName: 'prod/web' })).toMatchObject({ lifecyclePolicyText: LIFECYCLE_POLICY, lastEvaluatedAt: f.clock.now / 1000 });

      // The template's mutability holds at once: v1 may not move, `latest` may.
      await f.pushImage('prod/web', 'v1', 'a');
      await f.pushImage('prod/web', 'latest', 'a');
      await expect(f.pushImage('prod/web', 'v1', 'b')).rejects.toMatchObject({ code: 'TAG_INVALID' });
      await f.pushImage('prod/web', 'latest', 'b');
    });

    it('outside every template, a push is refused unless ecr.createOnPush, which gives the defaults', async () => {
      await template('prod');
      await f.call('CreateRepositoryCreationTemplate', { prefix: 'ROOT', appliedFor: ['REPLICATION'] });
      const err = await f.registry.uploads.start('dev/web').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RepositoryNotFoundError);
      expect((err as RegistryError).code).toBe('NAME_UNKNOWN');
      expect((err as RegistryError).message).toBe(`The repository with name 'dev/web' does not exist in the registry with id '${ACCOUNT}'`);
      expect(await f.repositories.get('dev/web')).toBeUndefined();

      const open = await openFixture({ createOnPush: true });
      try {
        await open.pushImage('dev/web', 'v1', 'a');
        expect(await open.repositories.require('dev/web')).toMatchObject({ imageTagMutability: 'MUTABLE', encryption: { encryptionType: 'AES256' } });
        // A name /v2/ takes but ECR does not is not created.
        await expect(open.registry.uploads.start('x')).rejects.toMatchObject({ code: 'NAME_INVALID' });
        expect(await open.repositories.get('x')).toBeUndefined();
      } finally {
        await open.close();
      }
    });

    it('an existing repository keeps its settings, whatever template covers it', async () => {
      await f.call('CreateRepository', { repositoryName: 'prod/web' });
      await template('prod', { imageTagMutability: 'IMMUTABLE' });
      await f.pushImage('prod/web', 'v1', 'a');
      await f.pushImage('prod/web', 'v1', 'b');
      expect((await f.repositories.require('prod/web')).imageTagMutability).toBe('MUTABLE');
    });
  });
});
