//! Rows as records, decoded the same way on every backend: the column lists and the stranded
//! rule the reads share, and one mapper per record. A backend's row type only says how it reads
//! the handful of column types the store uses ([`Cells`]).

use sqlx::Row;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;

use super::query::WorkerRecord;
use super::{LoggedEvent, QueuedRow, SessionRecord, StoredEvent, TurnRecord};
use crate::api::UnknownName;
use crate::api::admin::{ReplicaInfo, TurnInfo};
use crate::api::state::ReplicaState;
use crate::ids::{MessageId, ReplicaId, SessionId, TurnId, WorkerId};

type Result<T> = std::result::Result<T, sqlx::Error>;

/// The column types the store reads, by name.
pub(super) trait Cells {
    /// A text column.
    fn text(&self, col: &str) -> Result<String>;
    /// A nullable text column.
    fn opt_text(&self, col: &str) -> Result<Option<String>>;
    /// An integer column.
    fn int(&self, col: &str) -> Result<i64>;
    /// A nullable integer column.
    fn opt_int(&self, col: &str) -> Result<Option<i64>>;
    /// A nullable 32-bit integer column (exit codes, signals).
    fn opt_i32(&self, col: &str) -> Result<Option<i32>>;
    /// A boolean column.
    fn flag(&self, col: &str) -> Result<bool>;
    /// A nullable boolean column.
    fn opt_flag(&self, col: &str) -> Result<Option<bool>>;
}

macro_rules! cells {
    ($row:ty) => {
        impl Cells for $row {
            fn text(&self, col: &str) -> Result<String> {
                self.try_get(col)
            }
            fn opt_text(&self, col: &str) -> Result<Option<String>> {
                self.try_get(col)
            }
            fn int(&self, col: &str) -> Result<i64> {
                self.try_get(col)
            }
            fn opt_int(&self, col: &str) -> Result<Option<i64>> {
                self.try_get(col)
            }
            fn opt_i32(&self, col: &str) -> Result<Option<i32>> {
                self.try_get(col)
            }
            fn flag(&self, col: &str) -> Result<bool> {
                self.try_get(col)
            }
            fn opt_flag(&self, col: &str) -> Result<Option<bool>> {
                self.try_get(col)
            }
        }
    };
}

cells!(SqliteRow);
cells!(PgRow);

fn unknown(col: &str, e: UnknownName) -> sqlx::Error {
    sqlx::Error::ColumnDecode {
        index: col.to_owned(),
        source: Box::new(e),
    }
}

/// A column holding a wire name (a state, an outcome, a code), read as its enum: a name this
/// version does not know is a decode error, never a silent default.
pub(super) fn wire<T>(r: &impl Cells, col: &str) -> Result<T>
where
    T: std::str::FromStr<Err = UnknownName>,
{
    r.text(col)?.parse().map_err(|e| unknown(col, e))
}

/// [`wire`] for a nullable column.
pub(super) fn wire_opt<T>(r: &impl Cells, col: &str) -> Result<Option<T>>
where
    T: std::str::FromStr<Err = UnknownName>,
{
    r.opt_text(col)?
        .map(|s| s.parse().map_err(|e| unknown(col, e)))
        .transpose()
}

/// `(name, count)` rows as counts by enum value.
pub(super) fn counts<T>(rows: Vec<(String, i64)>) -> Result<Vec<(T, i64)>>
where
    T: std::str::FromStr<Err = UnknownName>,
{
    rows.into_iter()
        .map(|(name, n)| Ok((name.parse().map_err(|e| unknown("0", e))?, n)))
        .collect()
}

/// The stranded rule of [`crate::store::query`], over `turns t`, with `{now}` filled in.
const STRANDED: &str = "(t.ended_at IS NULL AND ( \
    (t.worker_id IS NOT NULL AND EXISTS (SELECT 1 FROM workers w WHERE w.worker_id = t.worker_id \
        AND w.generation = t.worker_generation AND w.exited_at IS NOT NULL)) \
    OR (t.state IN ('dispatched', 'streaming') AND t.stall_ms IS NOT NULL AND t.last_progress_at + t.stall_ms < {now}) \
    OR (t.deadline_at IS NOT NULL AND t.deadline_at < {now}) \
    OR (t.state = 'queued' AND t.queue_deadline_at IS NOT NULL AND t.queue_deadline_at < {now})))";

