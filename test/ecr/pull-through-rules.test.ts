// PullThroughRules over a real SQLite index: what the pull-through cache reads of ECR's rules
// (all, ensureRepository), ValidatePullThroughCacheRule's probe, the upstream and secret
// checks, and the repositories a first pull creates under a PULL_THROUGH_CACHE template.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DEFAULT_PROXY, type ProxyConfig, type UpstreamConfig } from '../../src/config/config.js';
import { EcrError } from '../../src/ecr/errors.js';
import { PullThroughRules, secretNames } from '../../src/ecr/pull-through-rules.js';
import { upstreamMatches } from '../../src/config/config.js';
import { RegistryError } from '../../src/oci/errors.js';
import type { UpstreamProbe } from '../../src/proxy/sources.js';
import { ACCOUNT, REPOSITORY_POLICY, openFixture, type EcrFixture } from './repositories-support.js';

const SECRET = (name: string) => `arn:aws:secretsmanager:us-east-1:${ACCOUNT}:secret:ecr-pullthroughcache/${name}`;

const PROXY: ProxyConfig = {
  ...DEFAULT_PROXY,
  allowedUpstreams: [...DEFAULT_PROXY.allowedUpstreams, 'http://127.0.0.1:5999'],
  credentials: {
    dockerhub: { username: 'hub-user', password: 'hub-password' },
    'ecr-pullthroughcache/quay': { username: 'quay-user', password: 'quay-password' },
    hubonly: { username: 'hub-user', password: 'hub-password', upstreams: ['https://registry-1.docker.io'] },
  },
};

let f: EcrFixture;
let probed: UpstreamConfig[];
let answer: Awaited<ReturnType<UpstreamProbe>> | Error;
let rules: PullThroughRules;

beforeEach(async () => {
  f = await openFixture();
  probed = [];
  answer = { ok: true };
  const probe: UpstreamProbe = async (upstream) => {
    probed.push(upstream);
    if (answer instanceof Error) throw answer;
    return answer;
  };
  rules = new PullThroughRules(f.index.ecr, f.ecr, PROXY, probe, f.repositories, () => f.clock.now);
});
afterEach(async () => {
  await f.close();
});

async function refusal(promise: Promise<unknown>): Promise<EcrError> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof EcrError) return err;
    throw err;
  }
  throw new Error('succeeded; a refusal was expected');
}

describe('all(): the rules as the cache reads them', () => {
  it('gives each prefix without its /, the upstream base URL, the upstream prefix and the credentials name', async () => {
    await rules.create('hub/', { upstreamRegistryUrl: 'registry-1.docker.io', credentialArn: SECRET('dockerhub-AbC123') });
    await rules.create('quay', { upstreamRegistryUrl: 'https://quay.io', credentialArn: SECRET('quay'), upstreamRepositoryPrefix: 'team/' });
    await rules.create('ROOT', { upstreamRegistryUrl: 'public.ecr.aws' });
    await rules.create('local', { upstreamRegistryUrl: 'http://127.0.0.1:5999', upstreamRepositoryPrefix: 'ROOT' });
    expect(await rules.all()).toEqual([
      { ecrRepositoryPrefix: 'ROOT', upstreamUrl: 'https://public.ecr.aws' },
      { ecrRepositoryPrefix: 'hub', upstreamUrl: 'https://registry-1.docker.io', credentialName: 'dockerhub' },
      { ecrRepositoryPrefix: 'local', upstreamUrl: 'http://127.0.0.1:5999' },
      { ecrRepositoryPrefix: 'quay', upstreamUrl: 'https://quay.io', upstreamRepositoryPrefix: 'team', credentialName: 'ecr-pullthroughcache/quay' },
    ]);
    // What the API shows is what was given.
    expect(await rules.get('hub')).toMatchObject({ ecrRepositoryPrefix: 'hub/', upstreamRegistryUrl: 'registry-1.docker.io', upstreamRegistry: 'docker-hub' });
  });

  it('keeps no credentials in the index, only the ARN', async () => {
    await rules.create('hub', { upstreamRegistryUrl: 'registry-1.docker.io', credentialArn: SECRET('dockerhub') });
    const rows = JSON.stringify(f.db.prepare('SELECT * FROM ecr_pull_through_rules').all());
    expect(rows).toContain(SECRET('dockerhub'));
    expect(rows).not.toContain('hub-password');
    expect(rows).not.toContain('hub-user');
  });

  it('reads past one page of the index', async () => {
    const many = new PullThroughRules(f.index.ecr, f.ecr, PROXY, async () => ({ ok: true }), f.repositories);
    for (let i = 0; i < 520; i++) await f.index.ecr.insertPullThroughRule(`p${String(i).padStart(3, '0')}`, JSON.stringify({ upstreamUrl: 'https://quay.io' }), i);
    const all = await many.all();
    expect(all).toHaveLength(520);
    expect(all[519]!.ecrRepositoryPrefix).toBe('p519');
  });
});

