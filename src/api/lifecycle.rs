//! The admin log's lifecycle events (protocol.md §3), typed. The store derives them from its
//! writes, the admin stream sends them, the console, `status` and `kill` read them back: all
//! through [`AdminEvent`]. The SSE `event:` name is the variant's name (`worker.spawned`);
//! `data:` is its payload, every one with the epoch-ms `timestamp` it happened at.

use serde::{Deserialize, Serialize};

use super::admin::{ProcessSample, Snapshot};
use super::session::{EventKind, Ping};
use super::state::{ActionKind, RejectionKind};
use super::{ErrorCode, EventError};
use crate::ids::{MessageId, ReplicaId, SessionId, TurnId, WorkerId};

/// Declares [`AdminEvent`] from one table of `"name" => Variant(Payload)`, so an event's name
/// is written once.
macro_rules! admin_events {
    ($($name:literal => $variant:ident($payload:ident),)*) => {
        /// One lifecycle event of the admin log.
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub enum AdminEvent {
            $(
                #[doc = concat!("`", $name, "`.")]
                $variant($payload),
            )*
        }

        impl AdminEvent {
            /// Every event name, in the order of the table.
            pub const NAMES: &[&str] = &[$($name),*];

            /// The SSE event name.
            pub fn kind(&self) -> &'static str {
                match self {
                    $(Self::$variant(_) => $name,)*
                }
            }

            /// When it happened (epoch ms).
            pub fn timestamp(&self) -> i64 {
                match self {
                    $(Self::$variant(e) => e.timestamp,)*
                }
            }

            /// The `data:` line: one line of JSON.
            pub fn to_data(&self) -> String {
                match self {
                    // Plain structs of strings and numbers: serializing cannot fail.
                    $(Self::$variant(e) => serde_json::to_string(e).unwrap_or_default(),)*
                }
            }

            /// Reads an event from its SSE name and `data:`.
            ///
            /// # Errors
            /// An unknown name, or data that is not that event's payload.
            pub fn parse(kind: &str, data: serde_json::Value) -> Result<Self, EventError> {
                match kind {
                    $($name => Ok(Self::$variant(serde_json::from_value(data)?)),)*
                    other => Err(EventError::UnknownName(super::UnknownName(other.to_owned()))),
                }
            }
        }
    };
}

admin_events! {
    "worker.spawned" => WorkerSpawned(WorkerSpawned),
    "worker.ready" => WorkerReady(WorkerReady),
    "worker.exited" => WorkerExited(WorkerExited),
    "worker.output_rejected" => OutputRejected(OutputRejected),
    "turn.queued" => TurnQueued(TurnQueued),
    "turn.dispatched" => TurnDispatched(TurnDispatched),
    "turn.progress" => TurnProgress(TurnProgress),
    "turn.stranded" => TurnStranded(TurnStranded),
    "turn.completed" => TurnCompleted(TurnEnded),
    "turn.failed" => TurnFailed(TurnEnded),
    "operator.action" => OperatorAction(OperatorAction),
}

impl AdminEvent {
    /// The turn the event is about, if any.
    pub fn turn_id(&self) -> Option<&TurnId> {
        match self {
            Self::TurnQueued(e) => Some(&e.turn_id),
            Self::TurnDispatched(e) => Some(&e.turn_id),
            Self::TurnProgress(e) => Some(&e.turn_id),
            Self::TurnStranded(e) => Some(&e.turn_id),
            Self::TurnCompleted(e) | Self::TurnFailed(e) => Some(&e.turn_id),
            Self::OutputRejected(e) => e.turn_id.as_ref(),
            Self::WorkerSpawned(_)
            | Self::WorkerReady(_)
            | Self::WorkerExited(_)
            | Self::OperatorAction(_) => None,
        }
    }

    /// The worker slot the event is about, if any.
    pub fn worker_id(&self) -> Option<&WorkerId> {
        match self {
            Self::WorkerSpawned(e) => Some(&e.worker_id),
            Self::WorkerReady(e) => Some(&e.worker_id),
            Self::WorkerExited(e) => Some(&e.worker_id),
            Self::OutputRejected(e) => Some(&e.worker_id),
            Self::TurnDispatched(e) => Some(&e.worker_id),
            Self::TurnQueued(_)
            | Self::TurnProgress(_)
            | Self::TurnStranded(_)
            | Self::TurnCompleted(_)
            | Self::TurnFailed(_)
            | Self::OperatorAction(_) => None,
        }
    }
}

/// `worker.spawned`: a worker process started.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerSpawned {
    /// The slot.
    pub worker_id: WorkerId,
    /// Its generation.
    pub generation: u32,
    /// OS pid.
    pub pid: u32,
    /// The agent it runs.
    pub agent_id: String,
    /// The session it serves.
    pub session_id: SessionId,
    /// Epoch ms.
    pub timestamp: i64,
    /// The replica that runs it (absent from gateways older than replicas).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica_id: Option<ReplicaId>,
}

/// `worker.ready`: the worker reported `ready`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerReady {
    /// The slot.
    pub worker_id: WorkerId,
    /// Its generation.
    pub generation: u32,
    /// Epoch ms.
    pub timestamp: i64,
}

