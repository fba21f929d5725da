// ECR's pull-through cache rule operations through the real @aws-sdk/client-ecr against a running
// registry: Create/Describe/Update/Delete/ValidatePullThroughCacheRule(s) with their shapes,
// pages and errors; rules are the admins' alone.
//
// The app gives openEcr its ProxyConfig and UpstreamProbe; this file wraps openEcr so that its
// rules see the configuration below and a probe the tests control, whatever the app passes.
import {
  CreatePullThroughCacheRuleCommand,
  DeletePullThroughCacheRuleCommand,
  DescribePullThroughCacheRulesCommand,
  UpdatePullThroughCacheRuleCommand,
  ValidatePullThroughCacheRuleCommand,
  type ECRClient,
} from '@aws-sdk/client-ecr';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { DEFAULT_PROXY, type ProxyConfig, type UpstreamConfig } from '../../src/config/config.js';
import type { UpstreamProbe } from '../../src/proxy/sources.js';
import { ACCOUNT, REGION, failure, startEcrRegistry, type EcrTestRegistry } from './sdk-support.js';

const hooks = vi.hoisted(() => ({
  proxy: undefined as ProxyConfig | undefined,
  probe: undefined as UpstreamProbe | undefined,
}));
vi.mock('../../src/ecr/setup.js', async (importOriginal) => {
  const setup = await importOriginal<typeof import('../../src/ecr/setup.js')>();
  return {
    ...setup,
    openEcr: (...[registry, ecr, credentials, options]: Parameters<typeof setup.openEcr>) =>
      setup.openEcr(registry, ecr, credentials, { ...options, ...(hooks.proxy ? { proxy: hooks.proxy } : {}), ...(hooks.probe ? { probe: hooks.probe } : {}) }),
  };
});

const LOCAL_UPSTREAM = 'http://127.0.0.1:5999';
const SECRET = (name: string) => `arn:aws:secretsmanager:${REGION}:${ACCOUNT}:secret:ecr-pullthroughcache/${name}`;
const TARGET = 'AmazonEC2ContainerRegistry_V20150921.';
const REGISTRY_ARN = `arn:aws:ecr:${REGION}:${ACCOUNT}:registry/${ACCOUNT}`;
const OPERATIONS = [
  'CreatePullThroughCacheRule',
  'DescribePullThroughCacheRules',
  'UpdatePullThroughCacheRule',
  'DeletePullThroughCacheRule',
  'ValidatePullThroughCacheRule',
] as const;

let registry: EcrTestRegistry;
let admin: ECRClient;
let probed: UpstreamConfig[] = [];
let verdict: Awaited<ReturnType<UpstreamProbe>> = { ok: true };

beforeAll(async () => {
  hooks.proxy = {
    ...DEFAULT_PROXY,
    rules: [{ prefix: 'mirror', upstream: { url: 'https://quay.io', dockerHub: false }, ttlMs: 60_000 }],
    credentials: { dockerhub: { username: 'hub-user', password: 'hub-password-0123' } },
    allowedUpstreams: [...DEFAULT_PROXY.allowedUpstreams, LOCAL_UPSTREAM],
  };
  hooks.probe = async (upstream) => {
    probed.push(upstream);
    return verdict;
  };
  registry = await startEcrRegistry();
  admin = registry.client('admin');
});
afterAll(async () => {
  await registry?.destroy();
});
beforeEach(async () => {
  probed = [];
  verdict = { ok: true };
  const { pullThroughCacheRules = [] } = await admin.send(new DescribePullThroughCacheRulesCommand({}));
  for (const r of pullThroughCacheRules) await admin.send(new DeletePullThroughCacheRuleCommand({ ecrRepositoryPrefix: r.ecrRepositoryPrefix }));
});

const create = (input: Omit<ConstructorParameters<typeof CreatePullThroughCacheRuleCommand>[0], 'upstreamRegistryUrl'> & { upstreamRegistryUrl?: string }) =>
  admin.send(new CreatePullThroughCacheRuleCommand({ upstreamRegistryUrl: 'registry-1.docker.io', ...input }));
const prefixes = async (): Promise<string[]> =>
  ((await admin.send(new DescribePullThroughCacheRulesCommand({}))).pullThroughCacheRules ?? []).map((r) => r.ecrRepositoryPrefix!);

