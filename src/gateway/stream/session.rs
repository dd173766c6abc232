//! The session event stream (protocol.md §1.1): `retry:`, `connected`, the owed backlog, then
//! the live tail, each logged event exactly once and in order.

use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use futures::Stream;
use serde::Deserialize;
use std::convert::Infallible;
use std::sync::Arc;

use super::{PAGE, Start, frame, tail};
use crate::api::session::Connected;
use crate::api::{ErrorCode, EventKind, SessionEvent};
use crate::clock::now_ms;
use crate::gateway::AppState;
use crate::gateway::agents::authorize_stream;
use crate::gateway::compat;
use crate::gateway::error::ApiError;
use crate::store::{SessionRecord, StoredEvent};

/// A stream's query: `?since=N`, the URL form of `Last-Event-ID`, and `?ticket=`, a stream
/// ticket in place of a bearer token (see `gateway::tickets`).
#[derive(Debug, Deserialize)]
pub struct Since {
    pub(crate) since: Option<String>,
    pub(crate) ticket: Option<String>,
}

/// The client's cursor: `Last-Event-ID`, else `?since=`; 400 `invalid_cursor` unless it is a
/// whole number, 0 or more.
pub(crate) fn cursor(headers: &HeaderMap, q: &Since) -> Result<Option<i64>, ApiError> {
    let raw = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| q.since.clone());
    match raw.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(s) => s
            .parse::<u64>()
            .ok()
            .and_then(|n| i64::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    ErrorCode::InvalidCursor,
                    format!(
                        "the event cursor `{s}` is not an event id (a whole number, 0 or more)"
                    ),
                )
            }),
    }
}

/// `GET /api/v1/agents/{id}/events`, on both serving paths: through hyper, and on a fresh
/// connection from `serve`, which calls the router without hyper's connection.
pub async fn events(
    State(app): State<Arc<AppState>>,
    OriginalUri(uri): OriginalUri,
    Path(id): Path<String>,
    Query(q): Query<Since>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    // A stream route registered around `routes` would be served through hyper only: tests fail.
    debug_assert!(
        crate::gateway::routes::is_session_events(uri.path()),
        "a session stream served at {uri}, a path `serve` does not recognise (register it \
         through `gateway::routes`)"
    );
    Ok(super::response(
        open(&app, &id, &q, &headers, compat::is_lobu(uri.path())).await?,
    ))
}

/// Authorizes a session stream request and opens its stream: the frames to send, in order.
///
/// A deleted session's log can still be read to its end with a cursor (its `closed` ends the
/// stream); without one, or once the cursor holds everything, it is 410 `session_deleted`.
async fn open(
    app: &AppState,
    id: &str,
    q: &Since,
    headers: &HeaderMap,
    lobu: bool,
) -> Result<impl Stream<Item = Result<Bytes, Infallible>> + Send + use<>, ApiError> {
    // The cursor first: a request refused for it does not use its ticket up.
    let mut cursor = cursor(headers, q)?;
    let session = authorize_stream(app, headers, id, q.ticket.as_deref()).await?;
    if lobu && cursor.is_none() {
        cursor = app.lobu_starts.take(&session.id);
    }
    if session.deleted_at.is_some() && cursor.is_none() {
        return Err(deleted());
    }
    // Subscribe before reading the backlog, so nothing falls between the two.
    let rx = app.hub.subscribe(&session.id);
    let plan = plan(app, &session, cursor).await?;
    // `lastEventId`: where this connection stands in the log. A client that has received no
    // event id yet resumes from it, so it misses nothing that happens after it connected.
    let connected = SessionEvent::Connected(Connected {
        agent_id: session.id.clone(),
        session_id: session.id.clone(),
        timestamp: now_ms(),
        resumed_from: plan.resumed,
        last_event_id: Some(plan.last),
        gap: plan.resumed.is_none() && cursor.is_some(),
    });
    let retry = app.config.gateway.sse_retry;
    let first = frame::event(None, connected.kind().as_str(), &connected.to_data());
    let head = vec![frame::retry_then(retry, "turnwatch", &first)];
    let more = cursor.is_some() && plan.backlog.len() as i64 == PAGE;
    let start = Start {
        head,
        backlog: plan.backlog,
        last: plan.last,
        more,
    };
    let store = Arc::clone(&app.store);
    let sid = session.id.clone();
    let fetch = move |after| {
        let (store, sid) = (Arc::clone(&store), sid.clone());
        async move { store.events_after(&sid, after, PAGE).await }
    };
    Ok(tail(start, (rx, None), fetch, app.streams_stop.clone()))
}

/// Where a session stream starts.
struct Plan {
    /// The cursor honoured; `None` without one or after a gap.
    resumed: Option<i64>,
    /// Everything at or below this is accounted for: the backlog follows it.
    last: i64,
    /// Logged events owed first.
    backlog: Vec<StoredEvent>,
}

async fn plan(
    app: &AppState,
    session: &SessionRecord,
    cursor: Option<i64>,
) -> Result<Plan, ApiError> {
    let Some(c) = cursor else {
        let (high, owed) = app.store.events_in_flight(&session.id).await?;
        return Ok(Plan {
            resumed: None,
            last: high,
            backlog: owed,
        });
    };
    // The row was read fresh for this connection (`authorize_stream`), before subscribing.
    let high = session.last_seq;
    // A cursor older than what is kept, or beyond the log's end (the gateway restarted on a
    // fresh or restored database), does not line up with this log: the client is told it is
    // a gap and gets what the log has, rather than silently losing what lies below its cursor.
    let (resumed, from) = if c < session.pruned_through || c > high {
        (None, session.pruned_through)
    } else {
        (Some(c), c)
    };
    if session.deleted_at.is_some() && from >= high && ends_closed(app, session, high).await? {
        return Err(deleted()); // the client already holds the whole log, `closed` included
    }
    Ok(Plan {
        resumed,
        last: from,
        backlog: app.store.events_after(&session.id, from, PAGE).await?,
    })
}

/// Whether the session's log ends with its `closed` (a delete still under way has none yet).
async fn ends_closed(app: &AppState, session: &SessionRecord, high: i64) -> Result<bool, ApiError> {
    let last = app.store.events_after(&session.id, high - 1, 1).await?;
    Ok(last.first().is_some_and(|e| e.kind == EventKind::Closed))
}

fn deleted() -> ApiError {
    ApiError::new(
        StatusCode::GONE,
        ErrorCode::SessionDeleted,
        "the session was deleted; a client that holds an event id can read the rest of its \
         stream with Last-Event-ID",
    )
}
