//! The `SQLite` backend (WAL, `synchronous = NORMAL`): the embedded default.

use async_trait::async_trait;
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
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

/// A store in one `SQLite` file: reads through a small sqlx pool, writes through one
/// synchronous connection.
pub struct SqliteStore {
    pool: SqlitePool,
    writer: Arc<Writer>,
    checkpoints: tokio::task::AbortHandle,
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.checkpoints.abort();
    }
}

/// How often the WAL is copied back into the database file, off the writer's path.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);
/// How long one try of a batch waits for a lock another process holds.
const WRITER_BUSY_TIMEOUT: Duration = Duration::from_secs(1);
/// WAL pages after which the writer checkpoints itself: a backstop for when the background
/// checkpoints fall behind.
const WRITER_CHECKPOINT_PAGES: i64 = 8000;

/// Checkpoints the WAL in the background. `SQLite` would otherwise checkpoint inside whichever
/// commit crosses 1000 WAL pages, stalling the journal (and every turn waiting on it) for the
/// copy and its fsync; a passive checkpoint on a reader connection runs beside the writer.
/// An idle store is left alone: only commits since the last round are checkpointed.
async fn checkpoint_loop(pool: SqlitePool, writer: Arc<Writer>) {
    let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seen = 0;
    loop {
        tick.tick().await;
        let commits = writer.commits.load(Ordering::Relaxed);
        if commits == std::mem::replace(&mut seen, commits) {
            continue;
        }
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&pool)
            .await
        {
            tracing::warn!(error = %e, "WAL checkpoint failed");
        }
    }
}

/// The writer connection. sqlx's `SQLite` driver runs every statement on its connection's own
/// thread, so a statement costs two thread hops; a batch of a few hundred writes spent most of
/// its time switching. The batch instead runs whole on one blocking thread: one hop per batch.
struct Writer {
    conn: Mutex<rusqlite::Connection>,
    /// Batches committed so far.
    commits: AtomicU64,
}

impl Writer {
    fn open(path: &Path) -> Result<Self, rusqlite::Error> {
        let conn = rusqlite::Connection::open(path)?;
        // Only another process can hold the write lock (this is the one writer, checkpoints
        // are passive): give up on a try after a second, so the journal can say the store is
        // unavailable and retry, rather than sit silent in a long wait.
        conn.busy_timeout(WRITER_BUSY_TIMEOUT)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", true)?;
        conn.pragma_update(None, "wal_autocheckpoint", WRITER_CHECKPOINT_PAGES)?;
        // 16 MiB of page cache (SQLite's default is 2 MiB): with less, the batch re-read index
        // pages from the OS (`pread` was a tenth of the writer's time in `bench p3`).
        conn.pragma_update(None, "cache_size", -16384)?;
        conn.set_prepared_statement_cache_capacity(64);
        Ok(Self {
            conn: Mutex::new(conn),
            commits: AtomicU64::new(0),
        })
    }

    fn apply(&self, batch: &[Change]) -> Result<Batch, rusqlite::Error> {
        let mut conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut out = Batch {
            results: Vec::with_capacity(batch.len()),
            admin: Vec::new(),
        };
        let mut seqs = writes::Seqs::new();
        for w in batch {
            let applied = writes::apply_logged(&tx, &mut seqs, w, &mut out.admin)?;
            out.results.push(applied);
        }
        writes::store_seqs(&tx, &seqs)?;
        tx.commit()?;
        self.commits.fetch_add(1, Ordering::Relaxed);
        Ok(out)
    }
}

