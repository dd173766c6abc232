//! Wire types shared by the gateway and its clients: error codes, request and response bodies,
//! session event payloads, and the worker protocol's lines (protocol.md §1, §2, §4).

pub mod admin;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::ids::{MessageId, TurnId};

/// Why a turn failed (protocol.md §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The worker reported the error.
    AgentError,
    /// The worker exited non-zero or by a signal mid-turn.
    WorkerCrashed,
    /// The worker exited 0 mid-turn.
    WorkerExited,
    /// The worker command could not start.
    WorkerSpawnFailed,
    /// No `ready` within the startup timeout.
    WorkerStartupTimeout,
    /// No progress within the stall timeout.
    TurnStalled,
    /// The hard per-turn limit ran out.
    TurnDeadlineExceeded,
    /// The worker broke the protocol (an oversized line).
    WorkerProtocolError,
    /// An operator killed the worker or cancelled the turn.
    CancelledByOperator,
    /// The session was deleted with the turn in flight.
    SessionDeleted,
    /// No worker capacity within the queue timeout.
    QueueTimeout,
    /// The gateway stopped gracefully with the turn in flight.
    GatewayShutdown,
    /// The gateway died with the turn in flight; failed at its restart.
    GatewayRestarted,
    /// The owning replica's lease expired.
    ReplicaLost,
    /// The database could not record the turn's events.
    StoreUnavailable,
}

impl ErrorCode {
    /// The code's wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AgentError => "agent_error",
            Self::WorkerCrashed => "worker_crashed",
            Self::WorkerExited => "worker_exited",
            Self::WorkerSpawnFailed => "worker_spawn_failed",
            Self::WorkerStartupTimeout => "worker_startup_timeout",
            Self::TurnStalled => "turn_stalled",
            Self::TurnDeadlineExceeded => "turn_deadline_exceeded",
            Self::WorkerProtocolError => "worker_protocol_error",
            Self::CancelledByOperator => "cancelled_by_operator",
            Self::SessionDeleted => "session_deleted",
            Self::QueueTimeout => "queue_timeout",
            Self::GatewayShutdown => "gateway_shutdown",
            Self::GatewayRestarted => "gateway_restarted",
            Self::ReplicaLost => "replica_lost",
            Self::StoreUnavailable => "store_unavailable",
        }
    }

    /// Whether a turn ending with this code was stranded first: its worker gone, or one of its
    /// clocks run out. (Cancels, deletes and shutdowns are decisions, not strandings.)
    pub fn strands(self) -> bool {
        matches!(
            self,
            Self::WorkerCrashed
                | Self::WorkerExited
                | Self::WorkerStartupTimeout
                | Self::TurnStalled
                | Self::TurnDeadlineExceeded
                | Self::WorkerProtocolError
                | Self::QueueTimeout
                | Self::GatewayRestarted
                | Self::ReplicaLost
        )
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        serde_json::from_value(Value::String(s.to_owned())).ok()
    }
}

/// How a turn ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The worker completed it.
    Completed,
    /// It failed; the turn's code says why.
    Failed,
}

impl Outcome {
    /// The outcome's wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Completed => "completed",
            Self::Failed => "failed",
        }
    }
}

/// The name of a signal number, `SIG...`, as the wire shows it.
pub fn signal_name(signal: i32) -> String {
    nix::sys::signal::Signal::try_from(signal)
        .map_or_else(|_| format!("SIG{signal}"), |s| s.as_str().to_owned())
}

/// Everything needed to write a turn's terminal events.
#[derive(Clone, Debug)]
pub struct TurnEnding {
    /// Completed or failed.
    pub outcome: Outcome,
    /// Set when failed.
    pub code: Option<ErrorCode>,
    /// The human sentence, when failed.
    pub error: Option<String>,
    /// The worker's final text, when completed.
    pub final_text: Option<String>,
    /// The worker's exit code, when its exit failed the turn.
    pub exit_code: Option<i32>,
    /// The signal that killed the worker, when one did.
    pub signal: Option<i32>,
}

impl TurnEnding {
    /// A successful ending.
    pub fn completed(final_text: Option<String>) -> Self {
        Self {
            outcome: Outcome::Completed,
            code: None,
            error: None,
            final_text,
            exit_code: None,
            signal: None,
        }
    }

    /// A failed ending with its code and sentence.
    pub fn failed(code: ErrorCode, error: impl Into<String>) -> Self {
        Self {
            outcome: Outcome::Failed,
            code: Some(code),
            error: Some(error.into()),
            final_text: None,
            exit_code: None,
            signal: None,
        }
    }

    /// Adds the exit status that caused the failure.
    #[must_use]
    pub fn with_exit(mut self, exit_code: Option<i32>, signal: Option<i32>) -> Self {
        self.exit_code = exit_code;
        self.signal = signal;
        self
    }

