// The pull-through cache (issue 16) with real clients. The upstream is CNCF distribution 2.8.2 with
// htpasswd (test/support/distribution.ts), holding images pushed by test/support/upstream-images.ts;
// ours mirrors it at the root (proxy.remoteurl, as registry:2 does), and mirrors a second registry of
// ours, with the token server, under the prefix `tok`. A private dockerd with `--registry-mirror`
// pointing at ours pulls Docker Hub names; ECR's pull-through cache rules are made with the AWS CLI
// on a third registry of ours. The upstream's access log tells what reached it.
import { existsSync } from 'node:fs';
import { readFile, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startDistribution, describeWithDistribution, type Distribution, type DistributionRequest } from '../support/distribution.js';
import { fetchManifest, moveTag, pushImage, type PushedImage } from '../support/upstream-images.js';
import { httpGet, importImage, said, startConfiguredRegistry, writeHtpasswd, type ConfiguredRegistry } from './auth-support.js';
import { accessLogUntil, dockerEnv, logMark, run, sha256, tempFolder, type RunResult } from './harness.js';
import { hashedGet, startMirrorDockerd, teachPullThroughModel, type MirrorDockerd } from './proxy-support.js';

/** Our mirror's proxy.ttl: how long a tag is served before a HEAD asks the upstream again. */
const TTL_MS = 5_000;
const UPSTREAM_USER = { user: 'mirror', password: 'mirror-Password-1' };
/** On the token-authenticated upstream (ours): one who pushes there, and the one our mirror reads as. */
const TOKEN_PUSHER = { user: 'pusher', password: 'pusher-Password-2' };
const TOKEN_READER = { user: 'reader', password: 'reader-Password-3' };
const AWS = existsSync('/usr/bin/aws') ? '/usr/bin/aws' : 'aws';
const ECR_KEY = { id: 'AKIAOCIREGE2EPROXY01', secret: 'e2e-proxy-secret-0123456789abcdef' };
const CREDENTIAL_ARN = 'arn:aws:secretsmanager:us-east-1:000000000000:secret:ecr-pullthroughcache/upstream-creds';
const BIG = 100 * 1024 * 1024;

let work: string;
let upstream: Distribution;
let tokenUpstream: ConfiguredRegistry;
/** Ours: the root mirror of `upstream`, and `tok/...` from `tokenUpstream`. */
let mirror: ConfiguredRegistry;
let dockerd: MirrorDockerd;
let env: NodeJS.ProcessEnv;

function docker(args: string[], timeoutMs = 180_000): Promise<RunResult> {
  return run('docker', args, { env, timeoutMs, allowFailure: true });
}

async function dockerOk(args: string[], timeoutMs = 180_000): Promise<RunResult> {
  const result = await docker(args, timeoutMs);
  expect(result.code, said(result)).toBe(0);
  return result;
}

async function imageIdOf(ref: string): Promise<string> {
  return (await dockerOk(['image', 'inspect', '-f', '{{.Id}}', ref])).stdout.trim();
}

/** Removes `ref` from the daemon and checks that it is gone, so that the next pull fetches it. */
async function removeLocal(ref: string): Promise<void> {
  await dockerOk(['rmi', '-f', ref]);
  expect((await docker(['image', 'inspect', ref])).code, `${ref} is still present locally`).not.toBe(0);
}

/** What the upstream served for one repository since `mark`, as `METHOD path status` lines. */
async function upstreamSaw(repo: string, since: number): Promise<string[]> {
  const seen = await upstream.requests({ since, path: new RegExp(`^/v2/${repo}/`) });
  return seen.map(show);
}

