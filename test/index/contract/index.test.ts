import { expect, it } from 'vitest';
import { openPostgresIndex } from '../../../src/index/postgres/index.js';
import { describeIndex } from './implementations.js';

describeIndex('Index', (fixture, impl) => {
  it('says which driver it is and where it is', async () => {
    const { index } = fixture();
    expect(index.driver).toBe(impl.name);
    expect(typeof index.where).toBe('string');
    expect(index.where.length).toBeGreaterThan(0);
    await expect(index.registry.ping()).resolves.toBeUndefined();
  });

  it('close can be called twice', async () => {
    const { index } = fixture();
    await index.close();
    await index.close();
  });
});

describeIndex(
  'Index on PostgreSQL',
  (fixture) => {
    it('never shows the password in `where`', async () => {
      // The test server trusts loopback connections, so any password is accepted.
      const url = new URL(fixture().database!.url);
      url.password = encodeURIComponent('s3cr%t-p@ss');
      const index = await openPostgresIndex({ url: url.toString(), poolSize: 1 });
      try {
        expect(index.where).not.toContain('s3cr');
        expect(index.where).not.toContain(encodeURIComponent('s3cr%t-p@ss'));
        expect(index.where).toContain(fixture().database!.name);
        await index.registry.ping();
      } finally {
        await index.close();
      }
    });

    it('a second index opens an already migrated database without changing it', async () => {
      const one = fixture().index;
      await one.registry.putManifest('r', { digest: 'sha256:' + '3'.repeat(64), mediaType: 'application/json', content: Buffer.from('{}'), blobs: [], children: [] }, ['t']);
      const two = await fixture().another();
      expect(await two.registry.tagDigest('r', 't')).toBe('sha256:' + '3'.repeat(64));
    });
  },
  (impl) => impl.shared,
);