describe('a rule from creation to deletion', () => {
  it("creates, describes, updates and deletes a rule, in ECR's shapes", async () => {
    const before = Date.now();
    const created = await create({ ecrRepositoryPrefix: 'docker-hub', credentialArn: SECRET('dockerhub-AbC123') });
    const { $metadata: _m, ...shape } = created;
    expect(shape).toEqual({
      ecrRepositoryPrefix: 'docker-hub',
      upstreamRegistryUrl: 'registry-1.docker.io',
      createdAt: expect.any(Date),
      registryId: ACCOUNT,
      upstreamRegistry: 'docker-hub',
      credentialArn: SECRET('dockerhub-AbC123'),
    });
    expect(created.createdAt!.getTime()).toBeGreaterThanOrEqual(before - 1000);

    const described = await admin.send(new DescribePullThroughCacheRulesCommand({}));
    expect(described.nextToken).toBeUndefined();
    expect(described.pullThroughCacheRules).toEqual([
      {
        ecrRepositoryPrefix: 'docker-hub',
        upstreamRegistryUrl: 'registry-1.docker.io',
        createdAt: created.createdAt,
        registryId: ACCOUNT,
        credentialArn: SECRET('dockerhub-AbC123'),
        upstreamRegistry: 'docker-hub',
        updatedAt: created.createdAt,
      },
    ]);
    // ECR reads a prefix as ending in '/': 'docker-hub/' names the same rule.
    const one = await admin.send(new DescribePullThroughCacheRulesCommand({ ecrRepositoryPrefixes: ['docker-hub/', 'docker-hub'] }));
    expect(one.pullThroughCacheRules).toEqual(described.pullThroughCacheRules);

    await new Promise((resolve) => setTimeout(resolve, 20));
    const updated = await admin.send(
      new UpdatePullThroughCacheRuleCommand({ ecrRepositoryPrefix: 'docker-hub', credentialArn: SECRET('dockerhub'), customRoleArn: `arn:aws:iam::${ACCOUNT}:role/ptc` }),
    );
    expect(updated).toMatchObject({
      ecrRepositoryPrefix: 'docker-hub',
      registryId: ACCOUNT,
      credentialArn: SECRET('dockerhub'),
      customRoleArn: `arn:aws:iam::${ACCOUNT}:role/ptc`,
    });
    expect(updated.updatedAt!.getTime()).toBeGreaterThan(created.createdAt!.getTime());
    const after = (await admin.send(new DescribePullThroughCacheRulesCommand({}))).pullThroughCacheRules![0]!;
    expect(after).toMatchObject({ createdAt: created.createdAt, updatedAt: updated.updatedAt, credentialArn: SECRET('dockerhub'), upstreamRegistryUrl: 'registry-1.docker.io' });

    const deleted = await admin.send(new DeletePullThroughCacheRuleCommand({ ecrRepositoryPrefix: 'docker-hub/' }));
    const { $metadata: _d, ...gone } = deleted;
    expect(gone).toEqual({
      ecrRepositoryPrefix: 'docker-hub',
      upstreamRegistryUrl: 'registry-1.docker.io',
      createdAt: created.createdAt,
      registryId: ACCOUNT,
      credentialArn: SECRET('dockerhub'),
      customRoleArn: `arn:aws:iam::${ACCOUNT}:role/ptc`,
    });
    expect(await prefixes()).toEqual([]);
  });

  it('takes ROOT, a loopback upstream allowed by proxy.allowedupstreams, and an upstream repository prefix', async () => {
    await create({ ecrRepositoryPrefix: 'ROOT', upstreamRegistryUrl: 'public.ecr.aws' });
    const local = await create({ ecrRepositoryPrefix: 'local/cache', upstreamRegistryUrl: LOCAL_UPSTREAM, upstreamRepositoryPrefix: 'team', upstreamRegistry: 'ecr' });
    expect(local).toMatchObject({ upstreamRegistryUrl: LOCAL_UPSTREAM, upstreamRepositoryPrefix: 'team', upstreamRegistry: 'ecr' });
    expect(await prefixes()).toEqual(['ROOT', 'local/cache']);
  });
});

