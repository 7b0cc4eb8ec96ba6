//! The database itself rejects every invalid row, whoever writes it.
//! Each test gets a fresh database with the migrations applied (`#[sqlx::test]`).

use sqlx::PgPool;
use uuid::Uuid;

async fn insert_definition(
    pool: &PgPool,
    key: &str,
    status: &str,
    columns: &str,
    values: &str,
) -> Result<Uuid, sqlx::Error> {
    let id = Uuid::now_v7();
    let version: i32 =
        sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) + 1 FROM cron_job_definitions WHERE job_key = $1")
            .bind(key)
            .fetch_one(pool)
            .await?;
    let sql = format!(
        "INSERT INTO cron_job_definitions (id, job_key, version, target, status, created_by, retired_at, {columns})
         VALUES ($1, $2, $3, 'system.heartbeat', $4, 'test', CASE WHEN $4 = 'retired' THEN now() END, {values})"
    );
    sqlx::query(&sql)
        .bind(id)
        .bind(key)
        .bind(version)
        .bind(status)
        .execute(pool)
        .await?;
    Ok(id)
}

async fn recurring(pool: &PgPool, key: &str, status: &str) -> Result<Uuid, sqlx::Error> {
    insert_definition(
        pool,
        key,
        status,
        "schedule_type, cron_expression",
        "'recurring', '* * * * *'",
    )
    .await
}

fn violated(result: Result<impl std::fmt::Debug, sqlx::Error>) -> String {
    let err = result.expect_err("the database accepted an invalid row");
    let db = err
        .as_database_error()
        .unwrap_or_else(|| panic!("not a database error: {err}"));
    db.constraint()
        .map(str::to_owned)
        .unwrap_or_else(|| db.message().to_owned())
}

#[sqlx::test(migrations = "../migrations")]
async fn schedule_shape_is_enforced(pool: PgPool) {
    let shape = "cron_job_definitions_schedule_shape";
    assert_eq!(
        violated(insert_definition(&pool, "a", "active", "schedule_type", "'recurring'").await),
        shape
    );
    assert_eq!(
        violated(insert_definition(&pool, "b", "active", "schedule_type", "'one_time'").await),
        shape
    );
    assert_eq!(
        violated(
            insert_definition(
                &pool,
                "c",
                "active",
                "schedule_type, cron_expression, run_at",
                "'recurring', '* * * * *', now()"
            )
            .await
        ),
        shape
    );
    assert_eq!(
        violated(
            insert_definition(
                &pool,
                "d",
                "active",
                "schedule_type, cron_expression, run_at",
                "'one_time', '* * * * *', now()"
            )
            .await
        ),
        shape
    );
    assert!(
        insert_definition(&pool, "e", "active", "schedule_type, run_at", "'one_time', now()")
            .await
            .is_ok()
    );
    assert!(recurring(&pool, "f", "active").await.is_ok());
}

#[sqlx::test(migrations = "../migrations")]
async fn enum_columns_reject_unknown_values(pool: PgPool) {
    // Either the enum check or the schedule-shape check may be reported first; both guard the column.
    assert!(violated(
        insert_definition(
            &pool,
            "a",
            "active",
            "schedule_type, cron_expression",
            "'hourly', '* * * * *'"
        )
        .await
    )
    .starts_with("cron_job_definitions_schedule"));
    assert!(violated(recurring(&pool, "b", "deleted").await).contains("status"));
    let def = recurring(&pool, "c", "active").await.unwrap();
    let bad_run = |column: &'static str, value: &'static str| {
        let pool = pool.clone();
        async move {
            let (trigger, status) = match column {
                "trigger_type" => (value, "pending"),
                _ => ("scheduled", value),
            };
            sqlx::query(
                "INSERT INTO cron_job_runs (id, job_definition_id, job_key, job_version, target, trigger_type, scheduled_at, status)
                 VALUES ($1, $2, 'c', 1, 'system.heartbeat', $3, now(), $4)",
            )
            .bind(Uuid::now_v7())
            .bind(def)
            .bind(trigger)
            .bind(status)
            .execute(&pool)
            .await
        }
    };
    assert!(violated(bad_run("trigger_type", "cron").await).contains("trigger_type"));
    assert!(violated(bad_run("status", "done").await).contains("status"));
}

