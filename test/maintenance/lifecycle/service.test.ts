// The lifecycle service over a real registry: a preview is exactly what a run expires; a run
// leaves an image whose tags changed since the plan, or that was pulled since a pull rule planned
// it; a broken stored policy is reported and nothing is expired; a dry run deletes nothing.
import { createHash } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EcrImages } from '../../../src/ecr/images.js';
import type { ImageFacts } from '../../../src/maintenance/lifecycle/evaluate.js';
import { LifecycleService, type LifecycleSources } from '../../../src/maintenance/lifecycle/service.js';
import { makeImage, putManifest, startRegistry, type TestRegistry } from '../../helpers.js';

const REPO = 'team/app';
const KEEP_NEWEST_V = JSON.stringify({
  rules: [
    {
      rulePriority: 1,
      description: 'keep the newest v image',
      selection: { tagStatus: 'tagged', tagPrefixList: ['v'], countType: 'imageCountMoreThan', countNumber: 1 },
      action: { type: 'expire' },
    },
  ],
});

const DAY = 86_400_000;
const NOT_PULLED_FOR_30_DAYS = JSON.stringify({
  rules: [
    {
      rulePriority: 1,
      description: 'expire images not pulled for 30 days',
      selection: { tagStatus: 'any', countType: 'sinceImagePulled', countUnit: 'days', countNumber: 30 },
      action: { type: 'expire' },
    },
  ],
});

let registry: TestRegistry;
let policies: Map<string, string>;
let evaluated: string[];
let clock: number;

beforeEach(async () => {
  registry = await startRegistry();
  policies = new Map([[REPO, KEEP_NEWEST_V]]);
  evaluated = [];
  clock = Date.now();
});
afterEach(async () => {
  await registry.destroy();
});

function service(images?: (repo: string) => Promise<ImageFacts[]>): LifecycleService {
  const reg = registry.app.registry;
  const real = new EcrImages(reg, reg.database.images);
  const sources: LifecycleSources = {
    policyOf: async (repo) => policies.get(repo),
    repositoriesWithPolicies: async () => [...policies.keys()].sort(),
    images: images ?? ((repo) => real.lifecycleImages(repo)),
    referenced: async (repo, digest) => (await real.parentsOf(repo, digest)).length > 0,
    evaluated: async (repo) => {
      evaluated.push(repo);
    },
  };
  return new LifecycleService(reg, sources, () => clock);
}

async function push(app: FastifyInstance, repo: string, tag: string): Promise<string> {
  const image = await makeImage(app, repo, { layer: `${tag}-${Math.random()}` });
  const res = await putManifest(app, repo, tag, image);
  expect(res.statusCode).toBe(201);
  await new Promise((r) => setTimeout(r, 3)); // distinct push times
  return image.digest;
}

async function tags(repo = REPO): Promise<string[]> {
  return (await registry.app.inject({ method: 'GET', url: `/v2/${repo}/tags/list` })).json().tags;
}