describe('ValidatePullThroughCacheRule', () => {
  it("asks the probe about the rule's upstream with its credentials and answers its verdict", async () => {
    await create({ ecrRepositoryPrefix: 'docker-hub', credentialArn: SECRET('dockerhub') });
    const ok = await admin.send(new ValidatePullThroughCacheRuleCommand({ ecrRepositoryPrefix: 'docker-hub' }));
    const { $metadata: _m, ...shape } = ok;
    expect(shape).toEqual({
      ecrRepositoryPrefix: 'docker-hub',
      registryId: ACCOUNT,
      upstreamRegistryUrl: 'registry-1.docker.io',
      credentialArn: SECRET('dockerhub'),
      isValid: true,
    });
    expect(probed).toEqual([{ url: 'https://registry-1.docker.io', dockerHub: true, username: 'hub-user', password: 'hub-password-0123' }]);

    verdict = { ok: false, reason: 'the upstream answered 401 Unauthorized to these credentials' };
    const bad = await admin.send(new ValidatePullThroughCacheRuleCommand({ ecrRepositoryPrefix: 'docker-hub/' }));
    expect(bad).toMatchObject({ isValid: false, failure: 'the upstream answered 401 Unauthorized to these credentials' });
  });
});

describe('errors', () => {
  it('a prefix, an ARN, a role or an upstreamRegistry outside the model is a ValidationException', async () => {
    const prefix = await failure(create({ ecrRepositoryPrefix: 'Docker_Hub' }));
    expect(prefix.name).toBe('ValidationException');
    expect(prefix.message).toBe(
      "1 validation error detected: Value 'Docker_Hub' at 'ecrRepositoryPrefix' failed to satisfy constraint: Member must satisfy regular expression pattern: " +
        '([a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*(\\/[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*)*\\/?|ROOT)',
    );
    const long = await failure(create({ ecrRepositoryPrefix: 'a'.repeat(31) }));
    expect(long.message).toContain('Member must have length less than or equal to 30');
    const arn = await failure(create({ ecrRepositoryPrefix: 'hub', credentialArn: `arn:aws:secretsmanager:${REGION}:${ACCOUNT}:secret:other/dockerhub-name` }));
    expect(arn.name).toBe('ValidationException');
    expect(arn.message).toContain("at 'credentialArn' failed to satisfy constraint: Member must satisfy regular expression pattern");
    const upstream = await failure(create({ ecrRepositoryPrefix: 'hub', upstreamRegistry: 'artifactory' as never }));
    expect(upstream.name).toBe('ValidationException');
    expect(upstream.message).toContain(
      "Value 'artifactory' at 'upstreamRegistry' failed to satisfy constraint: Member must satisfy enum value set: [ecr, ecr-public, quay, k8s, docker-hub, github-container-registry, azure-container-registry, gitlab-container-registry, chainguard]",
    );
    const update = await failure(admin.send(new UpdatePullThroughCacheRuleCommand({ ecrRepositoryPrefix: 'hub', customRoleArn: 'r'.repeat(2049) })));
    expect(update.name).toBe('ValidationException');
    const describe = await failure(admin.send(new DescribePullThroughCacheRulesCommand({ maxResults: 0 })));
    expect(describe.name).toBe('ValidationException');
    expect(await prefixes()).toEqual([]);
  });

  it('an upstream outside proxy.allowedupstreams is an UnsupportedUpstreamRegistryException (the registry fetches from nowhere else)', async () => {
    for (const url of ['http://169.254.169.254', '169.254.169.254', 'localhost:5000', 'http://registry-1.docker.io', 'https://quay.io:8443', 'http://127.0.0.1:6000', 'azurecr.io']) {
      const f = await failure(create({ ecrRepositoryPrefix: 'hub', upstreamRegistryUrl: url }));
      expect(f.name, url).toBe('UnsupportedUpstreamRegistryException');
      expect(f.status).toBe(400);
      expect(f.message).toContain(`'${url}'`);
    }
    const path = await failure(create({ ecrRepositoryPrefix: 'hub', upstreamRegistryUrl: 'https://quay.io/v2/' }));
    expect(path.name).toBe('InvalidParameterException');
    expect(await prefixes()).toEqual([]);
  });

  it('a secret that proxy.credentials does not hold is a SecretNotFoundException, on create and on update', async () => {
    const f = await failure(create({ ecrRepositoryPrefix: 'hub', credentialArn: SECRET('nobody') }));
    expect(f.name).toBe('SecretNotFoundException');
    expect(f.message).toContain(SECRET('nobody'));
    expect(f.message).not.toContain('hub-password');
    await create({ ecrRepositoryPrefix: 'hub' });
    const u = await failure(admin.send(new UpdatePullThroughCacheRuleCommand({ ecrRepositoryPrefix: 'hub', credentialArn: SECRET('nobody') })));
    expect(u.name).toBe('SecretNotFoundException');
    expect((await admin.send(new DescribePullThroughCacheRulesCommand({}))).pullThroughCacheRules![0]!.credentialArn).toBeUndefined();
  });

  it("a prefix that a rule has, of the API's or of the configuration's, is a PullThroughCacheRuleAlreadyExistsException", async () => {
    await create({ ecrRepositoryPrefix: 'hub' });
    for (const prefix of ['hub', 'hub/']) {
      const f = await failure(create({ ecrRepositoryPrefix: prefix, upstreamRegistryUrl: 'quay.io' }));
      expect(f.name).toBe('PullThroughCacheRuleAlreadyExistsException');
      expect(f.message).toBe(`A pull through cache rule with prefix '${prefix}' already exists in the registry with id '${ACCOUNT}'`);
    }
    const configured = await failure(create({ ecrRepositoryPrefix: 'mirror' }));
    expect(configured.name).toBe('PullThroughCacheRuleAlreadyExistsException');
    expect(configured.message).toContain('proxy.rules');
    expect(configured.message).toContain('precedence');
    expect(await prefixes()).toEqual(['hub']);
  });

  it('ROOT with an upstream repository prefix, and an update that changes nothing, are InvalidParameterException', async () => {
    const root = await failure(create({ ecrRepositoryPrefix: 'ROOT', upstreamRepositoryPrefix: 'library' }));
    expect(root.name).toBe('InvalidParameterException');
    await create({ ecrRepositoryPrefix: 'hub' });
    const nothing = await failure(admin.send(new UpdatePullThroughCacheRuleCommand({ ecrRepositoryPrefix: 'hub' })));
    expect(nothing.name).toBe('InvalidParameterException');
    const mixed = await failure(admin.send(new DescribePullThroughCacheRulesCommand({ ecrRepositoryPrefixes: ['hub'], maxResults: 5 })));
    expect(mixed.name).toBe('InvalidParameterException');
    const other = await failure(create({ ecrRepositoryPrefix: 'elsewhere', registryId: '210987654321' }));
    expect(other.name).toBe('InvalidParameterException');
  });

  it('a prefix without a rule is a PullThroughCacheRuleNotFoundException for describe, update, delete and validate', async () => {
    await create({ ecrRepositoryPrefix: 'hub' });
    const message = `The pull through cache rule with prefix 'nothing' does not exist in the registry with id '${ACCOUNT}'`;
    for (const call of [
      admin.send(new DescribePullThroughCacheRulesCommand({ ecrRepositoryPrefixes: ['hub', 'nothing'] })),
      admin.send(new UpdatePullThroughCacheRuleCommand({ ecrRepositoryPrefix: 'nothing', customRoleArn: 'arn:aws:iam::1:role/r' })),
      admin.send(new DeletePullThroughCacheRuleCommand({ ecrRepositoryPrefix: 'nothing' })),
      admin.send(new ValidatePullThroughCacheRuleCommand({ ecrRepositoryPrefix: 'nothing' })),
    ]) {
      const f = await failure(call);
      expect(f.name).toBe('PullThroughCacheRuleNotFoundException');
      expect(f.message).toBe(message);
    }
    // Another registry's id names a registry this server does not hold.
    const elsewhere = await failure(admin.send(new DeletePullThroughCacheRuleCommand({ ecrRepositoryPrefix: 'hub', registryId: '210987654321' })));
    expect(elsewhere.name).toBe('PullThroughCacheRuleNotFoundException');
    expect((await admin.send(new DescribePullThroughCacheRulesCommand({ registryId: '210987654321' }))).pullThroughCacheRules).toEqual([]);
    expect(probed).toEqual([]);
    expect(await prefixes()).toEqual(['hub']);
  });
});