describe('create: the checks', () => {
  it('refuses an upstream outside proxy.allowedupstreams, whatever its spelling', async () => {
    for (const url of ['http://169.254.169.254', '169.254.169.254', 'http://registry-1.docker.io', 'registry-1.docker.io:8443', 'http://127.0.0.1:6000', 'evil.example']) {
      const e = await refusal(rules.create('hub', { upstreamRegistryUrl: url }));
      expect(e.type, url).toBe('UnsupportedUpstreamRegistryException');
      expect(e.message).toContain(`'${url}'`);
    }
    const bad = await refusal(rules.create('hub', { upstreamRegistryUrl: 'https://quay.io/some/path' }));
    expect(bad.type).toBe('InvalidParameterException');
    expect(await rules.all()).toEqual([]);
  });

  it('takes any subdomain of a *. entry, not the domain itself', async () => {
    await rules.create('azure', { upstreamRegistryUrl: 'myregistry.azurecr.io' });
    expect(await rules.get('azure')).toMatchObject({ upstreamUrl: 'https://myregistry.azurecr.io', upstreamRegistry: 'azure-container-registry' });
    expect((await refusal(rules.create('azure2', { upstreamRegistryUrl: 'azurecr.io' }))).type).toBe('UnsupportedUpstreamRegistryException');
    expect((await refusal(rules.create('azure3', { upstreamRegistryUrl: 'evilazurecr.io' }))).type).toBe('UnsupportedUpstreamRegistryException');
  });

  it('refuses a secret that proxy.credentials does not hold', async () => {
    const e = await refusal(rules.create('hub', { upstreamRegistryUrl: 'registry-1.docker.io', credentialArn: SECRET('nobody') }));
    expect(e.type).toBe('SecretNotFoundException');
    expect(e.message).toContain(SECRET('nobody'));
  });

  it("refuses a prefix of the configuration's proxy.rules, and ignores the root mirror", async () => {
    const configured = new PullThroughRules(
      f.index.ecr,
      f.ecr,
      {
        ...PROXY,
        rules: [
          { prefix: 'mirror', upstream: { url: 'https://quay.io', dockerHub: false }, ttlMs: 1 },
          { prefix: '', upstream: { url: 'https://quay.io', dockerHub: false }, ttlMs: 1 },
        ],
      },
      async () => ({ ok: true }),
      f.repositories,
    );
    const e = await refusal(configured.create('mirror/', { upstreamRegistryUrl: 'quay.io' }));
    expect(e.type).toBe('PullThroughCacheRuleAlreadyExistsException');
    expect(e.message).toContain('proxy.rules');
    await configured.create('ROOT', { upstreamRegistryUrl: 'quay.io' });
    await configured.create('mirror2', { upstreamRegistryUrl: 'quay.io' });
  });

  it('refuses an upstream prefix under ROOT, and a rule past the 50th', async () => {
    const root = await refusal(rules.create('ROOT', { upstreamRegistryUrl: 'quay.io', upstreamRepositoryPrefix: 'team' }));
    expect(root.type).toBe('InvalidParameterException');
    for (let i = 0; i < 50; i++) await rules.create(`r${i}`, { upstreamRegistryUrl: 'quay.io' });
    expect((await refusal(rules.create('one-more', { upstreamRegistryUrl: 'quay.io' }))).type).toBe('LimitExceededException');
    expect((await refusal(rules.create('r1', { upstreamRegistryUrl: 'quay.io' }))).type).toBe('PullThroughCacheRuleAlreadyExistsException');
  });
});

