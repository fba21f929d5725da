/**
 * The collector's compare-and-set against a push, on two nodes of one PostgreSQL database: a
 * checked putManifest referencing a deletion candidate through one node races beginDeleting on
 * that blob through the other. Whatever the interleaving, exactly one of them wins: the manifest
 * is written and the blob kept, or the push is refused and the blob is being deleted; never a
 * written manifest whose blob is on its way out.
 */
import { expect, it } from 'vitest';
import { ManifestReferencesError } from '../../src/index/contract.js';
import { describeIndex } from './contract/implementations.js';
import { blob, image, sleep } from './contract/fixtures.js';

const ROUNDS = 200;
const REPO = 'race/r';
/** The blobs are linked long before the marking (its cutoff), so that marking takes them. */
const LINKED_AT = 1_000;
const CUTOFF = 2_000;
const NOW = 3_000;

describeIndex(
  'PostgreSQL: a push racing the collector',
  (fixture) => {
    it(`in ${ROUNDS} rounds, either the manifest is written and its blob kept, or the push is refused and the blob deleted`, async () => {
      const pusher = fixture().index;
      const collector = (await fixture().another()).gc;
      const outcomes = { pushed: 0, deleted: 0 };
      for (let round = 0; round < ROUNDS; round++) {
        const layer = blob(`race ${round}`);
        const m = image(`race ${round}`, { blobs: [layer] });
        await pusher.registry.addBlob(REPO, layer, 10, LINKED_AT);
        expect(await collector.markCandidates(CUTOFF, NOW)).toEqual({ count: 1, bytes: 10 });

        // Which one starts first, and by how much, varies from round to round.
        const delays = round % 2 === 0 ? [0, Math.random() * 2] : [Math.random() * 2, 0];
        const [put, deleting] = await Promise.allSettled([
          sleep(delays[0]!).then(() => pusher.registry.putManifest(REPO, m, [], NOW, { checkReferences: true })),
          sleep(delays[1]!).then(() => collector.beginDeleting([layer], NOW)),
        ]);
        if (deleting.status === 'rejected') throw deleting.reason;
        const written = await pusher.registry.hasManifest(await pusher.registry.repositoryId(REPO), m.digest);
        const state = (await collector.blobState(layer))?.state;
        if (put.status === 'fulfilled') {
          expect({ round, written, state, deleting: deleting.value }).toEqual({ round, written: true, state: 'live', deleting: [] });
          outcomes.pushed++;
        } else {
          expect(put.reason, `round ${round}`).toBeInstanceOf(ManifestReferencesError);
          expect({ round, written, state, deleting: deleting.value.map((d) => d.digest) }).toEqual({
            round,
            written: false,
            state: 'deleting',
            deleting: [layer],
          });
          outcomes.deleted++;
          // As the collector would: the blob goes, and the next round starts from a clean slate.
          await collector.finishDeleting([layer]);
        }
      }
      expect(outcomes.pushed + outcomes.deleted).toBe(ROUNDS);
    }, 120_000);
  },
  (impl) => impl.name === 'postgres',
);