/// The stranded rule at `now`.
pub(super) fn stranded_sql(now: i64) -> String {
    STRANDED.replace("{now}", &now.to_string())
}

/// A session's columns, as [`session_from`] reads them.
pub(super) const SESSION_COLS: &str = "id, agent_id, thread, token, created_at, last_activity, \
    expires_at, deleted_at, pruned_through, last_seq";
/// A turn's columns on the hot path, as [`turn_from`] reads them.
pub(super) const TURN_COLS: &str =
    "id, session_id, agent_id, message_id, content, state, worker_id, created_at, ended_at, code";
/// A worker generation's columns, as [`worker_from`] reads them.
pub(super) const WORKER_COLS: &str = "worker_id, generation, pid, agent_id, session_id, state, \
    started_at, ready_at, last_heartbeat_at, last_progress_at, current_turn_id, turns_served, \
    exit_code, signal, exited_at, intentional, exit_reason, stderr_tail, replica_id";

/// A turn's columns for the admin side at `now` (`turns t`), as [`turn_info_from`] reads them.
/// Its replica is its worker generation's (a primary-key lookup; `NULL` while queued).
pub(super) fn turn_cols(now: i64) -> String {
    format!(
        "t.id, t.session_id, t.agent_id, t.message_id, t.content, t.state, t.worker_id, \
         t.worker_generation, t.created_at, t.dispatched_at, t.first_output_at, t.last_progress_at, \
         t.deadline_at, t.stall_ms, t.ended_at, t.outcome, t.code, t.error, {} AS stranded, \
         (SELECT w.replica_id FROM workers w WHERE w.worker_id = t.worker_id \
          AND w.generation = t.worker_generation) AS replica_id",
        stranded_sql(now)
    )
}

/// A session row.
pub(super) fn session_from(r: &impl Cells) -> Result<SessionRecord> {
    Ok(SessionRecord {
        id: SessionId(r.text("id")?),
        agent_id: r.text("agent_id")?,
        thread: r.opt_text("thread")?,
        token: r.text("token")?,
        created_at: r.int("created_at")?,
        last_activity: r.int("last_activity")?,
        expires_at: r.int("expires_at")?,
        deleted_at: r.opt_int("deleted_at")?,
        pruned_through: r.int("pruned_through")?,
        last_seq: r.int("last_seq")?,
    })
}

/// A turn row, as the hot path reads it.
pub(super) fn turn_from(r: &impl Cells) -> Result<TurnRecord> {
    Ok(TurnRecord {
        id: TurnId(r.text("id")?),
        session_id: SessionId(r.text("session_id")?),
        agent_id: r.text("agent_id")?,
        message_id: MessageId(r.text("message_id")?),
        content: r.text("content")?,
        state: wire(r, "state")?,
        worker_id: r.opt_text("worker_id")?.map(WorkerId),
        created_at: r.int("created_at")?,
        ended_at: r.opt_int("ended_at")?,
        code: wire_opt(r, "code")?,
    })
}

/// A session event row.
pub(super) fn event_from(r: &impl Cells) -> Result<StoredEvent> {
    Ok(StoredEvent {
        session_id: SessionId(r.text("session_id")?),
        seq: r.int("seq")?,
        turn_id: r.opt_text("turn_id")?.map(TurnId),
        kind: wire(r, "kind")?,
        data: r.text("data")?,
    })
}

/// A worker generation row.
pub(super) fn worker_from(r: &impl Cells) -> Result<WorkerRecord> {
    Ok(WorkerRecord {
        worker_id: WorkerId(r.text("worker_id")?),
        generation: r.int("generation")? as u32,
        pid: r.opt_int("pid")?.unwrap_or_default() as u32,
        agent_id: r.text("agent_id")?,
        session_id: SessionId(r.text("session_id")?),
        state: wire(r, "state")?,
        started_at: r.int("started_at")?,
        ready_at: r.opt_int("ready_at")?,
        last_heartbeat_at: r.opt_int("last_heartbeat_at")?,
        last_progress_at: r.opt_int("last_progress_at")?,
        current_turn_id: r.opt_text("current_turn_id")?.map(TurnId),
        turns_served: r.int("turns_served")?,
        exit_code: r.opt_i32("exit_code")?,
        signal: r.opt_i32("signal")?,
        exited_at: r.opt_int("exited_at")?,
        intentional: r.opt_flag("intentional")?,
        exit_reason: r.opt_text("exit_reason")?,
        stderr_tail: r.opt_text("stderr_tail")?,
        replica_id: r.opt_text("replica_id")?.map(ReplicaId),
    })
}

