-- What the first migration's header promises ("every invariant the service relies on is
-- enforced here"), for the three rules it did not yet enforce:
--
-- 1. A run's job_key, job_version and target are its definition's (they are copied so run
--    history is read without a join). A run that disagreed escaped the one-active-run-per-key
--    index (wrong key) and was executed with the wrong target.
-- 2. A pause reason is 5 to 300 characters after trimming (SPEC §2.6), whoever writes it.
-- 3. A `pending` run has not started: no started_at, heartbeat_at or finished_at.
--
-- Plus what databases that applied an earlier text of a landed migration lack (see
-- EARLIER_TEXTS in cron-runtime/src/store/schema.rs): written with IF [NOT] EXISTS, so it is a
-- no-op on every other database.

-- 1. The referenced columns need a unique constraint; `id` alone is already unique, so this
--    costs one small index on definitions. The composite key replaces the `id`-only one (all four
--    columns are NOT NULL, so it checks everything that one did).
ALTER TABLE cron_job_definitions
    ADD CONSTRAINT cron_job_definitions_identity UNIQUE (id, job_key, version, target);
ALTER TABLE cron_job_runs
    ADD CONSTRAINT cron_job_runs_matches_definition
    FOREIGN KEY (job_definition_id, job_key, job_version, target)
    REFERENCES cron_job_definitions (id, job_key, version, target);
ALTER TABLE cron_job_runs DROP CONSTRAINT cron_job_runs_job_definition_id_fkey;

-- 2. The API has always stored the trimmed reason within bounds, so existing rows only break
--    the rule if written by hand. Those are repaired rather than left unchecked (NOT VALID would
--    make a later retire of such a row fail): a short reason keeps its text and says why it was
--    lengthened, a long one is cut at 300 characters.
UPDATE cron_job_definitions
SET pause_reason = CASE
        WHEN char_length(btrim(pause_reason)) < 5
            THEN btrim(pause_reason || ' (no reason given before the 5 character minimum)')
        ELSE left(btrim(pause_reason), 300)
    END
WHERE pause_reason IS NOT NULL
  AND char_length(regexp_replace(pause_reason, '^\s+|\s+$', '', 'g')) NOT BETWEEN 5 AND 300;
ALTER TABLE cron_job_definitions ADD CONSTRAINT cron_job_definitions_pause_reason_length CHECK (
    char_length(regexp_replace(pause_reason, '^\s+|\s+$', '', 'g')) BETWEEN 5 AND 300
);

-- 3. No code path ever wrote such a row (a claim sets all three fields with `running`).
ALTER TABLE cron_job_runs ADD CONSTRAINT cron_job_runs_pending_shape CHECK (
    status <> 'pending' OR (started_at IS NULL AND heartbeat_at IS NULL AND finished_at IS NULL)
);

-- Earlier texts: 20261127000001 lacked the reconcile fingerprint index, 20261127000002 did not
-- drop the run index the slot guard covers.
CREATE INDEX IF NOT EXISTS cron_job_definitions_active_updated_idx
    ON cron_job_definitions (updated_at) WHERE status = 'active';
DROP INDEX IF EXISTS cron_job_runs_definition_idx;
