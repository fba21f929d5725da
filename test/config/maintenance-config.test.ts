// The garbage collection (storage.maintenance.gc) and retention sections of the configuration:
// defaults, every key from YAML and from its environment variable, and the values refused.
import { describe, expect, it } from 'vitest';
import { useConfigDir } from './support.js';

const { load, configError, configFile } = useConfigDir();

const KEEP_THREE_V = {
  rules: [
    {
      rulePriority: 1,
      description: 'keep the 3 newest v tags',
      selection: { tagStatus: 'tagged', tagPrefixList: ['v'], countType: 'imageCountMoreThan', countNumber: 3 },
      action: { type: 'expire' },
    },
  ],
};

describe('storage.maintenance.gc', () => {
  it('defaults: enabled, every hour, a grace window of an hour, not a dry run, untagged manifests kept', () => {
    expect(load().storage.gc).toEqual({ enabled: true, intervalMs: 3_600_000, delayMs: 3_600_000, dryRun: false, deleteUntagged: false });
  });

  it('reads every key from the file', async () => {
    const path = await configFile(`storage:
  maintenance:
    gc:
      enabled: false
      interval: 30m
      delay: 2h30m
      dryrun: true
      deleteuntagged: true
`);
    expect(load({ path }).storage.gc).toEqual({ enabled: false, intervalMs: 1_800_000, delayMs: 9_000_000, dryRun: true, deleteUntagged: true });
  });

  it('reads every key from its environment variable, over the file', async () => {
    const path = await configFile('storage:\n  maintenance:\n    gc:\n      interval: 30m\n      delay: 5m\n');
    const config = load({
      path,
      env: {
        REGISTRY_STORAGE_MAINTENANCE_GC_ENABLED: 'false',
        REGISTRY_STORAGE_MAINTENANCE_GC_INTERVAL: '10m',
        REGISTRY_STORAGE_MAINTENANCE_GC_DELAY: '24h',
        REGISTRY_STORAGE_MAINTENANCE_GC_DRYRUN: 'TRUE',
        REGISTRY_STORAGE_MAINTENANCE_GC_DELETEUNTAGGED: 'true',
      },
    });
    expect(config.storage.gc).toEqual({ enabled: false, intervalMs: 600_000, delayMs: 86_400_000, dryRun: true, deleteUntagged: true });
  });

  it('takes a delay of 0 (collect at once)', async () => {
    const path = await configFile('storage:\n  maintenance:\n    gc:\n      delay: "0"\n');
    expect(load({ path }).storage.gc.delayMs).toBe(0);
  });

  it.each([
    ['an interval of 0', 'interval: "0"', /storage\.maintenance\.gc\.interval must be greater than zero/],
    ['an interval past the timer limit', 'interval: 600h', /storage\.maintenance\.gc\.interval must be greater than zero and at most 24 days/],
    ['a bad duration', 'delay: soon', /storage\.maintenance\.gc\.delay: expected a duration/],
    ['a bad interval', 'interval: 1 hour', /storage\.maintenance\.gc\.interval: expected a duration/],
    ['a boolean that is not one', 'dryrun: maybe', /storage\.maintenance\.gc\.dryrun: /],
    ['an unknown key', 'every: 1h', /storage\.maintenance\.gc: unknown key\(s\) "every"/],
  ])('refuses %s, naming the key', async (_what, line, message) => {
    const path = await configFile(`storage:\n  maintenance:\n    gc:\n      ${line}\n`);
    expect(configError({ path })).toMatch(message);
  });

  it('refuses a bad value in an environment variable, naming it', () => {
    expect(configError({ env: { REGISTRY_STORAGE_MAINTENANCE_GC_ENABLED: 'yes' } })).toContain('REGISTRY_STORAGE_MAINTENANCE_GC_ENABLED: expected true or false');
    expect(configError({ env: { REGISTRY_STORAGE_MAINTENANCE_GC_DELAY: 'later' } })).toMatch(/storage\.maintenance\.gc\.delay: expected a duration/);
    expect(configError({ env: { REGISTRY_STORAGE_MAINTENANCE_GC_INTERVAL: '0' } })).toMatch(/storage\.maintenance\.gc\.interval must be greater than zero/);
  });
});

