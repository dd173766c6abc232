//! The accept loop: session event streams are written straight to their sockets, everything
//! else is HTTP/1.1 served by hyper; both stop gracefully.
//!
//! Why not hand every connection to hyper: an idle SSE stream would hold hyper's connection
//! state for hours, an 8 KiB write buffer and a read buffer that hyper grows to 16 KiB, about
//! 22 KiB per stream in all (measured with heaptrack, `turnwatch bench p5`). A gateway holds
//! thousands of such streams. So a new connection's first request is peeked at: a complete
//! `GET` head without a body whose path is the session stream's route ([`routes`]) is consumed
//! and answered here, and the connection then carries nothing but that answer
//! (`Connection: close`, a body of unknown length ends when the connection does). Anything
//! else, or a head not yet complete, is left unread for hyper.
//!
//! The direct path skips hyper's connection, never the router: the request is handed to the
//! same [`Router`] value hyper calls, so routing, percent-decoding, extractors and every layer
//! (the guard, the JSON rejections, any added later) are the router's own, and only the
//! response's bytes are written by [`direct`]. What [`routes`] recognises only decides which
//! path serves a request: a path it took wrongly would still get the router's answer, once,
//! on a closing connection (a test compares the two paths over many paths).
//!
//! Every connection needs a permit from [`Limits`] (past the cap, only `/healthz` is served),
//! and one that has not sent a complete request head within `header_timeout` of its accept
//! is closed, whichever path holds it: a silent connection costs a descriptor and memory.

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Request, Uri, Version};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::limits::{Limits, Permit};
use super::routes;

mod direct;

/// The most of a first request head that is peeked at.
const PEEK: usize = 4096;
/// The most headers a peeked request may carry.
const MAX_HEADERS: usize = 32;
/// How long stopping waits for open connections to finish their responses: a client that
/// stopped reading must not hold the gateway up forever.
const DRAIN: Duration = Duration::from_secs(10);

/// The routers a connection may be served by.
pub(super) struct Apps {
    /// Every route.
    pub full: Router,
    /// What a connection past the cap gets: `/healthz`, else 503.
    pub overflow: Router,
}

