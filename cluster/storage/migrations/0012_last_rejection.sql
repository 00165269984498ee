-- The last command a device rejected in a delivery receipt (the opt-in extension), for GetClient
-- and `e4c2 client show`: until now only the event stream (`delivery.rejected`) had it, and the
-- events table has no index by client to look it up. Nullable columns without a default: adding
-- them rewrites nothing and holds the table's lock for an instant. Receipt receivers of an
-- earlier release leave them unset (rejections they handle show in the event stream only).
ALTER TABLE clients
  ADD COLUMN last_rejected_at timestamptz,
  ADD COLUMN last_rejection_reason text,
  ADD COLUMN last_rejected_command text;
