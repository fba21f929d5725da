import { describe, expect, it } from 'vitest';
import type { ManifestNode } from '../../../src/index/contract.js';
import { unreachableManifests } from '../../../src/maintenance/gc/mark.js';

const OLD = 1_000;
const CUTOFF = 5_000;
const FRESH = 9_000;

function node(digest: string, fields: Partial<ManifestNode> = {}): ManifestNode {
  return { digest, subject: null, touchedAt: OLD, tags: [], children: [], ...fields };
}

function removed(graph: ManifestNode[]): string[] {
  return unreachableManifests(graph, CUTOFF).sort();
}

describe('unreachableManifests', () => {
  it('keeps tagged manifests and manifests within the grace window; removes the old untagged ones', () => {
    expect(removed([node('tagged', { tags: ['v1'] }), node('old'), node('fresh', { touchedAt: FRESH }), node('edge', { touchedAt: CUTOFF })])).toEqual(['old']);
  });

  it('keeps every level of nested indexes under a tag', () => {
    const graph = [
      node('top', { tags: ['latest'], children: ['mid'] }),
      node('mid', { children: ['amd64', 'arm64'] }),
      node('amd64'),
      node('arm64'),
      node('stray'),
    ];
    expect(removed(graph)).toEqual(['stray']);
  });

  it('a child shared by a tagged and an untagged index stays; the untagged index and its own children go', () => {
    const graph = [
      node('tagged-index', { tags: ['v2'], children: ['shared'] }),
      node('untagged-index', { children: ['shared', 'own'] }),
      node('shared'),
      node('own'),
    ];
    expect(removed(graph)).toEqual(['own', 'untagged-index']);
  });

  it('keeps referrers of kept manifests, and referrers of referrers', () => {
    const graph = [
      node('image', { tags: ['v1'] }),
      node('signature', { subject: 'image' }),
      node('signature-of-signature', { subject: 'signature' }),
      node('sbom', { subject: 'image' }),
    ];
    expect(removed(graph)).toEqual([]);
  });

  it('keeps the referrers of an untagged child of a tagged index', () => {
    const graph = [node('index', { tags: ['v1'], children: ['child'] }), node('child'), node('attestation', { subject: 'child' })];
    expect(removed(graph)).toEqual([]);
  });

  it('an untagged image goes with its referrers; a referrer alone never keeps its subject', () => {
    const graph = [node('image'), node('signature', { subject: 'image' }), node('signature-2', { subject: 'signature' })];
    expect(removed(graph)).toEqual(['image', 'signature', 'signature-2']);
  });

  it('a referrer within the grace window stays even when its old subject goes', () => {
    const graph = [node('image'), node('new-signature', { subject: 'image', touchedAt: FRESH })];
    expect(removed(graph)).toEqual(['image']);
  });

  it('a referrer whose subject never arrived goes once it is old', () => {
    expect(removed([node('orphan', { subject: 'sha256:absent' }), node('young-orphan', { subject: 'sha256:absent', touchedAt: FRESH })])).toEqual(['orphan']);
  });

  it('a manifest pushed by digest only, recently, keeps its children until the window passes', () => {
    const graph = [node('index-by-digest', { touchedAt: FRESH, children: ['a'] }), node('a')];
    expect(removed(graph)).toEqual([]);
    expect(unreachableManifests(graph, FRESH + 1).sort()).toEqual(['a', 'index-by-digest']);
  });

  it('a child recorded but absent from the repository is ignored', () => {
    expect(removed([node('index', { tags: ['t'], children: ['missing'] })])).toEqual([]);
  });

  it('terminates on cycles and on a long chain of referrers', () => {
    expect(removed([node('a', { subject: 'b' }), node('b', { subject: 'a', children: ['a'] })])).toEqual(['a', 'b']);
    const chain = [node('r0', { tags: ['keep'] })];
    for (let i = 1; i < 100_000; i++) chain.push(node(`r${i}`, { subject: `r${i - 1}` }));
    expect(unreachableManifests(chain, CUTOFF)).toEqual([]);
  });

  it('keeps the graph order in its answer', () => {
    expect(unreachableManifests([node('c'), node('a'), node('b', { tags: ['x'] })], CUTOFF)).toEqual(['c', 'a']);
  });
});