describe('LifecycleService', () => {
  it('expires in a run exactly what the preview showed', async () => {
    const v1 = await push(registry.app, REPO, 'v1');
    const v2 = await push(registry.app, REPO, 'v2');
    await push(registry.app, REPO, 'v3');
    const lifecycle = service();
    const preview = await lifecycle.startPreview(REPO, KEEP_NEWEST_V);
    expect(preview.status).toBe('COMPLETE');
    expect(preview.expirations.map((e) => e.digest)).toEqual([v1, v2]);
    expect((await lifecycle.preview(REPO))?.expirations).toEqual(preview.expirations);

    const { reports, failed } = await lifecycle.run();
    expect(failed).toEqual([]);
    expect(reports).toHaveLength(1);
    expect(reports[0]!.expired).toEqual(preview.expirations);
    expect(await tags()).toEqual(['v3']);
    expect(evaluated).toEqual([REPO]);
    const gone = await registry.app.inject({ method: 'GET', url: `/v2/${REPO}/manifests/${v1}` });
    expect(gone.statusCode).toBe(404);
  });

  it('keeps an image whose tags changed since the plan was made', async () => {
    const v1 = await push(registry.app, REPO, 'v1');
    await push(registry.app, REPO, 'v2');
    // The plan sees v1 with its tag only; by the time it is applied, v1 also carries "release".
    const manifest = await registry.app.inject({ method: 'GET', url: `/v2/${REPO}/manifests/${v1}`, headers: { accept: '*/*' } });
    const stale = await new EcrImages(registry.app.registry, registry.app.registry.database.images).lifecycleImages(REPO);
    await registry.app.inject({
      method: 'PUT',
      url: `/v2/${REPO}/manifests/release`,
      headers: { 'content-type': manifest.headers['content-type'] as string },
      payload: manifest.rawPayload,
    });
    const run = await service(async () => stale).run();
    expect(run.reports[0]!.expired).toEqual([]);
    expect(run.reports[0]!.skipped.map((e) => e.digest)).toEqual([v1]);
    expect(await tags()).toEqual(['release', 'v1', 'v2']);
    // A new plan, made now, sees both tags (and still expires v1: one of its tags starts with v).
    expect(await service().plan(REPO, KEEP_NEWEST_V)).toEqual([expect.objectContaining({ digest: v1, tags: ['release', 'v1'] })]);
  });

  it('keeps an image that an index has listed since the plan was made', async () => {
    const v1 = await push(registry.app, REPO, 'v1');
    await push(registry.app, REPO, 'v2');
    const stale = await new EcrImages(registry.app.registry, registry.app.registry.database.images).lifecycleImages(REPO);
    const child = await registry.app.inject({ method: 'GET', url: `/v2/${REPO}/manifests/${v1}`, headers: { accept: '*/*' } });
    const index = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.index.v1+json',
        manifests: [{ mediaType: child.headers['content-type'], digest: v1, size: child.rawPayload.length, platform: { os: 'linux', architecture: 'amd64' } }],
      }),
    );
    const put = await registry.app.inject({
      method: 'PUT',
      url: `/v2/${REPO}/manifests/${createHash('sha256').update(index).digest('hex').replace(/^/, 'sha256:')}`,
      headers: { 'content-type': 'application/vnd.oci.image.index.v1+json' },
      payload: index,
    });
    expect(put.statusCode).toBe(201);
    const run = await service(async () => stale).run();
    expect(run.reports[0]!.skipped.map((e) => e.digest)).toEqual([v1]);
    expect((await registry.app.inject({ method: 'HEAD', url: `/v2/${REPO}/manifests/${v1}` })).statusCode).toBe(200);
  });

  it('reports a stored policy that no longer parses and expires nothing', async () => {
    await push(registry.app, REPO, 'v1');
    await push(registry.app, REPO, 'v2');
    policies.set(REPO, '{"rules": []}');
    const { reports, failed } = await service().run();
    expect(reports).toEqual([]);
    expect(failed).toEqual([{ repository: REPO, reason: expect.stringContaining('LifecyclePolicyText') }]);
    expect(await tags()).toEqual(['v1', 'v2']);
    expect(evaluated).toEqual([]);
  });

  it('deletes nothing on a dry run, and runs one repository when asked', async () => {
    await push(registry.app, REPO, 'v1');
    await push(registry.app, REPO, 'v2');
    await push(registry.app, 'other/app', 'v1');
    await push(registry.app, 'other/app', 'v2');
    policies.set('other/app', KEEP_NEWEST_V);
    const dry = await service().run({ dryRun: true });
    expect(dry.reports.map((r) => [r.repository, r.expired.length])).toEqual([['other/app', 1], [REPO, 1]]);
    expect(await tags()).toEqual(['v1', 'v2']);
    await service().run({ repository: 'other/app' });
    expect(await tags('other/app')).toEqual(['v2']);
    expect(await tags()).toEqual(['v1', 'v2']);
  });

  it('expires by pull time, a never-pulled image by its push, exactly as the preview showed', async () => {
    const busy = await push(registry.app, REPO, 'busy');
    const stale = await push(registry.app, REPO, 'stale');
    const never = await push(registry.app, REPO, 'never');
    // A real pull now (the route records it, not yet written to the index), and one a day before the clock's "now".
    const pulled = await registry.app.inject({ method: 'GET', url: `/v2/${REPO}/manifests/stale`, headers: { accept: '*/*' } });
    expect(pulled.statusCode).toBe(200);
    clock += 40 * DAY;
    registry.app.registry.pulls.record(REPO, busy, clock - DAY);
    policies.set(REPO, NOT_PULLED_FOR_30_DAYS);

    const lifecycle = service();
    const preview = await lifecycle.startPreview(REPO, NOT_PULLED_FOR_30_DAYS);
    expect(preview.expirations.map((e) => [e.digest, e.tags])).toEqual([[stale, ['stale']], [never, ['never']]]);
    expect(preview.expirations[0]!.lastPulledAt).toBeLessThanOrEqual(Date.now());
    expect(preview.expirations[1]!.lastPulledAt).toBeUndefined();
    // Written to the index or not, the pull times read the same.
    await registry.app.registry.pulls.flush();
    expect(await lifecycle.plan(REPO, NOT_PULLED_FOR_30_DAYS)).toEqual(preview.expirations);

    const { reports } = await lifecycle.run();
    expect(reports[0]!.expired).toEqual(preview.expirations);
    expect(reports[0]!.skipped).toEqual([]);
    expect(await tags()).toEqual(['busy']);
  });

  it('keeps an image that was pulled after a pull rule planned to expire it', async () => {
    await push(registry.app, REPO, 'v1');
    const v2 = await push(registry.app, REPO, 'v2');
    clock += 31 * DAY;
    policies.set(REPO, NOT_PULLED_FOR_30_DAYS);
    const reg = registry.app.registry;
    const real = new EcrImages(reg, reg.database.images);
    // The plan sees neither pulled; v2 is pulled before the plan is applied.
    const run = await service(async (repo) => {
      const facts = await real.lifecycleImages(repo);
      reg.pulls.record(repo, v2, clock);
      return facts;
    }).run();
    expect(run.reports[0]!.expired.map((e) => e.tags)).toEqual([['v1']]);
    expect(run.reports[0]!.skipped.map((e) => e.digest)).toEqual([v2]);
    expect(await tags()).toEqual(['v2']);
  });

  it('says a preview older than a day has EXPIRED, without its results', async () => {
    await push(registry.app, REPO, 'v1');
    await push(registry.app, REPO, 'v2');
    const lifecycle = service();
    await lifecycle.startPreview(REPO, KEEP_NEWEST_V);
    clock += 25 * 3600_000;
    expect(await lifecycle.preview(REPO)).toMatchObject({ status: 'EXPIRED', expirations: [] });
    expect(await lifecycle.preview('team/none')).toBeUndefined();
  });
});