impl SqliteStore {
    /// Opens (creating if missing) and migrates the database at `url` (`sqlite://PATH`).
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let file = options.get_filename().to_owned();
        let cannot_open = |message: String| StoreError::Open {
            path: file.display().to_string(),
            message,
        };
        // A missing directory is made, as a service's data directory would be.
        if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty())
            && file != Path::new(":memory:")
        {
            std::fs::create_dir_all(dir)
                .map_err(|e| cannot_open(format!("cannot create {}: {e}", dir.display())))?;
        }
        // A local file needs no liveness ping before each use (one more thread round trip).
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .test_before_acquire(false)
            .connect_with(options.clone())
            .await
            .map_err(|e| cannot_open(e.to_string()))?;
        let migrator = sqlx::migrate!("migrations/sqlite");
        let found: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations")
            .fetch_one(&pool)
            .await
            .unwrap_or(None);
        let written_by: Option<String> =
            sqlx::query_scalar("SELECT version FROM replicas ORDER BY started_at DESC LIMIT 1")
                .fetch_optional(&pool)
                .await
                .unwrap_or(None);
        let known = migrator.iter().map(|m| m.version).max().unwrap_or(0);
        super::refuse_newer(found, known, written_by)?;
        migrator.run(&pool).await?;
        let path = options.get_filename();
        if path == Path::new(":memory:") {
            return Err(StoreError::UnsupportedUrl(url.to_owned()));
        }
        let writer = Arc::new(Writer::open(path)?);
        let checkpoints =
            tokio::spawn(checkpoint_loop(pool.clone(), Arc::clone(&writer))).abort_handle();
        Ok(Self {
            pool,
            writer,
            checkpoints,
        })
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn apply(&self, batch: Arc<[Change]>) -> Result<Batch, StoreError> {
        let writer = Arc::clone(&self.writer);
        let applied = tokio::task::spawn_blocking(move || writer.apply(&batch))
            .await
            .map_err(|e| StoreError::WriterStopped(e.to_string()))?;
        Ok(applied?)
    }

    async fn session(&self, id: &SessionId) -> Result<Option<SessionRecord>, StoreError> {
        let q = format!("SELECT {SESSION_COLS} FROM sessions WHERE id = ?");
        let row = sqlx::query(&q)
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(session_from).transpose()?)
    }

    async fn session_by_thread(
        &self,
        agent_id: &str,
        thread: &str,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let q = format!(
            "SELECT {SESSION_COLS} FROM sessions WHERE agent_id = ? AND thread = ? \
             AND deleted_at IS NULL ORDER BY created_at DESC LIMIT 1"
        );
        let row = sqlx::query(&q)
            .bind(agent_id)
            .bind(thread)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(session_from).transpose()?)
    }

    async fn turn(&self, id: &TurnId) -> Result<Option<TurnRecord>, StoreError> {
        let q = format!("SELECT {TURN_COLS} FROM turns WHERE id = ?");
        let row = sqlx::query(&q)
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(turn_from).transpose()?)
    }

    async fn events_after(
        &self,
        session: &SessionId,
        after: i64,
        limit: i64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT session_id, seq, turn_id, kind, data FROM events \
             WHERE session_id = ? AND seq > ? ORDER BY seq LIMIT ?",
        )
        .bind(session.as_str())
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(event_from).collect::<Result<_, _>>()?)
    }

    async fn events_in_flight(
        &self,
        session: &SessionId,
    ) -> Result<(i64, Vec<StoredEvent>), StoreError> {
        // One read transaction: the high-water mark and the events under it agree.
        let mut tx = self.pool.begin().await?;
        let last: i64 = sqlx::query_scalar("SELECT last_seq FROM sessions WHERE id = ?")
            .bind(session.as_str())
            .fetch_optional(&mut *tx)
            .await?
            .unwrap_or(0);
        let rows = sqlx::query(
            // A turn's end and its `complete` commit together: in this snapshot, the turns
            // with no `complete` are the ones still open.
            "SELECT e.session_id, e.seq, e.turn_id, e.kind, e.data \
             FROM turns t JOIN events e ON e.turn_id = t.id \
             WHERE t.session_id = ?1 AND t.ended_at IS NULL AND e.seq <= ?2 \
             ORDER BY e.seq",
        )
        .bind(session.as_str())
        .bind(last)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok((last, rows.iter().map(event_from).collect::<Result<_, _>>()?))
    }

    async fn open_turns(&self) -> Result<Vec<TurnRecord>, StoreError> {
        let q =
            format!("SELECT {TURN_COLS} FROM turns WHERE ended_at IS NULL ORDER BY created_at, id");
        let rows = sqlx::query(&q).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(turn_from).collect::<Result<_, _>>()?)
    }

    async fn live_workers(&self) -> Result<Vec<LiveWorker>, StoreError> {
        Ok(reads::live_workers(&self.pool).await?)
    }

    async fn overview(&self, now: i64) -> Result<Overview, StoreError> {
        Ok(reads::overview(&self.pool, now).await?)
    }

    async fn workers(&self, q: &WorkerQuery) -> Result<Vec<WorkerRecord>, StoreError> {
        Ok(reads::workers(&self.pool, q).await?)
    }

    async fn turns(&self, q: &TurnQuery, now: i64) -> Result<Vec<TurnInfo>, StoreError> {
        Ok(reads::turns(&self.pool, q, now).await?)
    }

    async fn turn_row(&self, id: &TurnId, now: i64) -> Result<Option<TurnInfo>, StoreError> {
        Ok(reads::turn_row(&self.pool, id, now).await?)
    }

    async fn turn_timeline(
        &self,
        id: &TurnId,
    ) -> Result<(Vec<LoggedEvent>, Vec<StoredEvent>), StoreError> {
        let admin = reads::admin_events_of_turn(&self.pool, id).await?;
        let rows = sqlx::query("SELECT session_id, seq, turn_id, kind, data FROM events WHERE turn_id = ? ORDER BY seq")
            .bind(id.as_str())
            .fetch_all(&self.pool)
            .await?;
        Ok((
            admin,
            rows.iter().map(event_from).collect::<Result<_, _>>()?,
        ))
    }

    async fn rejections(
        &self,
        worker: &WorkerId,
        limit: i64,
    ) -> Result<Vec<RejectionRow>, StoreError> {
        Ok(reads::rejections(&self.pool, worker, limit).await?)
    }

    async fn admin_log_bounds(&self) -> Result<(i64, i64), StoreError> {
        Ok(reads::admin_log_bounds(&self.pool).await?)
    }

    async fn admin_events_after(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<LoggedEvent>, StoreError> {
        Ok(reads::admin_events_after(&self.pool, after, limit).await?)
    }

    async fn replicas(&self, now: i64) -> Result<Vec<ReplicaInfo>, StoreError> {
        Ok(reads::replicas(&self.pool, now).await?)
    }

    async fn queued_turns(
        &self,
        session: &SessionId,
    ) -> Result<(Vec<super::QueuedRow>, i64), StoreError> {
        Ok(reads::queued_turns(&self.pool, session).await?)
    }

    async fn claimable(
        &self,
        me: &crate::ids::ReplicaId,
        limit: i64,
    ) -> Result<Vec<SessionId>, StoreError> {
        Ok(reads::claimable(&self.pool, me, limit).await?)
    }

    async fn owned_with_queued(
        &self,
        me: &crate::ids::ReplicaId,
        before: i64,
    ) -> Result<Vec<SessionId>, StoreError> {
        Ok(reads::owned_with_queued(&self.pool, me, before).await?)
    }

    async fn owner(
        &self,
        session: &SessionId,
        now: i64,
    ) -> Result<Option<(crate::ids::ReplicaId, i64, bool)>, StoreError> {
        Ok(reads::owner(&self.pool, session, now).await?)
    }

    async fn snapshot(&self, now: i64) -> Result<Snapshot, StoreError> {
        Ok(reads::snapshot(&self.pool, now).await?)
    }

    async fn is_ticket(&self, ticket: &str) -> Result<bool, StoreError> {
        let n: i64 = sqlx::query_scalar(super::rows::IS_TICKET)
            .bind(ticket)
            .fetch_one(&self.pool)
            .await?;
        Ok(n > 0)
    }

    async fn next_generation(&self, worker: &WorkerId) -> Result<u32, StoreError> {
        let max: Option<i64> =
            sqlx::query_scalar("SELECT MAX(generation) FROM workers WHERE worker_id = ?")
                .bind(worker.as_str())
                .fetch_one(&self.pool)
                .await?;
        Ok(max.map_or(1, |g| g as u32 + 1))
    }
}
