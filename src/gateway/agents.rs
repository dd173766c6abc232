//! Agent API handlers (protocol.md §1): sessions and messages. Thin: extract, call, map.

use axum::Json;
use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use std::sync::Arc;

use super::AppState;
use super::auth::{self, Caller};
use super::error::{ApiError, Body};
use crate::api::lobu::{LobuSessionCreated, LobuSessionInfo, LobuSessionStatus};
use crate::api::session::Closed;
use crate::api::state::{TurnFilter, TurnSet};
use crate::api::{
    CreateSession, ErrorCode, EventKind, MessageQueued, PostMessage, SessionCreated,
    SessionDeleted, SessionEvent, SessionInfo, SessionState, SessionStatus, TurnEnding, TurnState,
};
use crate::clock::{now_ms, to_rfc3339};
use crate::config::Role;
use crate::ids::{MessageId, SessionId, TurnId};
use crate::store::{Applied, Change, Progress, SessionRecord, TurnQuery, TurnRecord};
use crate::supervisor::{QueuedTurn, Route, end_turn};

use super::{compat, tickets};

/// `POST /api/v1/agents`: create or resume a session.
pub async fn create(
    State(app): State<Arc<AppState>>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    Body(req): Body<CreateSession>,
) -> Result<impl IntoResponse, ApiError> {
    match app.tokens.caller(&headers)? {
        Caller::Open | Caller::Named(_, Role::Operator | Role::Client) => {}
        Caller::Named(..) => {
            return Err(auth::forbidden("a read-only token cannot create sessions"));
        }
        Caller::Other(_) => return Err(auth::unknown_token(&app.tokens)),
    }
    compat::refuse_create_fields(&req.other)?;
    if !app.journal.is_available() {
        return Err(ApiError::store_unavailable());
    }
    let agent = req
        .agent_id
        .unwrap_or_else(|| app.config.gateway.default_agent.clone());
    if !app.config.agents.contains_key(&agent) {
        return Err(ApiError::not_found(
            ErrorCode::UnknownAgent,
            format!("no agent `{agent}` is configured"),
        ));
    }
    let now = now_ms();
    let existing = match (&req.thread, req.force_new) {
        (Some(thread), false) => app
            .store
            .session_by_thread(&agent, thread)
            .await?
            .filter(|s| s.expires_at > now),
        _ => None,
    };
    let session = if let Some(s) = existing {
        s
    } else {
        let s = SessionRecord {
            id: SessionId::generate(),
            agent_id: agent,
            thread: req.thread,
            token: format!(
                "tw_{}{}",
                uuid::Uuid::new_v4().simple(),
                uuid::Uuid::new_v4().simple()
            ),
            created_at: now,
            last_activity: now,
            expires_at: now + app.config.gateway.token_ttl.as_millis() as i64,
            deleted_at: None,
            pruned_through: 0,
            last_seq: 0,
        };
        app.journal.write(Change::CreateSession(s.clone())).await?;
        app.sessions.put(s.clone());
        s
    };
    // Answer under the prefix the request came in on: Lobu's shape under Lobu's prefix
    // (`expiresAt` a number, absolute URLs), turnwatch's own otherwise.
    let path = format!("{}/agents/{}", compat::prefix_of(uri.path()), session.id);
    let body = if compat::is_lobu(uri.path()) {
        app.lobu_starts.remember(&session.id, session.last_seq);
        let base = format!("{}{path}", compat::public_base(&app, &headers));
        serde_json::to_value(LobuSessionCreated {
            success: true,
            agent_id: session.id.to_string(),
            token: session.token.clone(),
            expires_at: session.expires_at,
            sse_url: format!("{base}/events"),
            messages_url: format!("{base}/messages"),
        })
    } else {
        serde_json::to_value(SessionCreated {
            success: true,
            agent_id: session.id.to_string(),
            token: session.token.clone(),
            expires_at: to_rfc3339(session.expires_at),
            sse_url: format!("{path}/events"),
            messages_url: format!("{path}/messages"),
        })
    };
    Ok((
        StatusCode::CREATED,
        Json(body.map_err(|e| ApiError::internal(&e))?),
    ))
}

/// Loads a live session from the store and checks the caller may use it: 404, 401 or 403
/// otherwise. For handlers that answer with the session's changing fields.
pub async fn authorize(
    app: &AppState,
    headers: &HeaderMap,
    id: &str,
) -> Result<Arc<SessionRecord>, ApiError> {
    load(app, headers, SessionId(id.to_owned())).await
}

async fn load(
    app: &AppState,
    headers: &HeaderMap,
    id: SessionId,
) -> Result<Arc<SessionRecord>, ApiError> {
    let found = app.store.session(&id).await?;
    let session = found.map(|s| app.sessions.put(s));
    check(app, headers, &id, session)
}