function show(r: DistributionRequest): string {
  return `${r.method} ${r.path} ${r.status}`;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

describeWithDistribution('the pull-through cache with real clients', () => {
  beforeAll(async () => {
    work = await tempFolder('proxy-', inject('e2eWork'));
    const htpasswd = join(work, 'token-htpasswd');
    await writeHtpasswd(htpasswd, { [TOKEN_PUSHER.user]: TOKEN_PUSHER.password, [TOKEN_READER.user]: TOKEN_READER.password });
    [upstream, tokenUpstream] = await Promise.all([
      startDistribution({ htpasswd: UPSTREAM_USER }),
      startConfiguredRegistry({
        work: join(work, 'token-upstream'),
        config: {
          auth: {
            htpasswd: { realm: 'ocireg', path: htpasswd },
            tokenserver: { enabled: true, issuer: 'ocireg', service: 'ocireg', key: join(work, 'token-upstream', 'token-key.pem'), expiration: '5m' },
          },
          access: { repositories: { '**': { users: { [TOKEN_PUSHER.user]: ['pull', 'push'], [TOKEN_READER.user]: ['pull'] } } } },
        },
      }),
    ]);
    mirror = await startConfiguredRegistry({
      work: join(work, 'mirror'),
      config: {
        proxy: {
          remoteurl: upstream.url,
          username: UPSTREAM_USER.user,
          password: UPSTREAM_USER.password,
          ttl: `${TTL_MS / 1000}s`,
          rules: [{ prefix: 'tok', remoteurl: tokenUpstream.url, username: TOKEN_READER.user, password: TOKEN_READER.password }],
          timeout: '5s',
        },
      },
    });
    dockerd = await startMirrorDockerd(mirror.url);
    env = await dockerEnv(dockerd.host, join(work, 'docker'));
  });

  afterAll(async () => {
    await dockerd?.stop();
    await mirror?.stop();
    await tokenUpstream?.stop();
    await upstream?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  describe('as a docker registry-mirror', () => {
    // Docker Hub's official images are library/<name>: docker asks its mirror for that name.
    const REPO = 'library/e2e-busy';
    const NAME = 'e2e-busy:1';
    let image: PushedImage;
    /** When the first pull began: the tag was fetched (and last validated) after this. */
    let firstPullStart = 0;

    it('pulls a Docker Hub name that exists only upstream, through the mirror', async () => {
      image = await pushImage(upstream.url, REPO, '1', {
        layers: [{ size: 64 * 1024, gzip: true }, { size: 16 * 1024, gzip: true }],
        auth: { username: UPSTREAM_USER.user, password: UPSTREAM_USER.password },
      });
      const mark = await upstream.mark();
      const from = await logMark(mirror.logFile);
      firstPullStart = Date.now();
      await dockerOk(['pull', NAME]);
      expect(await imageIdOf(NAME)).toBe(image.config.digest);

      const saw = await upstreamSaw(REPO, mark);
      expect(saw, saw.join('\n')).toContain(`GET /v2/${REPO}/manifests/1 200`);
      for (const blob of [image.config, ...image.layers]) expect(saw, saw.join('\n')).toContain(`GET /v2/${REPO}/blobs/${blob.digest} 200`);
      // docker 20.10 asks the mirror for the tag (a HEAD), then GETs the manifest by the digest it was told.
      const lastBlob = `/v2/${REPO}/blobs/${image.layers.at(-1)!.digest}`;
      const ours = (await accessLogUntil(mirror.logFile, from, (r) => r.url === lastBlob)).filter((r) => r.url.startsWith(`/v2/${REPO}/`));
      const lines = ours.map((r) => `${r.method} ${r.url} ${r.status}`);
      expect(lines.some((l) => l === `HEAD /v2/${REPO}/manifests/1 200` || l === `GET /v2/${REPO}/manifests/1 200`), lines.join('\n')).toBe(true);
      expect(ours.every((r) => r.status === 200), lines.join('\n')).toBe(true);
    });

    it('pulls it again from the cache alone: the upstream sees no request for it', async () => {
      await removeLocal(NAME);
      const mark = await upstream.mark();
      await dockerOk(['pull', NAME]);
      const elapsed = Date.now() - firstPullStart;
      expect(await imageIdOf(NAME)).toBe(image.config.digest);

      const saw = await upstreamSaw(REPO, mark);
      expect(saw.filter((line) => line.startsWith('GET ')), saw.join('\n')).toEqual([]);
      // Within the ttl not even the tag's revalidation (a HEAD) is due; past it, that HEAD alone may come.
      if (elapsed < TTL_MS) expect(saw, `second pull done ${elapsed} ms after the first began`).toEqual([]);
      else expect(saw.every((line) => line === `HEAD /v2/${REPO}/manifests/1 200`), saw.join('\n')).toBe(true);
    });

    describe('while the upstream is down', () => {
      beforeAll(async () => {
        await upstream.stop();
      });
      afterAll(async () => {
        await upstream.start();
      });

      it('still pulls the cached image, also once its ttl has passed (stale-if-error)', async () => {
        await removeLocal(NAME);
        await dockerOk(['pull', NAME]);
        expect(await imageIdOf(NAME)).toBe(image.config.digest);

        // Past the ttl the tag must be revalidated, and the upstream cannot answer.
        await sleep(TTL_MS + 500);
        await removeLocal(NAME);
        await dockerOk(['pull', NAME]);
        expect(await imageIdOf(NAME)).toBe(image.config.digest);
        const log = await readFile(mirror.logFile, 'utf8');
        expect(log).toContain('upstream unavailable: serving the cached manifest');
      });

      it('fails to pull an image it never cached, fast, and answers 503 with Retry-After for it', async () => {
        const from = await logMark(mirror.logFile);
        const started = Date.now();
        const pull = await docker(['pull', 'e2e-never-cached:1'], 60_000);
        const took = Date.now() - started;
        expect(pull.code, said(pull)).not.toBe(0);
        // docker falls back from the mirror to registry-1.docker.io, which the daemon's proxy refuses at once.
        expect(took, `docker pull took ${took} ms to fail:\n${said(pull)}`).toBeLessThan(20_000);
        const isAsked = (r: { url: string }) => r.url === '/v2/library/e2e-never-cached/manifests/1';
        const ours = await accessLogUntil(mirror.logFile, from, isAsked);
        const asked = ours.filter(isAsked);
        expect(asked.length, JSON.stringify(ours.slice(-20))).toBeGreaterThan(0);
        expect(asked.every((r) => r.status === 503), JSON.stringify(asked)).toBe(true);

        const direct = await httpGet(`${mirror.url}/v2/library/e2e-never-cached/manifests/1`, {
          headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
        });
        expect(direct.status).toBe(503);
        expect(Number(direct.headers['retry-after'])).toBeGreaterThan(0);
        expect(JSON.parse(direct.body)).toMatchObject({ errors: [{ code: 'UNAVAILABLE' }] });
        console.log(`proxy e2e: docker pull of an uncached image failed after ${took} ms: ${said(pull).trim()}`);
      });
    });
  });

  it('follows a tag moved upstream once the ttl has passed, after a HEAD', async () => {
    const repo = 'e2e/moving';
    const auth = { username: UPSTREAM_USER.user, password: UPSTREAM_USER.password };
    const first = await pushImage(upstream.url, repo, 'v1', { layers: [{ size: 4096 }], auth });
    const before = await fetchManifest(mirror.url, repo, 'v1');
    expect(before.status).toBe(200);
    expect(before.headers.get('docker-content-digest')).toBe(first.manifestDigest);
    const fetchedAt = Date.now();

    const moved = await moveTag(upstream.url, repo, 'v1', { auth });
    expect(moved.manifestDigest).not.toBe(first.manifestDigest);
    const within = await fetchManifest(mirror.url, repo, 'v1');
    if (Date.now() - fetchedAt < TTL_MS) expect(within.headers.get('docker-content-digest')).toBe(first.manifestDigest);

    await sleep(Math.max(0, fetchedAt + TTL_MS + 500 - Date.now()));
    const mark = await upstream.mark();
    const after = await fetchManifest(mirror.url, repo, 'v1');
    expect(after.status).toBe(200);
    expect(after.headers.get('docker-content-digest')).toBe(moved.manifestDigest);
    expect(sha256(after.body)).toBe(moved.manifestDigest.slice('sha256:'.length));
    const saw = await upstreamSaw(repo, mark);
    expect(saw, saw.join('\n')).toContain(`HEAD /v2/${repo}/manifests/v1 200`);
    // The new manifest is fetched by its digest, which the HEAD told.
    expect(saw, saw.join('\n')).toContain(`GET /v2/${repo}/manifests/${moved.manifestDigest} 200`);
  });

  it('serves ten clients pulling one uncached 100 MiB layer at once with one upstream fetch', async () => {
    const repo = 'e2e/big';
    const auth = { username: UPSTREAM_USER.user, password: UPSTREAM_USER.password };
    const image = await pushImage(upstream.url, repo, '1', { layers: [{ size: BIG }], auth });
    const layer = image.layers[0]!;
    const mark = await upstream.mark();
    const started = Date.now();
    const results = await Promise.all(Array.from({ length: 10 }, () => hashedGet(`${mirror.url}/v2/${repo}/blobs/${layer.digest}`)));
    const took = Date.now() - started;
    for (const result of results) expect(result).toEqual({ status: 200, digest: layer.digest, bytes: layer.size });

    const gets = (await upstream.requests({ since: mark, method: 'GET', path: `/v2/${repo}/blobs/${layer.digest}` })).map(show);
    // A 401 would be the upstream's challenge, carrying no bytes; every other GET is a fetch.
    expect(gets.filter((line) => !line.endsWith(' 401')), gets.join('\n')).toEqual([`GET /v2/${repo}/blobs/${layer.digest} 200`]);
    // Cached now: an eleventh client is served without the upstream.
    const again = await hashedGet(`${mirror.url}/v2/${repo}/blobs/${layer.digest}`);
    expect(again).toEqual({ status: 200, digest: layer.digest, bytes: layer.size });
    expect(await upstreamSaw(repo, mark)).toEqual(gets);
    console.log(`proxy e2e: ten concurrent pulls of ${layer.size} bytes took ${took} ms`);
  });

  it('refuses pushes to the proxied root: docker push fails, POST of an upload answers 405 UNSUPPORTED', async () => {
    const ref = `${mirror.host}/e2e/refused:1`;
    await importImage(env, await tempFolder('img-', work), ref, `refused ${Date.now()}\n`);
    const from = await logMark(mirror.logFile);
    const push = await docker(['push', ref]);
    expect(push.code, said(push)).not.toBe(0);
    expect(said(push)).toContain('unsupported');
    const isUpload = (r: { method: string; url: string }) => r.method === 'POST' && r.url.startsWith('/v2/e2e/refused/blobs/uploads/');
    const ours = await accessLogUntil(mirror.logFile, from, isUpload);
    const uploads = ours.filter(isUpload);
    expect(uploads.length, JSON.stringify(ours.slice(-20))).toBeGreaterThan(0);
    expect(uploads.every((r) => r.status === 405), JSON.stringify(uploads)).toBe(true);

    const direct = await httpGet(`${mirror.url}/v2/e2e/refused/blobs/uploads/`, { method: 'POST' });
    expect(direct.status).toBe(405);
    expect(JSON.parse(direct.body)).toMatchObject({ errors: [{ code: 'UNSUPPORTED' }] });
  });

  it('mirrors a registry that wants Docker token authentication (ours with its token server), pulled with skopeo', async () => {
    const repo = 'e2e/tokened';
    const token = await httpGet(`${tokenUpstream.url}/auth/token?service=ocireg&scope=repository:${repo}:pull,push`, {
      headers: { authorization: `Basic ${Buffer.from(`${TOKEN_PUSHER.user}:${TOKEN_PUSHER.password}`).toString('base64')}` },
    });
    expect(token.status, token.body).toBe(200);
    const image = await pushImage(tokenUpstream.url, repo, '1', { layers: [{ size: 32 * 1024, gzip: true }], auth: { bearer: (JSON.parse(token.body) as { token: string }).token } });
    const anonymous = await fetchManifest(tokenUpstream.url, repo, '1');
    expect(anonymous.status).toBe(401);

    const from = await logMark(tokenUpstream.logFile);
    const dir = join(work, 'skopeo-tokened');
    const copy = await run('skopeo', ['copy', '--src-tls-verify=false', `docker://${mirror.host}/tok/${repo}:1`, `dir:${dir}`], {
      allowFailure: true,
      timeoutMs: 120_000,
    });
    expect(copy.code, said(copy)).toBe(0);
    const manifest = await readFile(join(dir, 'manifest.json'));
    expect(`sha256:${sha256(manifest)}`).toBe(image.manifestDigest);
    const files = await readdir(dir);
    for (const blob of [image.config, ...image.layers]) expect(files).toContain(blob.digest.slice('sha256:'.length));

    // Our mirror asked the token server for a token, then fetched with it.
    const seen = await accessLogUntil(tokenUpstream.logFile, from, (r) => r.url === `/v2/${repo}/manifests/1`);
    expect(seen.some((r) => r.method === 'GET' && r.url.startsWith('/auth/token') && r.status === 200), JSON.stringify(seen.slice(-10))).toBe(true);
    expect(seen.some((r) => r.method === 'GET' && r.url === `/v2/${repo}/manifests/1` && r.status === 200), JSON.stringify(seen.slice(-10))).toBe(true);
  });

  describe('ECR pull-through cache rules made with the AWS CLI', () => {
    let ecrRegistry: ConfiguredRegistry;
    let awsHome: string;
    let taught = false;

    function awsEnv(): NodeJS.ProcessEnv {
      return {
        PATH: process.env.PATH,
        HOME: awsHome,
        AWS_ACCESS_KEY_ID: ECR_KEY.id,
        AWS_SECRET_ACCESS_KEY: ECR_KEY.secret,
        AWS_DEFAULT_REGION: 'us-east-1',
        AWS_CONFIG_FILE: join(awsHome, 'aws-config'),
        AWS_SHARED_CREDENTIALS_FILE: join(awsHome, 'aws-credentials'),
        AWS_PAGER: '',
        AWS_EC2_METADATA_DISABLED: 'true',
      };
    }

    async function ecrOk<T = Record<string, unknown>>(args: string[]): Promise<T> {
      const result = await run(AWS, ['ecr', ...args, '--endpoint-url', ecrRegistry.url, '--output', 'json'], { env: awsEnv(), allowFailure: true, timeoutMs: 60_000 });
      expect(result.code, `aws ecr ${args.join(' ')}\n${said(result)}`).toBe(0);
      return (result.stdout.trim() === '' ? {} : JSON.parse(result.stdout)) as T;
    }

    beforeAll(async () => {
      awsHome = await tempFolder('aws-', work);
      taught = await teachPullThroughModel(AWS, awsHome, awsEnv());
      ecrRegistry = await startConfiguredRegistry({
        work: join(work, 'ecr'),
        config: {
          ecr: { enabled: true, credentials: [{ accesskeyid: ECR_KEY.id, secretaccesskey: ECR_KEY.secret, user: 'ci' }] },
          access: { admins: ['ci'], repositories: { '**': { users: { ci: ['pull', 'push', 'delete', 'manage'] } } } },
          proxy: {
            credentials: { 'upstream-creds': { username: UPSTREAM_USER.user, password: UPSTREAM_USER.password } },
            allowedupstreams: [upstream.url],
          },
        },
      });
    });

    afterAll(async () => {
      await ecrRegistry?.stop();
    });

    it('creates, describes and validates a rule, and a docker pull under its prefix is served from the upstream', async () => {
      const repo = 'e2e/ecr-app';
      const auth = { username: UPSTREAM_USER.user, password: UPSTREAM_USER.password };
      const image = await pushImage(upstream.url, repo, '1', { layers: [{ size: 8 * 1024, gzip: true }], auth });
      if (taught) console.log(`proxy e2e: ${AWS} predates credentialArn and ValidatePullThroughCacheRule; ECR's current model for them was added under its HOME`);

      const created = await ecrOk([
        'create-pull-through-cache-rule',
        '--ecr-repository-prefix', 'up',
        '--upstream-registry-url', upstream.url,
        '--credential-arn', CREDENTIAL_ARN,
      ]);
      expect(created).toMatchObject({ ecrRepositoryPrefix: 'up', upstreamRegistryUrl: upstream.url, credentialArn: CREDENTIAL_ARN, registryId: '000000000000' });
      const described = await ecrOk<{ pullThroughCacheRules: Array<Record<string, unknown>> }>(['describe-pull-through-cache-rules']);
      expect(described.pullThroughCacheRules).toEqual([expect.objectContaining({ ecrRepositoryPrefix: 'up', upstreamRegistryUrl: upstream.url, credentialArn: CREDENTIAL_ARN })]);
      const validated = await ecrOk(['validate-pull-through-cache-rule', '--ecr-repository-prefix', 'up']);
      expect(validated, JSON.stringify(validated)).toMatchObject({ ecrRepositoryPrefix: 'up', isValid: true });

      const login = `"${AWS}" ecr get-login-password --endpoint-url ${ecrRegistry.url} | docker login --username AWS --password-stdin ${ecrRegistry.host}`;
      const loggedIn = await run('bash', ['-o', 'pipefail', '-c', login], { env: { ...awsEnv(), DOCKER_CONFIG: env.DOCKER_CONFIG, DOCKER_HOST: env.DOCKER_HOST }, allowFailure: true, timeoutMs: 60_000 });
      expect(loggedIn.code, said(loggedIn)).toBe(0);
      const mark = await upstream.mark();
      const ref = `${ecrRegistry.host}/up/${repo}:1`;
      await dockerOk(['pull', ref]);
      expect(await imageIdOf(ref)).toBe(image.config.digest);
      const saw = await upstreamSaw(repo, mark);
      expect(saw, saw.join('\n')).toContain(`GET /v2/${repo}/manifests/1 200`);

      const repositories = await ecrOk<{ repositories: Array<{ repositoryName: string }> }>(['describe-repositories']);
      expect(repositories.repositories.map((r) => r.repositoryName)).toContain(`up/${repo}`);
    });
  });
});
