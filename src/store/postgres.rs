//! The `PostgreSQL` backend (`postgres://` or `postgresql://`): one database that several
//! gateways can share, with the `SQLite` backend's semantics change for change.
//!
//! **A batch** is one transaction in `READ COMMITTED`, its changes applied in order
//! (`writes.rs` says how it keeps round trips few). Conditional writes (`EndTurn`, `Dispatch`,
//! `WorkerExited`, …) are `UPDATE … WHERE ended_at IS NULL` and the like: a second writer of
//! the same row waits for the first to commit, re-checks the condition and changes nothing, so
//! the first writer wins exactly once.
//!
//! **Sequence numbers are handed out in commit order**, so a reader that has seen number N
//! never later finds a committed number below N (a `bigserial` would not do: two transactions
//! take numbers in one order and may commit in the other).
//! - A session's events: the batch first locks the rows of the sessions it writes to
//!   (`SELECT … FOR NO KEY UPDATE`, all at once in id order, so two batches never deadlock),
//!   counts on from their `last_seq` in memory and writes it back before the commit; a second
//!   writer to the same session waits for the first's commit and counts on from its number.
//! - The admin log: one counter row, `admin_seq`, advanced by the number of admin events the
//!   batch logs (`UPDATE admin_seq SET last = last + n RETURNING last`) as its last statement
//!   before the commit. Its row lock serializes the transactions that log admin events, and is
//!   held only from that statement to the commit. `last` also remembers the last number ever
//!   given when retention has pruned the log.
//!
//! **Consistent reads** (`events_in_flight`, `snapshot`) run in a read-only `REPEATABLE READ`
//! transaction: every statement in it sees the same committed state.
//!
//! Writes use their own small pool, so admin reads never make the journal wait for a
//! connection. Text columns cannot hold NUL, which `SQLite`'s can: free text (a message, a
//! worker's output or stderr) is stored with NUL replaced by U+FFFD.

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{Connection, PgConnection, PgPool};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use super::query::RejectionRow;
use super::rows::{SESSION_COLS, TURN_COLS, event_from, session_from, turn_from};
use super::{
    Batch, Change, LiveWorker, LoggedEvent, Overview, SessionRecord, Snapshot, Store, StoreError,
    StoredEvent, TurnQuery, TurnRecord, WorkerQuery, WorkerRecord,
};
use crate::api::admin::{ReplicaInfo, TurnInfo};
use crate::ids::{SessionId, TurnId, WorkerId};

mod reads;
mod writes;

/// Connections for reads (admin lists, streams catching up).
const READ_CONNECTIONS: u32 = 8;
/// Connections for batches: the journal applies one at a time.
const WRITE_CONNECTIONS: u32 = 2;
/// How long a read or a batch waits for a connection before the store counts as unavailable:
/// short, so the journal reports an outage (and retries) rather than sit in a long wait.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);

/// A store in a `PostgreSQL` database (or the schema its URL's `search_path` names).
pub struct PgStore {
    reads: PgPool,
    writer: PgPool,
    /// Names this process's notifications, so its own listener can tell them from a peer's.
    origin: String,
    /// The batch whose COMMIT answer was lost, until the journal tries it again.
    unsettled: std::sync::Mutex<Option<Unsettled>>,
}

/// A batch that may or may not have committed (its COMMIT's answer was lost).
struct Unsettled {
    /// The batch itself: held, so the journal's retry (the same allocation) is recognized.
    batch: Arc<[Change]>,
    /// The token it recorded.
    token: String,
    /// What it did, had it committed.
    result: Batch,
}

/// The channel a commit's session events are announced on: `ORIGIN SESSION FIRST LAST`.
pub const EVENTS_CHANNEL: &str = "turnwatch_events";
/// The channel a commit's admin events are announced on: `ORIGIN FIRST LAST`.
pub const ADMIN_CHANNEL: &str = "turnwatch_admin";