    /// The session events that end the turn: `error`, `agent-error`, `complete` for a failure;
    /// `complete` alone for a success.
    pub fn events(&self, turn: &TurnId, message: &MessageId, ts: i64) -> Vec<(EventKind, Value)> {
        let mut out = Vec::with_capacity(3);
        if self.outcome == Outcome::Failed {
            let mut err = json!({
                "type": "error",
                "error": self.error.clone().unwrap_or_else(|| "the turn failed".into()),
                "code": self.code.unwrap_or(ErrorCode::AgentError).as_str(),
                "messageId": message,
                "turnId": turn,
                "timestamp": ts,
            });
            if let Some(c) = self.exit_code {
                err["exitCode"] = json!(c);
            }
            if let Some(s) = self.signal {
                err["signal"] = json!(signal_name(s));
            }
            out.push((EventKind::Error, err.clone()));
            out.push((EventKind::AgentError, err));
        }
        let mut complete = json!({
            "type": "complete",
            "status": self.outcome.as_str(),
            "messageId": message,
            "processedMessageIds": [message],
            "turnId": turn,
            "timestamp": ts,
        });
        if let Some(t) = &self.final_text {
            complete["finalText"] = json!(t);
        }
        out.push((EventKind::Complete, complete));
        out
    }
}

/// The logged kinds of session events (protocol.md §1.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// Streamed text.
    Output,
    /// A worker progress note.
    Status,
    /// The turn failed.
    Error,
    /// Same as `error`, for browsers' `EventSource`.
    AgentError,
    /// The terminal event of a turn.
    Complete,
    /// The session was deleted.
    Closed,
}

impl EventKind {
    /// The SSE event name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Output => "output",
            Self::Status => "status",
            Self::Error => "error",
            Self::AgentError => "agent-error",
            Self::Complete => "complete",
            Self::Closed => "closed",
        }
    }
}

/// `POST /api/v1/agents` body.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateSession {
    /// The configured agent to talk to; the default agent when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// A conversation key: the same agent and thread resume one session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread: Option<String>,
    /// Start a new session even when the thread has one.
    #[serde(default)]
    pub force_new: bool,
}

/// `POST /api/v1/agents` reply.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionCreated {
    /// Always true.
    pub success: bool,
    /// The session id.
    pub agent_id: String,
    /// Bearer token bound to the session.
    pub token: String,
    /// When the token stops being accepted (RFC 3339).
    pub expires_at: String,
    /// The session's event stream path.
    pub sse_url: String,
    /// The session's message path.
    pub messages_url: String,
}

/// `POST .../messages` body.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PostMessage {
    /// The message text.
    #[serde(default, alias = "message")]
    pub content: Option<String>,
    /// Client-chosen id; a repeat is idempotent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
}

/// `POST .../messages` reply.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageQueued {
    /// Always true.
    pub success: bool,
    /// The message id (the client's or a generated one).
    pub message_id: MessageId,
    /// The turn it became.
    pub turn_id: TurnId,
    /// Always true.
    pub queued: bool,
    /// Set when this `messageId` was already accepted.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deduplicated: bool,
}

/// An error body: `{success: false, error, code}`.
#[derive(Debug, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Always false.
    pub success: bool,
    /// A sentence for a person.
    pub error: String,
    /// A machine code.
    pub code: String,
}

/// A line the gateway writes to a worker's stdin.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ToWorker {
    /// Handle this turn.
    #[serde(rename_all = "camelCase")]
    Turn {
        /// The turn.
        turn_id: TurnId,
        /// Its message.
        message_id: MessageId,
        /// The message text.
        content: String,
    },
    /// Stop working on this turn; the gateway already ended it.
    #[serde(rename_all = "camelCase")]
    Cancel {
        /// The turn.
        turn_id: TurnId,
    },
    /// Exit cleanly now.
    Shutdown,
}

/// A line a worker writes to its stdout.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum FromWorker {
    /// Able to take turns.
    Ready,
    /// Streamed text.
    #[serde(rename_all = "camelCase")]
    Delta {
        /// The turn.
        turn_id: TurnId,
        /// The text.
        content: String,
    },
    /// A progress note.
    #[serde(rename_all = "camelCase")]
    Status {
        /// The turn.
        turn_id: TurnId,
        /// What the worker is doing.
        state: String,
    },
    /// The process is alive (not turn progress).
    Heartbeat,
    /// The turn succeeded.
    #[serde(rename_all = "camelCase")]
    Complete {
        /// The turn.
        turn_id: TurnId,
        /// The whole reply, if the worker gives it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        final_text: Option<String>,
    },
    /// The turn failed inside the worker.
    #[serde(rename_all = "camelCase")]
    Error {
        /// The turn.
        turn_id: TurnId,
        /// The sentence.
        error: String,
        /// The worker's own code, kept in the sentence.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<String>,
    },
}

impl FromWorker {
    /// The turn the line is about, if any.
    pub fn turn_id(&self) -> Option<&TurnId> {
        match self {
            Self::Delta { turn_id, .. }
            | Self::Status { turn_id, .. }
            | Self::Complete { turn_id, .. }
            | Self::Error { turn_id, .. } => Some(turn_id),
            Self::Ready | Self::Heartbeat => None,
        }
    }
}
