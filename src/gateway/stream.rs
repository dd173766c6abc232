//! The one SSE tail both event streams use: a first frame, the backlog, then the live tail,
//! each logged event exactly once and in order. The caller subscribes to the live channel
//! *before* reading the backlog; the tail skips anything at or below what it already sent, and
//! catches up from the store when the live channel lags.
//!
//! Ephemeral events (the admin stream's process samples) may ride along from a channel of
//! their own: sent as they come, without an `id:`, so they never move a client's cursor.
//!
//! Frames are SSE wire bytes ([`frame`]), carried as an axum body that hyper writes, or that
//! `serve` writes straight to a socket.

pub mod session;

use axum::body::Body;
use axum::body::Bytes;
use axum::http::header;
use axum::response::IntoResponse;
use futures::Stream;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};
use tokio_util::sync::CancellationToken;

use crate::api::session::Ping;
use crate::api::{EventKind, SessionEvent};
use crate::clock::now_ms;
use crate::journal::Ephemeral;
use crate::store::{LoggedEvent, StoreError, StoredEvent};

/// Backlog page size.
pub const PAGE: i64 = 1000;
/// An idle stream gets a comment this often (for proxies and to notice a gone client), and
/// every second time a `ping` event (the Lobu gateway's keep-alive, every 30 s).
const KEEP_ALIVE_EVERY: Duration = Duration::from_secs(15);

/// The response headers of an event stream.
const HEADERS: [(header::HeaderName, &str); 3] = [
    (header::CONTENT_TYPE, "text/event-stream"),
    (header::CACHE_CONTROL, "no-cache"),
    (header::HeaderName::from_static("x-accel-buffering"), "no"),
];

/// An event stream as an axum response.
pub fn response(
    stream: impl Stream<Item = Result<Bytes, Infallible>> + Send + 'static,
) -> impl IntoResponse {
    (HEADERS, Body::from_stream(stream))
}

/// SSE frames on the wire.
pub mod frame {
    use axum::body::Bytes;
    use std::fmt::Write as _;
    use std::time::Duration;

    /// An event: `id:` (when given), `event:`, one `data:` line per line of `data`.
    pub fn event(id: Option<i64>, kind: &str, data: &str) -> Bytes {
        let mut out = String::with_capacity(data.len() + kind.len() + 32);
        if let Some(id) = id {
            let _ = writeln!(out, "id: {id}");
        }
        let _ = writeln!(out, "event: {kind}");
        for line in data.split('\n') {
            let _ = writeln!(out, "data: {}", line.strip_suffix('\r').unwrap_or(line));
        }
        out.push('\n');
        Bytes::from(out)
    }

    /// A comment: ignored by clients, it keeps the connection busy.
    pub fn comment(text: &str) -> Bytes {
        Bytes::from(format!(": {text}\n\n"))
    }

    /// The reconnection delay a client should use, with a comment, as a block of its own.
    pub fn retry(after: Duration, text: &str) -> Bytes {
        Bytes::from(format!("retry: {}\n: {text}\n\n", after.as_millis()))
    }

    /// The reconnection delay in the same block as the first event (`frame`): clients that
    /// drop a block without data (eventsource-stream does) still see it.
    pub fn retry_then(after: Duration, text: &str, frame: &[u8]) -> Bytes {
        let mut out = format!("retry: {}\n: {text}\n", after.as_millis()).into_bytes();
        out.extend_from_slice(frame);
        Bytes::from(out)
    }
}

/// A logged event that can be tailed.
pub trait Logged: Send + Sync + 'static {
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
    fn to_sse(&self) -> Bytes {
        frame::event(Some(self.seq()), self.kind(), self.data())
    }
}

impl Logged for StoredEvent {
    fn seq(&self) -> i64 {
        self.seq
    }
    fn kind(&self) -> &str {
        self.kind.as_str()
    }
    fn data(&self) -> &str {
        &self.data
    }
    fn is_final(&self) -> bool {
        self.kind == EventKind::Closed
    }
}

impl Logged for LoggedEvent {
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
    pub head: Vec<Bytes>,
    /// Logged events owed before the live tail.
    pub backlog: Vec<E>,
    /// Everything at or below this has been accounted for.
    pub last: i64,
    /// The backlog is one full page: more may follow from the store.
    pub more: bool,
}