/// [`authorize`] from a session read less than a second ago (or just created), when the caller
/// needs only what does not change until the session is deleted.
pub async fn authorize_cached(
    app: &AppState,
    headers: &HeaderMap,
    id: &str,
) -> Result<Arc<SessionRecord>, ApiError> {
    let id = SessionId(id.to_owned());
    match app.sessions.get(&id) {
        Some(session) => check(app, headers, &id, Some(session)),
        None => load(app, headers, id).await,
    }
}

/// [`authorize`] for a session's event stream, which outlives the session: a deleted session
/// is answered too (its `deleted_at` set), so a client can read its log to the end. With a
/// stream `ticket`, the ticket (redeemed here) stands for the token.
pub async fn authorize_stream(
    app: &AppState,
    headers: &HeaderMap,
    id: &str,
    ticket: Option<&str>,
) -> Result<Arc<SessionRecord>, ApiError> {
    if let Some(ticket) = ticket {
        tickets::redeem(app, ticket, Some(id)).await?;
    }
    let id = SessionId(id.to_owned());
    let found = app.store.session(&id).await?;
    match (found, ticket) {
        // Not cached: the cache serves live sessions to message posts.
        (Some(s), Some(_)) if s.deleted_at.is_some() => Ok(Arc::new(s)),
        (Some(s), None) if s.deleted_at.is_some() => check_token(app, headers, Arc::new(s)),
        (found, Some(_)) => live(&id, found.map(|s| app.sessions.put(s))),
        (found, None) => check(app, headers, &id, found.map(|s| app.sessions.put(s))),
    }
}

/// The session unless it is missing or deleted: 404 `session_not_found`.
fn live(
    id: &SessionId,
    session: Option<Arc<SessionRecord>>,
) -> Result<Arc<SessionRecord>, ApiError> {
    session
        .filter(|s| s.deleted_at.is_none())
        .ok_or_else(|| ApiError::not_found(ErrorCode::SessionNotFound, format!("no session {id}")))
}

fn check(
    app: &AppState,
    headers: &HeaderMap,
    id: &SessionId,
    session: Option<Arc<SessionRecord>>,
) -> Result<Arc<SessionRecord>, ApiError> {
    check_token(app, headers, live(id, session)?)
}

/// The caller holds the session's token (unexpired) or an operator token.
fn check_token(
    app: &AppState,
    headers: &HeaderMap,
    session: Arc<SessionRecord>,
) -> Result<Arc<SessionRecord>, ApiError> {
    let Some(token) = auth::bearer(headers)? else {
        return Err(auth::unauthorized());
    };
    let operator = matches!(
        app.tokens.caller(headers)?,
        Caller::Named(_, Role::Operator)
    );
    if operator {
        return Ok(session);
    }
    if !auth::constant_time_eq(token.as_bytes(), session.token.as_bytes()) {
        return Err(auth::forbidden("this token is not bound to this session"));
    }
    if session.expires_at <= now_ms() {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::TokenExpired,
            "the session token has expired",
        ));
    }
    Ok(session)
}

/// `GET /api/v1/agents/{id}`.
pub async fn get(
    State(app): State<Arc<AppState>>,
    OriginalUri(uri): OriginalUri,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    let s = authorize(&app, &headers, &id).await?;
    let watched = app.hub.is_watched(&s.id);
    let body = if compat::is_lobu(uri.path()) {
        serde_json::to_value(LobuSessionInfo {
            success: true,
            agent: LobuSessionStatus {
                agent_id: s.id.to_string(),
                user_id: s.id.to_string(),
                status: SessionState::Active.as_str().to_owned(),
                created_at: s.created_at,
                last_activity: s.last_activity,
                has_active_connection: watched,
            },
        })
    } else {
        serde_json::to_value(SessionInfo {
            success: true,
            agent: SessionStatus {
                has_active_connection: watched,
                agent_id: s.id.clone(),
                agent: s.agent_id.clone(),
                status: SessionState::Active,
                created_at: s.created_at,
                last_activity: s.last_activity,
            },
        })
    };
    Ok(Json(body.map_err(|e| ApiError::internal(&e))?))
}

