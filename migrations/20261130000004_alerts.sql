-- Alerts (SPEC §12): incidents per job key and the cluster's `no_scheduler`, and the outbox
-- their webhook deliveries are made from. Both are written in the same transaction as the run
-- outcome (or watchdog pass) that opens or resolves an incident.

CREATE TABLE cron_incidents (
    id             uuid        PRIMARY KEY,
    kind           text        NOT NULL CHECK (kind IN ('job', 'no_scheduler')),
    job_key        text,
    -- The job version of the run that opened it (null for no_scheduler).
    job_id         uuid,
    job_version    int,
    target         text,
    status         text        NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'resolved')),
    opened_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    resolved_at    timestamptz,
    resolved_by    text CHECK (resolved_by IN ('success', 'paused', 'retired', 'scheduler_up')),
    -- Bad runs (failed or missed) counted into it, the ones that opened it included.
    failures       int         NOT NULL DEFAULT 0,
    first_run_id   uuid,
    last_run_id    uuid,
    -- The run that resolved it (resolved_by = success).
    resolved_run_id uuid,
    last_error     text,
    last_reason    text,
    updated_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT cron_incidents_kind_shape CHECK ((kind = 'job') = (job_key IS NOT NULL)),
    CONSTRAINT cron_incidents_resolved_shape CHECK (
        (status = 'resolved') = (resolved_at IS NOT NULL AND resolved_by IS NOT NULL))
);

-- At most one open incident per job key, and one open no_scheduler incident. The job index is
-- also what the success path's single resolve statement reads.
CREATE UNIQUE INDEX cron_incidents_one_open_per_key ON cron_incidents (job_key)
    WHERE status = 'open' AND kind = 'job';
CREATE UNIQUE INDEX cron_incidents_one_open_cluster ON cron_incidents (kind)
    WHERE status = 'open' AND kind = 'no_scheduler';
-- GET /incidents: newest first, optionally by status or key.
CREATE INDEX cron_incidents_opened_idx ON cron_incidents (opened_at DESC, id DESC);
CREATE INDEX cron_incidents_key_opened_idx ON cron_incidents (job_key, opened_at DESC, id DESC);

-- When the watchdog first saw no live scheduler while active jobs existed (one row at most:
-- scheduler rows are deleted on a clean exit, so their last_seen_at cannot tell how long).
CREATE TABLE cron_alert_watch (
    name  text        PRIMARY KEY CHECK (name IN ('no_scheduler')),
    since timestamptz NOT NULL
);

-- One row per (event, webhook endpoint). The endpoint is identified by a hash of its URL,
-- never the URL itself: Slack's and most webhook URLs are secrets.
CREATE TABLE cron_alert_outbox (
    id              uuid        PRIMARY KEY,
    event_id        uuid        NOT NULL,
    incident_id     uuid        NOT NULL REFERENCES cron_incidents (id) ON DELETE CASCADE,
    event           text        NOT NULL CHECK (event IN ('incident.opened', 'incident.resolved')),
    endpoint        text        NOT NULL,
    -- The exact bytes POSTed (and signed), the same on every attempt.
    body            text        NOT NULL,
    attempts        int         NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    delivered_at    timestamptz,
    given_up_at     timestamptz,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    UNIQUE (event_id, endpoint)
);

-- The delivery task's claim: due, undelivered rows only (a handful at any time).
CREATE INDEX cron_alert_outbox_due_idx ON cron_alert_outbox (next_attempt_at)
    WHERE delivered_at IS NULL AND given_up_at IS NULL;
