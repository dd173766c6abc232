//! The one SSE tail both event streams use: a first frame, the backlog, then the live tail,
//! each logged event exactly once and in order. The caller subscribes to the live channel
//! *before* reading the backlog; the tail skips anything at or below what it already sent, and
//! catches up from the store when the live channel lags.

use axum::response::sse::Event;
use futures::Stream;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};
use tokio_util::sync::CancellationToken;

use crate::clock::now_ms;
use crate::store::{AdminEvent, StoreError, StoredEvent};

/// Backlog page size.
pub const PAGE: i64 = 1000;
const PING_EVERY: Duration = Duration::from_secs(30);

/// A logged event that can be tailed.
pub trait Logged: Clone + Send + Sync + 'static {
    /// Its sequence number: the SSE `id`.
    fn seq(&self) -> i64;
    /// Its SSE event name.
    fn kind(&self) -> &str;
    /// Its JSON data.
    fn data(&self) -> &str;
    /// Whether the stream ends after it.
    fn is_final(&self) -> bool {
        false
    }
    /// Its SSE frame.
    fn to_sse(&self) -> Event {
        Event::default()
            .id(self.seq().to_string())
            .event(self.kind())
            .data(self.data())
    }
}

impl Logged for StoredEvent {
    fn seq(&self) -> i64 {
        self.seq
    }
    fn kind(&self) -> &str {
        &self.kind
    }
    fn data(&self) -> &str {
        &self.data
    }
    fn is_final(&self) -> bool {
        self.kind == "closed"
    }
}

impl Logged for AdminEvent {
    fn seq(&self) -> i64 {
        self.seq
    }
    fn kind(&self) -> &str {
        &self.kind
    }
    fn data(&self) -> &str {
        &self.data
    }
}

/// Where a tail starts.
pub struct Start<E> {
    /// Frames sent first (`retry:`, `connected`, `snapshot`).
    pub head: Vec<Event>,
    /// Logged events owed before the live tail.
    pub backlog: Vec<E>,
    /// Everything at or below this has been accounted for.
    pub last: i64,
    /// The backlog is one full page: more may follow from the store.
    pub more: bool,
}

enum Next<E> {
    Event(Arc<E>),
    CatchUp,
    Ping,
    End,
}

/// The stream: `start`, then live events from `rx`; `fetch(after)` reads a page from the store.
pub fn tail<E, F, Fut>(
    start: Start<E>,
    mut rx: broadcast::Receiver<Arc<E>>,
    fetch: F,
    stop: CancellationToken,
) -> impl Stream<Item = Result<Event, Infallible>>
where
    E: Logged,
    F: Fn(i64) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Vec<E>, StoreError>> + Send,
{
    async_stream::stream! {
        for frame in start.head {
            yield Ok::<_, Infallible>(frame);
        }
        let mut last = start.last;
        let mut pending: VecDeque<E> = start.backlog.into();
        let mut paging = start.more;
        let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY);
        loop {
            while let Some(e) = pending.pop_front() {
                last = last.max(e.seq());
                yield Ok(e.to_sse());
                if e.is_final() {
                    return;
                }
            }
            if paging {
                match fetch(last).await {
                    Ok(page) => {
                        paging = page.len() as i64 == PAGE;
                        pending = page.into();
                        continue;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "event stream catch-up failed; ending the stream");
                        return;
                    }
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
                Next::Event(e) if e.seq() > last => pending.push_back((*e).clone()),
                Next::Event(_) => {}
                Next::CatchUp => paging = true,
                Next::Ping => {
                    let data = serde_json::json!({ "timestamp": now_ms() }).to_string();
                    yield Ok(Event::default().event("ping").data(data));
                }
                Next::End => {
                    // Deliver what was committed before the stop, then end.
                    loop {
                        match rx.try_recv() {
                            Ok(e) if e.seq() > last => {
                                last = e.seq();
                                yield Ok(e.to_sse());
                            }
                            Ok(_) | Err(TryRecvError::Lagged(_)) => {}
                            Err(_) => break,
                        }
                    }
                    return;
                }
            }
        }
    }
}
