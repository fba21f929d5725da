// docker, podman and skopeo against registries with authentication on: one with htpasswd
// (Basic) only, one with the built-in token server as well. Each is started here with its own
// configuration file; the suite's shared registry stays unauthenticated for the other files.
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import {
  basic,
  httpGet,
  imageId,
  importImage,
  removeImages,
  said,
  startConfiguredRegistry,
  writeHtpasswd,
  type ConfiguredRegistry,
} from './auth-support.js';
import { accessLog, accessLogUntil, BUILT_CLI, containersEnv, dockerEnv, logMark, run, serverFaults, tempFolder } from './harness.js';

const PASSWORDS = { alice: 'alice-Secret-1', bob: 'bob-Secret-2', carol: 'carol-Secret-3', root: 'root-Secret-4' };
type User = keyof typeof PASSWORDS;

/**
 * alice: everything on team-a; bob: pull and push on team-a through the group devs; carol: only
 * what every signed-in user has (pull); root: an admin; ci: signs in with access keys here.
 */
const ACCESS = {
  groups: { devs: ['alice', 'bob'] },
  admins: ['root'],
  repositories: {
    'team-a/**': { users: { alice: ['pull', 'push', 'delete'] }, groups: { devs: ['pull', 'push'] }, authenticated: ['pull'] },
    'public/**': { anonymous: ['pull'] },
    // ci may push to both by the rules; its access key narrows that to app/*.
    'app/**': { users: { ci: ['pull', 'push'] } },
    'ci-other/**': { users: { ci: ['pull', 'push'] } },
    '**': { authenticated: ['pull'] },
  },
};

const dockerHost = inject('dockerHost');
let work: string;
let htpasswd: string;
let basicRegistry: ConfiguredRegistry;
let tokenRegistry: ConfiguredRegistry;
const logStart: Record<string, number> = {};

async function docker(env: NodeJS.ProcessEnv, args: string[], timeoutMs = 120_000) {
  return run('docker', args, { env, timeoutMs });
}

/** The same command, resolving with its exit code and output instead of throwing. */
async function dockerMayFail(env: NodeJS.ProcessEnv, args: string[], timeoutMs = 120_000) {
  return run('docker', args, { env, timeoutMs, allowFailure: true });
}

/** A docker CLI environment with its own, empty DOCKER_CONFIG (nobody signed in). */
async function dockerAs(name: string): Promise<NodeJS.ProcessEnv> {
  return dockerEnv(dockerHost, await tempFolder(`${name}-`, work));
}

async function login(env: NodeJS.ProcessEnv, registry: ConfiguredRegistry, user: string, password: string) {
  return dockerMayFail(env, ['login', '-u', user, '-p', password, registry.host], 60_000);
}

/** docker login that must succeed. */
async function signIn(registry: ConfiguredRegistry, user: User): Promise<NodeJS.ProcessEnv> {
  const env = await dockerAs(user);
  const result = await login(env, registry, user, PASSWORDS[user]);
  expect(result.code, said(result)).toBe(0);
  return env;
}

/** A fresh tiny image under `ref`, made in the daemon; returns its id. */
async function freshImage(env: NodeJS.ProcessEnv, ref: string): Promise<string> {
  return importImage(env, await tempFolder('img-', work), ref, `${ref} ${Date.now()} ${Math.random()}\n`);
}

/** Removes the image (all its tags) from the daemon, then pulls `ref` and returns the pulled id. */
async function pullAfresh(env: NodeJS.ProcessEnv, ref: string): Promise<string> {
  await docker(env, ['rmi', '-f', await imageId(env, ref)]);
  expect((await dockerMayFail(env, ['image', 'inspect', ref])).code, `${ref} is still present locally`).not.toBe(0);
  await docker(env, ['pull', ref]);
  return imageId(env, ref);
}

