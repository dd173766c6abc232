//! Admin actions (protocol.md §3): compare-and-kill a worker, cancel a turn; and health.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

use super::AppState;
use super::error::{ApiError, Body};
use crate::clock::now_ms;
use crate::ids::{TurnId, WorkerId};
use crate::store::{OperatorAction, Write};
use crate::supervisor::ActionError;

/// `POST .../workers/{id}/kill` body.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KillRequest {
    generation: Option<u32>,
    pid: Option<u32>,
    #[serde(default)]
    reason: Option<String>,
}

/// `POST .../turns/{id}/cancel` body.
#[derive(Debug, Default, Deserialize)]
pub struct CancelRequest {
    #[serde(default)]
    reason: Option<String>,
}

#[allow(clippy::needless_pass_by_value)] // used as `map_err(action_error)`
fn action_error(e: ActionError) -> ApiError {
    match e {
        ActionError::UnknownWorker(_) => ApiError::not_found("worker_not_found", e.to_string()),
        ActionError::UnknownTurn(_) => ApiError::not_found("turn_not_found", e.to_string()),
        ActionError::TargetChanged { .. } => ApiError::conflict("target_changed", e.to_string()),
        ActionError::AlreadyEnded(_) => ApiError::conflict("already_ended", e.to_string()),
        ActionError::ShuttingDown => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            e.to_string(),
        ),
    }
}

/// `POST /api/v1/admin/workers/{id}/kill`: compare-and-kill; 202, the exit follows.
pub async fn kill(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Body(req): Body<KillRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let who = app.tokens.operator(&headers)?;
    let (Some(generation), Some(pid)) = (req.generation, req.pid) else {
        return Err(ApiError::invalid(
            "`generation` and `pid` name the exact process to kill",
        ));
    };
    let reason = req
        .reason
        .filter(|r| !r.trim().is_empty())
        .unwrap_or_else(|| "no reason given".into());
    let worker = WorkerId(id);
    tracing::info!(%worker, generation, pid, %reason, token = %who, "operator kill");
    app.supervisor
        .kill(&worker, generation, pid, reason.clone())
        .await
        .map_err(action_error)?;
    record(&app, "kill", worker.to_string(), reason, who).await?;
    let body = json!({ "success": true, "workerId": worker, "generation": generation, "pid": pid });
    Ok((StatusCode::ACCEPTED, Json(body)))
}

/// `POST /api/v1/admin/turns/{id}/cancel`: ends the turn now with `cancelled_by_operator`.
pub async fn cancel(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Body(req): Body<CancelRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let who = app.tokens.operator(&headers)?;
    let reason = req
        .reason
        .filter(|r| !r.trim().is_empty())
        .unwrap_or_else(|| "no reason given".into());
    let turn = TurnId(id);
    tracing::info!(%turn, %reason, token = %who, "operator cancel");
    app.supervisor
        .cancel(&turn, reason.clone())
        .await
        .map_err(action_error)?;
    record(&app, "cancel", turn.to_string(), reason, who).await?;
    Ok(Json(json!({ "success": true, "turnId": turn })))
}

/// Logs an accepted operator action as `operator.action`.
async fn record(
    app: &AppState,
    action: &'static str,
    target: String,
    reason: String,
    token: String,
) -> Result<(), ApiError> {
    let at = now_ms();
    app.journal
        .write(Write::Action(OperatorAction {
            action,
            target,
            reason,
            token,
            at,
        }))
        .await?;
    Ok(())
}

/// `GET /healthz`: 200 while the gateway takes turns, 503 once it is stopping or while its
/// database refuses writes.
pub async fn healthz(State(app): State<Arc<AppState>>) -> impl IntoResponse {
    if app.streams_stop.is_cancelled() || app.stopping.is_cancelled() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "stopping" })),
        )
    } else if !app.journal.is_available() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "store_unavailable" })),
        )
    } else {
        (StatusCode::OK, Json(json!({ "status": "ok" })))
    }
}
