// Lifecycle policies through the real @aws-sdk/client-ecr against a running registry:
// Put/Get/DeleteLifecyclePolicy with ECR's validation texts, and StartLifecyclePolicyPreview +
// GetLifecyclePolicyPreview, whose results are exactly what a lifecycle run over the same
// registry then expires, for a policy that expires images not pulled for 30 days as well.
import {
  CreateRepositoryCommand,
  DeleteLifecyclePolicyCommand,
  DeleteRepositoryCommand,
  DescribeImagesCommand,
  GetLifecyclePolicyCommand,
  GetLifecyclePolicyPreviewCommand,
  ListImagesCommand,
  PutLifecyclePolicyCommand,
  StartLifecyclePolicyPreviewCommand,
  type ECRClient,
  type LifecyclePolicyPreviewResult,
} from '@aws-sdk/client-ecr';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { awsLogin, pushImage, pushManifest, runLifecycle, tick, v2, type Manifest } from './sdk-fixtures.js';
import { ACCOUNT, REGION, failure, startEcrRegistry, type EcrTestRegistry } from './sdk-support.js';

let registry: EcrTestRegistry;
let admin: ECRClient;
let dev: ECRClient;
let reader: ECRClient;
let auth: string;

beforeAll(async () => {
  registry = await startEcrRegistry();
  admin = registry.client('admin');
  dev = registry.client('dev');
  reader = registry.client('reader');
  auth = await awsLogin(registry);
});
afterAll(async () => {
  await registry?.destroy();
});

const notFound = (name: string) => `The repository with name '${name}' does not exist in the registry with id '${ACCOUNT}'`;
const denied = (user: string, operation: string, name: string) =>
  `User: arn:aws:iam::${ACCOUNT}:user/${user} is not authorized to perform: ecr:${operation} on resource: arn:aws:ecr:${REGION}:${ACCOUNT}:repository/${name} because no identity-based policy allows the ecr:${operation} action`;
const noPolicy = (name: string) => `Lifecycle policy does not exist for the repository with name '${name}' in the registry with id '${ACCOUNT}'`;
const invalid = (reason: string) => `Invalid parameter at 'LifecyclePolicyText' failed to satisfy constraint: 'Lifecycle policy validation failure: ${reason}'`;

type Rule = Record<string, unknown>;
const expire = { type: 'expire' };
/** A policy text of these rules (ECR wants at least 100 characters: the first rule gets a description). */
function policy(...rules: Rule[]): string {
  return JSON.stringify({ rules: rules.map((r, i) => (i === 0 && r.description === undefined ? { description: 'a rule of the sdk lifecycle suite', ...r } : r)) });
}

const POLICY = policy(
  { rulePriority: 1, selection: { tagStatus: 'tagged', tagPrefixList: ['v'], countType: 'imageCountMoreThan', countNumber: 2 }, action: expire },
  { rulePriority: 2, selection: { tagStatus: 'untagged', countType: 'imageCountMoreThan', countNumber: 1 }, action: expire },
  { rulePriority: 3, selection: { tagStatus: 'any', countType: 'imageCountMoreThan', countNumber: 3 }, action: expire },
);

async function repository(name: string): Promise<string> {
  await admin.send(new CreateRepositoryCommand({ repositoryName: name }));
  return name;
}

