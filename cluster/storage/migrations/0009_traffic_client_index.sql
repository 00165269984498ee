-- device_topic_traffic's primary key leads with topic_id, so without this index the ON DELETE
-- CASCADE of every client removal read the whole table, which holds a row per device and topic
-- seen in public-key mode (millions in a large fleet). Every other foreign key already had an
-- index leading with its columns (cluster/test/storage/schema-indexes.integration.test.ts keeps
-- it so).
--
-- Built in the migration's transaction, so writes to the table (the traffic monitor's batches,
-- client removals) wait while it is built: seconds for a few million rows. See
-- docs/deployment.md, "Rolling upgrades".
CREATE INDEX device_topic_traffic_client ON device_topic_traffic (client_id);
