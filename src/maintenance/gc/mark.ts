/**
 * Marking, over one repository's manifest graph (pure: the collector hands it the graph the
 * index reads inside the transaction that removes what it names).
 *
 * Kept are the roots and everything they reach:
 * - roots: every tagged manifest, and every manifest touched (pushed, or pushed again) at or
 *   after `cutoff` (the grace window: a child pushed by digest before its index, a manifest on
 *   its way to a tag);
 * - a kept index keeps the manifests it lists, nested ones too;
 * - a kept manifest keeps its referrers (signatures, SBOMs, attestations), and theirs.
 * Everything else is unreachable: with `deleteuntagged`, the collector removes it, so an untagged
 * referrer goes only with its subject (or when its subject never arrived), never on its own.
 */
import type { ManifestNode } from '../../index/contract.js';

/** The digests of the manifests that nothing keeps, in the graph's order. */
export function unreachableManifests(graph: readonly ManifestNode[], cutoff: number): string[] {
  const byDigest = new Map<string, ManifestNode>();
  const referrers = new Map<string, string[]>();
  for (const node of graph) {
    byDigest.set(node.digest, node);
    if (node.subject !== null) {
      const list = referrers.get(node.subject);
      if (list) list.push(node.digest);
      else referrers.set(node.subject, [node.digest]);
    }
  }
  const kept = new Set<string>();
  const pending: string[] = [];
  const keep = (digest: string) => {
    if (kept.has(digest) || !byDigest.has(digest)) return;
    kept.add(digest);
    pending.push(digest);
  };
  for (const node of graph) if (node.tags.length > 0 || node.touchedAt >= cutoff) keep(node.digest);
  // Iterative, not recursive: a deep chain of referrers of referrers cannot overflow the stack.
  while (pending.length > 0) {
    const digest = pending.pop()!;
    for (const child of byDigest.get(digest)!.children) keep(child);
    for (const referrer of referrers.get(digest) ?? []) keep(referrer);
  }
  return graph.filter((node) => !kept.has(node.digest)).map((node) => node.digest);
}
