//! The session event stream (protocol.md §1.1): `retry:`, `connected`, the owed backlog, then
//! the live tail, each logged event exactly once and in order.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use futures::Stream;
use serde::Deserialize;
use serde_json::json;
use std::convert::Infallible;
use std::sync::Arc;

use super::AppState;
use super::agents::authorize;
use super::error::ApiError;
use super::tail::{self, PAGE, Start, frame, tail};
use crate::clock::now_ms;

/// `?since=N`, the URL form of `Last-Event-ID`.
#[derive(Debug, Deserialize)]
pub struct Since {
    pub(super) since: Option<String>,
}

/// The client's cursor: `Last-Event-ID`, else `?since=`; 400 `invalid_cursor` unless it is a
/// whole number, 0 or more.
pub(super) fn cursor(headers: &HeaderMap, q: &Since) -> Result<Option<i64>, ApiError> {
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
                    "invalid_cursor",
                    format!(
                        "the event cursor `{s}` is not an event id (a whole number, 0 or more)"
                    ),
                )
            }),
    }
}

/// `GET /api/v1/agents/{id}/events`. Most requests never get here: `serve` answers them
/// without hyper (see there); this serves the rest.
pub async fn events(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
    Query(q): Query<Since>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    Ok(tail::response(open(&app, &id, &q, &headers).await?))
}

/// Authorizes a session stream request and opens its stream: the frames to send, in order.
pub(super) async fn open(
    app: &AppState,
    id: &str,
    q: &Since,
    headers: &HeaderMap,
) -> Result<impl Stream<Item = Result<Bytes, Infallible>> + Send + use<>, ApiError> {
    let session = authorize(app, headers, id).await?;
    let cursor = cursor(headers, q)?;
    // Subscribe before reading the backlog, so nothing falls between the two.
    let rx = app.hub.subscribe(&session.id);
    let (resumed, gap, last, backlog) = match cursor {
        Some(c) if c < session.pruned_through => {
            let from = session.pruned_through;
            (
                None,
                true,
                from,
                app.store.events_after(&session.id, from, PAGE).await?,
            )
        }
        Some(c) => (
            Some(c),
            false,
            c,
            app.store.events_after(&session.id, c, PAGE).await?,
        ),
        None => {
            let (high, owed) = app.store.events_in_flight(&session.id).await?;
            (None, false, high, owed)
        }
    };
    let mut connected = json!({
        "agentId": session.id, "sessionId": session.id, "timestamp": now_ms(), "resumedFrom": resumed,
    });
    if gap {
        connected["gap"] = json!(true);
    }
    let retry = app.config.gateway.sse_retry;
    let head = vec![
        frame::retry(retry, "turnwatch"),
        frame::event(None, "connected", &connected.to_string()),
    ];
    let more = cursor.is_some() && backlog.len() as i64 == PAGE;
    let start = Start {
        head,
        backlog,
        last,
        more,
    };
    let store = Arc::clone(&app.store);
    let sid = session.id.clone();
    let fetch = move |after| {
        let (store, sid) = (Arc::clone(&store), sid.clone());
        async move { store.events_after(&sid, after, PAGE).await }
    };
    Ok(tail(start, rx, fetch, app.streams_stop.clone()))
}
