//! Admin API wire types (protocol.md §3), shared by the gateway, the CLI and the console.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

use super::ErrorCode;
use super::state::{Outcome, RejectionKind, ReplicaState, TurnState, WorkerState};
use super::time::{rfc3339, rfc3339_opt};
use crate::ids::{MessageId, ReplicaId, SessionId, TurnId, WorkerId};

mod act;

pub use act::{CancelRequest, Cancelled, Health, HealthStatus, KillAccepted, KillRequest};

/// The admin lists' filters: `?state=&agent=&session=&worker=&limit=&cursor=`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ListQuery {
    /// A state or a set (`live`; `open`, `stranded`), as [`WorkerFilter`] or [`TurnFilter`]
    /// reads it.
    ///
    /// [`WorkerFilter`]: super::state::WorkerFilter
    /// [`TurnFilter`]: super::state::TurnFilter
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// One agent only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// One session only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// One worker slot only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    /// Rows per page (1..=1000, default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
    /// The previous page's `nextCursor`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

impl ListQuery {
    /// Rows in one state or set, up to `limit`.
    pub fn of(state: impl std::fmt::Display, limit: i64) -> Self {
        Self {
            state: Some(state.to_string()),
            limit: Some(limit),
            ..Self::default()
        }
    }
}

/// `GET /api/v1/admin/overview`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Overview {
    /// Always true.
    #[serde(default)]
    pub success: bool,
    /// Gateway version.
    pub version: String,
    /// Seconds since the gateway started.
    pub uptime_seconds: u64,
    /// Live replicas sharing the store.
    pub replicas: u32,
    /// Live workers by state.
    pub workers: BTreeMap<WorkerState, i64>,
    /// Turns by state.
    pub turns: BTreeMap<TurnState, i64>,
    /// Failed turns by code.
    pub failed_by_code: BTreeMap<ErrorCode, i64>,
    /// Turns stranded now.
    pub stranded: i64,
    /// The configured agents.
    pub agents: Vec<String>,
    /// Turns failed in the last `recentSeconds`, by code (the header's "failed in 15m").
    #[serde(default)]
    pub failed_recently: BTreeMap<ErrorCode, i64>,
    /// The window of `failedRecently`, in seconds.
    #[serde(default)]
    pub recent_seconds: u64,
    /// The agent a session gets when it names none (`[gateway] default_agent`); absent from
    /// older gateways.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_agent: Option<String>,
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
    /// What the token may do.
    pub role: CallerRole,
}

wire_enum! {
    /// What an admin caller may do.
    pub enum CallerRole {
        /// Read everything and act (kill, cancel).
        Operator = "operator",
        /// Read everything but message content; no actions.
        Readonly = "readonly",
    }
}

#[allow(
    clippy::derivable_impls,
    reason = "`wire_enum!` declares the enum; a derive cannot be added to one of them"
)]
impl Default for CallerRole {
    /// A gateway that does not say (one older than `caller`) is not limiting the caller.
    fn default() -> Self {
        Self::Operator
    }
}

