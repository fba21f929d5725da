/**
 * Exports an image as a tar, streamed blob by blob:
 * - `docker`: what docker 25+'s `docker save` writes, an OCI layout with docker's manifest.json
 *   beside it, so that `docker load`, `skopeo copy docker-archive:` and `oci-archive:` all read
 *   it. It holds one image: a multi-platform index needs a platform (or has only one image).
 * - `oci`: an OCI image layout (`skopeo copy oci-archive:`); an index is kept whole, with every
 *   child, unless a platform picks one.
 * Everything is looked up before the first byte, so a missing blob is an error answer rather
 * than a cut-short download, and the tar's length is known in advance.
 */
import type { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { pack as tarPack } from 'tar-stream';
import { Digest } from '../oci/digest.js';
import { RegistryError } from '../oci/errors.js';
import { parseManifest, type Descriptor, type ParsedManifest } from '../oci/manifest.js';
import { MediaType } from '../oci/media-types.js';
import { summarizeConfig } from '../oci/image-config.js';
import type { Reference, StoredManifest } from '../registry/manifests.js';
import type { Registry } from '../registry/registry.js';

export type ExportFormat = 'docker' | 'oci';

/** One file of the tar: bytes at hand, or a blob read from the store as it is written. */
type ExportFile = { name: string; size: number } & ({ data: Buffer } | { blob: Digest });

export interface ExportPlan {
  /** A file name for Content-Disposition. */
  filename: string;
  /** The tar's exact length (unknown only when a name needs a long-name header: sha512 blobs). */
  length: number | undefined;
  /** The folders, written first. */
  folders: string[];
  /** The manifest exported at the top (an index, or the image chosen). */
  manifest: StoredManifest;
  files: ExportFile[];
}

const TAR_BLOCK = 512;
/** A config larger than this is not read to learn its platform (configs are a few KiB). */
const CONFIG_LIMIT = 4 * 1024 * 1024;
/** Names longer than this take a long-name header in a tar (ustar keeps 100 characters). */
const USTAR_NAME = 100;
const OCI_LAYOUT = Buffer.from('{"imageLayoutVersion":"1.0.0"}');
/** Attestations (BuildKit's provenance) sit in an index as `unknown/unknown`: not a platform to run. */
const ATTESTATION_PLATFORM = 'unknown/unknown';

/** Looks up everything an export of `repo` at `ref` will write. */
export async function planExport(
  registry: Registry,
  repo: string,
  ref: Reference,
  format: ExportFormat,
  platform: string | undefined,
  /** The registry's host as clients name it: the archive names the image `<host>/<repo>:<tag>`, as a pull would. */
  host?: string,
): Promise<ExportPlan> {
  const top = await registry.manifests.get(repo, ref, '*/*');
  let chosen = top;
  let parsed = parseManifest(top.content, top.mediaType);
  if (parsed.kind === 'index' && (platform !== undefined || format === 'docker')) {
    const child = pickPlatform(parsed, platform, repo);
    chosen = await registry.manifests.get(repo, { digest: child.digest }, '*/*');
    parsed = parseManifest(chosen.content, chosen.mediaType);
    if (parsed.kind === 'index') throw new RegistryError('MANIFEST_INVALID', `the manifest for ${platform ?? 'the image'} is itself an index`, { status: 400 });
  } else if (platform !== undefined && parsed.config) {
    // A single image asked for by platform: it must be that platform, as its config says.
    const own = await configPlatform(registry, repo, parsed.config);
    if (own !== undefined && own !== platform && own.split('/').slice(0, 2).join('/') !== platform) {
      throw new RegistryError('MANIFEST_UNKNOWN', `the image is for ${own}, not ${platform}`, { detail: { platforms: [own] } });
    }
  }
  const files = new Map<string, ExportFile>();
  const addBlob = async (d: Descriptor) => {
    const name = blobPath(d.digest);
    if (files.has(name)) return;
    const size = (await registry.blobs.stat(repo, d.digest)).size;
    files.set(name, { name, size, blob: d.digest });
  };
  const addManifest = async (m: StoredManifest, p: ParsedManifest, depth: number) => {
    const name = blobPath(Digest.parse(m.digest));
    files.set(name, { name, size: m.content.length, data: m.content });
    for (const d of [...(p.config ? [p.config] : []), ...p.layers]) await addBlob(d);
    if (depth > 4) return;
    for (const child of p.manifests) {
      const stored = await registry.manifests.get(repo, { digest: child.digest }, '*/*');
      await addManifest(stored, parseManifest(stored.content, stored.mediaType), depth + 1);
    }
  };
  await addManifest(chosen, parsed, 0);

  const tag = 'tag' in ref ? ref.tag : undefined;
  const fullName = `${host ? `${host}/` : ''}${repo}:${tag ?? 'latest'}`;
  const annotations: Record<string, string> = tag !== undefined ? { 'io.containerd.image.name': fullName, 'org.opencontainers.image.ref.name': tag } : {};
  const index = {
    schemaVersion: 2,
    mediaType: MediaType.OciIndex,
    manifests: [
      {
        mediaType: chosen.mediaType,
        digest: chosen.digest,
        size: chosen.content.length,
        ...(Object.keys(annotations).length > 0 ? { annotations } : {}),
      },
    ],
  };
  const extra: ExportFile[] = [
    fileOf('oci-layout', OCI_LAYOUT),
    fileOf('index.json', Buffer.from(JSON.stringify(index))),
  ];
  if (format === 'docker') {
    const saved = [
      {
        Config: blobPath(parsed.config!.digest),
        RepoTags: tag !== undefined ? [fullName] : null,
        Layers: parsed.layers.map((l) => blobPath(l.digest)),
      },
    ];
    extra.push(fileOf('manifest.json', Buffer.from(JSON.stringify(saved))));
  }
  const all = [...files.values(), ...extra];
  // Directory entries first, so that every tool finds the folders before their files.
  const folders = ['blobs/', ...new Set([...files.values()].map((f) => `${f.name.slice(0, f.name.lastIndexOf('/'))}/`))];
  const long = all.some((f) => f.name.length > USTAR_NAME);
  const length = long ? undefined : (folders.length + all.length) * TAR_BLOCK + all.reduce((n, f) => n + padded(f.size), 0) + 2 * TAR_BLOCK;
  const label = `${repo.replaceAll('/', '_')}_${tag ?? chosen.digest.replace(':', '-').slice(0, 19)}`;
  return { filename: `${label}${format === 'oci' ? '.oci' : ''}.tar`, length, folders, manifest: chosen, files: all };
}

/** Writes the plan's tar to `out`, blobs streamed from the store. */
export async function writeExport(registry: Registry, plan: ExportPlan, out: Writable, signal?: AbortSignal): Promise<void> {
  const tar = tarPack();
  const mtime = new Date(0);
  const writing = pipeline(tar, out, signal ? { signal } : {});
  try {
    for (const name of plan.folders) await entry(tar, { name, type: 'directory', mode: 0o755, mtime }, undefined);
    for (const file of plan.files) {
      const header = { name: file.name, size: file.size, mode: 0o644, mtime, type: 'file' as const };
      if ('data' in file) await entry(tar, header, file.data);
      else await entry(tar, header, await registry.blobs.stream(file.blob, file.size, signal));
    }
    tar.finalize();
  } catch (err) {
    tar.destroy(err as Error);
    await writing.catch(() => undefined);
    throw err;
  }
  await writing;
}

/** Writes one entry; a stream's bytes are piped in with backpressure. */
async function entry(tar: ReturnType<typeof tarPack>, header: Parameters<ReturnType<typeof tarPack>['entry']>[0], body: Buffer | Readable | undefined): Promise<void> {
  if (body === undefined || Buffer.isBuffer(body)) {
    await new Promise<void>((resolve, reject) => {
      tar.entry(header, body ?? Buffer.alloc(0), (err) => (err ? reject(err) : resolve()));
    });
    return;
  }
  const sink = tar.entry(header);
  await pipeline(body, sink);
}

/**
 * The child of an index for `platform` (`os/arch[/variant]`); without one, the only image the
 * index holds (attestations aside). Otherwise a 400 naming the platforms there are.
 */
function pickPlatform(index: ParsedManifest, platform: string | undefined, repo: string): Descriptor {
  const images = index.manifests.filter((d) => platformOf(d) !== ATTESTATION_PLATFORM);
  if (platform === undefined) {
    if (images.length === 1) return images[0]!;
    throw new RegistryError('UNSUPPORTED', `${repo} is a multi-platform image: a docker archive holds one platform, so give platform= (one of ${images.map((d) => platformOf(d)).join(', ')})`, {
      status: 400,
      detail: { platforms: images.map((d) => platformOf(d)) },
    });
  }
  const found = images.find((d) => platformOf(d) === platform) ?? images.find((d) => platformOf(d, false) === platform);
  if (!found) {
    throw new RegistryError('MANIFEST_UNKNOWN', `the image has no ${platform} platform (it has ${images.map((d) => platformOf(d)).join(', ')})`, {
      detail: { platforms: images.map((d) => platformOf(d)) },
    });
  }
  return found;
}

/** `os/arch[/variant]` from an image's config; undefined when the config says none (an artifact). */
async function configPlatform(registry: Registry, repo: string, config: Descriptor): Promise<string | undefined> {
  const body = await registry.blobs.readSmall(repo, config.digest, CONFIG_LIMIT);
  const summary = body && summarizeConfig(body);
  if (summary?.os === undefined || summary.architecture === undefined) return undefined;
  return [summary.os, summary.architecture, ...(summary.variant ? [summary.variant] : [])].join('/');
}

function platformOf(d: Descriptor, withVariant = true): string {
  const p = d.platform;
  return [p?.os ?? 'unknown', p?.architecture ?? 'unknown', ...(withVariant && p?.variant ? [p.variant] : [])].join('/');
}

function blobPath(d: Digest): string {
  return `blobs/${d.algorithm}/${d.hex}`;
}

function fileOf(name: string, data: Buffer): ExportFile {
  return { name, size: data.length, data };
}

function padded(size: number): number {
  return Math.ceil(size / TAR_BLOCK) * TAR_BLOCK;
}
