// skopeo (1.9 from Debian) against the built registry, with images made by umoci.
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { fetchManifest, logMark, run, serverFaults, sha256, tempFolder, writeRandomFile } from './harness.js';

const registryUrl = inject('registryUrl');
const host = inject('registryHost');
const logFile = inject('registryLog');

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';

interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: { architecture: string; os: string };
  annotations?: Record<string, string>;
}
interface ImageManifest {
  mediaType?: string;
  config: Descriptor;
  layers: Descriptor[];
}

let work: string;
/** Where the shared registry log stood when this file began. */
let logStart: number;
let layout: string;
/** Digests of the layout's manifests, by tag. */
let local: Record<'amd64' | 'arm64' | 'multi', string>;

async function skopeo(args: string[], timeoutMs = 180_000) {
  return run('skopeo', args, { timeoutMs });
}

const docker = (repoAndRef: string) => `docker://${host}/${repoAndRef}`;

async function readJson<T>(path: string): Promise<T> {
  return JSON.parse(await readFile(path, 'utf8')) as T;
}

async function blob(dir: string, digest: string): Promise<Buffer> {
  return readFile(join(dir, 'blobs', 'sha256', digest.slice('sha256:'.length)));
}

/** The manifest digest that an OCI layout's index.json gives `tag`. */
async function layoutDigest(dir: string, tag: string): Promise<string> {
  const index = await readJson<{ manifests: Descriptor[] }>(join(dir, 'index.json'));
  const entry = index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === tag);
  if (!entry) throw new Error(`no tag ${tag} in ${dir}/index.json`);
  return entry.digest;
}

/** Copies with `--digestfile` and returns the digest skopeo says it pushed. */
async function copyIn(source: string, dest: string, extra: string[] = []): Promise<string> {
  const digestFile = join(work, `digest-${Date.now()}-${Math.random().toString(36).slice(2)}`);
  await skopeo(['copy', '--dest-tls-verify=false', '--digestfile', digestFile, ...extra, source, dest]);
  return (await readFile(digestFile, 'utf8')).trim();
}

beforeAll(async () => {
  logStart = await logMark(logFile);
  work = await tempFolder('skopeo-', inject('e2eWork'));
  layout = join(work, 'layout');
  // Two single-platform images (two layers each) and an OCI index over both, tagged multi.
  await run('umoci', ['init', '--layout', layout]);
  await run('umoci', ['new', '--image', `${layout}:amd64`]);
  await writeFile(join(work, 'motd'), 'made by umoci for the skopeo cases\n');
  await writeRandomFile(join(work, 'random.bin'), 3 * 1024 * 1024);
  await run('umoci', ['insert', '--image', `${layout}:amd64`, join(work, 'motd'), '/etc/motd']);
  await run('umoci', ['insert', '--image', `${layout}:amd64`, join(work, 'random.bin'), '/data/random.bin']);
  await run('umoci', ['config', '--image', `${layout}:amd64`, '--architecture', 'arm64', '--tag', 'arm64']);
  const amd64 = await layoutDigest(layout, 'amd64');
  const arm64 = await layoutDigest(layout, 'arm64');
  const child = async (digest: string, architecture: string): Promise<Descriptor> => ({
    mediaType: OCI_MANIFEST,
    digest,
    size: (await blob(layout, digest)).length,
    platform: { architecture, os: 'linux' },
  });
  const index = Buffer.from(
    `${JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [await child(amd64, 'amd64'), await child(arm64, 'arm64')] }, null, 2)}\n`,
  );
  const multi = `sha256:${sha256(index)}`;
  await writeFile(join(layout, 'blobs', 'sha256', sha256(index)), index);
  const top = await readJson<{ schemaVersion: number; manifests: Descriptor[] }>(join(layout, 'index.json'));
  top.manifests.push({ mediaType: OCI_INDEX, digest: multi, size: index.length, annotations: { 'org.opencontainers.image.ref.name': 'multi' } });
  await writeFile(join(layout, 'index.json'), JSON.stringify(top));
  local = { amd64, arm64, multi };
});

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

