// Eight writers pushing through the balancer at once, images sharing layers, all moving the same two
// tags: every acknowledged image is then whole on every node, each tag names an image pushed for it,
// and the bucket's tag links agree with the index (a reindex into a fresh database gives the same).
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { freePort, runCli } from '../support/built-server.js';
import { createClusterDatabase, errorLines, startNode, type NodeHandle } from '../support/cluster.js';
import { testBytes } from '../support/socket.js';
import { catalogOf, digestOf, itLeavesNoErrors, makeImage, MANIFEST_TYPE, pushImage, request, resolve, tagsOf, useCluster, type Image } from './support.js';

const cluster = useCluster({ nodes: 3 });

const WRITERS = 8;
const ROUNDS = 5;
const SHARED = 'cluster/shared';
const TAGS = ['latest', 'v1'] as const;

describe('concurrent writers', () => {
  /** Every push acknowledged with a 201, by repository. */
  const acknowledged: Array<{ repo: string; image: Image }> = [];
  /** The digests pushed under each shared tag. */
  const pushedFor: Record<string, Set<string>> = { latest: new Set(), v1: new Set() };

  it('takes 8 writers pushing images with shared layers and moving the same tags', async () => {
    const balancer = cluster().url;
    const base = [testBytes(512 * 1024, 900), testBytes(128 * 1024, 901)];
    const writer = async (w: number) => {
      for (let r = 0; r < ROUNDS; r++) {
        const image = makeImage([...base, testBytes(32 * 1024 + w * 7 + r, 1000 + w * 100 + r)], `w${w}-r${r}`);
        const tag = TAGS[(w + r) % TAGS.length]!;
        // Recorded before the push: an acknowledged push may win the tag while the others still wait.
        pushedFor[tag]!.add(image.digest);
        await pushImage(balancer, SHARED, image, tag);
        acknowledged.push({ repo: SHARED, image });
        await pushImage(balancer, `cluster/w${w}`, image, `r${r}`);
        acknowledged.push({ repo: `cluster/w${w}`, image });
      }
    };
    await Promise.all(Array.from({ length: WRITERS }, (_, w) => writer(w)));
    expect(acknowledged).toHaveLength(WRITERS * ROUNDS * 2);
  });

  it('serves every acknowledged image through every node, byte for byte', async () => {
    for (const node of cluster().nodes) {
      const seen = new Set<string>();
      for (const { repo, image } of acknowledged) {
        const res = await request(node.url, 'GET', `/v2/${repo}/manifests/${image.digest}`, { headers: { accept: MANIFEST_TYPE } });
        expect(res.status, `${node.name} ${repo}@${image.digest}`).toBe(200);
        expect(res.body.equals(image.manifest)).toBe(true);
        for (const blob of [image.config, ...image.layers]) {
          const key = `${repo}@${digestOf(blob)}`;
          if (seen.has(key)) continue;
          seen.add(key);
          const got = await request(node.url, 'GET', `/v2/${repo}/blobs/${digestOf(blob)}`);
          expect(got.status, `${node.name} ${key}`).toBe(200);
          expect(got.body.equals(blob), `${node.name} ${key}`).toBe(true);
        }
      }
    }
  });

  it('leaves each shared tag on an image pushed for it, the same through every node', async () => {
    const answers: string[] = [];
    for (const node of cluster().nodes) {
      expect(await tagsOf(node.url, SHARED)).toEqual([...TAGS]);
      const digests = [];
      for (const tag of TAGS) {
        const digest = await resolve(node.url, SHARED, tag);
        expect(pushedFor[tag]!.has(digest!), `${node.name} ${tag} -> ${digest}`).toBe(true);
        digests.push(digest);
      }
      answers.push(digests.join(' '));
    }
    expect(new Set(answers).size).toBe(1);
  });

  it('gives the same repositories, tags and digests when the bucket is reindexed into a fresh database', async () => {
    const c = cluster();
    const fresh = await createClusterDatabase(c.adminUrl);
    const env = { ...c.env, REGISTRY_INDEX_POSTGRES_URL: fresh.url };
    const dir = c.directory;
    const logFile = join(dir, 'reindexed.log');
    let node: NodeHandle | undefined;
    try {
      const reindexed = await runCli(c.cli, ['reindex'], env, 120_000);
      expect(reindexed.code, reindexed.stderr).toBe(0);
      expect(reindexed.stdout).toMatch(/reindexed .*: \d+ repositories/);

      const configPath = join(dir, 'reindexed.json');
      await writeFile(configPath, JSON.stringify({ log: { fields: { node: 'reindexed' } } }));
      node = await startNode({ name: 'reindexed', cli: c.cli, env, configPath, cwd: dir, port: await freePort(), logFile });

      const repositories = await catalogOf(c.url);
      expect(repositories.length).toBe(WRITERS + 1);
      expect(await catalogOf(node.url)).toEqual(repositories);
      for (const repo of repositories) {
        const tags = await tagsOf(c.url, repo);
        expect(await tagsOf(node.url, repo), repo).toEqual(tags);
        for (const tag of tags) expect(await resolve(node.url, repo, tag), `${repo}:${tag}`).toBe(await resolve(c.url, repo, tag));
      }
      for (const { repo, image } of acknowledged) expect(await resolve(node.url, repo, image.digest)).toBe(image.digest);
    } finally {
      await node?.stopProcess();
      await fresh.drop();
    }
    expect(errorLines(await readFile(logFile, 'utf8'))).toEqual([]);
  });

  itLeavesNoErrors(cluster);
});
