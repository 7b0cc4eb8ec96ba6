-- cronjobs schema: job definitions (immutable, versioned) and their runs.
-- Every invariant the service relies on is enforced here, so a bug in any
-- process (or a hand-written SQL statement) cannot break it.

CREATE TABLE cron_job_definitions (
    id              uuid        PRIMARY KEY,
    job_key         text        NOT NULL
                    CHECK (job_key ~ '^[a-z0-9][a-z0-9._-]{0,99}$'),
    version         integer     NOT NULL CHECK (version >= 1),
    target          text        NOT NULL CHECK (length(target) BETWEEN 1 AND 200),
    schedule_type   text        NOT NULL CHECK (schedule_type IN ('recurring', 'one_time')),
    cron_expression text,
    timezone        text        NOT NULL DEFAULT 'UTC',
    run_at          timestamptz,
    payload         jsonb       NOT NULL DEFAULT '{}'::jsonb
                    CHECK (jsonb_typeof(payload) = 'object'),
    description     text        CHECK (length(description) <= 500),
    status          text        NOT NULL DEFAULT 'active'
                    CHECK (status IN ('active', 'paused', 'retired')),
    pause_reason    text,
    paused_at       timestamptz,
    paused_by       text,
    created_by      text        NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    retired_at      timestamptz,

    CONSTRAINT cron_job_definitions_schedule_shape CHECK (
        (schedule_type = 'recurring' AND cron_expression IS NOT NULL AND run_at IS NULL)
        OR (schedule_type = 'one_time' AND run_at IS NOT NULL AND cron_expression IS NULL)
    ),
    -- A paused definition says why, when and by whom; a retired one keeps that record.
    CONSTRAINT cron_job_definitions_pause_shape CHECK (
        status <> 'paused'
        OR (pause_reason IS NOT NULL AND paused_at IS NOT NULL AND paused_by IS NOT NULL)
    ),
    CONSTRAINT cron_job_definitions_retired_shape CHECK (
        (status = 'retired') = (retired_at IS NOT NULL)
    ),
    CONSTRAINT cron_job_definitions_key_version UNIQUE (job_key, version)
);

-- At most one live (active or paused) definition per key: a change is a new version.
CREATE UNIQUE INDEX cron_job_definitions_one_live_per_key
    ON cron_job_definitions (job_key) WHERE status <> 'retired';
CREATE INDEX cron_job_definitions_status_idx ON cron_job_definitions (status);
CREATE INDEX cron_job_definitions_target_idx ON cron_job_definitions (target);
CREATE INDEX cron_job_definitions_schedule_type_idx ON cron_job_definitions (schedule_type);
-- Keyset pagination: newest first.
CREATE INDEX cron_job_definitions_created_idx ON cron_job_definitions (created_at DESC, id DESC);

CREATE TABLE cron_job_runs (
    id                 uuid        PRIMARY KEY,
    job_definition_id  uuid        NOT NULL REFERENCES cron_job_definitions (id),
    job_key            text        NOT NULL,
    job_version        integer     NOT NULL,
    target             text        NOT NULL,
    trigger_type       text        NOT NULL CHECK (trigger_type IN ('scheduled', 'manual')),
    scheduled_at       timestamptz NOT NULL,
    status             text        NOT NULL DEFAULT 'pending'
                       CHECK (status IN ('pending', 'running', 'succeeded', 'failed', 'skipped')),
    started_at         timestamptz,
    finished_at        timestamptz,
    duration_ms        bigint      CHECK (duration_ms >= 0),
    heartbeat_at       timestamptz,
    error              text,
    output             jsonb,
    triggered_by       text,
    scheduler_instance text,
    created_at         timestamptz NOT NULL DEFAULT now(),

    CONSTRAINT cron_job_runs_running_shape CHECK (
        status <> 'running' OR (started_at IS NOT NULL AND heartbeat_at IS NOT NULL)
    ),
    CONSTRAINT cron_job_runs_terminal_shape CHECK (
        (status IN ('succeeded', 'failed', 'skipped')) = (finished_at IS NOT NULL)
    ),
    -- The slot guard: any number of scheduler replicas run each slot exactly once.
    CONSTRAINT cron_job_runs_slot_guard UNIQUE (job_definition_id, scheduled_at, trigger_type)
);

-- Overlap policy `skip`, race-free across processes: one active run per key.
CREATE UNIQUE INDEX cron_job_runs_one_active_per_key
    ON cron_job_runs (job_key) WHERE status IN ('pending', 'running');
CREATE INDEX cron_job_runs_status_scheduled_idx ON cron_job_runs (status, scheduled_at);
CREATE INDEX cron_job_runs_definition_idx ON cron_job_runs (job_definition_id);
CREATE INDEX cron_job_runs_key_version_idx ON cron_job_runs (job_key, job_version);
CREATE INDEX cron_job_runs_target_idx ON cron_job_runs (target);
CREATE INDEX cron_job_runs_created_idx ON cron_job_runs (created_at);
-- Run history is listed newest first by scheduled time (keyset pagination).
CREATE INDEX cron_job_runs_scheduled_idx ON cron_job_runs (scheduled_at DESC, id DESC);
CREATE INDEX cron_job_runs_key_scheduled_idx ON cron_job_runs (job_key, scheduled_at DESC, id DESC);
-- The scheduler's reconcile fingerprint (count, max(updated_at)) of active definitions.
CREATE INDEX cron_job_definitions_active_updated_idx ON cron_job_definitions (updated_at) WHERE status = 'active';
