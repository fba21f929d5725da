// ECR's pull-through cache rules serving pulls: a rule made with the SDK sends `<prefix>/<path>`
// to its upstream (with the credentials its credentialArn names), the first pull creates the
// repository as ECR does (a PULL_THROUGH_CACHE template's settings), and pushes under the prefix
// are refused however they come.
import {
  CreatePullThroughCacheRuleCommand,
  CreateRepositoryCreationTemplateCommand,
  DeletePullThroughCacheRuleCommand,
  DescribeRepositoriesCommand,
  InitiateLayerUploadCommand,
  ListTagsForResourceCommand,
  ValidatePullThroughCacheRuleCommand,
} from '@aws-sdk/client-ecr';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../helpers.js';
import { PASSWORDS, basic, pushImageAs, writeHtpasswd } from '../http/auth-support.js';
import { ACCOUNT, REGION, failure, startEcrRegistry, type EcrTestRegistry } from '../ecr/sdk-support.js';
import { awsLogin, v2 } from '../ecr/sdk-fixtures.js';
import { MANIFEST_TYPES, startUpstream, type TestUpstream } from './support.js';

const SECRET = (name: string) => `arn:aws:secretsmanager:${REGION}:${ACCOUNT}:secret:ecr-pullthroughcache/${name}`;

describe('ECR pull-through cache rules', () => {
  let upstream: TestUpstream;
  let registry: EcrTestRegistry;
  let digest: string;

  beforeAll(async () => {
    upstream = await startUpstream({ auth: { htpasswd: { path: await writeHtpasswd(await tempDir()) } } });
    const pushed = await pushImageAs(upstream.registry.app, basic('alice'), 'team/tool', 'v1');
    expect(pushed.res.statusCode).toBe(201);
    digest = pushed.manifest!.digest;
    registry = await startEcrRegistry({
      proxy: {
        credentials: { upstream: { username: 'alice', password: PASSWORDS.alice! }, wrong: { username: 'alice', password: 'not her password' } },
        allowedupstreams: [upstream.url],
      },
    });
  });
  afterAll(async () => {
    await registry?.destroy();
    await upstream?.close();
  });

  it('serves <prefix>/<path> from the upstream, creating the repository with a PULL_THROUGH_CACHE template', async () => {
    const admin = registry.client('admin');
    await admin.send(
      new CreateRepositoryCreationTemplateCommand({
        prefix: 'up',
        appliedFor: ['PULL_THROUGH_CACHE'],
        imageTagMutability: 'IMMUTABLE',
        resourceTags: [{ Key: 'origin', Value: 'cache' }],
      }),
    );
    const created = await admin.send(
      new CreatePullThroughCacheRuleCommand({ ecrRepositoryPrefix: 'up', upstreamRegistryUrl: upstream.url, credentialArn: SECRET('upstream') }),
    );
    expect(created.ecrRepositoryPrefix).toBe('up');
    const auth = await awsLogin(registry, 'reader');
    const res = await v2(registry, auth, 'GET', '/v2/up/team/tool/manifests/v1', { headers: { accept: MANIFEST_TYPES } });
    expect(res.status, res.body.toString()).toBe(200);
    expect(res.headers.get('docker-content-digest')).toBe(digest);
    const doc = JSON.parse(res.body.toString()) as { layers: Array<{ digest: string }> };
    const layer = await v2(registry, auth, 'GET', `/v2/up/team/tool/blobs/${doc.layers[0]!.digest}`);
    expect(layer.status).toBe(200);
    const repos = await admin.send(new DescribeRepositoriesCommand({ repositoryNames: ['up/team/tool'] }));
    expect(repos.repositories?.[0]?.imageTagMutability).toBe('IMMUTABLE');
    const tags = await admin.send(new ListTagsForResourceCommand({ resourceArn: repos.repositories![0]!.repositoryArn! }));
    expect(tags.tags).toEqual([{ Key: 'origin', Value: 'cache' }]);
    // Outside the prefix nothing is proxied: an ordinary repository that does not exist.
    expect((await v2(registry, auth, 'GET', '/v2/team/tool/manifests/v1')).status).toBe(404);
  });

  it('refuses pushes under the prefix, through /v2/ and through the ECR API', async () => {
    const admin = registry.client('admin');
    const auth = await awsLogin(registry, 'admin');
    const start = await v2(registry, auth, 'POST', '/v2/up/team/tool/blobs/uploads/');
    expect(start.status).toBe(405);
    expect(start.error?.code).toBe('UNSUPPORTED');
    const refused = await failure(admin.send(new InitiateLayerUploadCommand({ repositoryName: 'up/team/tool' })));
    expect(refused.status).toBe(400);
    expect(refused.message).toContain('pull-through cache');
  });

  it('validates a rule against the upstream with its credentials', async () => {
    const admin = registry.client('admin');
    const good = await admin.send(new ValidatePullThroughCacheRuleCommand({ ecrRepositoryPrefix: 'up' }));
    expect(good.isValid).toBe(true);
    await admin.send(new CreatePullThroughCacheRuleCommand({ ecrRepositoryPrefix: 'bad', upstreamRegistryUrl: upstream.url, credentialArn: SECRET('wrong') }));
    const bad = await admin.send(new ValidatePullThroughCacheRuleCommand({ ecrRepositoryPrefix: 'bad' }));
    expect(bad.isValid).toBe(false);
    expect(bad.failure).toBeTruthy();
    // And a pull through it answers what the upstream said: no such repository for these credentials.
    const auth = await awsLogin(registry, 'reader');
    expect((await v2(registry, auth, 'GET', '/v2/bad/team/tool/manifests/v1')).status).toBe(404);
  });

  it('a deleted rule proxies no more: the cached repository stays, ordinary content', async () => {
    const admin = registry.client('admin');
    await admin.send(new DeletePullThroughCacheRuleCommand({ ecrRepositoryPrefix: 'up' }));
    const since = upstream.mark();
    const auth = await awsLogin(registry, 'reader');
    const res = await v2(registry, auth, 'GET', `/v2/up/team/tool/manifests/${digest}`, { headers: { accept: MANIFEST_TYPES } });
    expect(res.status).toBe(200);
    expect(upstream.mark()).toBe(since);
    // A name it had not cached is now simply unknown, and the upstream is not asked.
    expect((await v2(registry, auth, 'GET', '/v2/up/team/other/manifests/v1')).status).toBe(404);
    expect(upstream.mark()).toBe(since);
  });
});
