// The registry applies lifecycle policies on its own, every ecr.lifecycle.interval: an image a
// policy expires leaves DescribeImages and /v2/ without anyone asking, and lastEvaluatedAt moves.
import { CreateRepositoryCommand, DescribeImagesCommand, GetLifecyclePolicyCommand, PutLifecyclePolicyCommand } from '@aws-sdk/client-ecr';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../support/socket.js';
import { awsLogin, pushImage, tick } from './sdk-fixtures.js';
import { startEcrRegistry, type EcrTestRegistry } from './sdk-support.js';

let registry: EcrTestRegistry;

beforeAll(async () => {
  registry = await startEcrRegistry({ ecr: { lifecycle: { interval: '200ms' } } });
});
afterAll(async () => {
  await registry?.destroy();
});

describe('scheduled lifecycle runs', () => {
  it('expire what the policy says without being asked', async () => {
    const client = registry.client('admin');
    const repo = 'team/scheduled';
    await client.send(new CreateRepositoryCommand({ repositoryName: repo }));
    const auth = await awsLogin(registry);
    const old = await pushImage(registry, auth, repo, 'v1', 'old');
    await tick();
    const kept = await pushImage(registry, auth, repo, 'v2', 'new');
    const policy = JSON.stringify({
      rules: [
        { rulePriority: 1, selection: { tagStatus: 'tagged', tagPrefixList: ['v'], countType: 'imageCountMoreThan', countNumber: 1 }, action: { type: 'expire' } },
      ],
    });
    await client.send(new PutLifecyclePolicyCommand({ repositoryName: repo, lifecyclePolicyText: policy }));
    const putAt = (await client.send(new GetLifecyclePolicyCommand({ repositoryName: repo }))).lastEvaluatedAt!.getTime();
    const digests = async () => ((await client.send(new DescribeImagesCommand({ repositoryName: repo }))).imageDetails ?? []).map((d) => d.imageDigest);
    await waitFor(async () => (await digests()).length === 1, { timeoutMs: 10_000, intervalMs: 50, what: 'the scheduled run to expire v1' });
    expect(await digests()).toEqual([kept.digest]);
    expect(await digests()).not.toContain(old.digest);
    // Every run moves lastEvaluatedAt on.
    const evaluatedAt = async () => (await client.send(new GetLifecyclePolicyCommand({ repositoryName: repo }))).lastEvaluatedAt!.getTime();
    await waitFor(async () => (await evaluatedAt()) > putAt, { timeoutMs: 10_000, intervalMs: 50, what: 'lastEvaluatedAt to move' });
    const tags = await fetch(`${registry.url}/v2/${repo}/tags/list`, { headers: { authorization: auth } });
    expect(((await tags.json()) as { tags: string[] }).tags).toEqual(['v2']);
  });
});
