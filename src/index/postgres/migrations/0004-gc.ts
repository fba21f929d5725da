export const version = 4;
export const name = 'garbage collection';
// The blob state machine of garbage collection (src/index/contract.ts, GcIndex): live (NULL),
// 'candidate', 'deleting'. Times are ms since the epoch, like every other time of the index.
export const sql = `
ALTER TABLE blobs
  ADD COLUMN gc_state text CHECK (gc_state IN ('candidate', 'deleting')),
  -- When it became a candidate or began being deleted; NULL while live.
  ADD COLUMN gc_at bigint,
  -- When it was last completed, linked, written or taken back: the grace window counts from it.
  ADD COLUMN touched_at bigint NOT NULL DEFAULT 0,
  -- Until when a write in flight holds it (no marking meanwhile); NULL when none does.
  ADD COLUMN held_until bigint,
  -- How many writes hold it (each claim adds one, each release takes one): the hold ends with the last.
  ADD COLUMN holds integer NOT NULL DEFAULT 0;
UPDATE blobs SET touched_at = created_at;
-- The candidates and the deletions in progress: few rows, looked up by state.
CREATE INDEX blobs_by_gc_state ON blobs (gc_state) WHERE gc_state IS NOT NULL;
-- Whether a blob is the manifest of any repository (such a blob is never collected).
CREATE INDEX manifests_by_digest ON manifests (digest);
`;
