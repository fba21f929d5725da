import type { Digest } from '../oci/digest.js';

/**
 * The one layout of keys in a blob store. Content is addressed by digest;
 * repositories keep small link objects that record what they hold, so that
 * the SQLite index can be rebuilt from the store alone.
 */
export const keys = {
  blob: (d: Digest) => `blobs/${d.algorithm}/${d.hex.slice(0, 2)}/${d.hex}`,
  blobsPrefix: 'blobs/',
  repositoriesPrefix: 'repositories/',
  /** A blob linked into a repository (pushed or mounted there). */
  layerLink: (repo: string, d: Digest) => `repositories/${repo}/_layers/${d.algorithm}/${d.hex}`,
  /** A manifest held by a repository; its content is JSON `{ mediaType }`. */
  manifestLink: (repo: string, d: Digest) => `repositories/${repo}/_manifests/${d.algorithm}/${d.hex}`,
  /** A tag; its content is the digest it points at. */
  tagLink: (repo: string, tag: string) => `repositories/${repo}/_tags/${tag}`,
  uploadInfo: (id: string) => `uploads/${id}/info.json`,
};

export type LinkKind = '_layers' | '_manifests' | '_tags';

/** Splits a key under repositories/ into repository, kind and the rest, or returns null. */
export function parseRepositoryKey(key: string): { repo: string; kind: LinkKind; rest: string } | null {
  const m = /^repositories\/(.+?)\/(_layers|_manifests|_tags)\/(.+)$/.exec(key);
  if (!m) return null;
  return { repo: m[1]!, kind: m[2] as LinkKind, rest: m[3]! };
}