describe('validate', () => {
  it('asks the probe with the upstream and its credentials, and reports its verdict', async () => {
    await rules.create('hub', { upstreamRegistryUrl: 'registry-1.docker.io', credentialArn: SECRET('dockerhub') });
    const ok = await rules.validate('hub/');
    expect(ok).toMatchObject({ isValid: true, rule: { ecrRepositoryPrefix: 'hub' } });
    expect(ok.failure).toBeUndefined();
    expect(probed).toEqual([{ url: 'https://registry-1.docker.io', dockerHub: true, username: 'hub-user', password: 'hub-password' }]);

    answer = { ok: false, reason: 'the upstream answered 401 to these credentials' };
    expect(await rules.validate('hub')).toMatchObject({ isValid: false, failure: 'the upstream answered 401 to these credentials' });
    answer = new Error('connect ECONNREFUSED 127.0.0.1:5999');
    expect(await rules.validate('hub')).toMatchObject({ isValid: false, failure: expect.stringContaining('ECONNREFUSED') });
  });

  it('probes anonymously without a credentialArn; a secret gone from the configuration is a failed validation', async () => {
    await rules.create('local', { upstreamRegistryUrl: 'http://127.0.0.1:5999' });
    expect(await rules.validate('local')).toMatchObject({ isValid: true });
    expect(probed).toEqual([{ url: 'http://127.0.0.1:5999', dockerHub: false }]);

    await rules.create('hub', { upstreamRegistryUrl: 'registry-1.docker.io', credentialArn: SECRET('dockerhub') });
    const forgetful = new PullThroughRules(f.index.ecr, f.ecr, { ...PROXY, credentials: {} }, async () => ({ ok: true }), f.repositories);
    expect(await forgetful.validate('hub')).toMatchObject({ isValid: false, failure: expect.stringContaining('proxy.credentials') });
    expect((await forgetful.all()).find((r) => r.ecrRepositoryPrefix === 'hub')?.credentialName).toBe('dockerhub');
  });

  it('answers PullThroughCacheRuleNotFoundException for a prefix without a rule', async () => {
    expect((await refusal(rules.validate('nothing'))).type).toBe('PullThroughCacheRuleNotFoundException');
    expect(probed).toEqual([]);
  });
});

describe('update', () => {
  it('changes the secret and the role, and the time; not the rest', async () => {
    await rules.create('hub', { upstreamRegistryUrl: 'registry-1.docker.io' });
    const created = f.clock.now;
    f.clock.now += 60_000;
    const updated = await rules.update('hub/', { credentialArn: SECRET('dockerhub-Xy12Zw'), customRoleArn: `arn:aws:iam::${ACCOUNT}:role/r` });
    expect(updated).toMatchObject({ ecrRepositoryPrefix: 'hub', credentialArn: SECRET('dockerhub-Xy12Zw'), createdAt: created, updatedAt: created + 60_000 });
    expect((await refusal(rules.update('hub', { credentialArn: SECRET('nobody') }))).type).toBe('SecretNotFoundException');
    expect((await rules.get('hub'))!.credentialArn).toBe(SECRET('dockerhub-Xy12Zw'));
  });
});

describe('the names of a secret and the allowed upstreams', () => {
  it('secretNames: the short name, the whole name, and both without a Secrets Manager suffix', () => {
    expect(secretNames(SECRET('dockerhub-AbC123'))).toEqual(['dockerhub-AbC123', 'ecr-pullthroughcache/dockerhub-AbC123', 'dockerhub', 'ecr-pullthroughcache/dockerhub']);
    expect(secretNames(SECRET('team/hub'))).toEqual(['team/hub', 'ecr-pullthroughcache/team/hub']);
    expect(secretNames('arn:aws:secretsmanager:us-east-1:1:secret:other/x')).toEqual([]);
  });

  it('upstreamMatches: scheme, host and port exactly; *. for subdomains', () => {
    expect(upstreamMatches('https://quay.io', 'https://quay.io')).toBe(true);
    expect(upstreamMatches('https://quay.io', 'http://quay.io')).toBe(false);
    expect(upstreamMatches('https://quay.io', 'https://quay.io:444')).toBe(false);
    expect(upstreamMatches('http://127.0.0.1:5999', 'http://127.0.0.1:5999')).toBe(true);
    expect(upstreamMatches('http://[::1]:5999', 'http://[::1]:5999')).toBe(true);
    expect(upstreamMatches('https://*.azurecr.io', 'https://a.b.azurecr.io')).toBe(true);
    expect(upstreamMatches('https://*.azurecr.io', 'https://azurecr.io')).toBe(false);
  });
});

