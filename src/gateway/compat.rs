//! What the Lobu gateway's clients (its `lobu` CLI first) need beyond the shared Agent API:
//! `POST /api/local-init`, the zero-config login of a loopback client; Lobu's response shapes
//! under `/lobu` (`api::lobu`); and a clear refusal of the request fields of Lobu's schema
//! that turnwatch does not honour, instead of ignoring them (a `dryRun` that silently ran a
//! real turn, a Telegram message answered `session_not_found`).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::AppState;
use super::auth::LOCAL_TOKEN_PREFIX;
use super::error::ApiError;
use crate::api::lobu::LocalInit;
use crate::api::{API_PREFIXES, ErrorCode};
use crate::ids::SessionId;

/// Headers a reverse proxy adds: a request that carries one came from elsewhere, whatever
/// address it reached the gateway from.
const FORWARDED: [&str; 5] = [
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-real-ip",
];

/// `POST /api/local-init`: in loopback-trust mode (no `[[tokens]]`), a local token for the
/// caller (the `lobu` CLI asks for one before anything else, and will not go on without).
/// The guard has already checked `Host` and `Origin` as for every request in that mode; a
/// proxied request is refused too. With tokens configured: 403, never a token.
///
/// In loopback trust the gateway trusts the loopback caller, not a secret: a local token
/// stands for that caller, as no token would (`auth::LOCAL_TOKEN_PREFIX`), on every route.
/// So it is not stored, and a CLI's saved token keeps working across the gateway's restarts
/// and databases while the mode lasts; once tokens are configured, none is accepted.
pub async fn local_init(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<(StatusCode, Json<LocalInit>), ApiError> {
    if app.tokens.is_enabled() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            "this gateway has [[tokens]] configured: it gives no token to local callers; \
             use a client token (for the lobu CLI: LOBU_API_TOKEN)",
        ));
    }
    if let Some(h) = FORWARDED.iter().find(|h| headers.contains_key(**h)) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            format!("a proxied request (it carries `{h}`) gets no local token"),
        ));
    }
    let client: String = headers
        .get("x-lobu-client")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("unnamed")
        .chars()
        .take(64)
        .collect();
    tracing::info!(client, "gave a local token (loopback trust)");
    let token = format!(
        "{LOCAL_TOKEN_PREFIX}{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    Ok((
        StatusCode::OK,
        Json(LocalInit {
            success: true,
            session_token: token.clone(),
            device_token: token,
        }),
    ))
}

/// How long a `/lobu` create or resume is remembered for its session's first stream.
const START_TTL: Duration = Duration::from_secs(60);

/// Where a `/lobu` client's first stream starts. Lobu's CLI opens its stream and posts its
/// message at once, without waiting: its stream may arrive after a quick turn has ended, and a
/// stream without a cursor replays only turns still open (protocol.md §2.3), so it would hear
/// nothing. Lobu's own gateway replays a backlog. So the session's log position at `POST
/// /lobu/api/v1/agents` (create or resume) is remembered, and the session's next stream
/// without a cursor under `/lobu` starts there, as if it had sent that cursor: everything
/// since this client created or resumed the session, nothing before. In this process's
/// memory: a stream that reaches another replica starts as a cursorless one does.
#[derive(Debug, Default)]
pub struct StreamStarts {
    entries: Mutex<HashMap<SessionId, (Instant, i64)>>,
}

impl StreamStarts {
    /// Remembers `seq` as where `session`'s next cursorless `/lobu` stream starts.
    pub fn remember(&self, session: &SessionId, seq: i64) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        entries.retain(|_, (at, _)| now.duration_since(*at) < START_TTL);
        entries.insert(session.clone(), (now, seq));
    }

    /// Where `session`'s cursorless `/lobu` stream starts, once.
    pub fn take(&self, session: &SessionId) -> Option<i64> {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let (at, seq) = entries.remove(session)?;
        (at.elapsed() < START_TTL).then_some(seq)
    }
}

/// Whether a request came in under the Lobu gateway's prefix (`/lobu/api/v1`).
pub fn is_lobu(path: &str) -> bool {
    path.starts_with(API_PREFIXES[1])
}