describe('pages', () => {
  it('pages by prefix in byte order with maxResults and nextToken; 100 a page without maxResults', async () => {
    const names = ['quay', 'hub/b', 'hub/a', 'ROOT', 'hub-x', 'k8s', 'a1'];
    for (const p of names) await create({ ecrRepositoryPrefix: p, upstreamRegistryUrl: 'quay.io' });
    const seen: string[][] = [];
    let nextToken: string | undefined;
    do {
      const page = await admin.send(new DescribePullThroughCacheRulesCommand({ maxResults: 3, ...(nextToken ? { nextToken } : {}) }));
      seen.push(page.pullThroughCacheRules!.map((r) => r.ecrRepositoryPrefix!));
      nextToken = page.nextToken;
    } while (nextToken && seen.length < 10);
    expect(seen).toEqual([['ROOT', 'a1', 'hub-x'], ['hub/a', 'hub/b', 'k8s'], ['quay']]);
    const exact = await admin.send(new DescribePullThroughCacheRulesCommand({ maxResults: 7 }));
    expect(exact.pullThroughCacheRules).toHaveLength(7);
    expect(exact.nextToken).toBeUndefined();
    const bad = await failure(admin.send(new DescribePullThroughCacheRulesCommand({ nextToken: 'not-a-token' })));
    expect(bad.name).toBe('InvalidParameterException');
  });
});

