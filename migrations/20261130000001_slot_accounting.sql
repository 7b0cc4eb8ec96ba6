-- Part II, SPEC §11: every slot accounted for.
--
-- * Runs gain the terminal statuses `missed` and `cancelled`, and `reason`: a stable code
--   for why a run ended as it did (every terminal status but `succeeded` has one).
-- * Definitions gain `active_since`: when they last became active. A slot of a recurring
--   definition is a fire time after it; each must end with exactly one run row.
-- * `cron_slot_watermarks`: how far the watchdog has accounted for each definition's slots.
-- * `cron_scheduler_instances`: the live schedulers, their builds' targets and heartbeats.

ALTER TABLE cron_job_runs DROP CONSTRAINT cron_job_runs_status_check;
ALTER TABLE cron_job_runs ADD CONSTRAINT cron_job_runs_status_check CHECK (
    status IN ('pending', 'running', 'succeeded', 'failed', 'skipped', 'missed', 'cancelled')
);
ALTER TABLE cron_job_runs DROP CONSTRAINT cron_job_runs_terminal_shape;
ALTER TABLE cron_job_runs ADD CONSTRAINT cron_job_runs_terminal_shape CHECK (
    (status IN ('succeeded', 'failed', 'skipped', 'missed', 'cancelled')) = (finished_at IS NOT NULL)
);

ALTER TABLE cron_job_runs ADD COLUMN reason text CHECK (reason IN (
    'overlap',                                                        -- skipped
    'error', 'panic', 'timeout', 'stale', 'shutdown', 'scheduler_lost', -- failed
    'cancelled',                                                      -- cancelled
    'no_scheduler', 'target_unavailable', 'database_unreachable', 'overloaded', 'not_started' -- missed
));

-- The reason of a run written without one: rows from before this migration, and rows that a
-- scheduler of the previous release writes while a deploy overlaps the old and new one.
CREATE FUNCTION cron_run_reason_of(status text, error text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN status = 'skipped' THEN 'overlap'
        WHEN status <> 'failed' THEN NULL
        WHEN error LIKE 'stale:%' THEN 'stale'
        WHEN error = 'interrupted by shutdown' THEN 'shutdown'
        WHEN error LIKE 'timed out after %' THEN 'timeout'
        WHEN error LIKE 'panicked: %' THEN 'panic'
        ELSE 'error'
    END
$$;

UPDATE cron_job_runs SET reason = cron_run_reason_of(status, error) WHERE status IN ('failed', 'skipped');

CREATE FUNCTION cron_job_runs_default_reason() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.reason := cron_run_reason_of(NEW.status, NEW.error);
    RETURN NEW;
END
$$;
-- Only rows without a reason reach the function: this release always writes one.
CREATE TRIGGER cron_job_runs_default_reason
    BEFORE INSERT OR UPDATE OF status ON cron_job_runs
    FOR EACH ROW WHEN (NEW.reason IS NULL AND NEW.status IN ('failed', 'skipped'))
    EXECUTE FUNCTION cron_job_runs_default_reason();

-- Every terminal run but a succeeded one says why; active and succeeded runs have no reason.
ALTER TABLE cron_job_runs ADD CONSTRAINT cron_job_runs_reason_shape CHECK (
    (status NOT IN ('pending', 'running', 'succeeded') OR reason IS NULL)
    AND (status NOT IN ('failed', 'skipped', 'missed', 'cancelled') OR reason IS NOT NULL)
);

-- Existing definitions are accounted for from the upgrade on, not back to their creation.
ALTER TABLE cron_job_definitions ADD COLUMN active_since timestamptz NOT NULL DEFAULT now();

CREATE TABLE cron_slot_watermarks (
    job_definition_id uuid        PRIMARY KEY REFERENCES cron_job_definitions (id) ON DELETE CASCADE,
    -- Every slot at or before this instant has a run row.
    checked_until     timestamptz NOT NULL,
    -- When the watchdog next has work here (a lower bound of the next unaccounted slot plus
    -- CRON_MISSED_AFTER); NULL while the definition is not active and fully accounted for.
    next_check_at     timestamptz
);
CREATE INDEX cron_slot_watermarks_next_check_idx
    ON cron_slot_watermarks (next_check_at) WHERE next_check_at IS NOT NULL;

-- A recurring definition that becomes active (create, new version, resume) is watched from
-- `active_since` on. A trigger, so no path that activates a definition can forget it.
CREATE FUNCTION cron_watch_slots() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO cron_slot_watermarks (job_definition_id, checked_until, next_check_at)
    VALUES (NEW.id, NEW.active_since, NEW.active_since)
    ON CONFLICT (job_definition_id) DO UPDATE
        SET next_check_at = LEAST(cron_slot_watermarks.next_check_at, EXCLUDED.next_check_at);
    RETURN NULL;
END
$$;
CREATE TRIGGER cron_watch_slots_on_insert
    AFTER INSERT ON cron_job_definitions
    FOR EACH ROW WHEN (NEW.schedule_type = 'recurring' AND NEW.status = 'active')
    EXECUTE FUNCTION cron_watch_slots();
CREATE TRIGGER cron_watch_slots_on_activate
    AFTER UPDATE OF status, active_since ON cron_job_definitions
    FOR EACH ROW WHEN (NEW.schedule_type = 'recurring' AND NEW.status = 'active'
                       AND (OLD.status <> 'active' OR OLD.active_since <> NEW.active_since))
    EXECUTE FUNCTION cron_watch_slots();

INSERT INTO cron_slot_watermarks (job_definition_id, checked_until, next_check_at)
SELECT id, active_since, active_since FROM cron_job_definitions
WHERE schedule_type = 'recurring' AND status = 'active';

CREATE TABLE cron_scheduler_instances (
    instance              text        PRIMARY KEY CHECK (length(instance) BETWEEN 1 AND 200),
    hostname              text        NOT NULL,
    version               text        NOT NULL,
    commit                text,
    -- The targets compiled into this instance's build.
    targets               text[]      NOT NULL,
    heartbeat_interval_ms bigint      NOT NULL CHECK (heartbeat_interval_ms > 0),
    started_at            timestamptz NOT NULL DEFAULT now(),
    last_seen_at          timestamptz NOT NULL DEFAULT now(),
    stopping_since        timestamptz
);
