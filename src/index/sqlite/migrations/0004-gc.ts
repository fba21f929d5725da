export const version = 4;
export const name = 'garbage collection';
// The blob state machine of garbage collection (src/index/contract.ts, GcIndex): live (NULL),
// 'candidate', 'deleting'. Times are ms since the epoch, like every other time of the index.
// SQLite adds one column per ALTER TABLE.
export const sql = `
ALTER TABLE blobs ADD COLUMN gc_state TEXT CHECK (gc_state IN ('candidate', 'deleting'));
-- When it became a candidate or began being deleted; NULL while live.
ALTER TABLE blobs ADD COLUMN gc_at INTEGER;
-- When it was last completed, linked, written or taken back: the grace window counts from it.
ALTER TABLE blobs ADD COLUMN touched_at INTEGER NOT NULL DEFAULT 0;
-- Until when a write in flight holds it (no marking meanwhile); NULL when none does.
ALTER TABLE blobs ADD COLUMN held_until INTEGER;
-- How many writes hold it (each claim adds one, each release takes one): the hold ends with the last.
ALTER TABLE blobs ADD COLUMN holds INTEGER NOT NULL DEFAULT 0;
UPDATE blobs SET touched_at = created_at;
-- The candidates and the deletions in progress: few rows, looked up by state.
CREATE INDEX blobs_by_gc_state ON blobs (gc_state) WHERE gc_state IS NOT NULL;
-- Whether a blob is the manifest of any repository (such a blob is never collected).
CREATE INDEX manifests_by_digest ON manifests (digest);
-- The repositories linking a blob (mounts, deletion, verify), without a scan of every link.
CREATE INDEX repository_blobs_by_digest ON repository_blobs (digest);
`;
