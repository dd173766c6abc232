//! The session event stream (protocol.md §1.1): `retry:`, `connected`, the owed backlog, then
//! the live tail, each logged event exactly once and in order.

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::response::sse::{Event, KeepAlive, Sse};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

use super::AppState;
use super::agents::authorize;
use super::error::ApiError;
use crate::clock::now_ms;
use crate::store::StoredEvent;

const COMMENT_EVERY: Duration = Duration::from_secs(15);
const PING_EVERY: Duration = Duration::from_secs(30);
const PAGE: i64 = 1000;

/// `?since=N`, the URL form of `Last-Event-ID`.
#[derive(Debug, Deserialize)]
pub struct Since {
    since: Option<String>,
}

fn cursor(headers: &HeaderMap, q: &Since) -> Result<Option<i64>, ApiError> {
    let raw = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| q.since.clone());
    match raw.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(s) => s.parse::<i64>().map(Some).map_err(|_| {
            ApiError::invalid(format!(
                "the event cursor `{s}` is not an event id (a number)"
            ))
        }),
    }
}

fn to_sse(e: &StoredEvent) -> Event {
    Event::default()
        .id(e.seq.to_string())
        .event(&e.kind)
        .data(&e.data)
}

enum Next {
    Event(Arc<StoredEvent>),
    CatchUp,
    Ping,
    End,
}

/// `GET /api/v1/agents/{id}/events`.
pub async fn events(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
    Query(q): Query<Since>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    let session = authorize(&app, &headers, &id).await?;
    let cursor = cursor(&headers, &q)?;
    // Subscribe before reading the backlog, so nothing falls between the two.
    let mut rx = app.hub.subscribe(&session.id);
    let (resumed, gap, mut last, backlog) = match cursor {
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
    let stop = app.streams_stop.clone();
    let store = Arc::clone(&app.store);
    let sid = session.id.clone();
    let from_cursor = cursor.is_some();
    let stream = async_stream::stream! {
        yield Ok::<_, std::convert::Infallible>(Event::default().retry(retry).comment("turnwatch"));
        yield Ok(Event::default().event("connected").data(connected.to_string()));
        let mut pending: std::collections::VecDeque<StoredEvent> = backlog.into();
        let mut paging = from_cursor && pending.len() as i64 == PAGE;
        let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY);
        loop {
            // Backlog first (paged), then the live tail.
            while let Some(e) = pending.pop_front() {
                last = last.max(e.seq);
                let closed = e.kind == "closed";
                yield Ok(to_sse(&e));
                if closed { return; }
            }
            if paging {
                match store.events_after(&sid, last, PAGE).await {
                    Ok(more) => { paging = more.len() as i64 == PAGE; pending = more.into(); continue; }
                    Err(_) => return,
                }
            }
            let next = tokio::select! {
                r = rx.recv() => match r {
                    Ok(e) => Next::Event(e),
                    Err(RecvError::Lagged(_)) => Next::CatchUp,
                    Err(RecvError::Closed) => Next::End,
                },
                _ = ping.tick() => Next::Ping,
                () = stop.cancelled() => Next::End,
            };
            match next {
                Next::Event(e) if e.seq > last => pending.push_back((*e).clone()),
                Next::Event(_) => {}
                Next::CatchUp => paging = true,
                Next::Ping => yield Ok(Event::default().event("ping").data(json!({ "timestamp": now_ms() }).to_string())),
                Next::End => {
                    // Deliver what was committed before the stop, then end.
                    loop {
                        match rx.try_recv() {
                            Ok(e) if e.seq > last => { last = e.seq; yield Ok(to_sse(&e)); }
                            Ok(_) | Err(TryRecvError::Lagged(_)) => {}
                            Err(_) => break,
                        }
                    }
                    return;
                }
            }
        }
    };
    let keep_alive = KeepAlive::new().interval(COMMENT_EVERY).text("ping");
    let headers = [("x-accel-buffering", "no"), ("cache-control", "no-cache")];
    Ok((headers, Sse::new(stream).keep_alive(keep_alive)))
}