/// `worker.exited`: a worker process ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerExited {
    /// The slot.
    pub worker_id: WorkerId,
    /// Its generation.
    pub generation: u32,
    /// Its exit code, when it exited.
    pub exit_code: Option<i32>,
    /// The signal that killed it (`SIGKILL`), when one did.
    pub signal: Option<String>,
    /// Stopped on purpose.
    pub intentional: bool,
    /// Why, in a word or two (`crashed`, `operator_kill`, `idle_reap`, ...).
    pub reason: String,
    /// Epoch ms.
    pub timestamp: i64,
}

/// `worker.output_rejected`: a worker line the gateway did not act on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutputRejected {
    /// The slot.
    pub worker_id: WorkerId,
    /// Its generation.
    pub generation: u32,
    /// The turn the line named, if any.
    pub turn_id: Option<TurnId>,
    /// Rejected or late.
    pub kind: RejectionKind,
    /// Why.
    pub reason: String,
    /// Epoch ms.
    pub timestamp: i64,
}

/// `turn.queued`: a message was accepted as a turn.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TurnQueued {
    /// The turn.
    pub turn_id: TurnId,
    /// Its session.
    pub session_id: SessionId,
    /// Its agent.
    pub agent_id: String,
    /// Its message.
    pub message_id: MessageId,
    /// Epoch ms.
    pub timestamp: i64,
}

/// `turn.dispatched`: a turn was handed to a worker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TurnDispatched {
    /// The turn.
    pub turn_id: TurnId,
    /// The worker slot.
    pub worker_id: WorkerId,
    /// Its generation.
    pub generation: u32,
    /// The hard deadline (epoch ms).
    pub deadline_at: i64,
    /// The agent's stall timeout (ms): the stall clock fires at the last progress plus this
    /// (absent from older gateways).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stall_ms: Option<i64>,
    /// Epoch ms.
    pub timestamp: i64,
    /// The replica that dispatched it (absent from gateways older than replicas).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica_id: Option<ReplicaId>,
}

/// `turn.progress`: the turn produced something (at most once a second).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TurnProgress {
    /// The turn.
    pub turn_id: TurnId,
    /// Epoch ms.
    pub timestamp: i64,
}

/// `turn.stranded`: the turn's worker is gone or a clock ran out; its failure follows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TurnStranded {
    /// The turn.
    pub turn_id: TurnId,
    /// Its session.
    pub session_id: SessionId,
    /// The code it is failed with.
    pub reason: Option<ErrorCode>,
    /// Epoch ms.
    pub timestamp: i64,
}

/// `turn.completed` and `turn.failed`: the turn ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TurnEnded {
    /// The turn.
    pub turn_id: TurnId,
    /// Its session.
    pub session_id: SessionId,
    /// Why it failed (`turn.failed` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<ErrorCode>,
    /// The failure's sentence (`turn.failed` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The worker's exit code, when its exit failed the turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// The signal that killed the worker, when one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    /// Epoch ms.
    pub timestamp: i64,
}

/// `operator.action`: an operator killed a worker or cancelled a turn (logged before the
/// effect it causes).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OperatorAction {
    /// What was done.
    pub action: ActionKind,
    /// The worker or turn acted on.
    pub target: String,
    /// The operator's reason.
    pub reason: String,
    /// The token's configured name.
    pub token: String,
    /// Epoch ms.
    pub timestamp: i64,
}

/// `worker.sampled`: a live worker's process, as `/proc` showed it just now. Not a lifecycle
/// event: it is never logged, and its SSE frame carries no `id:` (it does not move a client's
/// resume cursor); sent at most once a second per live worker while admin streams are open.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerSampled {
    /// The slot.
    pub worker_id: WorkerId,
    /// Its generation.
    pub generation: u32,
    /// What its process was doing.
    pub process: ProcessSample,
}

/// One event of the admin stream: the `snapshot` a cursorless connection starts with, a
/// `ping`, a lifecycle event, or a worker's process sample.
#[derive(Clone, Debug, PartialEq)]
pub enum AdminStreamEvent {
    /// `snapshot`: live workers and open turns, where the stream starts.
    Snapshot(Box<Snapshot>),
    /// `ping`: a keep-alive.
    Ping(Ping),
    /// A lifecycle event.
    Event(AdminEvent),
    /// `worker.sampled`: a process sample (no `id:`, not in the log).
    Sampled(Box<WorkerSampled>),
}

impl AdminStreamEvent {
    /// The `snapshot` event's name.
    pub const SNAPSHOT: &str = "snapshot";
    /// The `worker.sampled` event's name.
    pub const WORKER_SAMPLED: &str = "worker.sampled";

    /// Reads an admin stream event from its SSE name and `data:`.
    ///
    /// # Errors
    /// An unknown name, or data that is not that event's payload.
    pub fn parse(kind: &str, data: serde_json::Value) -> Result<Self, EventError> {
        if kind == Self::SNAPSHOT {
            Ok(Self::Snapshot(Box::new(serde_json::from_value(data)?)))
        } else if kind == EventKind::Ping.as_str() {
            Ok(Self::Ping(serde_json::from_value(data)?))
        } else if kind == Self::WORKER_SAMPLED {
            Ok(Self::Sampled(Box::new(serde_json::from_value(data)?)))
        } else {
            AdminEvent::parse(kind, data).map(Self::Event)
        }
    }
}
