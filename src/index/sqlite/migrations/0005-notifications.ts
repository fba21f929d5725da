export const version = 5;
export const name = 'notifications';
// The outbox of event notifications (src/events/notifier.ts): events are written in the
// transaction of the change they describe, numbered in commit order (one writer), and delivered
// to each endpoint in that order; an endpoint's cursor is the last number it has received.
export const sql = `
CREATE TABLE notification_outbox (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  created_at INTEGER NOT NULL,
  -- The event as distribution's JSON (src/events/events.ts).
  event TEXT NOT NULL
);
CREATE TABLE notification_cursors (
  endpoint TEXT PRIMARY KEY,
  seq INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);
`;
