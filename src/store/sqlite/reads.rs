//! Admin reads: lists answer from indexed, keyset-paginated queries, so they stay fast with
//! 100,000 turns in the store.

use sqlx::{QueryBuilder, Row, Sqlite, SqlitePool};

use super::super::query::{RejectionRow, split_cursor};
use super::super::rows::{
    REPLICAS, WORKER_COLS, admin_from, counts, replica_from, stranded_sql, turn_cols,
    turn_info_from, wire, worker_from,
};
use super::super::{
    LiveWorker, LoggedEvent, Overview, Snapshot, TurnQuery, WorkerQuery, WorkerRecord,
};
use crate::api::admin::{ReplicaInfo, TurnInfo};
use crate::api::state::{TurnFilter, TurnSet, WorkerFilter, WorkerSet};
use crate::ids::{TurnId, WorkerId};

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
    // Recent ones: their events are not pruned yet (the event retention is 15 minutes unless
    // shortened), so the `turns_prunable` index holds them.
    let recent: Vec<(String, i64)> = sqlx::query_as(
        "SELECT code, COUNT(*) FROM turns WHERE ended_at >= ? AND events_pruned = 0 \
         AND code IS NOT NULL GROUP BY code",
    )
    .bind(now - crate::store::query::RECENT_MS)
    .fetch_all(pool)
    .await?;
    o.failed_recently.extend(counts(recent)?);
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
    rows.iter().map(turn_info_from).collect()
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
    row.as_ref().map(turn_info_from).transpose()
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
        .map(turn_info_from)
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
    let rows = sqlx::query(crate::store::rows::LIVE_WORKERS)
        .fetch_all(pool)
        .await?;
    rows.iter()
        .map(crate::store::rows::live_worker_from)
        .collect()
}

/// The replicas not stopped cleanly, oldest first, with their live workers and sessions.
pub(super) async fn replicas(pool: &SqlitePool, now: i64) -> Result<Vec<ReplicaInfo>, sqlx::Error> {
    let rows = sqlx::query(REPLICAS).fetch_all(pool).await?;
    rows.iter().map(|r| replica_from(r, now)).collect()
}

crate::store::rows::ownership_reads!(sqlx::SqlitePool);
