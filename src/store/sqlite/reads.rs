//! Admin reads: lists answer from indexed, keyset-paginated queries, so they stay fast with
//! 100,000 turns in the store.

use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite, SqlitePool};

use super::super::query::{RejectionRow, split_cursor};
use super::super::{
    LiveWorker, LoggedEvent, Overview, ProcessOrigin, Snapshot, TurnQuery, WorkerQuery,
    WorkerRecord,
};
use crate::api::admin::{ReplicaInfo, TurnInfo};
use crate::api::state::ReplicaState;
use crate::api::state::{TurnFilter, TurnSet, WorkerFilter, WorkerSet};
use crate::ids::{MessageId, ReplicaId, SessionId, TurnId, WorkerId};

/// A column holding a wire name (a state, an outcome, a code), read as its enum: a name this
/// version does not know is a decode error, never a silent default.
pub(super) fn wire<T>(r: &SqliteRow, col: &str) -> Result<T, sqlx::Error>
where
    T: std::str::FromStr<Err = crate::api::UnknownName>,
{
    let s: String = r.try_get(col)?;
    s.parse().map_err(|e| sqlx::Error::ColumnDecode {
        index: col.to_owned(),
        source: Box::new(e),
    })
}

/// [`wire`] for a nullable column.
pub(super) fn wire_opt<T>(r: &SqliteRow, col: &str) -> Result<Option<T>, sqlx::Error>
where
    T: std::str::FromStr<Err = crate::api::UnknownName>,
{
    match r.try_get::<Option<String>, _>(col)? {
        None => Ok(None),
        Some(_) => wire(r, col).map(Some),
    }
}

/// `(name, count)` rows as counts by enum value.
fn counts<T>(rows: Vec<(String, i64)>) -> Result<Vec<(T, i64)>, sqlx::Error>
where
    T: std::str::FromStr<Err = crate::api::UnknownName>,
{
    rows.into_iter()
        .map(|(name, n)| {
            let v = name.parse().map_err(|e| sqlx::Error::ColumnDecode {
                index: "0".into(),
                source: Box::new(e),
            })?;
            Ok((v, n))
        })
        .collect()
}

/// The stranded rule of [`crate::store::query`], over `turns t`, with `?now` bound by the caller.
const STRANDED: &str = "(t.ended_at IS NULL AND ( \
    (t.worker_id IS NOT NULL AND EXISTS (SELECT 1 FROM workers w WHERE w.worker_id = t.worker_id \
        AND w.generation = t.worker_generation AND w.exited_at IS NOT NULL)) \
    OR (t.state IN ('dispatched', 'streaming') AND t.stall_ms IS NOT NULL AND t.last_progress_at + t.stall_ms < {now}) \
    OR (t.deadline_at IS NOT NULL AND t.deadline_at < {now}) \
    OR (t.state = 'queued' AND t.queue_deadline_at IS NOT NULL AND t.queue_deadline_at < {now})))";

fn stranded_sql(now: i64) -> String {
    STRANDED.replace("{now}", &now.to_string())
}

const WORKER_COLS: &str = "worker_id, generation, pid, agent_id, session_id, state, started_at, ready_at, \
    last_heartbeat_at, last_progress_at, current_turn_id, turns_served, exit_code, signal, exited_at, \
    intentional, exit_reason, stderr_tail, replica_id";

fn worker_from(r: &SqliteRow) -> Result<WorkerRecord, sqlx::Error> {
    Ok(WorkerRecord {
        worker_id: WorkerId(r.try_get("worker_id")?),
        generation: r.try_get::<i64, _>("generation")? as u32,
        pid: r.try_get::<Option<i64>, _>("pid")?.unwrap_or_default() as u32,
        agent_id: r.try_get("agent_id")?,
        session_id: SessionId(r.try_get("session_id")?),
        state: wire(r, "state")?,
        started_at: r.try_get("started_at")?,
        ready_at: r.try_get("ready_at")?,
        last_heartbeat_at: r.try_get("last_heartbeat_at")?,
        last_progress_at: r.try_get("last_progress_at")?,
        current_turn_id: r
            .try_get::<Option<String>, _>("current_turn_id")?
            .map(TurnId),
        turns_served: r.try_get("turns_served")?,
        exit_code: r.try_get("exit_code")?,
        signal: r.try_get("signal")?,
        exited_at: r.try_get("exited_at")?,
        intentional: r.try_get("intentional")?,
        exit_reason: r.try_get("exit_reason")?,
        stderr_tail: r.try_get("stderr_tail")?,
        replica_id: r.try_get::<Option<String>, _>("replica_id")?.map(ReplicaId),
    })
}

