import { describe, expect, it } from 'vitest';
import { Digest } from '../../src/oci/digest.js';
import { RegistryError } from '../../src/oci/errors.js';
import { effectiveArtifactType, parseManifest, type ParsedManifest } from '../../src/oci/manifest.js';
import { MediaType } from '../../src/oci/media-types.js';

const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
const OCI_LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip';
const DOCKER_CONFIG = 'application/vnd.docker.container.image.v1+json';
const DOCKER_LAYER = 'application/vnd.docker.image.rootfs.diff.tar.gzip';

function descriptor(mediaType: string, content: string, extra: Record<string, unknown> = {}) {
  return { mediaType, digest: Digest.of(content).toString(), size: Buffer.byteLength(content), ...extra };
}

const config = descriptor(OCI_CONFIG, '{"os":"linux"}');
const layer = descriptor(OCI_LAYER, 'layer bytes');

function ociImage(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { schemaVersion: 2, mediaType: MediaType.OciManifest, config, layers: [layer], ...extra };
}

function ociIndex(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    schemaVersion: 2,
    mediaType: MediaType.OciIndex,
    manifests: [descriptor(MediaType.OciManifest, 'child', { platform: { os: 'linux', architecture: 'arm64' } })],
    ...extra,
  };
}

function parse(doc: unknown, contentType: string | undefined): ParsedManifest {
  return parseManifest(Buffer.from(typeof doc === 'string' ? doc : JSON.stringify(doc)), contentType);
}

/** Asserts that parsing fails with MANIFEST_INVALID (400), and returns the message. */
function invalidMessage(doc: unknown, contentType: string | undefined): string {
  try {
    parse(doc, contentType);
  } catch (err) {
    expect(err).toBeInstanceOf(RegistryError);
    expect(err).toMatchObject({ code: 'MANIFEST_INVALID', status: 400 });
    return (err as Error).message;
  }
  throw new Error('expected MANIFEST_INVALID, but the manifest was accepted');
}

describe('parseManifest: accepted formats', () => {
  it('parses an OCI image manifest', () => {
    const m = parse(ociImage(), MediaType.OciManifest);
    expect(m.mediaType).toBe(MediaType.OciManifest);
    expect(m.kind).toBe('image');
    expect(m.config?.mediaType).toBe(OCI_CONFIG);
    expect(m.config?.digest.toString()).toBe(config.digest);
    expect(m.config?.size).toBe(config.size);
    expect(m.layers.map((l) => l.digest.toString())).toEqual([layer.digest]);
    expect(m.manifests).toEqual([]);
  });

  it('parses an OCI index with its children and their platforms', () => {
    const m = parse(ociIndex(), MediaType.OciIndex);
    expect(m.mediaType).toBe(MediaType.OciIndex);
    expect(m.kind).toBe('index');
    expect(m.manifests).toHaveLength(1);
    expect(m.manifests[0]?.mediaType).toBe(MediaType.OciManifest);
    expect(m.manifests[0]?.platform).toEqual({ os: 'linux', architecture: 'arm64' });
    expect(m.config).toBeUndefined();
    expect(m.layers).toEqual([]);
  });

  it('parses a Docker schema 2 manifest', () => {
    const doc = {
      schemaVersion: 2,
      mediaType: MediaType.DockerManifest,
      config: descriptor(DOCKER_CONFIG, 'cfg'),
      layers: [descriptor(DOCKER_LAYER, 'l1'), descriptor(DOCKER_LAYER, 'l2')],
    };
    const m = parse(doc, MediaType.DockerManifest);
    expect(m.mediaType).toBe(MediaType.DockerManifest);
    expect(m.kind).toBe('image');
    expect(m.layers).toHaveLength(2);
  });

  it('parses a Docker manifest list', () => {
    const doc = {
      schemaVersion: 2,
      mediaType: MediaType.DockerManifestList,
      manifests: [descriptor(MediaType.DockerManifest, 'amd64', { platform: { os: 'linux', architecture: 'amd64' } })],
    };
    const m = parse(doc, MediaType.DockerManifestList);
    expect(m.mediaType).toBe(MediaType.DockerManifestList);
    expect(m.kind).toBe('index');
    expect(m.manifests).toHaveLength(1);
  });

  it('ignores Content-Type parameters and case', () => {
    expect(parse(ociImage(), `${MediaType.OciManifest}; charset=utf-8`).mediaType).toBe(MediaType.OciManifest);
    expect(parse(ociImage(), MediaType.OciManifest.toUpperCase()).mediaType).toBe(MediaType.OciManifest);
  });

  it('takes the type from a specific Content-Type when the body has no mediaType', () => {
    const { mediaType: _image, ...image } = ociImage();
    expect(parse(image, MediaType.OciManifest).mediaType).toBe(MediaType.OciManifest);
    const { mediaType: _index, ...index } = ociIndex();
    const m = parse(index, MediaType.OciIndex);
    expect(m.mediaType).toBe(MediaType.OciIndex);
    expect(m.kind).toBe('index');
  });

  it.each([
    ['no Content-Type', undefined],
    ['application/json', 'application/json'],
    ['application/octet-stream', 'application/octet-stream'],
  ])('with %s, uses the body mediaType', (_label, contentType) => {
    expect(parse(ociIndex(), contentType).mediaType).toBe(MediaType.OciIndex);
    expect(parse(ociImage({ mediaType: MediaType.DockerManifest }), contentType).mediaType).toBe(
      MediaType.DockerManifest,
    );
  });

  it.each([
    ['no Content-Type', undefined],
    ['application/json', 'application/json'],
  ])('with %s and no body mediaType, infers an OCI index or image', (_label, contentType) => {
    const { mediaType: _index, ...index } = ociIndex();
    const { mediaType: _image, ...image } = ociImage();
    expect(parse(index, contentType)).toMatchObject({ mediaType: MediaType.OciIndex, kind: 'index' });
    expect(parse(image, contentType)).toMatchObject({ mediaType: MediaType.OciManifest, kind: 'image' });
  });

  it('accepts unknown extra fields', () => {
    const m = parse(
      ociImage({ somethingNew: { nested: true }, layers: [{ ...layer, vendorField: 1 }] }),
      MediaType.OciManifest,
    );
    expect(m.layers).toHaveLength(1);
  });

  it('keeps descriptor urls, artifactType and annotations', () => {
    const foreign = descriptor('application/vnd.docker.image.rootfs.foreign.diff.tar.gzip', 'win', {
      urls: ['https://example.com/layer'],
      artifactType: 'application/x-thing',
      annotations: { 'org.example': 'v' },
    });
    const m = parse(ociImage({ layers: [foreign] }), MediaType.OciManifest);
    expect(m.layers[0]).toMatchObject({
      urls: ['https://example.com/layer'],
      artifactType: 'application/x-thing',
      annotations: { 'org.example': 'v' },
    });
  });
});

