-- Event stream (issue 6): a gapless, commit-ordered stream position for every event.
--
-- `events.seq` (bigserial) is drawn when a transaction inserts its event, not when it commits, so
-- a reader can see seq 12 before seq 11 commits, and a reader that resumed after 12 would never
-- see 11. Writers therefore insert with `stream_seq` NULL, and a sequencer (any node; one at a
-- time, serialized by the row lock on `event_stream`) gives every committed, not yet positioned
-- event the next number: `last_seq + 1, + 2, ...`, in one transaction that also advances
-- `last_seq`. Positions become visible all at once when the sequencer commits, so the positioned
-- events are always exactly 1..last_seq (minus nothing): a subscriber that resumes after N gets
-- every later event once, in order. A transaction that rolls back never shows its event and
-- leaves no hole. Writers take no extra lock, so mutations still commit in parallel.
--
-- `event_stream.last_seq` can also be advanced past the positioned events (after a restore from
-- a backup, so that positions handed out before the disaster are never handed out again).
ALTER TABLE events ADD COLUMN stream_seq bigint;
UPDATE events SET stream_seq = seq;
CREATE UNIQUE INDEX events_stream_seq ON events (stream_seq);
CREATE INDEX events_unsequenced ON events (seq) WHERE stream_seq IS NULL;

CREATE TABLE event_stream (
  singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  last_seq bigint NOT NULL CHECK (last_seq >= 0)
);
INSERT INTO event_stream (last_seq) SELECT coalesce(max(stream_seq), 0) FROM events;
