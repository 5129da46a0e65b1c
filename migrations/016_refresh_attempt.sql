-- A refresh's outcome is written once. A commit whose answer was lost on
-- the way back (a connection reset after the server wrote it) is sent
-- again; the attempt's id (owner/started ms.sequence) makes the second
-- write a no-op instead of a second event row. NULL: rows from before.
ALTER TABLE refresh_events ADD COLUMN attempt text;
CREATE UNIQUE INDEX refresh_events_attempt_idx ON refresh_events (attempt)
    WHERE attempt IS NOT NULL;
