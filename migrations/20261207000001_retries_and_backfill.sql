-- Part III, SPEC 17 and 18: retries with backoff, and backfill.
--
-- * Definitions gain a retry policy: `retry_max_attempts` counts the first attempt (1: no
--   retries), delays grow from `retry_initial_delay_ms` by `retry_multiplier` up to
--   `retry_max_delay_ms`.
-- * Runs gain `attempt` (1 for the first), `retry_of` (the failed run a retry follows),
--   `next_retry_at` (on a failed run: when its retry is due; null when none follows),
--   `not_before` (a pending retry waits for it) and `backfill_id`.
-- * `cron_backfills`: an admin's request to run a job for past slots, and its progress.
--
-- Every new column of the runs table is nullable or has a constant default, so adding it is a
-- catalog change, not a rewrite of the history. The new checks are added NOT VALID (no scan
-- under this migration's exclusive lock) and validated by 20261207000005. The guards that let
-- retries and backfills have rows of their own are built concurrently by 20261207000002-4.

ALTER TABLE cron_job_definitions
    ADD COLUMN retry_max_attempts int NOT NULL DEFAULT 1,
    ADD COLUMN retry_initial_delay_ms bigint NOT NULL DEFAULT 30000,
    ADD COLUMN retry_max_delay_ms bigint NOT NULL DEFAULT 600000,
    ADD COLUMN retry_multiplier double precision NOT NULL DEFAULT 2.0,
    ADD CONSTRAINT cron_job_definitions_retry_policy CHECK (
        retry_max_attempts BETWEEN 1 AND 20
        AND retry_initial_delay_ms >= 1000
        AND retry_max_delay_ms BETWEEN retry_initial_delay_ms AND 86400000
        AND retry_multiplier BETWEEN 1.0 AND 10.0
    );

CREATE TABLE cron_backfills (
    id                uuid        PRIMARY KEY,
    job_key           text        NOT NULL,
    job_definition_id uuid        NOT NULL REFERENCES cron_job_definitions (id),
    from_at           timestamptz NOT NULL,
    to_at             timestamptz NOT NULL,
    only_missing      boolean     NOT NULL,
    reason            text        NOT NULL
                      CHECK (char_length(regexp_replace(reason, '^\s+|\s+$', '', 'g')) BETWEEN 5 AND 300),
    created_by        text        NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT clock_timestamp(),
    status            text        NOT NULL DEFAULT 'running'
                      CHECK (status IN ('running', 'succeeded', 'failed', 'cancelled')),
    finished_at       timestamptz,
    -- The slots to run, oldest first (fixed when the backfill is created), and how many of
    -- them have a run row: the next one to start is slots[started + 1].
    slots             timestamptz[] NOT NULL,
    started           int         NOT NULL DEFAULT 0,
    cancelled_by      text,
    cancel_reason     text,
    CONSTRAINT cron_backfills_range CHECK (from_at <= to_at),
    CONSTRAINT cron_backfills_finished_shape CHECK ((status = 'running') = (finished_at IS NULL)),
    CONSTRAINT cron_backfills_cancel_shape CHECK ((status = 'cancelled') = (cancelled_by IS NOT NULL)),
    CONSTRAINT cron_backfills_progress CHECK (started BETWEEN 0 AND cardinality(slots)),
    CONSTRAINT cron_backfills_slot_limit CHECK (cardinality(slots) BETWEEN 1 AND 10000)
);
-- One running backfill per key (a second is a conflict); the driver reads the running ones.
CREATE UNIQUE INDEX cron_backfills_one_running_per_key ON cron_backfills (job_key) WHERE status = 'running';
-- GET /backfills: newest first, optionally by key.
CREATE INDEX cron_backfills_created_idx ON cron_backfills (created_at DESC, id DESC);
CREATE INDEX cron_backfills_key_created_idx ON cron_backfills (job_key, created_at DESC, id DESC);

ALTER TABLE cron_job_runs
    ADD COLUMN attempt int NOT NULL DEFAULT 1,
    ADD COLUMN retry_of uuid,
    ADD COLUMN next_retry_at timestamptz,
    ADD COLUMN not_before timestamptz,
    ADD COLUMN backfill_id uuid;

ALTER TABLE cron_job_runs DROP CONSTRAINT cron_job_runs_trigger_type_check;
ALTER TABLE cron_job_runs ADD CONSTRAINT cron_job_runs_trigger_type_check
    CHECK (trigger_type IN ('scheduled', 'manual', 'retry', 'backfill')) NOT VALID;
-- A retry follows a failed run and is attempt 2 or later; every other run is attempt 1.
ALTER TABLE cron_job_runs ADD CONSTRAINT cron_job_runs_retry_shape CHECK (
    attempt BETWEEN 1 AND 20
    AND (trigger_type = 'retry') = (retry_of IS NOT NULL)
    AND (trigger_type = 'retry') = (attempt > 1)
) NOT VALID;
-- A backfill's runs (and their retries) name it; no other run does.
ALTER TABLE cron_job_runs ADD CONSTRAINT cron_job_runs_backfill_shape CHECK (
    trigger_type <> 'backfill' OR backfill_id IS NOT NULL
) NOT VALID;
ALTER TABLE cron_job_runs ADD CONSTRAINT cron_job_runs_backfill_fkey
    FOREIGN KEY (backfill_id) REFERENCES cron_backfills (id) NOT VALID;
