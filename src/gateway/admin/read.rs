//! The admin read side (protocol.md §3): overview, workers, turns and their details.
//! Read-only tokens see all of it except message content.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use serde_json::Value;
use std::sync::Arc;

use crate::api::ErrorCode;
use crate::api::admin::{
    Caller, CallerRole, ListQuery, Overview, Page, TimelineEntry, TimelineSource, TurnDetail,
    TurnInfo, WorkerDetail, WorkerInfo,
};
use crate::api::session;
use crate::api::signal_name;
use crate::api::state::ReplicaState;
use crate::clock::now_ms;
use crate::config::Role;
use crate::gateway::AppState;
use crate::gateway::error::ApiError;
use crate::ids::{ReplicaId, SessionId, TurnId, WorkerId};
use crate::store::query::turn_cursor;
use crate::store::{self, TurnQuery, WorkerQuery, WorkerRecord};

/// The replica named for a worker row written before replicas were recorded.
const EARLIER: &str = "local";

/// The list filters, with the checks the wire type cannot make.
trait ListParams {
    /// The page asked for.
    fn page(&self) -> Result<store::Page, ApiError>;
    /// The `?state=` filter, read as `what`'s (`worker` or `turn`) filter type.
    fn filter<F: std::str::FromStr>(&self, what: &str) -> Result<Option<F>, ApiError>;
}

impl ListParams for ListQuery {
    fn filter<F: std::str::FromStr>(&self, what: &str) -> Result<Option<F>, ApiError> {
        self.state
            .as_deref()
            .map(|s| {
                s.parse()
                    .map_err(|_| ApiError::invalid(format!("unknown {what} state `{s}`")))
            })
            .transpose()
    }

    fn page(&self) -> Result<store::Page, ApiError> {
        let limit = self.limit.unwrap_or(100);
        if !(1..=1000).contains(&limit) {
            return Err(ApiError::invalid("`limit` must be between 1 and 1000"));
        }
        if let Some(c) = &self.cursor
            && store::query::split_cursor(c).is_none()
        {
            return Err(ApiError::invalid("`cursor` is not one this API gave out"));
        }
        Ok(store::Page {
            limit,
            cursor: self.cursor.clone(),
        })
    }
}

/// A store worker row on the wire.
pub fn worker_info(w: &WorkerRecord) -> WorkerInfo {
    WorkerInfo {
        worker_id: w.worker_id.clone(),
        generation: w.generation,
        pid: w.pid,
        agent_id: w.agent_id.clone(),
        session_id: w.session_id.clone(),
        state: w.state,
        started_at: w.started_at,
        ready_at: w.ready_at,
        last_heartbeat_at: w.last_heartbeat_at,
        last_progress_at: w.last_progress_at,
        current_turn_id: w.current_turn_id.clone(),
        turns_served: w.turns_served,
        exit_code: w.exit_code,
        signal: w.signal.map(signal_name),
        exited_at: w.exited_at,
        intentional: w.intentional,
        exit_reason: w.exit_reason.clone(),
        replica_id: w
            .replica_id
            .clone()
            .unwrap_or_else(|| ReplicaId(EARLIER.into())),
        process: None,
    }
}

/// A turn as the store read it, without its message content unless asked for.
pub fn turn_info(mut t: TurnInfo, with_content: bool) -> TurnInfo {
    if !with_content {
        t.content = None;
    }
    t
}

fn page<T, R>(
    rows: Vec<R>,
    limit: i64,
    to: impl FnMut(R) -> T,
    cursor: impl Fn(&R) -> String,
) -> Page<T> {
    let next_cursor = (rows.len() as i64 == limit)
        .then(|| rows.last().map(&cursor))
        .flatten();
    Page {
        success: true,
        items: rows.into_iter().map(to).collect(),
        next_cursor,
    }
}

/// `GET /api/v1/admin/overview`.
pub async fn overview(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    let (name, role) = app.tokens.reader(&headers)?;
    let o = app.store.overview(now_ms()).await?;
    let replicas = app.store.replicas(now_ms()).await?;
    let role = if role == Role::Operator {
        CallerRole::Operator
    } else {
        CallerRole::Readonly
    };
    let body = Overview {
        caller: Caller { name, role },
        success: true,
        version: env!("CARGO_PKG_VERSION").to_owned(),
        uptime_seconds: app.started.elapsed().as_secs(),
        replicas: replicas
            .iter()
            .filter(|r| r.state == ReplicaState::Live)
            .count() as u32,
        workers: o.workers_by_state,
        turns: o.turns_by_state,
        failed_by_code: o.failed_by_code,
        failed_recently: o.failed_recently,
        recent_seconds: (crate::store::query::RECENT_MS / 1000) as u64,
        stranded: o.stranded,
        agents: app.config.agents.keys().cloned().collect(),
        default_agent: Some(app.config.gateway.default_agent.clone()),
        sse_connections: app.hub.connections() + app.hub.admin_connections(),
    };
    Ok(Json(body))
}