describe('rights', () => {
  const inputs: Record<(typeof OPERATIONS)[number], Record<string, unknown>> = {
    CreatePullThroughCacheRule: { ecrRepositoryPrefix: 'team/hub', upstreamRegistryUrl: 'registry-1.docker.io' },
    DescribePullThroughCacheRules: {},
    UpdatePullThroughCacheRule: { ecrRepositoryPrefix: 'hub', credentialArn: SECRET('dockerhub') },
    DeletePullThroughCacheRule: { ecrRepositoryPrefix: 'hub' },
    ValidatePullThroughCacheRule: { ecrRepositoryPrefix: 'hub' },
  };

  it('refuses an unsigned request to every rule operation', async () => {
    await create({ ecrRepositoryPrefix: 'hub' });
    for (const operation of OPERATIONS) {
      const res = await fetch(registry.url, {
        method: 'POST',
        headers: { 'x-amz-target': `${TARGET}${operation}`, 'content-type': 'application/x-amz-json-1.1' },
        body: JSON.stringify(inputs[operation]),
      });
      expect(res.status, operation).toBe(403);
      expect(((await res.json()) as { __type: string }).__type).toBe('MissingAuthenticationTokenException');
    }
    expect(probed).toEqual([]);
    expect(await prefixes()).toEqual(['hub']);
  });

  it('refuses a signed caller who is not an admin, even one who manages repositories, with AccessDeniedException', async () => {
    await create({ ecrRepositoryPrefix: 'hub' });
    const commands = [
      () => new CreatePullThroughCacheRuleCommand(inputs.CreatePullThroughCacheRule as never),
      () => new DescribePullThroughCacheRulesCommand({}),
      () => new UpdatePullThroughCacheRuleCommand(inputs.UpdatePullThroughCacheRule as never),
      () => new DeletePullThroughCacheRuleCommand(inputs.DeletePullThroughCacheRule as never),
      () => new ValidatePullThroughCacheRuleCommand(inputs.ValidatePullThroughCacheRule as never),
    ];
    for (const user of ['dev', 'reader'] as const) {
      const client = registry.client(user);
      for (const [i, command] of commands.entries()) {
        const f = await failure(client.send(command() as never));
        expect(f.name, `${user} ${OPERATIONS[i]}`).toBe('AccessDeniedException');
        expect(f.message).toBe(
          `User: arn:aws:iam::${ACCOUNT}:user/${user} is not authorized to perform: ecr:${OPERATIONS[i]} on resource: ${REGISTRY_ARN} because no identity-based policy allows the ecr:${OPERATIONS[i]} action`,
        );
      }
    }
    // Nor does an unknown upstream or secret tell them anything: the right is checked first.
    const probe = await failure(registry.client('dev').send(new CreatePullThroughCacheRuleCommand({ ecrRepositoryPrefix: 'x1', upstreamRegistryUrl: 'http://169.254.169.254' })));
    expect(probe.name).toBe('AccessDeniedException');
    expect(probed).toEqual([]);
    const rules = (await admin.send(new DescribePullThroughCacheRulesCommand({}))).pullThroughCacheRules!;
    expect(rules.map((r) => [r.ecrRepositoryPrefix, r.credentialArn])).toEqual([['hub', undefined]]);
  });
});
