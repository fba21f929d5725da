import { createHash } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pushBlob, startRegistry, tempDir, type TestRegistry } from '../helpers.js';
import { basic, writeHtpasswd } from '../http/auth-support.js';

describe('the filtered catalog', () => {
  let reg: TestRegistry;
  const names = Array.from({ length: 12 }, (_, i) => `repo-${String(i).padStart(2, '0')}`);
  const visible = (name: string) => Number(name.slice(5)) % 3 === 0; // repo-00, 03, 06, 09

  beforeAll(async () => {
    reg = await startRegistry();
    for (const name of names) await pushBlob(reg.app, name, `blob of ${name}`);
  });
  afterAll(async () => {
    await reg.destroy();
  });

  it('counts only the visible names toward the limit', async () => {
    expect(await reg.app.registry.manifests.visibleCatalog('', 3, visible)).toEqual({ names: ['repo-00', 'repo-03', 'repo-06'] });
    expect(await reg.app.registry.manifests.visibleCatalog('repo-06', 3, visible)).toEqual({ names: ['repo-09'] });
  });

  it('stops after its scan budget and says where to go on, and the pages together are the whole list', async () => {
    const first = await reg.app.registry.manifests.visibleCatalog('', 3, visible, 5);
    expect(first).toEqual({ names: ['repo-00', 'repo-03'], scannedTo: 'repo-04' });
    const seen = [...first.names];
    let after = first.scannedTo;
    for (let i = 0; i < 10 && after !== undefined; i++) {
      const page = await reg.app.registry.manifests.visibleCatalog(after, 3, visible, 5);
      seen.push(...page.names);
      after = page.scannedTo;
    }
    expect(seen).toEqual(names.filter(visible));
  });
});

describe('GET /v2/_catalog over the scan budget', () => {
  it('answers a shorter page whose Link continues after the last name read', async () => {
    const dir = await tempDir('ocireg-catalog-');
    const reg = await startRegistry({
      auth: { htpasswd: { path: await writeHtpasswd(dir) } },
      access: { admins: ['root'], repositories: { 'seen-*': { authenticated: ['pull'] }, '**': { users: { root: ['pull'] } } } },
    });
    try {
      for (const name of ['a-1', 'a-2', 'seen-1', 'b-1', 'b-2', 'seen-2']) {
        const res = await reg.app.inject({
          method: 'POST',
          url: `/v2/${name}/blobs/uploads/?digest=sha256:${createHash('sha256').update(name).digest('hex')}`,
          headers: { authorization: basic('root'), 'content-type': 'application/octet-stream' },
          payload: name,
        });
        expect(res.statusCode, res.body).toBe(201);
      }
      const manifests = reg.app.registry.manifests;
      const real = manifests.visibleCatalog.bind(manifests);
      manifests.visibleCatalog = (last, limit, visible) => real(last, limit, visible, 3);
      const seen: string[] = [];
      let url: string | undefined = '/v2/_catalog?n=5';
      const links: string[] = [];
      for (let i = 0; i < 10 && url; i++) {
        const res = await reg.app.inject({ method: 'GET', url, headers: { authorization: basic('carol') } });
        expect(res.statusCode).toBe(200);
        seen.push(...(res.json() as { repositories: string[] }).repositories);
        const link = res.headers.link as string | undefined;
        if (link) links.push(link);
        url = link ? /^<([^>]+)>/.exec(link)![1] : undefined;
      }
      expect(seen).toEqual(['seen-1', 'seen-2']);
      expect(links[0]).toBe('</v2/_catalog?n=5&last=b-1>; rel="next"'); // a-1, a-2, b-1 read: the budget of 3
    } finally {
      await reg.destroy();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
