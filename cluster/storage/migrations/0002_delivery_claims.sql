-- Cluster-wide "one command in flight per device" (DESIGN R5): a delivery process claims a batch
-- of devices with one statement; a claim names its owner and expires, so a dead process's devices
-- are picked up again after the TTL.
ALTER TABLE clients
  ADD COLUMN inflight_owner text,
  ADD COLUMN inflight_until timestamptz;

CREATE INDEX clients_inflight ON clients (inflight_until) WHERE inflight_until IS NOT NULL;
