/** Digests and manifests for the index contract suite: the index stores them, it does not parse them. */
import { createHash } from 'node:crypto';
import type { Index, NewManifest } from '../../../src/index/contract.js';

export const IMAGE_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const IMAGE_INDEX = 'application/vnd.oci.image.index.v1+json';
export const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
export const IMAGE_CONFIG = 'application/vnd.oci.image.config.v1+json';

export function digestOf(content: string | Buffer): string {
  return `sha256:${createHash('sha256').update(content).digest('hex')}`;
}

/** A blob digest named after `seed` (its content is the seed). */
export function blob(seed: string): string {
  return digestOf(`blob ${seed}`);
}

export interface ImageOptions {
  mediaType?: string;
  /** Blob digests: the config and layers. Default: one config and one layer made from the seed. */
  blobs?: string[];
  subject?: string;
  artifactType?: string;
  annotations?: Record<string, string>;
}

/** An image manifest whose content (and so digest) depends on `seed`. */
export function image(seed: string, options: ImageOptions = {}): NewManifest {
  const blobs = options.blobs ?? [blob(`${seed} config`), blob(`${seed} layer`)];
  const mediaType = options.mediaType ?? IMAGE_MANIFEST;
  const content = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType,
      seed,
      blobs,
      ...(options.subject ? { subject: options.subject } : {}),
      ...(options.annotations ? { annotations: options.annotations } : {}),
    }),
  );
  return {
    digest: digestOf(content),
    mediaType,
    content,
    artifactType: options.artifactType ?? IMAGE_CONFIG,
    subject: options.subject,
    annotations: options.annotations,
    blobs,
    children: [],
  };
}

/** An image index listing `children` (manifest digests). */
export function indexOf(seed: string, children: string[], options: { artifactType?: string; subject?: string } = {}): NewManifest {
  const content = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: IMAGE_INDEX, seed, manifests: children }));
  return {
    digest: digestOf(content),
    mediaType: IMAGE_INDEX,
    content,
    artifactType: options.artifactType,
    subject: options.subject,
    blobs: [],
    children,
  };
}

/** Sorts strings by their UTF-8 bytes (what the index's orders are), not by locale or UTF-16. */
export function byteSorted(values: readonly string[]): string[] {
  return [...values].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
}

/** Names whose byte order differs from a locale's order (and from case-insensitive order). */
export const AWKWARD_NAMES = ['a', 'a-b', 'a/b', 'B', 'a_b', 'a.b', 'ab', 'a/b/c', 'a0', 'z'];

/** Resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A promise with its resolver outside, to hold a section open until the test says. */
export function gate(): { promise: Promise<void>; open(): void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { promise, open };
}

/** Waits until `check` holds, polling, for at most `timeoutMs`; false if it never did. */
export async function eventually(check: () => Promise<boolean> | boolean, timeoutMs = 5_000, everyMs = 20): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() >= deadline) return false;
    await sleep(everyMs);
  }
}

/**
 * Watches a repository's tagsVersion the way a cache of tag lists relies on it: a version seen
 * before must mean the same tags as then (a cache still holding them answers right), and a
 * change of the tags must change the version. A version need not be new when the tags are
 * not (e.g. a repository deleted twice has no tags both times).
 */
export class TagsVersionWatch {
  private readonly seen = new Map<string, string>();
  private last: string | undefined;

  /** `read` gives the version and the tags (as one canonical string), read in that order. */
  constructor(private readonly read: () => Promise<{ version: string; tags: string }>) {}

  /** Records the starting point. */
  async start(): Promise<void> {
    await this.observe('the start');
  }

  /** After a write that changed the tags. */
  async changed(what: string): Promise<void> {
    const before = this.last;
    const version = await this.observe(what);
    if (version === before) throw new Error(`tagsVersion did not change on ${what} (still ${version})`);
  }

  /** After something that did not touch the tags. */
  async unchanged(what: string): Promise<void> {
    const before = this.last;
    const version = await this.observe(what);
    if (version !== before) throw new Error(`tagsVersion changed on ${what}, which changes no tag (${before} -> ${version})`);
  }

  private async observe(what: string): Promise<string> {
    const { version, tags } = await this.read();
    if (typeof version !== 'string') throw new Error(`tagsVersion is not a string: ${String(version)}`);
    const earlier = this.seen.get(version);
    if (earlier !== undefined && earlier !== tags) {
      throw new Error(`tagsVersion ${version} came back after ${what} with other tags: ${earlier} then ${tags}`);
    }
    this.seen.set(version, tags);
    this.last = version;
    return version;
  }
}

/** A repository's tags as one canonical string (tag=digest, in byte order), '' when it has none. */
export async function tagState(index: Pick<Index, 'registry' | 'images'>, repo: string): Promise<string> {
  const id = await index.registry.repositoryId(repo);
  if (id === undefined) return '';
  const pairs: string[] = [];
  for (const [digest, tags] of await index.images.allTags(id)) for (const tag of tags) pairs.push(`${tag}=${digest}`);
  return byteSorted(pairs).join(',');
}
