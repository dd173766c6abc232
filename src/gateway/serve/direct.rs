//! The direct answer: a session stream request the router answers, written to a connection that
//! carries nothing else and closes after it (see `serve` for why).
//!
//! Only the bytes are written here: the response is the router's, every layer included. Its
//! head is HTTP/1.1 with each header value's bytes as they are (a value need not be UTF-8);
//! the framing (`Connection: close`, and `Content-Length` when the body's length is known, else
//! a body that ends with the connection) is this path's own. Every write, the head's or a
//! frame's, must finish within [`WRITE_TIMEOUT`].

use axum::Router;
use axum::body::{Body, HttpBody as _};
use axum::http::{HeaderMap, Request, StatusCode, header};
use axum::response::Response;
use futures::StreamExt;
use hyper::service::Service as _;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::io::Write as _;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long one write to a directly answered connection (its head, or one frame of its body)
/// may take: a client that stops reading (its window full) would otherwise hold the task and
/// its stream's subscription for ever.
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);

/// Consumes the request head (`head_len` bytes, already peeked), has the router answer the
/// request, and writes the answer.
pub(super) async fn answer(
    mut tcp: TcpStream,
    head_len: usize,
    request: Request<Body>,
    app: Router,
) {
    let mut head = vec![0; head_len];
    if tcp.read_exact(&mut head).await.is_err() {
        return;
    }
    drop(head);
    let response = match TowerToHyperService::new(app).call(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    if let Err(e) = write_response(&mut tcp, response, WRITE_TIMEOUT).await {
        tracing::trace!(error = %e, "directly answered connection ended with an error");
    }
    let _ = tcp.shutdown().await;
}

/// Writes a response on a connection that closes after it: the head, then the body's data as
/// it comes, until it ends, the client hangs up, or a write cannot finish within `limit`
/// ([`WRITE_TIMEOUT`]).
async fn write_response(
    tcp: &mut TcpStream,
    response: Response,
    limit: Duration,
) -> std::io::Result<()> {
    let (parts, body) = response.into_parts();
    let head = response_head(parts.status, &parts.headers, body.size_hint().exact());
    drop(parts);
    timed(limit, tcp.write_all(&head)).await?;
    drop(head);
    let mut frames = body.into_data_stream();
    // The client sends nothing more; a read that ends says it hung up.
    let mut probe = [0u8; 16];
    loop {
        tokio::select! {
            frame = frames.next() => match frame {
                Some(Ok(bytes)) => timed(limit, tcp.write_all(&bytes)).await?,
                Some(Err(e)) => return Err(std::io::Error::other(e)),
                None => return Ok(()),
            },
            read = tcp.read(&mut probe) => if read? == 0 {
                return Ok(());
            },
        }
    }
}

/// A write, or a `TimedOut` error once it has taken `limit`.
async fn timed(
    limit: Duration,
    write: impl Future<Output = std::io::Result<()>>,
) -> std::io::Result<()> {
    tokio::time::timeout(limit, write)
        .await
        .unwrap_or_else(|_| {
            Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the client stopped reading its response",
            ))
        })
}

