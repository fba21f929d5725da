// `ocireg lifecycle run [--repository R] [--dry-run] [config]`, run in-process over a data folder
// that a registry wrote: what it prints, what it expires, and how it refuses bad use.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { buildApp } from '../src/app.js';
import { loadConfig, type Config } from '../src/config/config.js';
import { runLifecycleCommand } from '../src/lifecycle-command.js';
import { makeImage, putManifest } from './helpers.js';

const REPO = 'team/app';
const POLICY = JSON.stringify({
  rules: [
    {
      rulePriority: 1,
      selection: { tagStatus: 'tagged', tagPrefixList: ['v'], countType: 'imageCountMoreThan', countNumber: 1 },
      action: { type: 'expire' },
    },
  ],
});

let dir: string;
let configPath: string;
let digests: Record<string, string>;

function fileConfig(extra: Record<string, unknown> = {}) {
  return {
    storage: { filesystem: { rootdirectory: join(dir, 'data') }, ...extra },
    ecr: { enabled: true, accountid: '123456789012', credentials: [{ accesskeyid: 'AKIAOCIREGCLITEST001', secretaccesskey: 'cli-test-secret-0123456789', user: 'ci' }] },
  };
}

function capture() {
  const out = { stdout: '', stderr: '' };
  return { out, io: { stdout: (t: string) => (out.stdout += t), stderr: (t: string) => (out.stderr += t) } };
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ocireg-lifecycle-cli-'));
  configPath = join(dir, 'config.yml');
  await writeFile(configPath, stringify(fileConfig()));
  // Images pushed with ECR off (no rules, no credentials needed), then a policy in the index.
  const config: Config = loadConfig({ env: {}, overrides: { storage: { filesystem: { rootdirectory: join(dir, 'data') } } } });
  const app = await buildApp(config, { logger: false });
  digests = {};
  for (const tag of ['v1', 'v2', 'v3']) {
    const image = await makeImage(app, REPO, { layer: tag });
    expect((await putManifest(app, REPO, tag, image)).statusCode).toBe(201);
    digests[tag] = image.digest;
    await new Promise((r) => setTimeout(r, 3));
  }
  await app.registry.database.ecr.update(REPO, { lifecyclePolicy: POLICY, lifecyclePolicyUpdatedAt: Date.now() });
  await app.close();
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function tagsNow(): Promise<string[]> {
  const app = await buildApp(loadConfig({ env: {}, overrides: { storage: { filesystem: { rootdirectory: join(dir, 'data') } } } }), { logger: false });
  try {
    return (await app.inject({ method: 'GET', url: `/v2/${REPO}/tags/list` })).json().tags;
  } finally {
    await app.close();
  }
}

describe('ocireg lifecycle run', () => {
  it('prints what a dry run would expire and expires nothing', async () => {
    const { out, io } = capture();
    expect(await runLifecycleCommand(['run', '--dry-run', configPath], io)).toBe(0);
    expect(out.stdout).toBe(`${REPO}\t${digests.v1}\tv1\trule 1\n${REPO}\t${digests.v2}\tv2\trule 1\n`);
    expect(out.stderr).toContain('would expire 2 images in 1 repository');
    expect(await tagsNow()).toEqual(['v1', 'v2', 'v3']);
  });

  it('expires the images, for one repository when named', async () => {
    const { out, io } = capture();
    expect(await runLifecycleCommand(['run', '--repository', REPO, configPath], io)).toBe(0);
    expect(out.stderr).toContain('expired 2 images in 1 repository');
    expect(await tagsNow()).toEqual(['v3']);
  });

  it('refuses bad arguments (2), an unknown repository and a registry without ECR (1)', async () => {
    expect(await runLifecycleCommand(['go'], capture().io)).toBe(2);
    expect(await runLifecycleCommand(['run', '--now', configPath], capture().io)).toBe(2);
    expect(await runLifecycleCommand(['run', configPath, 'extra'], capture().io)).toBe(2);
    const unknown = capture();
    expect(await runLifecycleCommand(['run', '--repository', 'no/such', configPath], unknown.io)).toBe(1);
    expect(unknown.out.stderr).toContain('no repository named "no/such"');
    const plain = join(dir, 'plain.yml');
    await writeFile(plain, stringify({ storage: { filesystem: { rootdirectory: join(dir, 'data') } } }));
    const off = capture();
    expect(await runLifecycleCommand(['run', plain], off.io)).toBe(1);
    expect(off.out.stderr).toContain('ecr.enabled');
    expect(await tagsNow()).toEqual(['v1', 'v2', 'v3']);
  });

  it('refuses to expire on a registry with deletes disabled, but still shows the plan', async () => {
    await writeFile(configPath, stringify(fileConfig({ delete: { enabled: false } })));
    const refused = capture();
    expect(await runLifecycleCommand(['run', configPath], refused.io)).toBe(1);
    expect(refused.out.stderr).toContain('deletes disabled');
    expect(await runLifecycleCommand(['run', '--dry-run', configPath], capture().io)).toBe(0);
    expect(await tagsNow()).toEqual(['v1', 'v2', 'v3']);
  });
});
