//! Stream tickets: how a client that cannot send `Authorization` opens a stream. A browser's
//! native `EventSource` sends no headers of its own choosing, and a bearer token must never sit
//! in a URL (URLs land in access logs, proxies and browser history). So the client asks for a
//! ticket with its token (`POST …/stream-ticket`) and opens the stream with `?ticket=`.
//!
//! A ticket is short-lived (`[gateway] stream_ticket_ttl`, at most 60 s), opens one stream
//! once, and is bound to the stream it was asked for: a session's, or the admin stream. A
//! reconnect needs a new ticket (the client resumes with `?since=N`, its last event id): a
//! ticket copied out of a log is worthless once its stream opened. Tickets live in the
//! database, so any replica redeems what another issued.

use axum::Json;
use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use std::sync::Arc;

use super::AppState;
use super::agents::authorize_stream;
use super::error::ApiError;
use crate::api::{ErrorCode, TicketIssued};
use crate::clock::{now_ms, to_rfc3339};
use crate::ids::SessionId;
use crate::store::{Applied, Change, StreamTicket};

/// `POST /api/v1/agents/{id}/stream-ticket`: a ticket for the session's event stream, for the
/// session's token (or an operator's).
pub async fn for_session(
    State(app): State<Arc<AppState>>,
    OriginalUri(uri): OriginalUri,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    // A deleted session's log stays readable to its end with a cursor: so does its ticket.
    let session = authorize_stream(&app, &headers, &id, None).await?;
    let path = format!("/agents/{}/events", session.id);
    let holder = session.id.to_string();
    issue(&app, uri.path(), Some(session.id.clone()), holder, &path).await
}

/// `POST /api/v1/admin/stream-ticket`: a ticket for the admin event stream, for an operator or
/// read-only token.
pub async fn for_admin(
    State(app): State<Arc<AppState>>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    let (name, _) = app.tokens.reader(&headers)?;
    issue(&app, uri.path(), None, name, "/admin/events").await
}

async fn issue(
    app: &AppState,
    asked_at: &str,
    session_id: Option<SessionId>,
    holder: String,
    path: &str,
) -> Result<(StatusCode, Json<TicketIssued>), ApiError> {
    if !app.journal.is_available() {
        return Err(ApiError::store_unavailable());
    }
    let ttl = app.config.gateway.stream_ticket_ttl;
    let ticket = StreamTicket {
        ticket: format!(
            "{PREFIX}{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        ),
        session_id,
        holder,
        expires_at: now_ms() + ttl.as_millis() as i64,
    };
    app.journal
        .write(Change::IssueTicket(ticket.clone()))
        .await?;
    // The URL under the prefix the request came in on, as a created session's are.
    let prefix = super::compat::prefix_of(asked_at);
    let body = TicketIssued {
        success: true,
        events_url: format!("{prefix}{path}?ticket={}", ticket.ticket),
        expires_at: to_rfc3339(ticket.expires_at),
        expires_in: ttl.as_secs(),
        ticket: ticket.ticket,
    };
    Ok((StatusCode::CREATED, Json(body)))
}

/// Redeems `ticket` for a stream: `session`'s, or the admin stream's (`None`). The ticket is
/// used up whatever the answer; 401 `invalid_ticket` unless it existed, had not expired and
/// was issued for this stream. Returns who it was issued to.
pub async fn redeem(
    app: &AppState,
    ticket: &str,
    session: Option<&str>,
) -> Result<String, ApiError> {
    // Anyone may send `?ticket=`: what is not one, or not stored, costs no write.
    if !is_well_formed(ticket) || !app.store.is_ticket(ticket).await? {
        return Err(refusal("this stream ticket is unknown or was already used"));
    }
    if !app.journal.is_available() {
        return Err(ApiError::store_unavailable());
    }
    let redeemed = match app
        .journal
        .write(Change::RedeemTicket {
            ticket: ticket.to_owned(),
        })
        .await?
    {
        Applied::Ticket(t) => t,
        other => {
            return Err(ApiError::internal(&format!(
                "a ticket redemption applied as {other:?}"
            )));
        }
    };
    let refuse = |why: &str| Err(refusal(why));
    let Some(t) = redeemed else {
        return refuse("this stream ticket is unknown or was already used");
    };
    if t.expires_at <= now_ms() {
        return refuse("this stream ticket has expired");
    }
    if t.session_id.as_ref().map(SessionId::as_str) != session {
        return refuse("this stream ticket was issued for another stream");
    }
    Ok(t.holder)
}

/// What every ticket starts with; 64 lowercase hex digits (two random UUIDs) follow.
const PREFIX: &str = "twt_";

/// Whether `ticket` has a ticket's shape (checked before the store is asked).
fn is_well_formed(ticket: &str) -> bool {
    ticket.strip_prefix(PREFIX).is_some_and(|hex| {
        hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

/// 401 `invalid_ticket`, saying why and what to do.
fn refusal(why: &str) -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        ErrorCode::InvalidTicket,
        format!(
            "{why}; a ticket opens one stream once: ask POST …/stream-ticket for a new one \
             (and resume with ?since=<last event id>)"
        ),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_a_tickets_shape_is_well_formed() {
        let good = format!("twt_{}", "0123456789abcdef".repeat(4));
        assert!(super::is_well_formed(&good));
        for bad in [
            "",
            "twt_",
            "twt_made_up",
            &good[..good.len() - 1],
            &good.replace("twt_", "tw_"),
            &good.to_uppercase(),
            &format!("{good}0"),
        ] {
            assert!(!super::is_well_formed(bad), "{bad}");
        }
    }
}
