//! The resuming stream against a tiny SSE server on loopback that answers each connection as
//! a script says: what the readers rely on when a gateway restarts, refuses or grows.

use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::Item;
use crate::api::SessionEvent;
use crate::client::{Client, ClientError, Cursor};

const CONNECTED: &str = "retry: 100\nevent: connected\ndata: {\"agentId\":\"s\",\"sessionId\":\"s\",\"timestamp\":1,\"resumedFrom\":null,\"lastEventId\":0}\n\n";

/// Serves each accepted connection the next response of `script` (then closes it), after
/// `pause`; records each request's `Last-Event-ID`.
async fn server(
    script: Vec<String>,
    pause: Duration,
) -> (String, tokio::task::JoinHandle<Vec<Option<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let mut seen = Vec::new();
        for response in script {
            let (mut tcp, _) = listener.accept().await.unwrap();
            let mut buf = vec![0; 4096];
            let n = tcp.read(&mut buf).await.unwrap();
            let head = String::from_utf8_lossy(&buf[..n]).to_lowercase();
            seen.push(
                head.lines()
                    .find_map(|l| l.strip_prefix("last-event-id: "))
                    .map(str::to_owned),
            );
            let _ = tcp.write_all(response.as_bytes()).await;
            drop(tcp);
            tokio::time::sleep(pause).await;
        }
        seen
    });
    (url, task)
}

fn ok(body: &str) -> String {
    format!("HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n{body}")
}

fn refused(status: u16, code: &str) -> String {
    let body = format!("{{\"success\":false,\"error\":\"no\",\"code\":\"{code}\"}}");
    format!(
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// Reads items until `want` events arrived, or the stream fails; the events' ids and kinds.
async fn read(
    stream: &mut super::Resuming<SessionEvent>,
    want: usize,
) -> Result<Vec<(Option<i64>, String)>, ClientError> {
    let mut got = Vec::new();
    while got.len() < want {
        match tokio::time::timeout(Duration::from_secs(20), stream.next())
            .await
            .expect("the stream answers")?
        {
            Item::Event(ev, e) => got.push((ev.id, e.kind().to_string())),
            Item::Unreadable(ev, _) => got.push((ev.id, format!("unreadable {}", ev.event))),
            _ => {}
        }
    }
    Ok(got)
}

#[tokio::test]
async fn an_outage_that_ended_does_not_count_against_the_next_one() {
    // Three connections, each closed at once, with pauses longer than the give-up limit
    // between them: each reconnect succeeds, so the stream never gives up.
    let delta = "id: 1\nevent: output\ndata: {\"type\":\"delta\",\"content\":\"a\",\"messageId\":\"m\",\"turnId\":\"t\",\"timestamp\":1}\n\n";
    let script = vec![
        ok(CONNECTED),
        ok(CONNECTED),
        ok(&format!("{CONNECTED}{delta}")),
    ];
    let (url, server) = server(script, Duration::from_millis(1500)).await;
    let client = Client::new(&url, None);
    let mut stream = client
        .session_stream("s", "tok", Cursor::default())
        .give_up_after(Duration::from_secs(1));
    let got = read(&mut stream, 4).await.unwrap();
    assert_eq!(
        got.last().unwrap(),
        &(Some(1), "output".to_owned()),
        "{got:?}"
    );
    assert_eq!(stream.cursor(), Some(1));
    // Every reconnect resumed from where `connected` said the log stood.
    assert_eq!(
        server.await.unwrap(),
        [None, Some("0".into()), Some("0".into())]
    );
}

#[tokio::test]
async fn a_5xx_is_retried_a_4xx_is_final() {
    let script = vec![
        refused(503, "store_unavailable"),
        ok(CONNECTED),
        refused(410, "session_deleted"),
    ];
    let (url, _server) = server(script, Duration::from_millis(10)).await;
    let client = Client::new(&url, None);
    let mut stream = client.session_stream("s", "tok", Cursor::default());
    read(&mut stream, 1).await.unwrap();
    let e = read(&mut stream, 1).await.unwrap_err();
    assert_eq!(e.code(), Some(crate::api::ErrorCode::SessionDeleted), "{e}");
}

#[tokio::test]
async fn an_event_of_a_newer_gateway_is_passed_on_and_the_cursor_moves_past_it() {
    let newer = "id: 5\nevent: thought\ndata: {\"turnId\":\"t\"}\n\n";
    let failed = "id: 6\nevent: error\ndata: {\"type\":\"error\",\"error\":\"oom\",\"code\":\"worker_oom\",\"messageId\":\"m\",\"turnId\":\"t\",\"timestamp\":1}\n\n";
    let (url, _server) = server(
        vec![ok(&format!("{CONNECTED}{newer}{failed}"))],
        Duration::ZERO,
    )
    .await;
    let client = Client::new(&url, None);
    let mut stream = client.session_stream("s", "tok", Cursor::default());
    let got = read(&mut stream, 3).await.unwrap();
    assert_eq!(got[1], (Some(5), "unreadable thought".to_owned()));
    // An unknown failure code still reads: as `other`, with the gateway's sentence.
    assert_eq!(got[2], (Some(6), "error".to_owned()));
    assert_eq!(stream.cursor(), Some(6));
}
