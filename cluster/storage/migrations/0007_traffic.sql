-- Traffic monitoring (DESIGN §2): what the monitor learned from messages on protected topics.
-- Counters and versions only: no payload, no plaintext is ever stored.

-- Messages per topic, key version (0: no key authenticated it) and class.
CREATE TABLE topic_traffic (
  topic_id bigint NOT NULL REFERENCES topics (id) ON DELETE CASCADE,
  key_version integer NOT NULL CHECK (key_version >= 0),
  class text NOT NULL
    CHECK (class IN ('current', 'previous_key', 'stale', 'forged', 'unencrypted')),
  messages bigint NOT NULL CHECK (messages > 0),
  first_at timestamptz NOT NULL,
  last_at timestamptz NOT NULL,
  PRIMARY KEY (topic_id, key_version, class)
);

-- Public-key mode: the key version each device was last seen publishing under, per topic
-- (signed messages name their sender). This is the version a device really uses.
CREATE TABLE device_topic_traffic (
  client_id bigint NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
  topic_id bigint NOT NULL REFERENCES topics (id) ON DELETE CASCADE,
  key_version integer NOT NULL CHECK (key_version > 0),
  last_at timestamptz NOT NULL,
  PRIMARY KEY (topic_id, client_id)
);
