// docker (the CLI on PATH, with Debian's dockerd 20.10) against the built registry.
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { accessLog, accessLogUntil, buildImage, readImage as readHashes, dockerEnv, fetchManifest, logMark, run, serverFaults, sha256, tempFolder, type ImageFile } from './harness.js';

const registryUrl = inject('registryUrl');
const host = inject('registryHost');
const logFile = inject('registryLog');

const BIG = 50 * 1024 * 1024;

let work: string;
let env: NodeJS.ProcessEnv;
/** sha256 of each file baked into image A, by path inside the image. */
let imageA: Record<string, string>;
/** The same for image B, a different image used to move tags. */
let imageB: Record<string, string>;
const created: string[] = [];
/** Where the shared registry log stood when this file began. */
let logStart: number;

async function docker(args: string[], timeoutMs = 180_000) {
  return run('docker', args, { env, timeoutMs });
}

/** Builds image `tag` from scratch with `files` (one COPY, so one layer, per entry). */
function build(tag: string, name: string, files: ImageFile[]) {
  return buildImage(join(work, `ctx-${name}`), tag, 'scratch', files, env);
}

/** Removes an image and every tag of it from the daemon, and checks that it is gone. */
async function removeLocal(ref: string) {
  const id = (await docker(['image', 'inspect', '-f', '{{.Id}}', ref])).stdout.trim();
  await docker(['rmi', '-f', id]);
  const after = await run('docker', ['image', 'inspect', ref], { env, allowFailure: true });
  expect(after.code, `${ref} is still present locally`).not.toBe(0);
}

/** Copies `paths` out of image `ref` and hashes them (see harness.ts). */
function readImage(ref: string, paths: string[]): Promise<Record<string, string>> {
  return readHashes(work, ref, paths, env, created);
}

function pushedDigest(output: string): string {
  const m = /digest: (sha256:[0-9a-f]{64})/.exec(output);
  if (!m) throw new Error(`docker push printed no digest:\n${output}`);
  return m[1]!;
}

const REF_A = () => `${host}/e2e/docker-app:v1`;
const REF_B = () => `${host}/e2e/docker-other:v1`;

function buildA() {
  return build(REF_A(), 'a', [
    { path: '/data/big.bin', randomBytes: BIG },
    { path: '/etc/greeting.txt', content: 'hello from image A\n' },
    { path: '/app/config.json', content: '{"image":"A"}\n' },
  ]);
}

function buildB() {
  return build(REF_B(), 'b', [
    { path: '/etc/greeting.txt', content: 'hello from image B\n' },
    { path: '/data/b.bin', randomBytes: 256 * 1024 },
  ]);
}

/** Makes sure images A and B are present locally (a case removes what it pulls back). */
async function haveImages() {
  if ((await run('docker', ['image', 'inspect', REF_A()], { env, allowFailure: true })).code !== 0) imageA = await buildA();
  if ((await run('docker', ['image', 'inspect', REF_B()], { env, allowFailure: true })).code !== 0) imageB = await buildB();
}

beforeAll(async () => {
  logStart = await logMark(logFile);
  work = await tempFolder('docker-', inject('e2eWork'));
  env = await dockerEnv(inject('dockerHost'), work);
  imageA = await buildA();
  imageB = await buildB();
});

afterAll(async () => {
  for (const container of created) await run('docker', ['rm', '-f', container], { env, allowFailure: true });
  // The daemon may be a developer's own (DOCKER_HOST): leave none of our images in it.
  const ours = await run('docker', ['image', 'ls', '--format', '{{.Repository}}:{{.Tag}}'], { env, allowFailure: true });
  for (const ref of ours.stdout.split('\n').filter((r) => r.startsWith(`${host}/e2e/`))) {
    await run('docker', ['rmi', '-f', ref], { env, allowFailure: true });
  }
  const dangling = await run('docker', ['image', 'ls', '-q', '--filter', `reference=${host}/e2e/*`], { env, allowFailure: true });
  for (const id of new Set(dangling.stdout.split('\n').filter(Boolean))) await run('docker', ['rmi', '-f', id], { env, allowFailure: true });
  await rm(work, { recursive: true, force: true });
});

