// The tag lists a running registry keeps in memory follow changes another process makes to
// the index (`ocireg lifecycle run` beside `serve`): the index's version of a repository's tags tells it.
import { afterEach, describe, expect, it } from 'vitest';
import { openSqliteIndex, type SqliteIndex } from '../../src/index/sqlite/index.js';
import { Registry } from '../../src/registry/registry.js';
import type { FastifyInstance } from 'fastify';
import { makeImage, putManifest, startRegistry, type TestRegistry } from '../helpers.js';

async function pushImage(app: FastifyInstance, repo: string, tag: string): Promise<void> {
  const res = await putManifest(app, repo, tag, await makeImage(app, repo, { layer: tag }));
  expect(res.statusCode).toBe(201);
}

let registry: TestRegistry | undefined;
let other: SqliteIndex | undefined;

afterEach(async () => {
  await other?.close();
  other = undefined;
  await registry?.destroy();
  registry = undefined;
});

describe('tag lists across processes', () => {
  it('drops what it listed once another connection deletes a tag', async () => {
    registry = await startRegistry();
    const { app } = registry;
    await pushImage(app, 'lib/app', 'v1');
    await pushImage(app, 'lib/app', 'v2');
    const list = async () => (await app.inject({ method: 'GET', url: '/v2/lib/app/tags/list' })).json().tags as string[];
    expect(await list()).toEqual(['v1', 'v2']);

    // A second connection, as a CLI command in another process has.
    other = openSqliteIndex(registry.config.index.path);
    const cli = new Registry(app.registry.store, other);
    await cli.manifests.delete('lib/app', { tag: 'v1' });

    expect(await list()).toEqual(['v2']);
  });

  it('keeps its lists while nothing else writes', async () => {
    registry = await startRegistry();
    const { app } = registry;
    await pushImage(app, 'lib/app', 'v1');
    const first = await app.inject({ method: 'GET', url: '/v2/lib/app/tags/list' });
    const again = await app.inject({ method: 'GET', url: '/v2/lib/app/tags/list' });
    expect(again.body).toBe(first.body);
    expect(await app.registry.manifests.tags('lib/app')).toBe(await app.registry.manifests.tags('lib/app'));
  });
});
