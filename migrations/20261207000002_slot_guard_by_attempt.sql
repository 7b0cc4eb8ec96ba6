-- Built in a transaction, not CONCURRENTLY: a concurrent build waits for every open
-- transaction, including a second `cronjobs migrate` waiting for sqlx's advisory lock, which
-- waits for this one (a deadlock the CLI test found). It blocks writes while it scans.
-- The slot guard by attempt (SPEC 17): one row per (definition, slot, trigger, attempt), so a
-- slot's retries have rows of their own with the slot's `scheduled_at`. For every row before
-- this release `attempt` is 1, so it guards exactly what the old guard
-- (job_definition_id, scheduled_at, trigger_type) did, which 20261207000005 drops once this
-- index is known valid.
--
-- Built CONCURRENTLY: no lock that stops inserts or updates while it scans the history. That
-- cannot run in a transaction (hence the directive above, and one statement per file:
-- PostgreSQL runs the statements of one query string in one implicit transaction).
-- IF NOT EXISTS: a build interrupted half way leaves an invalid index, which 20261207000005
-- refuses to rely on, saying how to rebuild it.
CREATE UNIQUE INDEX IF NOT EXISTS cron_job_runs_slot_attempt_guard
    ON cron_job_runs (job_definition_id, scheduled_at, trigger_type, attempt);