/// An HTTP/1.1 response head for a connection that closes after the body: every header value
/// written byte for byte, `content-length` when the body's length is known, a `date` unless
/// the response has one, and this connection's own framing in place of the response's.
fn response_head(status: StatusCode, headers: &HeaderMap, length: Option<u64>) -> Vec<u8> {
    let mut head = Vec::with_capacity(256);
    // Writing to a `Vec` cannot fail.
    let reason = status.canonical_reason().unwrap_or_default();
    let _ = write!(head, "HTTP/1.1 {} {reason}\r\n", status.as_str());
    if !headers.contains_key(header::DATE) {
        let now = httpdate::fmt_http_date(std::time::SystemTime::now());
        let _ = write!(head, "date: {now}\r\n");
    }
    for (name, value) in headers {
        if name == header::CONNECTION || name == header::TRANSFER_ENCODING {
            continue;
        }
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    if let Some(n) = length.filter(|_| !headers.contains_key(header::CONTENT_LENGTH)) {
        let _ = write!(head, "content-length: {n}\r\n");
    }
    head.extend_from_slice(b"connection: close\r\n\r\n");
    head
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Bytes;
    use axum::http::HeaderValue;
    use tokio::net::TcpListener;

    fn text(head: &[u8]) -> String {
        String::from_utf8_lossy(head).into_owned()
    }

    #[test]
    fn a_head_carries_every_header_value_byte_for_byte() {
        let mut headers = HeaderMap::new();
        let utf8 = HeaderValue::from_bytes("café ☕".as_bytes()).unwrap();
        let opaque = HeaderValue::from_bytes(b"a\xff\x80b").unwrap();
        headers.insert("x-utf8", utf8);
        headers.append("x-opaque", opaque);
        headers.append("x-opaque", HeaderValue::from_static("second"));
        headers.insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
        headers.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        let head = response_head(StatusCode::OK, &headers, Some(12));
        let has = |line: &[u8]| head.windows(line.len()).any(|w| w == line);
        assert!(head.starts_with(b"HTTP/1.1 200 OK\r\n"), "{}", text(&head));
        assert!(has("\r\nx-utf8: café ☕\r\n".as_bytes()), "{}", text(&head));
        assert!(has(b"\r\nx-opaque: a\xff\x80b\r\nx-opaque: second\r\n"));
        assert!(has(b"\r\ndate: "), "{}", text(&head));
        assert!(head.ends_with(b"\r\ncontent-length: 12\r\nconnection: close\r\n\r\n"));
        // The framing is this connection's own.
        assert!(!has(b"keep-alive") && !has(b"chunked"), "{}", text(&head));
    }

    #[test]
    fn a_head_keeps_the_responses_own_length_and_date() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("3"));
        headers.insert(header::DATE, HeaderValue::from_static("then"));
        let head = text(&response_head(StatusCode::NOT_FOUND, &headers, Some(3)));
        assert!(head.starts_with("HTTP/1.1 404 Not Found\r\n"), "{head}");
        assert_eq!(head.matches("content-length").count(), 1, "{head}");
        assert_eq!(head.matches("date").count(), 1, "{head}");
        assert!(head.contains("\r\ndate: then\r\n"), "{head}");
        // Of unknown length: no length, the body ends with the connection.
        let head = text(&response_head(StatusCode::OK, &HeaderMap::new(), None));
        assert!(!head.contains("content-length"), "{head}");
        let odd = StatusCode::from_u16(599).unwrap();
        let head = text(&response_head(odd, &HeaderMap::new(), Some(0)));
        assert!(head.starts_with("HTTP/1.1 599 \r\n"), "{head}");
    }

    /// A client that never reads: a head too large for the socket's buffers, or a body that
    /// never ends, gives up once the write limit has passed (short here, 60 s when serving).
    #[tokio::test]
    async fn a_response_nobody_reads_times_out() {
        let huge = HeaderValue::from_bytes(&vec![b'x'; 64 << 20]).unwrap();
        let chunk = Bytes::from(vec![b'y'; 1 << 20]);
        let endless = futures::stream::repeat(Ok::<_, std::convert::Infallible>(chunk));
        let responses = [
            Response::builder()
                .header("x-huge", huge)
                .body(Body::empty()),
            Response::builder().body(Body::from_stream(endless)),
        ];
        for response in responses {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let client = TcpStream::connect(listener.local_addr().unwrap())
                .await
                .unwrap();
            let (mut server, _) = listener.accept().await.unwrap();
            let limit = Duration::from_millis(200);
            let written = write_response(&mut server, response.unwrap(), limit);
            let e = tokio::time::timeout(Duration::from_secs(30), written)
                .await
                .expect("hang guard: the write had no limit")
                .unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::TimedOut, "{e}");
            drop(client);
        }
    }
}
