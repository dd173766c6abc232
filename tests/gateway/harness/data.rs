//! Where a gateway under test keeps its data: a fresh `SQLite` file, or a fresh schema in the
//! `PostgreSQL` database `TURNWATCH_TEST_DATABASE_URL` names (dropped at the end, also when the
//! test fails); and a direct connection to it for the few checks no endpoint answers.
//!
//! The rule for `PostgreSQL` is the store tests' (`src/store/tests/backends.rs`): without the
//! variable a `PostgreSQL` test skips with a notice, except under `CI=true`, where it fails; a
//! database that cannot be reached always fails it.

use sqlx::{Connection, PgConnection, PgPool, SqlitePool};
use tempfile::TempDir;

/// The variable that names the `PostgreSQL` database the tests may use.
const DATABASE_URL: &str = "TURNWATCH_TEST_DATABASE_URL";

/// Which store a gateway under test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// A file in a temporary directory.
    Sqlite,
    /// A schema of its own in the test database.
    Postgres,
}

/// The `PostgreSQL` URL to test on; `None` (after a notice) when unset outside CI.
pub fn database_url() -> Option<String> {
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

/// A connection to the test database; one that cannot be reached fails the test.
async fn connect(url: &str) -> PgConnection {
    PgConnection::connect(url)
        .await
        .unwrap_or_else(|e| panic!("{DATABASE_URL}={url} cannot be reached: {e}"))
}

/// A gateway's data: its database URL (the same across restarts) and a directory for its
/// files (the `SQLite` database, config files).
pub struct Data {
    /// The store it is.
    pub backend: Backend,
    /// What `--database` is given.
    pub url: String,
    /// A directory that lives as long as the data.
    pub dir: TempDir,
    /// The direct connection, made on first use (dropped before the schema).
    db: tokio::sync::OnceCell<Db>,
    /// Drops the `PostgreSQL` schema when dropped.
    schema: Option<Schema>,
}

impl Data {
    /// Fresh, empty data on this backend (the store creates its tables when it opens).
    pub async fn new(backend: Backend) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (url, schema) = match backend {
            Backend::Sqlite => (
                format!("sqlite://{}", dir.path().join("gw.db").display()),
                None,
            ),
            Backend::Postgres => {
                let base = database_url().expect("a PostgreSQL test runs with a database");
                let name = format!("tw_{}", uuid::Uuid::new_v4().simple());
                sqlx::query(&format!("CREATE SCHEMA {name}"))
                    .execute(&mut connect(&base).await)
                    .await
                    .unwrap();
                // The schema's name is also the gateway's `application_name`, so a test can
                // find (and end) its connections.
                let sep = if base.contains('?') { '&' } else { '?' };
                let url = format!("{base}{sep}application_name={name}&options[search_path]={name}");
                (url, Some(Schema { base, name }))
            }
        };
        Self {
            backend,
            url,
            dir,
            db: tokio::sync::OnceCell::new(),
            schema,
        }
    }

    /// A direct connection to the database (one pool, made on first use).
    pub async fn db(&self) -> Db {
        self.db
            .get_or_init(|| async {
                match self.backend {
                    Backend::Sqlite => Db::Sqlite(SqlitePool::connect(&self.url).await.unwrap()),
                    Backend::Postgres => {
                        let options: sqlx::postgres::PgConnectOptions = self.url.parse().unwrap();
                        Db::Postgres(
                            sqlx::postgres::PgPoolOptions::new()
                                .max_connections(2)
                                .connect_with(options.application_name("tw_harness"))
                                .await
                                .unwrap(),
                        )
                    }
                }
            })
            .await
            .clone()
    }
}

