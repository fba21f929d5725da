export const version = 5;
export const name = 'notifications';
// The outbox of event notifications (src/events/notifier.ts). Writers take one transaction lock
// before they insert (OUTBOX_LOCK in src/index/postgres/outbox.ts), so that numbers are given in
// commit order: a reader never sees a later number before an earlier one commits.
export const sql = `
CREATE TABLE notification_outbox (
  seq bigserial PRIMARY KEY,
  created_at bigint NOT NULL,
  event text NOT NULL
);
CREATE TABLE notification_cursors (
  endpoint text PRIMARY KEY,
  seq bigint NOT NULL,
  updated_at bigint NOT NULL
);
`;
