-- Automation engine (issue 7): rules, their trigger state, the firing record that makes each
-- firing happen exactly once across leader changes, the leader epoch (the fence) and the pause
-- switch. Triggers, targets and the rollout policy are small JSON documents validated by the
-- domain (cluster/domain/automation-rules.ts); a rule's `version` is its optimistic-concurrency
-- token, and firings never change it.

CREATE TABLE automation_rules (
  id bigserial PRIMARY KEY,
  description text NOT NULL DEFAULT '' CHECK (octet_length(description) <= 1024),
  action text NOT NULL
    CHECK (action IN ('rotate-topic-key', 'rotate-client-key', 'rotate-c2-key', 'resync-lagging')),
  triggers jsonb NOT NULL DEFAULT '[]'::jsonb,
  targets jsonb NOT NULL DEFAULT '[]'::jsonb,
  rollout jsonb NOT NULL DEFAULT '{}'::jsonb,
  enabled boolean NOT NULL DEFAULT true,
  version integer NOT NULL DEFAULT 1 CHECK (version > 0),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- Per trigger: where the schedule stands (time triggers: the last due slot planned) and where the
-- event count stands (event triggers: the last `events.seq` consumed and the count since the last
-- firing). Kept across rule edits for triggers that keep their id.
CREATE TABLE automation_trigger_state (
  rule_id bigint NOT NULL REFERENCES automation_rules (id) ON DELETE CASCADE,
  trigger_id text NOT NULL,
  cursor_at timestamptz,
  event_seq bigint NOT NULL DEFAULT 0,
  counter integer NOT NULL DEFAULT 0 CHECK (counter >= 0),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (rule_id, trigger_id)
);

-- One row per firing, keyed by rule and due time (and, for per-key or per-event firings, the
-- subject): the UNIQUE constraint is what makes a firing happen once whichever leader plans it.
-- `snapshot` is the rule (action, targets, rollout) as planned, so a firing resumed by another
-- leader, or running while the rule is edited, acts on one consistent definition.
CREATE TABLE automation_firings (
  id bigserial PRIMARY KEY,
  rule_id bigint NOT NULL REFERENCES automation_rules (id) ON DELETE CASCADE,
  due_at timestamptz NOT NULL,
  subject text NOT NULL DEFAULT '',
  trigger_id text NOT NULL,
  rule_version integer NOT NULL,
  snapshot jsonb NOT NULL,
  status text NOT NULL DEFAULT 'pending'
    CHECK (status IN ('pending', 'succeeded', 'failed', 'aborted', 'timed_out')),
  -- Epoch of the leader that planned it, and of the one that finished it.
  planned_epoch bigint NOT NULL,
  finished_epoch bigint,
  -- Missed due slots merged into this firing (catch-up policy); 1 for a normal firing.
  coalesced integer NOT NULL DEFAULT 1 CHECK (coalesced >= 1),
  attempts integer NOT NULL DEFAULT 0,
  result jsonb NOT NULL DEFAULT '{}'::jsonb,
  planned_at timestamptz NOT NULL DEFAULT now(),
  started_at timestamptz,
  finished_at timestamptz,
  UNIQUE (rule_id, due_at, subject)
);
CREATE INDEX automation_firings_open ON automation_firings (due_at, id) WHERE status = 'pending';
CREATE INDEX automation_firings_rule ON automation_firings (rule_id, id);

-- The leader fence: every write of the engine checks, in its own transaction, that the epoch is
-- still the one its leader claimed (`SELECT ... FOR SHARE`); a new leader bumps it.
CREATE TABLE automation_leader (
  id smallint PRIMARY KEY CHECK (id = 1),
  epoch bigint NOT NULL DEFAULT 0,
  node_id text,
  acquired_at timestamptz,
  heartbeat_at timestamptz
);
INSERT INTO automation_leader (id) VALUES (1);

-- The pause switch (planned outages): while paused the leader plans and runs nothing.
CREATE TABLE automation_control (
  id smallint PRIMARY KEY CHECK (id = 1),
  paused boolean NOT NULL DEFAULT false,
  reason text NOT NULL DEFAULT '',
  changed_by text NOT NULL DEFAULT '',
  changed_at timestamptz
);
INSERT INTO automation_control (id) VALUES (1);
