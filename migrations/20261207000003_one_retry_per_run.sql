-- Built in a transaction, not CONCURRENTLY: a concurrent build waits for every open
-- transaction, including a second `cronjobs migrate` waiting for sqlx's advisory lock, which
-- waits for this one (a deadlock the CLI test found). It blocks writes while it scans.
-- A failed run has at most one retry (SPEC 17): the guard that makes scheduling a retry safe
-- to repeat after a lost reply. Built concurrently, like 20261207000002.
CREATE UNIQUE INDEX IF NOT EXISTS cron_job_runs_one_retry_per_run
    ON cron_job_runs (retry_of) WHERE retry_of IS NOT NULL;
