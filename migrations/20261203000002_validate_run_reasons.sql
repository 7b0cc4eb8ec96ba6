-- Validates the widened reason check of the previous migration. VALIDATE takes SHARE UPDATE
-- EXCLUSIVE: the scheduler keeps inserting and finishing runs, and the API keeps reading them,
-- while it scans.
ALTER TABLE cron_job_runs VALIDATE CONSTRAINT cron_job_runs_reason_check;