/// A turn row for the admin side ([`turn_cols`]).
pub(super) fn turn_info_from(r: &impl Cells) -> Result<TurnInfo> {
    Ok(TurnInfo {
        turn_id: TurnId(r.text("id")?),
        session_id: SessionId(r.text("session_id")?),
        agent_id: r.text("agent_id")?,
        message_id: MessageId(r.text("message_id")?),
        content: Some(r.text("content")?),
        state: wire(r, "state")?,
        worker_id: r.opt_text("worker_id")?.map(WorkerId),
        worker_generation: r.opt_int("worker_generation")?.map(|g| g as u32),
        replica_id: r.opt_text("replica_id")?.map(ReplicaId),
        created_at: r.int("created_at")?,
        dispatched_at: r.opt_int("dispatched_at")?,
        first_output_at: r.opt_int("first_output_at")?,
        last_progress_at: r.opt_int("last_progress_at")?,
        deadline_at: r.opt_int("deadline_at")?,
        stall_ms: r.opt_int("stall_ms")?,
        ended_at: r.opt_int("ended_at")?,
        outcome: wire_opt(r, "outcome")?,
        code: wire_opt(r, "code")?,
        error: r.opt_text("error")?,
        stranded: r.flag("stranded")?,
    })
}

/// An admin log row.
pub(super) fn admin_from(r: &impl Cells) -> Result<LoggedEvent> {
    Ok(LoggedEvent {
        seq: r.int("seq")?,
        kind: r.text("kind")?,
        data: r.text("data")?,
    })
}

/// The replicas list's query: every replica not stopped cleanly, with its live workers and the
/// sessions it owns, oldest first.
pub(super) const REPLICAS: &str = "SELECT r.id, r.name, r.host, r.pid, r.version, r.started_at, \
    r.heartbeat_at, r.lease_until, r.state, \
    (SELECT COUNT(*) FROM workers w WHERE w.replica_id = r.id AND w.exited_at IS NULL) AS workers, \
    (SELECT COUNT(*) FROM sessions s WHERE s.owner = r.id) AS sessions \
    FROM replicas r WHERE r.state <> 'stopped' ORDER BY r.started_at, r.id";

/// A [`REPLICAS`] row as of `now`: lost once marked so or its lease has run out, else
/// stopping or live.
pub(super) fn replica_from(r: &impl Cells, now: i64) -> Result<ReplicaInfo> {
    let lease_until = r.int("lease_until")?;
    let state = match r.text("state")?.as_str() {
        "lost" => ReplicaState::Lost,
        _ if lease_until < now => ReplicaState::Lost,
        "stopping" => ReplicaState::Stopping,
        _ => ReplicaState::Live,
    };
    Ok(ReplicaInfo {
        replica_id: ReplicaId(r.text("id")?),
        name: r.text("name")?,
        host: r.text("host")?,
        pid: r.int("pid")? as u32,
        version: r.text("version")?,
        started_at: r.int("started_at")?,
        heartbeat_at: r.int("heartbeat_at")?,
        lease_until,
        state,
        workers: r.int("workers")?,
        sessions: r.int("sessions")?,
    })
}

/// Worker generations with no recorded exit, with where and when their process started.
pub(super) const LIVE_WORKERS: &str = "SELECT worker_id, generation, pid, host, boot_id, \
    start_ticks, replica_id FROM workers WHERE exited_at IS NULL";

/// A [`LIVE_WORKERS`] row.
pub(super) fn live_worker_from(r: &impl Cells) -> Result<super::LiveWorker> {
    let origin = match (
        r.opt_text("host")?,
        r.opt_text("boot_id")?,
        r.opt_int("start_ticks")?,
    ) {
        (Some(host), Some(boot_id), Some(t)) => Some(super::ProcessOrigin {
            host,
            boot_id,
            start_ticks: t as u64,
        }),
        _ => None,
    };
    Ok(super::LiveWorker {
        worker_id: WorkerId(r.text("worker_id")?),
        generation: r.int("generation")? as u32,
        pid: r.opt_int("pid")?.map(|p| p as u32),
        origin,
        replica_id: r.opt_text("replica_id")?.map(ReplicaId),
    })
}

