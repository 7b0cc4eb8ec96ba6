-- Every slot accounted for across a quick pause and resume.
--
-- A resume moves `active_since` on, and the watchdog accounts for slots from there: a stretch of
-- the previous active window that it had not reached yet (slots no scheduler recorded, during
-- an outage say) would be skipped. The resume now keeps that stretch in `backlog`, and the
-- watchdog accounts for it before it forgets it.

ALTER TABLE cron_slot_watermarks ADD COLUMN backlog tstzmultirange NOT NULL DEFAULT '{}';

CREATE FUNCTION cron_watch_slots_after_change() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    unchecked_from timestamptz;
BEGIN
    SELECT GREATEST(w.checked_until, OLD.active_since) INTO unchecked_from
    FROM cron_slot_watermarks w WHERE w.job_definition_id = NEW.id;
    INSERT INTO cron_slot_watermarks (job_definition_id, checked_until, next_check_at)
    VALUES (NEW.id, NEW.active_since, NEW.active_since)
    ON CONFLICT (job_definition_id) DO UPDATE
        SET next_check_at = LEAST(cron_slot_watermarks.next_check_at, EXCLUDED.next_check_at),
            backlog = CASE
                WHEN OLD.status = 'paused' AND OLD.paused_at > unchecked_from
                THEN cron_slot_watermarks.backlog
                     + tstzmultirange(tstzrange(unchecked_from, OLD.paused_at, '(]'))
                ELSE cron_slot_watermarks.backlog
            END;
    RETURN NULL;
END
$$;

DROP TRIGGER cron_watch_slots_on_activate ON cron_job_definitions;
CREATE TRIGGER cron_watch_slots_on_activate
    AFTER UPDATE OF status, active_since ON cron_job_definitions
    FOR EACH ROW WHEN (NEW.schedule_type = 'recurring' AND NEW.status = 'active'
                       AND (OLD.status <> 'active' OR OLD.active_since <> NEW.active_since))
    EXECUTE FUNCTION cron_watch_slots_after_change();
