-- Jobs files own their jobs per source (SPEC 21): applying one file never touches another
-- file's jobs. The source is the file's `source` name, or its path. NULL for jobs of the API,
-- and for file-managed jobs applied before sources existed: the first file applied after this
-- migration adopts them (it versions those it names and retires those it does not, as before).
-- Adding a nullable column without a default rewrites nothing; the check is validated after
-- it is added, so the lock it takes is short.
ALTER TABLE cron_job_definitions ADD COLUMN source text;
ALTER TABLE cron_job_definitions
    ADD CONSTRAINT cron_job_definitions_source_of_files
    CHECK (source IS NULL OR (managed_by = 'file' AND source <> '')) NOT VALID;
ALTER TABLE cron_job_definitions VALIDATE CONSTRAINT cron_job_definitions_source_of_files;