/// Gives up the idle sessions of replicas gone (lost or stopped): nothing is open there, so
/// nobody needs to claim them, and they no longer count as that replica's.
pub(super) const FREE_IDLE_SESSIONS: &str = "UPDATE sessions SET owner = NULL \
    WHERE owner IN (SELECT id FROM replicas WHERE state IN ('lost', 'stopped')) \
    AND NOT EXISTS (SELECT 1 FROM turns t WHERE t.session_id = sessions.id AND t.ended_at IS NULL) \
    AND NOT EXISTS (SELECT 1 FROM workers w WHERE w.session_id = sessions.id AND w.exited_at IS NULL)";

/// Forgets replicas gone (lost or stopped) before the cutoff (bind: it) that own no session
/// and run no worker any more: a crash-looping replica must not fill the list for good.
pub(super) const FORGET_REPLICAS: &str = "DELETE FROM replicas WHERE state IN ('lost', 'stopped') \
    AND heartbeat_at < $1 \
    AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.owner = replicas.id) \
    AND NOT EXISTS (SELECT 1 FROM workers w WHERE w.replica_id = replicas.id AND w.exited_at IS NULL)";

/// A session's queued turns, in its order (bind: the session).
pub(super) const QUEUED_TURNS: &str = "SELECT id, message_id, content, seq FROM turns \
    WHERE session_id = $1 AND state = 'queued' AND ended_at IS NULL ORDER BY seq";

/// The last place given in a session's order (bind: the session).
pub(super) const LAST_TURN_SEQ: &str =
    "SELECT COALESCE(MAX(turn_seq), 0) FROM sessions WHERE id = $1";

/// Sessions a replica should claim (bind: the replica, the limit): unowned with
/// a queued turn, or owned by another replica known lost or stopped with an open turn or
/// worker. Leases are not judged here (`MarkLost` judges them, by the database's clock). An
/// unowned session's turn that reached a worker is the stranded sweeper's, which ends it with
/// the code its clocks call for.
pub(super) const CLAIMABLE: &str = "SELECT s.id FROM sessions s \
    LEFT JOIN replicas r ON r.id = s.owner \
    WHERE (s.owner IS NULL AND s.deleted_at IS NULL \
           AND EXISTS (SELECT 1 FROM turns t WHERE t.session_id = s.id AND t.state = 'queued' \
           AND t.ended_at IS NULL)) \
       OR (s.owner IS NOT NULL AND s.owner <> $1 \
           AND (r.id IS NULL OR r.state IN ('lost', 'stopped')) \
           AND (EXISTS (SELECT 1 FROM turns t WHERE t.session_id = s.id AND t.ended_at IS NULL) \
             OR EXISTS (SELECT 1 FROM workers w WHERE w.session_id = s.id AND w.exited_at IS NULL))) \
    ORDER BY s.id LIMIT $2";

/// Sessions a replica owns with a turn queued since before a time (bind: the replica, the
/// time).
pub(super) const OWNED_WITH_QUEUED: &str = "SELECT s.id FROM sessions s WHERE s.owner = $1 \
    AND EXISTS (SELECT 1 FROM turns t WHERE t.session_id = s.id AND t.state = 'queued' \
    AND t.ended_at IS NULL AND t.created_at < $2)";

/// A session's owner, epoch, and whether that owner is live (bind: the session, now).
pub(super) const OWNER: &str = "SELECT s.owner, s.owner_epoch, \
    (r.state IN ('live', 'stopping') AND r.lease_until >= $2) AS live \
    FROM sessions s LEFT JOIN replicas r ON r.id = s.owner WHERE s.id = $1";

/// A [`QUEUED_TURNS`] row.
pub(super) fn queued_from(r: &impl Cells) -> Result<QueuedRow> {
    Ok(QueuedRow {
        turn_id: TurnId(r.text("id")?),
        message_id: MessageId(r.text("message_id")?),
        content: r.text("content")?,
        seq: r.int("seq")?,
    })
}