fn turn_cols(now: i64) -> String {
    format!(
        "t.id, t.session_id, t.agent_id, t.message_id, t.content, t.state, t.worker_id, t.worker_generation, \
         t.created_at, t.dispatched_at, t.first_output_at, t.last_progress_at, t.deadline_at, t.ended_at, \
         t.outcome, t.code, t.error, {} AS stranded",
        stranded_sql(now)
    )
}

fn turn_from(r: &SqliteRow) -> Result<TurnInfo, sqlx::Error> {
    Ok(TurnInfo {
        turn_id: TurnId(r.try_get("id")?),
        session_id: SessionId(r.try_get("session_id")?),
        agent_id: r.try_get("agent_id")?,
        message_id: MessageId(r.try_get("message_id")?),
        content: Some(r.try_get("content")?),
        state: wire(r, "state")?,
        worker_id: r.try_get::<Option<String>, _>("worker_id")?.map(WorkerId),
        worker_generation: r
            .try_get::<Option<i64>, _>("worker_generation")?
            .map(|g| g as u32),
        created_at: r.try_get("created_at")?,
        dispatched_at: r.try_get("dispatched_at")?,
        first_output_at: r.try_get("first_output_at")?,
        last_progress_at: r.try_get("last_progress_at")?,
        deadline_at: r.try_get("deadline_at")?,
        ended_at: r.try_get("ended_at")?,
        outcome: wire_opt(r, "outcome")?,
        code: wire_opt(r, "code")?,
        error: r.try_get("error")?,
        stranded: r.try_get("stranded")?,
    })
}

fn admin_from(r: &SqliteRow) -> Result<LoggedEvent, sqlx::Error> {
    Ok(LoggedEvent {
        seq: r.try_get("seq")?,
        kind: r.try_get("kind")?,
        data: r.try_get("data")?,
    })
}

pub(super) async fn overview(pool: &SqlitePool, now: i64) -> Result<Overview, sqlx::Error> {
    let mut o = Overview::default();
    let workers: Vec<(String, i64)> = sqlx::query_as(
        "SELECT state, COUNT(*) FROM workers WHERE exited_at IS NULL GROUP BY state",
    )
    .fetch_all(pool)
    .await?;
    o.workers_by_state.extend(counts(workers)?);
    let turns: Vec<(String, i64)> =
        sqlx::query_as("SELECT state, COUNT(*) FROM turns GROUP BY state")
            .fetch_all(pool)
            .await?;
    o.turns_by_state.extend(counts(turns)?);
    let codes: Vec<(String, i64)> =
        sqlx::query_as("SELECT code, COUNT(*) FROM turns WHERE code IS NOT NULL GROUP BY code")
            .fetch_all(pool)
            .await?;
    o.failed_by_code.extend(counts(codes)?);
    let q = format!(
        "SELECT COUNT(*) FROM turns t WHERE t.ended_at IS NULL AND {}",
        stranded_sql(now)
    );
    o.stranded = sqlx::query_scalar(&q).fetch_one(pool).await?;
    Ok(o)
}

pub(super) async fn workers(
    pool: &SqlitePool,
    q: &WorkerQuery,
) -> Result<Vec<WorkerRecord>, sqlx::Error> {
    let mut b: QueryBuilder<Sqlite> =
        QueryBuilder::new(format!("SELECT {WORKER_COLS} FROM workers WHERE 1 = 1"));
    match q.state {
        Some(WorkerFilter::Set(WorkerSet::Live)) => {
            b.push(" AND exited_at IS NULL");
        }
        Some(WorkerFilter::State(s)) => {
            b.push(" AND state = ").push_bind(s.as_str());
        }
        None => {}
    }
    if let Some(w) = &q.worker {
        b.push(" AND worker_id = ").push_bind(w.to_string());
    }
    if let Some(s) = &q.session {
        b.push(" AND session_id = ").push_bind(s.to_string());
    }
    if let Some(a) = &q.agent {
        b.push(" AND agent_id = ").push_bind(a.clone());
    }
    if let Some((ms, rest)) = q.page.cursor.as_deref().and_then(split_cursor) {
        let (id, generation) = rest.rsplit_once(':').unwrap_or((rest, "0"));
        b.push(" AND (started_at, worker_id, generation) < (")
            .push_bind(ms)
            .push(", ")
            .push_bind(id.to_owned())
            .push(", ")
            .push_bind(generation.parse::<i64>().unwrap_or(0))
            .push(")");
    }
    b.push(" ORDER BY started_at DESC, worker_id DESC, generation DESC LIMIT ")
        .push_bind(q.page.limit);
    let rows = b.build().fetch_all(pool).await?;
    rows.iter().map(worker_from).collect()
}