describe('ensureRepository: the repository of a first pull', () => {
  const template = (prefix: string, appliedFor: string[], extra: Record<string, unknown> = {}) =>
    f.call('CreateRepositoryCreationTemplate', { prefix, appliedFor, ...extra });

  it("takes a PULL_THROUGH_CACHE template's settings", async () => {
    await template('hub', ['PULL_THROUGH_CACHE'], {
      imageTagMutability: 'IMMUTABLE',
      resourceTags: [{ Key: 'source', Value: 'docker-hub' }],
      repositoryPolicy: REPOSITORY_POLICY,
    });
    await rules.ensureRepository('hub/library/alpine');
    expect(await f.repositories.get('hub/library/alpine')).toMatchObject({ imageTagMutability: 'IMMUTABLE' });
    expect(await f.repositories.tags('hub/library/alpine')).toEqual([{ Key: 'source', Value: 'docker-hub' }]);
    expect(await f.repositories.policy('hub/library/alpine')).toBe(REPOSITORY_POLICY);
    expect(await f.registry.index.catalog('', 10)).toEqual(['hub/library/alpine']);
  });

  it('passes over a CREATE_ON_PUSH-only template (ECR defaults), and creates no repository for a push', async () => {
    await template('hub', ['CREATE_ON_PUSH'], { imageTagMutability: 'IMMUTABLE' });
    await template('ROOT', ['PULL_THROUGH_CACHE', 'CREATE_ON_PUSH'], { imageTagMutability: 'MUTABLE', resourceTags: [{ Key: 'root', Value: 'yes' }] });
    await rules.ensureRepository('hub/library/busybox');
    // The CREATE_ON_PUSH-only template of 'hub' is passed over; ROOT's, for both uses, applies.
    expect(await f.repositories.get('hub/library/busybox')).toMatchObject({ imageTagMutability: 'MUTABLE' });
    expect(await f.repositories.tags('hub/library/busybox')).toEqual([{ Key: 'root', Value: 'yes' }]);

    await f.call('DeleteRepositoryCreationTemplate', { prefix: 'ROOT' });
    await rules.ensureRepository('hub/library/nginx');
    expect(await f.repositories.get('hub/library/nginx')).toMatchObject({ imageTagMutability: 'MUTABLE' });
    expect(await f.repositories.tags('hub/library/nginx')).toEqual([]);
  });

  it('leaves an existing repository as it is, tolerates a concurrent creation, and refuses a name ECR cannot take', async () => {
    await f.call('CreateRepository', { repositoryName: 'hub/app', imageTagMutability: 'IMMUTABLE' });
    await template('hub', ['PULL_THROUGH_CACHE'], { resourceTags: [{ Key: 'k', Value: 'v' }] });
    await rules.ensureRepository('hub/app');
    expect(await f.repositories.tags('hub/app')).toEqual([]);

    await Promise.all([rules.ensureRepository('hub/twice'), rules.ensureRepository('hub/twice'), rules.ensureRepository('hub/twice')]);
    expect(await f.repositories.tags('hub/twice')).toEqual([{ Key: 'k', Value: 'v' }]);

    await expect(rules.ensureRepository('a')).rejects.toSatisfy((err) => err instanceof RegistryError && err.code === 'NAME_INVALID');
    expect(await f.repositories.get('a')).toBeUndefined();
  });
});

describe('credentials tied to their upstreams (proxy.credentials.<name>.upstreams)', () => {
  it('go only to the upstreams they name: elsewhere the rule is refused, on create and on update', async () => {
    const hub = await rules.create('hub', { upstreamRegistryUrl: 'registry-1.docker.io', credentialArn: SECRET('hubonly') });
    expect(hub.credentialArn).toBe(SECRET('hubonly'));
    const refused = await refusal(rules.create('quay', { upstreamRegistryUrl: 'quay.io', credentialArn: SECRET('hubonly') }));
    expect(refused.type).toBe('UnableToAccessSecretException');
    expect(refused.message).toContain('https://quay.io');
    await rules.create('quay', { upstreamRegistryUrl: 'quay.io' });
    expect((await refusal(rules.update('quay', { credentialArn: SECRET('hubonly') }))).type).toBe('UnableToAccessSecretException');
    expect((await rules.get('quay'))?.credentialArn).toBeUndefined();
  });
});