impl PgStore {
    /// Remembers a batch whose COMMIT answer was lost; the error says to try it again (the
    /// journal does, with the same batch).
    fn unsettle(&self, u: Unsettled) -> StoreError {
        *self
            .unsettled
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(u);
        StoreError::Database(sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "the answer to a COMMIT was lost",
        )))
    }

    /// Test support: applies `batch` and commits it, then answers as if the COMMIT's answer
    /// had been lost (`committed`), or fails as if it had not committed, without writing.
    #[cfg(test)]
    pub(crate) async fn apply_losing_answer(
        &self,
        batch: &Arc<[Change]>,
        committed: bool,
    ) -> StoreError {
        let token = uuid::Uuid::new_v4().simple().to_string();
        let result = if committed {
            let applied = writes::apply(&self.writer, batch, &self.origin, &token).await;
            let Ok(r) = applied else {
                panic!("the batch applies")
            };
            r
        } else {
            Batch::default()
        };
        self.unsettle(Unsettled {
            batch: Arc::clone(batch),
            token,
            result,
        })
    }

    /// Holds this database's start-up lock until the connection it returns is dropped: one
    /// replica at a time checks its peers, recovers and registers.
    ///
    /// # Errors
    /// The server could not be reached.
    pub async fn startup_lock(&self) -> Result<PgConnection, StoreError> {
        // Out of the pool: the lock lives as long as this connection's session.
        let mut conn = self.writer.acquire().await?.detach();
        sqlx::query("SELECT pg_advisory_lock(hashtext(current_schema() || ' turnwatch start-up'))")
            .execute(&mut conn)
            .await?;
        Ok(conn)
    }

    /// A pool for reads and notifications.
    pub fn pool(&self) -> &PgPool {
        &self.reads
    }

    /// What this process's notifications of commits start with.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// A new listening connection (`LISTEN/NOTIFY`).
    ///
    /// # Errors
    /// The server could not be reached.
    pub async fn listener(&self) -> Result<sqlx::postgres::PgListener, StoreError> {
        Ok(sqlx::postgres::PgListener::connect_with(&self.reads).await?)
    }
}

/// Whether a `PostgreSQL` error (by its SQLSTATE) may pass if the same write is tried again: a
/// lost or refused connection (class 08), the server shutting down or starting (57P01–57P03),
/// too many connections (53300), a full disk (53100), a serialization failure (40001) or a
/// deadlock (40P01).
pub fn is_transient_code(code: &str) -> bool {
    code.starts_with("08")
        || matches!(
            code,
            "57P01" | "57P02" | "57P03" | "53300" | "53100" | "40001" | "40P01"
        )
}

/// `postgres://user@host:port/database`: the URL without its password, to name in errors.
fn describe(options: &PgConnectOptions) -> String {
    format!(
        "postgres://{}@{}:{}/{}",
        options.get_username(),
        options.get_host(),
        options.get_port(),
        options.get_database().unwrap_or_default()
    )
}

impl PgStore {
    /// Connects to the database at `url` and migrates it.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url).map_err(|e| StoreError::Connect {
            url: "the postgres:// URL".into(),
            message: e.to_string(),
        })?;
        // One connection first, outside a pool: an unreachable server is named with its own
        // error (a pool would retry a refused connection and report only a timeout).
        let mut conn =
            PgConnection::connect_with(&options)
                .await
                .map_err(|e| StoreError::Connect {
                    url: describe(&options),
                    message: e.to_string(),
                })?;
        let migrator = sqlx::migrate!("migrations/postgres");
        // Each read outside a transaction: on a fresh database its table is missing.
        let found: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations")
            .fetch_one(&mut conn)
            .await
            .unwrap_or(None);
        let written_by: Option<String> =
            sqlx::query_scalar("SELECT version FROM replicas ORDER BY started_at DESC LIMIT 1")
                .fetch_optional(&mut conn)
                .await
                .unwrap_or(None);
        let known = migrator.iter().map(|m| m.version).max().unwrap_or(0);
        super::refuse_newer(found, known, written_by)?;
        migrator.run(&mut conn).await?;
        conn.close().await?;
        let pool = |size| {
            PgPoolOptions::new()
                .max_connections(size)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .connect_lazy_with(options.clone())
        };
        Ok(Self {
            reads: pool(READ_CONNECTIONS),
            writer: pool(WRITE_CONNECTIONS),
            origin: uuid::Uuid::new_v4().simple().to_string(),
            unsettled: std::sync::Mutex::new(None),
        })
    }
}

const EVENT_COLS: &str = "session_id, seq, turn_id, kind, data";