function errorCode(body: string): string | undefined {
  try {
    return (JSON.parse(body) as { errors?: Array<{ code?: string }> }).errors?.[0]?.code;
  } catch {
    return undefined;
  }
}

beforeAll(async () => {
  work = await tempFolder('auth-', inject('e2eWork'));
  htpasswd = join(work, 'htpasswd');
  // An access key works for a user of the htpasswd file (`keys create` warns otherwise).
  await writeHtpasswd(htpasswd, { ...PASSWORDS, ci: 'ci-Password-5' });
  [basicRegistry, tokenRegistry] = await Promise.all([
    startConfiguredRegistry({
      work: join(work, 'basic'),
      config: { auth: { htpasswd: { realm: 'ocireg', path: htpasswd } }, access: ACCESS },
    }),
    startConfiguredRegistry({
      work: join(work, 'token'),
      config: {
        auth: {
          htpasswd: { realm: 'ocireg', path: htpasswd },
          tokenserver: { enabled: true, issuer: 'ocireg', service: 'ocireg', key: join(work, 'token', 'token-key.pem'), expiration: '5m' },
        },
        access: ACCESS,
      },
    }),
  ]);
  logStart.basic = await logMark(basicRegistry.logFile);
  logStart.token = await logMark(tokenRegistry.logFile);
});

afterAll(async () => {
  const env = await dockerEnv(dockerHost, work);
  for (const registry of [basicRegistry, tokenRegistry]) {
    if (!registry) continue;
    await removeImages(env, `${registry.host}/`);
    await registry.stop();
  }
  await rm(work, { recursive: true, force: true });
});

