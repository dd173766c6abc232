//! The accept loop: session event streams are written straight to their sockets, everything
//! else is HTTP/1.1 served by hyper; both stop gracefully.
//!
//! Why not hand every connection to hyper: an idle SSE stream would hold hyper's connection
//! state for hours, an 8 KiB write buffer and a read buffer that hyper grows to 16 KiB, about
//! 22 KiB per stream in all (measured with heaptrack, `turnwatch bench p5`). A gateway holds
//! thousands of such streams. So a new connection's first request is peeked at: a complete,
//! well-formed `GET …/agents/{id}/events` head is consumed and answered here, through the
//! same [`sse::open`] the router's handler uses, and the connection then carries nothing but
//! that stream (`Connection: close`, the body ends when the connection does). Anything else,
//! or a head not yet complete, is left unread for hyper. Both paths run the same
//! [`guard::admit`] and decode the session id as the router's `Path` does.
//!
//! Every connection needs a permit from [`Limits`] (past the cap, only `/healthz` is served),
//! and one that has not sent a complete request head within `header_timeout` of its accept
//! is closed, whichever path holds it: a silent connection costs a descriptor and memory.

use axum::Router;
use axum::body::Bytes;
use axum::extract::Query;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::AppState;
use super::guard;
use super::limits::{Limits, Permit};
use super::sse::{self, Since};
use super::tail::HEADERS;

/// The most of a first request head that is peeked at.
const PEEK: usize = 4096;
/// The most headers a peeked request may carry.
const MAX_HEADERS: usize = 32;
/// How long stopping waits for open connections to finish their responses: a client that
/// stopped reading must not hold the gateway up forever.
const DRAIN: Duration = Duration::from_secs(10);
/// The API prefixes a session stream is served under.
const PREFIXES: [&str; 2] = ["/api/v1/agents/", "/lobu/api/v1/agents/"];

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
    state: Arc<AppState>,
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
            state: Arc::clone(&state),
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
    state: Arc<AppState>,
    closing: CancellationToken,
    header_timeout: Duration,
    /// Held until the connection ends.
    permit: Permit,
}

/// What a connection's first bytes say.
enum First {
    /// Nothing within the header timeout, or the client hung up: close.
    Silent,
    /// A complete session stream request: answer it directly.
    Stream(Box<StreamRequest>),
    /// Anything else: hyper's, with a complete head or not.
    Other { complete: bool },
}