/// The prefix a request came in on, to answer with URLs under the same one.
pub fn prefix_of(path: &str) -> &'static str {
    if is_lobu(path) {
        API_PREFIXES[1]
    } else {
        API_PREFIXES[0]
    }
}

/// Where clients reach this gateway: `[gateway] public_url`, else `http://` and the request's
/// `Host` (which the guard has checked).
pub fn public_base(app: &AppState, headers: &HeaderMap) -> String {
    if let Some(url) = &app.config.gateway.public_url {
        return url.trim_end_matches('/').to_owned();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    format!("http://{host}")
}

/// Refuses the fields of a create-session request that turnwatch does not honour (it takes
/// `agentId`, `thread` and `forceNew`). A `null`, and a `false` `dryRun`, ask for nothing.
pub fn refuse_create_fields(other: &Map<String, Value>) -> Result<(), ApiError> {
    for (field, value) in other {
        let why = match (field.as_str(), value) {
            (_, Value::Null) | ("dryRun", Value::Bool(false)) => continue,
            ("dryRun", _) => {
                "turnwatch does not do dry runs: every turn runs the agent's worker; \
                 leave `dryRun` out"
            }
            ("provider" | "model", _) => {
                "the agent's configured worker decides the provider and model; \
                 turnwatch takes no `provider` or `model`"
            }
            ("userId", _) => {
                "turnwatch has no users (a session is its own principal, its token); \
                 leave `userId` out"
            }
            ("intent" | "networkConfig" | "mcpServers" | "nix", _) => {
                "that configures Lobu's agent sandbox, which turnwatch does not have: an \
                 agent's worker is configured in the gateway's [agents.NAME]"
            }
            _ => "it is not a field of this request (it takes agentId, thread, forceNew)",
        };
        return Err(ApiError::unsupported(
            field,
            format!("`{field}` is not supported: {why}"),
        ));
    }
    Ok(())
}

/// Refuses the fields of a message that turnwatch does not honour (it takes `content` or
/// `message`, and `messageId`): platform delivery above all. `platform: "api"` and
/// `durableMessage: true` ask for what every message gets.
pub fn refuse_message_fields(other: &Map<String, Value>) -> Result<(), ApiError> {
    for (field, value) in other {
        let why = match (field.as_str(), value) {
            (_, Value::Null) | ("durableMessage", Value::Bool(true)) => continue,
            // Lobu reads an empty platform as none.
            ("platform", Value::String(p)) if p == "api" || p.is_empty() => continue,
            ("platform" | "slack" | "telegram" | "discord", _) => {
                "turnwatch does not deliver platform messages (Slack, Telegram, Discord): \
                 create a session (POST /agents) and post to its messages route"
            }
            ("durableMessage", _) => "every message is stored before it is acknowledged",
            _ => "it is not a field of this request (it takes content, messageId)",
        };
        return Err(ApiError::unsupported(
            field,
            format!("`{field}` is not supported: {why}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn refused(f: fn(&Map<String, Value>) -> Result<(), ApiError>, body: &Value) -> Option<u16> {
        f(body.as_object().unwrap()).err().map(|e| {
            assert_eq!(e.code(), ErrorCode::UnsupportedField);
            e.status().as_u16()
        })
    }

    #[test]
    fn only_fields_that_ask_for_nothing_pass() {
        for ok in [json!({}), json!({"dryRun": false}), json!({"model": null})] {
            assert_eq!(refused(refuse_create_fields, &ok), None);
        }
        for bad in [
            json!({"dryRun": true}),
            json!({"model": "x"}),
            json!({"userId": "u"}),
            json!({"mcpServers": {}}),
            json!({"agentID": "typo"}),
        ] {
            assert_eq!(refused(refuse_create_fields, &bad), Some(400));
        }
        for ok in [json!({"platform": "api"}), json!({"durableMessage": true})] {
            assert_eq!(refused(refuse_message_fields, &ok), None);
        }
        for bad in [
            json!({"platform": "telegram"}),
            json!({"telegram": {"chatId": "1"}}),
            json!({"durableMessage": false}),
            json!({"contnet": "typo"}),
        ] {
            assert_eq!(refused(refuse_message_fields, &bad), Some(400));
        }
    }
}