describe('Put/Get/DeleteLifecyclePolicy', () => {
  it('puts a policy, answers it with lastEvaluatedAt, and deletes it', async () => {
    const repo = await repository('team/lc-policy');
    const before = Date.now();
    const put = await dev.send(new PutLifecyclePolicyCommand({ repositoryName: repo, lifecyclePolicyText: POLICY }));
    expect(put).toMatchObject({ registryId: ACCOUNT, repositoryName: repo, lifecyclePolicyText: POLICY });
    const got = await reader.send(new GetLifecyclePolicyCommand({ repositoryName: repo }));
    expect(got).toMatchObject({ registryId: ACCOUNT, repositoryName: repo, lifecyclePolicyText: POLICY });
    expect(got.lastEvaluatedAt).toBeInstanceOf(Date);
    expect(got.lastEvaluatedAt!.getTime()).toBeGreaterThanOrEqual(before - 1000);
    expect(got.lastEvaluatedAt!.getTime()).toBeLessThanOrEqual(Date.now() + 1000);

    const replaced = policy({ rulePriority: 1, selection: { tagStatus: 'untagged', countType: 'sinceImagePushed', countUnit: 'days', countNumber: 14 }, action: expire });
    await admin.send(new PutLifecyclePolicyCommand({ repositoryName: repo, lifecyclePolicyText: replaced, registryId: ACCOUNT }));
    expect((await admin.send(new GetLifecyclePolicyCommand({ repositoryName: repo }))).lifecyclePolicyText).toBe(replaced);

    const deleted = await dev.send(new DeleteLifecyclePolicyCommand({ repositoryName: repo }));
    expect(deleted).toMatchObject({ registryId: ACCOUNT, repositoryName: repo, lifecyclePolicyText: replaced });
    expect(deleted.lastEvaluatedAt).toBeInstanceOf(Date);
    const gone = await failure(admin.send(new GetLifecyclePolicyCommand({ repositoryName: repo })));
    expect(gone.name).toBe('LifecyclePolicyNotFoundException');
    expect(gone.message).toBe(noPolicy(repo));
    const again = await failure(admin.send(new DeleteLifecyclePolicyCommand({ repositoryName: repo })));
    expect(again.name).toBe('LifecyclePolicyNotFoundException');
    expect(again.message).toBe(noPolicy(repo));
  });

  it.each([
    [
      'two rules of one priority',
      policy(
        { rulePriority: 1, selection: { tagStatus: 'untagged', countType: 'imageCountMoreThan', countNumber: 1 }, action: expire },
        { rulePriority: 1, selection: { tagStatus: 'tagged', tagPrefixList: ['v'], countType: 'imageCountMoreThan', countNumber: 1 }, action: expire },
      ),
      'Rule priorities must be unique; 1 is given to more than one rule.',
    ],
    [
      'an `any` rule before another',
      policy(
        { rulePriority: 1, selection: { tagStatus: 'any', countType: 'imageCountMoreThan', countNumber: 1 }, action: expire },
        { rulePriority: 2, selection: { tagStatus: 'untagged', countType: 'imageCountMoreThan', countNumber: 1 }, action: expire },
      ),
      'Rule for tagStatus=ANY must have the lowest priority.',
    ],
    [
      'a tagged rule without prefixes or patterns',
      policy({ rulePriority: 1, selection: { tagStatus: 'tagged', countType: 'imageCountMoreThan', countNumber: 1 }, action: expire }),
      'Must specify tagPrefixList or tagPatternList when tagStatus=TAGGED.',
    ],
    [
      'a tagged rule with both prefixes and patterns',
      policy({ rulePriority: 1, selection: { tagStatus: 'tagged', tagPrefixList: ['v'], tagPatternList: ['v*'], countType: 'imageCountMoreThan', countNumber: 1 }, action: expire }),
      'tagPrefixList and tagPatternList cannot both be specified in one rule.',
    ],
    [
      'a pattern with five wildcards',
      policy({ rulePriority: 1, selection: { tagStatus: 'tagged', tagPatternList: ['*a*b*c*d*'], countType: 'imageCountMoreThan', countNumber: 1 }, action: expire }),
      "The tag pattern '*a*b*c*d*' has 5 wildcards (*); a pattern may have at most 4.",
    ],
    [
      'a countUnit with imageCountMoreThan',
      policy({ rulePriority: 1, selection: { tagStatus: 'untagged', countType: 'imageCountMoreThan', countUnit: 'days', countNumber: 1 }, action: expire }),
      'instance failed to match exactly one schema (matched 0 out of 2)',
    ],
    [
      'sinceImagePushed without a countUnit',
      policy({ rulePriority: 1, selection: { tagStatus: 'untagged', countType: 'sinceImagePushed', countNumber: 1 }, action: expire }),
      'instance failed to match exactly one schema (matched 0 out of 2)',
    ],
    [
      'a null',
      policy({ rulePriority: 1, selection: { tagStatus: 'untagged', tagPrefixList: null, countType: 'imageCountMoreThan', countNumber: 1 }, action: expire }),
      'instance failed to match exactly one schema (matched 0 out of 2)',
    ],
    [
      'a rule without an action',
      policy({ rulePriority: 1, selection: { tagStatus: 'untagged', countType: 'imageCountMoreThan', countNumber: 1 } }),
      'object has missing required properties (["action"])',
    ],
    [
      'a countNumber of 0',
      policy({ rulePriority: 1, selection: { tagStatus: 'untagged', countType: 'imageCountMoreThan', countNumber: 0 }, action: expire }),
      'numeric instance is lower than the required minimum (minimum: 1, found: 0)',
    ],
    ['text that is not JSON', `not json at all, ${'just words '.repeat(10)}`, 'Could not map policyString into LifecyclePolicy.'],
  ])('refuses %s with InvalidParameterException and ECR\'s text', async (_what, text, reason) => {
    const repo = await repository(`team/lc-bad-${Math.random().toString(36).slice(2, 10)}`);
    const f = await failure(admin.send(new PutLifecyclePolicyCommand({ repositoryName: repo, lifecyclePolicyText: text })));
    expect(f.name).toBe('InvalidParameterException');
    expect(f.status).toBe(400);
    expect(f.message).toBe(invalid(reason));
    expect((await failure(admin.send(new GetLifecyclePolicyCommand({ repositoryName: repo })))).name).toBe('LifecyclePolicyNotFoundException');
    // The preview refuses it with the same text.
    const p = await failure(admin.send(new StartLifecyclePolicyPreviewCommand({ repositoryName: repo, lifecyclePolicyText: text })));
    expect(p.name).toBe('InvalidParameterException');
    expect(p.message).toBe(invalid(reason));
  });

  it('refuses a text shorter than 100 characters, or none, with ValidationException', async () => {
    const repo = await repository('team/lc-short');
    const text = '{"rules":[]}';
    const f = await failure(admin.send(new PutLifecyclePolicyCommand({ repositoryName: repo, lifecyclePolicyText: text })));
    expect(f.name).toBe('ValidationException');
    expect(f.message).toBe(`1 validation error detected: Value '${text}' at 'lifecyclePolicyText' failed to satisfy constraint: Member must have length greater than or equal to 100`);
    const none = await failure(admin.send(new PutLifecyclePolicyCommand({ repositoryName: repo } as never)));
    expect(none.name).toBe('ValidationException');
    expect(none.message).toBe("1 validation error detected: Value null at 'lifecyclePolicyText' failed to satisfy constraint: Member must not be null");
  });

  it('answers RepositoryNotFoundException for each of the three', async () => {
    for (const command of [
      new PutLifecyclePolicyCommand({ repositoryName: 'team/lc-none', lifecyclePolicyText: POLICY }),
      new GetLifecyclePolicyCommand({ repositoryName: 'team/lc-none' }),
      new DeleteLifecyclePolicyCommand({ repositoryName: 'team/lc-none' }),
    ]) {
      const f = await failure(admin.send(command as never));
      expect(f.name).toBe('RepositoryNotFoundException');
      expect(f.message).toBe(notFound('team/lc-none'));
    }
  });

  it('lets the reader read a policy, never put or delete one; the dev key is refused outside team/', async () => {
    const repo = await repository('ops/lc');
    await admin.send(new PutLifecyclePolicyCommand({ repositoryName: repo, lifecyclePolicyText: POLICY }));
    expect((await reader.send(new GetLifecyclePolicyCommand({ repositoryName: repo }))).lifecyclePolicyText).toBe(POLICY);
    const rp = await failure(reader.send(new PutLifecyclePolicyCommand({ repositoryName: repo, lifecyclePolicyText: POLICY })));
    expect(rp.name).toBe('AccessDeniedException');
    expect(rp.message).toBe(denied('reader', 'PutLifecyclePolicy', repo));
    const rd = await failure(reader.send(new DeleteLifecyclePolicyCommand({ repositoryName: repo })));
    expect(rd.name).toBe('AccessDeniedException');
    const dp = await failure(dev.send(new PutLifecyclePolicyCommand({ repositoryName: repo, lifecyclePolicyText: POLICY })));
    expect(dp.name).toBe('AccessDeniedException');
    expect(dp.message).toBe(denied('dev', 'PutLifecyclePolicy', repo));
    const dd = await failure(dev.send(new DeleteLifecyclePolicyCommand({ repositoryName: repo })));
    expect(dd.name).toBe('AccessDeniedException');
    expect((await admin.send(new GetLifecyclePolicyCommand({ repositoryName: repo }))).lifecyclePolicyText).toBe(POLICY);
  });
});

