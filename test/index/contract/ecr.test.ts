import { expect, it } from 'vitest';
import type { EcrIndex, EcrRepositoryRow, NewEcrRepository } from '../../../src/index/contract.js';
import { describeIndex } from './implementations.js';
import { byteSorted, image } from './fixtures.js';

const DEFAULTS = {
  tagMutability: 'MUTABLE',
  mutabilityExclusions: '[]',
  scanOnPush: false,
  encryption: '{"encryptionType":"AES256"}',
  resourceTags: '[]',
  policy: null,
  lifecyclePolicy: null,
  lifecyclePolicyUpdatedAt: null,
} as const;

function created(name: string, overrides: Partial<NewEcrRepository> = {}): NewEcrRepository {
  return {
    name,
    createdAt: 1_000,
    tagMutability: 'IMMUTABLE_WITH_EXCLUSION',
    mutabilityExclusions: '[{"filterType":"WILDCARD","filter":"dev-*"}]',
    scanOnPush: true,
    encryption: '{"encryptionType":"KMS","kmsKey":"arn:aws:kms:eu-west-1:1:key/x"}',
    resourceTags: '[{"Key":"team","Value":"é"}]',
    policy: '{"Version":"2012-10-17","Statement":[]}',
    lifecyclePolicy: null,
    ...overrides,
  };
}