pub(super) async fn turns(
    pool: &SqlitePool,
    q: &TurnQuery,
    now: i64,
) -> Result<Vec<TurnInfo>, sqlx::Error> {
    let mut b: QueryBuilder<Sqlite> = QueryBuilder::new(format!(
        "SELECT {} FROM turns t WHERE 1 = 1",
        turn_cols(now)
    ));
    match q.state {
        Some(TurnFilter::Set(TurnSet::Open)) => {
            b.push(" AND t.ended_at IS NULL");
        }
        Some(TurnFilter::Set(TurnSet::Stranded)) => {
            b.push(" AND t.ended_at IS NULL AND ")
                .push(stranded_sql(now));
        }
        Some(TurnFilter::State(s)) => {
            b.push(" AND t.state = ").push_bind(s.as_str());
        }
        None => {}
    }
    if let Some(a) = &q.agent {
        b.push(" AND t.agent_id = ").push_bind(a.clone());
    }
    if let Some(s) = &q.session {
        b.push(" AND t.session_id = ").push_bind(s.to_string());
    }
    if let Some(w) = &q.worker {
        // Through the worker's session: turns are indexed by session, not by worker.
        b.push(" AND t.session_id IN (SELECT session_id FROM workers WHERE worker_id = ")
            .push_bind(w.to_string())
            .push(") AND t.worker_id = ")
            .push_bind(w.to_string());
    }
    if let Some((ms, id)) = q.page.cursor.as_deref().and_then(split_cursor) {
        b.push(" AND (t.created_at, t.id) < (")
            .push_bind(ms)
            .push(", ")
            .push_bind(id.to_owned())
            .push(")");
    }
    b.push(" ORDER BY t.created_at DESC, t.id DESC LIMIT ")
        .push_bind(q.page.limit);
    let rows = b.build().fetch_all(pool).await?;
    rows.iter().map(turn_from).collect()
}

pub(super) async fn turn_row(
    pool: &SqlitePool,
    id: &TurnId,
    now: i64,
) -> Result<Option<TurnInfo>, sqlx::Error> {
    let q = format!("SELECT {} FROM turns t WHERE t.id = ?", turn_cols(now));
    let row = sqlx::query(&q)
        .bind(id.as_str())
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(turn_from).transpose()
}

pub(super) async fn admin_events_of_turn(
    pool: &SqlitePool,
    id: &TurnId,
) -> Result<Vec<LoggedEvent>, sqlx::Error> {
    let rows =
        sqlx::query("SELECT seq, kind, data FROM admin_events WHERE turn_id = ? ORDER BY seq")
            .bind(id.as_str())
            .fetch_all(pool)
            .await?;
    rows.iter().map(admin_from).collect()
}

pub(super) async fn rejections(
    pool: &SqlitePool,
    worker: &WorkerId,
    limit: i64,
) -> Result<Vec<RejectionRow>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT generation, turn_id, kind, reason, line, created_at FROM worker_output \
         WHERE worker_id = ? ORDER BY id DESC LIMIT ?",
    )
    .bind(worker.as_str())
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(RejectionRow {
                generation: r.try_get::<i64, _>("generation")? as u32,
                turn_id: r.try_get::<Option<String>, _>("turn_id")?.map(TurnId),
                kind: wire(r, "kind")?,
                reason: r.try_get("reason")?,
                line: r.try_get("line")?,
                at: r.try_get("created_at")?,
            })
        })
        .collect()
}

/// The last admin sequence number ever given: `sqlite_sequence` remembers it when retention
/// has pruned the newest rows too (after an idle week), where `MAX(seq)` would go back.
const LAST_ADMIN_SEQ: &str =
    "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'admin_events'), 0)";

