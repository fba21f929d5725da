import { expect, it } from 'vitest';
import type { LifecyclePreviewIndex, PreviewRow } from '../../../src/index/contract.js';
import { describeIndex } from './implementations.js';
import { byteSorted } from './fixtures.js';

function preview(repository: string, overrides: Partial<PreviewRow> = {}): PreviewRow {
  return { repository, policy: '{"rules":[{"rulePriority":1}]}', status: 'IN_PROGRESS', result: null, startedAt: 1_000, ...overrides };
}

describeIndex('LifecyclePreviewIndex', (fixture) => {
  const previews = (): LifecyclePreviewIndex => fixture().index.previews;

  it('save, get, save again (which replaces every field) and forget', async () => {
    expect(await previews().get('r')).toBeUndefined();
    await previews().save(preview('r'));
    expect(await previews().get('r')).toEqual(preview('r'));
    const done = preview('r', { policy: '{"rules":[]}', status: 'COMPLETE', result: '[{"imageDigest":"sha256:x","rule":1}]', startedAt: 2_000 });
    await previews().save(done);
    expect(await previews().get('r')).toEqual(done);
    // Back to no result.
    await previews().save(preview('r', { status: 'FAILED' }));
    expect(await previews().get('r')).toEqual(preview('r', { status: 'FAILED' }));
    await previews().forget('r');
    expect(await previews().get('r')).toBeUndefined();
    await previews().forget('r');
  });

  it('keeps a large result whole', async () => {
    const result = JSON.stringify(Array.from({ length: 5_000 }, (_, i) => ({ imageDigest: `sha256:${String(i).padStart(64, '0')}`, rule: i })));
    await previews().save(preview('big', { status: 'COMPLETE', result }));
    expect((await previews().get('big'))!.result).toBe(result);
  });

  it('all lists every preview in repository byte order', async () => {
    const names = ['b', 'a/x', 'B', 'a', 'a-x'];
    for (const [i, name] of names.entries()) await previews().save(preview(name, { startedAt: i, status: i % 2 ? 'EXPIRED' : 'COMPLETE' }));
    const all = await previews().all();
    expect(all.map((p) => p.repository)).toEqual(byteSorted(names));
    expect(all.find((p) => p.repository === 'a/x')).toEqual(preview('a/x', { startedAt: 1, status: 'EXPIRED' }));
    await previews().forget('a');
    expect((await previews().all()).map((p) => p.repository)).toEqual(byteSorted(names.filter((n) => n !== 'a')));
  });

  it('all of none is empty', async () => {
    expect(await previews().all()).toEqual([]);
  });
});
