-- A job's own timeout (SPEC 21), overriding its target's default; NULL: the target's.
-- Definitions are versioned, so a change of timeout is a new version like any other field.
ALTER TABLE cron_job_definitions ADD COLUMN timeout_ms bigint;
ALTER TABLE cron_job_definitions ADD CONSTRAINT cron_job_definitions_timeout_range
    CHECK (timeout_ms BETWEEN 1000 AND 86400000) NOT VALID;
ALTER TABLE cron_job_definitions VALIDATE CONSTRAINT cron_job_definitions_timeout_range;
