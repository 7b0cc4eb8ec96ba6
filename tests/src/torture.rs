//! Shared pieces of the torture test (SPEC 16) and the exactly-once regression tests.

/// The table `system.record` writes, as the torture test creates it: no key on `run_id`, so a
/// run executed twice shows as two rows instead of failing its second insert, and `finished_at`
/// (written by `record_end`), so overlapping executions of one key can be seen.
pub const EXECUTIONS_TABLE: &str = "CREATE TABLE cron_test_executions (
    execution_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id uuid NOT NULL,
    job_key text NOT NULL,
    scheduled_at timestamptz NOT NULL,
    executed_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at timestamptz
)";
