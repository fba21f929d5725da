import { describe, expect, it } from 'vitest';
import { ECR_UPSTREAMS, redact } from '../../src/config/config.js';
import type { ConfigFile } from '../../src/config/schema.js';
import { useConfigDir } from './support.js';

const { load, configError, configFile } = useConfigDir();
const proxy = (section: Record<string, unknown>): ConfigFile => ({ proxy: section as ConfigFile['proxy'] });

describe('the proxy section', () => {
  it("reads distribution's keys: one upstream mirrored at the root", async () => {
    const path = await configFile(`proxy:
  remoteurl: https://registry-1.docker.io
  username: hub-user
  password: hub-password
  ttl: 10m
`);
    expect(load({ path }).proxy).toEqual({
      rules: [{ prefix: '', upstream: { url: 'https://registry-1.docker.io', dockerHub: true, username: 'hub-user', password: 'hub-password' }, ttlMs: 600_000 }],
      credentials: {},
      allowedUpstreams: ECR_UPSTREAMS,
      ttlMs: 600_000,
      timeoutMs: 30_000,
    });
  });

  it('takes them from REGISTRY_PROXY_* variables too, as distribution does', () => {
    const config = load({ env: { REGISTRY_PROXY_REMOTEURL: 'https://quay.io', REGISTRY_PROXY_USERNAME: 'u', REGISTRY_PROXY_PASSWORD: 'p', REGISTRY_PROXY_TTL: '1h' } });
    expect(config.proxy?.rules).toEqual([{ prefix: '', upstream: { url: 'https://quay.io', dockerHub: false, username: 'u', password: 'p' }, ttlMs: 3_600_000 }]);
  });

  it('names Docker Hub by any of its hosts and reaches it at registry-1.docker.io; no proxy section, no proxy', () => {
    for (const url of ['https://docker.io', 'https://index.docker.io/', 'https://registry.hub.docker.com']) {
      expect(load({ overrides: proxy({ remoteurl: url }) }).proxy?.rules[0]?.upstream).toEqual({ url: 'https://registry-1.docker.io', dockerHub: true });
    }
    expect(load().proxy).toBeUndefined();
  });

  it('reads rules by prefix, longest first, each with its ttl or proxy.ttl, and 5 minutes by default', () => {
    const config = load({
      overrides: proxy({
        ttl: '2m',
        rules: [
          { prefix: 'hub', remoteurl: 'https://registry-1.docker.io' },
          { prefix: 'hub/special/', remoteurl: 'http://127.0.0.1:5000', ttl: '30s', username: 'a', password: 'b' },
        ],
      }),
    });
    expect(config.proxy?.rules.map((r) => [r.prefix, r.upstream.url, r.ttlMs])).toEqual([
      ['hub/special', 'http://127.0.0.1:5000', 30_000],
      ['hub', 'https://registry-1.docker.io', 120_000],
    ]);
    expect(load({ overrides: proxy({ rules: [{ prefix: 'q', remoteurl: 'https://quay.io' }] }) }).proxy?.rules[0]?.ttlMs).toBe(300_000);
  });

  it('reads named credentials, allowed upstreams (with *. hosts) and the timeout', () => {
    const config = load({
      overrides: proxy({
        credentials: { dockerhub: { username: 'u', password: 'p' } },
        allowedupstreams: ['http://127.0.0.1:5000', 'https://*.azurecr.io'],
        timeout: '5s',
      }),
    });
    expect(config.proxy).toMatchObject({
      rules: [],
      credentials: { dockerhub: { username: 'u', password: 'p' } },
      allowedUpstreams: ['http://127.0.0.1:5000', 'https://*.azurecr.io'],
      timeoutMs: 5_000,
    });
  });

  it('ties named credentials to the upstreams they are for', () => {
    const config = load({ overrides: proxy({ credentials: { hub: { username: 'u', password: 'p', upstreams: ['https://registry-1.docker.io/', 'https://*.azurecr.io'] } } }) });
    expect(config.proxy?.credentials.hub).toEqual({ username: 'u', password: 'p', upstreams: ['https://registry-1.docker.io', 'https://*.azurecr.io'] });
    expect(configError({ overrides: proxy({ credentials: { hub: { username: 'u', password: 'p', upstreams: ['nope'] } } }) })).toMatch(/proxy\.credentials\.hub\.upstreams\[0\]/);
  });

  it('refuses what it cannot use, naming the key', () => {
    expect(configError({ overrides: proxy({ remoteurl: 'registry-1.docker.io' }) })).toMatch(/proxy\.remoteurl: expected a URL/);
    expect(configError({ overrides: proxy({ remoteurl: 'ftp://example.com' }) })).toMatch(/proxy\.remoteurl: expected an http or https URL/);
    expect(configError({ overrides: proxy({ remoteurl: 'https://u:p@example.com' }) })).toMatch(/credentials in username and password/);
    expect(configError({ overrides: proxy({ remoteurl: 'https://example.com/v2/' }) })).toMatch(/without a path/);
    expect(configError({ overrides: proxy({ remoteurl: 'https://example.com', username: 'u' }) })).toMatch(/both username and password/);
    expect(configError({ overrides: proxy({ username: 'u', password: 'p' }) })).toMatch(/need proxy\.remoteurl/);
    expect(configError({ overrides: proxy({ remoteurl: 'https://example.com', ttl: 'soon' }) })).toMatch(/proxy\.ttl/);
    expect(configError({ overrides: proxy({ remoteurl: 'https://example.com', ttl: '9999h' }) })).toMatch(/at most 24 days/);
    expect(configError({ overrides: proxy({ rules: [{ prefix: 'Hub!', remoteurl: 'https://quay.io' }] }) })).toMatch(/proxy\.rules\[0\]\.prefix/);
    expect(
      configError({ overrides: proxy({ rules: [{ prefix: 'q', remoteurl: 'https://quay.io' }, { prefix: 'q/', remoteurl: 'https://ghcr.io' }] }) }),
    ).toMatch(/proxy\.rules\[1\]\.prefix: "q" is the prefix of an earlier rule/);
    expect(configError({ overrides: proxy({ rules: [{ prefix: 'q' }] }) })).toMatch(/remoteurl/);
    expect(configError({ overrides: proxy({ allowedupstreams: ['not a url'] }) })).toMatch(/proxy\.allowedupstreams\[0\]/);
    expect(configError({ overrides: proxy({ credentials: { 'bad name!': { username: 'u', password: 'p' } } }) })).toMatch(/secret name/);
    expect(configError({ overrides: proxy({ remoteurl: 'https://example.com', mirror: true }) })).toMatch(/"mirror"/);
    expect(configError({ overrides: proxy({ timeout: '0s' }) })).toMatch(/proxy\.timeout must be at least 100ms/);
    expect(configError({ overrides: proxy({ timeout: '2h' }) })).toMatch(/at most 1h/);
  });

  it('redacts every upstream password', () => {
    const config = load({
      overrides: proxy({
        remoteurl: 'https://example.com',
        username: 'u',
        password: 'root-secret',
        rules: [{ prefix: 'q', remoteurl: 'https://quay.io', username: 'v', password: 'rule-secret' }],
        credentials: { named: { username: 'w', password: 'named-secret' } },
      }),
    });
    const text = JSON.stringify(redact(config));
    for (const secret of ['root-secret', 'rule-secret', 'named-secret']) expect(text).not.toContain(secret);
    expect(text).toContain('"username":"u"');
  });
});
