//! A fresh, migrated database per test.

use cron_runtime::store;
use sqlx::PgPool;

/// The server the tests use: `DATABASE_URL` (set by `scripts/test`), or the local default.
pub fn server_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A database created for one test, with the migrations applied.
pub struct TestDb {
    pub name: String,
    pub url: String,
    pub pool: PgPool,
}

impl TestDb {
    /// Creates `cronjobs_test_<random>` and applies the migrations.
    pub async fn create() -> TestDb {
        let db = TestDb::create_empty().await;
        store::schema::migrate(&db.pool).await.expect("migrations apply");
        db
    }

    /// Creates an empty database (no migrations), e.g. to test refusing to start.
    pub async fn create_empty() -> TestDb {
        let server = server_url();
        let name = format!("cronjobs_test_{}", uuid::Uuid::new_v4().simple());
        let admin = PgPool::connect(&server)
            .await
            .expect("connect to the test PostgreSQL server");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&admin)
            .await
            .expect("create test database");
        admin.close().await;
        let url = database_url(&server, &name);
        // sqlx's defaults (a ping before every acquire), not the service's pool: tests terminate
        // the service's connections on purpose and must still read the database right after.
        let pool = PgPool::connect(&url).await.expect("connect to the test database");
        TestDb { name, url, pool }
    }
}

/// `server` with its database name replaced by `name`.
fn database_url(server: &str, name: &str) -> String {
    let (base, query) = match server.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (server, String::new()),
    };
    let base = match base.rfind('/') {
        Some(slash) if base[..slash].contains("://") && slash > base.find("://").unwrap_or(0) + 2 => &base[..slash],
        _ => base,
    };
    format!("{base}/{name}{query}")
}
