// Image archives built in memory for the tests: tars of any shape (hostile ones too), docker
// save's two formats, OCI layouts, and multipart bodies that carry them.
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { pack as tarPack, type Header } from 'tar-stream';

import { OCI_CONFIG, OCI_INDEX, OCI_MANIFEST, digestOf } from '../helpers.js';

export { OCI_INDEX, OCI_MANIFEST };
export const OCI_LAYER_TAR = 'application/vnd.oci.image.layer.v1.tar';

export type TarEntry = Partial<Header> & { name: string; data?: Buffer | string };

export const sha256 = (data: Buffer | string): string => digestOf(data);

/** A tar of these entries, in this order (gzip-compressed when asked). */
export async function tarOf(entries: TarEntry[], options: { gzip?: boolean } = {}): Promise<Buffer> {
  const tar = tarPack();
  const chunks: Buffer[] = [];
  tar.on('data', (c: unknown) => chunks.push(c as Buffer));
  const ended = new Promise<void>((resolve, reject) => {
    tar.on('end', resolve);
    tar.on('error', reject);
  });
  for (const { data, ...header } of entries) {
    const body = data === undefined ? undefined : Buffer.from(data);
    await new Promise<void>((resolve, reject) => {
      tar.entry({ type: 'file', mode: 0o644, mtime: new Date(0), ...header, ...(body ? { size: body.length } : {}) }, body ?? Buffer.alloc(0), (err) => (err ? reject(err) : resolve()));
    });
  }
  tar.finalize();
  await ended;
  const whole = Buffer.concat(chunks);
  return options.gzip ? gzipSync(whole) : whole;
}

/** A small layer: a tar holding one file. */
export async function layerTar(content: string): Promise<Buffer> {
  return tarOf([{ name: 'hello.txt', data: content }]);
}

export interface TestImage {
  config: Buffer;
  layers: Buffer[];
  /** The OCI manifest over them, as an OCI layout would hold it. */
  manifest: Buffer;
  digest: string;
}

/** `size` bytes that differ from seed to seed (a large layer; the registry does not look inside). */
export function filler(size: number, seed: string): Buffer {
  const out = Buffer.alloc(size);
  let block = createHash('sha256').update(seed).digest();
  for (let off = 0; off < size; off += block.length) {
    block.copy(out, off);
    block = createHash('sha256').update(block).digest();
  }
  return out;
}

/**
 * An image of `layers` (uncompressed tars, or `layerBytes` of filler each) for linux/`arch`, its
 * config listing their diff IDs.
 */
export async function testImage(name: string, arch = 'amd64', layerCount = 2, layerBytes?: number): Promise<TestImage> {
  const layers: Buffer[] = [];
  for (let i = 0; i < layerCount; i++) layers.push(layerBytes ? filler(layerBytes, `${name} ${i} ${arch}`) : await layerTar(`${name} layer ${i} ${arch}`));
  const config = Buffer.from(
    JSON.stringify({
      architecture: arch,
      os: 'linux',
      created: '2026-01-02T03:04:05Z',
      config: { Cmd: ['/hello'], Labels: { name } },
      rootfs: { type: 'layers', diff_ids: layers.map((l) => sha256(l)) },
      history: layers.map((_, i) => ({ created_by: `step ${i}` })),
    }),
  );
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: OCI_CONFIG, digest: sha256(config), size: config.length },
      layers: layers.map((l) => ({ mediaType: OCI_LAYER_TAR, digest: sha256(l), size: l.length })),
    }),
  );
  return { config, layers, manifest, digest: sha256(manifest) };
}

const blobName = (digest: string) => `blobs/sha256/${digest.slice('sha256:'.length)}`;

/**
 * Docker's older `docker save`: `<id>/layer.tar` folders, `<config hex>.json`, and manifest.json
 * (last when `manifestLast`, as docker writes it).
 */