/// Serves until `shutdown` resolves, then stops accepting and waits (up to [`DRAIN`]) for every
/// connection to finish (event streams end once the gateway's stop token is cancelled).
pub(super) async fn serve(
    listener: TcpListener,
    apps: Apps,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let tasks = TaskTracker::new();
    let closing = CancellationToken::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let mut at_cap = false;
    loop {
        // A permit first: at the cap the listener is left alone until a connection ends.
        let permit = tokio::select! {
            permit = limits.acquire() => permit,
            () = &mut shutdown => break,
        };
        if permit.is_overflow() != at_cap {
            at_cap = permit.is_overflow();
            if at_cap {
                tracing::warn!("at the connection cap: serving /healthz only to newcomers");
            }
        }
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let tcp = match accepted {
            Ok((tcp, _)) => tcp,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // Nagle's algorithm would hold each small SSE frame behind the previous one's delayed
        // ACK (~40 ms on Linux): a crash's `error` right after a delta would wait that long.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
        let app = if permit.is_overflow() {
            apps.overflow.clone()
        } else {
            apps.full.clone()
        };
        let conn = Conn {
            app,
            closing: closing.clone(),
            header_timeout: limits.header_timeout,
            permit,
        };
        tasks.spawn(conn.run(tcp));
    }
    drop(listener);
    closing.cancel();
    tasks.close();
    if tokio::time::timeout(DRAIN, tasks.wait()).await.is_err() {
        tracing::warn!(
            open = tasks.len(),
            "connections still open after {DRAIN:?}; stopping without them"
        );
    }
}

/// One accepted connection and what serves it.
struct Conn {
    app: Router,
    closing: CancellationToken,
    header_timeout: Duration,
    /// Held until the connection ends.
    permit: Permit,
}

/// What a connection's first bytes say.
enum First {
    /// Nothing within the header timeout, or the client hung up: close.
    Silent,
    /// A complete session stream request: the router answers it, written directly.
    Stream(Box<StreamRequest>),
    /// Anything else: hyper's, with a complete head or not.
    Other { complete: bool },
}

impl Conn {
    /// Peeks, then serves. A task is allocated at the size of its largest state, so hyper's
    /// connection is boxed: every silent or streaming connection would pay for it. The direct
    /// answer is not: boxing it made a silent connection cost 1.4 KiB of RSS instead of 2.1,
    /// but an idle stream 5.2 KiB instead of 4.7 (`bench p5`, and 8,000 silent connections),
    /// and streams are what a gateway holds for hours.
    async fn run(self, tcp: TcpStream) {
        let deadline = tokio::time::Instant::now() + self.header_timeout;
        let first = tokio::select! {
            first = first_request(&tcp, deadline) => first,
            () = self.closing.cancelled() => return,
        };
        let header_timeout = match first {
            First::Silent => return,
            First::Stream(request) => {
                direct::answer(tcp, request.head_len, request.request, self.app).await;
                return;
            }
            // hyper's clock starts anew: what is left of this one for an incomplete head, the
            // whole timeout for the next request on a kept-alive connection.
            First::Other { complete: false } => deadline
                .saturating_duration_since(tokio::time::Instant::now())
                .max(Duration::from_millis(1)),
            First::Other { complete: true } => self.header_timeout,
        };
        Box::pin(self.serve_hyper(tcp, header_timeout)).await;
    }

    async fn serve_hyper(self, tcp: TcpStream, header_timeout: Duration) {
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(header_timeout)
            .keep_alive(!self.permit.is_overflow());
        let service = TowerToHyperService::new(self.app);
        let conn = builder.serve_connection(TokioIo::new(tcp), service);
        let mut conn = std::pin::pin!(conn);
        let done = tokio::select! {
            r = conn.as_mut() => Some(r),
            () = self.closing.cancelled() => None,
        };
        let result = match done {
            Some(r) => r,
            None => {
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        };
        if let Err(e) = result {
            tracing::trace!(error = %e, "connection ended with an error");
        }
    }
}

/// A session stream request, read from a peeked request head.
struct StreamRequest {
    /// Bytes of the head, to consume before answering.
    head_len: usize,
    /// The request as hyper would have handed it to the router.
    request: Request<Body>,
}

/// Peeks at the connection's first request, waiting for it until `deadline`. Nothing is
/// consumed from the socket, and no buffer is held while the client is silent.
async fn first_request(tcp: &TcpStream, deadline: tokio::time::Instant) -> First {
    let peeked = tokio::time::timeout_at(deadline, async {
        // The buffer only once there is something to read: a silent connection holds a byte.
        // (`readable` would not do: it wakes at once on a fresh socket.)
        if tcp.peek(&mut [0u8; 1]).await? == 0 {
            return Ok(Vec::new());
        }
        let mut buf = vec![0; PEEK];
        let n = tcp.peek(&mut buf).await?;
        buf.truncate(n);
        std::io::Result::Ok(buf)
    });
    let buf = match peeked.await {
        Err(_) => return First::Silent,
        Ok(Ok(buf)) if buf.is_empty() => return First::Silent,
        Ok(Ok(buf)) => buf,
        Ok(Err(_)) => return First::Other { complete: false },
    };
    let mut parsed = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut parsed);
    match req.parse(&buf) {
        Ok(httparse::Status::Complete(head_len)) => match stream_request(&req, head_len) {
            Some(request) => First::Stream(Box::new(request)),
            None => First::Other { complete: true },
        },
        Ok(httparse::Status::Partial) => First::Other { complete: false },
        // Malformed: hyper answers it (400) at once.
        Err(_) => First::Other { complete: true },
    }
}

/// The parsed head as a request for the router, if it is a session stream request this path
/// may take: a `GET` of the stream's route, HTTP/1.1, no body, no upgrade.
fn stream_request(req: &httparse::Request<'_, '_>, head_len: usize) -> Option<StreamRequest> {
    if req.method? != "GET" || req.version? != 1 {
        return None;
    }
    let uri: Uri = req.path?.parse().ok()?;
    if !routes::is_session_events(uri.path()) {
        return None;
    }
    let mut headers = HeaderMap::with_capacity(req.headers.len());
    for h in req.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes()).ok()?;
        // A request with a body or an upgrade is hyper's to judge.
        if matches!(
            name.as_str(),
            "content-length" | "transfer-encoding" | "upgrade" | "expect"
        ) {
            return None;
        }
        headers.append(name, HeaderValue::from_bytes(h.value).ok()?);
    }
    let mut request = Request::new(Body::empty());
    *request.uri_mut() = uri;
    *request.version_mut() = Version::HTTP_11;
    *request.headers_mut() = headers;
    Some(StreamRequest { head_len, request })
}
