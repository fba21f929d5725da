// Garbage collection end to end: docker pushes two single-platform images and a two-platform
// list of them, the test signs the list (an OCI referrer pushed over HTTP), and an unrelated image
// in another repository shares a base layer with one platform. Once the tags are gone, `ocireg gc`
// (spawned beside the running registry, which collects nothing itself) frees exactly what the
// list, its platforms and its signature held alone, on a registry of this file's own.
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { spawnServer, type ServerProcess } from '../support/built-server.js';
import { accessLog, buildImage, readImage as readHashes, BUILT_CLI, dockerEnv, fetchManifest, logMark, run, serverFaults, sha256, tempFolder, type ImageFile, type RunResult } from './harness.js';

const MANIFEST_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const SIGNATURE_TYPE = 'application/vnd.dev.cosign.artifact.sig.v1+json';

let work: string;
let dataDir: string;
let configPath: string;
let logFile: string;
let registry: ServerProcess;
let registryUrl: string;
let host: string;
let env: NodeJS.ProcessEnv;
const created: string[] = [];

/** The repository of the list (and its platforms and signature), and the unrelated one. */
const REPO = 'e2e/gc-multi';
const OTHER = 'e2e/gc-other';
const ref = (repo: string, tag: string) => `${host}/${repo}:${tag}`;

interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
}

/** What the pushes left, as the cases after the first need it. */
const pushed = {
  list: '',
  platforms: [] as string[],
  signature: '',
  /** Every blob (manifests' own bytes, configs, layers) that the list, its platforms and its signature hold, with its size. */
  held: new Map<string, number>(),
  /** The part of `held` that the other image does not hold too: what gc must free. */
  alone: new Map<string, number>(),
  /** The base layer the other image shares with the amd64 platform. */
  shared: '',
  /** sha256 of each file of the other image, by path. */
  otherFiles: {} as Record<string, string>,
  /** Bytes under <root>/blobs once everything was pushed. */
  bytes: 0,
};

async function docker(args: string[], timeoutMs = 180_000): Promise<RunResult> {
  return run('docker', args, { env, timeoutMs });
}

/** Builds image `tag` FROM `from` with one COPY (one layer) per file; returns each file's sha256 by path. */
function build(tag: string, from: string, files: ImageFile[]) {
  return buildImage(join(work, `ctx-${sha256(tag).slice(0, 12)}`), tag, from, files, env);
}

function pushedDigest(output: string): string {
  const m = /digest: (sha256:[0-9a-f]{64})/.exec(output);
  if (!m) throw new Error(`docker push printed no digest:\n${output}`);
  return m[1]!;
}

function http(path: string, init: RequestInit = {}): Promise<Response> {
  return fetch(`${registryUrl}${path}`, { ...init, signal: AbortSignal.timeout(30_000) });
}