describe('StartLifecyclePolicyPreview and GetLifecyclePolicyPreview', () => {
  const REPO = 'team/lc-preview';
  const images: Record<string, Manifest> = {};
  beforeAll(async () => {
    await repository(REPO);
    // Pushed in this order, each a little later than the one before.
    for (const [name, tag] of [['v1', 'v1'], ['u1', undefined], ['v2', 'v2'], ['prod1', 'prod-1'], ['v3', 'v3'], ['u2', undefined], ['v4', 'v4']] as const) {
      images[name] = await pushImage(registry, auth, REPO, tag, `lc-preview-${name}`);
      await tick();
    }
    await pushManifest(registry, auth, REPO, 'v4-alias', images.v4!);
  });

  /** What the policy expires: rule 1 the two oldest v* images, rule 2 the older untagged one, rule 3 prod-1 (the others it sees are taken). */
  const expected = () => [
    { digest: images.v1!.digest, tags: ['v1'], rule: 1 },
    { digest: images.v2!.digest, tags: ['v2'], rule: 1 },
    { digest: images.u1!.digest, tags: [], rule: 2 },
    { digest: images.prod1!.digest, tags: ['prod-1'], rule: 3 },
  ];
  const summary = (results: readonly LifecyclePolicyPreviewResult[]) =>
    results.map((r) => ({ digest: r.imageDigest, tags: r.imageTags ?? [], rule: r.appliedRulePriority }));

  it('answers LifecyclePolicyPreviewNotFoundException before any preview, LifecyclePolicyNotFoundException without a policy', async () => {
    const f = await failure(reader.send(new GetLifecyclePolicyPreviewCommand({ repositoryName: REPO })));
    expect(f.name).toBe('LifecyclePolicyPreviewNotFoundException');
    expect(f.status).toBe(400);
    expect(f.message).toContain(`'${REPO}'`);
    const g = await failure(admin.send(new StartLifecyclePolicyPreviewCommand({ repositoryName: REPO })));
    expect(g.name).toBe('LifecyclePolicyNotFoundException');
    expect(g.message).toBe(noPolicy(REPO));
  });

  it('previews exactly what a run then expires', async () => {
    await admin.send(new PutLifecyclePolicyCommand({ repositoryName: REPO, lifecyclePolicyText: POLICY }));
    const started = await dev.send(new StartLifecyclePolicyPreviewCommand({ repositoryName: REPO }));
    expect(started).toMatchObject({ registryId: ACCOUNT, repositoryName: REPO, lifecyclePolicyText: POLICY, status: 'IN_PROGRESS' });

    const preview = await reader.send(new GetLifecyclePolicyPreviewCommand({ repositoryName: REPO }));
    expect(preview).toMatchObject({ registryId: ACCOUNT, repositoryName: REPO, lifecyclePolicyText: POLICY, status: 'COMPLETE', summary: { expiringImageTotalCount: 4 } });
    expect(preview.nextToken).toBeUndefined();
    expect(summary(preview.previewResults!)).toEqual(expected());
    for (const r of preview.previewResults!) {
      expect(r.action).toEqual({ type: 'EXPIRE' });
      expect(r.imagePushedAt).toBeInstanceOf(Date);
    }
    const pushedAt = preview.previewResults!.map((r) => r.imagePushedAt!.getTime());
    expect(pushedAt[0]).toBeLessThan(pushedAt[1]!);

    // A dry run plans the same; the run expires the same, and only those.
    const [dry] = await runLifecycle(registry, { repository: REPO, dryRun: true });
    expect(dry!.expired.map((e) => ({ digest: e.digest, tags: [...e.tags], rule: e.rulePriority }))).toEqual(expected());
    const lastBefore = (await admin.send(new GetLifecyclePolicyCommand({ repositoryName: REPO }))).lastEvaluatedAt!.getTime();
    await tick();
    const [run] = await runLifecycle(registry, { repository: REPO });
    expect(run!.expired.map((e) => e.digest)).toEqual(preview.previewResults!.map((r) => r.imageDigest));
    expect(run!.skipped).toEqual([]);

    const left = await admin.send(new ListImagesCommand({ repositoryName: REPO }));
    const leftDigests = new Set(left.imageIds!.map((i) => i.imageDigest));
    for (const r of preview.previewResults!) expect(leftDigests.has(r.imageDigest)).toBe(false);
    expect([...leftDigests].sort()).toEqual([images.v3!.digest, images.u2!.digest, images.v4!.digest].sort());
    const after = await admin.send(new GetLifecyclePolicyCommand({ repositoryName: REPO }));
    expect(after.lastEvaluatedAt!.getTime()).toBeGreaterThan(lastBefore);

    // Evaluated again over what is left, the policy expires nothing more.
    await admin.send(new StartLifecyclePolicyPreviewCommand({ repositoryName: REPO }));
    const again = await admin.send(new GetLifecyclePolicyPreviewCommand({ repositoryName: REPO }));
    expect(again.previewResults).toEqual([]);
    expect(again.summary).toEqual({ expiringImageTotalCount: 0 });
  });

  it('previews a policy given in the request without putting it, and pages, filters and selects its results', async () => {
    const repo = await repository('team/lc-preview-given');
    const pushed: Manifest[] = [];
    for (let i = 0; i < 5; i++) {
      pushed.push(await pushImage(registry, auth, repo, i % 2 === 0 ? `rc-${i}` : undefined, `given-${i}`));
      await tick();
    }
    const text = policy({ rulePriority: 5, selection: { tagStatus: 'any', countType: 'imageCountMoreThan', countNumber: 1 }, action: expire });
    const started = await admin.send(new StartLifecyclePolicyPreviewCommand({ repositoryName: repo, lifecyclePolicyText: text }));
    expect(started.lifecyclePolicyText).toBe(text);
    expect((await failure(admin.send(new GetLifecyclePolicyCommand({ repositoryName: repo })))).name).toBe('LifecyclePolicyNotFoundException');

    // All but the newest, oldest first, walked one at a time.
    const seen: string[] = [];
    let nextToken: string | undefined;
    for (let n = 0; n < 10; n++) {
      const page = await reader.send(new GetLifecyclePolicyPreviewCommand({ repositoryName: repo, maxResults: 1, ...(nextToken ? { nextToken } : {}) }));
      expect(page.previewResults!.length).toBeLessThanOrEqual(1);
      expect(page.summary).toEqual({ expiringImageTotalCount: 4 });
      seen.push(...page.previewResults!.map((r) => r.imageDigest!));
      nextToken = page.nextToken;
      if (!nextToken) break;
    }
    expect(seen).toEqual(pushed.slice(0, 4).map((m) => m.digest));

    const untagged = await reader.send(new GetLifecyclePolicyPreviewCommand({ repositoryName: repo, filter: { tagStatus: 'UNTAGGED' } }));
    expect(untagged.previewResults!.map((r) => r.imageDigest)).toEqual([pushed[1]!.digest, pushed[3]!.digest]);
    const tagged = await reader.send(new GetLifecyclePolicyPreviewCommand({ repositoryName: repo, filter: { tagStatus: 'TAGGED' } }));
    expect(tagged.previewResults!.map((r) => r.imageTags)).toEqual([['rc-0'], ['rc-2']]);
    const picked = await reader.send(new GetLifecyclePolicyPreviewCommand({ repositoryName: repo, imageIds: [{ imageTag: 'rc-2' }, { imageDigest: pushed[1]!.digest }, { imageTag: 'rc-4' }] }));
    expect(picked.previewResults!.map((r) => r.imageDigest)).toEqual([pushed[1]!.digest, pushed[2]!.digest]);
  });

  it('refuses imageIds with maxResults or nextToken, maxResults outside 1..100, and a tag over 300 characters', async () => {
    const withMax = await failure(admin.send(new GetLifecyclePolicyPreviewCommand({ repositoryName: REPO, imageIds: [{ imageTag: 'v1' }], maxResults: 10 })));
    expect(withMax.name).toBe('InvalidParameterException');
    const withToken = await failure(admin.send(new GetLifecyclePolicyPreviewCommand({ repositoryName: REPO, imageIds: [{ imageTag: 'v1' }], nextToken: 'eyJvIjoxfQ' })));
    expect(withToken.name).toBe('InvalidParameterException');
    for (const maxResults of [0, 101]) {
      const f = await failure(admin.send(new GetLifecyclePolicyPreviewCommand({ repositoryName: REPO, maxResults })));
      expect(f.name).toBe('ValidationException');
      expect(f.message).toBe(
        `1 validation error detected: Value ${maxResults} at 'maxResults' failed to satisfy constraint: Member must have value ${maxResults === 0 ? 'greater than or equal to 1' : 'less than or equal to 100'}`,
      );
    }
    const long = 'l'.repeat(301);
    const t = await failure(admin.send(new GetLifecyclePolicyPreviewCommand({ repositoryName: REPO, imageIds: [{ imageTag: long }] })));
    expect(t.name).toBe('ValidationException');
    expect(t.message).toContain(`Value '${long}' at 'imageIds.1.member.imageTag' failed to satisfy constraint: Member must have length less than or equal to 300`);
    const token = await failure(admin.send(new GetLifecyclePolicyPreviewCommand({ repositoryName: REPO, nextToken: 'garbage' })));
    expect(token.name).toBe('InvalidParameterException');
    const status = await failure(admin.send(new GetLifecyclePolicyPreviewCommand({ repositoryName: REPO, filter: { tagStatus: 'NONE' as never } })));
    expect(status.name).toBe('ValidationException');
  });

  it('answers RepositoryNotFoundException for both, and forgets a preview with its repository', async () => {
    const f = await failure(admin.send(new StartLifecyclePolicyPreviewCommand({ repositoryName: 'team/lc-nowhere', lifecyclePolicyText: POLICY })));
    expect(f.name).toBe('RepositoryNotFoundException');
    expect(f.message).toBe(notFound('team/lc-nowhere'));
    const g = await failure(admin.send(new GetLifecyclePolicyPreviewCommand({ repositoryName: 'team/lc-nowhere' })));
    expect(g.name).toBe('RepositoryNotFoundException');

    const repo = await repository('team/lc-forgotten');
    await admin.send(new StartLifecyclePolicyPreviewCommand({ repositoryName: repo, lifecyclePolicyText: POLICY }));
    expect((await admin.send(new GetLifecyclePolicyPreviewCommand({ repositoryName: repo }))).status).toBe('COMPLETE');
    await admin.send(new DeleteRepositoryCommand({ repositoryName: repo }));
    await repository(repo);
    const h = await failure(admin.send(new GetLifecyclePolicyPreviewCommand({ repositoryName: repo })));
    expect(h.name).toBe('LifecyclePolicyPreviewNotFoundException');
  });

  it('lets the reader read a preview, never start one; the dev key cannot start one outside team/', async () => {
    const repo = await repository('ops/lc-preview');
    const r = await failure(reader.send(new StartLifecyclePolicyPreviewCommand({ repositoryName: REPO, lifecyclePolicyText: POLICY })));
    expect(r.name).toBe('AccessDeniedException');
    expect(r.message).toBe(denied('reader', 'StartLifecyclePolicyPreview', REPO));
    const d = await failure(dev.send(new StartLifecyclePolicyPreviewCommand({ repositoryName: repo, lifecyclePolicyText: POLICY })));
    expect(d.name).toBe('AccessDeniedException');
    expect(d.message).toBe(denied('dev', 'StartLifecyclePolicyPreview', repo));
    const none = await failure(reader.send(new GetLifecyclePolicyPreviewCommand({ repositoryName: repo })));
    expect(none.name).toBe('LifecyclePolicyPreviewNotFoundException');
  });
});