impl Data {
    /// Ends every `PostgreSQL` connection of the gateways on this data as soon as it appears
    /// (as a server restart or a failover would), for `span`; returns how many it ended.
    pub async fn terminate_connections(&self, span: std::time::Duration) -> i64 {
        let schema = self.schema.as_ref().expect("a PostgreSQL schema");
        let mut admin = connect(&schema.base).await;
        let until = tokio::time::Instant::now() + span;
        let mut ended = 0;
        while tokio::time::Instant::now() < until {
            let n: i64 = sqlx::query_scalar(
                "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE application_name = $1",
            )
            .bind(&schema.name)
            .fetch_one(&mut admin)
            .await
            .unwrap();
            ended += n;
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        ended
    }
}

/// A `PostgreSQL` schema of one test, dropped when this is dropped.
struct Schema {
    /// The test database, without the schema.
    base: String,
    /// `tw_<uuid>`.
    name: String,
}

impl Drop for Schema {
    fn drop(&mut self) {
        // Drop runs inside the test's runtime (perhaps while it unwinds): a thread of its own
        // with a runtime of its own does the async work.
        let (base, name) = (self.base.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let mut admin = PgConnection::connect(&base).await?;
                // A connection a panic left inside a transaction must not hold it up for ever.
                sqlx::raw_sql(&format!(
                    "SET lock_timeout = '10s'; DROP SCHEMA {name} CASCADE"
                ))
                .execute(&mut admin)
                .await
                .map(drop)
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("warning: schema {} was not dropped: {dropped:?}", self.name);
        }
    }
}

/// A direct connection to a gateway's database. Queries are written once for both backends
/// (`$1` placeholders, which `SQLite` reads too); text binds only.
#[derive(Clone)]
pub enum Db {
    /// The `SQLite` file.
    Sqlite(SqlitePool),
    /// The `PostgreSQL` schema (its `search_path` set).
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to whichever pool `$db` holds (typed once per backend).
macro_rules! on_pool {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            Db::Sqlite($pool) => $body,
            Db::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_pool;

impl Db {
    /// Runs one statement.
    pub async fn execute(&self, sql: &str, binds: &[&str]) {
        on_pool!(self, p => {
            let mut q = sqlx::query(sql);
            for b in binds {
                q = q.bind(*b);
            }
            q.execute(p).await.map(drop)
        })
        .unwrap_or_else(|e| panic!("`{sql}`: {e}"));
    }

    /// The one integer `sql` selects in its one row (a `COUNT(*)`, a pid).
    pub async fn int(&self, sql: &str, binds: &[&str]) -> i64 {
        self.maybe_int(sql, binds)
            .await
            .unwrap_or_else(|| panic!("`{sql}`: no value"))
    }

    /// The integer `sql` selects, `None` when no row or `NULL` (a `MIN` of nothing).
    pub async fn maybe_int(&self, sql: &str, binds: &[&str]) -> Option<i64> {
        on_pool!(self, p => {
            let mut q = sqlx::query_scalar::<_, Option<i64>>(sql);
            for b in binds {
                q = q.bind(*b);
            }
            q.fetch_optional(p).await
        })
        .unwrap_or_else(|e| panic!("`{sql}`: {e}"))
        .flatten()
    }

    /// The one integer column `sql` selects, every row.
    pub async fn ints(&self, sql: &str) -> Vec<i64> {
        on_pool!(self, p => sqlx::query_scalar(sql).fetch_all(p).await)
            .unwrap_or_else(|e| panic!("`{sql}`: {e}"))
    }

    /// The text `sql` selects in its first row, `None` when no row or `NULL`.
    pub async fn text(&self, sql: &str, binds: &[&str]) -> Option<String> {
        on_pool!(self, p => {
            let mut q = sqlx::query_scalar::<_, Option<String>>(sql);
            for b in binds {
                q = q.bind(*b);
            }
            q.fetch_optional(p).await
        })
        .unwrap_or_else(|e| panic!("`{sql}`: {e}"))
        .flatten()
    }

    /// The two text columns `sql` selects, every row.
    pub async fn pairs(&self, sql: &str) -> Vec<(String, String)> {
        on_pool!(self, p => sqlx::query_as(sql).fetch_all(p).await)
            .unwrap_or_else(|e| panic!("`{sql}`: {e}"))
    }
}

/// Runs each named test body (`async fn NAME(b: Backend)`) on both backends, as the tests
/// `NAME::sqlite` and `NAME::postgres` (see the module's rule for when the latter skips).
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                use crate::harness::Backend;

                #[tokio::test]
                async fn sqlite() {
                    super::$name(Backend::Sqlite).await;
                }

                #[tokio::test]
                async fn postgres() {
                    if crate::harness::database_url().is_some() {
                        super::$name(Backend::Postgres).await;
                    }
                }
            }
        )*
    };
}
pub(crate) use on_both;
