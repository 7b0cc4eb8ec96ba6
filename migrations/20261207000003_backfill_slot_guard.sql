-- no-transaction
--
-- A backfill's rows (SPEC 18): one per (backfill, slot, attempt). A slot may be backfilled
-- again by a later backfill. Built concurrently, like 20261207000002.
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS cron_job_runs_backfill_slot_guard
    ON cron_job_runs (backfill_id, scheduled_at, attempt) WHERE backfill_id IS NOT NULL;
