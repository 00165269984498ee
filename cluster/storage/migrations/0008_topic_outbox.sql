-- A topic rotation's outbox entry (R3) names the topic instead of each member: one row instead
-- of one per member (100,000 for a 100,000-device topic, each written by the rotation and
-- deleted again by a claim). A claim turns such a row into the members with a pending
-- membership of that topic, read in the claim's snapshot, which sees the rotation.
ALTER TABLE outbox ALTER COLUMN client_id DROP NOT NULL;
ALTER TABLE outbox ADD COLUMN topic_id bigint;
ALTER TABLE outbox ADD CONSTRAINT outbox_one_target CHECK ((client_id IS NULL) <> (topic_id IS NULL));