/// `GET /api/v1/admin/replicas`: one gateway process sharing the store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaInfo {
    /// Its id (new at each start).
    pub replica_id: ReplicaId,
    /// Its name (`[gateway] replica_name` or `--replica-name`, else the host name).
    pub name: String,
    /// The host it runs on.
    pub host: String,
    /// Its OS pid.
    pub pid: u32,
    /// Its version.
    pub version: String,
    /// Epoch ms (RFC 3339 on the wire).
    #[serde(with = "rfc3339")]
    pub started_at: i64,
    /// Its last lease renewal: epoch ms (RFC 3339 on the wire).
    #[serde(with = "rfc3339")]
    pub heartbeat_at: i64,
    /// When its lease runs out unless renewed: epoch ms (RFC 3339 on the wire).
    #[serde(with = "rfc3339")]
    pub lease_until: i64,
    /// Live, stopping or lost.
    pub state: ReplicaState,
    /// Its live workers.
    pub workers: i64,
    /// Sessions it owns (runs the actor of).
    pub sessions: i64,
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
    /// Its state.
    pub state: WorkerState,
    /// Epoch ms (RFC 3339 on the wire).
    #[serde(with = "rfc3339")]
    pub started_at: i64,
    /// Epoch ms (RFC 3339 on the wire).
    #[serde(with = "rfc3339_opt")]
    pub ready_at: Option<i64>,
    /// Epoch ms (RFC 3339 on the wire).
    #[serde(with = "rfc3339_opt")]
    pub last_heartbeat_at: Option<i64>,
    /// Epoch ms (RFC 3339 on the wire).
    #[serde(with = "rfc3339_opt")]
    pub last_progress_at: Option<i64>,
    /// The turn it holds.
    pub current_turn_id: Option<TurnId>,
    /// Turns handed to it.
    pub turns_served: i64,
    /// Exit code.
    pub exit_code: Option<i32>,
    /// Signal name (`SIGKILL`).
    pub signal: Option<String>,
    /// Epoch ms (RFC 3339 on the wire).
    #[serde(with = "rfc3339_opt")]
    pub exited_at: Option<i64>,
    /// Stopped on purpose.
    pub intentional: Option<bool>,
    /// Why it exited.
    pub exit_reason: Option<String>,
    /// The replica that runs it.
    pub replica_id: ReplicaId,
    /// Its process as `/proc` showed it lately: present for a live worker of the replica that
    /// answered, once sampled (Linux only); absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<ProcessSample>,
}

/// A worker process's truth, read from `/proc` (protocol.md §4): sampled about once a second
/// while someone watches, kept in memory only.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcessSample {
    /// When it was read: epoch ms (RFC 3339 on the wire).
    #[serde(with = "rfc3339")]
    pub sampled_at: i64,
    /// The scheduler state of its main thread.
    pub state: ProcessState,
    /// CPU used since the previous sample of this process (or, for the first, since it
    /// started), in percent of one core: 100 is one full core, more with threads on several.
    pub cpu_percent: f64,
    /// Resident memory, in bytes.
    pub rss_bytes: u64,
    /// Its threads.
    pub threads: u32,
    /// Its open file descriptors; `null` when the gateway may not read them, or in a light
    /// sample.
    pub fds: Option<u32>,
    /// Its direct child processes; `null` in a light sample (the stream's and the list's:
    /// only a worker's own detail is sampled wholly).
    pub children: Option<u32>,
    /// The kernel function it sleeps in (`/proc/PID/wchan`), when the kernel says; never in a
    /// light sample.
    pub wchan: Option<String>,
}

wire_enum! {
    /// A process's scheduler state, as `/proc/PID/stat` letters it.
    pub enum ProcessState {
        /// `R`: running or runnable.
        Running = "running",
        /// `S`: sleeping, interruptibly (waiting for input, a timer, a lock).
        Sleeping = "sleeping",
        /// `D`: in uninterruptible (usually disk or network file system) wait.
        DiskWait = "disk_wait",
        /// `T` or `t`: stopped by a signal (`SIGSTOP`) or a tracer.
        Stopped = "stopped",
        /// `Z`: exited, not yet reaped by its parent.
        Zombie = "zombie",
        /// `X`: dead.
        Dead = "dead",
        /// `I`: an idle kernel thread.
        Idle = "idle",
        /// Another letter, or a state this version does not know.
        #[serde(other)]
        Other = "other",
    }
}

