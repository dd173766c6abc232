//! The Lobu gateway's own shapes, for what turnwatch serves under `/lobu` (and `/api/local-init`):
//! written from Lobu's published schema (`packages/server/src/gateway/routes/public/agent.ts`,
//! its zod `CreateAgentResponseSchema` and `AgentStatusResponseSchema`; the CLI's
//! `internal/credentials.ts` for local-init). Under `/api/v1` turnwatch keeps its own
//! conventions (RFC 3339 times, relative URLs).

use serde::{Deserialize, Serialize};

/// `POST /lobu/api/v1/agents` reply: `expiresAt` a number (epoch ms), absolute URLs.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LobuSessionCreated {
    /// Always true.
    pub success: bool,
    /// The session id.
    pub agent_id: String,
    /// Bearer token bound to the session.
    pub token: String,
    /// When the token stops being accepted (epoch ms).
    pub expires_at: i64,
    /// The session's event stream, absolute.
    pub sse_url: String,
    /// The session's message route, absolute.
    pub messages_url: String,
}

/// `GET /lobu/api/v1/agents/{id}` reply.
#[derive(Debug, Serialize, Deserialize)]
pub struct LobuSessionInfo {
    /// Always true.
    pub success: bool,
    /// The session.
    pub agent: LobuSessionStatus,
}

/// A session as Lobu's status route shows one: times as numbers (epoch ms).
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LobuSessionStatus {
    /// The session id.
    pub agent_id: String,
    /// Who the session belongs to: turnwatch has no users, a session is its own principal
    /// (its token), so this is the session id again.
    pub user_id: String,
    /// Always `active` (a deleted session is 404).
    pub status: String,
    /// Epoch ms.
    pub created_at: i64,
    /// Epoch ms.
    pub last_activity: i64,
    /// Whether a client holds its event stream now.
    pub has_active_connection: bool,
}

/// `POST /api/local-init` reply: a token for a loopback client in loopback-trust mode. Lobu
/// gives a user session and a device token; turnwatch has no users, so both are the same
/// local token, accepted for creating sessions.
#[derive(Debug, Serialize, Deserialize)]
pub struct LocalInit {
    /// Always true.
    pub success: bool,
    /// The local token (what the `lobu` CLI uses for its own calls).
    pub session_token: String,
    /// The same token (what the `lobu` CLI uses for the Agent API).
    pub device_token: String,
}
