//! The session stream's events (protocol.md §1.1), typed: what the gateway logs and sends, and
//! what a client reads back, are the same structs.
//!
//! The SSE `event:` name says which payload `data:` carries ([`SessionEvent::kind`] and
//! [`SessionEvent::parse`]); the turn events' payloads also carry the Lobu gateway's `type`.

use serde::{Deserialize, Serialize};

use super::{ErrorCode, Outcome, signal_name};
use crate::ids::{MessageId, SessionId, TurnId};

wire_enum! {
    /// The SSE event names of a session stream.
    pub enum EventKind {
        /// First event of every connection; not logged, no id.
        Connected = "connected",
        /// Streamed text.
        Output = "output",
        /// A worker progress note.
        Status = "status",
        /// The turn failed.
        Error = "error",
        /// Same as `error`, for browsers' `EventSource`.
        AgentError = "agent-error",
        /// The terminal event of a turn.
        Complete = "complete",
        /// The session was deleted.
        Closed = "closed",
        /// A keep-alive for clients that only see events; not logged, no id.
        Ping = "ping",
    }
}

/// `connected`: where this connection stands in the session's log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Connected {
    /// The session (the Agent API's name for it).
    pub agent_id: SessionId,
    /// The session.
    pub session_id: SessionId,
    /// Epoch ms.
    pub timestamp: i64,
    /// The cursor resumed from; `null` without one, or after a gap.
    pub resumed_from: Option<i64>,
    /// The log's last id when the connection opened: where a client with no event id yet
    /// resumes from.
    #[serde(default)]
    pub last_event_id: Option<i64>,
    /// The log does not line up with the cursor sent (pruned, or another database).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub gap: bool,
}

/// `output`: streamed text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename = "delta", rename_all = "camelCase")]
pub struct Delta {
    /// The text (absent from a timeline shown to a reader who may not see it).
    #[serde(default)]
    pub content: String,
    /// The turn's message.
    pub message_id: MessageId,
    /// The turn.
    pub turn_id: TurnId,
    /// Epoch ms.
    pub timestamp: i64,
}

/// `status`: a worker's progress note.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename = "status", rename_all = "camelCase")]
pub struct StatusNote {
    /// What the worker says it is doing.
    pub status: Progress,
    /// The turn's message.
    pub message_id: MessageId,
    /// The turn.
    pub turn_id: TurnId,
    /// Epoch ms.
    pub timestamp: i64,
}

/// A status note's body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    /// The worker's own words.
    pub state: String,
    /// Seconds since the turn was dispatched.
    pub elapsed_seconds: u64,
}

/// `error` and `agent-error`: the turn failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename = "error", rename_all = "camelCase")]
pub struct Failure {
    /// A sentence for a person.
    pub error: String,
    /// Why, for a machine.
    pub code: ErrorCode,
    /// The turn's message.
    pub message_id: MessageId,
    /// The turn.
    pub turn_id: TurnId,
    /// The worker's exit code, when its exit failed the turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// The signal that killed the worker (`SIGKILL`), when one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    /// Epoch ms.
    pub timestamp: i64,
}

/// `complete`: the turn's one terminal event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename = "complete", rename_all = "camelCase")]
pub struct Completion {
    /// Completed or failed.
    pub status: Outcome,
    /// The turn's message.
    pub message_id: MessageId,
    /// The messages this turn answered (its own).
    pub processed_message_ids: Vec<MessageId>,
    /// The whole reply, when completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_text: Option<String>,
    /// The turn.
    pub turn_id: TurnId,
    /// Epoch ms.
    pub timestamp: i64,
}

/// `closed`: the session was deleted; the stream ends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Closed {
    /// Why.
    pub reason: String,
}

/// `ping`: a keep-alive event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ping {
    /// Epoch ms.
    pub timestamp: i64,
}

/// The turn an event's data names, read alone: enough to tell whose an event is when the rest
/// of it cannot be read (an event of a newer gateway).
pub fn turn_of(data: &serde_json::Value) -> Option<TurnId> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct TurnField {
        turn_id: Option<TurnId>,
    }
    TurnField::deserialize(data).ok()?.turn_id
}

/// One event of a session stream: its name and payload together.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionEvent {
    /// `connected`.
    Connected(Connected),
    /// `output`.
    Output(Delta),
    /// `status`.
    Status(StatusNote),
    /// `error`.
    Error(Failure),
    /// `agent-error`.
    AgentError(Failure),
    /// `complete`.
    Complete(Completion),
    /// `closed`.
    Closed(Closed),
    /// `ping`.
    Ping(Ping),
}