describe('sinceImagePulled (ECR archives by it; this registry expires)', () => {
  const DAY = 86_400_000;
  const NOT_PULLED_FOR_30_DAYS = policy({
    rulePriority: 1,
    description: 'Expire images not pulled for 30 days',
    selection: { tagStatus: 'any', countType: 'sinceImagePulled', countUnit: 'days', countNumber: 30 },
    action: expire,
  });

  it('is put and refused as ECR shapes it: countUnit days, no transition', async () => {
    const repo = await repository('team/lc-pulled-policy');
    await admin.send(new PutLifecyclePolicyCommand({ repositoryName: repo, lifecyclePolicyText: NOT_PULLED_FOR_30_DAYS }));
    expect((await reader.send(new GetLifecyclePolicyCommand({ repositoryName: repo }))).lifecyclePolicyText).toBe(NOT_PULLED_FOR_30_DAYS);
    const noUnit = policy({ rulePriority: 1, selection: { tagStatus: 'any', countType: 'sinceImagePulled', countNumber: 30 }, action: expire });
    const f = await failure(admin.send(new PutLifecyclePolicyCommand({ repositoryName: repo, lifecyclePolicyText: noUnit })));
    expect(f.name).toBe('InvalidParameterException');
    expect(f.message).toBe(invalid('instance failed to match exactly one schema (matched 0 out of 2)'));
    const archive = policy({ rulePriority: 1, selection: { tagStatus: 'any', countType: 'sinceImagePulled', countUnit: 'days', countNumber: 30 }, action: { type: 'transition', targetStorageClass: 'archive' } });
    const t = await failure(admin.send(new PutLifecyclePolicyCommand({ repositoryName: repo, lifecyclePolicyText: archive })));
    expect(t.message).toBe(invalid("action type 'transition' is not supported by this registry: it has no archive storage class."));
    expect((await reader.send(new GetLifecyclePolicyCommand({ repositoryName: repo }))).lifecyclePolicyText).toBe(NOT_PULLED_FOR_30_DAYS);
  });

  describe('over a registry whose wall clock the test moves', () => {
    // The app's lifecycle, its SigV4 check and the SDK's signing all read Date, and none takes a
    // clock from outside buildApp: only Date is faked (timers stay real), from before the
    // registry starts until it is gone, so that every one of them sees the same time. Node's own
    // Date response header is not faked, and an SDK client corrects its clock by it: each call
    // gets a new client.
    let moved: EcrTestRegistry;
    let movedAuth: string;
    beforeAll(async () => {
      vi.useFakeTimers({ toFake: ['Date'] });
      moved = await startEcrRegistry();
      movedAuth = await awsLogin(moved);
    });
    afterAll(async () => {
      await moved?.destroy();
      vi.useRealTimers();
    });

    it('previews, then expires, the images not pulled for 30 days and those never pulled', async () => {
      const send: ECRClient['send'] = (command: never) => moved.client('admin').send(command);
      const repo = 'team/lc-pulled';
      await send(new CreateRepositoryCommand({ repositoryName: repo }));
      const busy = await pushImage(moved, movedAuth, repo, 'busy', 'lc-pulled-busy');
      vi.setSystemTime(Date.now() + 5);
      const stale = await pushImage(moved, movedAuth, repo, 'stale', 'lc-pulled-stale');
      vi.setSystemTime(Date.now() + 5);
      const never = await pushImage(moved, movedAuth, repo, undefined, 'lc-pulled-never');
      // Pulled now, as docker pulls.
      for (const tag of ['busy', 'stale']) {
        expect((await v2(moved, movedAuth, 'GET', `/v2/${repo}/manifests/${tag}`, { headers: { accept: '*/*' } })).status).toBe(200);
      }
      await send(new PutLifecyclePolicyCommand({ repositoryName: repo, lifecyclePolicyText: NOT_PULLED_FOR_30_DAYS }));

      // 31 days on: `busy` was pulled again yesterday, `stale` not since, the untagged image never.
      vi.setSystemTime(Date.now() + 31 * DAY);
      const yesterday = Date.now() - DAY;
      moved.app.registry.pulls.record(repo, busy.digest, yesterday);

      await send(new StartLifecyclePolicyPreviewCommand({ repositoryName: repo }));
      const preview = await send(new GetLifecyclePolicyPreviewCommand({ repositoryName: repo }));
      expect(preview.status).toBe('COMPLETE');
      expect(preview.summary).toEqual({ expiringImageTotalCount: 2 });
      expect(summary(preview.previewResults!)).toEqual([
        { digest: stale.digest, tags: ['stale'], rule: 1 },
        { digest: never.digest, tags: [], rule: 1 },
      ]);
      const described = await send(new DescribeImagesCommand({ repositoryName: repo, imageIds: [{ imageTag: 'busy' }] }));
      expect(described.imageDetails![0]!.lastRecordedPullTime!.getTime()).toBe(yesterday);

      const [run] = await runLifecycle(moved, { repository: repo });
      expect(run!.expired.map((e) => e.digest)).toEqual(preview.previewResults!.map((r) => r.imageDigest));
      expect(run!.skipped).toEqual([]);
      const left = await send(new ListImagesCommand({ repositoryName: repo }));
      expect(left.imageIds).toEqual([{ imageDigest: busy.digest, imageTag: 'busy' }]);
    });
  });
});

/** Preview results as digest, tags and rule. */
function summary(results: readonly LifecyclePolicyPreviewResult[]) {
  return results.map((r) => ({ digest: r.imageDigest, tags: r.imageTags ?? [], rule: r.appliedRulePriority }));
}