/// What another replica held of a deleted session: its ownership is taken (that replica's
/// next write is refused and it stops the worker), and every turn still open ends
/// `session_deleted` (first writer wins).
async fn end_elsewhere(app: &AppState, session: &SessionId) -> Result<(), ApiError> {
    let owner = app.store.owner(session, now_ms()).await?;
    let disown = Change::Disown {
        session_id: session.clone(),
        at: now_ms(),
    };
    app.journal.write(disown).await?;
    if let Some((owner, _, true)) = owner
        && owner != app.supervisor.replica()
    {
        // Woken, it reads the session and finds it is no longer its own.
        app.peers.wake(&owner, session).await;
    }
    let q = TurnQuery {
        state: Some(TurnFilter::Set(TurnSet::Open)),
        session: Some(session.clone()),
        page: crate::store::Page {
            limit: 1000,
            cursor: None,
        },
        ..TurnQuery::default()
    };
    for t in app.store.turns(&q, now_ms()).await? {
        let ending = TurnEnding::failed(ErrorCode::SessionDeleted, "the session was deleted");
        end_turn(
            &app.journal,
            None,
            session,
            &t.turn_id,
            &t.message_id,
            ending,
        )
        .await;
    }
    Ok(())
}

/// `DELETE /api/v1/agents/{id}`: ends its turns (`session_deleted`), stops its worker, closes
/// its streams.
pub async fn delete(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    let s = authorize(&app, &headers, &id).await?;
    let at = now_ms();
    app.journal
        .write(Change::DeleteSession {
            id: s.id.clone(),
            at,
        })
        .await?;
    app.sessions.forget(&s.id);
    app.supervisor.delete_session(&s.id).await;
    end_elsewhere(&app, &s.id).await?;
    let closed = Change::Event {
        session_id: s.id.clone(),
        turn_id: None,
        kind: EventKind::Closed,
        data: SessionEvent::Closed(Closed {
            reason: "session deleted".into(),
        })
        .to_data(),
        at,
        from: None,
        progress: Progress::Append,
    };
    app.journal.write(closed).await?;
    Ok(Json(SessionDeleted {
        success: true,
        message: "session deleted".into(),
        agent_id: s.id.clone(),
    }))
}

/// `POST /api/v1/agents/{id}/messages`: accept a message as a turn.
pub async fn post_message(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Body(req): Body<PostMessage>,
) -> Result<impl IntoResponse, ApiError> {
    // First: a platform message names no session of ours, and deserves to hear why.
    compat::refuse_message_fields(&req.other)?;
    let session = authorize_cached(&app, &headers, &id).await?;
    if !app.journal.is_available() {
        return Err(ApiError::store_unavailable());
    }
    let content = req.content.unwrap_or_default();
    if content.trim().is_empty() {
        return Err(ApiError::invalid("`content` must be a non-empty string"));
    }
    let message_id = match req.message_id {
        Some(m) if m.trim().is_empty() => {
            return Err(ApiError::invalid("`messageId` must not be empty"));
        }
        Some(m) => MessageId(m),
        None => MessageId::generate(),
    };
    let turn = TurnRecord {
        id: TurnId::generate(),
        session_id: session.id.clone(),
        agent_id: session.agent_id.clone(),
        message_id: message_id.clone(),
        content: content.clone(),
        state: TurnState::Queued,
        worker_id: None,
        created_at: now_ms(),
        ended_at: None,
        code: None,
    };
    // Once begun, accepting runs to its end even if the client hangs up: a turn inserted but
    // never handed to the supervisor would stay open with no clock to end it.
    let (turn_id, created) = tokio::spawn(accept(Arc::clone(&app), session, turn))
        .await
        .map_err(|e| ApiError::internal(&e))??;
    Ok(Json(MessageQueued {
        success: true,
        message_id,
        turn_id,
        queued: true,
        deduplicated: !created,
    }))
}

/// Records the turn (idempotent on its message id) and, when new, hands it to the supervisor;
/// returns its id and whether this call created it.
async fn accept(
    app: Arc<AppState>,
    session: Arc<SessionRecord>,
    turn: TurnRecord,
) -> Result<(TurnId, bool), ApiError> {
    let (message_id, content) = (turn.message_id.clone(), turn.content.clone());
    let Applied::Turn {
        turn_id,
        created,
        seq,
    } = app.journal.write(Change::InsertTurn { turn }).await?
    else {
        return Err(ApiError::internal(
            &"unexpected store answer to a turn insert",
        ));
    };
    if created {
        let queued = QueuedTurn {
            turn_id: turn_id.clone(),
            message_id: message_id.clone(),
            content,
            seq,
        };
        match app.supervisor.route(&session, queued).await {
            Ok(Route::Local | Route::Queued) => {}
            Ok(Route::Remote(owner)) => app.peers.wake(&owner, &session.id).await,
            Err(e) => {
                // Accepted but never to be served: it still ends, once, with the reason.
                let ending =
                    TurnEnding::failed(ErrorCode::GatewayShutdown, "the gateway is shutting down");
                end_turn(
                    &app.journal,
                    None,
                    &session.id,
                    &turn_id,
                    &message_id,
                    ending,
                )
                .await;
                return Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    ErrorCode::ShuttingDown,
                    e.to_string(),
                ));
            }
        }
    }
    Ok((turn_id, created))
}