describe('docker', () => {
  it('pushes a three-layer image with 50 MiB of random bytes, and pulls back the same bytes after removing it', async () => {
    const ref = `${host}/e2e/docker-app:v1`;
    await haveImages();
    const layers = JSON.parse((await docker(['image', 'inspect', '-f', '{{json .RootFS.Layers}}', ref])).stdout) as string[];
    expect(layers).toHaveLength(3);

    const digest = pushedDigest((await docker(['push', ref], 300_000)).stdout);
    const stored = await fetchManifest(registryUrl, 'e2e/docker-app', 'v1');
    expect(stored.status).toBe(200);
    expect(stored.digest).toBe(digest);
    expect(`sha256:${sha256(stored.body)}`).toBe(digest);

    await removeLocal(ref);
    const mark = await logMark(logFile);
    await docker(['pull', ref], 300_000);
    expect(await readImage(ref, Object.keys(imageA))).toEqual(imageA);

    // On S3 the layers come from the bucket (a 307 to a presigned URL); on a filesystem, from the registry.
    const blobGets = (await accessLog(logFile, mark)).filter((r) => r.method === 'GET' && r.url.startsWith('/v2/e2e/docker-app/blobs/'));
    expect(blobGets.length).toBeGreaterThanOrEqual(4);
    expect(new Set(blobGets.map((r) => r.status))).toEqual(new Set([inject('registryStorage') === 's3' ? 307 : 200]));
  });

  it('pushes the same image to a second repository by mounting its layers, not uploading them again', async () => {
    const first = `${host}/e2e/docker-app:v1`;
    const second = `${host}/e2e/docker-mounted:v1`;
    await haveImages();
    await docker(['push', first], 300_000);
    await docker(['tag', first, second]);
    const mark = await logMark(logFile);

    const output = (await docker(['push', second], 300_000)).stdout;
    expect(output.match(/Mounted from e2e\//g) ?? [], output).toHaveLength(3);

    // What reached the registry: three mount requests answered 201, and no layer data.
    const isManifestPut = (r: { method: string; url: string }) => r.method === 'PUT' && r.url === '/v2/e2e/docker-mounted/manifests/v1';
    const requests = (await accessLogUntil(logFile, mark, isManifestPut)).filter((r) => r.url.startsWith('/v2/e2e/docker-mounted/'));
    const mounts = requests.filter((r) => r.method === 'POST' && r.url.includes('mount=') && r.status === 201);
    expect(mounts, JSON.stringify(requests)).toHaveLength(3);
    // Docker may still upload the small config blob; at most that one upload carries data.
    const uploads = requests.filter((r) => r.method === 'PATCH' || (r.method === 'PUT' && r.url.includes('/blobs/uploads/')));
    expect(uploads.filter((r) => r.method === 'PUT').length, JSON.stringify(requests)).toBeLessThanOrEqual(1);

    // The layers are now readable through the second repository.
    const manifest = JSON.parse((await fetchManifest(registryUrl, 'e2e/docker-mounted', 'v1')).body.toString()) as {
      layers: Array<{ digest: string; size: number }>;
    };
    expect(manifest.layers).toHaveLength(3);
    for (const layer of manifest.layers) {
      const res = await fetch(`${registryUrl}/v2/e2e/docker-mounted/blobs/${layer.digest}`, { method: 'HEAD', signal: AbortSignal.timeout(10_000) });
      expect(res.status).toBe(200);
      expect(Number(res.headers.get('content-length'))).toBe(layer.size);
    }
  });

  it('moves a tag to another image, pulls the new one, and still pulls the old one by digest', async () => {
    const ref = `${host}/e2e/docker-moving:latest`;
    const a = `${host}/e2e/docker-app:v1`;
    const b = `${host}/e2e/docker-other:v1`;
    await haveImages();
    await docker(['tag', a, ref]);
    const oldDigest = pushedDigest((await docker(['push', ref], 300_000)).stdout);
    await docker(['tag', b, ref]);
    const newDigest = pushedDigest((await docker(['push', ref], 300_000)).stdout);
    expect(newDigest).not.toBe(oldDigest);
    expect((await fetchManifest(registryUrl, 'e2e/docker-moving', 'latest', 'HEAD')).digest).toBe(newDigest);

    await removeLocal(ref);
    await docker(['pull', ref], 300_000);
    expect(await readImage(ref, Object.keys(imageB))).toEqual(imageB);

    // Image A is gone from the daemon too, so pulling it by digest has to fetch its layers.
    await removeLocal(a);
    const byDigest = `${host}/e2e/docker-moving@${oldDigest}`;
    await docker(['pull', byDigest], 300_000);
    expect(await readImage(byDigest, Object.keys(imageA))).toEqual(imageA);
  });

  it('pushes a two-platform manifest list with docker manifest, and pulls it by digest', async () => {
    const repo = `${host}/e2e/docker-multi`;
    await haveImages();
    await docker(['tag', `${host}/e2e/docker-app:v1`, `${repo}:amd64`]);
    await docker(['tag', `${host}/e2e/docker-other:v1`, `${repo}:arm64`]);
    const amd64 = pushedDigest((await docker(['push', `${repo}:amd64`], 300_000)).stdout);
    const arm64 = pushedDigest((await docker(['push', `${repo}:arm64`], 300_000)).stdout);

    await docker(['manifest', 'create', '--insecure', `${repo}:list`, `${repo}:amd64`, `${repo}:arm64`]);
    await docker(['manifest', 'annotate', '--os', 'linux', '--arch', 'amd64', `${repo}:list`, `${repo}:amd64`]);
    await docker(['manifest', 'annotate', '--os', 'linux', '--arch', 'arm64', '--variant', 'v8', `${repo}:list`, `${repo}:arm64`]);
    const pushed = await docker(['manifest', 'push', '--insecure', '--purge', `${repo}:list`]);
    const listDigest = /sha256:[0-9a-f]{64}/.exec(pushed.stdout)?.[0];
    expect(listDigest, pushed.stdout).toBeDefined();

    const list = await fetchManifest(registryUrl, 'e2e/docker-multi', 'list');
    expect(list.status).toBe(200);
    expect(list.digest).toBe(listDigest);
    expect(list.mediaType).toBe('application/vnd.docker.distribution.manifest.list.v2+json');
    const body = JSON.parse(list.body.toString()) as { manifests: Array<{ digest: string; platform: { architecture: string; variant?: string } }> };
    const platforms = Object.fromEntries(body.manifests.map((m) => [m.platform.architecture, m.digest]));
    expect(platforms).toEqual({ amd64, arm64 });

    // Pull by the list's digest, with neither image left in the daemon: it picks the entry of
    // its own platform and fetches that image's layers.
    const arch = (await docker(['version', '--format', '{{.Server.Arch}}'])).stdout.trim();
    expect(['amd64', 'arm64']).toContain(arch);
    const expected = arch === 'amd64' ? imageA : imageB;
    await removeLocal(`${host}/e2e/docker-app:v1`);
    await removeLocal(`${host}/e2e/docker-other:v1`);
    const byDigest = `${repo}@${listDigest}`;
    await docker(['pull', byDigest], 300_000);
    expect(await readImage(byDigest, ['/etc/greeting.txt'])).toEqual({ '/etc/greeting.txt': expected['/etc/greeting.txt'] });
  });

  it('left no server errors in the registry log', async () => {
    expect(await serverFaults(logFile, logStart)).toEqual([]);
  });
});