/** Uploads a blob in one PUT (POST, then PUT with the digest); returns its descriptor. */
async function uploadBlob(repo: string, mediaType: string, content: Buffer): Promise<Descriptor> {
  const digest = `sha256:${sha256(content)}`;
  const post = await http(`/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  expect(post.status, await post.text()).toBe(202);
  const location = new URL(post.headers.get('location')!, registryUrl);
  location.searchParams.set('digest', digest);
  const put = await fetch(location, {
    method: 'PUT',
    headers: { 'content-type': 'application/octet-stream' },
    body: content,
    signal: AbortSignal.timeout(30_000),
  });
  expect(put.status, await put.text()).toBe(201);
  return { mediaType, digest, size: content.length };
}

/**
 * Signs the list as cosign would, without cosign: an OCI manifest of artifactType "signature"
 * whose subject is the list, with a config and a payload of its own; pushed by digest.
 */
async function pushSignature(list: Descriptor): Promise<string> {
  const nonce = randomBytes(16).toString('hex');
  const config = await uploadBlob(REPO, 'application/vnd.e2e.signature.config.v1+json', Buffer.from(JSON.stringify({ signer: 'e2e', nonce })));
  const payload = Buffer.from(JSON.stringify({ critical: { image: { 'docker-manifest-digest': list.digest }, type: 'cosign container image signature' }, nonce }));
  const layer = await uploadBlob(REPO, 'application/vnd.dev.cosign.simplesigning.v1+json', payload);
  const body = Buffer.from(
    JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, artifactType: SIGNATURE_TYPE, config, layers: [layer], subject: list }),
  );
  const digest = `sha256:${sha256(body)}`;
  const res = await http(`/v2/${REPO}/manifests/${digest}`, { method: 'PUT', headers: { 'content-type': OCI_MANIFEST }, body });
  expect(res.status, await res.text()).toBe(201);
  expect(res.headers.get('oci-subject')).toBe(list.digest);
  return digest;
}

/** A manifest by digest or tag, with its own descriptor and the blobs and children it lists. */
async function manifestOf(repo: string, reference: string) {
  const got = await fetchManifest(registryUrl, repo, reference);
  expect(got.status, `${repo}@${reference}`).toBe(200);
  const json = JSON.parse(got.body.toString()) as { config?: Descriptor; layers?: Descriptor[]; manifests?: Descriptor[] };
  const own: Descriptor = { mediaType: got.mediaType!, digest: `sha256:${sha256(got.body)}`, size: got.body.length };
  return { own, blobs: [...(json.config ? [json.config] : []), ...(json.layers ?? [])], children: json.manifests ?? [] };
}

/** Where the filesystem store keeps a blob's bytes. */
function blobPath(digest: string): string {
  const hex = digest.slice('sha256:'.length);
  return join(dataDir, 'blobs', 'sha256', hex.slice(0, 2), hex);
}

/** The size of a file, or undefined when there is none. */
async function sizeOf(path: string): Promise<number | undefined> {
  try {
    return (await stat(path)).size;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** Bytes of every file under <root>/blobs (a walk with an explicit stack, bounded by the tree). */
async function blobBytes(): Promise<number> {
  let total = 0;
  const pending = [join(dataDir, 'blobs')];
  while (pending.length > 0) {
    const dir = pending.pop()!;
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) pending.push(path);
      else total += (await stat(path)).size;
    }
  }
  return total;
}

/** `ocireg gc [flags] <config>`, spawned with nothing of this process's environment but PATH and HOME. */
async function gc(...flags: string[]): Promise<RunResult> {
  const result = await run(process.execPath, [BUILT_CLI, 'gc', ...flags, configPath], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? work },
    timeoutMs: 120_000,
    allowFailure: true,
  });
  expect(result.code, `gc ${flags.join(' ')}:\n${result.stdout}${result.stderr}`).toBe(0);
  return result;
}

/** The command's one line for `manifests` manifests and the blobs of `blobs`: `removed 4 manifests and 9 blobs (1.2 MiB, 1234567 bytes) in 0.1 s`. */
function reportLine(verb: 'removed' | 'would remove', manifests: number, blobs: ReadonlyMap<string, number>): RegExp {
  const bytes = [...blobs.values()].reduce((a, b) => a + b, 0);
  const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;
  return new RegExp(`^${verb} ${plural(manifests, 'manifest')} and ${plural(blobs.size, 'blob')} \\((?:\\d+\\.\\d \\w+, )?${bytes} bytes\\) in \\d+\\.\\d s\\n$`);
}

/** Copies `paths` out of image `image` and hashes them (see harness.ts). */
function readImage(image: string, paths: string[]): Promise<Record<string, string>> {
  return readHashes(work, image, paths, env, created);
}

/** Every local image of this file's registry, by id. */
async function ourImages(): Promise<string[]> {
  const listed = await run('docker', ['image', 'ls', '-q', '--filter', `reference=${host}/e2e/*`], { env, allowFailure: true });
  return [...new Set(listed.stdout.split('\n').filter(Boolean))];
}

/**
 * Removes every local image of this file's registry. A built image's parent (the base) cannot go
 * while a child is there, so it takes a few passes (bounded); returns what is left.
 */
async function removeOurImages(): Promise<string[]> {
  for (let pass = 0; pass < 4; pass++) {
    const ids = await ourImages();
    if (ids.length === 0) return [];
    for (const id of ids) await run('docker', ['rmi', '-f', id], { env, allowFailure: true });
  }
  return ourImages();
}

beforeAll(async () => {
  work = await tempFolder('gc-', inject('e2eWork'));
  dataDir = join(work, 'data');
  await mkdir(dataDir);
  configPath = join(work, 'config.yml');
  logFile = join(work, 'registry.log');
  // Only the command collects (the schedule is off), with no grace window; the registry and the
  // command read this one file.
  await writeFile(
    configPath,
    [
      'version: 0.1',
      'storage:',
      '  filesystem:',
      `    rootdirectory: ${JSON.stringify(dataDir)}`,
      '  maintenance:',
      '    gc:',
      '      enabled: false',
      '      delay: 0s',
      '',
    ].join('\n'),
  );
  registry = await spawnServer(BUILT_CLI, { REGISTRY_LOG_LEVEL: 'info' }, work, { logFile, args: [configPath] });
  registryUrl = registry.url;
  host = new URL(registryUrl).host;
  env = await dockerEnv(inject('dockerHost'), work);
});

afterAll(async () => {
  for (const container of created) await run('docker', ['rm', '-f', container], { env, allowFailure: true });
  // The daemon may be a developer's own (DOCKER_HOST): leave none of our images in it.
  if (host) await removeOurImages();
  await registry?.stop();
  await rm(work, { recursive: true, force: true });
});

describe('garbage collection of an untagged multi-platform image and its signature', () => {
  it('pushes a two-platform list with docker, signs it, and pushes an image sharing a base layer elsewhere', async () => {
    const base = ref('e2e/gc-base', 'v1'); // local only: the two images built on it carry its layer
    await build(base, 'scratch', [{ path: '/base/base.bin', randomBytes: 300 * 1024 }]);
    await build(ref(REPO, 'amd64'), base, [{ path: '/etc/platform.txt', content: `amd64 ${randomBytes(8).toString('hex')}\n` }]);
    await build(ref(REPO, 'arm64'), 'scratch', [
      { path: '/etc/platform.txt', content: `arm64 ${randomBytes(8).toString('hex')}\n` },
      { path: '/data/arm.bin', randomBytes: 200 * 1024 },
    ]);
    pushed.otherFiles = await build(ref(OTHER, 'v1'), base, [{ path: '/etc/other.txt', content: `other ${randomBytes(8).toString('hex')}\n` }]);
    pushed.otherFiles['/base/base.bin'] = (await readImage(base, ['/base/base.bin']))['/base/base.bin']!;

    const amd64 = pushedDigest((await docker(['push', ref(REPO, 'amd64')], 300_000)).stdout);
    const arm64 = pushedDigest((await docker(['push', ref(REPO, 'arm64')], 300_000)).stdout);
    await docker(['push', ref(OTHER, 'v1')], 300_000);
    await docker(['manifest', 'create', '--insecure', ref(REPO, 'list'), ref(REPO, 'amd64'), ref(REPO, 'arm64')]);
    await docker(['manifest', 'annotate', '--os', 'linux', '--arch', 'amd64', ref(REPO, 'list'), ref(REPO, 'amd64')]);
    await docker(['manifest', 'annotate', '--os', 'linux', '--arch', 'arm64', '--variant', 'v8', ref(REPO, 'list'), ref(REPO, 'arm64')]);
    const listPush = await docker(['manifest', 'push', '--insecure', '--purge', ref(REPO, 'list')]);
    // The platforms were pushed under tags of their own: only the list's tag is to reach them.
    for (const tag of ['amd64', 'arm64']) expect((await http(`/v2/${REPO}/manifests/${tag}`, { method: 'DELETE' })).status).toBe(202);

    const list = await manifestOf(REPO, 'list');
    expect(list.own.mediaType).toBe(MANIFEST_LIST);
    expect(listPush.stdout).toContain(list.own.digest);
    expect(list.children.map((c) => c.digest).sort()).toEqual([amd64, arm64].sort());
    pushed.list = list.own.digest;
    pushed.platforms = [amd64, arm64];
    pushed.signature = await pushSignature(list.own);
    const referrers = (await (await http(`/v2/${REPO}/referrers/${pushed.list}`)).json()) as { manifests: Descriptor[] };
    expect(referrers.manifests.map((m) => m.digest)).toEqual([pushed.signature]);

    // What the list holds (every manifest's own bytes and their configs and layers), and what of that the other image holds too.
    const family = [list, ...(await Promise.all([...pushed.platforms, pushed.signature].map((d) => manifestOf(REPO, d))))];
    for (const m of family) for (const d of [m.own, ...m.blobs]) pushed.held.set(d.digest, d.size);
    const other = await manifestOf(OTHER, 'v1');
    const otherHolds = new Set([other.own, ...other.blobs].map((d) => d.digest));
    const shared = [...pushed.held.keys()].filter((d) => otherHolds.has(d));
    expect(shared, 'the other image shares exactly one blob (the base layer) with the list').toHaveLength(1);
    pushed.shared = shared[0]!;
    for (const [digest, size] of pushed.held) if (digest !== pushed.shared) pushed.alone.set(digest, size);
    // 4 manifests, 3 configs, 2 + 2 + 1 layers.
    expect(pushed.held.size).toBe(12);
    for (const [digest, size] of pushed.held) expect(await sizeOf(blobPath(digest)), digest).toBe(size);
    pushed.bytes = await blobBytes();
  });

  it('keeps the untagged list without --delete-untagged', async () => {
    expect((await http(`/v2/${REPO}/manifests/list`, { method: 'DELETE' })).status).toBe(202);
    expect((await fetchManifest(registryUrl, REPO, 'list', 'HEAD')).status).toBe(404);
    expect(await blobBytes()).toBe(pushed.bytes);

    const result = await gc();
    expect(result.stdout).toMatch(reportLine('removed', 0, new Map()));
    expect(await blobBytes()).toBe(pushed.bytes);
    for (const digest of [pushed.list, ...pushed.platforms, pushed.signature]) {
      expect((await fetchManifest(registryUrl, REPO, digest, 'HEAD')).status, digest).toBe(200);
    }
  });

  it('says with --dry-run --delete-untagged what would go, and changes nothing', async () => {
    const result = await gc('--dry-run', '--delete-untagged');
    expect(result.stdout).toMatch(reportLine('would remove', 4, pushed.alone));
    expect(await blobBytes()).toBe(pushed.bytes);
    for (const digest of [pushed.list, ...pushed.platforms, pushed.signature]) {
      expect((await fetchManifest(registryUrl, REPO, digest, 'HEAD')).status, digest).toBe(200);
    }
  });

  it('removes with --delete-untagged the list, its platforms, its signature and exactly the blobs they held alone', async () => {
    const result = await gc('--delete-untagged');
    expect(result.stdout).toMatch(reportLine('removed', 4, pushed.alone));
    const freed = [...pushed.alone.values()].reduce((a, b) => a + b, 0);
    expect(await blobBytes()).toBe(pushed.bytes - freed);
    for (const digest of pushed.alone.keys()) expect(await sizeOf(blobPath(digest)), digest).toBeUndefined();
    expect(await sizeOf(blobPath(pushed.shared))).toBe(pushed.held.get(pushed.shared));
  });

  it('answers 404 for what went, and docker still pulls the image that shared a layer with it', async () => {
    for (const digest of [pushed.list, ...pushed.platforms, pushed.signature]) {
      expect((await fetchManifest(registryUrl, REPO, digest)).status, digest).toBe(404);
    }
    for (const digest of pushed.alone.keys()) {
      const res = await http(`/v2/${REPO}/blobs/${digest}`);
      await res.arrayBuffer();
      expect(res.status, digest).toBe(404);
    }
    const referrers = await http(`/v2/${REPO}/referrers/${pushed.list}`);
    expect(referrers.status).toBe(200);
    expect(((await referrers.json()) as { manifests: Descriptor[] }).manifests).toEqual([]);

    // With no image of this registry left in the daemon, the pull has to fetch the shared base layer too.
    expect(await removeOurImages()).toEqual([]);
    const mark = await logMark(logFile);
    await docker(['pull', ref(OTHER, 'v1')], 300_000);
    const baseGets = (await accessLog(logFile, mark)).filter((r) => r.method === 'GET' && r.url === `/v2/${OTHER}/blobs/${pushed.shared}`);
    expect(baseGets.map((r) => r.status)).toEqual([200]);
    expect(await readImage(ref(OTHER, 'v1'), Object.keys(pushed.otherFiles))).toEqual(pushed.otherFiles);
  });

  it('left no server errors in the registry log', async () => {
    expect(await serverFaults(logFile)).toEqual([]);
  });
});