describe('htpasswd (Basic) authentication', () => {
  it('challenges an anonymous caller with Basic realm="ocireg" and refuses a signed-in caller without the right with DENIED', async () => {
    const ping = await httpGet(`${basicRegistry.url}/v2/`);
    expect(ping.status).toBe(401);
    expect(ping.headers['www-authenticate']).toBe('Basic realm="ocireg"');
    expect(errorCode(ping.body), ping.body).toBe('UNAUTHORIZED');

    const signedIn = await httpGet(`${basicRegistry.url}/v2/`, { headers: { authorization: basic('carol', PASSWORDS.carol) } });
    expect(signedIn.status, signedIn.body).toBe(200);

    const upload = await httpGet(`${basicRegistry.url}/v2/team-a/refused/blobs/uploads/`, {
      method: 'POST',
      headers: { authorization: basic('carol', PASSWORDS.carol), 'content-length': '0' },
    });
    expect(upload.status, upload.body).toBe(403);
    expect(errorCode(upload.body), upload.body).toBe('DENIED');
  });

  it('docker login succeeds with the right password and fails with a wrong one', async () => {
    const env = await dockerAs('login');
    const wrong = await login(env, basicRegistry, 'alice', 'not-her-password');
    expect(wrong.code, said(wrong)).not.toBe(0);
    expect(said(wrong)).toMatch(/unauthorized|401/i);
    const config = JSON.parse(await readFile(join(env.DOCKER_CONFIG!, 'config.json'), 'utf8')) as { auths?: Record<string, unknown> };
    expect(config.auths?.[basicRegistry.host], 'a failed login stores no credentials').toBeUndefined();

    const right = await login(env, basicRegistry, 'alice', PASSWORDS.alice);
    expect(right.code, said(right)).toBe(0);
    expect(right.stdout).toContain('Login Succeeded');
  });

  it('docker pushes and pulls as a user with the rights', async () => {
    const env = await signIn(basicRegistry, 'alice');
    const ref = `${basicRegistry.host}/team-a/docker-app:v1`;
    const id = await freshImage(env, ref);
    await docker(env, ['push', ref]);
    expect(await pullAfresh(env, ref)).toBe(id);
  });

  it('refuses a docker push by a user with only pull rights, and docker says "denied"', async () => {
    const alice = await signIn(basicRegistry, 'alice');
    const ref = `${basicRegistry.host}/team-a/pull-only:v1`;
    const id = await freshImage(alice, ref);
    await docker(alice, ['push', ref]);

    const carol = await signIn(basicRegistry, 'carol');
    // She can pull it...
    expect(await pullAfresh(carol, ref)).toBe(id);
    // ...but not push, neither a new tag nor a new repository.
    for (const target of [`${basicRegistry.host}/team-a/pull-only:carol`, `${basicRegistry.host}/team-a/carols-own:v1`]) {
      await docker(carol, ['tag', ref, target]);
      const pushed = await dockerMayFail(carol, ['push', target]);
      expect(pushed.code, said(pushed)).not.toBe(0);
      expect(said(pushed)).toContain('denied');
    }
  });

  it('serves a public/** image, pushed by an admin, to callers without credentials (docker itself needs the token server for that)', async () => {
    const root = await signIn(basicRegistry, 'root');
    const ref = `${basicRegistry.host}/public/hello:v1`;
    await freshImage(root, ref);
    await docker(root, ['push', ref]);
    await docker(root, ['logout', basicRegistry.host]);
    const manifest = await httpGet(`${basicRegistry.url}/v2/public/hello/manifests/v1`, {
      headers: { accept: 'application/vnd.docker.distribution.manifest.v2+json' },
    });
    expect(manifest.status, manifest.body).toBe(200);

    // Once /v2/ has answered with a Basic challenge, docker sends no request without
    // credentials: anonymous docker pulls need the token server (see below).
    const anonymous = await dockerAs('anon-pull');
    await docker(anonymous, ['rmi', '-f', await imageId(anonymous, ref)]);
    const pulled = await dockerMayFail(anonymous, ['pull', ref]);
    expect(pulled.code, said(pulled)).not.toBe(0);
    expect(said(pulled)).toContain('no basic auth credentials');

    // skopeo (containers/image) answers a Basic challenge without credentials with an empty
    // user and password (`Authorization: Basic Og==`).
    const dir = await tempFolder('anon-', work);
    const copied = await run('skopeo', ['copy', '--src-tls-verify=false', `docker://${ref}`, `oci:${join(dir, 'out')}:v1`], {
      timeoutMs: 60_000,
      allowFailure: true,
    });
    expect(copied.code, said(copied)).toBe(0);
  });

  it('refuses an anonymous push', async () => {
    const upload = await httpGet(`${basicRegistry.url}/v2/public/anonymous/blobs/uploads/`, { method: 'POST', headers: { 'content-length': '0' } });
    expect(upload.status, upload.body).toBe(401);
    expect(upload.headers['www-authenticate']).toBe('Basic realm="ocireg"');
    expect(errorCode(upload.body), upload.body).toBe('UNAUTHORIZED');

    const anonymous = await dockerAs('anon-push');
    const ref = `${basicRegistry.host}/public/anonymous:v1`;
    await freshImage(anonymous, ref);
    const pushed = await dockerMayFail(anonymous, ['push', ref]);
    expect(pushed.code, said(pushed)).not.toBe(0);
    expect(said(pushed)).toMatch(/no basic auth credentials|unauthorized/i);
    expect((await httpGet(`${basicRegistry.url}/v2/public/anonymous/manifests/v1`)).status).toBe(404);
  });

  it('podman logs in, pushes and pulls (as a member of a group with push rights)', async () => {
    const dir = await tempFolder('p-', work);
    const { env, podman } = await containersEnv(dir);
    const pod = (args: string[], allowFailure = false) => run('podman', [...podman, ...args], { env, timeoutMs: 120_000, allowFailure });
    const ref = `${basicRegistry.host}/team-a/podman-app:v1`;

    const wrong = await pod(['login', '--tls-verify=false', '-u', 'bob', '-p', 'wrong', basicRegistry.host], true);
    expect(wrong.code, said(wrong)).not.toBe(0);
    await pod(['login', '--tls-verify=false', '-u', 'bob', '-p', PASSWORDS.bob, basicRegistry.host]);

    const rootfs = join(dir, 'rootfs');
    await run('sh', ['-c', `mkdir -p "${rootfs}/etc" && echo podman > "${rootfs}/etc/e2e.txt" && tar -C "${rootfs}" -cf "${dir}/image.tar" .`]);
    await pod(['import', join(dir, 'image.tar'), ref]);
    await pod(['push', '--tls-verify=false', '--digestfile', join(dir, 'digest'), ref]);
    const digest = (await readFile(join(dir, 'digest'), 'utf8')).trim();

    await pod(['rmi', '-f', ref]);
    await pod(['pull', '--tls-verify=false', ref]);
    const pulled = (await pod(['image', 'inspect', '--format', '{{.Digest}}', ref])).stdout.trim();
    expect(pulled).toBe(digest);

    await pod(['logout', basicRegistry.host]);
    const anonymous = await pod(['pull', '--tls-verify=false', ref], true);
    expect(anonymous.code, 'an anonymous pull of team-a').not.toBe(0);
  });

  it('skopeo copies in with --dest-creds, out with --src-creds, and inspects with --creds', async () => {
    const dir = await tempFolder('s-', work);
    const layout = join(dir, 'layout');
    await run('umoci', ['init', '--layout', layout]);
    await run('umoci', ['new', '--image', `${layout}:v1`]);
    await run('sh', ['-c', `echo skopeo > "${dir}/e2e.txt"`]);
    await run('umoci', ['insert', '--image', `${layout}:v1`, join(dir, 'e2e.txt'), '/etc/e2e.txt']);
    const skopeo = (args: string[], allowFailure = false) => run('skopeo', args, { timeoutMs: 120_000, allowFailure });
    const dest = `docker://${basicRegistry.host}/team-a/skopeo-app:v1`;
    const alice = `alice:${PASSWORDS.alice}`;
    const carol = `carol:${PASSWORDS.carol}`;

    const anonymous = await skopeo(['copy', '--dest-tls-verify=false', `oci:${layout}:v1`, dest], true);
    expect(anonymous.code, said(anonymous)).not.toBe(0);
    expect(said(anonymous)).toMatch(/unauthorized|authentication required/i);
    const pullOnly = await skopeo(['copy', '--dest-tls-verify=false', '--dest-creds', carol, `oci:${layout}:v1`, dest], true);
    expect(pullOnly.code, said(pullOnly)).not.toBe(0);
    expect(said(pullOnly)).toMatch(/denied/i);

    const digestFile = join(dir, 'digest');
    await skopeo(['copy', '--dest-tls-verify=false', '--dest-creds', alice, '--digestfile', digestFile, `oci:${layout}:v1`, dest]);
    const digest = (await readFile(digestFile, 'utf8')).trim();

    await skopeo(['copy', '--src-tls-verify=false', '--src-creds', carol, dest, `oci:${join(dir, 'out')}:v1`]);
    const index = JSON.parse(await readFile(join(dir, 'out', 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> };
    expect(index.manifests.map((m) => m.digest)).toEqual([digest]);

    const inspected = JSON.parse((await skopeo(['inspect', '--tls-verify=false', '--creds', carol, dest])).stdout) as { Digest: string };
    expect(inspected.Digest).toBe(digest);
    const unsigned = await skopeo(['inspect', '--tls-verify=false', dest], true);
    expect(unsigned.code, said(unsigned)).not.toBe(0);
  });

  it('an access key signs docker in as its user, pushes within its scope only, and stops working when revoked', async () => {
    const keys = (args: string[]) =>
      run(process.execPath, [BUILT_CLI, 'keys', ...args, '--config', basicRegistry.configPath], {
        cwd: join(work, 'basic'),
        env: { PATH: process.env.PATH, HOME: process.env.HOME },
        timeoutMs: 30_000,
      });
    const created = await keys(['create', '--user', 'ci', '--scope', 'repository:app/*:pull,push']);
    const secret = created.stdout.split('\n')[0]!.trim();
    expect(secret.length, created.stdout).toBeGreaterThanOrEqual(16);

    const env = await dockerAs('ci');
    const wrong = await login(env, basicRegistry, 'ci', `${secret}x`);
    expect(wrong.code, said(wrong)).not.toBe(0);
    const right = await login(env, basicRegistry, 'ci', secret);
    expect(right.code, said(right)).toBe(0);

    const inScope = `${basicRegistry.host}/app/tool:v1`;
    const id = await freshImage(env, inScope);
    await docker(env, ['push', inScope]);
    expect(await pullAfresh(env, inScope)).toBe(id);

    // The rules would let ci push to ci-other/**; the key's scope does not.
    const outOfScope = `${basicRegistry.host}/ci-other/tool:v1`;
    await docker(env, ['tag', inScope, outOfScope]);
    const refused = await dockerMayFail(env, ['push', outOfScope]);
    expect(refused.code, said(refused)).not.toBe(0);
    expect(said(refused)).toContain('denied');

    // Revoked (by the id that `keys list` shows for it), the key no longer signs in.
    const listed = await keys(['list']);
    const row = listed.stdout.split('\n').find((line) => line.split(/\s+/)[1] === 'ci');
    expect(row, listed.stdout).toBeDefined();
    await keys(['revoke', row!.split(/\s+/)[0]!]);
    const revoked = await login(await dockerAs('ci-revoked'), basicRegistry, 'ci', secret);
    expect(revoked.code, said(revoked)).not.toBe(0);
  });

  it('left no server errors in the registry log', async () => {
    expect(await serverFaults(basicRegistry.logFile, logStart.basic)).toEqual([]);
  });
});

describe('the built-in token server', () => {
  it('challenges with Bearer, naming its token endpoint, the service and the scope', async () => {
    const base = tokenRegistry.url;
    const ping = await httpGet(`${base}/v2/`);
    expect(ping.status).toBe(401);
    expect(ping.headers['www-authenticate']).toBe(`Bearer realm="${base}/auth/token",service="ocireg"`);
    const tags = await httpGet(`${base}/v2/team-a/docker-app/tags/list`);
    expect(tags.status).toBe(401);
    expect(tags.headers['www-authenticate']).toBe(`Bearer realm="${base}/auth/token",service="ocireg",scope="repository:team-a/docker-app:pull"`);
  });

  it('docker login stores an identity token; push and pull then get their tokens by POST /auth/token', async () => {
    const env = await signIn(tokenRegistry, 'alice');
    const config = JSON.parse(await readFile(join(env.DOCKER_CONFIG!, 'config.json'), 'utf8')) as {
      auths: Record<string, { auth?: string; identitytoken?: string }>;
    };
    expect(config.auths[tokenRegistry.host]?.identitytoken, JSON.stringify(config)).toBeTruthy();

    const ref = `${tokenRegistry.host}/team-a/docker-app:v1`;
    const id = await freshImage(env, ref);
    const mark = await logMark(tokenRegistry.logFile);
    await docker(env, ['push', ref]);
    const isManifestPut = (r: { method: string; url: string }) => r.method === 'PUT' && r.url === '/v2/team-a/docker-app/manifests/v1';
    const pushed = await accessLogUntil(tokenRegistry.logFile, mark, isManifestPut);
    const posts = pushed.filter((r) => r.method === 'POST' && r.url.split('?')[0] === '/auth/token');
    expect(posts.length, JSON.stringify(pushed)).toBeGreaterThanOrEqual(1);
    expect(posts.every((r) => r.status === 200), JSON.stringify(posts)).toBe(true);
    expect(pushed.find(isManifestPut)?.status).toBe(201);

    const pullMark = await logMark(tokenRegistry.logFile);
    expect(await pullAfresh(env, ref)).toBe(id);
    const pulled = await accessLog(tokenRegistry.logFile, pullMark);
    expect(pulled.some((r) => r.method === 'POST' && r.url.split('?')[0] === '/auth/token' && r.status === 200), JSON.stringify(pulled)).toBe(true);
  });

  it('refuses a docker push by a user with only pull rights, and docker says "denied"', async () => {
    const alice = await signIn(tokenRegistry, 'alice');
    const ref = `${tokenRegistry.host}/team-a/docker-app:v1`;
    if ((await dockerMayFail(alice, ['image', 'inspect', ref])).code !== 0) {
      await freshImage(alice, ref);
      await docker(alice, ['push', ref]);
    }
    const carol = await signIn(tokenRegistry, 'carol');
    await docker(carol, ['pull', ref]);
    const target = `${tokenRegistry.host}/team-a/docker-app:carol`;
    await docker(carol, ['tag', ref, target]);
    const pushed = await dockerMayFail(carol, ['push', target]);
    expect(pushed.code, said(pushed)).not.toBe(0);
    expect(said(pushed)).toContain('denied');
  });

  it('skopeo copies in and out with credentials, getting its tokens by GET /auth/token', async () => {
    const dir = await tempFolder('st-', work);
    const layout = join(dir, 'layout');
    await run('umoci', ['init', '--layout', layout]);
    await run('umoci', ['new', '--image', `${layout}:v1`]);
    const dest = `docker://${tokenRegistry.host}/team-a/skopeo-app:v1`;
    const mark = await logMark(tokenRegistry.logFile);
    const digestFile = join(dir, 'digest');
    await run('skopeo', ['copy', '--dest-tls-verify=false', '--dest-creds', `bob:${PASSWORDS.bob}`, '--digestfile', digestFile, `oci:${layout}:v1`, dest]);
    await run('skopeo', ['copy', '--src-tls-verify=false', '--src-creds', `carol:${PASSWORDS.carol}`, dest, `oci:${join(dir, 'out')}:v1`]);
    const index = JSON.parse(await readFile(join(dir, 'out', 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> };
    expect(index.manifests.map((m) => m.digest)).toEqual([(await readFile(digestFile, 'utf8')).trim()]);
    const requests = await accessLog(tokenRegistry.logFile, mark);
    expect(requests.some((r) => r.method === 'GET' && r.url.startsWith('/auth/token?') && r.status === 200), JSON.stringify(requests)).toBe(true);

    const refused = await run('skopeo', ['copy', '--dest-tls-verify=false', '--dest-creds', `carol:${PASSWORDS.carol}`, `oci:${layout}:v1`, dest], {
      allowFailure: true,
    });
    expect(refused.code, said(refused)).not.toBe(0);
  });

  it('docker pulls a public/** image anonymously with an anonymous token', async () => {
    const root = await signIn(tokenRegistry, 'root');
    const ref = `${tokenRegistry.host}/public/hello:v1`;
    const id = await freshImage(root, ref);
    await docker(root, ['push', ref]);

    const anonymous = await dockerAs('token-anon');
    const mark = await logMark(tokenRegistry.logFile);
    expect(await pullAfresh(anonymous, ref)).toBe(id);
    const requests = await accessLog(tokenRegistry.logFile, mark);
    const tokenGets = requests.filter((r) => r.method === 'GET' && r.url.startsWith('/auth/token?') && r.status === 200);
    expect(tokenGets.length, JSON.stringify(requests)).toBeGreaterThanOrEqual(1);

    const refused = await dockerMayFail(anonymous, ['push', `${tokenRegistry.host}/public/hello:v1`]);
    expect(refused.code, said(refused)).not.toBe(0);
  });

  it('left no server errors in the registry log', async () => {
    expect(await serverFaults(tokenRegistry.logFile, logStart.token)).toEqual([]);
  });
});
