// The registry-wide operations through the real @aws-sdk/client-ecr against a running registry:
// GetAuthorizationToken, DescribeRegistry, Put/Get/DeleteRegistryPolicy and the repository
// creation templates (Create/Describe/Update/DeleteRepositoryCreationTemplate), with their shapes
// and errors; registry settings are the admins' alone.
import {
  CreateRepositoryCommand,
  CreateRepositoryCreationTemplateCommand,
  DeleteRegistryPolicyCommand,
  DeleteRepositoryCreationTemplateCommand,
  DescribeRegistryCommand,
  DescribeRepositoryCreationTemplatesCommand,
  GetAuthorizationTokenCommand,
  GetDownloadUrlForLayerCommand,
  GetRegistryPolicyCommand,
  PutRegistryPolicyCommand,
  UpdateRepositoryCreationTemplateCommand,
  type ECRClient,
} from '@aws-sdk/client-ecr';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EcrCredentials } from '../../src/auth/ecr-credentials.js';
import { invalidAt, pushImage, v2 } from './sdk-fixtures.js';
import { ACCOUNT, KEYS, REGION, failure, startEcrRegistry, type EcrTestRegistry } from './sdk-support.js';

let registry: EcrTestRegistry;
let admin: ECRClient;
let dev: ECRClient;
let reader: ECRClient;

beforeAll(async () => {
  registry = await startEcrRegistry();
  admin = registry.client('admin');
  dev = registry.client('dev');
  reader = registry.client('reader');
});
afterAll(async () => {
  await registry?.destroy();
});

const REGISTRY_ARN = `arn:aws:ecr:${REGION}:${ACCOUNT}:registry/${ACCOUNT}`;
const deniedRegistry = (user: string, operation: string) =>
  `User: arn:aws:iam::${ACCOUNT}:user/${user} is not authorized to perform: ecr:${operation} on resource: ${REGISTRY_ARN} because no identity-based policy allows the ecr:${operation} action`;

const REGISTRY_POLICY = JSON.stringify({
  Version: '2012-10-17',
  Statement: [
    {
      Sid: 'ReplicationAccessCrossAccount',
      Effect: 'Allow',
      Principal: { AWS: 'arn:aws:iam::210987654321:root' },
      Action: ['ecr:CreateRepository', 'ecr:ReplicateImage'],
      Resource: `arn:aws:ecr:${REGION}:${ACCOUNT}:repository/*`,
    },
  ],
});
const LIFECYCLE = JSON.stringify({
  rules: [
    {
      rulePriority: 1,
      description: 'keep ten release images of each repository',
      selection: { tagStatus: 'tagged', tagPrefixList: ['release'], countType: 'imageCountMoreThan', countNumber: 10 },
      action: { type: 'expire' },
    },
  ],
});
const REPO_POLICY = JSON.stringify({ Statement: [{ Effect: 'Allow', Principal: '*', Action: ['ecr:BatchGetImage'] }] });