describeIndex('EcrIndex: repositories', (fixture) => {
  const ecr = (): EcrIndex => fixture().index.ecr;

  it('a repository nobody created or pushed does not exist', async () => {
    expect(await ecr().repository('nowhere')).toBeUndefined();
    expect(await ecr().exists('nowhere')).toBe(false);
  });

  it('a pushed repository has ECR\'s defaults and the time of its first push', async () => {
    await fixture().index.registry.putManifest('pushed', image('m'), ['latest'], 4_000);
    await fixture().index.registry.putManifest('pushed', image('n'), ['latest'], 5_000);
    expect(await ecr().exists('pushed')).toBe(true);
    expect(await ecr().repository('pushed')).toEqual({ name: 'pushed', createdAt: 4_000, ...DEFAULTS });
  });

  it('insertRepository creates the repository with its settings and the registry\'s own row', async () => {
    const row = created('new/repo');
    expect(await ecr().insertRepository(row)).toBe(true);
    expect(await ecr().repository('new/repo')).toEqual({ ...row, lifecyclePolicyUpdatedAt: null });
    expect(await ecr().exists('new/repo')).toBe(true);
    const reg = fixture().index.registry;
    expect(await reg.repositoryId('new/repo')).toBeDefined();
    expect(await reg.catalog('', 10)).toEqual(['new/repo']);
    expect(await reg.repositoryHasManifests('new/repo')).toBe(false);

    const withPolicy = created('with-policy', { scanOnPush: false, lifecyclePolicy: '{"rules":[]}', lifecyclePolicyUpdatedAt: 2_000 });
    expect(await ecr().insertRepository(withPolicy)).toBe(true);
    expect(await ecr().repository('with-policy')).toEqual(withPolicy);
  });

  it('insertRepository refuses an existing name, created or pushed, and writes nothing', async () => {
    const first = created('taken');
    expect(await ecr().insertRepository(first)).toBe(true);
    expect(await ecr().insertRepository(created('taken', { tagMutability: 'MUTABLE', createdAt: 9_000 }))).toBe(false);
    expect(await ecr().repository('taken')).toEqual({ ...first, lifecyclePolicyUpdatedAt: null });

    await fixture().index.registry.ensureRepository('pushed', 3_000);
    expect(await ecr().insertRepository(created('pushed'))).toBe(false);
    expect(await ecr().repository('pushed')).toEqual({ name: 'pushed', createdAt: 3_000, ...DEFAULTS });
    expect(await ecr().withLifecyclePolicies()).toEqual([]);
  });

  it('update changes the given settings only, in one go', async () => {
    await ecr().insertRepository(created('r'));
    expect(await ecr().update('r', { tagMutability: 'MUTABLE', scanOnPush: false })).toBe(true);
    expect(await ecr().repository('r')).toMatchObject({ tagMutability: 'MUTABLE', scanOnPush: false, policy: created('r').policy });
    expect(await ecr().update('r', { lifecyclePolicy: '{"rules":[1]}', lifecyclePolicyUpdatedAt: 7_000, resourceTags: '[]' })).toBe(true);
    expect(await ecr().repository('r')).toEqual({
      ...created('r'),
      tagMutability: 'MUTABLE',
      scanOnPush: false,
      lifecyclePolicy: '{"rules":[1]}',
      lifecyclePolicyUpdatedAt: 7_000,
      resourceTags: '[]',
    });
    // null clears; undefined leaves alone; scanOnPush back on.
    expect(await ecr().update('r', { policy: null, lifecyclePolicy: undefined, scanOnPush: true, mutabilityExclusions: '[]' })).toBe(true);
    const row = (await ecr().repository('r'))!;
    expect(row.policy).toBeNull();
    expect(row.lifecyclePolicy).toBe('{"rules":[1]}');
    expect(row.scanOnPush).toBe(true);
    expect(row.mutabilityExclusions).toBe('[]');
    expect(await ecr().update('r', { lifecyclePolicyUpdatedAt: null })).toBe(true);
    expect((await ecr().repository('r'))!.lifecyclePolicyUpdatedAt).toBeNull();
    // Nothing to change is still a yes.
    expect(await ecr().update('r', {})).toBe(true);
    expect(row.createdAt).toBe(1_000);
  });

  it('update of an unknown repository is false and creates nothing', async () => {
    expect(await ecr().update('nowhere', { tagMutability: 'IMMUTABLE' })).toBe(false);
    expect(await ecr().exists('nowhere')).toBe(false);
    expect(await ecr().repositories('', 10)).toEqual([]);
  });

  it('update adopts a pushed repository: its first push time and defaults, plus the change', async () => {
    await fixture().index.registry.addBlob('pushed', 'sha256:' + 'a'.repeat(64), 1, 6_000);
    expect(await ecr().update('pushed', { tagMutability: 'IMMUTABLE', lifecyclePolicy: '{"rules":[]}' })).toBe(true);
    expect(await ecr().repository('pushed')).toEqual({ name: 'pushed', createdAt: 6_000, ...DEFAULTS, tagMutability: 'IMMUTABLE', lifecyclePolicy: '{"rules":[]}' });
    expect(await ecr().withLifecyclePolicies()).toEqual(['pushed']);
    expect((await ecr().repositories('', 10)).map((r) => r.name)).toEqual(['pushed']);
  });

  it('deleteRepository forgets the settings', async () => {
    await ecr().insertRepository(created('r', { lifecyclePolicy: '{}' }));
    expect(await ecr().deleteRepository('r')).toBe(true);
    expect(await ecr().deleteRepository('r')).toBe(false);
    expect(await ecr().deleteRepository('nowhere')).toBe(false);
    expect(await ecr().withLifecyclePolicies()).toEqual([]);
    // The registry's row is the registry's to delete; then the repository is gone.
    expect(await fixture().index.registry.deleteRepository('r')).toBe(true);
    expect(await ecr().exists('r')).toBe(false);
    expect(await ecr().repository('r')).toBeUndefined();
  });

  it('deleteRepository of a pushed repository\'s settings brings its defaults back', async () => {
    await fixture().index.registry.ensureRepository('pushed', 2_000);
    await ecr().update('pushed', { scanOnPush: true });
    expect(await ecr().deleteRepository('pushed')).toBe(true);
    expect(await ecr().repository('pushed')).toEqual({ name: 'pushed', createdAt: 2_000, ...DEFAULTS });
  });

  it('withLifecyclePolicies lists, sorted, the repositories that have one', async () => {
    for (const name of ['b', 'a/x', 'B', 'a']) await ecr().insertRepository(created(name, { lifecyclePolicy: '{"rules":[]}' }));
    await ecr().insertRepository(created('none'));
    expect(await ecr().withLifecyclePolicies()).toEqual(byteSorted(['b', 'a/x', 'B', 'a']));
    await ecr().update('a', { lifecyclePolicy: null });
    expect(await ecr().withLifecyclePolicies()).toEqual(byteSorted(['b', 'a/x', 'B']));
  });

  it('repositories pages over created and pushed repositories together, in byte order', async () => {
    const reg = fixture().index.registry;
    await ecr().insertRepository(created('a-created', { createdAt: 10 }));
    await ecr().insertRepository(created('B', { createdAt: 11 }));
    await reg.ensureRepository('a/pushed', 20);
    await reg.ensureRepository('a', 21);
    // Pushed, then given settings: one row, with the settings' time (the first push).
    await reg.ensureRepository('z', 30);
    await ecr().update('z', { scanOnPush: true });
    // Settings without a registry row (the registry's row was deleted): still listed.
    await ecr().insertRepository(created('orphan', { createdAt: 40 }));
    await reg.deleteRepository('orphan');

    const names = byteSorted(['a-created', 'B', 'a/pushed', 'a', 'z', 'orphan']);
    const all = await ecr().repositories('', 100);
    expect(all.map((r) => r.name)).toEqual(names);
    const byName = new Map(all.map((r) => [r.name, r]));
    expect(byName.get('a')).toEqual({ name: 'a', createdAt: 21, ...DEFAULTS });
    expect(byName.get('B')).toEqual({ ...created('B', { createdAt: 11 }), lifecyclePolicyUpdatedAt: null });
    expect(byName.get('z')).toEqual({ name: 'z', createdAt: 30, ...DEFAULTS, scanOnPush: true });
    expect(byName.get('orphan')!.createdAt).toBe(40);

    const paged: EcrRepositoryRow[] = [];
    let after = '';
    for (let pages = 0; pages < 20; pages++) {
      const page = await ecr().repositories(after, 2);
      expect(page.length).toBeLessThanOrEqual(2);
      if (page.length === 0) break;
      paged.push(...page);
      after = page[page.length - 1]!.name;
    }
    expect(paged).toEqual(all);
    expect((await ecr().repositories('a', 2)).map((r) => r.name)).toEqual(names.slice(names.indexOf('a') + 1, names.indexOf('a') + 3));
  });
});

