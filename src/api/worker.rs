//! The worker protocol's lines (protocol.md §2): what the gateway writes to a worker's stdin
//! and what a worker writes to its stdout.

use serde::{Deserialize, Serialize};

use crate::ids::{MessageId, TurnId};

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