describe('GetAuthorizationToken', () => {
  it('answers one entry per registry id asked for, each a login for user AWS that /v2/ accepts', async () => {
    const out = await dev.send(new GetAuthorizationTokenCommand({ registryIds: [ACCOUNT, ACCOUNT] }));
    expect(out.authorizationData).toHaveLength(2);
    for (const data of out.authorizationData!) {
      expect(Object.keys(data).sort()).toEqual(['authorizationToken', 'expiresAt', 'proxyEndpoint']);
      expect(data.proxyEndpoint).toBe(registry.url);
      expect(data.expiresAt).toBeInstanceOf(Date);
      const decoded = Buffer.from(data.authorizationToken!, 'base64').toString('utf8');
      expect(decoded.startsWith('AWS:')).toBe(true);
      expect(decoded.slice(4)).not.toContain(':');
    }
    const res = await v2(registry, `Basic ${out.authorizationData![0]!.authorizationToken}`, 'GET', '/v2/');
    expect(res.status).toBe(200);
  });

  it('refuses a password changed by one character, and user AWS with another key\'s secret', async () => {
    const out = await reader.send(new GetAuthorizationTokenCommand({}));
    const password = Buffer.from(out.authorizationData![0]!.authorizationToken!, 'base64').toString('utf8').slice(4);
    const changed = `${password.slice(0, -1)}${password.endsWith('A') ? 'B' : 'A'}`;
    const res = await v2(registry, `Basic ${Buffer.from(`AWS:${changed}`).toString('base64')}`, 'GET', '/v2/');
    expect(res.status).toBe(401);
    const secret = await v2(registry, `Basic ${Buffer.from('AWS:reader-secret-0123456789abcde').toString('base64')}`, 'GET', '/v2/');
    expect(secret.status).toBe(401);
  });

  it('answers a login password past its 12 hours with 403 DENIED and ECR\'s message', async () => {
    // Passwords are stateless (an HMAC under the key pair's secret): one issued 13 hours ago by the
    // same configuration is what a client that kept its login that long would send.
    const credentials = registry.config.ecr!.credentials;
    const issuedAt = (ms: number) => {
      const issuer = new EcrCredentials(credentials, { now: () => Date.now() - ms });
      const { password } = issuer.issueLoginPassword(issuer.find(KEYS.dev.accessKeyId)!);
      return `Basic ${Buffer.from(`AWS:${password}`).toString('base64')}`;
    };
    const expired = issuedAt(13 * 3600_000);
    for (const [method, path] of [['GET', '/v2/'], ['GET', '/v2/team/x/tags/list'], ['POST', '/v2/team/x/blobs/uploads/']] as const) {
      const res = await v2(registry, expired, method, path);
      expect(res.status, `${method} ${path}`).toBe(403);
      expect(res.error).toEqual({ code: 'DENIED', message: 'Your authorization token has expired. Reauthenticate and try again.' });
    }
    expect((await v2(registry, issuedAt(11 * 3600_000), 'GET', '/v2/')).status).toBe(200);
  });

  it('refuses another registry id, and ids that are not 12 digits or more than 10', async () => {
    const other = await failure(admin.send(new GetAuthorizationTokenCommand({ registryIds: ['210987654321'] })));
    expect(other.name).toBe('InvalidParameterException');
    // GetAuthorizationToken's model lists no ValidationException: ECR answers InvalidParameterException.
    const bad = await failure(admin.send(new GetAuthorizationTokenCommand({ registryIds: ['12345'] })));
    expect(bad.name).toBe('InvalidParameterException');
    expect(bad.message).toBe(invalidAt('registryIds.1.member', 'Member must satisfy regular expression pattern: [0-9]{12}'));
    const many = await failure(admin.send(new GetAuthorizationTokenCommand({ registryIds: Array.from({ length: 11 }, () => ACCOUNT) })));
    expect(many.name).toBe('InvalidParameterException');
    expect(many.message).toBe(invalidAt('registryIds', 'Member must have length less than or equal to 10'));
    const none = await failure(admin.send(new GetAuthorizationTokenCommand({ registryIds: [] })));
    expect(none.name).toBe('InvalidParameterException');
    expect(none.message).toBe(invalidAt('registryIds', 'Member must have length greater than or equal to 1'));
  });
});

describe('with http.host set', () => {
  it('names the public address in proxyEndpoint, repositoryUri and download URLs, and in the /v2/ challenge', async () => {
    const publicUrl = 'https://ecr.example.test:8443';
    const pub = await startEcrRegistry({ http: { host: `${publicUrl}/` } });
    try {
      const c = pub.client('admin');
      const token = await c.send(new GetAuthorizationTokenCommand({}));
      expect(token.authorizationData![0]!.proxyEndpoint).toBe(publicUrl);
      const repo = await c.send(new CreateRepositoryCommand({ repositoryName: 'team/public' }));
      expect(repo.repository!.repositoryUri).toBe('ecr.example.test:8443/team/public');
      const auth = `Basic ${token.authorizationData![0]!.authorizationToken}`;
      const image = await pushImage(pub, auth, 'team/public', 'v1', 'public');
      const url = await c.send(new GetDownloadUrlForLayerCommand({ repositoryName: 'team/public', layerDigest: image.layerDigests[0] }));
      expect(url.downloadUrl!.startsWith(`${publicUrl}/ecr/download/team/public/`)).toBe(true);
      const challenge = await v2(pub, undefined, 'GET', '/v2/');
      expect(challenge.headers.get('www-authenticate')).toBe(`Basic realm="${publicUrl}/",service="ecr.amazonaws.com"`);
    } finally {
      await pub.destroy();
    }
  });
});