/// `GET /api/v1/admin/replicas`: the replicas sharing the store that have not stopped cleanly.
pub async fn replicas(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    app.tokens.reader(&headers)?;
    let items = app.store.replicas(now_ms()).await?;
    Ok(Json(Page {
        success: true,
        items,
        next_cursor: None,
    }))
}

/// `GET /api/v1/admin/workers`.
pub async fn workers(
    State(app): State<Arc<AppState>>,
    Query(p): Query<ListQuery>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    app.tokens.reader(&headers)?;
    let q = WorkerQuery {
        state: p.filter("worker")?,
        worker: p.worker.clone().map(WorkerId),
        session: p.session.clone().map(SessionId),
        agent: p.agent.clone(),
        page: p.page()?,
    };
    let rows = app.store.workers(&q).await?;
    let mut body = page(
        rows,
        q.page.limit,
        |w| worker_info(&w),
        WorkerRecord::cursor,
    );
    app.watch
        .attach(&app.supervisor, &mut body.items, false)
        .await;
    Ok(Json(body))
}

/// `GET /api/v1/admin/workers/{id}`.
pub async fn worker(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    app.tokens.reader(&headers)?;
    let id = WorkerId(id);
    let generations = app.store.workers(&WorkerQuery::slot(&id, 20)).await?;
    let Some(newest) = generations.first() else {
        return Err(ApiError::not_found(
            ErrorCode::WorkerNotFound,
            format!("no worker {id}"),
        ));
    };
    let stderr = match app.supervisor.stderr_tail(&id).await {
        Some((generation, tail)) if generation == newest.generation => tail,
        _ => newest.stderr_tail.clone().unwrap_or_default(),
    };
    let tq = TurnQuery {
        worker: Some(id.clone()),
        page: store::Page {
            limit: 20,
            cursor: None,
        },
        ..Default::default()
    };
    let turns = app.store.turns(&tq, now_ms()).await?;
    let rejected = app.store.rejections(&id, 50).await?;
    let mut worker = [worker_info(newest)];
    app.watch.attach(&app.supervisor, &mut worker, true).await;
    let [worker] = worker;
    let mut generations: Vec<WorkerInfo> = generations.iter().map(worker_info).collect();
    if let Some(g) = generations.first_mut() {
        g.process.clone_from(&worker.process);
    }
    Ok(Json(WorkerDetail {
        success: true,
        worker,
        generations,
        stderr_tail: stderr.lines().map(str::to_owned).collect(),
        recent_turns: turns.into_iter().map(|t| turn_info(t, false)).collect(),
        rejected_output: rejected,
    }))
}

/// `GET /api/v1/admin/turns`.
pub async fn turns(
    State(app): State<Arc<AppState>>,
    Query(p): Query<ListQuery>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    app.tokens.reader(&headers)?;
    let q = TurnQuery {
        state: p.filter("turn")?,
        agent: p.agent.clone(),
        session: p.session.clone().map(SessionId),
        worker: p.worker.clone().map(WorkerId),
        page: p.page()?,
    };
    let rows = app.store.turns(&q, now_ms()).await?;
    Ok(Json(page(
        rows,
        q.page.limit,
        |t| turn_info(t, false),
        turn_cursor,
    )))
}

/// `GET /api/v1/admin/turns/{id}`: the turn and its timeline.
pub async fn turn(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    let (_, role) = app.tokens.reader(&headers)?;
    let operator = role == Role::Operator;
    let id = TurnId(id);
    let Some(row) = app.store.turn_row(&id, now_ms()).await? else {
        return Err(ApiError::not_found(
            ErrorCode::TurnNotFound,
            format!("no turn {id}"),
        ));
    };
    let (admin, session) = app.store.turn_timeline(&id).await?;
    let mut timeline: Vec<TimelineEntry> = admin
        .iter()
        .map(|e| TimelineEntry {
            source: TimelineSource::Admin,
            seq: e.seq,
            kind: e.kind.clone(),
            data: parse(&e.data),
        })
        .collect();
    timeline.extend(session.iter().map(|e| {
        let mut data = parse(&e.data);
        if !operator {
            session::redact_text(&mut data);
        }
        TimelineEntry {
            source: TimelineSource::Session,
            seq: e.seq,
            kind: e.kind.as_str().to_owned(),
            data,
        }
    }));
    timeline.sort_by_cached_key(|e| {
        (
            e.event().and_then(|ev| ev.timestamp()).unwrap_or(0),
            e.source != TimelineSource::Admin,
            e.seq,
        )
    });
    Ok(Json(TurnDetail {
        success: true,
        turn: turn_info(row, operator),
        timeline,
    }))
}

fn parse(data: &str) -> Value {
    serde_json::from_str(data).unwrap_or(Value::Null)
}