#[sqlx::test(migrations = "../migrations")]
async fn job_key_format_is_enforced(pool: PgPool) {
    assert!(violated(recurring(&pool, "Bad Key", "active").await).contains("job_key"));
}

#[sqlx::test(migrations = "../migrations")]
async fn only_one_live_definition_per_key(pool: PgPool) {
    recurring(&pool, "k", "retired").await.unwrap();
    recurring(&pool, "k", "active").await.unwrap();
    assert_eq!(
        violated(recurring(&pool, "k", "active").await),
        "cron_job_definitions_one_live_per_key"
    );
    assert_eq!(
        violated(
            insert_definition(
                &pool,
                "k",
                "paused",
                "schedule_type, cron_expression, pause_reason, paused_at, paused_by",
                "'recurring', '* * * * *', 'because', now(), 'x'"
            )
            .await
        ),
        "cron_job_definitions_one_live_per_key"
    );
    assert!(recurring(&pool, "k", "retired").await.is_ok());
}

#[sqlx::test(migrations = "../migrations")]
async fn duplicate_key_version_is_rejected(pool: PgPool) {
    recurring(&pool, "k", "retired").await.unwrap();
    let dup = sqlx::query(
        "INSERT INTO cron_job_definitions (id, job_key, version, target, schedule_type, cron_expression, status, created_by, retired_at)
         VALUES ($1, 'k', 1, 't', 'recurring', '* * * * *', 'retired', 'x', now())",
    )
    .bind(Uuid::now_v7())
    .execute(&pool)
    .await;
    assert_eq!(violated(dup), "cron_job_definitions_key_version");
}

async fn insert_run(
    pool: &PgPool,
    def: Uuid,
    key: &str,
    at: &str,
    trigger: &str,
    status: &str,
) -> Result<Uuid, sqlx::Error> {
    let id = Uuid::now_v7();
    sqlx::query(&format!(
        "INSERT INTO cron_job_runs (id, job_definition_id, job_key, job_version, target, trigger_type, scheduled_at, status,
                                    started_at, heartbeat_at, finished_at)
         VALUES ($1, $2, $3, 1, 'system.heartbeat', $4, '{at}', $5,
                 CASE WHEN $5 = 'running' THEN now() END, CASE WHEN $5 = 'running' THEN now() END,
                 CASE WHEN $5 IN ('succeeded', 'failed', 'skipped') THEN now() END)"
    ))
    .bind(id)
    .bind(def)
    .bind(key)
    .bind(trigger)
    .bind(status)
    .execute(pool)
    .await?;
    Ok(id)
}

#[sqlx::test(migrations = "../migrations")]
async fn slot_guard_rejects_a_second_row_for_a_slot(pool: PgPool) {
    let def = recurring(&pool, "k", "active").await.unwrap();
    let at = "2026-01-01T00:00:00Z";
    insert_run(&pool, def, "k", at, "scheduled", "succeeded").await.unwrap();
    assert_eq!(
        violated(insert_run(&pool, def, "k", at, "scheduled", "skipped").await),
        "cron_job_runs_slot_attempt_guard"
    );
    // A manual run at the same instant is a different slot.
    assert!(insert_run(&pool, def, "k", at, "manual", "succeeded").await.is_ok());
}

