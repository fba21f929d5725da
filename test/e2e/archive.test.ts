// Image archives (POST /api/v1/import, GET /api/v1/export/...) with real clients: archives made
// by `docker save` (dockerd 20.10: the classic format, manifest.json over layer tars) and by
// `skopeo copy ... oci-archive:`, sent with curl; exports read back by `docker load`, `skopeo
// inspect/copy docker-archive:` and `skopeo copy oci-archive:`. Images go in and out of the
// shared registry; the access rules are checked on a registry of this file's own, with htpasswd.
import { readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { removeImages, startConfiguredRegistry, writeHtpasswd, type ConfiguredRegistry } from './auth-support.js';
import { buildImage, dockerEnv, fetchManifest, logMark, readImage as readHashes, run, serverFaults, sha256, tempFolder } from './harness.js';

const registryUrl = inject('registryUrl');
const host = inject('registryHost');
const logFile = inject('registryLog');
const dockerHost = inject('dockerHost');

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const REF_NAME = 'org.opencontainers.image.ref.name';

/** The image built here; `docker save` names it by this reference, which the import reads back. */
const SOURCE_REPO = 'e2e/archive-src';
const SOURCE = () => `${host}/${SOURCE_REPO}:v1`;

interface Imported {
  repository: string;
  tag?: string;
  digest: string;
  mediaType: string;
}
interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}
interface ImageManifest {
  config: Descriptor;
  layers: Descriptor[];
}

let work: string;
let env: NodeJS.ProcessEnv;
/** Where the shared registry log stood when this file began. */
let logStart: number;
/** The built image: its id (config digest), its RootFS diff IDs, and its files' sha256 by path. */
let source: { id: string; layers: string[]; files: Record<string, string> };
/** `docker save` of the built image, and the same gzip-compressed (`gzip -k`). */
let saved: string;
let savedGz: string;
const created: string[] = [];
let calls = 0;

function docker(args: string[], timeoutMs = 120_000) {
  return run('docker', args, { env, timeoutMs });
}

function skopeo(args: string[], timeoutMs = 120_000) {
  return run('skopeo', args, { timeoutMs });
}

/**
 * curl (bounded twice: its own --max-time and the harness's kill) writing the body to `out`
 * (a fresh file unless given); resolves with the HTTP status, the body as text and the headers.
 */
