-- Incidents can be acknowledged and resolved by hand (SPEC 21), each recorded with the token's
-- name and a note, and told to the webhooks (`incident.acknowledged`). cron_incidents is small
-- (one row per bad stretch of a key): the checks are validated at once.
ALTER TABLE cron_incidents
    ADD COLUMN acknowledged_at   timestamptz,
    ADD COLUMN acknowledged_by   text,
    ADD COLUMN acknowledged_note text,
    -- Who resolved it by hand (resolved_by = 'admin'), and why.
    ADD COLUMN resolver          text,
    ADD COLUMN resolved_note     text;

ALTER TABLE cron_incidents DROP CONSTRAINT cron_incidents_resolved_by_check;
ALTER TABLE cron_incidents ADD CONSTRAINT cron_incidents_resolved_by_check
    CHECK (resolved_by IN ('success', 'paused', 'retired', 'scheduler_up', 'admin'));
ALTER TABLE cron_incidents ADD CONSTRAINT cron_incidents_acknowledged_shape
    CHECK ((acknowledged_at IS NULL) = (acknowledged_by IS NULL));
ALTER TABLE cron_incidents ADD CONSTRAINT cron_incidents_resolver_shape
    CHECK ((resolved_by = 'admin') = (resolver IS NOT NULL));

ALTER TABLE cron_alert_outbox DROP CONSTRAINT cron_alert_outbox_event_check;
ALTER TABLE cron_alert_outbox ADD CONSTRAINT cron_alert_outbox_event_check
    CHECK (event IN ('incident.opened', 'incident.acknowledged', 'incident.resolved'));