describe('parseManifest: subject, artifactType and annotations', () => {
  const subject = descriptor(MediaType.OciManifest, 'the subject');

  it('extracts them from an image manifest', () => {
    const m = parse(
      ociImage({
        artifactType: 'application/vnd.example.sbom',
        subject,
        annotations: { 'org.opencontainers.image.created': '2024-01-01T00:00:00Z' },
      }),
      MediaType.OciManifest,
    );
    expect(m.artifactType).toBe('application/vnd.example.sbom');
    expect(m.subject?.digest.toString()).toBe(subject.digest);
    expect(m.subject?.size).toBe(subject.size);
    expect(m.annotations).toEqual({ 'org.opencontainers.image.created': '2024-01-01T00:00:00Z' });
    expect(effectiveArtifactType(m)).toBe('application/vnd.example.sbom');
  });

  it('extracts them from an index', () => {
    const m = parse(ociIndex({ artifactType: 'application/vnd.example.set', subject }), MediaType.OciIndex);
    expect(m.subject?.digest.toString()).toBe(subject.digest);
    expect(effectiveArtifactType(m)).toBe('application/vnd.example.set');
  });

  it('leaves them undefined when absent', () => {
    const m = parse(ociImage(), MediaType.OciManifest);
    expect(m.subject).toBeUndefined();
    expect(m.artifactType).toBeUndefined();
    expect(m.annotations).toBeUndefined();
  });

  it('effectiveArtifactType falls back to the config mediaType, and is undefined for a plain index', () => {
    const artifact = parse(ociImage({ config: descriptor('application/vnd.example.config', '{}') }), undefined);
    expect(effectiveArtifactType(artifact)).toBe('application/vnd.example.config');
    expect(effectiveArtifactType(parse(ociIndex(), undefined))).toBeUndefined();
  });
});

describe('parseManifest: Docker schema 1 is refused', () => {
  const schema1 = { schemaVersion: 1, name: 'library/x', tag: 'latest', fsLayers: [], history: [] };

  it.each([
    ['by schemaVersion 1', schema1, 'application/json'],
    ['by schemaVersion 1 with no Content-Type', schema1, undefined],
    ['by Content-Type', schema1, MediaType.DockerSchema1],
    ['by the signed Content-Type, before reading the body', 'not json at all', MediaType.DockerSchema1Signed],
    ['by body mediaType', { schemaVersion: 2, mediaType: MediaType.DockerSchema1 }, undefined],
    ['by signed body mediaType', { schemaVersion: 2, mediaType: MediaType.DockerSchema1Signed }, 'application/json'],
  ])('%s', (_label, doc, contentType) => {
    expect(invalidMessage(doc, contentType)).toMatch(/schema 1/);
  });
});

