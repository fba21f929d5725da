/**
 * What a staged archive holds, as images to import: an OCI image layout (`index.json`, `blobs/`;
 * what `skopeo copy oci-archive:` and docker 25+'s `docker save` write), or docker's older
 * `docker save` format (`manifest.json` naming a config and layer tars). Every manifest, config
 * and layer is checked against the digests and sizes that name it before anything is committed:
 * an archive that lies is refused as a whole.
 */
import { Digest } from '../oci/digest.js';
import { RegistryError } from '../oci/errors.js';
import { parseManifest, type Descriptor, type ParsedManifest } from '../oci/manifest.js';
import { MediaType, NON_DISTRIBUTABLE_LAYER_TYPES } from '../oci/media-types.js';
import { isValidName, isValidTag } from '../oci/names.js';
import { archiveInvalid, type ArchiveContents, type StagedFile } from './reader.js';

const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
const OCI_LAYER = 'application/vnd.oci.image.layer.v1.tar';
const OCI_LAYER_GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip';
/** How deep indexes may nest in an archive (an index of indexes of images is already unusual). */
const MAX_DEPTH = 4;
/** The most JSON (manifest.json, a config, index.json) read from an archive. */
const JSON_LIMIT = 4 * 1024 * 1024;

/** Reads a staged file's bytes back when they were not kept in memory. */
export type ReadStaged = (file: StagedFile, limit: number) => Promise<Buffer>;

/** A name found in the archive: a repository and, when it had one, a tag. */
export interface ImageName {
  repository: string;
  tag?: string;
}

/** One manifest to store, with what it references. */
export interface ManifestToStore {
  digest: Digest;
  mediaType: string;
  body: Buffer;
  parsed: ParsedManifest;
}

/** One top-level image of the archive (an image manifest, or an index with its children). */
export interface ArchiveImage {
  /** The names the archive gives it (none: the caller's repository field must). */
  names: ImageName[];
  /** Children first, the top manifest last. */
  manifests: ManifestToStore[];
  /** The staged files that are its configs and layers. */
  blobs: StagedFile[];
  /** Blobs the manifests name that the archive does not hold (a repository may already have them). */
  absent: Descriptor[];
}

/** Reads what the archive holds, in whichever format it is. */
export async function planArchive(contents: ArchiveContents, read: ReadStaged, manifestLimit: number): Promise<ArchiveImage[]> {
  const json = (file: StagedFile, limit = JSON_LIMIT) => read(file, limit);
  const indexFile = contents.file('index.json');
  const dockerManifest = contents.file('manifest.json');
  const saved = dockerManifest ? parseDockerManifest(await json(dockerManifest)) : undefined;
  if (indexFile) return planOciLayout(contents, await json(indexFile), saved, read, manifestLimit);
  if (saved) return planDockerSave(contents, saved, read);
  throw archiveInvalid('it holds neither index.json (an OCI layout) nor manifest.json (a docker save)');
}

// ---- OCI image layout ----

async function planOciLayout(
  contents: ArchiveContents,
  indexBody: Buffer,
  saved: DockerSaveEntry[] | undefined,
  read: ReadStaged,
  manifestLimit: number,
): Promise<ArchiveImage[]> {
  const layoutFile = contents.file('oci-layout');
  if (layoutFile) {
    const layout = parseJson(await read(layoutFile, JSON_LIMIT), 'oci-layout');
    if (!isObject(layout) || typeof layout.imageLayoutVersion !== 'string') throw archiveInvalid('oci-layout has no imageLayoutVersion');
  }
  const index = parseInArchive(indexBody, MediaType.OciIndex, 'index.json');
  if (index.kind !== 'index') throw archiveInvalid('index.json is not an image index');
  if (index.manifests.length === 0) throw archiveInvalid('index.json lists no manifests');
  const images: ArchiveImage[] = [];
  for (const top of index.manifests) {
    const image: ArchiveImage = { names: namesOf(top), manifests: [], blobs: [], absent: [] };
    await collect(contents, top, image, read, manifestLimit, 0, `index.json → ${top.digest}`);
    if (image.names.length === 0 && saved) image.names = savedNames(image, saved, contents);
    images.push(image);
  }
  return images;
}