describe('DescribeRegistry', () => {
  it('answers the registry id and no replication, to any signed-in key', async () => {
    for (const client of [admin, dev, reader]) {
      const out = await client.send(new DescribeRegistryCommand({}));
      expect(out.registryId).toBe(ACCOUNT);
      expect(out.replicationConfiguration).toEqual({ rules: [] });
    }
  });
});

describe('Put/Get/DeleteRegistryPolicy', () => {
  it('stores the policy, answers it and deletes it', async () => {
    const put = await admin.send(new PutRegistryPolicyCommand({ policyText: REGISTRY_POLICY }));
    expect(put).toMatchObject({ registryId: ACCOUNT, policyText: REGISTRY_POLICY });
    const got = await admin.send(new GetRegistryPolicyCommand({}));
    expect(got).toMatchObject({ registryId: ACCOUNT, policyText: REGISTRY_POLICY });
    const deleted = await admin.send(new DeleteRegistryPolicyCommand({}));
    expect(deleted).toMatchObject({ registryId: ACCOUNT, policyText: REGISTRY_POLICY });
    const message = `Registry policy does not exist in the registry with id '${ACCOUNT}'`;
    const gone = await failure(admin.send(new GetRegistryPolicyCommand({})));
    expect(gone.name).toBe('RegistryPolicyNotFoundException');
    expect(gone.message).toBe(message);
    const again = await failure(admin.send(new DeleteRegistryPolicyCommand({})));
    expect(again.name).toBe('RegistryPolicyNotFoundException');
    expect(again.message).toBe(message);
  });

  it('refuses a policy that is not one, and one over 10240 characters', async () => {
    for (const policyText of ['{', '{"Statement":[]}', JSON.stringify({ Statement: [{ Effect: 'Allow', Action: 'ecr:*' }] })]) {
      const f = await failure(admin.send(new PutRegistryPolicyCommand({ policyText })));
      expect(f.name, policyText).toBe('InvalidParameterException');
      expect(f.message).toBe("Invalid parameter at 'PolicyText' failed to satisfy constraint: 'Invalid registry policy provided'");
    }
    const long = JSON.stringify({ Statement: [{ Sid: 's'.repeat(10_300), Effect: 'Allow', Principal: '*', Action: 'ecr:*' }] });
    const f = await failure(admin.send(new PutRegistryPolicyCommand({ policyText: long })));
    expect(f.name).toBe('ValidationException');
    const none = await failure(admin.send(new PutRegistryPolicyCommand({} as never)));
    expect(none.name).toBe('ValidationException');
    expect(none.message).toBe("1 validation error detected: Value null at 'policyText' failed to satisfy constraint: Member must not be null");
    expect((await failure(admin.send(new GetRegistryPolicyCommand({})))).name).toBe('RegistryPolicyNotFoundException');
  });

  it('refuses every key but the admins\', naming the registry', async () => {
    await admin.send(new PutRegistryPolicyCommand({ policyText: REGISTRY_POLICY }));
    try {
      for (const [client, user] of [[dev, 'dev'], [reader, 'reader']] as const) {
        const put = await failure(client.send(new PutRegistryPolicyCommand({ policyText: REGISTRY_POLICY })));
        expect(put.name).toBe('AccessDeniedException');
        expect(put.message).toBe(deniedRegistry(user, 'PutRegistryPolicy'));
        const get = await failure(client.send(new GetRegistryPolicyCommand({})));
        expect(get.name).toBe('AccessDeniedException');
        expect(get.message).toBe(deniedRegistry(user, 'GetRegistryPolicy'));
        const del = await failure(client.send(new DeleteRegistryPolicyCommand({})));
        expect(del.name).toBe('AccessDeniedException');
      }
      expect((await admin.send(new GetRegistryPolicyCommand({}))).policyText).toBe(REGISTRY_POLICY);
    } finally {
      await admin.send(new DeleteRegistryPolicyCommand({}));
    }
  });
});

