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

/// Drops the database when the test passes (a failed test's is kept for inspection): a suite
/// leaves ~150 of them otherwise, and CI machines keep their PostgreSQL between runs.
impl Drop for TestDb {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("kept database {} of the failed test", self.name);
            return;
        }
        let (server, name) = (server_url(), self.name.clone());
        // Drop cannot await, and the test's runtime may be shutting down: a thread of its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(async {
                let admin = PgPool::connect(&server).await?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&admin)
                    .await?;
                admin.close().await;
                anyhow::Ok(())
            })
        })
        .join();
        if let Ok(Err(e)) = dropped {
            eprintln!("could not drop test database {}: {e}", self.name);
        }
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
