import { Digest } from './digest.js';
import { RegistryError } from './errors.js';
import {
  INDEX_MEDIA_TYPES,
  MANIFEST_MEDIA_TYPES,
  MediaType,
  SCHEMA1_MEDIA_TYPES,
  baseMediaType,
} from './media-types.js';

export interface Descriptor {
  mediaType: string;
  digest: Digest;
  size: number;
  urls?: string[];
  artifactType?: string;
  annotations?: Record<string, string>;
  platform?: { os?: string; architecture?: string; variant?: string };
}

export interface ParsedManifest {
  mediaType: string;
  kind: 'image' | 'index';
  config?: Descriptor;
  layers: Descriptor[];
  /** Child manifests of an index. */
  manifests: Descriptor[];
  subject?: Descriptor;
  artifactType?: string;
  annotations?: Record<string, string>;
}

/** Content types that say nothing about which manifest format the body is. */
const GENERIC_CONTENT_TYPES = new Set(['', 'application/json', 'application/octet-stream']);

function invalid(message: string, detail?: unknown): RegistryError {
  return new RegistryError('MANIFEST_INVALID', message, detail === undefined ? {} : { detail });
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function parseAnnotations(v: unknown, where: string): Record<string, string> | undefined {
  if (v === undefined) return undefined;
  if (!isObject(v) || !Object.values(v).every((x) => typeof x === 'string')) {
    throw invalid(`${where}: annotations must be a map of strings`);
  }
  return v as Record<string, string>;
}

function parseDescriptor(v: unknown, where: string): Descriptor {
  if (!isObject(v)) throw invalid(`${where}: descriptor must be an object`);
  const { mediaType, digest, size, urls, artifactType, platform } = v;
  if (typeof mediaType !== 'string' || mediaType.length === 0) {
    throw invalid(`${where}: descriptor mediaType is required`);
  }
  if (typeof digest !== 'string') throw invalid(`${where}: descriptor digest is required`);
  const parsed = Digest.tryParse(digest);
  if (!parsed) throw invalid(`${where}: descriptor digest ${JSON.stringify(digest)} is invalid`, { digest });
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) {
    throw invalid(`${where}: descriptor size must be a non-negative integer`);
  }
  const d: Descriptor = { mediaType, digest: parsed, size };
  if (urls !== undefined) {
    if (!Array.isArray(urls) || !urls.every((u) => typeof u === 'string')) {
      throw invalid(`${where}: urls must be an array of strings`);
    }
    d.urls = urls;
  }
  if (artifactType !== undefined) {
    if (typeof artifactType !== 'string') throw invalid(`${where}: artifactType must be a string`);
    d.artifactType = artifactType;
  }
  const annotations = parseAnnotations(v.annotations, where);
  if (annotations) d.annotations = annotations;
  if (platform !== undefined) {
    if (!isObject(platform)) throw invalid(`${where}: platform must be an object`);
    d.platform = platform as Descriptor['platform'];
  }
  return d;
}

function parseDescriptors(v: unknown, where: string): Descriptor[] {
  if (!Array.isArray(v)) throw invalid(`${where} must be an array`);
  return v.map((item, i) => parseDescriptor(item, `${where}[${i}]`));
}

/**
 * Parses and validates a manifest body. `contentType` is the request's
 * Content-Type; it and the body's own `mediaType` must agree when both are given.
 */
export function parseManifest(body: Buffer, contentType: string | undefined): ParsedManifest {
  const headerType = baseMediaType(contentType);
  if (SCHEMA1_MEDIA_TYPES.has(headerType)) throw schema1();

  let doc: unknown;
  try {
    doc = JSON.parse(body.toString('utf8'));
  } catch {
    throw invalid('manifest is not valid JSON');
  }
  if (!isObject(doc)) throw invalid('manifest must be a JSON object');
  if (doc.schemaVersion === 1) throw schema1();
  if (doc.schemaVersion !== 2) throw invalid('manifest schemaVersion must be 2');

  const bodyType = doc.mediaType;
  if (bodyType !== undefined && typeof bodyType !== 'string') throw invalid('mediaType must be a string');
  if (typeof bodyType === 'string' && SCHEMA1_MEDIA_TYPES.has(bodyType)) throw schema1();

  let mediaType: string;
  if (!GENERIC_CONTENT_TYPES.has(headerType)) {
    if (bodyType !== undefined && bodyType !== headerType) {
      throw invalid(`Content-Type ${headerType} does not match the manifest's mediaType ${bodyType}`);
    }
    mediaType = headerType;
  } else if (typeof bodyType === 'string') {
    mediaType = bodyType;
  } else if (Array.isArray(doc.manifests)) {
    mediaType = MediaType.OciIndex;
  } else {
    mediaType = MediaType.OciManifest;
  }
  if (!MANIFEST_MEDIA_TYPES.has(mediaType)) {
    throw invalid(`unsupported manifest media type ${mediaType}`, { mediaType });
  }

  const result: ParsedManifest = { mediaType, kind: 'image', layers: [], manifests: [] };
  if (INDEX_MEDIA_TYPES.has(mediaType)) {
    result.kind = 'index';
    result.manifests = parseDescriptors(doc.manifests, 'manifests');
  } else {
    result.config = parseDescriptor(doc.config, 'config');
    result.layers = parseDescriptors(doc.layers, 'layers');
  }
  if (doc.subject !== undefined) result.subject = parseDescriptor(doc.subject, 'subject');
  if (doc.artifactType !== undefined) {
    if (typeof doc.artifactType !== 'string') throw invalid('artifactType must be a string');
    result.artifactType = doc.artifactType;
  }
  const annotations = parseAnnotations(doc.annotations, 'manifest');
  if (annotations) result.annotations = annotations;
  return result;
}

function schema1(): RegistryError {
  return invalid(
    'Docker schema 1 manifests are not supported: push with a client that writes Docker schema 2 or OCI manifests',
  );
}

/** The artifact type a referrers index reports for a manifest. */
export function effectiveArtifactType(m: ParsedManifest): string | undefined {
  return m.artifactType ?? m.config?.mediaType;
}