describe('repository creation templates', () => {
  it('creates a template with every setting and answers its full shape', async () => {
    const before = Date.now();
    const out = await admin.send(
      new CreateRepositoryCreationTemplateCommand({
        prefix: 'apps',
        description: 'repositories of the apps team',
        encryptionConfiguration: { encryptionType: 'KMS', kmsKey: `arn:aws:kms:${REGION}:${ACCOUNT}:key/0a1b2c3d-aaaa-bbbb-cccc-0123456789ab` },
        resourceTags: [{ Key: 'team', Value: 'apps' }],
        imageTagMutability: 'IMMUTABLE_WITH_EXCLUSION',
        imageTagMutabilityExclusionFilters: [{ filterType: 'WILDCARD', filter: 'latest' }],
        repositoryPolicy: REPO_POLICY,
        lifecyclePolicy: LIFECYCLE,
        appliedFor: ['CREATE_ON_PUSH', 'REPLICATION', 'CREATE_ON_PUSH'],
        customRoleArn: `arn:aws:iam::${ACCOUNT}:role/ecr-templates`,
      }),
    );
    expect(out.registryId).toBe(ACCOUNT);
    const t = out.repositoryCreationTemplate!;
    expect(t).toEqual({
      prefix: 'apps',
      description: 'repositories of the apps team',
      encryptionConfiguration: { encryptionType: 'KMS', kmsKey: `arn:aws:kms:${REGION}:${ACCOUNT}:key/0a1b2c3d-aaaa-bbbb-cccc-0123456789ab` },
      resourceTags: [{ Key: 'team', Value: 'apps' }],
      imageTagMutability: 'IMMUTABLE_WITH_EXCLUSION',
      imageTagMutabilityExclusionFilters: [{ filterType: 'WILDCARD', filter: 'latest' }],
      repositoryPolicy: REPO_POLICY,
      lifecyclePolicy: LIFECYCLE,
      appliedFor: ['CREATE_ON_PUSH', 'REPLICATION'],
      customRoleArn: `arn:aws:iam::${ACCOUNT}:role/ecr-templates`,
      createdAt: expect.any(Date),
      updatedAt: expect.any(Date),
    });
    expect(t.createdAt!.getTime()).toBeGreaterThanOrEqual(before - 1000);
    expect(t.updatedAt!.getTime()).toBe(t.createdAt!.getTime());
    const described = await admin.send(new DescribeRepositoryCreationTemplatesCommand({ prefixes: ['apps'] }));
    expect(described.repositoryCreationTemplates).toEqual([t]);
  });

  it('gives a minimal template ECR\'s defaults', async () => {
    const out = await admin.send(new CreateRepositoryCreationTemplateCommand({ prefix: 'minimal/', appliedFor: ['PULL_THROUGH_CACHE'] }));
    const t = out.repositoryCreationTemplate!;
    expect(t.prefix).toBe('minimal/');
    expect(t.encryptionConfiguration).toEqual({ encryptionType: 'AES256' });
    expect(t.resourceTags).toEqual([]);
    expect(t.imageTagMutability).toBe('MUTABLE');
    expect(t.appliedFor).toEqual(['PULL_THROUGH_CACHE']);
    expect(t.description).toBeUndefined();
    expect(t.lifecyclePolicy).toBeUndefined();
    expect(t.repositoryPolicy).toBeUndefined();
  });

  it('answers TemplateAlreadyExistsException for a prefix taken, with or without its slash', async () => {
    await admin.send(new CreateRepositoryCreationTemplateCommand({ prefix: 'dup', appliedFor: ['CREATE_ON_PUSH'] }));
    for (const prefix of ['dup', 'dup/']) {
      const f = await failure(admin.send(new CreateRepositoryCreationTemplateCommand({ prefix, appliedFor: ['CREATE_ON_PUSH'] })));
      expect(f.name).toBe('TemplateAlreadyExistsException');
      expect(f.message).toBe(`The repository creation template with prefix '${prefix}' already exists in the registry with id '${ACCOUNT}'`);
    }
  });

  it('refuses what ECR refuses in a template', async () => {
    const prefix = await failure(admin.send(new CreateRepositoryCreationTemplateCommand({ prefix: 'Bad/Prefix', appliedFor: ['CREATE_ON_PUSH'] })));
    expect(prefix.name).toBe('ValidationException');
    expect(prefix.message).toContain("Value 'Bad/Prefix' at 'prefix' failed to satisfy constraint: Member must satisfy regular expression pattern");
    const noApplied = await failure(admin.send(new CreateRepositoryCreationTemplateCommand({ prefix: 'x1' } as never)));
    expect(noApplied.name).toBe('ValidationException');
    expect(noApplied.message).toBe("1 validation error detected: Value null at 'appliedFor' failed to satisfy constraint: Member must not be null");
    const unknown = await failure(admin.send(new CreateRepositoryCreationTemplateCommand({ prefix: 'x2', appliedFor: ['ON_PULL' as never] })));
    expect(unknown.name).toBe('ValidationException');
    expect(unknown.message).toContain("Value 'ON_PULL' at 'appliedFor.1.member' failed to satisfy constraint: Member must satisfy enum value set: [REPLICATION, PULL_THROUGH_CACHE, CREATE_ON_PUSH]");
    const empty = await failure(admin.send(new CreateRepositoryCreationTemplateCommand({ prefix: 'x3', appliedFor: [] })));
    expect(empty.name).toBe('InvalidParameterException');
    const lifecycle = await failure(
      admin.send(new CreateRepositoryCreationTemplateCommand({ prefix: 'x4', appliedFor: ['CREATE_ON_PUSH'], lifecyclePolicy: JSON.stringify({ rules: [{ rulePriority: 1 }] }) })),
    );
    expect(lifecycle.name).toBe('InvalidParameterException');
    expect(lifecycle.message).toMatch(/^Invalid parameter at 'LifecyclePolicyText' failed to satisfy constraint: 'Lifecycle policy validation failure: /);
    const policy = await failure(admin.send(new CreateRepositoryCreationTemplateCommand({ prefix: 'x5', appliedFor: ['CREATE_ON_PUSH'], repositoryPolicy: '{"nope":1}' })));
    expect(policy.name).toBe('InvalidParameterException');
    expect(policy.message).toBe("Invalid parameter at 'PolicyText' failed to satisfy constraint: 'Invalid repository policy provided'");
    const filters = await failure(admin.send(new CreateRepositoryCreationTemplateCommand({ prefix: 'x6', appliedFor: ['CREATE_ON_PUSH'], imageTagMutability: 'MUTABLE_WITH_EXCLUSION' })));
    expect(filters.name).toBe('InvalidParameterException');
    const tags = await failure(admin.send(new CreateRepositoryCreationTemplateCommand({ prefix: 'x7', appliedFor: ['CREATE_ON_PUSH'], resourceTags: [{ Key: 'aws:x', Value: 'y' }] })));
    expect(tags.name).toBe('InvalidTagParameterException');
    const kms = await failure(
      admin.send(new CreateRepositoryCreationTemplateCommand({ prefix: 'x8', appliedFor: ['CREATE_ON_PUSH'], encryptionConfiguration: { encryptionType: 'KMS', kmsKey: 'alias/mine' } })),
    );
    expect(kms.name).toBe('ValidationException');
    const description = await failure(admin.send(new CreateRepositoryCreationTemplateCommand({ prefix: 'x9', appliedFor: ['CREATE_ON_PUSH'], description: 'd'.repeat(257) })));
    expect(description.name).toBe('ValidationException');
    const left = await admin.send(new DescribeRepositoryCreationTemplatesCommand({ prefixes: ['x1', 'x2', 'x3', 'x4', 'x5', 'x6', 'x7', 'x8', 'x9'] }));
    expect(left.repositoryCreationTemplates).toEqual([]);
  });

  it('updates the settings given, keeps the others, and moves updatedAt', async () => {
    const created = (await admin.send(new CreateRepositoryCreationTemplateCommand({ prefix: 'upd', appliedFor: ['CREATE_ON_PUSH'], description: 'first', imageTagMutability: 'IMMUTABLE' })))
      .repositoryCreationTemplate!;
    await new Promise((r) => setTimeout(r, 5));
    const out = await admin.send(new UpdateRepositoryCreationTemplateCommand({ prefix: 'upd', description: 'second', resourceTags: [{ Key: 'k', Value: 'v' }], lifecyclePolicy: LIFECYCLE }));
    expect(out.registryId).toBe(ACCOUNT);
    const t = out.repositoryCreationTemplate!;
    expect(t).toMatchObject({ prefix: 'upd', description: 'second', imageTagMutability: 'IMMUTABLE', appliedFor: ['CREATE_ON_PUSH'], resourceTags: [{ Key: 'k', Value: 'v' }], lifecyclePolicy: LIFECYCLE });
    expect(t.createdAt).toEqual(created.createdAt);
    expect(t.updatedAt!.getTime()).toBeGreaterThan(created.updatedAt!.getTime());
    // To a mutability with exclusions, then back: the filters go with it.
    const excl = await admin.send(
      new UpdateRepositoryCreationTemplateCommand({ prefix: 'upd', imageTagMutability: 'MUTABLE_WITH_EXCLUSION', imageTagMutabilityExclusionFilters: [{ filterType: 'WILDCARD', filter: 'v*' }] }),
    );
    expect(excl.repositoryCreationTemplate!.imageTagMutabilityExclusionFilters).toEqual([{ filterType: 'WILDCARD', filter: 'v*' }]);
    const back = await admin.send(new UpdateRepositoryCreationTemplateCommand({ prefix: 'upd', imageTagMutability: 'MUTABLE' }));
    expect(back.repositoryCreationTemplate!.imageTagMutability).toBe('MUTABLE');
    expect(back.repositoryCreationTemplate!.imageTagMutabilityExclusionFilters).toBeUndefined();
    const noFilters = await failure(admin.send(new UpdateRepositoryCreationTemplateCommand({ prefix: 'upd', imageTagMutability: 'IMMUTABLE_WITH_EXCLUSION' })));
    expect(noFilters.name).toBe('InvalidParameterException');
  });

  it('answers TemplateNotFoundException for a prefix it does not hold', async () => {
    const update = await failure(admin.send(new UpdateRepositoryCreationTemplateCommand({ prefix: 'ghost', description: 'x' })));
    expect(update.name).toBe('TemplateNotFoundException');
    expect(update.message).toBe(`The repository creation template with prefix 'ghost' does not exist in the registry with id '${ACCOUNT}'`);
    const del = await failure(admin.send(new DeleteRepositoryCreationTemplateCommand({ prefix: 'ghost' })));
    expect(del.name).toBe('TemplateNotFoundException');
    expect(del.message).toBe(`The repository creation template with prefix 'ghost' does not exist in the registry with id '${ACCOUNT}'`);
    const described = await admin.send(new DescribeRepositoryCreationTemplatesCommand({ prefixes: ['ghost'] }));
    expect(described.repositoryCreationTemplates).toEqual([]);
  });

  it('deletes a template and answers it as it was', async () => {
    const created = (await admin.send(new CreateRepositoryCreationTemplateCommand({ prefix: 'ROOT', appliedFor: ['CREATE_ON_PUSH'], description: 'everything else' })))
      .repositoryCreationTemplate!;
    const out = await admin.send(new DeleteRepositoryCreationTemplateCommand({ prefix: 'ROOT' }));
    expect(out.registryId).toBe(ACCOUNT);
    expect(out.repositoryCreationTemplate).toEqual(created);
    expect((await failure(admin.send(new DeleteRepositoryCreationTemplateCommand({ prefix: 'ROOT' })))).name).toBe('TemplateNotFoundException');
  });

  it('refuses every key but the admins\' for each template operation', async () => {
    for (const [client, user] of [[dev, 'dev'], [reader, 'reader']] as const) {
      const calls = [
        ['CreateRepositoryCreationTemplate', new CreateRepositoryCreationTemplateCommand({ prefix: 'team', appliedFor: ['CREATE_ON_PUSH'] })],
        ['DescribeRepositoryCreationTemplates', new DescribeRepositoryCreationTemplatesCommand({})],
        ['UpdateRepositoryCreationTemplate', new UpdateRepositoryCreationTemplateCommand({ prefix: 'apps', description: 'x' })],
        ['DeleteRepositoryCreationTemplate', new DeleteRepositoryCreationTemplateCommand({ prefix: 'apps' })],
      ] as const;
      for (const [operation, command] of calls) {
        const f = await failure(client.send(command as never));
        expect(f.name, `${user} ${operation}`).toBe('AccessDeniedException');
        expect(f.message).toBe(deniedRegistry(user, operation));
      }
    }
    const apps = await admin.send(new DescribeRepositoryCreationTemplatesCommand({ prefixes: ['apps', 'team'] }));
    expect(apps.repositoryCreationTemplates!.map((t) => [t.prefix, t.description])).toEqual([['apps', 'repositories of the apps team']]);
  });

  describe('DescribeRepositoryCreationTemplates paging', () => {
    let paging: EcrTestRegistry;
    beforeAll(async () => {
      paging = await startEcrRegistry();
      const c = paging.client('admin');
      for (let i = 0; i < 25; i++) {
        await c.send(new CreateRepositoryCreationTemplateCommand({ prefix: `p${String(i).padStart(2, '0')}`, appliedFor: ['CREATE_ON_PUSH'] }));
      }
    });
    afterAll(async () => {
      await paging?.destroy();
    });

    it('walks 25 templates 10 at a time with nextToken, nothing repeated or lost', async () => {
      const c = paging.client('admin');
      const seen: string[] = [];
      const pages: number[] = [];
      let nextToken: string | undefined;
      for (let n = 0; n < 10; n++) {
        const out = await c.send(new DescribeRepositoryCreationTemplatesCommand({ maxResults: 10, ...(nextToken ? { nextToken } : {}) }));
        expect(out.registryId).toBe(ACCOUNT);
        pages.push(out.repositoryCreationTemplates!.length);
        seen.push(...out.repositoryCreationTemplates!.map((t) => t.prefix!));
        nextToken = out.nextToken;
        if (!nextToken) break;
      }
      expect(pages).toEqual([10, 10, 5]);
      expect(seen).toEqual(Array.from({ length: 25 }, (_, i) => `p${String(i).padStart(2, '0')}`));
    });

    it('refuses nextToken or maxResults with prefixes, maxResults outside 1..1000, and a token it did not give', async () => {
      const c = paging.client('admin');
      const first = await c.send(new DescribeRepositoryCreationTemplatesCommand({ maxResults: 1 }));
      const withToken = await failure(c.send(new DescribeRepositoryCreationTemplatesCommand({ prefixes: ['p01'], nextToken: first.nextToken })));
      expect(withToken.name).toBe('InvalidParameterException');
      expect(withToken.message).toBe('Invalid parameter: nextToken and maxResults cannot be used together with prefixes');
      const withMax = await failure(c.send(new DescribeRepositoryCreationTemplatesCommand({ prefixes: ['p01'], maxResults: 3 })));
      expect(withMax.name).toBe('InvalidParameterException');
      for (const maxResults of [0, 1001]) {
        const f = await failure(c.send(new DescribeRepositoryCreationTemplatesCommand({ maxResults })));
        expect(f.name).toBe('ValidationException');
        expect(f.message).toContain(`Value ${maxResults} at 'maxResults' failed to satisfy constraint`);
      }
      const token = await failure(c.send(new DescribeRepositoryCreationTemplatesCommand({ nextToken: '%%%' })));
      expect(token.name).toBe('InvalidParameterException');
    });
  });
});