async function curl(args: string[], out?: string): Promise<{ status: number; body: string; headers: Record<string, string> }> {
  const n = ++calls;
  const bodyFile = out ?? join(work, `curl-${n}.body`);
  const headerFile = join(work, `curl-${n}.headers`);
  const result = await run('curl', ['-sS', '--max-time', '60', '-o', bodyFile, '-D', headerFile, '-w', '%{http_code}', ...args], { timeoutMs: 75_000 });
  const headers: Record<string, string> = {};
  // With a 100 Continue first there are two header blocks: the last one is the answer's.
  const blocks = (await readFile(headerFile, 'utf8')).split(/\r?\n\r?\n/).filter((b) => b.trim() !== '');
  for (const line of (blocks.at(-1) ?? '').split(/\r?\n/).slice(1)) {
    const colon = line.indexOf(':');
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  const body = out === undefined ? await readFile(bodyFile, 'utf8').catch(() => '') : '';
  return { status: Number(result.stdout.trim()), body, headers };
}

/** POSTs an archive as a form (`-F file=@...`, then the fields given), as `user` if given. */
async function importArchive(
  archive: string,
  fields: { repository?: string; tag?: string } = {},
  options: { url?: string; user?: string; fieldsFirst?: boolean } = {},
) {
  const form = [
    ...(fields.repository !== undefined ? ['-F', `repository=${fields.repository}`] : []),
    ...(fields.tag !== undefined ? ['-F', `tag=${fields.tag}`] : []),
  ];
  const file = ['-F', `file=@${archive}`];
  const auth = options.user !== undefined ? ['-u', options.user] : [];
  const parts = options.fieldsFirst ? [...form, ...file] : [...file, ...form];
  return curl([...auth, ...parts, `${options.url ?? registryUrl}/api/v1/import`]);
}

/** An import that must succeed: its answer's list of images. */
async function imported(archive: string, fields: { repository?: string; tag?: string } = {}): Promise<Imported[]> {
  const res = await importArchive(archive, fields);
  expect(res.status, res.body).toBe(201);
  expect(res.headers['content-type']).toMatch(/^application\/json/);
  return (JSON.parse(res.body) as { imported: Imported[] }).imported;
}

function errorCode(body: string): string | undefined {
  try {
    return (JSON.parse(body) as { errors?: Array<{ code?: string }> }).errors?.[0]?.code;
  } catch {
    return undefined;
  }
}

/** The daemon's id, RootFS diff IDs and repository digests of `ref`. */
async function inspectLocal(ref: string): Promise<{ id: string; layers: string[]; repoDigests: string[] }> {
  const out = (await docker(['image', 'inspect', '-f', '{{json .Id}} {{json .RootFS.Layers}} {{json .RepoDigests}}', ref])).stdout.trim();
  const [id, layers, repoDigests] = out.split(' ').map((p) => JSON.parse(p) as unknown);
  return { id: id as string, layers: layers as string[], repoDigests: repoDigests as string[] };
}

/** Removes the built image from the daemon under every name it has, and checks that it is gone. */
async function removeSourceImage() {
  await run('docker', ['rmi', '-f', source.id], { env, allowFailure: true, timeoutMs: 60_000 });
  const after = await run('docker', ['image', 'inspect', source.id], { env, allowFailure: true, timeoutMs: 30_000 });
  expect(after.code, `${source.id} is still present locally`).not.toBe(0);
}

/** Makes sure the built image is in the daemon under SOURCE (a case removes it): `docker load` of the saved tar. */
async function haveSource() {
  if ((await run('docker', ['image', 'inspect', SOURCE()], { env, allowFailure: true, timeoutMs: 30_000 })).code === 0) return;
  await docker(['load', '-i', saved]);
  expect((await inspectLocal(SOURCE())).id).toBe(source.id);
}

/** Pulls `ref` with the built image absent from the daemon, and checks it is the built image, file for file. */
async function pullAndCompare(ref: string, digest: string) {
  await removeSourceImage();
  await docker(['pull', ref]);
  const pulled = await inspectLocal(ref);
  expect(pulled.id).toBe(source.id);
  expect(pulled.layers).toEqual(source.layers);
  expect(pulled.repoDigests).toContain(`${ref.slice(0, ref.lastIndexOf(':'))}@${digest}`);
  expect(await readHashes(work, ref, Object.keys(source.files), env, created)).toEqual(source.files);
}

/** One file of a tar, as text. */
async function tarFile(archive: string, path: string): Promise<string> {
  return (await run('tar', ['-xOf', archive, path], { timeoutMs: 30_000 })).stdout;
}

/** The manifest the stored image's `repo`:`ref` is, checked against its digest. */
async function storedManifest(repo: string, ref: string, url = registryUrl): Promise<{ digest: string; manifest: ImageManifest }> {
  const stored = await fetchManifest(url, repo, ref);
  expect(stored.status, `${repo}:${ref}`).toBe(200);
  expect(stored.mediaType).toBe(OCI_MANIFEST);
  expect(`sha256:${sha256(stored.body)}`).toBe(stored.digest);
  return { digest: stored.digest!, manifest: JSON.parse(stored.body.toString()) as ImageManifest };
}

beforeAll(async () => {
  logStart = await logMark(logFile);
  work = await tempFolder('archive-', inject('e2eWork'));
  env = await dockerEnv(dockerHost, work);
  // Three layers from scratch: one of random bytes, two small files.
  const files = await buildImage(join(work, 'ctx'), SOURCE(), 'scratch', [
    { path: '/data/random.bin', randomBytes: 3 * 1024 * 1024 },
    { path: '/etc/archive.txt', content: `made for the archive cases ${Date.now()}\n` },
    { path: '/app/config.json', content: '{"archive":true}\n' },
  ], env);
  const built = await inspectLocal(SOURCE());
  expect(built.layers).toHaveLength(3);
  source = { id: built.id, layers: built.layers, files };
  saved = join(work, 'image.tar');
  await docker(['save', '-o', saved, SOURCE()]);
  await run('gzip', ['-k', saved], { timeoutMs: 60_000 });
  savedGz = `${saved}.gz`;
});

afterAll(async () => {
  if (env) {
    for (const container of created) await run('docker', ['rm', '-f', container], { env, allowFailure: true, timeoutMs: 60_000 });
    // Pulled and loaded images (<host>/e2e/archive-*); the plain names too, in case a run was cut short.
    await removeImages(env, `${host}/e2e/archive-`);
    await removeImages(env, 'e2e/archive-');
    if (source) await run('docker', ['rmi', '-f', source.id], { env, allowFailure: true, timeoutMs: 60_000 });
  }
  if (work) await rm(work, { recursive: true, force: true });
});

describe('image archive import', () => {
  it('imports a docker save tar with repository and tag fields, and docker pulls back the same image', async () => {
    await haveSource();
    const answer = await imported(saved, { repository: 'e2e/archive-imp', tag: 'v1' });
    expect(answer).toEqual([{ repository: 'e2e/archive-imp', tag: 'v1', digest: expect.stringMatching(/^sha256:[0-9a-f]{64}$/), mediaType: OCI_MANIFEST }]);
    const { digest } = answer[0]!;

    const { digest: stored, manifest } = await storedManifest('e2e/archive-imp', 'v1');
    expect(stored).toBe(digest);
    // The saved config, byte for byte (its digest is the image id), and the saved layer tars as they were.
    expect(manifest.config.digest).toBe(source.id);
    expect(manifest.layers.map((l) => l.digest)).toEqual(source.layers);

    await pullAndCompare(`${host}/e2e/archive-imp:v1`, digest);
  });

  it('imports a docker save tar without fields, under the name it was saved with', async () => {
    await haveSource();
    const answer = await imported(saved);
    expect(answer).toEqual([{ repository: SOURCE_REPO, tag: 'v1', digest: expect.stringMatching(/^sha256:/), mediaType: OCI_MANIFEST }]);
    const { digest: stored, manifest } = await storedManifest(SOURCE_REPO, 'v1');
    expect(stored).toBe(answer[0]!.digest);
    expect(manifest.config.digest).toBe(source.id);
    // The image's own reference now pulls from the registry.
    await pullAndCompare(SOURCE(), stored);
  });

  it('imports a gzip-compressed docker save tar (gzip -k)', async () => {
    await haveSource();
    const head = await readFile(savedGz).then((b) => b.subarray(0, 2));
    expect([...head]).toEqual([0x1f, 0x8b]);
    const answer = await imported(savedGz, { repository: 'e2e/archive-gz', tag: 'gz' });
    expect(answer).toEqual([{ repository: 'e2e/archive-gz', tag: 'gz', digest: expect.stringMatching(/^sha256:/), mediaType: OCI_MANIFEST }]);
    const { digest: stored, manifest } = await storedManifest('e2e/archive-gz', 'gz');
    expect(stored).toBe(answer[0]!.digest);
    expect(manifest.config.digest).toBe(source.id);
    await pullAndCompare(`${host}/e2e/archive-gz:gz`, stored);

    // The same archive as the body itself (no form), the names in the query.
    const raw = await curl([
      '-H', 'Content-Type: application/gzip', '--data-binary', `@${savedGz}`,
      `${registryUrl}/api/v1/import?repository=e2e/archive-gz&tag=raw`,
    ]);
    expect(raw.status, raw.body).toBe(201);
    expect((JSON.parse(raw.body) as { imported: Imported[] }).imported).toEqual([{ repository: 'e2e/archive-gz', tag: 'raw', digest: stored, mediaType: OCI_MANIFEST }]);
    expect((await storedManifest('e2e/archive-gz', 'raw')).digest).toBe(stored);
  });

  it('imports an oci-archive written by skopeo copy docker-daemon:, under the repository field and the archive tag', async () => {
    await haveSource();
    const archive = join(work, 'skopeo.oci.tar');
    await skopeo(['copy', '--src-daemon-host', dockerHost, `docker-daemon:${SOURCE()}`, `oci-archive:${archive}:v2`]);
    const index = JSON.parse(await tarFile(archive, 'index.json')) as { manifests: Descriptor[] };
    expect(index.manifests).toHaveLength(1);
    expect(index.manifests[0]!.annotations?.[REF_NAME]).toBe('v2');
    const layoutDigest = index.manifests[0]!.digest;

    const answer = await imported(archive, { repository: 'e2e/archive-oci' });
    expect(answer).toEqual([{ repository: 'e2e/archive-oci', tag: 'v2', digest: layoutDigest, mediaType: OCI_MANIFEST }]);

    const ref = `docker://${host}/e2e/archive-oci:v2`;
    const inspected = JSON.parse((await skopeo(['inspect', '--tls-verify=false', ref])).stdout) as { Digest: string; RepoTags: string[] };
    expect(inspected.Digest).toBe(layoutDigest);
    expect(inspected.RepoTags).toContain('v2');
    const raw = (await skopeo(['inspect', '--raw', '--tls-verify=false', ref])).stdout;
    expect(`sha256:${sha256(raw)}`).toBe(layoutDigest);
    // skopeo compressed the layers and rewrote the config as OCI: the diff IDs stay the built image's.
    const config = JSON.parse((await skopeo(['inspect', '--config', '--raw', '--tls-verify=false', ref])).stdout) as { rootfs: { diff_ids: string[] } };
    expect(config.rootfs.diff_ids).toEqual(source.layers);
  });

  it('refuses what is not an archive, and a form without the file, with an OCI error envelope', async () => {
    const notTar = join(work, 'not-a-tar.txt');
    await writeFile(notTar, 'not an archive\n');
    const bad = await importArchive(notTar, { repository: 'e2e/archive-bad', tag: 'v1' });
    expect(bad.status, bad.body).toBeGreaterThanOrEqual(400);
    expect(bad.status, bad.body).toBeLessThan(500);
    expect(errorCode(bad.body), bad.body).toBeDefined();

    const noFile = await curl(['-F', 'repository=e2e/archive-bad', `${registryUrl}/api/v1/import`]);
    expect(noFile.status, noFile.body).toBe(400);
    expect(errorCode(noFile.body), noFile.body).toBeDefined();
    expect((await fetch(`${registryUrl}/v2/e2e/archive-bad/tags/list`, { signal: AbortSignal.timeout(10_000) })).status).toBe(404);
  });
});

describe('image archive export', () => {
  it('exports format=docker that docker load, skopeo inspect docker-archive: and skopeo copy docker-archive: read', async () => {
    const [{ digest }] = (await imported(saved, { repository: 'e2e/archive-exp', tag: 'v1' })) as [Imported];
    const archive = join(work, 'export.tar');
    const res = await curl([`${registryUrl}/api/v1/export/e2e/archive-exp:v1?format=docker`], archive);
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('application/x-tar');
    expect(res.headers['docker-content-digest']).toBe(digest);
    expect(Number(res.headers['content-length'])).toBe((await stat(archive)).size);
    const saveManifest = JSON.parse(await tarFile(archive, 'manifest.json')) as Array<{ Config: string; RepoTags: string[]; Layers: string[] }>;
    expect(saveManifest).toHaveLength(1);
    // Named as a pull from this registry names it, so that a docker push after the load comes back here.
    expect(saveManifest[0]!.RepoTags).toEqual([`${host}/e2e/archive-exp:v1`]);

    await removeSourceImage();
    const loaded = await docker(['load', '-i', archive]);
    expect(loaded.stdout).toContain(`Loaded image: ${host}/e2e/archive-exp:v1`);
    const local = await inspectLocal(`${host}/e2e/archive-exp:v1`);
    expect(local.id).toBe(source.id);
    expect(local.layers).toEqual(source.layers);

    const inspected = JSON.parse((await skopeo(['inspect', `docker-archive:${archive}`])).stdout) as { Layers: string[] };
    expect(inspected.Layers).toEqual(source.layers);
    const config = (await skopeo(['inspect', '--config', '--raw', `docker-archive:${archive}`])).stdout;
    expect(`sha256:${sha256(config)}`).toBe(source.id);

    const layout = join(work, 'from-export');
    await skopeo(['copy', `docker-archive:${archive}`, `oci:${layout}:copied`]);
    const index = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')) as { manifests: Descriptor[] };
    const entry = index.manifests.find((m) => m.annotations?.[REF_NAME] === 'copied');
    expect(entry).toBeDefined();
    // skopeo compresses the layers on the way to oci: (new digests); the config still lists the image's diff IDs.
    const blob = (digest: string) => readFile(join(layout, 'blobs', 'sha256', digest.slice('sha256:'.length)), 'utf8');
    const copied = JSON.parse(await blob(entry!.digest)) as ImageManifest;
    expect(copied.layers).toHaveLength(source.layers.length);
    const copiedConfig = JSON.parse(await blob(copied.config.digest)) as { rootfs: { diff_ids: string[] } };
    expect(copiedConfig.rootfs.diff_ids).toEqual(source.layers);

    // And the export imports again as the very same manifest.
    expect(await imported(archive, { repository: 'e2e/archive-roundtrip' })).toEqual([{ repository: 'e2e/archive-roundtrip', tag: 'v1', digest, mediaType: OCI_MANIFEST }]);
  });

  it('exports format=oci that skopeo copy oci-archive: pushes to another repository with the same digest', async () => {
    const [{ digest }] = (await imported(saved, { repository: 'e2e/archive-exp', tag: 'v1' })) as [Imported];
    const archive = join(work, 'export.oci.tar');
    const res = await curl([`${registryUrl}/api/v1/export/e2e/archive-exp:v1?format=oci`], archive);
    expect(res.status).toBe(200);
    expect(res.headers['docker-content-digest']).toBe(digest);
    expect(Number(res.headers['content-length'])).toBe((await stat(archive)).size);
    const listed = (await run('tar', ['-tf', archive], { timeoutMs: 30_000 })).stdout.split('\n');
    expect(listed).not.toContain('manifest.json');
    const index = JSON.parse(await tarFile(archive, 'index.json')) as { manifests: Descriptor[] };
    expect(index.manifests).toHaveLength(1);
    expect(index.manifests[0]!.digest).toBe(digest);
    expect(index.manifests[0]!.annotations?.[REF_NAME]).toBe('v1');

    // --preserve-digests: else skopeo's blob info cache may swap in other variants of the layers it has seen.
    const digestFile = join(work, 'pushed-digest');
    await skopeo([
      'copy', '--preserve-digests', '--dest-tls-verify=false', '--digestfile', digestFile,
      `oci-archive:${archive}:v1`, `docker://${host}/e2e/archive-back:v1`,
    ]);
    expect((await readFile(digestFile, 'utf8')).trim()).toBe(digest);
    const inspected = JSON.parse((await skopeo(['inspect', '--tls-verify=false', `docker://${host}/e2e/archive-back:v1`])).stdout) as { Digest: string; Layers: string[] };
    expect(inspected.Digest).toBe(digest);
    expect(inspected.Layers).toEqual(source.layers);
    expect((await storedManifest('e2e/archive-back', 'v1')).digest).toBe(digest);

    // By digest: the same image, with no tag to name in index.json.
    const byDigest = join(work, 'export-by-digest.oci.tar');
    const res2 = await curl([`${registryUrl}/api/v1/export/e2e/archive-exp@${digest}?format=oci`], byDigest);
    expect(res2.status).toBe(200);
    const index2 = JSON.parse(await tarFile(byDigest, 'index.json')) as { manifests: Descriptor[] };
    expect(index2.manifests.map((m) => m.digest)).toEqual([digest]);
    expect(index2.manifests[0]!.annotations?.[REF_NAME]).toBeUndefined();
    const raw = (await skopeo(['inspect', '--raw', `oci-archive:${byDigest}`])).stdout;
    expect(`sha256:${sha256(raw)}`).toBe(digest);
  });

  it('answers an unknown image with 404 and an unknown format with 400', async () => {
    const missing = await curl([`${registryUrl}/api/v1/export/e2e/archive-none:v1?format=docker`]);
    expect(missing.status, missing.body).toBe(404);
    expect(errorCode(missing.body), missing.body).toBe('MANIFEST_UNKNOWN');
    await imported(saved, { repository: 'e2e/archive-exp', tag: 'v1' });
    const format = await curl([`${registryUrl}/api/v1/export/e2e/archive-exp:v1?format=zip`]);
    expect(format.status, format.body).toBe(400);
    expect(errorCode(format.body), format.body).toBe('UNSUPPORTED');
  });

  it('left no 5xx answers or error lines in the shared registry log', async () => {
    expect(await serverFaults(logFile, logStart)).toEqual([]);
  });
});

describe('image archives with authentication', () => {
  const PASSWORDS = { pusher: 'pusher-Secret-1', puller: 'puller-Secret-2', root: 'root-Secret-3' };
  const as = (user: keyof typeof PASSWORDS) => `${user}:${PASSWORDS[user]}`;
  let registry: ConfiguredRegistry;
  let registryWork: string;

  /** GET /v2/<repo>/tags/list as the admin: 404, or the tags there are. */
  async function tagsOf(repo: string): Promise<string[] | 404> {
    const res = await curl(['-u', as('root'), `${registry.url}/v2/${repo}/tags/list`]);
    if (res.status === 404) return 404;
    expect(res.status, res.body).toBe(200);
    return (JSON.parse(res.body) as { tags: string[] | null }).tags ?? [];
  }

  /** What is left in the filesystem store's uploads folder (a refused archive must leave nothing staged). */
  async function leftUploads(): Promise<string[]> {
    return readdir(join(registryWork, 'data', 'uploads'));
  }

  beforeAll(async () => {
    registryWork = await tempFolder('archive-auth-', work);
    const htpasswd = join(registryWork, 'htpasswd');
    await writeHtpasswd(htpasswd, PASSWORDS);
    registry = await startConfiguredRegistry({
      work: join(registryWork, 'registry'),
      config: {
        auth: { htpasswd: { realm: 'ocireg', path: htpasswd } },
        access: { admins: ['root'], repositories: { 'arch/**': { users: { pusher: ['pull', 'push'], puller: ['pull'] } } } },
      },
    });
    registryWork = join(registryWork, 'registry');
  });

  afterAll(async () => {
    await registry?.stop();
  });

  it('imports for a user with push, and exports for a user with pull', async () => {
    const res = await importArchive(saved, { repository: 'arch/app', tag: 'v1' }, { url: registry.url, user: as('pusher') });
    expect(res.status, res.body).toBe(201);
    const [{ digest }] = (JSON.parse(res.body) as { imported: Imported[] }).imported as [Imported];
    const manifest = await curl(['-u', as('pusher'), '-H', `Accept: ${OCI_MANIFEST}`, `${registry.url}/v2/arch/app/manifests/v1`]);
    expect(manifest.status, manifest.body).toBe(200);
    expect(manifest.headers['docker-content-digest']).toBe(digest);
    expect(await tagsOf('arch/app')).toEqual(['v1']);

    const archive = join(registryWork, 'auth-export.oci.tar');
    const exported = await curl(['-u', as('puller'), `${registry.url}/api/v1/export/arch/app:v1?format=oci`], archive);
    expect(exported.status).toBe(200);
    expect(exported.headers['docker-content-digest']).toBe(digest);
    const raw = (await skopeo(['inspect', '--raw', `oci-archive:${archive}:v1`])).stdout;
    expect(`sha256:${sha256(raw)}`).toBe(digest);

    const anonymous = await curl([`${registry.url}/api/v1/export/arch/app:v1?format=oci`]);
    expect(anonymous.status, anonymous.body).toBe(401);
    expect(errorCode(anonymous.body), anonymous.body).toBe('UNAUTHORIZED');
  });

  it('refuses an anonymous import with 401 and stores nothing', async () => {
    const res = await importArchive(saved, { repository: 'arch/anonymous', tag: 'v1' }, { url: registry.url });
    expect(res.status, res.body).toBe(401);
    expect(errorCode(res.body), res.body).toBe('UNAUTHORIZED');
    expect(await tagsOf('arch/anonymous')).toBe(404);
    expect(await leftUploads()).toEqual([]);
  });

  it('refuses an import by a pull-only user with 403, whichever part comes first, and stores nothing', async () => {
    for (const fieldsFirst of [false, true]) {
      const res = await importArchive(saved, { repository: 'arch/denied', tag: 'v1' }, { url: registry.url, user: as('puller'), fieldsFirst });
      expect(res.status, res.body).toBe(403);
      expect(errorCode(res.body), res.body).toBe('DENIED');
    }
    // The raw tar as the body, the names in the query.
    const raw = await curl([
      '-u', as('puller'), '-H', 'Content-Type: application/x-tar', '--data-binary', `@${saved}`,
      `${registry.url}/api/v1/import?repository=arch/denied&tag=v1`,
    ]);
    expect(raw.status, raw.body).toBe(403);
    expect(errorCode(raw.body), raw.body).toBe('DENIED');
    expect(await tagsOf('arch/denied')).toBe(404);
    expect(await leftUploads()).toEqual([]);
  });

  it('refuses an import whose archive names a repository the user may not push to, and stores nothing', async () => {
    // No fields: the archive's own name (e2e/archive-src) is outside arch/**.
    const res = await importArchive(saved, {}, { url: registry.url, user: as('pusher') });
    expect(res.status, res.body).toBe(403);
    expect(errorCode(res.body), res.body).toBe('DENIED');
    expect(await tagsOf(SOURCE_REPO)).toBe(404);
    expect(await leftUploads()).toEqual([]);
  });

  it('left no 5xx answers or error lines in its log', async () => {
    expect(await serverFaults(registry.logFile)).toEqual([]);
  });
});
