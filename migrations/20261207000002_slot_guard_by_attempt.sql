-- no-transaction
--
-- The slot guard by attempt (SPEC 17), built without blocking the scheduler: CONCURRENTLY
-- takes no lock that stops inserts or updates while it scans the history, and so cannot run
-- in a transaction (hence the directive above, and one statement per file: PostgreSQL runs
-- the statements of one query string in one implicit transaction).
--
-- A slot's own rows: one per (definition, slot, trigger, attempt) outside backfills. For every
-- row before this release `attempt` is 1 and `backfill_id` null, so this is the old guard
-- (job_definition_id, scheduled_at, trigger_type) again, which 20261207000005 drops.
--
-- IF NOT EXISTS: a migration interrupted half way is run again from the start.
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS cron_job_runs_slot_attempt_guard
    ON cron_job_runs (job_definition_id, scheduled_at, trigger_type, attempt) WHERE backfill_id IS NULL;