fn events_from(rows: &[PgRow]) -> Result<Vec<StoredEvent>, sqlx::Error> {
    rows.iter().map(event_from).collect()
}

#[async_trait]
impl Store for PgStore {
    async fn apply(&self, batch: Arc<[Change]>) -> Result<Batch, StoreError> {
        let retry = self
            .unsettled
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take_if(|u| Arc::ptr_eq(&u.batch, &batch));
        if let Some(u) = retry {
            // The same batch again after a lost COMMIT answer: it is applied again only if
            // it did not commit the first time.
            match writes::committed(&self.writer, &u.token).await {
                Ok(true) => return Ok(u.result),
                Ok(false) => {}
                Err(e) => {
                    // Still unknown: never tried again as new, never split, never reported as
                    // failed; asked again at the journal's next try.
                    tracing::warn!(error = %e, "could not ask whether a batch committed");
                    return Err(self.unsettle(u));
                }
            }
        }
        let token = uuid::Uuid::new_v4().simple().to_string();
        match writes::apply(&self.writer, &batch, &self.origin, &token).await {
            Ok(result) => Ok(result),
            Err(writes::Failed::Refused(e)) => Err(e.into()),
            Err(writes::Failed::Unknown(e, result)) => {
                tracing::warn!(error = %e, "the answer to a COMMIT was lost; asking before trying again");
                Err(self.unsettle(Unsettled {
                    batch,
                    token,
                    result,
                }))
            }
        }
    }

    fn postgres(&self) -> Option<&PgStore> {
        Some(self)
    }

    async fn session(&self, id: &SessionId) -> Result<Option<SessionRecord>, StoreError> {
        let q = format!("SELECT {SESSION_COLS} FROM sessions WHERE id = $1");
        let row = sqlx::query(&q)
            .bind(id.as_str())
            .fetch_optional(&self.reads)
            .await?;
        Ok(row.as_ref().map(session_from).transpose()?)
    }

    async fn session_by_thread(
        &self,
        agent_id: &str,
        thread: &str,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let q = format!(
            "SELECT {SESSION_COLS} FROM sessions WHERE agent_id = $1 AND thread = $2 \
             AND deleted_at IS NULL ORDER BY created_at DESC LIMIT 1"
        );
        let row = sqlx::query(&q)
            .bind(agent_id)
            .bind(writes::text(thread))
            .fetch_optional(&self.reads)
            .await?;
        Ok(row.as_ref().map(session_from).transpose()?)
    }

    async fn turn(&self, id: &TurnId) -> Result<Option<TurnRecord>, StoreError> {
        let q = format!("SELECT {TURN_COLS} FROM turns WHERE id = $1");
        let row = sqlx::query(&q)
            .bind(id.as_str())
            .fetch_optional(&self.reads)
            .await?;
        Ok(row.as_ref().map(turn_from).transpose()?)
    }

    async fn events_after(
        &self,
        session: &SessionId,
        after: i64,
        limit: i64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let q = format!(
            "SELECT {EVENT_COLS} FROM events WHERE session_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
        );
        let rows = sqlx::query(&q)
            .bind(session.as_str())
            .bind(after)
            .bind(limit)
            .fetch_all(&self.reads)
            .await?;
        Ok(events_from(&rows)?)
    }

    async fn events_in_flight(
        &self,
        session: &SessionId,
    ) -> Result<(i64, Vec<StoredEvent>), StoreError> {
        // One snapshot: the high-water mark and the events under it agree.
        let mut tx = self.reads.begin_with(reads::CONSISTENT_READ).await?;
        let last: i64 = sqlx::query_scalar("SELECT last_seq FROM sessions WHERE id = $1")
            .bind(session.as_str())
            .fetch_optional(&mut *tx)
            .await?
            .unwrap_or(0);
        let rows = sqlx::query(
            // A turn's end and its `complete` commit together: in this snapshot, the turns
            // with no `complete` are the ones still open.
            "SELECT e.session_id, e.seq, e.turn_id, e.kind, e.data \
             FROM turns t JOIN events e ON e.turn_id = t.id \
             WHERE t.session_id = $1 AND t.ended_at IS NULL AND e.seq <= $2 \
             ORDER BY e.seq",
        )
        .bind(session.as_str())
        .bind(last)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok((last, events_from(&rows)?))
    }

