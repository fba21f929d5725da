// What the pull-through cache's end-to-end file needs besides the shared harness: a second private
// dockerd whose registry-mirrors name our registry, a blob read as a stream and hashed, and the AWS
// CLI taught the parts of ECR's pull-through cache API that Debian's awscli (2.9) predates.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { rmSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../support/built-server.js';
import { run } from './harness.js';

const DOCKERD_SCRIPT = join(PROJECT_ROOT, 'scripts', 'dockerd.sh');
/**
 * Where the daemon's requests to anything but loopback go: a port nothing listens on. docker falls
 * back from a mirror to registry-1.docker.io, which this machine cannot reach; through this proxy
 * that attempt is refused at once instead of waiting on DNS. Loopback (the mirror) is never proxied.
 */
const REFUSING_PROXY = 'http://127.0.0.1:9';

export interface MirrorDockerd {
  /** `unix:///.../docker.sock` */
  host: string;
  /** Stops the daemon and removes its folder (images included). Safe to call twice. */
  stop(): Promise<void>;
}

/**
 * A private dockerd (scripts/dockerd.sh) started with `--registry-mirror <mirrorUrl>`: Docker Hub
 * names (`busybox`, `library/busybox`) are asked of the mirror first. Stopped also when the test
 * process exits without calling stop (an interrupted run).
 */
