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
//! or a head not yet complete, is left unread for hyper.

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
use super::sse::{self, Since};
use super::tail::HEADERS;

/// How long a client may take to send a request head (hyper's side).
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// The most of a first request head that is peeked at.
const PEEK: usize = 4096;
/// The most headers a peeked request may carry.
const MAX_HEADERS: usize = 32;
/// How long stopping waits for open connections to finish their responses: a client that
/// stopped reading must not hold the gateway up forever.
const DRAIN: Duration = Duration::from_secs(10);
/// The API prefixes a session stream is served under.
const PREFIXES: [&str; 2] = ["/api/v1/agents/", "/lobu/api/v1/agents/"];

/// Serves until `shutdown` resolves, then stops accepting and waits (up to [`DRAIN`]) for every
/// connection to finish (event streams end once the gateway's stop token is cancelled).
pub(super) async fn serve(
    listener: TcpListener,
    app: Router,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let tasks = TaskTracker::new();
    let closing = CancellationToken::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
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
        tasks.spawn(connection(
            tcp,
            app.clone(),
            Arc::clone(&state),
            closing.clone(),
        ));
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

async fn connection(tcp: TcpStream, app: Router, state: Arc<AppState>, closing: CancellationToken) {
    let request = tokio::select! {
        request = peek_stream_request(&tcp) => request,
        () = closing.cancelled() => return,
    };
    if let Some(request) = request {
        stream_directly(tcp, request, &state).await;
        return;
    }
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    let conn = builder.serve_connection(TokioIo::new(tcp), TowerToHyperService::new(app));
    let mut conn = std::pin::pin!(conn);
    let done = tokio::select! {
        r = conn.as_mut() => Some(r),
        () = closing.cancelled() => None,
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

/// A session stream request, read from a peeked request head.
struct StreamRequest {
    /// Bytes of the head, to consume before answering.
    head_len: usize,
    session: String,
    since: Since,
    headers: HeaderMap,
}

/// The connection's first request, if it is a complete session stream request. Nothing is
/// consumed from the socket.
async fn peek_stream_request(tcp: &TcpStream) -> Option<StreamRequest> {
    let mut buf = vec![0; PEEK];
    let n = tokio::time::timeout(HEADER_TIMEOUT, tcp.peek(&mut buf))
        .await
        .ok()?
        .ok()?;
    let mut parsed = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut parsed);
    let httparse::Status::Complete(head_len) = req.parse(&buf[..n]).ok()? else {
        return None;
    };
    if req.method? != "GET" || req.version? != 1 {
        return None;
    }
    let uri: Uri = req.path?.parse().ok()?;
    let session = PREFIXES
        .iter()
        .find_map(|p| uri.path().strip_prefix(p)?.strip_suffix("/events"))
        .filter(|id| !id.is_empty() && !id.contains('/'))?
        .to_owned();
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
        session,
        since,
        headers,
    })
}

/// Consumes the request head and answers it: the stream, or the error response.
async fn stream_directly(mut tcp: TcpStream, request: StreamRequest, state: &AppState) {
    let mut head = vec![0; request.head_len];
    if tcp.read_exact(&mut head).await.is_err() {
        return;
    }
    drop(head);
    let opened = sse::open(state, &request.session, &request.since, &request.headers).await;
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

/// Writes the stream's frames until it ends or the client goes away.
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
                Some(Ok(bytes)) => tcp.write_all(&bytes).await?,
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
    let headers = parts
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.to_str().unwrap_or_default()));
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