export function dockerSaveEntries(images: Array<{ image: TestImage; repoTags: string[] }>, options: { manifestLast?: boolean } = {}): TarEntry[] {
  const entries: TarEntry[] = [];
  const manifest = images.map(({ image, repoTags }) => {
    const configName = `${sha256(image.config).slice(7)}.json`;
    entries.push({ name: configName, data: image.config });
    const layers = image.layers.map((layer, i) => {
      const dir = createHash('sha256').update(`${sha256(image.config)}/${i}`).digest('hex');
      entries.push({ name: `${dir}/`, type: 'directory' }, { name: `${dir}/VERSION`, data: '1.0' }, { name: `${dir}/layer.tar`, data: layer });
      return `${dir}/layer.tar`;
    });
    return { Config: configName, RepoTags: repoTags, Layers: layers };
  });
  const manifestEntry = { name: 'manifest.json', data: JSON.stringify(manifest) };
  return options.manifestLast === false ? [manifestEntry, ...entries] : [...entries, manifestEntry];
}

/** An OCI image layout of these images (each under its ref name), with or without an index over them. */
export function ociLayoutEntries(
  tops: Array<{ manifest: Buffer; mediaType: string; annotations?: Record<string, string> }>,
  blobs: Buffer[],
  options: { indexFirst?: boolean } = {},
): TarEntry[] {
  const index = {
    schemaVersion: 2,
    mediaType: OCI_INDEX,
    manifests: tops.map((t) => ({ mediaType: t.mediaType, digest: sha256(t.manifest), size: t.manifest.length, ...(t.annotations ? { annotations: t.annotations } : {}) })),
  };
  const unique = new Map<string, Buffer>();
  for (const b of [...blobs, ...tops.map((t) => t.manifest)]) unique.set(sha256(b), b);
  const blobEntries: TarEntry[] = [{ name: 'blobs/', type: 'directory' }, { name: 'blobs/sha256/', type: 'directory' }, ...[...unique].map(([d, b]) => ({ name: blobName(d), data: b }))];
  const head: TarEntry[] = [
    { name: 'oci-layout', data: '{"imageLayoutVersion":"1.0.0"}' },
    { name: 'index.json', data: JSON.stringify(index) },
  ];
  return options.indexFirst === false ? [...blobEntries, ...head] : [...head, ...blobEntries];
}

/** Every blob of an image (config, layers, manifest). */
export function blobsOf(image: TestImage): Buffer[] {
  return [image.config, ...image.layers, image.manifest];
}

/** A multi-platform index over images, and its bytes. */
export function indexOf(images: Array<{ image: TestImage; arch: string }>): Buffer {
  return Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: images.map(({ image, arch }) => ({ mediaType: OCI_MANIFEST, digest: image.digest, size: image.manifest.length, platform: { os: 'linux', architecture: arch } })),
    }),
  );
}

/** A multipart/form-data body with these fields and one file part (fields first unless told). */
export function formOf(file: Buffer | undefined, fields: Record<string, string> = {}, options: { fieldsLast?: boolean; fileField?: string; filename?: string } = {}): { payload: Buffer; headers: Record<string, string> } {
  const boundary = `----ocireg-test-${Math.random().toString(16).slice(2)}`;
  const fieldParts = Object.entries(fields).map(([name, value]) => Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`));
  const fileParts = file
    ? [
        Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${options.fileField ?? 'file'}"; filename="${options.filename ?? 'image.tar'}"\r\nContent-Type: application/x-tar\r\n\r\n`),
        file,
        Buffer.from('\r\n'),
      ]
    : [];
  const parts = options.fieldsLast ? [...fileParts, ...fieldParts] : [...fieldParts, ...fileParts];
  const payload = Buffer.concat([...parts, Buffer.from(`--${boundary}--\r\n`)]);
  return { payload, headers: { 'content-type': `multipart/form-data; boundary=${boundary}` } };
}

/** The entries of a tar (as the export writes it): name → bytes. */
export async function entriesOf(tar: Buffer): Promise<Map<string, { type: string; data: Buffer }>> {
  const { extract } = await import('tar-stream');
  const out = new Map<string, { type: string; data: Buffer }>();
  const ex = extract();
  const done = (async () => {
    for await (const entry of ex) {
      const chunks: Buffer[] = [];
      for await (const c of entry) chunks.push(c as Buffer);
      out.set(entry.header.name, { type: entry.header.type ?? 'file', data: Buffer.concat(chunks) });
    }
  })();
  ex.end(tar);
  await done;
  return out;
}