export async function startMirrorDockerd(mirrorUrl: string): Promise<MirrorDockerd> {
  // Short: the daemon's unix socket path must stay under ~100 bytes.
  const dir = await mkdtemp('/tmp/ocireg-dkm-');
  const lastChance = () => {
    spawnSync('bash', [DOCKERD_SCRIPT, 'stop', dir], { stdio: 'ignore', timeout: 90_000 });
    rmSync(dir, { recursive: true, force: true });
  };
  process.once('exit', lastChance);
  let stopped: Promise<void> | undefined;
  const stop = () => {
    stopped ??= (async () => {
      process.removeListener('exit', lastChance);
      await run('bash', [DOCKERD_SCRIPT, 'stop', dir], { timeoutMs: 90_000, allowFailure: true });
      await rm(dir, { recursive: true, force: true });
    })();
    return stopped;
  };
  try {
    const env = {
      ...process.env,
      DOCKERD_EXTRA_ARGS: `--registry-mirror ${mirrorUrl}`,
      HTTPS_PROXY: REFUSING_PROXY,
      HTTP_PROXY: REFUSING_PROXY,
      NO_PROXY: '127.0.0.1,localhost',
    };
    const started = await run('bash', [DOCKERD_SCRIPT, 'start', dir], { env, timeoutMs: 120_000 });
    const m = /DOCKER_HOST=(\S+)/.exec(started.stdout);
    if (!m) throw new Error(`scripts/dockerd.sh printed no DOCKER_HOST:\n${started.stdout}${started.stderr}`);
    const host = m[1]!;
    const info = await run('docker', ['-H', host, 'info', '--format', '{{json .RegistryConfig.Mirrors}}'], { timeoutMs: 20_000 });
    if (!info.stdout.includes(new URL(mirrorUrl).host)) throw new Error(`dockerd at ${host} has no mirror ${mirrorUrl}: ${info.stdout}`);
    return { host, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** GETs a URL and hashes the body as it streams in (never holding it); bounded. */
export async function hashedGet(url: string, timeoutMs = 180_000): Promise<{ status: number; digest: string; bytes: number }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  const hash = createHash('sha256');
  let bytes = 0;
  if (res.body) {
    for await (const chunk of res.body) {
      hash.update(chunk);
      bytes += chunk.byteLength;
    }
  }
  return { status: res.status, digest: `sha256:${hash.digest('hex')}`, bytes };
}

/**
 * ECR's current model of what the pull-through tests call, as AWS publishes it (botocore's
 * ecr/2015-09-21 model, documentation left out): CreatePullThroughCacheRule with credentialArn,
 * the rules DescribePullThroughCacheRules returns with it, and ValidatePullThroughCacheRule.
 * Debian's awscli 2.9 has the operations without these members, or not at all.
 */
const PULL_THROUGH_MODEL = {
  operations: {
    ValidatePullThroughCacheRule: {
      name: 'ValidatePullThroughCacheRule',
      http: { method: 'POST', requestUri: '/' },
      input: { shape: 'ValidatePullThroughCacheRuleRequest' },
      output: { shape: 'ValidatePullThroughCacheRuleResponse' },
      errors: [{ shape: 'ServerException' }, { shape: 'InvalidParameterException' }, { shape: 'ValidationException' }, { shape: 'PullThroughCacheRuleNotFoundException' }],
    },
  },
  shapes: {
    CreatePullThroughCacheRuleRequest: {
      type: 'structure',
      required: ['ecrRepositoryPrefix', 'upstreamRegistryUrl'],
      members: {
        ecrRepositoryPrefix: { shape: 'PullThroughCacheRuleRepositoryPrefix' },
        upstreamRegistryUrl: { shape: 'Url' },
        registryId: { shape: 'RegistryId' },
        upstreamRegistry: { shape: 'UpstreamRegistry' },
        credentialArn: { shape: 'CredentialArn' },
        customRoleArn: { shape: 'CustomRoleArn' },
        upstreamRepositoryPrefix: { shape: 'PullThroughCacheRuleRepositoryPrefix' },
      },
    },
    CreatePullThroughCacheRuleResponse: {
      type: 'structure',
      members: {
        ecrRepositoryPrefix: { shape: 'PullThroughCacheRuleRepositoryPrefix' },
        upstreamRegistryUrl: { shape: 'Url' },
        createdAt: { shape: 'CreationTimestamp' },
        registryId: { shape: 'RegistryId' },
        upstreamRegistry: { shape: 'UpstreamRegistry' },
        credentialArn: { shape: 'CredentialArn' },
        customRoleArn: { shape: 'CustomRoleArn' },
        upstreamRepositoryPrefix: { shape: 'PullThroughCacheRuleRepositoryPrefix' },
      },
    },
    PullThroughCacheRule: {
      type: 'structure',
      members: {
        ecrRepositoryPrefix: { shape: 'PullThroughCacheRuleRepositoryPrefix' },
        upstreamRegistryUrl: { shape: 'Url' },
        createdAt: { shape: 'CreationTimestamp' },
        registryId: { shape: 'RegistryId' },
        credentialArn: { shape: 'CredentialArn' },
        customRoleArn: { shape: 'CustomRoleArn' },
        upstreamRepositoryPrefix: { shape: 'PullThroughCacheRuleRepositoryPrefix' },
        upstreamRegistry: { shape: 'UpstreamRegistry' },
        updatedAt: { shape: 'UpdatedTimestamp' },
      },
    },
    ValidatePullThroughCacheRuleRequest: {
      type: 'structure',
      required: ['ecrRepositoryPrefix'],
      members: { ecrRepositoryPrefix: { shape: 'PullThroughCacheRuleRepositoryPrefix' }, registryId: { shape: 'RegistryId' } },
    },
    ValidatePullThroughCacheRuleResponse: {
      type: 'structure',
      members: {
        ecrRepositoryPrefix: { shape: 'PullThroughCacheRuleRepositoryPrefix' },
        registryId: { shape: 'RegistryId' },
        upstreamRegistryUrl: { shape: 'Url' },
        credentialArn: { shape: 'CredentialArn' },
        customRoleArn: { shape: 'CustomRoleArn' },
        upstreamRepositoryPrefix: { shape: 'PullThroughCacheRuleRepositoryPrefix' },
        isValid: { shape: 'IsPTCRuleValid' },
        failure: { shape: 'PTCValidateFailure' },
      },
    },
    PullThroughCacheRuleRepositoryPrefix: {
      type: 'string',
      max: 30,
      min: 2,
      pattern: '^([a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*(\\/[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*)*\\/?|ROOT)$',
    },
    CredentialArn: {
      type: 'string',
      max: 612,
      min: 50,
      pattern: '^arn:aws(-\\w+)*:secretsmanager:[a-zA-Z0-9-:]+:secret:ecr\\-pullthroughcache\\/[a-zA-Z0-9\\/_+=.@-]+$',
    },
    CustomRoleArn: { type: 'string', max: 2048 },
    UpstreamRegistry: {
      type: 'string',
      enum: ['ecr', 'ecr-public', 'quay', 'k8s', 'docker-hub', 'github-container-registry', 'azure-container-registry', 'gitlab-container-registry', 'chainguard'],
    },
    UpdatedTimestamp: { type: 'timestamp' },
    IsPTCRuleValid: { type: 'boolean' },
    PTCValidateFailure: { type: 'string' },
  },
} as const;

/**
 * Makes the AWS CLI `aws` (run with HOME=`home`) know ECR's pull-through cache API as it is today:
 * when it has no validate-pull-through-cache-rule, its own ECR model with PULL_THROUGH_MODEL merged
 * in is written to `home`/.aws/models, where the CLI looks before its bundled models (what
 * `aws configure add-model` does). Returns whether a model was added.
 */
export async function teachPullThroughModel(aws: string, home: string, env: NodeJS.ProcessEnv): Promise<boolean> {
  const knows = await run(aws, ['ecr', 'validate-pull-through-cache-rule', 'help'], { env: { ...env, HOME: home }, allowFailure: true, timeoutMs: 30_000 });
  if (knows.code === 0) return false;
  const model = JSON.parse(await readFile(await bundledEcrModel(aws), 'utf8')) as {
    operations: Record<string, unknown>;
    shapes: Record<string, unknown>;
  };
  Object.assign(model.operations, PULL_THROUGH_MODEL.operations);
  Object.assign(model.shapes, PULL_THROUGH_MODEL.shapes);
  const dir = join(home, '.aws', 'models', 'ecr', '2015-09-21');
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'service-2.json'), JSON.stringify(model));
  return true;
}

/** The ECR model file the CLI ships, found by asking the CLI's own Python where its botocore is. */
async function bundledEcrModel(aws: string): Promise<string> {
  const shebang = /^#!\s*(\S+)/.exec((await readFile(aws, 'utf8')).split('\n', 1)[0] ?? '');
  if (!shebang) throw new Error(`${aws} is not a Python script: cannot find its ECR model`);
  const where = await run(
    shebang[1]!,
    ['-c', 'import os, awscli.botocore as b; print(os.path.join(os.path.dirname(b.__file__), "data", "ecr", "2015-09-21", "service-2.json"))'],
    { timeoutMs: 30_000 },
  );
  return where.stdout.trim();
}
