-- A device that holds an identity key the C2 does not have (restore-reconcile: the key was issued
-- after the backup, or the client was created again) is `unreachable`: every command would be
-- refused by the device, yet acknowledged by the broker and recorded as delivered. Nothing is sent
-- to it until its key is replaced by re-provisioning (NewClient with the device's key), an
-- authentic receipt shows it holds the C2's key, or an operator resyncs it.
ALTER TABLE clients DROP CONSTRAINT clients_sync_state_check;
ALTER TABLE clients ADD CONSTRAINT clients_sync_state_check
  CHECK (sync_state IN ('idle', 'pending', 'failed', 'unreachable'));
-- Devices an earlier reconciliation marked failed for this reason (before this state existed).
UPDATE clients SET sync_state = 'unreachable'
 WHERE sync_state = 'failed' AND sync_error LIKE '%: re-provision the device';