/** Adds the manifest a descriptor names, its children and its blobs to `image`. */
async function collect(
  contents: ArchiveContents,
  descriptor: Descriptor,
  image: ArchiveImage,
  read: ReadStaged,
  manifestLimit: number,
  depth: number,
  where: string,
): Promise<void> {
  if (depth > MAX_DEPTH) throw archiveInvalid(`${where}: indexes nest more than ${MAX_DEPTH} deep`);
  if (image.manifests.some((m) => m.digest.equals(descriptor.digest))) return;
  const file = blobFile(contents, descriptor, where);
  if (!file) throw archiveInvalid(`${where}: the manifest ${descriptor.digest} is not in the archive`, { digest: descriptor.digest.toString() });
  if (descriptor.size > manifestLimit) throw archiveInvalid(`${where}: the manifest is larger than ${manifestLimit} bytes`);
  const body = await read(file, manifestLimit);
  const parsed = parseInArchive(body, descriptor.mediaType, where);
  for (const child of parsed.manifests) {
    await collect(contents, child, image, read, manifestLimit, depth + 1, `${where} → ${child.digest}`);
  }
  for (const blob of [...(parsed.config ? [parsed.config] : []), ...parsed.layers]) {
    const found = blobFile(contents, blob, where);
    if (found) {
      if (!image.blobs.includes(found)) image.blobs.push(found);
    } else if (!NON_DISTRIBUTABLE_LAYER_TYPES.has(blob.mediaType)) {
      image.absent.push(blob);
    }
  }
  image.manifests.push({ digest: descriptor.digest, mediaType: parsed.mediaType, body, parsed });
}

/**
 * The staged file of `blobs/<algorithm>/<hex>`, checked against the descriptor: its bytes must
 * have that digest and that size. Undefined when the archive does not hold it.
 */
function blobFile(contents: ArchiveContents, d: Descriptor, where: string): StagedFile | undefined {
  const file = contents.file(`blobs/${d.digest.algorithm}/${d.digest.hex}`);
  if (!file) return undefined;
  if (!file.digest.equals(d.digest)) {
    throw new RegistryError('DIGEST_INVALID', `invalid archive: ${where}: the file for ${d.digest} has the digest ${file.digest}`, {
      detail: { expected: d.digest.toString(), actual: file.digest.toString(), path: file.path },
    });
  }
  if (file.size !== d.size) {
    throw new RegistryError('SIZE_INVALID', `invalid archive: ${where}: ${d.digest} has ${file.size} bytes, not the ${d.size} its descriptor says`, {
      detail: { digest: d.digest.toString(), expected: d.size, actual: file.size },
    });
  }
  return file;
}

/** The names of an index.json entry: containerd's full name, else the OCI ref name. */
function namesOf(top: Descriptor): ImageName[] {
  const annotations = top.annotations ?? {};
  const full = annotations['io.containerd.image.name'];
  if (full) return [parseImageName(full, 'io.containerd.image.name')];
  const ref = annotations['org.opencontainers.image.ref.name'];
  if (ref) {
    // A tag alone (skopeo, buildah), or a whole reference (some tools write one).
    if (isValidTag(ref)) return [{ repository: '', tag: ref }];
    return [parseImageName(ref, 'org.opencontainers.image.ref.name')];
  }
  return [];
}

/**
 * The names docker's manifest.json gives an image of the OCI layout that index.json names not: the
 * RepoTags of the entry whose Config is the image's config (its top manifest's, or an index's child's).
 */
function savedNames(image: ArchiveImage, saved: readonly DockerSaveEntry[], contents: ArchiveContents): ImageName[] {
  const configs = new Set(image.manifests.flatMap((m) => (m.parsed.config ? [m.parsed.config.digest.toString()] : [])));
  const entry = saved.find((e) => {
    const file = contents.file(e.config);
    return file !== undefined && configs.has(file.digest.toString());
  });
  return (entry?.repoTags ?? []).map((t) => parseImageName(t, `manifest.json: ${entry!.config}: RepoTags`));
}

// ---- docker save (manifest.json) ----

interface DockerSaveEntry {
  config: string;
  repoTags: string[];
  layers: string[];
}

function parseDockerManifest(body: Buffer): DockerSaveEntry[] {
  const doc = parseJson(body, 'manifest.json');
  if (!Array.isArray(doc) || doc.length === 0) throw archiveInvalid('manifest.json must be a non-empty array');
  return doc.map((entry, i) => {
    const where = `manifest.json[${i}]`;
    if (!isObject(entry)) throw archiveInvalid(`${where} must be an object`);
    const { Config, RepoTags, Layers } = entry;
    if (typeof Config !== 'string') throw archiveInvalid(`${where}: Config must be a path`);
    if (RepoTags !== undefined && RepoTags !== null && (!Array.isArray(RepoTags) || !RepoTags.every((t) => typeof t === 'string'))) {
      throw archiveInvalid(`${where}: RepoTags must be a list of names`);
    }
    if (!Array.isArray(Layers) || !Layers.every((l) => typeof l === 'string')) throw archiveInvalid(`${where}: Layers must be a list of paths`);
    return { config: Config, repoTags: (RepoTags as string[] | null | undefined) ?? [], layers: Layers as string[] };
  });
}

