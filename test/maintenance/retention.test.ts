// Retention policies over a real registry (ECR off): the configured policy applies to the
// repositories its patterns match and to no other, the first matching policy wins, a repository
// with an ECR lifecycle policy of its own is left to it, a dry run expires nothing, and images not
// pulled for N days (or never pulled and pushed N days ago) are expired.
import type { FastifyInstance } from 'fastify';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { RetentionConfig, RetentionPolicyConfig } from '../../src/config/config.js';
import { openRetention } from '../../src/maintenance/retention.js';
import { makeImage, putManifest, startRegistry, type TestRegistry } from '../helpers.js';

const DAY = 86_400_000;

function keepNewestV(count: number): string {
  return JSON.stringify({
    rules: [
      {
        rulePriority: 1,
        description: `keep the ${count} newest v tags`,
        selection: { tagStatus: 'tagged', tagPrefixList: ['v'], countType: 'imageCountMoreThan', countNumber: count },
        action: { type: 'expire' },
      },
    ],
  });
}

function expireUntaggedAfter(days: number): string {
  return JSON.stringify({
    rules: [
      {
        rulePriority: 1,
        description: `expire untagged images after ${days} days`,
        selection: { tagStatus: 'untagged', countType: 'sinceImagePushed', countUnit: 'days', countNumber: days },
        action: { type: 'expire' },
      },
    ],
  });
}

function expireNotPulledFor(days: number): string {
  return JSON.stringify({
    rules: [
      {
        rulePriority: 1,
        description: `expire images not pulled for ${days} days`,
        selection: { tagStatus: 'any', countType: 'sinceImagePulled', countUnit: 'days', countNumber: days },
        action: { type: 'expire' },
      },
    ],
  });
}

function retention(...policies: RetentionPolicyConfig[]): RetentionConfig {
  return { policies, dryRun: false, intervalMs: DAY };
}

let registry: TestRegistry;
let app: FastifyInstance;
let clock: number;

beforeEach(async () => {
  registry = await startRegistry();
  app = registry.app;
  clock = Date.now();
});
afterEach(async () => {
  await registry.destroy();
});

/** Pushes an image under `tag` (by digest when none) and returns its digest. */
async function push(repo: string, tag?: string): Promise<string> {
  const image = await makeImage(app, repo, { layer: `${repo}-${tag ?? 'untagged'}-${Math.random()}` });
  expect((await putManifest(app, repo, tag ?? image.digest, image)).statusCode).toBe(201);
  await new Promise((r) => setTimeout(r, 3)); // distinct push times
  return image.digest;
}

async function pushTags(repo: string, tags: readonly string[]): Promise<Record<string, string>> {
  const digests: Record<string, string> = {};
  for (const tag of tags) digests[tag] = await push(repo, tag);
  return digests;
}

async function tags(repo: string): Promise<string[]> {
  return (await app.inject({ method: 'GET', url: `/v2/${repo}/tags/list` })).json().tags;
}

async function manifestStatus(repo: string, digest: string): Promise<number> {
  return (await app.inject({ method: 'HEAD', url: `/v2/${repo}/manifests/${digest}` })).statusCode;
}

const V_TAGS = ['v1', 'v2', 'v3', 'v4', 'v5'];