describe('parseManifest: invalid manifests', () => {
  it('refuses a Content-Type that does not match the body mediaType', () => {
    expect(invalidMessage(ociImage(), MediaType.OciIndex)).toMatch(/does not match/);
    expect(invalidMessage(ociIndex(), MediaType.DockerManifestList)).toMatch(/does not match/);
  });

  it.each([
    ['invalid JSON', '{"schemaVersion": 2,', /not valid JSON/],
    ['an empty body', '', /not valid JSON/],
    ['a JSON array', '[]', /JSON object/],
    ['JSON null', 'null', /JSON object/],
    ['a JSON string', '"manifest"', /JSON object/],
  ])('refuses %s', (_label, body, message) => {
    expect(invalidMessage(body, MediaType.OciManifest)).toMatch(message);
  });

  it.each([
    ['missing', undefined],
    ['3', 3],
    ['the string "2"', '2'],
  ])('refuses schemaVersion %s', (_label, schemaVersion) => {
    expect(invalidMessage(ociImage({ schemaVersion }), MediaType.OciManifest)).toMatch(/schemaVersion/);
  });

  it.each([
    ['a non-string body mediaType', undefined, ociImage({ mediaType: 42 })],
    ['an unknown Content-Type', 'text/plain', ociImage({ mediaType: undefined })],
    ['an unknown body mediaType', undefined, ociImage({ mediaType: 'application/vnd.example.unknown+json' })],
    ['an OCI layer type as manifest type', 'application/json', ociImage({ mediaType: OCI_LAYER })],
  ])('refuses %s', (_label, contentType, doc) => {
    invalidMessage(doc, contentType);
  });

  it.each([
    ['a missing config', { config: undefined }, /config/],
    ['a config that is not an object', { config: 'sha256:abc' }, /config/],
    ['missing layers', { layers: undefined }, /layers/],
    ['layers that are not an array', { layers: layer }, /layers/],
    ['a missing digest', { layers: [{ mediaType: OCI_LAYER, size: 1 }] }, /layers\[0\].*digest/],
    ['a non-string digest', { layers: [{ ...layer, digest: 1 }] }, /digest/],
    ['a malformed digest', { layers: [{ ...layer, digest: 'sha256:xyz' }] }, /digest/],
    ['an unsupported digest algorithm', { layers: [{ ...layer, digest: `md5:${'0'.repeat(32)}` }] }, /digest/],
    ['an upper-case digest', { layers: [{ ...layer, digest: layer.digest.toUpperCase() }] }, /digest/],
    ['a negative size', { layers: [{ ...layer, size: -1 }] }, /size/],
    ['a fractional size', { layers: [{ ...layer, size: 1.5 }] }, /size/],
    ['a string size', { layers: [{ ...layer, size: '10' }] }, /size/],
    ['a missing size', { layers: [{ mediaType: OCI_LAYER, digest: layer.digest }] }, /size/],
    ['a missing descriptor mediaType', { layers: [{ digest: layer.digest, size: 1 }] }, /mediaType/],
    ['a non-string descriptor mediaType', { layers: [{ ...layer, mediaType: 7 }] }, /mediaType/],
    ['an empty descriptor mediaType', { config: { ...config, mediaType: '' } }, /mediaType/],
    ['non-string descriptor annotations', { layers: [{ ...layer, annotations: { a: 1 } }] }, /annotations/],
    ['descriptor annotations as an array', { layers: [{ ...layer, annotations: ['a'] }] }, /annotations/],
    ['descriptor urls that are not strings', { layers: [{ ...layer, urls: [1] }] }, /urls/],
    ['a descriptor artifactType that is not a string', { layers: [{ ...layer, artifactType: 1 }] }, /artifactType/],
    ['a platform that is not an object', { layers: [{ ...layer, platform: 'linux/amd64' }] }, /platform/],
    ['a layer that is not an object', { layers: ['layer'] }, /layers\[0\]/],
    ['manifest annotations that are not strings', { annotations: { a: null } }, /annotations/],
    ['manifest annotations as a string', { annotations: 'a=b' }, /annotations/],
    ['a non-string artifactType', { artifactType: 1 }, /artifactType/],
    ['a bad subject digest', { subject: { ...layer, digest: 'sha256:00' } }, /subject/],
    ['a subject that is not an object', { subject: 'sha256:00' }, /subject/],
  ])('refuses an image manifest with %s', (_label, extra, message) => {
    expect(invalidMessage(ociImage(extra), MediaType.OciManifest)).toMatch(message);
  });

  it.each([
    ['missing manifests', { manifests: undefined }, /manifests/],
    ['manifests that are not an array', { manifests: {} }, /manifests/],
    ['a child without digest', { manifests: [{ mediaType: MediaType.OciManifest, size: 1 }] }, /manifests\[0\]/],
    ['a child with a negative size', { manifests: [{ ...layer, size: -5 }] }, /manifests\[0\].*size/],
  ])('refuses an index with %s', (_label, extra, message) => {
    expect(invalidMessage(ociIndex(extra), MediaType.OciIndex)).toMatch(message);
  });
});
