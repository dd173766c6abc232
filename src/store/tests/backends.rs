//! The backends a conformance test runs on: `SQLite` always, `PostgreSQL` when
//! `TURNWATCH_TEST_DATABASE_URL` names a database (each test in a schema of its own, dropped at
//! the end, also when the test fails). Under `CI=true` a `PostgreSQL` test never skips: an unset
//! variable or an unreachable server fails it.

use futures::FutureExt;
use sqlx::{Connection, PgConnection};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use crate::store::{Store, open};

/// The variable that names the `PostgreSQL` database the tests may use.
const DATABASE_URL: &str = "TURNWATCH_TEST_DATABASE_URL";

/// A store under test, with a plain connection to its database for the few checks no trait
/// method answers.
pub(crate) struct Fixture {
    /// The store.
    pub store: Arc<dyn Store>,
    /// Its database, directly.
    pub db: Db,
    /// The `SQLite` store's directory, removed on drop.
    _dir: Option<tempfile::TempDir>,
}

/// A direct connection to a store's database.
#[derive(Clone)]
pub(crate) enum Db {
    /// The `SQLite` file.
    Sqlite(sqlx::SqlitePool),
    /// The `PostgreSQL` schema (its `search_path` set).
    Postgres(sqlx::PgPool),
}

impl Db {
    /// The one text column `sql` selects, sorted.
    pub async fn strings(&self, sql: &str) -> Vec<String> {
        let mut v: Vec<String> = match self {
            Self::Sqlite(p) => sqlx::query_scalar(sql).fetch_all(p).await,
            Self::Postgres(p) => sqlx::query_scalar(sql).fetch_all(p).await,
        }
        .unwrap_or_else(|e| panic!("`{sql}`: {e}"));
        v.sort();
        v
    }

    /// Runs one statement.
    pub async fn execute(&self, sql: &str) {
        match self {
            Self::Sqlite(p) => sqlx::query(sql).execute(p).await.map(drop),
            Self::Postgres(p) => sqlx::query(sql).execute(p).await.map(drop),
        }
        .unwrap_or_else(|e| panic!("`{sql}`: {e}"));
    }

    /// The one integer `sql` selects (a `COUNT(*)`).
    pub async fn count(&self, sql: &str) -> i64 {
        match self {
            Self::Sqlite(p) => sqlx::query_scalar(sql).fetch_one(p).await,
            Self::Postgres(p) => sqlx::query_scalar(sql).fetch_one(p).await,
        }
        .unwrap_or_else(|e| panic!("`{sql}`: {e}"))
    }
}

/// Which backend a test runs on.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Backend {
    /// A fresh file in a temporary directory.
    Sqlite,
    /// A fresh schema in the database `TURNWATCH_TEST_DATABASE_URL` names.
    Postgres,
}

impl Backend {
    /// Runs `test` on a fresh store of this backend (a `PostgreSQL` test without a database
    /// skips, with a notice, outside CI).
    pub async fn run<F, Fut>(self, test: F)
    where
        F: FnOnce(Fixture) -> Fut,
        Fut: Future<Output = ()>,
    {
        match self {
            Self::Sqlite => test(sqlite().await).await,
            Self::Postgres => {
                if let Some(url) = database_url() {
                    on_postgres(&url, test).await;
                }
            }
        }
    }
}

/// A store in a fresh `SQLite` file.
pub(crate) async fn sqlite() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let store = open(&url).await.unwrap();
    let db = Db::Sqlite(sqlx::SqlitePool::connect(&url).await.unwrap());
    Fixture {
        store,
        db,
        _dir: Some(dir),
    }
}

/// The `PostgreSQL` URL to test on; `None` (after a notice) when unset outside CI.
pub(crate) fn database_url() -> Option<String> {
    let in_ci = std::env::var("CI").is_ok_and(|v| v == "true");
    match std::env::var(DATABASE_URL) {
        Ok(url) if !url.is_empty() => Some(url),
        _ if in_ci => panic!("{DATABASE_URL} is unset: under CI=true PostgreSQL tests never skip"),
        _ => {
            // Straight to stderr: the test harness would hide a printed line of a passing test.
            let _ = std::io::Write::write_all(
                &mut std::io::stderr(),
                format!("notice: {DATABASE_URL} is unset; skipping a PostgreSQL test\n").as_bytes(),
            );
            None
        }
    }
}

/// A connection to the test database; a database that cannot be reached fails the test.
pub(crate) async fn connect(url: &str) -> PgConnection {
    PgConnection::connect(url)
        .await
        .unwrap_or_else(|e| panic!("{DATABASE_URL}={url} cannot be reached: {e}"))
}

/// Runs `test` on a store in a schema of its own, then drops the schema, also when the test
/// panics (the panic then goes on).
async fn on_postgres<F, Fut>(url: &str, test: F)
where
    F: FnOnce(Fixture) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut admin = connect(url).await;
    let schema = format!("tw_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&mut admin)
        .await
        .unwrap();
    let sep = if url.contains('?') { '&' } else { '?' };
    let scoped = format!("{url}{sep}options[search_path]={schema}");
    let outcome = AssertUnwindSafe(async {
        let store = open(&scoped).await.unwrap();
        let db = Db::Postgres(sqlx::PgPool::connect(&scoped).await.unwrap());
        test(Fixture {
            store,
            db,
            _dir: None,
        })
        .await;
    })
    .catch_unwind()
    .await;
    // A connection a panic left inside a transaction must not hold the drop up for ever.
    let dropped = sqlx::raw_sql(&format!(
        "SET lock_timeout = '10s'; DROP SCHEMA {schema} CASCADE"
    ))
    .execute(&mut admin)
    .await;
    if let Err(e) = dropped {
        eprintln!("warning: schema {schema} was not dropped: {e}");
    }
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// Runs each named test body (`async fn NAME(fx: Fixture)`) on every backend, as the tests
/// `NAME::sqlite` and `NAME::postgres`, each with a fresh [`Fixture`].
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                use crate::store::tests::backends::Backend;

                #[tokio::test]
                async fn sqlite() {
                    Backend::Sqlite.run(super::$name).await;
                }

                #[tokio::test]
                async fn postgres() {
                    Backend::Postgres.run(super::$name).await;
                }
            }
        )*
    };
}
pub(crate) use conformance;