/// The ownership reads of [`super::Store`] as free functions over a backend's pool, the same
/// text on every backend (its rows are [`Cells`]); each backend's `Store` impl delegates.
macro_rules! ownership_reads {
    ($pool:ty) => {
        /// See [`crate::store::Store::queued_turns`].
        pub(super) async fn queued_turns(
            pool: &$pool,
            session: &crate::ids::SessionId,
        ) -> Result<(Vec<crate::store::QueuedRow>, i64), sqlx::Error> {
            // The last place first: a turn accepted between the two reads is then in the rows
            // (and counted by them), never counted without being read.
            let last: i64 = sqlx::query_scalar(crate::store::rows::LAST_TURN_SEQ)
                .bind(session.as_str())
                .fetch_one(pool)
                .await?;
            let rows = sqlx::query(crate::store::rows::QUEUED_TURNS)
                .bind(session.as_str())
                .fetch_all(pool)
                .await?;
            let turns = rows
                .iter()
                .map(crate::store::rows::queued_from)
                .collect::<Result<Vec<_>, _>>()?;
            let last = turns.iter().map(|t| t.seq).fold(last, i64::max);
            Ok((turns, last))
        }

        /// See [`crate::store::Store::claimable`].
        pub(super) async fn claimable(
            pool: &$pool,
            me: &crate::ids::ReplicaId,
            limit: i64,
        ) -> Result<Vec<crate::ids::SessionId>, sqlx::Error> {
            let ids: Vec<String> = sqlx::query_scalar(crate::store::rows::CLAIMABLE)
                .bind(me.as_str())
                .bind(limit)
                .fetch_all(pool)
                .await?;
            Ok(ids.into_iter().map(crate::ids::SessionId).collect())
        }

        /// See [`crate::store::Store::owned_with_queued`].
        pub(super) async fn owned_with_queued(
            pool: &$pool,
            me: &crate::ids::ReplicaId,
            before: i64,
        ) -> Result<Vec<crate::ids::SessionId>, sqlx::Error> {
            let ids: Vec<String> = sqlx::query_scalar(crate::store::rows::OWNED_WITH_QUEUED)
                .bind(me.as_str())
                .bind(before)
                .fetch_all(pool)
                .await?;
            Ok(ids.into_iter().map(crate::ids::SessionId).collect())
        }

        /// See [`crate::store::Store::owner`].
        pub(super) async fn owner(
            pool: &$pool,
            session: &crate::ids::SessionId,
            now: i64,
        ) -> Result<Option<(crate::ids::ReplicaId, i64, bool)>, sqlx::Error> {
            use crate::store::rows::Cells as _;
            let row = sqlx::query(crate::store::rows::OWNER)
                .bind(session.as_str())
                .bind(now)
                .fetch_optional(pool)
                .await?;
            let Some(row) = row else { return Ok(None) };
            let Some(owner) = row.opt_text("owner")? else {
                return Ok(None);
            };
            let live = row.opt_flag("live")?.unwrap_or(false);
            Ok(Some((
                crate::ids::ReplicaId(owner),
                row.int("owner_epoch")?,
                live,
            )))
        }
    };
}
pub(super) use ownership_reads;

/// Records a stream ticket (bind: ticket, session or NULL, holder, expiry).
pub(super) const ISSUE_TICKET: &str = "INSERT INTO stream_tickets (ticket, session_id, holder, \
    expires_at) VALUES ($1, $2, $3, $4)";

/// Uses a stream ticket up (bind: the ticket): it is gone afterwards, whatever it was.
pub(super) const REDEEM_TICKET: &str = "DELETE FROM stream_tickets WHERE ticket = $1 \
    RETURNING session_id, holder, expires_at";

/// Forgets stream tickets that expired, never used (bind: now), a bounded batch at a time.
pub(super) const FORGET_TICKETS: &str = "DELETE FROM stream_tickets WHERE ticket IN \
    (SELECT ticket FROM stream_tickets WHERE expires_at < $1 ORDER BY expires_at LIMIT 5000)";

/// Whether a stream ticket is stored (bind: the ticket).
pub(super) const IS_TICKET: &str = "SELECT COUNT(*) FROM stream_tickets WHERE ticket = $1";