/// The oldest admin event kept and [`LAST_ADMIN_SEQ`].
pub(super) async fn admin_log_bounds(pool: &SqlitePool) -> Result<(i64, i64), sqlx::Error> {
    let q = format!("SELECT (SELECT MIN(seq) FROM admin_events), ({LAST_ADMIN_SEQ})");
    let (first, last): (Option<i64>, i64) = sqlx::query_as(&q).fetch_one(pool).await?;
    Ok((first.unwrap_or(last + 1), last))
}

pub(super) async fn admin_events_after(
    pool: &SqlitePool,
    after: i64,
    limit: i64,
) -> Result<Vec<LoggedEvent>, sqlx::Error> {
    let rows =
        sqlx::query("SELECT seq, kind, data FROM admin_events WHERE seq > ? ORDER BY seq LIMIT ?")
            .bind(after)
            .bind(limit)
            .fetch_all(pool)
            .await?;
    rows.iter().map(admin_from).collect()
}

pub(super) async fn snapshot(pool: &SqlitePool, now: i64) -> Result<Snapshot, sqlx::Error> {
    // One read transaction: the high-water mark and the state under it agree.
    let mut tx = pool.begin().await?;
    let seq: i64 = sqlx::query_scalar(LAST_ADMIN_SEQ)
        .fetch_one(&mut *tx)
        .await?;
    let q =
        format!("SELECT {WORKER_COLS} FROM workers WHERE exited_at IS NULL ORDER BY started_at");
    let workers = sqlx::query(&q)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(worker_from)
        .collect::<Result<_, _>>()?;
    let q = format!(
        "SELECT {} FROM turns t WHERE t.ended_at IS NULL ORDER BY t.created_at",
        turn_cols(now)
    );
    let turns = sqlx::query(&q)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(turn_from)
        .collect::<Result<_, _>>()?;
    tx.commit().await?;
    Ok(Snapshot {
        seq,
        workers,
        turns,
    })
}

/// Worker generations with no recorded exit, with where and when their process started.
pub(super) async fn live_workers(pool: &SqlitePool) -> Result<Vec<LiveWorker>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT worker_id, generation, pid, host, boot_id, start_ticks FROM workers \
         WHERE exited_at IS NULL",
    )
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            let origin = match (
                r.try_get::<Option<String>, _>("host")?,
                r.try_get::<Option<String>, _>("boot_id")?,
                r.try_get::<Option<i64>, _>("start_ticks")?,
            ) {
                (Some(host), Some(boot_id), Some(t)) => Some(ProcessOrigin {
                    host,
                    boot_id,
                    start_ticks: t as u64,
                }),
                _ => None,
            };
            Ok(LiveWorker {
                worker_id: WorkerId(r.try_get("worker_id")?),
                generation: r.try_get::<i64, _>("generation")? as u32,
                pid: r.try_get::<Option<i64>, _>("pid")?.map(|p| p as u32),
                origin,
            })
        })
        .collect()
}

/// The replicas not stopped cleanly, oldest first, with their live workers and sessions.
pub(super) async fn replicas(pool: &SqlitePool, now: i64) -> Result<Vec<ReplicaInfo>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT r.id, r.name, r.host, r.pid, r.version, r.started_at, r.heartbeat_at, r.lease_until, \
         r.stopping, \
         (SELECT COUNT(*) FROM workers w WHERE w.replica_id = r.id AND w.exited_at IS NULL) AS workers, \
         (SELECT COUNT(DISTINCT w.session_id) FROM workers w \
          WHERE w.replica_id = r.id AND w.exited_at IS NULL) AS sessions \
         FROM replicas r WHERE r.stopped_at IS NULL ORDER BY r.started_at, r.id",
    )
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            let lease_until: i64 = r.try_get("lease_until")?;
            let state = if lease_until < now {
                ReplicaState::Lost
            } else if r.try_get("stopping")? {
                ReplicaState::Stopping
            } else {
                ReplicaState::Live
            };
            Ok(ReplicaInfo {
                replica_id: ReplicaId(r.try_get("id")?),
                name: r.try_get("name")?,
                host: r.try_get("host")?,
                pid: r.try_get::<i64, _>("pid")? as u32,
                version: r.try_get("version")?,
                started_at: r.try_get("started_at")?,
                heartbeat_at: r.try_get("heartbeat_at")?,
                lease_until,
                state,
                workers: r.try_get("workers")?,
                sessions: r.try_get("sessions")?,
            })
        })
        .collect()
}
