//! Operator actions on another replica's worker or turn (`replicas.md`): the owner carries
//! them out (the request reaches it through the store's notifications), with the same
//! compare-and-kill rules; the answer is 202 and the result is the admin event. A lost
//! owner's worker answers 409 `replica_lost`.

use crate::api::ErrorCode;
use crate::api::state::ReplicaState;
use crate::clock::now_ms;
use crate::gateway::AppState;
use crate::gateway::error::ApiError;
use crate::ids::{TurnId, WorkerId};
use crate::replica::cluster::Forward;
use crate::store::{OperatorAction, WorkerQuery};
use crate::supervisor::ActionError;

/// Forwards a kill to the replica that runs the worker; an error when nobody can carry it out.
pub async fn kill(
    app: &AppState,
    worker: &WorkerId,
    (generation, pid): (u32, u32),
    action: OperatorAction,
) -> Result<(), ApiError> {
    let unknown = || {
        ApiError::not_found(
            ErrorCode::WorkerNotFound,
            format!("no live worker {worker}"),
        )
    };
    let rows = app.store.workers(&WorkerQuery::slot(worker, 1000)).await?;
    let Some(live) = rows.into_iter().find(|w| w.exited_at.is_none()) else {
        return Err(unknown());
    };
    let Some(owner) = live.replica_id.clone() else {
        return Err(unknown());
    };
    if owner == app.supervisor.replica() {
        return Err(unknown());
    }
    let state = app
        .store
        .replicas(now_ms())
        .await?
        .into_iter()
        .find(|r| r.replica_id == owner)
        .map(|r| r.state);
    if !matches!(state, Some(ReplicaState::Live | ReplicaState::Stopping)) {
        return Err(ApiError::conflict(
            ErrorCode::ReplicaLost,
            format!(
                "worker {worker} ran on replica {owner}, which is lost; its turns end `replica_lost` when a live replica takes its sessions over"
            ),
        ));
    }
    if (live.generation, live.pid) != (generation, pid) {
        let e = ActionError::TargetChanged {
            worker: worker.clone(),
            generation: Some(live.generation),
            pid: Some(live.pid),
        };
        return Err(ApiError::conflict(ErrorCode::TargetChanged, e.to_string()));
    }
    send(app, owner, &action, Some((generation, pid))).await
}

/// Forwards a cancel to the live replica that owns the turn's session; false when this
/// replica must act itself (it owns the session, or no live replica does: the conditional
/// end decides).
pub async fn cancel(
    app: &AppState,
    turn: &TurnId,
    action: &OperatorAction,
) -> Result<bool, ApiError> {
    let Some(record) = app.store.turn(turn).await? else {
        return Ok(false);
    };
    if record.ended_at.is_some() {
        return Ok(false);
    }
    match app.store.owner(&record.session_id, now_ms()).await? {
        Some((owner, _, true)) if owner != app.supervisor.replica() => {
            send(app, owner, action, None).await?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

async fn send(
    app: &AppState,
    replica: crate::ids::ReplicaId,
    action: &OperatorAction,
    target: Option<(u32, u32)>,
) -> Result<(), ApiError> {
    let forward = Forward {
        replica,
        action: action.action,
        target: action.target.clone(),
        generation: target.map(|t| t.0),
        pid: target.map(|t| t.1),
        reason: action.reason.clone(),
        token: action.token.clone(),
    };
    if app.peers.forward(&forward).await {
        Ok(())
    } else {
        Err(ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::StoreUnavailable,
            "the action could not be sent to the replica that owns its target; retry",
        ))
    }
}
