import { Digest } from '../oci/digest.js';
import { parseManifest } from '../oci/manifest.js';
import type { BlobStore } from '../storage/blob-store.js';
import { keys, parseRepositoryKey } from '../storage/keys.js';
import type { RegistryIndex } from '../index/contract.js';
import { toIndexRow } from './manifests.js';

export interface ReindexReport {
  blobs: number;
  repositories: number;
  manifests: number;
  tags: number;
  uploads: number;
  /** Links that could not be restored (missing or unreadable content), with the reason. */
  skipped: Array<{ key: string; reason: string }>;
}

interface RepoLinks {
  layers: Digest[];
  manifests: Array<{ digest: Digest; mediaType?: string }>;
  tags: Array<{ tag: string; digest: string }>;
}

/**
 * Rebuilds the registry's part of the index (SQLite or PostgreSQL) from the blob store, which
 * is the source of truth: blobs, repository links, manifests (re-parsed from their stored
 * bytes), tags and upload sessions. What the store does not hold (access keys, ECR settings,
 * pull times) stays. Run it while the registry is stopped; if it is interrupted, run it again.
 */
export async function reindex(store: BlobStore, index: RegistryIndex, signal?: AbortSignal): Promise<ReindexReport> {
  const report: ReindexReport = { blobs: 0, repositories: 0, manifests: 0, tags: 0, uploads: 0, skipped: [] };

  const blobSizes = new Map<string, { size: number; time: number }>();
  for await (const obj of store.list(keys.blobsPrefix, signal)) {
    const m = /^blobs\/(sha256|sha512)\/[0-9a-f]{2}\/([0-9a-f]+)$/.exec(obj.key);
    const digest = m ? Digest.tryParse(`${m[1]}:${m[2]}`) : null;
    if (digest) blobSizes.set(digest.toString(), { size: obj.size, time: obj.modified.getTime() });
  }

  const repos = new Map<string, RepoLinks>();
  for await (const obj of store.list(keys.repositoriesPrefix, signal)) {
    const parsed = parseRepositoryKey(obj.key);
    if (!parsed) continue;
    let links = repos.get(parsed.repo);
    if (!links) repos.set(parsed.repo, (links = { layers: [], manifests: [], tags: [] }));
    if (parsed.kind === '_tags') {
      const target = (await store.get(obj.key, signal))?.toString('utf8').trim();
      if (target) links.tags.push({ tag: parsed.rest, digest: target });
      continue;
    }
    const digest = Digest.tryParse(parsed.rest.replace('/', ':'));
    if (!digest) {
      report.skipped.push({ key: obj.key, reason: 'not a digest' });
    } else if (parsed.kind === '_layers') {
      links.layers.push(digest);
    } else {
      const info = await store.get(obj.key, signal);
      let mediaType: string | undefined;
      try {
        mediaType = info && info.length ? (JSON.parse(info.toString('utf8')) as { mediaType?: string }).mediaType : undefined;
      } catch {
        mediaType = undefined;
      }
      links.manifests.push({ digest, ...(mediaType ? { mediaType } : {}) });
    }
  }

  await index.clear();
  for (const [digest, { size, time }] of blobSizes) await index.insertBlob(digest, size, time);
  report.blobs = blobSizes.size;

  // One repository at a time: its manifests are read and parsed (I/O first),
  // then written in one short transaction, so memory holds one repository's.
  for (const [repo, links] of repos) {
    const manifests: Array<ReturnType<typeof toIndexRow> & { created: number }> = [];
    for (const { digest, mediaType } of links.manifests) {
      const body = await store.get(keys.blob(digest), signal);
      if (!body) {
        report.skipped.push({ key: keys.manifestLink(repo, digest), reason: 'manifest content is missing' });
        continue;
      }
      try {
        const parsed = parseManifest(body, mediaType);
        manifests.push({ ...toIndexRow(digest, parsed, body), created: blobSizes.get(digest.toString())?.time ?? Date.now() });
      } catch (err) {
        report.skipped.push({ key: keys.manifestLink(repo, digest), reason: (err as Error).message });
      }
    }
    const present = new Set(manifests.map((m) => m.digest));
    const tagged = new Map<string, string[]>();
    for (const { tag, digest } of links.tags) {
      if (!present.has(digest)) {
        report.skipped.push({ key: keys.tagLink(repo, tag), reason: `tagged manifest ${digest} is missing` });
        continue;
      }
      tagged.set(digest, [...(tagged.get(digest) ?? []), tag]);
      report.tags++;
    }
    await index.ensureRepository(repo);
    for (const d of links.layers) {
      const blob = blobSizes.get(d.toString());
      if (blob) await index.addBlob(repo, d.toString(), blob.size);
      else report.skipped.push({ key: keys.layerLink(repo, d), reason: 'blob content is missing' });
    }
    for (const m of manifests) {
      try {
        await index.putManifest(repo, m, tagged.get(m.digest) ?? [], m.created);
      } catch (err) {
        // One manifest the index refuses (say, a text PostgreSQL cannot hold) is reported, not the end of the run.
        report.skipped.push({ key: keys.manifestLink(repo, Digest.parse(m.digest)), reason: `the index refused it: ${(err as Error).message}` });
      }
    }
    report.repositories++;
    report.manifests += manifests.length;
  }

  for await (const u of store.listUploads(signal)) {
    const info = await store.get(keys.uploadInfo(u.id), signal);
    try {
      const parsed = info ? (JSON.parse(info.toString('utf8')) as { repository?: string; createdAt?: number }) : {};
      if (parsed.repository) {
        await index.insertUpload(u.id, parsed.repository, parsed.createdAt ?? u.modified.getTime(), u.modified.getTime());
        report.uploads++;
      }
    } catch {
      report.skipped.push({ key: keys.uploadInfo(u.id), reason: 'unreadable upload info' });
    }
  }
  return report;
}
