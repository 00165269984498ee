-- A topic rotation's outbox entries (R3) name the topic and a range of its members, one row per
-- chunk of members (TOPIC_OUTBOX_CHUNK in pg-memberships.ts), instead of one row per member:
-- 200 rows for a 100,000-device topic instead of 100,000, each written by the rotation and
-- deleted again by a claim. A claim turns such a row into the members of its range whose
-- membership is still pending, read in the claim's snapshot, which sees the rotation. Chunks
-- keep a fan-out spread over the nodes and workers that claim the outbox.
ALTER TABLE outbox ALTER COLUMN client_id DROP NOT NULL;
ALTER TABLE outbox
  ADD COLUMN topic_id bigint,
  ADD COLUMN first_client_id bigint,
  ADD COLUMN last_client_id bigint;
ALTER TABLE outbox ADD CONSTRAINT outbox_one_target CHECK (
  (client_id IS NOT NULL AND topic_id IS NULL AND first_client_id IS NULL AND last_client_id IS NULL)
  OR (client_id IS NULL AND topic_id IS NOT NULL AND first_client_id IS NOT NULL
      AND last_client_id IS NOT NULL)
);
-- Claims look for chunk rows apart from device rows: through this index, not past every waiting
-- device row.
CREATE INDEX outbox_topic_rows ON outbox (id) WHERE topic_id IS NOT NULL;