describe('openRetention', () => {
  it('keeps the 3 newest v tags in the repositories the patterns match, and nowhere else', async () => {
    const app1 = await pushTags('team/app', [...V_TAGS, 'latest']);
    await pushTags('team/tools/cli', V_TAGS);
    await pushTags('other/app', V_TAGS);
    const engine = openRetention(app.registry, retention({ repositories: ['team/**'], policyText: keepNewestV(3) }), () => clock);

    const dry = await engine.run({ dryRun: true });
    expect(dry.failed).toEqual([]);
    expect(dry.reports.map((r) => [r.repository, r.dryRun, r.expired.map((e) => e.tags.join(','))])).toEqual([
      ['team/app', true, ['v1', 'v2']],
      ['team/tools/cli', true, ['v1', 'v2']],
    ]);
    expect(dry.reports[0]!.expired.map((e) => e.digest)).toEqual([app1.v1, app1.v2]);
    expect(await tags('team/app')).toEqual(['latest', 'v1', 'v2', 'v3', 'v4', 'v5']);

    const run = await engine.run();
    expect(run.failed).toEqual([]);
    expect(run.reports.map((r) => [r.repository, r.expired.length, r.skipped.length])).toEqual([
      ['team/app', 2, 0],
      ['team/tools/cli', 2, 0],
    ]);
    expect(await tags('team/app')).toEqual(['latest', 'v3', 'v4', 'v5']);
    expect(await tags('team/tools/cli')).toEqual(['v3', 'v4', 'v5']);
    expect(await tags('other/app')).toEqual(V_TAGS);
    expect(await manifestStatus('team/app', app1.v1!)).toBe(404);

    // Applied again, the policy has nothing left to expire.
    expect((await engine.run()).reports.every((r) => r.expired.length === 0)).toBe(true);
  });

  it('expires untagged images once they are older than N days', async () => {
    const untagged = await push('team/app');
    const tagged = await push('team/app', 'v1');
    const engine = openRetention(app.registry, retention({ repositories: ['team/app'], policyText: expireUntaggedAfter(7) }), () => clock);

    expect((await engine.run()).reports).toEqual([{ repository: 'team/app', expired: [], skipped: [], dryRun: false }]);
    clock += 7 * DAY - 60_000;
    expect((await engine.run({ dryRun: true })).reports[0]!.expired).toEqual([]);

    clock += 2 * 60_000;
    const dry = await engine.run({ dryRun: true });
    expect(dry.reports[0]!.expired).toEqual([expect.objectContaining({ digest: untagged, tags: [], rulePriority: 1 })]);
    expect(await manifestStatus('team/app', untagged)).toBe(200);

    const run = await engine.run();
    expect(run.reports[0]!.expired.map((e) => e.digest)).toEqual([untagged]);
    expect(await manifestStatus('team/app', untagged)).toBe(404);
    expect(await manifestStatus('team/app', tagged)).toBe(200);
    expect(await tags('team/app')).toEqual(['v1']);
  });

  it('expires images not pulled for N days, and those never pulled and pushed N days ago', async () => {
    const { busy, stale, never } = await pushTags('cache/library/alpine', ['busy', 'stale', 'never']);
    // Pulled now, as a client pulls (by tag, then the manifest by digest).
    for (const tag of ['stale', 'busy']) expect((await app.inject({ method: 'GET', url: `/v2/cache/library/alpine/manifests/${tag}`, headers: { accept: '*/*' } })).statusCode).toBe(200);
    const engine = openRetention(app.registry, retention({ repositories: ['cache/**'], policyText: expireNotPulledFor(30) }), () => clock);
    expect((await engine.run({ dryRun: true })).reports[0]!.expired).toEqual([]);

    // 31 days on: `busy` was pulled again yesterday, `stale` not since, `never` never.
    clock += 31 * DAY;
    app.registry.pulls.record('cache/library/alpine', busy!, clock - DAY);
    await app.registry.pulls.flush();
    const dry = await engine.run({ dryRun: true });
    expect(dry.reports[0]!.expired.map((e) => e.tags)).toEqual([['stale'], ['never']]);
    expect(dry.reports[0]!.expired.map((e) => e.digest)).toEqual([stale, never]);

    const run = await engine.run();
    expect(run.reports[0]!.expired.map((e) => e.digest)).toEqual([stale, never]);
    expect(await tags('cache/library/alpine')).toEqual(['busy']);
    expect(await manifestStatus('cache/library/alpine', stale!)).toBe(404);
  });

  it('applies the first policy whose patterns match a repository', async () => {
    await pushTags('team/special', V_TAGS);
    await pushTags('team/app', V_TAGS);
    const engine = openRetention(
      app.registry,
      retention(
        { repositories: ['other/*', 'team/special'], policyText: keepNewestV(1) },
        { repositories: ['team/**'], policyText: keepNewestV(3) },
        { repositories: ['team/special'], policyText: keepNewestV(4) },
      ),
      () => clock,
    );
    const { reports } = await engine.run();
    expect(reports.map((r) => [r.repository, r.expired.length])).toEqual([
      ['team/app', 2],
      ['team/special', 4],
    ]);
    expect(await tags('team/special')).toEqual(['v5']);
    expect(await tags('team/app')).toEqual(['v3', 'v4', 'v5']);
  });

  it('leaves a repository with an ECR lifecycle policy of its own to that policy', async () => {
    await pushTags('team/own', V_TAGS);
    await pushTags('team/app', V_TAGS);
    expect(await app.registry.database.ecr.update('team/own', { lifecyclePolicy: keepNewestV(1), lifecyclePolicyUpdatedAt: clock })).toBe(true);
    const engine = openRetention(app.registry, retention({ repositories: ['team/**'], policyText: keepNewestV(3) }), () => clock);

    const { reports } = await engine.run();
    expect(reports.map((r) => r.repository)).toEqual(['team/app']);
    // Even asked for by name, the repository's own policy is not replaced by the configured one.
    expect((await engine.run({ repository: 'team/own' })).reports).toEqual([]);
    expect(await tags('team/own')).toEqual(V_TAGS);
    expect(await tags('team/app')).toEqual(['v3', 'v4', 'v5']);
    // ECR's record of the repository's own policy is untouched by the retention run.
    expect((await app.registry.database.ecr.repository('team/own'))?.lifecyclePolicyUpdatedAt).toBe(clock);
  });

  it('does nothing where no pattern matches', async () => {
    await pushTags('other/app', V_TAGS);
    const engine = openRetention(app.registry, retention({ repositories: ['team/**'], policyText: keepNewestV(1) }), () => clock);
    expect(await engine.run()).toEqual({ reports: [], failed: [] });
    expect(await engine.run({ repository: 'other/app' })).toEqual({ reports: [], failed: [] });
    expect(await tags('other/app')).toEqual(V_TAGS);
  });
});
