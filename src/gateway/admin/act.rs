//! Admin actions (protocol.md §3): compare-and-kill a worker, cancel a turn.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use std::sync::Arc;

use crate::api::ErrorCode;
use crate::api::admin::{CancelRequest, Cancelled, KillAccepted, KillRequest};
use crate::api::state::ActionKind;
use crate::clock::now_ms;
use crate::gateway::AppState;
use crate::gateway::error::{ApiError, Body};
use crate::ids::{TurnId, WorkerId};
use crate::store::OperatorAction;
use crate::supervisor::ActionError;

mod forward;

#[allow(clippy::needless_pass_by_value)] // used as `map_err(action_error)`
fn action_error(e: ActionError) -> ApiError {
    match e {
        ActionError::UnknownWorker(_) => {
            ApiError::not_found(ErrorCode::WorkerNotFound, e.to_string())
        }
        ActionError::UnknownTurn(_) => ApiError::not_found(ErrorCode::TurnNotFound, e.to_string()),
        ActionError::TargetChanged { .. } => {
            ApiError::conflict(ErrorCode::TargetChanged, e.to_string())
        }
        ActionError::AlreadyEnded(_) => ApiError::conflict(ErrorCode::AlreadyEnded, e.to_string()),
        ActionError::ShuttingDown => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::ShuttingDown,
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
    let action = operator_action(ActionKind::Kill, worker.to_string(), reason, who);
    match app
        .supervisor
        .kill(&worker, generation, pid, action.clone())
        .await
    {
        Err(ActionError::UnknownWorker(_)) => {
            // Not this replica's worker: its owner carries the kill out.
            forward::kill(&app, &worker, (generation, pid), action).await?;
        }
        other => other.map_err(action_error)?,
    }
    let body = KillAccepted {
        success: true,
        worker_id: worker,
        generation,
        pid,
    };
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
    let action = operator_action(ActionKind::Cancel, turn.to_string(), reason, who);
    let body = Cancelled {
        success: true,
        turn_id: turn.clone(),
    };
    if forward::cancel(&app, &turn, &action).await? {
        return Ok((StatusCode::ACCEPTED, Json(body)));
    }
    app.supervisor
        .cancel(&turn, action)
        .await
        .map_err(action_error)?;
    Ok((StatusCode::OK, Json(body)))
}

/// An operator action for the admin log (`operator.action`). The supervisor logs it once the
/// target is confirmed, before the effects it causes, so the log reads cause before effect.
fn operator_action(
    action: ActionKind,
    target: String,
    reason: String,
    token: String,
) -> OperatorAction {
    OperatorAction {
        action,
        target,
        reason,
        token,
        at: now_ms(),
    }
}
