-- Drops the slot guard without `attempt`, which 20261207000002 replaced: a catalog change,
-- under a moment's exclusive lock (given up after 5 s rather than queueing the scheduler behind
-- a long transaction; `cronjobs migrate` can be run again).
--
-- Only once the replacements are valid: an interrupted CREATE INDEX CONCURRENTLY leaves an
-- invalid index that enforces nothing, and dropping the old guard then would leave slots
-- unguarded.
DO $$
DECLARE
    broken text;
BEGIN
    SELECT string_agg(c.relname, ', ') INTO broken
    FROM unnest(ARRAY['cron_job_runs_slot_attempt_guard', 'cron_job_runs_one_retry_per_run']) AS wanted(name)
    LEFT JOIN pg_class c ON c.relname = wanted.name
    LEFT JOIN pg_index i ON i.indexrelid = c.oid
    WHERE i.indisvalid IS NOT TRUE;
    IF broken IS NOT NULL THEN
        RAISE EXCEPTION 'index % is missing or invalid (an interrupted CREATE INDEX CONCURRENTLY)', broken
            USING HINT = 'run DROP INDEX CONCURRENTLY IF EXISTS for it, delete its row (versions 20261207000002 and 20261207000003) from _sqlx_migrations, and run cronjobs migrate again';
    END IF;
END
$$;

SET LOCAL lock_timeout = '5s';
ALTER TABLE cron_job_runs DROP CONSTRAINT cron_job_runs_slot_guard;
