-- Delivery bookkeeping performance (issue 4). A rotation fan-out updates, per device, its
-- `clients` row when the device is claimed and again when it is released (with its last delivery
-- time), and its `device_topics` row when the delivery is recorded. PostgreSQL can make such an
-- update HOT (no new entry in any index, the old version pruned within the page) only when no
-- index covers an updated column or a partial-index predicate, and when the page has free space.
--
-- clients_inflight: nothing reads it (claims are taken by primary key); its column changed on
-- every claim and release, so each of them wrote a new entry in all four indexes of `clients`.
DROP INDEX IF EXISTS clients_inflight;
-- device_topics_pending: its predicate reads delivered_version, which every delivery record
-- changes. Lookups of a device's pending memberships use the primary key (client_id, topic_hash)
-- instead; the sweep visits clients in id order and probes the same primary key.
DROP INDEX IF EXISTS device_topics_pending;
-- Free space for the new row versions of those updates (existing pages keep their fill until
-- rewritten, e.g. by VACUUM FULL; new pages use it at once).
ALTER TABLE clients SET (fillfactor = 70);
ALTER TABLE device_topics SET (fillfactor = 70);