describeIndex('EcrIndex: creation templates', (fixture) => {
  const ecr = (): EcrIndex => fixture().index.ecr;

  it('insertTemplate, template, updateTemplate, deleteTemplate', async () => {
    expect(await ecr().template('ROOT')).toBeUndefined();
    expect(await ecr().insertTemplate('ROOT', '{"description":"all"}', 1_000)).toBe(true);
    expect(await ecr().template('ROOT')).toEqual({ prefix: 'ROOT', template: '{"description":"all"}', createdAt: 1_000, updatedAt: 1_000 });
    expect(await ecr().insertTemplate('ROOT', '{"description":"again"}', 2_000)).toBe(false);
    expect((await ecr().template('ROOT'))!.template).toBe('{"description":"all"}');

    expect(await ecr().updateTemplate('ROOT', '{"description":"changed"}', 3_000)).toBe(true);
    expect(await ecr().template('ROOT')).toEqual({ prefix: 'ROOT', template: '{"description":"changed"}', createdAt: 1_000, updatedAt: 3_000 });
    expect(await ecr().updateTemplate('missing', '{}', 3_000)).toBe(false);
    expect(await ecr().template('missing')).toBeUndefined();

    expect(await ecr().deleteTemplate('ROOT')).toBe(true);
    expect(await ecr().deleteTemplate('ROOT')).toBe(false);
    expect(await ecr().template('ROOT')).toBeUndefined();
  });

  it('templates pages by prefix in byte order', async () => {
    const prefixes = ['ROOT', 'team', 'team/a', 'team-b', 'Team', 'a'];
    for (const [i, p] of prefixes.entries()) await ecr().insertTemplate(p, `{"n":${i}}`, i);
    const sorted = byteSorted(prefixes);
    expect((await ecr().templates('', 100)).map((t) => t.prefix)).toEqual(sorted);
    const paged: string[] = [];
    let after = '';
    for (let pages = 0; pages < 20; pages++) {
      const page = await ecr().templates(after, 4);
      if (page.length === 0) break;
      expect(page.length).toBeLessThanOrEqual(4);
      paged.push(...page.map((t) => t.prefix));
      after = page[page.length - 1]!.prefix;
    }
    expect(paged).toEqual(sorted);
    expect((await ecr().templates('team', 10)).map((t) => t.prefix)).toEqual(['team-b', 'team/a']);
    const team = (await ecr().templates('', 100)).find((t) => t.prefix === 'team')!;
    expect(team).toEqual({ prefix: 'team', template: '{"n":1}', createdAt: 1, updatedAt: 1 });
  });
});

