//! Admin API wire types (protocol.md §3), shared by the gateway, the CLI and the console.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

use crate::ids::{SessionId, TurnId, WorkerId};

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

/// `GET /api/v1/admin/overview`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Overview {
    /// Gateway version.
    pub version: String,
    /// Seconds since the gateway started.
    pub uptime_seconds: u64,
    /// Replicas sharing the store (1 until several replicas exist).
    pub replicas: u32,
    /// Live workers by state.
    pub workers: BTreeMap<String, i64>,
    /// Turns by state.
    pub turns: BTreeMap<String, i64>,
    /// Failed turns by code.
    pub failed_by_code: BTreeMap<String, i64>,
    /// Turns stranded now.
    pub stranded: i64,
    /// The configured agents.
    pub agents: Vec<String>,
    /// Open SSE connections (session and admin streams).
    pub sse_connections: usize,
    /// Who is asking: the token's name and role (`operator` or `readonly`).
    #[serde(default)]
    pub caller: Caller,
}

/// The caller of an admin request.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Caller {
    /// The token's configured name (`anonymous` without tokens).
    pub name: String,
    /// `operator` or `readonly`.
    pub role: String,
}

/// One worker generation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerInfo {
    /// Worker slot.
    pub worker_id: WorkerId,
    /// Generation in the slot.
    pub generation: u32,
    /// OS pid.
    pub pid: u32,
    /// Agent.
    pub agent_id: String,
    /// Session.
    pub session_id: SessionId,
    /// `starting`, `ready`, `busy`, `idle`, `exited`.
    pub state: String,
    /// RFC 3339.
    pub started_at: String,
    /// RFC 3339.
    pub ready_at: Option<String>,
    /// RFC 3339.
    pub last_heartbeat_at: Option<String>,
    /// RFC 3339.
    pub last_progress_at: Option<String>,
    /// The turn it holds.
    pub current_turn_id: Option<TurnId>,
    /// Turns handed to it.
    pub turns_served: i64,
    /// Exit code.
    pub exit_code: Option<i32>,
    /// Signal name (`SIGKILL`).
    pub signal: Option<String>,
    /// RFC 3339.
    pub exited_at: Option<String>,
    /// Stopped on purpose.
    pub intentional: Option<bool>,
    /// Why it exited.
    pub exit_reason: Option<String>,
    /// The replica that runs it.
    pub replica_id: String,
}

/// One turn.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TurnInfo {
    /// The turn.
    pub turn_id: TurnId,
    /// Its session.
    pub session_id: SessionId,
    /// Its agent.
    pub agent_id: String,
    /// Its message id.
    pub message_id: String,
    /// `queued`, `dispatched`, `streaming`, `completed`, `failed`.
    pub state: String,
    /// Stranded now (see the store's definition).
    pub stranded: bool,
    /// Worker slot.
    pub worker_id: Option<WorkerId>,
    /// Worker generation.
    pub worker_generation: Option<u32>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub dispatched_at: Option<String>,
    /// RFC 3339.
    pub first_output_at: Option<String>,
    /// RFC 3339.
    pub last_progress_at: Option<String>,
    /// RFC 3339.
    pub deadline_at: Option<String>,
    /// RFC 3339.
    pub ended_at: Option<String>,
    /// `completed` or `failed`.
    pub outcome: Option<String>,
    /// Failure code.
    pub code: Option<String>,
    /// Failure sentence.
    pub error: Option<String>,
    /// The message text: operators only, one turn's detail only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
}

/// A page of a list.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    /// Always true.
    pub success: bool,
    /// The rows.
    pub items: Vec<T>,
    /// Pass as `?cursor=` for the next page; absent on the last.
    pub next_cursor: Option<String>,
}

/// `GET /api/v1/admin/workers/{id}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerDetail {
    /// Always true.
    pub success: bool,
    /// The newest generation.
    pub worker: WorkerInfo,
    /// Its generations, newest first (its exits).
    pub generations: Vec<WorkerInfo>,
    /// The last stderr lines of the newest generation.
    pub stderr_tail: Vec<String>,
    /// Its recent turns, newest first.
    pub recent_turns: Vec<TurnInfo>,
    /// Its rejected and late output, newest first.
    pub rejected_output: Vec<Value>,
}

/// `GET /api/v1/admin/turns/{id}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TurnDetail {
    /// Always true.
    pub success: bool,
    /// The turn.
    pub turn: TurnInfo,
    /// Every state change and the worker events behind it, oldest first.
    pub timeline: Vec<TimelineEntry>,
}

/// One step of a turn's timeline.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TimelineEntry {
    /// `admin` (lifecycle log) or `session` (what the client was sent).
    pub source: String,
    /// Sequence number in that log.
    pub seq: i64,
    /// Event name.
    pub kind: String,
    /// Event data.
    pub data: Value,
}

/// The admin stream's first event for a client without a cursor.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    /// Live workers.
    pub workers: Vec<WorkerInfo>,
    /// Open turns.
    pub turns: Vec<TurnInfo>,
}