    async fn open_turns(&self) -> Result<Vec<TurnRecord>, StoreError> {
        let q =
            format!("SELECT {TURN_COLS} FROM turns WHERE ended_at IS NULL ORDER BY created_at, id");
        let rows = sqlx::query(&q).fetch_all(&self.reads).await?;
        Ok(rows.iter().map(turn_from).collect::<Result<_, _>>()?)
    }

    async fn live_workers(&self) -> Result<Vec<LiveWorker>, StoreError> {
        Ok(reads::live_workers(&self.reads).await?)
    }

    async fn is_ticket(&self, ticket: &str) -> Result<bool, StoreError> {
        let n: i64 = sqlx::query_scalar(super::rows::IS_TICKET)
            .bind(ticket)
            .fetch_one(&self.reads)
            .await?;
        Ok(n > 0)
    }

    async fn next_generation(&self, worker: &WorkerId) -> Result<u32, StoreError> {
        let max: Option<i64> =
            sqlx::query_scalar("SELECT MAX(generation) FROM workers WHERE worker_id = $1")
                .bind(worker.as_str())
                .fetch_one(&self.reads)
                .await?;
        Ok(max.map_or(1, |g| g as u32 + 1))
    }

    async fn overview(&self, now: i64) -> Result<Overview, StoreError> {
        Ok(reads::overview(&self.reads, now).await?)
    }

    async fn workers(&self, q: &WorkerQuery) -> Result<Vec<WorkerRecord>, StoreError> {
        Ok(reads::workers(&self.reads, q).await?)
    }

    async fn turns(&self, q: &TurnQuery, now: i64) -> Result<Vec<TurnInfo>, StoreError> {
        Ok(reads::turns(&self.reads, q, now).await?)
    }

    async fn turn_row(&self, id: &TurnId, now: i64) -> Result<Option<TurnInfo>, StoreError> {
        Ok(reads::turn_row(&self.reads, id, now).await?)
    }

    async fn turn_timeline(
        &self,
        id: &TurnId,
    ) -> Result<(Vec<LoggedEvent>, Vec<StoredEvent>), StoreError> {
        let admin = reads::admin_events_of_turn(&self.reads, id).await?;
        let q = format!("SELECT {EVENT_COLS} FROM events WHERE turn_id = $1 ORDER BY seq");
        let rows = sqlx::query(&q)
            .bind(id.as_str())
            .fetch_all(&self.reads)
            .await?;
        Ok((admin, events_from(&rows)?))
    }

    async fn rejections(
        &self,
        worker: &WorkerId,
        limit: i64,
    ) -> Result<Vec<RejectionRow>, StoreError> {
        Ok(reads::rejections(&self.reads, worker, limit).await?)
    }

    async fn admin_log_bounds(&self) -> Result<(i64, i64), StoreError> {
        Ok(reads::admin_log_bounds(&self.reads).await?)
    }

    async fn admin_events_after(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<LoggedEvent>, StoreError> {
        Ok(reads::admin_events_after(&self.reads, after, limit).await?)
    }

    async fn replicas(&self, now: i64) -> Result<Vec<ReplicaInfo>, StoreError> {
        Ok(reads::replicas(&self.reads, now).await?)
    }

    async fn queued_turns(
        &self,
        session: &SessionId,
    ) -> Result<(Vec<super::QueuedRow>, i64), StoreError> {
        Ok(reads::queued_turns(&self.reads, session).await?)
    }

    async fn claimable(
        &self,
        me: &crate::ids::ReplicaId,
        limit: i64,
    ) -> Result<Vec<SessionId>, StoreError> {
        Ok(reads::claimable(&self.reads, me, limit).await?)
    }

    async fn owned_with_queued(
        &self,
        me: &crate::ids::ReplicaId,
        before: i64,
    ) -> Result<Vec<SessionId>, StoreError> {
        Ok(reads::owned_with_queued(&self.reads, me, before).await?)
    }

    async fn owner(
        &self,
        session: &SessionId,
        now: i64,
    ) -> Result<Option<(crate::ids::ReplicaId, i64, bool)>, StoreError> {
        Ok(reads::owner(&self.reads, session, now).await?)
    }

    async fn snapshot(&self, now: i64) -> Result<Snapshot, StoreError> {
        Ok(reads::snapshot(&self.reads, now).await?)
    }
}
