-- One-shot commands that send a device's newest identity key (ResendIdKey) or, in public-key
-- mode, the newest C2 key (ResendC2Key) again, protected with the key before it. A resync queues
-- them: the broker acknowledges a SetIDKey or SetC2Key for a device that is offline without a
-- persistent session, and such a device, left on the older key, would refuse every later command.
-- A device that has the newest key refuses them, harmlessly. The delivery record is not moved.
ALTER TABLE device_commands DROP CONSTRAINT device_commands_kind_check;
ALTER TABLE device_commands ADD CONSTRAINT device_commands_kind_check
  CHECK (kind IN ('ResetTopics', 'ResetPubKeys', 'ResendIdKey', 'ResendC2Key'));
