//! What monitoring scrapes: `/healthz` (whether the gateway takes turns) and `/metrics`
//! (Prometheus text).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use std::collections::BTreeMap;
use std::sync::Arc;

use super::AppState;
use super::error::ApiError;
use crate::api::WorkerState;
use crate::api::admin::{Health, HealthStatus};
use crate::api::state::{ReplicaState, WorkerFilter, WorkerSet};
use crate::clock::now_ms;
use crate::metrics::label_value;
use crate::store::{Page, WorkerQuery};

/// `GET /healthz`: 200 while the gateway takes turns, 503 once it is stopping or while its
/// database refuses writes.
pub async fn healthz(State(app): State<Arc<AppState>>) -> impl IntoResponse {
    let status = if app.streams_stop.is_cancelled() || app.stopping.is_cancelled() {
        HealthStatus::Stopping
    } else if !app.journal.is_available() {
        HealthStatus::StoreUnavailable
    } else {
        HealthStatus::Ok
    };
    let code = if status == HealthStatus::Ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(Health { status }))
}

/// `GET /metrics`: Prometheus text.
///
/// The store's gauges (turns by state and code, stranded turns, replicas by state) are the
/// cluster's, the same from every replica: they carry no `replica` label. What this process
/// holds (its live workers, its streams, its journal, its crash-to-error latency) carries
/// `replica="<its name>"` (its id while the store does not list it), so the scrapes of every
/// replica add up without counting anything twice.
pub async fn metrics(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    use std::fmt::Write;
    app.tokens.reader(&headers)?;
    let now = now_ms();
    let o = app.store.overview(now).await?;
    let replicas = app.store.replicas(now).await?;
    let id = app.supervisor.replica();
    let me = replicas
        .iter()
        .find(|r| r.replica_id == id)
        .map_or_else(|| id.to_string(), |r| r.name.clone());
    let me = format!("replica=\"{}\"", label_value(&me));
    let workers = own_workers(&app).await?;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP turnwatch_turns Turns by state.\n# TYPE turnwatch_turns gauge"
    );
    for (state, n) in &o.turns_by_state {
        let _ = writeln!(out, "turnwatch_turns{{state=\"{state}\"}} {n}");
    }
    let _ = writeln!(
        out,
        "# HELP turnwatch_turns_failed Failed turns by code.\n# TYPE turnwatch_turns_failed gauge"
    );
    for (code, n) in &o.failed_by_code {
        let _ = writeln!(out, "turnwatch_turns_failed{{code=\"{code}\"}} {n}");
    }
    let _ = writeln!(
        out,
        "# HELP turnwatch_turns_stranded Turns stranded now.\n# TYPE turnwatch_turns_stranded gauge\nturnwatch_turns_stranded {}",
        o.stranded
    );
    let _ = writeln!(
        out,
        "# HELP turnwatch_replicas Replicas sharing the store, by state.\n# TYPE turnwatch_replicas gauge"
    );
    for state in ReplicaState::ALL {
        let n = replicas.iter().filter(|r| r.state == *state).count();
        let _ = writeln!(out, "turnwatch_replicas{{state=\"{state}\"}} {n}");
    }
    let _ = writeln!(
        out,
        "# HELP turnwatch_workers This replica's live workers by state.\n# TYPE turnwatch_workers gauge"
    );
    for (state, n) in &workers {
        let _ = writeln!(out, "turnwatch_workers{{{me},state=\"{state}\"}} {n}");
    }
    let _ = writeln!(
        out,
        "# HELP turnwatch_sse_connections Open SSE streams on this replica.\n# TYPE turnwatch_sse_connections gauge\n\
         turnwatch_sse_connections{{{me},stream=\"session\"}} {}\nturnwatch_sse_connections{{{me},stream=\"admin\"}} {}",
        app.hub.connections(),
        app.hub.admin_connections()
    );
    let _ = writeln!(
        out,
        "# HELP turnwatch_event_log_lag Writes this replica queued for the store, not yet committed.\n\
         # TYPE turnwatch_event_log_lag gauge\nturnwatch_event_log_lag{{{me}}} {}",
        app.journal.pending()
    );
    app.metrics.crash_to_error.render(
        "turnwatch_crash_to_error_seconds",
        "From a worker's exit being seen to its turn's error being committed.",
        &me,
        &mut out,
    );
    Ok(([("content-type", "text/plain; version=0.0.4")], out))
}

/// This replica's live workers by state, read page by page from the store (the list every
/// replica's workers share; a scrape reads at most the cluster's live workers).
async fn own_workers(app: &AppState) -> Result<BTreeMap<WorkerState, i64>, ApiError> {
    let me = app.supervisor.replica();
    let mut by_state = BTreeMap::new();
    let mut q = WorkerQuery {
        state: Some(WorkerFilter::Set(WorkerSet::Live)),
        page: Page {
            limit: 1000,
            cursor: None,
        },
        ..WorkerQuery::default()
    };
    loop {
        let rows = app.store.workers(&q).await?;
        for w in &rows {
            if w.replica_id.as_ref() == Some(&me) {
                *by_state.entry(w.state).or_default() += 1;
            }
        }
        match rows.last() {
            Some(last) if rows.len() as i64 == q.page.limit => q.page.cursor = Some(last.cursor()),
            _ => return Ok(by_state),
        }
    }
}