impl SessionEvent {
    /// The SSE event name.
    pub fn kind(&self) -> EventKind {
        match self {
            Self::Connected(_) => EventKind::Connected,
            Self::Output(_) => EventKind::Output,
            Self::Status(_) => EventKind::Status,
            Self::Error(_) => EventKind::Error,
            Self::AgentError(_) => EventKind::AgentError,
            Self::Complete(_) => EventKind::Complete,
            Self::Closed(_) => EventKind::Closed,
            Self::Ping(_) => EventKind::Ping,
        }
    }

    /// The `data:` line: one line of JSON.
    pub fn to_data(&self) -> String {
        let json = match self {
            Self::Connected(e) => serde_json::to_string(e),
            Self::Output(e) => serde_json::to_string(e),
            Self::Status(e) => serde_json::to_string(e),
            Self::Error(e) | Self::AgentError(e) => serde_json::to_string(e),
            Self::Complete(e) => serde_json::to_string(e),
            Self::Closed(e) => serde_json::to_string(e),
            Self::Ping(e) => serde_json::to_string(e),
        };
        json.unwrap_or_default() // plain structs of strings and numbers: cannot fail
    }

    /// Reads an event from its SSE name and `data:`.
    ///
    /// # Errors
    /// An unknown name, or data that is not that event's payload.
    pub fn parse(kind: &str, data: serde_json::Value) -> Result<Self, super::EventError> {
        use serde_json::from_value as from;
        let kind: EventKind = kind.parse()?;
        Ok(match kind {
            EventKind::Connected => Self::Connected(from(data)?),
            EventKind::Output => Self::Output(from(data)?),
            EventKind::Status => Self::Status(from(data)?),
            EventKind::Error => Self::Error(from(data)?),
            EventKind::AgentError => Self::AgentError(from(data)?),
            EventKind::Complete => Self::Complete(from(data)?),
            EventKind::Closed => Self::Closed(from(data)?),
            EventKind::Ping => Self::Ping(from(data)?),
        })
    }

    /// When the event happened (epoch ms), when it says.
    pub fn timestamp(&self) -> Option<i64> {
        match self {
            Self::Connected(e) => Some(e.timestamp),
            Self::Output(e) => Some(e.timestamp),
            Self::Status(e) => Some(e.timestamp),
            Self::Error(e) | Self::AgentError(e) => Some(e.timestamp),
            Self::Complete(e) => Some(e.timestamp),
            Self::Ping(e) => Some(e.timestamp),
            Self::Closed(_) => None,
        }
    }

    /// The turn the event belongs to, if any.
    pub fn turn_id(&self) -> Option<&TurnId> {
        match self {
            Self::Output(e) => Some(&e.turn_id),
            Self::Status(e) => Some(&e.turn_id),
            Self::Error(e) | Self::AgentError(e) => Some(&e.turn_id),
            Self::Complete(e) => Some(&e.turn_id),
            Self::Connected(_) | Self::Closed(_) | Self::Ping(_) => None,
        }
    }
}

/// The fields of session events that carry the conversation's text.
const TEXT_FIELDS: [&str; 2] = ["content", "finalText"];

/// Removes the conversation's text from a session event's data (for readers who may see a
/// turn's timeline but not what was said).
pub fn redact_text(data: &mut serde_json::Value) {
    if let Some(obj) = data.as_object_mut() {
        for field in TEXT_FIELDS {
            obj.remove(field);
        }
    }
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
    pub fn events(&self, turn: &TurnId, message: &MessageId, ts: i64) -> Vec<SessionEvent> {
        let mut out = Vec::with_capacity(3);
        if self.outcome == Outcome::Failed {
            let failure = Failure {
                error: self
                    .error
                    .clone()
                    .unwrap_or_else(|| "the turn failed".into()),
                code: self.code.unwrap_or(ErrorCode::AgentError),
                message_id: message.clone(),
                turn_id: turn.clone(),
                exit_code: self.exit_code,
                signal: self.signal.map(signal_name),
                timestamp: ts,
            };
            out.push(SessionEvent::Error(failure.clone()));
            out.push(SessionEvent::AgentError(failure));
        }
        out.push(SessionEvent::Complete(Completion {
            status: self.outcome,
            message_id: message.clone(),
            processed_message_ids: vec![message.clone()],
            final_text: self.final_text.clone(),
            turn_id: turn.clone(),
            timestamp: ts,
        }));
        out
    }
}
