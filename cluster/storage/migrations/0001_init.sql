-- E4 C2 schema, version 1.
-- Every key is versioned (DESIGN R1) and stored sealed by the key vault (R8); delivery is
-- level-triggered (R4): rows hold the desired and the delivered state of each device, and the
-- delivery engine sends whatever closes the gap.

-- Settings fixed for the life of a deployment (crypto mode, KDF salt) and small counters.
CREATE TABLE c2_settings (
  name text PRIMARY KEY,
  value text NOT NULL
);

-- Data keys of the key vault, wrapped by a key-encryption key (KEK).
CREATE TABLE data_keys (
  id bigserial PRIMARY KEY,
  kek_kind text NOT NULL,
  kek_id text NOT NULL,
  wrapped bytea NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);

-- C2 key pairs (public-key mode). The device-side C2 key is staged: a device keeps using the
-- version it holds (clients.c2_key_version) until SetC2Key for the newer one is delivered.
CREATE TABLE c2_keys (
  version integer PRIMARY KEY CHECK (version > 0),
  public_key bytea NOT NULL CHECK (length(public_key) = 32),
  sealed_private bytea NOT NULL,
  fingerprint text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE clients (
  id bigserial PRIMARY KEY,
  name text NOT NULL UNIQUE CHECK (octet_length(name) BETWEEN 1 AND 255),
  e4_id bytea NOT NULL UNIQUE CHECK (length(e4_id) = 16),
  -- 'active', or 'removing' while a reset is delivered before the row is deleted.
  status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'removing')),
  -- Identity key: the newest version, and the one the device is known to hold.
  key_version integer NOT NULL CHECK (key_version > 0),
  delivered_key_version integer NOT NULL DEFAULT 0,
  -- Public-key mode: the C2 key version the device holds.
  c2_key_version integer,
  -- Delivery bookkeeping of the device as a whole (one command in flight at a time).
  -- Bumped by resets and resyncs: an acknowledgement of a command planned before the bump is
  -- not recorded, since the device may have dropped what that command gave it.
  delivery_epoch bigint NOT NULL DEFAULT 0,
  sync_state text NOT NULL DEFAULT 'idle' CHECK (sync_state IN ('idle', 'pending', 'failed')),
  sync_attempts integer NOT NULL DEFAULT 0,
  sync_error text,
  sync_failed_at timestamptz,
  last_delivery_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE client_keys (
  client_id bigint NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
  version integer NOT NULL CHECK (version > 0),
  -- symkey: the 32-byte key; pubkey: the Ed25519 public key, or the 64-byte private key when
  -- the C2 generated it on explicit request (it must send it in SetIDKey).
  sealed bytea NOT NULL,
  public_key bytea,
  fingerprint text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (client_id, version)
);

CREATE TABLE topics (
  id bigserial PRIMARY KEY,
  name text NOT NULL UNIQUE CHECK (octet_length(name) BETWEEN 1 AND 512),
  topic_hash bytea NOT NULL UNIQUE CHECK (length(topic_hash) = 16),
  key_version integer NOT NULL CHECK (key_version > 0),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE topic_keys (
  topic_id bigint NOT NULL REFERENCES topics (id) ON DELETE CASCADE,
  version integer NOT NULL CHECK (version > 0),
  sealed bytea NOT NULL,
  fingerprint text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (topic_id, version)
);

-- Membership and per-(device, topic) delivery state. A row with desired_version = 0 is a pending
-- revocation (RemoveTopic to send); it survives the topic row so removed topics are revoked.
CREATE TABLE device_topics (
  client_id bigint NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
  topic_hash bytea NOT NULL CHECK (length(topic_hash) = 16),
  topic_id bigint REFERENCES topics (id) ON DELETE SET NULL,
  desired_version integer NOT NULL CHECK (desired_version >= 0),
  delivered_version integer NOT NULL DEFAULT 0,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (client_id, topic_hash)
);
CREATE INDEX device_topics_topic ON device_topics (topic_id, client_id);
CREATE INDEX device_topics_pending ON device_topics (client_id)
  WHERE desired_version <> delivered_version OR desired_version = 0;

-- Directed client links (reference LinkClient: source is added to target's list).
CREATE TABLE client_links (
  target_client_id bigint NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
  source_client_id bigint NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (target_client_id, source_client_id)
);
CREATE INDEX client_links_source ON client_links (source_client_id);

-- Public keys a device should hold (public-key mode). desired_version = 0: remove it.
CREATE TABLE device_pubkeys (
  target_client_id bigint NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
  source_e4_id bytea NOT NULL CHECK (length(source_e4_id) = 16),
  source_client_id bigint REFERENCES clients (id) ON DELETE SET NULL,
  desired_version integer NOT NULL CHECK (desired_version >= 0),
  delivered_version integer NOT NULL DEFAULT 0,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (target_client_id, source_e4_id)
);
CREATE INDEX device_pubkeys_source ON device_pubkeys (source_client_id);

-- One-shot commands (ResetTopics, ResetPubKeys), sent in id order before any other pending work.
CREATE TABLE device_commands (
  id bigserial PRIMARY KEY,
  client_id bigint NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
  kind text NOT NULL CHECK (kind IN ('ResetTopics', 'ResetPubKeys')),
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX device_commands_client ON device_commands (client_id, id);

-- Transactional outbox (R3): "this device has work", written in the transaction of the change.
CREATE TABLE outbox (
  id bigserial PRIMARY KEY,
  client_id bigint NOT NULL,
  reason text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);

-- Idempotency keys of mutating requests: a retried request returns the stored response.
CREATE TABLE request_ids (
  request_id text PRIMARY KEY,
  operation text NOT NULL,
  request_hash text NOT NULL,
  response jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);

-- Append-only audit log of every key operation, written in the same transaction.
CREATE TABLE audit_log (
  id bigserial PRIMARY KEY,
  at timestamptz NOT NULL DEFAULT now(),
  actor text NOT NULL,
  operation text NOT NULL,
  subject_kind text NOT NULL,
  subject text NOT NULL,
  key_version integer,
  key_fingerprint text,
  request_id text,
  details jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit_log is append-only';
END;
$$;
CREATE TRIGGER audit_log_no_update_delete BEFORE UPDATE OR DELETE ON audit_log
  FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();

-- Durable event stream; seq lets a subscriber resume without loss.
CREATE TABLE events (
  seq bigserial PRIMARY KEY,
  at timestamptz NOT NULL DEFAULT now(),
  type text NOT NULL,
  client_name text,
  topic text,
  key_version integer,
  details jsonb NOT NULL DEFAULT '{}'::jsonb
);