enum Next<E> {
    Event(Arc<E>),
    Ephemeral(Arc<Ephemeral>),
    /// The ephemeral channel closed: the tail goes on without it.
    EphemeralGone,
    CatchUp,
    KeepAlive,
    End,
}

/// The stream: `start`, then live events from `rx`; `fetch(after)` reads a page from the store.
/// Events from `ephemeral`, when given, are sent as they come, between logged ones.
pub fn tail<E, F, Fut>(
    start: Start<E>,
    (mut rx, mut ephemeral): (
        broadcast::Receiver<Arc<E>>,
        Option<broadcast::Receiver<Arc<Ephemeral>>>,
    ),
    fetch: F,
    stop: CancellationToken,
) -> impl Stream<Item = Result<Bytes, Infallible>>
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
        let mut pending: VecDeque<Arc<E>> = start.backlog.into_iter().map(Arc::new).collect();
        let mut paging = start.more;
        let first = tokio::time::Instant::now() + KEEP_ALIVE_EVERY;
        let mut keep_alive = tokio::time::interval_at(first, KEEP_ALIVE_EVERY);
        let mut ticks = 0u64;
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
                        pending = page.into_iter().map(Arc::new).collect();
                        continue;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "event stream catch-up failed; ending the stream");
                        return;
                    }
                }
            }
            match wait((&mut rx, &mut ephemeral), &mut keep_alive, &stop).await {
                Next::Event(e) if e.seq() == last + 1 => pending.push_back(e),
                // Numbers are dense: a jump means events committed elsewhere (another replica,
                // read back out of order) are missing here; the store has them in order.
                Next::Event(e) if e.seq() > last + 1 => paging = true,
                Next::Event(_) => {}
                Next::CatchUp => paging = true,
                Next::Ephemeral(e) => yield Ok(frame::event(None, e.kind, &e.data)),
                Next::EphemeralGone => ephemeral = None,
                Next::KeepAlive => {
                    ticks += 1;
                    yield Ok(keep_alive_frame(ticks));
                }
                Next::End => {
                    // Deliver what was committed before the stop, then end.
                    for frame in committed_since(&mut rx, last) {
                        yield Ok(frame);
                    }
                    return;
                }
            }
        }
    }
}

/// What the tail does next: a live event, a catch-up from the store (it lagged), a keep-alive,
/// or the end.
async fn wait<E>(
    (rx, ephemeral): (
        &mut broadcast::Receiver<Arc<E>>,
        &mut Option<broadcast::Receiver<Arc<Ephemeral>>>,
    ),
    keep_alive: &mut tokio::time::Interval,
    stop: &CancellationToken,
) -> Next<E> {
    let ephemeral = async {
        match ephemeral {
            Some(rx) => loop {
                match rx.recv().await {
                    Ok(e) => return Next::Ephemeral(e),
                    // Behind: the skipped ones are stale already; a newer one follows.
                    Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => return Next::EphemeralGone,
                }
            },
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        r = rx.recv() => match r {
            Ok(e) => Next::Event(e),
            Err(RecvError::Lagged(_)) => Next::CatchUp,
            Err(RecvError::Closed) => Next::End,
        },
        n = ephemeral => n,
        _ = keep_alive.tick() => Next::KeepAlive,
        () = stop.cancelled() => Next::End,
    }
}

/// Every other keep-alive is an `event: ping` (for clients that only see events), the others
/// a comment.
fn keep_alive_frame(tick: u64) -> Bytes {
    if tick % 2 == 0 {
        let ping = SessionEvent::Ping(Ping {
            timestamp: now_ms(),
        });
        frame::event(None, ping.kind().as_str(), &ping.to_data())
    } else {
        frame::comment("ping")
    }
}

/// The frames of events already on the live channel beyond `last`: what was committed before
/// a stop.
fn committed_since<E: Logged>(rx: &mut broadcast::Receiver<Arc<E>>, mut last: i64) -> Vec<Bytes> {
    let mut out = Vec::new();
    loop {
        match rx.try_recv() {
            Ok(e) if e.seq() > last => {
                last = e.seq();
                out.push(e.to_sse());
            }
            Ok(_) | Err(TryRecvError::Lagged(_)) => {}
            Err(_) => return out,
        }
    }
}