describeIndex('EcrIndex: pull-through cache rules', (fixture) => {
  const ecr = (): EcrIndex => fixture().index.ecr;
  const RULE = '{"upstreamRegistryUrl":"public.ecr.aws","upstreamUrl":"https://public.ecr.aws"}';

  it('insertPullThroughRule, pullThroughRule, updatePullThroughRule, deletePullThroughRule', async () => {
    expect(await ecr().pullThroughRule('ecr-public')).toBeUndefined();
    expect(await ecr().insertPullThroughRule('ecr-public', RULE, 1_000)).toBe(true);
    expect(await ecr().pullThroughRule('ecr-public')).toEqual({ prefix: 'ecr-public', rule: RULE, createdAt: 1_000, updatedAt: 1_000 });
    expect(await ecr().insertPullThroughRule('ecr-public', '{"again":true}', 2_000)).toBe(false);
    expect((await ecr().pullThroughRule('ecr-public'))!.rule).toBe(RULE);

    expect(await ecr().updatePullThroughRule('ecr-public', '{"changed":"é"}', 3_000)).toBe(true);
    expect(await ecr().pullThroughRule('ecr-public')).toEqual({ prefix: 'ecr-public', rule: '{"changed":"é"}', createdAt: 1_000, updatedAt: 3_000 });
    expect(await ecr().updatePullThroughRule('missing', '{}', 3_000)).toBe(false);
    expect(await ecr().pullThroughRule('missing')).toBeUndefined();

    expect(await ecr().deletePullThroughRule('ecr-public')).toBe(true);
    expect(await ecr().deletePullThroughRule('ecr-public')).toBe(false);
    expect(await ecr().pullThroughRule('ecr-public')).toBeUndefined();
  });

  it('rules and templates of one prefix are apart', async () => {
    expect(await ecr().insertTemplate('hub', '{"t":1}', 1)).toBe(true);
    expect(await ecr().insertPullThroughRule('hub', '{"r":1}', 2)).toBe(true);
    expect(await ecr().deleteTemplate('hub')).toBe(true);
    expect(await ecr().pullThroughRule('hub')).toEqual({ prefix: 'hub', rule: '{"r":1}', createdAt: 2, updatedAt: 2 });
    expect(await ecr().templates('', 10)).toEqual([]);
  });

  it('pullThroughRules pages by prefix in byte order', async () => {
    const prefixes = ['ROOT', 'hub', 'hub/library', 'hub-b', 'a', 'quay.io'];
    for (const [i, p] of prefixes.entries()) await ecr().insertPullThroughRule(p, `{"n":${i}}`, i);
    const sorted = byteSorted(prefixes);
    expect((await ecr().pullThroughRules('', 100)).map((r) => r.prefix)).toEqual(sorted);
    const paged: string[] = [];
    let after = '';
    for (let pages = 0; pages < 20; pages++) {
      const page = await ecr().pullThroughRules(after, 4);
      if (page.length === 0) break;
      expect(page.length).toBeLessThanOrEqual(4);
      paged.push(...page.map((r) => r.prefix));
      after = page[page.length - 1]!.prefix;
    }
    expect(paged).toEqual(sorted);
    expect((await ecr().pullThroughRules('hub', 10)).map((r) => r.prefix)).toEqual(['hub-b', 'hub/library', 'quay.io']);
    expect((await ecr().pullThroughRules('', 100)).find((r) => r.prefix === 'hub')).toEqual({ prefix: 'hub', rule: '{"n":1}', createdAt: 1, updatedAt: 1 });
  });
});

describeIndex('EcrIndex: registry settings', (fixture) => {
  const ecr = (): EcrIndex => fixture().index.ecr;

  it('setting, putSetting (which overwrites) and deleteSetting', async () => {
    expect(await ecr().setting('registryPolicy')).toBeUndefined();
    await ecr().putSetting('registryPolicy', '{"v":1}');
    await ecr().putSetting('other', 'x');
    expect(await ecr().setting('registryPolicy')).toBe('{"v":1}');
    await ecr().putSetting('registryPolicy', '{"v":2}');
    expect(await ecr().setting('registryPolicy')).toBe('{"v":2}');
    expect(await ecr().deleteSetting('registryPolicy')).toBe(true);
    expect(await ecr().deleteSetting('registryPolicy')).toBe(false);
    expect(await ecr().setting('registryPolicy')).toBeUndefined();
    expect(await ecr().setting('other')).toBe('x');
    // An empty value is a value.
    await ecr().putSetting('empty', '');
    expect(await ecr().setting('empty')).toBe('');
  });
});