describe('skopeo', () => {
  it('copies an image in OCI format in, and inspects its raw manifest and config', async () => {
    const digest = await copyIn(`oci:${layout}:amd64`, docker('e2e/skopeo-oci:v1'), ['--format', 'oci']);
    // Same format in and out: the manifest is stored byte for byte, so its digest is unchanged.
    expect(digest).toBe(local.amd64);

    const raw = (await skopeo(['inspect', '--raw', '--tls-verify=false', docker('e2e/skopeo-oci:v1')])).stdout;
    expect(`sha256:${sha256(raw)}`).toBe(digest);
    const manifest = JSON.parse(raw) as ImageManifest;
    expect(manifest.layers).toHaveLength(2);
    // umoci leaves out the optional mediaType field; the registry still serves it as an OCI manifest.
    const head = await fetchManifest(registryUrl, 'e2e/skopeo-oci', 'v1', 'HEAD');
    expect(head.mediaType).toBe(OCI_MANIFEST);
    expect(head.digest).toBe(digest);

    const config = (await skopeo(['inspect', '--config', '--raw', '--tls-verify=false', docker('e2e/skopeo-oci:v1')])).stdout;
    expect(`sha256:${sha256(config)}`).toBe(manifest.config.digest);
    expect(Buffer.from(config)).toEqual(await blob(layout, manifest.config.digest));
    const parsed = JSON.parse(config) as { architecture: string; rootfs: { diff_ids: string[] } };
    expect(parsed.architecture).toBe('amd64');
    expect(parsed.rootfs.diff_ids).toHaveLength(2);
  });

  it('copies an image in Docker schema 2 format in, and inspects its raw manifest and config', async () => {
    const digest = await copyIn(`oci:${layout}:amd64`, docker('e2e/skopeo-docker:v1'), ['--format', 'v2s2']);
    expect(digest).not.toBe(local.amd64); // converted, so a different manifest

    const head = await fetchManifest(registryUrl, 'e2e/skopeo-docker', 'v1', 'HEAD');
    expect(head.status).toBe(200);
    expect(head.mediaType).toBe(DOCKER_MANIFEST);
    expect(head.digest).toBe(digest);

    const raw = (await skopeo(['inspect', '--raw', '--tls-verify=false', docker('e2e/skopeo-docker:v1')])).stdout;
    expect(`sha256:${sha256(raw)}`).toBe(digest);
    const manifest = JSON.parse(raw) as ImageManifest;
    expect(manifest.mediaType).toBe(DOCKER_MANIFEST);
    expect(manifest.config.mediaType).toBe('application/vnd.docker.container.image.v1+json');
    expect(manifest.layers.map((l) => l.mediaType)).toEqual(Array(2).fill('application/vnd.docker.image.rootfs.diff.tar.gzip'));

    const config = (await skopeo(['inspect', '--config', '--raw', '--tls-verify=false', docker('e2e/skopeo-docker:v1')])).stdout;
    expect(`sha256:${sha256(config)}`).toBe(manifest.config.digest);
    expect((JSON.parse(config) as { architecture: string }).architecture).toBe('amd64');
  });

  it('lists the tags of a repository', async () => {
    await copyIn(`oci:${layout}:amd64`, docker('e2e/skopeo-tags:latest'));
    await skopeo(['copy', '--src-tls-verify=false', '--dest-tls-verify=false', docker('e2e/skopeo-tags:latest'), docker('e2e/skopeo-tags:1.0')]);
    await copyIn(`oci:${layout}:arm64`, docker('e2e/skopeo-tags:1.0-arm64'));
    const listed = JSON.parse((await skopeo(['list-tags', '--tls-verify=false', docker('e2e/skopeo-tags')])).stdout) as {
      Repository: string;
      Tags: string[];
    };
    expect(listed.Repository).toBe(`${host}/e2e/skopeo-tags`);
    expect(listed.Tags).toEqual(['1.0', '1.0-arm64', 'latest']);
  });

  it('copies images back out with the digests they went in with', async () => {
    const ociDigest = await copyIn(`oci:${layout}:amd64`, docker('e2e/skopeo-roundtrip:oci'), ['--format', 'oci']);
    const dockerDigest = await copyIn(`oci:${layout}:amd64`, docker('e2e/skopeo-roundtrip:docker'), ['--format', 'v2s2']);

    // Out to an OCI layout: the same manifest digest, and every blob byte for byte.
    const outLayout = join(work, 'out-oci');
    await skopeo(['copy', '--src-tls-verify=false', docker('e2e/skopeo-roundtrip:oci'), `oci:${outLayout}:copy`]);
    expect(await layoutDigest(outLayout, 'copy')).toBe(ociDigest);
    const manifest = JSON.parse((await blob(outLayout, ociDigest)).toString()) as ImageManifest;
    for (const d of [manifest.config, ...manifest.layers]) {
      expect((await blob(outLayout, d.digest)).equals(await blob(layout, d.digest)), d.digest).toBe(true);
    }

    // Out to a directory, keeping the Docker manifest as it is stored.
    const outDir = join(work, 'out-dir');
    await skopeo(['copy', '--src-tls-verify=false', docker('e2e/skopeo-roundtrip:docker'), `dir:${outDir}`]);
    expect(`sha256:${sha256(await readFile(join(outDir, 'manifest.json')))}`).toBe(dockerDigest);
    const inspected = JSON.parse((await skopeo(['inspect', '--tls-verify=false', docker('e2e/skopeo-roundtrip:docker')])).stdout) as { Digest: string };
    expect(inspected.Digest).toBe(dockerDigest);
  });

  it('deletes a manifest by digest, after which pulling it fails with "manifest unknown"', async () => {
    const digest = await copyIn(`oci:${layout}:amd64`, docker('e2e/skopeo-delete:v1'));
    await skopeo(['inspect', '--raw', '--tls-verify=false', docker(`e2e/skopeo-delete@${digest}`)]);
    await skopeo(['delete', '--tls-verify=false', docker(`e2e/skopeo-delete@${digest}`)]);

    for (const ref of [`e2e/skopeo-delete@${digest}`, 'e2e/skopeo-delete:v1']) {
      const pulled = await run('skopeo', ['copy', '--src-tls-verify=false', docker(ref), `oci:${join(work, 'deleted')}:x`], { allowFailure: true });
      expect(pulled.code, ref).not.toBe(0);
      expect(pulled.stderr.toLowerCase(), ref).toContain('manifest unknown');
    }
    expect((await fetchManifest(registryUrl, 'e2e/skopeo-delete', digest, 'HEAD')).status).toBe(404);
  });

  it('copies a multi-platform OCI index with --all, in and back out', async () => {
    const digest = await copyIn(`oci:${layout}:multi`, docker('e2e/skopeo-multi:v1'), ['--all']);
    expect(digest).toBe(local.multi);

    const index = await fetchManifest(registryUrl, 'e2e/skopeo-multi', 'v1');
    expect(index.mediaType).toBe(OCI_INDEX);
    expect(index.digest).toBe(local.multi);
    for (const child of [local.amd64, local.arm64]) {
      const res = await fetchManifest(registryUrl, 'e2e/skopeo-multi', child, 'HEAD');
      expect(res.status, child).toBe(200);
      expect(res.mediaType).toBe(OCI_MANIFEST);
    }

    const outLayout = join(work, 'out-multi');
    await skopeo(['copy', '--all', '--src-tls-verify=false', docker('e2e/skopeo-multi:v1'), `oci:${outLayout}:multi`]);
    expect(await layoutDigest(outLayout, 'multi')).toBe(local.multi);
    for (const child of [local.amd64, local.arm64]) {
      expect((await blob(outLayout, child)).equals(await blob(layout, child)), child).toBe(true);
    }
  });

  it('left no server errors in the registry log', async () => {
    expect(await serverFaults(logFile, logStart)).toEqual([]);
  });
});