impl Conn {
    /// Peeks, then serves. A task is allocated at the size of its largest state, so hyper's
    /// connection is boxed: every silent or streaming connection would pay for it. The direct
    /// stream is not: boxing it made a silent connection cost 1.4 KiB of RSS instead of 3.2,
    /// but an idle stream 5.9 KiB instead of 5.3 (`bench p5`, 15,000 silent connections), and
    /// streams are what a gateway holds for hours.
    async fn run(self, tcp: TcpStream) {
        let deadline = tokio::time::Instant::now() + self.header_timeout;
        let first = tokio::select! {
            first = first_request(&tcp, deadline) => first,
            () = self.closing.cancelled() => return,
        };
        let header_timeout = match first {
            First::Silent => return,
            First::Stream(request) if !self.permit.is_overflow() => {
                stream_directly(tcp, *request, &self.state).await;
                return;
            }
            // hyper's clock starts anew: what is left of this one for an incomplete head, the
            // whole timeout for the next request on a kept-alive connection.
            First::Other { complete: false } => deadline
                .saturating_duration_since(tokio::time::Instant::now())
                .max(Duration::from_millis(1)),
            First::Stream(_) | First::Other { complete: true } => self.header_timeout,
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
    uri: Uri,
    session: String,
    since: Since,
    headers: HeaderMap,
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

/// The parsed head as a session stream request, if it is one this path may answer.
fn stream_request(req: &httparse::Request<'_, '_>, head_len: usize) -> Option<StreamRequest> {
    if req.method? != "GET" || req.version? != 1 {
        return None;
    }
    let uri: Uri = req.path?.parse().ok()?;
    let session = session_of(uri.path())?;
    let Query(since) = Query::<Since>::try_from_uri(&uri).ok()?;
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
    Some(StreamRequest {
        head_len,
        uri,
        session,
        since,
        headers,
    })
}

/// The session id of a stream path, decoded as the router's `{id}` is: the route matches the
/// raw path segment by segment, then `Path` percent-decodes the segment (and rejects one that
/// is not UTF-8, which is left to the router here).
fn session_of(path: &str) -> Option<String> {
    let raw = PREFIXES
        .iter()
        .find_map(|p| path.strip_prefix(p)?.strip_suffix("/events"))
        .filter(|id| !id.is_empty() && !id.contains('/'))?;
    let decoded = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .ok()?;
    Some(decoded.into_owned())
}

/// Consumes the request head and answers it: the stream, or the error response.
async fn stream_directly(mut tcp: TcpStream, request: StreamRequest, state: &AppState) {
    let mut head = vec![0; request.head_len];
    if tcp.read_exact(&mut head).await.is_err() {
        return;
    }
    drop(head);
    let opened = match guard::admit(state, &request.uri, &request.headers) {
        Ok(()) => sse::open(state, &request.session, &request.since, &request.headers).await,
        Err(e) => Err(e),
    };
    drop(request);
    let written = match opened {
        Ok(stream) => write_stream(&mut tcp, stream).await,
        Err(e) => write_response(&mut tcp, e.into_response()).await,
    };
    if let Err(e) = written {
        tracing::trace!(error = %e, "event stream connection ended with an error");
    }
    let _ = tcp.shutdown().await;
}

/// How long one frame of a directly served stream may take to write.
const WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Writes the stream's frames until it ends, the client goes away, or a write cannot finish
/// within [`WRITE_TIMEOUT`].
async fn write_stream(
    tcp: &mut TcpStream,
    stream: impl Stream<Item = Result<Bytes, Infallible>>,
) -> std::io::Result<()> {
    let head = response_head(
        StatusCode::OK,
        HEADERS.iter().map(|(n, v)| (n.as_str(), *v)),
        None,
    );
    tcp.write_all(head.as_bytes()).await?;
    drop(head);
    let mut stream = std::pin::pin!(stream);
    // The client sends nothing more; a read that ends says it hung up.
    let mut probe = [0u8; 16];
    loop {
        tokio::select! {
            frame = stream.next() => match frame {
                // A client that stops reading (its window full) would hold this task and its
                // subscription for ever: a write that cannot finish in time ends the stream.
                Some(Ok(bytes)) => tokio::time::timeout(WRITE_TIMEOUT, tcp.write_all(&bytes))
                    .await
                    .map_err(|_| std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "the client stopped reading its event stream",
                    ))??,
                None => return Ok(()),
            },
            read = tcp.read(&mut probe) => if read? == 0 {
                return Ok(());
            },
        }
    }
}

/// Writes a complete (small) response and ends the connection.
async fn write_response(tcp: &mut TcpStream, response: Response) -> std::io::Result<()> {
    let (parts, body) = response.into_parts();
    let body = axum::body::to_bytes(body, 64 * 1024)
        .await
        .unwrap_or_default();
    // Header values as they are (lossless for UTF-8; never an empty value for a non-ASCII one).
    let values: Vec<(&str, std::borrow::Cow<'_, str>)> = parts
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), String::from_utf8_lossy(v.as_bytes())))
        .collect();
    let headers = values.iter().map(|(n, v)| (*n, v.as_ref()));
    let head = response_head(parts.status, headers, Some(body.len()));
    tcp.write_all(head.as_bytes()).await?;
    tcp.write_all(&body).await
}

/// An HTTP/1.1 response head for a connection that closes after the body.
fn response_head<'a>(
    status: StatusCode,
    headers: impl Iterator<Item = (&'a str, &'a str)>,
    content_length: Option<usize>,
) -> String {
    let mut head = format!(
        "HTTP/1.1 {status}\r\ndate: {}\r\n",
        httpdate::fmt_http_date(std::time::SystemTime::now())
    );
    for (name, value) in headers {
        let _ = write!(head, "{name}: {value}\r\n");
    }
    if let Some(n) = content_length {
        let _ = write!(head, "content-length: {n}\r\n");
    }
    head.push_str("connection: close\r\n\r\n");
    head
}

#[cfg(test)]
mod tests {
    use super::session_of;

    #[test]
    fn stream_paths_decode_like_the_router() {
        let id = |p: &str| session_of(p);
        assert_eq!(id("/api/v1/agents/s-1/events").as_deref(), Some("s-1"));
        assert_eq!(
            id("/lobu/api/v1/agents/%73-1/events").as_deref(),
            Some("s-1")
        );
        assert_eq!(id("/api/v1/agents/a%2Fb/events").as_deref(), Some("a/b"));
        assert_eq!(id("/api/v1/agents/%zz/events").as_deref(), Some("%zz"));
        // Not UTF-8 once decoded: the router's `Path` rejects it, so it is left to the router.
        assert_eq!(id("/api/v1/agents/%ff/events"), None);
        assert_eq!(id("/api/v1/agents/a/b/events"), None);
        assert_eq!(id("/api/v1/agents//events"), None);
        assert_eq!(id("/api/v1/agents/s-1/%65vents"), None);
    }
}
