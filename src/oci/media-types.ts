export const MediaType = {
  OciManifest: 'application/vnd.oci.image.manifest.v1+json',
  OciIndex: 'application/vnd.oci.image.index.v1+json',
  OciEmpty: 'application/vnd.oci.empty.v1+json',
  DockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  DockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  DockerSchema1: 'application/vnd.docker.distribution.manifest.v1+json',
  DockerSchema1Signed: 'application/vnd.docker.distribution.manifest.v1+prettyjws',
  OctetStream: 'application/octet-stream',
} as const;

export const MANIFEST_MEDIA_TYPES: ReadonlySet<string> = new Set([
  MediaType.OciManifest,
  MediaType.OciIndex,
  MediaType.DockerManifest,
  MediaType.DockerManifestList,
]);

export const INDEX_MEDIA_TYPES: ReadonlySet<string> = new Set([MediaType.OciIndex, MediaType.DockerManifestList]);

export const SCHEMA1_MEDIA_TYPES: ReadonlySet<string> = new Set([
  MediaType.DockerSchema1,
  MediaType.DockerSchema1Signed,
]);

/** Layers that live elsewhere (their `urls`), which a registry need not hold. */
export const NON_DISTRIBUTABLE_LAYER_TYPES: ReadonlySet<string> = new Set([
  'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
  'application/vnd.oci.image.layer.nondistributable.v1.tar',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd',
]);

/** Strips parameters (`; charset=...`) and lower-cases a media type. */
export function baseMediaType(value: string | undefined): string {
  if (!value) return '';
  return value.split(';', 1)[0]!.trim().toLowerCase();
}

/**
 * Whether an Accept header admits a media type. An absent or empty header
 * accepts anything; `q=0` excludes.
 */
export function accepts(acceptHeader: string | string[] | undefined, mediaType: string): boolean {
  const values = Array.isArray(acceptHeader) ? acceptHeader : acceptHeader ? [acceptHeader] : [];
  const ranges = values.flatMap((v) => v.split(',')).map((r) => r.trim()).filter(Boolean);
  if (ranges.length === 0) return true;
  const [type] = mediaType.split('/');
  // The most specific range that matches decides (RFC 9110 12.5.1): an exact
  // type, then `type/*`, then `*/*`; q=0 refuses.
  let best: { specificity: number; refused: boolean } | undefined;
  for (const range of ranges) {
    const [base, ...params] = range.split(';').map((p) => p.trim());
    const q = params.find((p) => p.startsWith('q='));
    const refused = q !== undefined && Number(q.slice(2)) === 0;
    const b = (base ?? '').toLowerCase();
    const specificity = b === mediaType ? 3 : b === `${type}/*` ? 2 : b === '*/*' ? 1 : 0;
    if (specificity > 0 && (!best || specificity > best.specificity)) best = { specificity, refused };
  }
  return best !== undefined && !best.refused;
}
