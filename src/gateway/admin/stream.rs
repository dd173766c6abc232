//! The admin event stream: a `snapshot` of live workers and open turns for a client without a
//! cursor (or whose cursor does not line up with the log), then the lifecycle log, resumable
//! from any id it gave.

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use std::sync::Arc;

use super::read::{turn_info, worker_info};
use crate::api::admin::Snapshot;
use crate::api::lifecycle::AdminStreamEvent;
use crate::clock::now_ms;
use crate::gateway::AppState;
use crate::gateway::error::ApiError;
use crate::gateway::stream::session::{Since, cursor};
use crate::gateway::stream::{self, PAGE, Start, frame, tail};
use crate::gateway::tickets;

/// `GET /api/v1/admin/events`: `snapshot` (without a cursor), then the lifecycle log.
pub async fn events(
    State(app): State<Arc<AppState>>,
    Query(q): Query<Since>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    let cursor = cursor(&headers, &q)?;
    match q.ticket.as_deref() {
        Some(ticket) => drop(tickets::redeem(&app, ticket, None).await?),
        None => drop(app.tokens.reader(&headers)?),
    }
    let rx = app.hub.subscribe_admin();
    let ephemeral = app.hub.subscribe_ephemeral();
    let retry = app.config.gateway.sse_retry;
    // A cursor beyond the log's end (the gateway restarted on a fresh or restored database),
    // or below what history retention kept, does not line up with this log: the client gets
    // a snapshot marked as a gap, as if it had no cursor, rather than silently losing events.
    let gap = match cursor {
        Some(c) => {
            let (first, last) = app.store.admin_log_bounds().await?;
            c > last || c < first - 1
        }
        None => false,
    };
    let start = match cursor.filter(|_| !gap) {
        Some(c) => {
            let backlog = app.store.admin_events_after(c, PAGE).await?;
            let more = backlog.len() as i64 == PAGE;
            Start {
                head: vec![frame::retry(retry, "turnwatch admin")],
                backlog,
                last: c,
                more,
            }
        }
        None => {
            let (first, seq) = snapshot(&app, gap).await?;
            Start {
                head: vec![frame::retry_then(retry, "turnwatch admin", &first)],
                backlog: Vec::new(),
                last: seq,
                more: false,
            }
        }
    };
    let store = Arc::clone(&app.store);
    let fetch = move |after| {
        let store = Arc::clone(&store);
        async move { store.admin_events_after(after, PAGE).await }
    };
    Ok(stream::response(tail(
        start,
        (rx, Some(ephemeral)),
        fetch,
        app.streams_stop.clone(),
    )))
}

/// The admin stream's `snapshot` frame and the sequence it was taken at; after a gap it says
/// so (`gap: true`, `resumedFrom: null`, as a session stream's `connected` does).
async fn snapshot(app: &AppState, gap: bool) -> Result<(axum::body::Bytes, i64), ApiError> {
    let s = app.store.snapshot(now_ms()).await?;
    let snap = Snapshot {
        workers: s.workers.iter().map(worker_info).collect(),
        turns: s.turns.into_iter().map(|t| turn_info(t, false)).collect(),
        gap,
        resumed_from: gap.then_some(()),
    };
    let data = serde_json::to_string(&snap).map_err(|e| ApiError::internal(&e))?;
    Ok((
        frame::event(Some(s.seq), AdminStreamEvent::SNAPSHOT, &data),
        s.seq,
    ))
}