describe('retention', () => {
  it('reads a policy written as YAML members, with the defaults: not a dry run, once a day', async () => {
    const path = await configFile(`retention:
  policies:
    - repositories: [team-a/**, tools]
      policy:
        rules:
          - rulePriority: 1
            description: keep the 3 newest v tags
            selection: { tagStatus: tagged, tagPrefixList: [v], countType: imageCountMoreThan, countNumber: 3 }
            action: { type: expire }
`);
    const retention = load({ path }).retention!;
    expect(retention.dryRun).toBe(false);
    expect(retention.intervalMs).toBe(86_400_000);
    expect(retention.policies).toHaveLength(1);
    expect(retention.policies[0]!.repositories).toEqual(['team-a/**', 'tools']);
    expect(JSON.parse(retention.policies[0]!.policyText)).toEqual(KEEP_THREE_V);
  });

  it('reads a policy given as its JSON text, and the other keys from the file and the environment', async () => {
    const text = JSON.stringify(KEEP_THREE_V);
    const path = await configFile(`retention:
  dryrun: true
  interval: 12h
  policies:
    - repositories: ["**"]
      policy: '${text}'
`);
    const fromFile = load({ path }).retention!;
    expect(fromFile).toEqual({ policies: [{ repositories: ['**'], policyText: text }], dryRun: true, intervalMs: 43_200_000 });
    const fromEnv = load({ path, env: { REGISTRY_RETENTION_DRYRUN: 'false', REGISTRY_RETENTION_INTERVAL: '90m' } }).retention!;
    expect(fromEnv.dryRun).toBe(false);
    expect(fromEnv.intervalMs).toBe(5_400_000);
  });

  it('reads a rule that expires images not pulled for 30 days (the README\'s example)', async () => {
    const path = await configFile(`retention:
  policies:
    - repositories: [cache/**]
      policy:
        rules:
          - rulePriority: 1
            description: expire images not pulled for 30 days
            selection: {tagStatus: any, countType: sinceImagePulled, countUnit: days, countNumber: 30}
            action: {type: expire}
`);
    const [policy] = load({ path }).retention!.policies;
    expect(policy!.repositories).toEqual(['cache/**']);
    expect(JSON.parse(policy!.policyText).rules[0].selection).toEqual({ tagStatus: 'any', countType: 'sinceImagePulled', countUnit: 'days', countNumber: 30 });
  });

  it('keeps the policies in their order (the first that matches a repository applies)', async () => {
    const text = JSON.stringify(KEEP_THREE_V);
    const path = await configFile(`retention:
  policies:
    - { repositories: [team-a/special], policy: '${text}' }
    - { repositories: [team-a/**], policy: '${text}' }
`);
    expect(load({ path }).retention!.policies.map((p) => p.repositories)).toEqual([['team-a/special'], ['team-a/**']]);
  });

  it('refuses an invalid policy, naming retention.policies[i].policy, with the lifecycle rule it breaks', async () => {
    const bad = { rules: [{ rulePriority: 1, selection: { tagStatus: 'tagged', countType: 'imageCountMoreThan', countNumber: 3 }, action: { type: 'expire' } }] };
    const path = await configFile(`retention:
  policies:
    - { repositories: [a], policy: '${JSON.stringify(KEEP_THREE_V)}' }
    - { repositories: [b], policy: '${JSON.stringify(bad)}' }
`);
    const message = configError({ path });
    expect(message).toMatch(/^retention\.policies\[1\]\.policy: /);
    expect(message).toContain('tagPrefixList');
    expect(message).not.toContain("Invalid parameter at 'LifecyclePolicyText'");
  });

  it('refuses a policy text that is not JSON, and an archive rule this registry cannot apply', async () => {
    const notJson = await configFile('retention:\n  policies:\n    - { repositories: [a], policy: "keep three" }\n', 'text.yml');
    expect(configError({ path: notJson })).toMatch(/^retention\.policies\[0\]\.policy: Could not map policyString/);
    const archived = {
      rules: [{ rulePriority: 1, selection: { tagStatus: 'any', countType: 'sinceImageTransitioned', countUnit: 'days', countNumber: 30 }, action: { type: 'expire' } }],
    };
    const path = await configFile(`retention:\n  policies:\n    - { repositories: [a], policy: '${JSON.stringify(archived)}' }\n`, 'archived.yml');
    expect(configError({ path })).toMatch(/^retention\.policies\[0\]\.policy: countType 'sinceImageTransitioned' is not supported/);
  });

  it('refuses a bad repository pattern, naming the policy', async () => {
    const path = await configFile(`retention:\n  policies:\n    - { repositories: [ok, Team/App], policy: '${JSON.stringify(KEEP_THREE_V)}' }\n`);
    expect(configError({ path })).toMatch(/^retention\.policies\[0\]\.repositories: repository pattern "Team\/App" may contain only/);
  });

  it.each([
    ['no repositories', `policies:\n    - { repositories: [], policy: '{}' }`, /retention\.policies\.0\.repositories: /],
    ['an unknown key of a policy', `policies:\n    - { repositories: [a], policy: '{}', keep: 3 }`, /retention\.policies\.0: unknown key\(s\) "keep"/],
    ['an unknown key', 'schedule: daily', /retention: unknown key\(s\) "schedule"/],
    ['a bad interval', 'interval: daily', /retention\.interval: expected a duration/],
  ])('refuses %s', async (_what, body, message) => {
    const path = await configFile(`retention:\n  ${body}\n`);
    expect(configError({ path })).toMatch(message);
  });

  it('refuses an interval of 0 when there are policies', async () => {
    const path = await configFile(`retention:\n  interval: "0"\n  policies:\n    - { repositories: [a], policy: '${JSON.stringify(KEEP_THREE_V)}' }\n`);
    expect(configError({ path })).toMatch(/retention\.interval must be greater than zero/);
  });

  it('is undefined without policies', async () => {
    expect(load().retention).toBeUndefined();
    const empty = await configFile('retention:\n  dryrun: true\n  policies: []\n');
    expect(load({ path: empty }).retention).toBeUndefined();
    expect(load({ env: { REGISTRY_RETENTION_DRYRUN: 'true', REGISTRY_RETENTION_INTERVAL: '1h' } }).retention).toBeUndefined();
  });
});