impl ProcessState {
    /// The state a `/proc/PID/stat` letter names.
    pub fn from_letter(letter: char) -> Self {
        match letter {
            'R' => Self::Running,
            'S' => Self::Sleeping,
            'D' => Self::DiskWait,
            'T' | 't' => Self::Stopped,
            'Z' => Self::Zombie,
            'X' | 'x' => Self::Dead,
            'I' => Self::Idle,
            _ => Self::Other,
        }
    }
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
    pub message_id: MessageId,
    /// Its state.
    pub state: TurnState,
    /// Stranded now (see the store's definition).
    pub stranded: bool,
    /// Worker slot.
    pub worker_id: Option<WorkerId>,
    /// Worker generation.
    pub worker_generation: Option<u32>,
    /// The replica that runs (or ran) the worker it was dispatched to: `null` while queued,
    /// and for a worker recorded before replicas were.
    pub replica_id: Option<ReplicaId>,
    /// Epoch ms (RFC 3339 on the wire).
    #[serde(with = "rfc3339")]
    pub created_at: i64,
    /// Epoch ms (RFC 3339 on the wire).
    #[serde(with = "rfc3339_opt")]
    pub dispatched_at: Option<i64>,
    /// Epoch ms (RFC 3339 on the wire).
    #[serde(with = "rfc3339_opt")]
    pub first_output_at: Option<i64>,
    /// Epoch ms (RFC 3339 on the wire).
    #[serde(with = "rfc3339_opt")]
    pub last_progress_at: Option<i64>,
    /// Epoch ms (RFC 3339 on the wire).
    #[serde(with = "rfc3339_opt")]
    pub deadline_at: Option<i64>,
    /// The agent's stall timeout (ms) its worker runs under, once dispatched: the stall clock
    /// fires at `lastProgressAt + stallMs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stall_ms: Option<i64>,
    /// Epoch ms (RFC 3339 on the wire).
    #[serde(with = "rfc3339_opt")]
    pub ended_at: Option<i64>,
    /// How it ended.
    pub outcome: Option<Outcome>,
    /// Failure code.
    pub code: Option<ErrorCode>,
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
    pub rejected_output: Vec<RejectedLine>,
}

/// A worker line the gateway did not act on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RejectedLine {
    /// The generation that wrote it.
    pub generation: u32,
    /// The turn it named.
    pub turn_id: Option<TurnId>,
    /// Rejected or late.
    pub kind: RejectionKind,
    /// Why.
    pub reason: String,
    /// The line (clipped).
    pub line: String,
    /// Epoch ms (RFC 3339 on the wire).
    #[serde(with = "rfc3339")]
    pub at: i64,
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
    /// Which log the step is from.
    pub source: TimelineSource,
    /// Sequence number in that log.
    pub seq: i64,
    /// Event name.
    pub kind: String,
    /// Event data.
    pub data: Value,
}

/// A timeline step, read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TimelineEvent {
    /// A lifecycle event.
    Admin(super::AdminEvent),
    /// What the client was sent.
    Session(super::SessionEvent),
}

impl TimelineEntry {
    /// The step as the vocabulary reads it (`None` for one this version does not know).
    pub fn event(&self) -> Option<TimelineEvent> {
        match self.source {
            TimelineSource::Admin => super::AdminEvent::parse(&self.kind, self.data.clone())
                .ok()
                .map(TimelineEvent::Admin),
            TimelineSource::Session => super::SessionEvent::parse(&self.kind, self.data.clone())
                .ok()
                .map(TimelineEvent::Session),
        }
    }
}

impl TimelineEvent {
    /// When it happened (epoch ms), when it says.
    pub fn timestamp(&self) -> Option<i64> {
        match self {
            Self::Admin(e) => Some(e.timestamp()),
            Self::Session(e) => e.timestamp(),
        }
    }
}

/// The admin stream's first event for a client without a cursor.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    /// Live workers.
    pub workers: Vec<WorkerInfo>,
    /// Open turns.
    pub turns: Vec<TurnInfo>,
    /// The log did not reach the cursor sent: this snapshot replaces what the client had.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub gap: bool,
    /// `null` after a gap (as a session stream's `connected` says it), absent otherwise:
    /// `Some(())` is written as `null`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resumed_from: Option<()>,
}

wire_enum! {
    /// The log a timeline step comes from.
    pub enum TimelineSource {
        /// The admin lifecycle log.
        Admin = "admin",
        /// The session's event log (what the client was sent).
        Session = "session",
    }
}