#[sqlx::test(migrations = "../migrations")]
async fn only_one_active_run_per_key(pool: PgPool) {
    let def = recurring(&pool, "k", "active").await.unwrap();
    insert_run(&pool, def, "k", "2026-01-01T00:00:00Z", "scheduled", "running")
        .await
        .unwrap();
    assert_eq!(
        violated(insert_run(&pool, def, "k", "2026-01-01T00:00:01Z", "scheduled", "pending").await),
        "cron_job_runs_one_active_per_key"
    );
    assert!(
        insert_run(&pool, def, "k", "2026-01-01T00:00:02Z", "scheduled", "skipped")
            .await
            .is_ok()
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn run_timestamps_match_the_status(pool: PgPool) {
    let def = recurring(&pool, "k", "active").await.unwrap();
    let running_without_heartbeat = sqlx::query(
        "INSERT INTO cron_job_runs (id, job_definition_id, job_key, job_version, target, trigger_type, scheduled_at, status)
         VALUES ($1, $2, 'k', 1, 'system.heartbeat', 'scheduled', now(), 'running')",
    )
    .bind(Uuid::now_v7())
    .bind(def)
    .execute(&pool)
    .await;
    assert_eq!(violated(running_without_heartbeat), "cron_job_runs_running_shape");
    let finished_without_time = sqlx::query(
        "INSERT INTO cron_job_runs (id, job_definition_id, job_key, job_version, target, trigger_type, scheduled_at, status)
         VALUES ($1, $2, 'k', 1, 'system.heartbeat', 'scheduled', now(), 'succeeded')",
    )
    .bind(Uuid::now_v7())
    .bind(def)
    .execute(&pool)
    .await;
    assert_eq!(violated(finished_without_time), "cron_job_runs_terminal_shape");
}

#[sqlx::test(migrations = "../migrations")]
async fn a_run_copies_its_definition_s_key_version_and_target(pool: PgPool) {
    let def = recurring(&pool, "k", "active").await.unwrap();
    recurring(&pool, "other", "active").await.unwrap();
    let run = |key: &'static str, version: i32, target: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query(
                "INSERT INTO cron_job_runs (id, job_definition_id, job_key, job_version, target, trigger_type, scheduled_at,
                                            status, finished_at, reason)
                 VALUES ($1, $2, $3, $4, $5, 'scheduled', now(), 'skipped', now(), 'overlap')",
            )
            .bind(Uuid::now_v7())
            .bind(def)
            .bind(key)
            .bind(version)
            .bind(target)
            .execute(&pool)
            .await
        }
    };
    let fk = "cron_job_runs_matches_definition";
    // Another key would also escape the one-active-run-per-key index.
    assert_eq!(violated(run("other", 1, "system.heartbeat").await), fk);
    assert_eq!(violated(run("k", 2, "system.heartbeat").await), fk);
    assert_eq!(violated(run("k", 1, "system.sleep").await), fk);
    assert!(run("k", 1, "system.heartbeat").await.is_ok());
}

#[sqlx::test(migrations = "../migrations")]
async fn a_pause_reason_is_5_to_300_characters_after_trimming(pool: PgPool) {
    let paused = |key: &'static str, reason: String| {
        let pool = pool.clone();
        async move {
            insert_definition(
                &pool,
                key,
                "paused",
                "schedule_type, cron_expression, pause_reason, paused_at, paused_by",
                &format!("'recurring', '* * * * *', '{reason}', now(), 'ops'"),
            )
            .await
        }
    };
    let check = "cron_job_definitions_pause_reason_length";
    assert_eq!(violated(paused("a", "x".into()).await), check);
    assert_eq!(violated(paused("b", "   abcd   ".into()).await), check);
    assert_eq!(violated(paused("c", "x".repeat(301)).await), check);
    assert_eq!(violated(paused("d", format!("{}abcd", "\t".repeat(3))).await), check);
    assert!(paused("e", " abcde ".into()).await.is_ok());
    assert!(paused("f", "x".repeat(300)).await.is_ok());
}

#[sqlx::test(migrations = "../migrations")]
async fn a_pending_run_has_not_started(pool: PgPool) {
    let def = recurring(&pool, "k", "active").await.unwrap();
    let pending_with = |column: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query(&format!(
                "INSERT INTO cron_job_runs (id, job_definition_id, job_key, job_version, target, trigger_type,
                                            scheduled_at, status, {column})
                 VALUES ($1, $2, 'k', 1, 'system.heartbeat', 'manual', now(), 'pending', now())"
            ))
            .bind(Uuid::now_v7())
            .bind(def)
            .execute(&pool)
            .await
        }
    };
    assert_eq!(
        violated(pending_with("started_at").await),
        "cron_job_runs_pending_shape"
    );
    assert_eq!(
        violated(pending_with("heartbeat_at").await),
        "cron_job_runs_pending_shape"
    );
    // finished_at on a pending run was already refused by the terminal shape (either may report).
    assert!(violated(pending_with("finished_at").await).ends_with("_shape"));
    assert!(pending_with("created_at").await.is_ok());
}
