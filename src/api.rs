//! The vocabulary the gateway and its clients share, defined once: states, events, codes,
//! request and response bodies, and the worker protocol's lines (protocol.md §1–§4).
//!
//! Every name the wire carries (a state, an event, a code) is an enum variant here; other
//! layers match on the enum, so two layers cannot disagree on a spelling.

/// Declares a fieldless enum whose variants have wire names: serde, `as_str`, `Display` and
/// `FromStr` all read the one table, so a name is written once.
macro_rules! wire_enum {
    ($(#[$doc:meta])* pub enum $name:ident { $($(#[$vdoc:meta])* $variant:ident = $wire:literal,)* }) => {
        $(#[$doc])*
        #[derive(
            Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord,
            serde::Serialize, serde::Deserialize,
        )]
        pub enum $name {
            $($(#[$vdoc])* #[serde(rename = $wire)] $variant,)*
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &[Self] = &[$(Self::$variant),*];

            /// The wire name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $wire,)*
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.pad(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::api::UnknownName;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($wire => Ok(Self::$variant),)*
                    _ => Err($crate::api::UnknownName(s.to_owned())),
                }
            }
        }
    };
}

pub mod admin;
mod code;
pub mod lifecycle;
pub mod lobu;
pub mod session;
pub mod state;
pub mod time;
mod worker;

use serde::{Deserialize, Serialize};

use crate::ids::{MessageId, TurnId};

pub use code::ErrorCode;
pub use lifecycle::AdminEvent;
pub use session::{EventKind, SessionEvent, TurnEnding};
pub use state::{Outcome, TurnState, WorkerState};
pub use worker::{FromWorker, ToWorker};

/// The API's path prefixes: the first is turnwatch's own, the second the Lobu gateway's, under
/// which every route is served too.
pub const API_PREFIXES: [&str; 2] = ["/api/v1", "/lobu/api/v1"];

/// A name that is not one of an enum's wire names.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown name `{0}`")]
pub struct UnknownName(pub String);

/// An SSE event that could not be read as the vocabulary's.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// The event name is not one this version knows.
    #[error(transparent)]
    UnknownName(#[from] UnknownName),
    /// The data is not that event's payload.
    #[error("malformed event data: {0}")]
    Data(#[from] serde_json::Error),
}

/// The name of a signal number, `SIG...`, as the wire shows it.
pub fn signal_name(signal: i32) -> String {
    nix::sys::signal::Signal::try_from(signal)
        .map_or_else(|_| format!("SIG{signal}"), |s| s.as_str().to_owned())
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
    /// Any other field: the gateway refuses those it does not honour (400
    /// `unsupported_field`) rather than ignore them.
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
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

/// `POST /api/v1/agents/{id}/stream-ticket` and `POST /api/v1/admin/stream-ticket` reply: a
/// ticket that opens one stream, for a client that cannot send `Authorization` (a browser's
/// `EventSource`).
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TicketIssued {
    /// Always true.
    pub success: bool,
    /// The ticket: single use, bound to the stream it was asked for.
    pub ticket: String,
    /// When it stops being accepted (RFC 3339).
    pub expires_at: String,
    /// How long it is valid from now, in whole seconds.
    pub expires_in: u64,
    /// The stream's path with the ticket in its query (`?ticket=`); add `&since=N` to resume.
    pub events_url: String,
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
    /// Any other field: the gateway refuses those it does not honour (400
    /// `unsupported_field`) rather than ignore them.
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
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

/// `GET /api/v1/agents/{id}` reply.
#[derive(Debug, Serialize, Deserialize)]
pub struct SessionInfo {
    /// Always true.
    pub success: bool,
    /// The session.
    pub agent: SessionStatus,
}

/// A session as `GET /api/v1/agents/{id}` shows it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionStatus {
    /// The session id.
    pub agent_id: crate::ids::SessionId,
    /// The configured agent it talks to.
    pub agent: String,
    /// Always active (a deleted session is 410).
    pub status: SessionState,
    /// Epoch ms (RFC 3339 on the wire).
    #[serde(with = "time::rfc3339")]
    pub created_at: i64,
    /// Epoch ms (RFC 3339 on the wire).
    #[serde(with = "time::rfc3339")]
    pub last_activity: i64,
    /// Whether a client holds its event stream now.
    pub has_active_connection: bool,
}

wire_enum! {
    /// A session's state as the Agent API shows it.
    pub enum SessionState {
        /// Takes messages.
        Active = "active",
    }
}

/// `DELETE /api/v1/agents/{id}` reply.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionDeleted {
    /// Always true.
    pub success: bool,
    /// `session deleted`.
    pub message: String,
    /// The session id.
    pub agent_id: crate::ids::SessionId,
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
    /// The request field the error is about (`unsupported_field`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

#[cfg(test)]
mod tests;
