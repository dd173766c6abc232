//! The admin actions' bodies (kill, cancel) and `/healthz`'s answer.

use serde::{Deserialize, Serialize};

use crate::ids::{TurnId, WorkerId};

/// `POST /api/v1/admin/workers/{id}/kill`: compare-and-kill exactly this process.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KillRequest {
    /// The worker generation the operator saw.
    pub generation: Option<u32>,
    /// Its pid as the operator saw it.
    pub pid: Option<u32>,
    /// Why, for the operator log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `POST /api/v1/admin/turns/{id}/cancel`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CancelRequest {
    /// Why, for the operator log and the turn's error sentence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `POST .../kill` reply (202): the kill was sent; `worker.exited` follows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KillAccepted {
    /// Always true.
    pub success: bool,
    /// The slot.
    pub worker_id: WorkerId,
    /// The generation killed.
    pub generation: u32,
    /// Its pid.
    pub pid: u32,
}

/// `POST .../cancel` reply: the turn has ended `cancelled_by_operator`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cancelled {
    /// Always true.
    pub success: bool,
    /// The turn.
    pub turn_id: TurnId,
}

/// `GET /healthz`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// Whether the gateway takes turns.
    pub status: HealthStatus,
}

wire_enum! {
    /// What `/healthz` says.
    pub enum HealthStatus {
        /// Taking turns (200).
        Ok = "ok",
        /// Stopping (503).
        Stopping = "stopping",
        /// The database refuses writes (503).
        StoreUnavailable = "store_unavailable",
    }
}
