-- Delivery receipts (the opt-in protocol extension, DESIGN R9): "accepted by the broker" is
-- delivered_version; "confirmed by the device" is confirmed_version. A receipt names the command
-- by the hash of its protected bytes, so the last command sent per membership is remembered.
ALTER TABLE device_topics
  ADD COLUMN confirmed_version integer NOT NULL DEFAULT 0,
  ADD COLUMN last_command_id bytea,
  ADD COLUMN last_command_version integer;

ALTER TABLE clients
  ADD COLUMN last_seen_at timestamptz;
