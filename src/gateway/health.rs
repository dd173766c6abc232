//! What monitoring scrapes: `/healthz` (whether the gateway takes turns) and `/metrics`
//! (Prometheus text).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use std::sync::Arc;

use super::AppState;
use super::error::ApiError;
use crate::api::admin::{Health, HealthStatus};
use crate::clock::now_ms;

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
pub async fn metrics(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    use std::fmt::Write;
    app.tokens.reader(&headers)?;
    let o = app.store.overview(now_ms()).await?;
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
        "# HELP turnwatch_workers Live workers by state.\n# TYPE turnwatch_workers gauge"
    );
    for (state, n) in &o.workers_by_state {
        let _ = writeln!(out, "turnwatch_workers{{state=\"{state}\"}} {n}");
    }
    let _ = writeln!(
        out,
        "# HELP turnwatch_sse_connections Open SSE streams.\n# TYPE turnwatch_sse_connections gauge\n\
         turnwatch_sse_connections{{stream=\"session\"}} {}\nturnwatch_sse_connections{{stream=\"admin\"}} {}",
        app.hub.connections(),
        app.hub.admin_connections()
    );
    let _ = writeln!(
        out,
        "# HELP turnwatch_event_log_lag Writes queued for the store, not yet committed.\n\
         # TYPE turnwatch_event_log_lag gauge\nturnwatch_event_log_lag {}",
        app.journal.pending()
    );
    app.metrics.crash_to_error.render(
        "turnwatch_crash_to_error_seconds",
        "From a worker's exit being seen to its turn's error being committed.",
        &mut out,
    );
    Ok(([("content-type", "text/plain; version=0.0.4")], out))
}
