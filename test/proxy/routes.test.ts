import { describe, expect, it } from 'vitest';
import { DEFAULT_PROXY, type ProxyConfig } from '../../src/config/config.js';
import { PullThroughCache } from '../../src/proxy/cache.js';
import type { EcrRuleSource, EcrRuleView } from '../../src/proxy/sources.js';
import type { Registry } from '../../src/registry/registry.js';

const quiet = { warn: () => undefined, info: () => undefined };

function cacheOf(config: Partial<ProxyConfig>, ecrRules?: EcrRuleView[]): PullThroughCache {
  const ecr: EcrRuleSource | undefined = ecrRules ? { all: async () => ecrRules, ensureRepository: async () => undefined } : undefined;
  return new PullThroughCache({ registry: {} as Registry, config: { ...DEFAULT_PROXY, ...config }, ...(ecr ? { ecr } : {}), log: quiet });
}

const where = async (cache: PullThroughCache, name: string) => {
  const route = await cache.route(name);
  return route && { prefix: route.prefix, upstream: route.client.url, name: route.upstreamName, ttlMs: route.ttlMs };
};

const HUB = { url: 'https://registry-1.docker.io', dockerHub: true };
const QUAY = { url: 'https://quay.io', dockerHub: false };

describe('which upstream serves a name', () => {
  it("a root mirror serves every name; Docker Hub's official images are library/<name>", async () => {
    const cache = cacheOf({ rules: [{ prefix: '', upstream: HUB, ttlMs: 1000 }] });
    expect(await where(cache, 'alpine')).toEqual({ prefix: '', upstream: HUB.url, name: 'library/alpine', ttlMs: 1000 });
    expect((await where(cache, 'library/alpine'))?.name).toBe('library/alpine');
    expect((await where(cache, 'bitnami/redis'))?.name).toBe('bitnami/redis');
    expect(cache.active).toBe(true);
  });

  it('another upstream keeps one-part names as they are', async () => {
    const cache = cacheOf({ rules: [{ prefix: '', upstream: QUAY, ttlMs: 1000 }] });
    expect((await where(cache, 'alpine'))?.name).toBe('alpine');
  });

  it('prefix rules: the longest that covers the name wins, the root mirror takes the rest, the prefix alone is no one’s', async () => {
    const cache = cacheOf({
      rules: [
        { prefix: 'hub/special', upstream: QUAY, ttlMs: 1 },
        { prefix: 'hub', upstream: HUB, ttlMs: 2 },
        { prefix: '', upstream: QUAY, ttlMs: 3 },
      ],
    });
    expect(await where(cache, 'hub/special/x')).toMatchObject({ prefix: 'hub/special', upstream: QUAY.url, name: 'x' });
    expect(await where(cache, 'hub/nginx')).toMatchObject({ prefix: 'hub', upstream: HUB.url, name: 'library/nginx' });
    expect(await where(cache, 'hubris/x')).toMatchObject({ prefix: '', name: 'hubris/x' });
    expect(await where(cache, 'hub')).toMatchObject({ prefix: '', name: 'hub' });
    const rulesOnly = cacheOf({ rules: [{ prefix: 'hub', upstream: HUB, ttlMs: 2 }] });
    expect(await where(rulesOnly, 'hub')).toBeUndefined();
    expect(await where(rulesOnly, 'mine/app')).toBeUndefined();
    expect(await rulesOnly.proxies('mine/app')).toBe(false);
    expect(await rulesOnly.proxies('hub/x')).toBe(true);
  });

  it("ECR's rules: by prefix (the longest), ROOT for the rest, the upstream prefix put in front, credentials by name", async () => {
    const cache = cacheOf({ credentials: { hub: { username: 'u', password: 'p' } }, ttlMs: 7 }, [
      { ecrRepositoryPrefix: 'ROOT', upstreamUrl: 'https://public.ecr.aws' },
      { ecrRepositoryPrefix: 'docker-hub', upstreamUrl: 'https://registry-1.docker.io', credentialName: 'hub' },
      { ecrRepositoryPrefix: 'docker-hub/mirrors', upstreamUrl: 'https://quay.io', upstreamRepositoryPrefix: 'team' },
    ]);
    expect(await where(cache, 'docker-hub/nginx')).toEqual({ prefix: 'docker-hub', upstream: HUB.url, name: 'library/nginx', ttlMs: 7 });
    const route = await cache.route('docker-hub/nginx');
    expect(route?.client.upstream).toMatchObject({ username: 'u', password: 'p' });
    expect(await where(cache, 'docker-hub/mirrors/tool')).toMatchObject({ upstream: QUAY.url, name: 'team/tool' });
    expect(await where(cache, 'anything/else')).toMatchObject({ prefix: 'ROOT', upstream: 'https://public.ecr.aws', name: 'anything/else' });
  });

  it("a rule whose credentials the configuration no longer has answers 503, not an anonymous pull", async () => {
    const cache = cacheOf({}, [{ ecrRepositoryPrefix: 'up', upstreamUrl: 'https://quay.io', credentialName: 'gone' }]);
    await expect(cache.route('up/x')).rejects.toMatchObject({ code: 'UNAVAILABLE', status: 503 });
  });

  it('over both kinds the longest prefix wins; the configuration wins a tie', async () => {
    const cache = cacheOf({ rules: [{ prefix: 'mirror', upstream: QUAY, ttlMs: 1 }, { prefix: '', upstream: QUAY, ttlMs: 1 }] }, [
      { ecrRepositoryPrefix: 'ROOT', upstreamUrl: 'https://public.ecr.aws' },
      { ecrRepositoryPrefix: 'mirror/deeper', upstreamUrl: 'https://ghcr.io' },
      { ecrRepositoryPrefix: 'ecr', upstreamUrl: 'https://ghcr.io' },
    ]);
    expect(await where(cache, 'mirror/x')).toMatchObject({ prefix: 'mirror', upstream: QUAY.url, name: 'x' });
    expect(await where(cache, 'mirror/deeper/x')).toMatchObject({ prefix: 'mirror/deeper', upstream: 'https://ghcr.io', name: 'x' });
    expect(await where(cache, 'ecr/x')).toMatchObject({ prefix: 'ecr', upstream: 'https://ghcr.io', name: 'x' });
    // ECR's ROOT and the root mirror cover a name equally: the configuration's.
    expect(await where(cache, 'other/x')).toMatchObject({ prefix: '', upstream: QUAY.url });
    const ecrRootOnly = cacheOf({ rules: [{ prefix: 'mirror', upstream: QUAY, ttlMs: 1 }] }, [{ ecrRepositoryPrefix: 'ROOT', upstreamUrl: 'https://public.ecr.aws' }]);
    expect(await where(ecrRootOnly, 'other/x')).toMatchObject({ prefix: 'ROOT', upstream: 'https://public.ecr.aws' });
  });

  it('credentials that are not for a rule\'s upstream are not sent: 503', async () => {
    const cache = cacheOf({ credentials: { hub: { username: 'u', password: 'p', upstreams: ['https://registry-1.docker.io'] } } }, [
      { ecrRepositoryPrefix: 'q', upstreamUrl: 'https://quay.io', credentialName: 'hub' },
      { ecrRepositoryPrefix: 'h', upstreamUrl: 'https://registry-1.docker.io', credentialName: 'hub' },
    ]);
    await expect(cache.route('q/x')).rejects.toMatchObject({ code: 'UNAVAILABLE', status: 503 });
    expect((await cache.route('h/x'))?.client.upstream).toMatchObject({ username: 'u' });
  });

  it('without upstreams nothing is proxied', async () => {
    const cache = cacheOf({});
    expect(cache.active).toBe(false);
    expect(await cache.route('library/alpine')).toBeUndefined();
  });
});
