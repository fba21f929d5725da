// A tag written through one node is what every other node answers, at once (no waiting for a cache to expire).
import { describe, expect, it } from 'vitest';
import { testBytes } from '../support/socket.js';
import { itLeavesNoErrors, makeImage, MANIFEST_TYPE, pushImage, request, resolve, tagsOf, useCluster, type Image } from './support.js';

const cluster = useCluster({ nodes: 3, env: { REGISTRY_STORAGE_DELETE_ENABLED: 'true' } });

/** What every node but `writer` answers for the repository, read right after the write. */
async function othersSee(writer: number, repo: string, tag: string) {
  const seen: Array<{ node: string; tags: string[]; digest: string | undefined; body: string }> = [];
  for (const [i, node] of cluster().nodes.entries()) {
    if (i === writer) continue;
    const tags = await tagsOf(node.url, repo);
    const digest = await resolve(node.url, repo, tag);
    const get = await request(node.url, 'GET', `/v2/${repo}/manifests/${tag}`, { headers: { accept: MANIFEST_TYPE } });
    seen.push({ node: node.name, tags, digest, body: get.status === 200 ? get.body.toString() : `${get.status}` });
  }
  return seen;
}

describe('tags across nodes', () => {
  it('shows a tag pushed, moved and deleted through one node on every other at once', async () => {
    const repo = 'cluster/tags';
    const nodes = cluster().nodes;
    const images: Image[] = [];
    for (let i = 0; i < 3; i++) images.push(makeImage([testBytes(10_000 + i, 300 + i)], `image-${i}`));

    // Warm every node's caches for the repository first, so that a stale one would show.
    await pushImage(nodes[0]!.url, repo, images[0]!, 'base');
    for (const node of nodes) expect(await tagsOf(node.url, repo)).toEqual(['base']);

    // Push through each node in turn, then move the tag through each, then delete it through one.
    for (let round = 0; round < 6; round++) {
      const writer = round % nodes.length;
      const image = images[round % images.length]!;
      await pushImage(nodes[writer]!.url, repo, image, 'latest');
      for (const view of await othersSee(writer, repo, 'latest')) {
        expect(view, `round ${round}, written on node${writer + 1}`).toEqual({
          node: view.node,
          tags: ['base', 'latest'],
          digest: image.digest,
          body: image.manifest.toString(),
        });
      }
    }

    const deleter = 1;
    const del = await request(nodes[deleter]!.url, 'DELETE', `/v2/${repo}/manifests/latest`);
    expect(del.status, del.body.toString()).toBe(202);
    for (const view of await othersSee(deleter, repo, 'latest')) {
      expect(view).toEqual({ node: view.node, tags: ['base'], digest: undefined, body: '404' });
    }

    // Tagged again after the delete: seen again everywhere.
    await pushImage(nodes[2]!.url, repo, images[1]!, 'latest');
    for (const view of await othersSee(2, repo, 'latest')) {
      expect(view.tags).toEqual(['base', 'latest']);
      expect(view.digest).toBe(images[1]!.digest);
    }
  });

  it('serves a new repository in every node catalog at once', async () => {
    const nodes = cluster().nodes;
    const image = makeImage([testBytes(2_000, 400)], 'catalog');
    await pushImage(nodes[2]!.url, 'cluster/new-repo', image, 'v1');
    for (const node of nodes) {
      const res = await request(node.url, 'GET', '/v2/_catalog');
      expect((JSON.parse(res.body.toString()) as { repositories: string[] }).repositories).toContain('cluster/new-repo');
    }
  });

  itLeavesNoErrors(cluster);
});