/** Each manifest.json entry becomes an OCI image manifest over the saved config and layer tars. */
async function planDockerSave(contents: ArchiveContents, saved: DockerSaveEntry[], read: ReadStaged): Promise<ArchiveImage[]> {
  const images: ArchiveImage[] = [];
  for (const [i, entry] of saved.entries()) {
    const where = `manifest.json[${i}]`;
    const configFile = contents.file(entry.config);
    if (!configFile) throw archiveInvalid(`${where}: the config ${entry.config} is not in the archive`);
    const config = parseJson(await read(configFile, JSON_LIMIT), entry.config);
    const diffIds = isObject(config) && isObject(config.rootfs) ? config.rootfs.diff_ids : undefined;
    if (!Array.isArray(diffIds) || !diffIds.every((d) => typeof d === 'string')) {
      throw archiveInvalid(`${where}: the config has no rootfs.diff_ids`);
    }
    if (diffIds.length !== entry.layers.length) {
      throw archiveInvalid(`${where}: the config lists ${diffIds.length} layers, manifest.json ${entry.layers.length}`);
    }
    const layers: StagedFile[] = entry.layers.map((path, n) => {
      const file = contents.file(path);
      if (!file) throw archiveInvalid(`${where}: the layer ${path} is not in the archive`);
      // An uncompressed layer's digest is its diff ID: a layer that is not the one the config says is refused.
      if (!file.gzip && file.digest.toString() !== diffIds[n]) {
        throw new RegistryError('DIGEST_INVALID', `invalid archive: ${where}: the layer ${path} has the digest ${file.digest}, not the config's diff ID ${String(diffIds[n])}`, {
          detail: { path, expected: diffIds[n], actual: file.digest.toString() },
        });
      }
      return file;
    });
    const manifest = {
      schemaVersion: 2,
      mediaType: MediaType.OciManifest,
      config: { mediaType: OCI_CONFIG, digest: configFile.digest.toString(), size: configFile.size },
      layers: layers.map((f) => ({ mediaType: f.gzip ? OCI_LAYER_GZIP : OCI_LAYER, digest: f.digest.toString(), size: f.size })),
    };
    const body = Buffer.from(JSON.stringify(manifest));
    images.push({
      names: entry.repoTags.map((t) => parseImageName(t, `${where}: RepoTags`)),
      manifests: [{ digest: Digest.of(body), mediaType: MediaType.OciManifest, body, parsed: parseManifest(body, MediaType.OciManifest) }],
      blobs: [...new Set([configFile, ...layers])],
      absent: [],
    });
  }
  return images;
}

// ---- names ----

/**
 * A repository and tag from an image reference as archives write them (`busybox:latest`,
 * `docker.io/library/busybox:1.36`, `registry.example:5000/team/app:v1`): the registry host is
 * dropped, and so is Docker Hub's `library/`.
 */
export function parseImageName(reference: string, where: string): ImageName {
  let rest = reference.trim();
  const at = rest.indexOf('@');
  if (at >= 0) rest = rest.slice(0, at);
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
  }
  const parts = rest.split('/');
  const first = parts[0] ?? '';
  let host: string | undefined;
  if (parts.length > 1 && (first.includes('.') || first.includes(':') || first === 'localhost')) {
    host = first;
    parts.shift();
  }
  if ((host === undefined || host === 'docker.io' || host === 'index.docker.io') && parts.length > 1 && parts[0] === 'library') parts.shift();
  const repository = parts.join('/');
  if (!isValidName(repository)) throw new RegistryError('NAME_INVALID', `invalid archive: ${where}: ${JSON.stringify(reference.slice(0, 300))} is not a valid image name`);
  if (tag !== undefined && !isValidTag(tag)) throw new RegistryError('MANIFEST_INVALID', `invalid archive: ${where}: ${JSON.stringify(tag.slice(0, 200))} is not a valid tag`);
  return tag === undefined ? { repository } : { repository, tag };
}

// ---- helpers ----

function parseJson(body: Buffer, where: string): unknown {
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    throw archiveInvalid(`${where} is not valid JSON`);
  }
}

/** A manifest of the archive, parsed: its errors name where in the archive it is. */
function parseInArchive(body: Buffer, mediaType: string, where: string): ParsedManifest {
  try {
    return parseManifest(body, mediaType);
  } catch (err) {
    if (err instanceof RegistryError) throw new RegistryError(err.code, `invalid archive: ${where}: ${err.message}`, { status: err.status, detail: err.detail });
    throw err;
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
