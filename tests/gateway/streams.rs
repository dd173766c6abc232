//! Failure-matrix rows 20 and 21, the SSE framing, Lobu compatibility and idempotency.

use futures::StreamExt;
use serde_json::Value;
use std::time::Duration;

use crate::harness::{Backend, GUARD, TestGateway, assert_completed, config, on_both, worker};

on_both!(
    row20_reconnect_with_last_event_id_gets_the_rest_once_in_order,
    row21_no_cursor_replays_only_turns_in_flight,
    repeated_message_id_is_idempotent_and_turns_run_in_order,
    same_thread_resumes_the_session_unless_forced_new,
    cursor_older_than_retention_is_told_about_the_gap,
);

async fn row20_reconnect_with_last_event_id_gets_the_rest_once_in_order(b: Backend) {
    let gw = TestGateway::start_with(
        b,
        config(vec![(
            "slow",
            worker(&["--mode", "slow", "--deltas", "12", "--delay-ms", "60"]),
        )]),
    )
    .await;
    let s = gw.session("slow").await;
    let mut r = gw.open(&s, None).await;
    let text = "abcdefghijkl";
    let turn = gw.post(&s, text).await;
    let mut before = Vec::new();
    while before.len() < 3 {
        before.push(r.next().await.unwrap());
    }
    drop(r); // the client drops mid-turn
    tokio::time::sleep(Duration::from_millis(250)).await;
    let last = before.last().unwrap().id.unwrap();
    let mut r = gw.open(&s, Some(last)).await;
    assert_eq!(r.connected.as_ref().unwrap().data["resumedFrom"], last);
    let after = r.until_complete(&turn).await;
    let all: Vec<_> = before.iter().chain(&after).collect();
    let ids: Vec<i64> = all.iter().map(|e| e.id.unwrap()).collect();
    assert_eq!(
        ids,
        (1..=ids.len() as i64).collect::<Vec<_>>(),
        "every id once, in order"
    );
    let streamed: String = all
        .iter()
        .filter(|e| e.event == "output")
        .map(|e| e.data["content"].as_str().unwrap())
        .collect();
    assert_eq!(streamed, text);
    assert_completed(&after);
    gw.stop().await;
}

async fn row21_no_cursor_replays_only_turns_in_flight(b: Backend) {
    let gw = TestGateway::start_with(
        b,
        config(vec![
            ("echo", worker(&["--mode", "echo"])),
            (
                "slow",
                worker(&["--mode", "slow", "--deltas", "20", "--delay-ms", "50"]),
            ),
        ]),
    )
    .await;
    let (s, _, _) = gw.turn("echo", "already over").await;
    let mut r = gw.open(&s, None).await;
    r.assert_quiet(Duration::from_millis(300)).await;

    // Mid-turn, a cursorless client gets that turn's events so far, then the rest.
    let s = gw.session("slow").await;
    let mut first = gw.open(&s, None).await;
    let turn = gw.post(&s, "0123456789abcdefghij").await;
    for _ in 0..5 {
        first.next().await.unwrap();
    }
    let mut late = gw.open(&s, None).await;
    let events = late.until_complete(&turn).await;
    let ids: Vec<i64> = events.iter().map(|e| e.id.unwrap()).collect();
    assert_eq!(ids[0], 1, "starts at the turn's first event");
    assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "{ids:?}");
    gw.stop().await;
}

#[tokio::test]
async fn sse_framing_retry_connected_and_headers() {
    let gw = TestGateway::start(config(vec![("echo", worker(&["--mode", "echo"]))])).await;
    let s = gw.session("echo").await;
    let resp = gw
        .http
        .get(format!("{}/api/v1/agents/{}/events", gw.url, s.id))
        .bearer_auth(&s.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    assert_eq!(resp.headers()["cache-control"], "no-cache");
    assert_eq!(resp.headers()["x-accel-buffering"], "no");
    let mut body = resp.bytes_stream();
    let mut text = String::new();
    while !text.contains("event: connected") {
        let chunk = tokio::time::timeout(GUARD, body.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(
        text.starts_with(": turnwatch\nretry: 3000\n\n") || text.starts_with("retry: 3000\n"),
        "{text:?}"
    );
    gw.stop().await;
}

async fn repeated_message_id_is_idempotent_and_turns_run_in_order(b: Backend) {
    let gw = TestGateway::start_with(b, config(vec![("echo", worker(&["--mode", "echo"]))])).await;
    let s = gw.session("echo").await;
    let mut r = gw.open(&s, None).await;
    let a = gw
        .client
        .post_message(&s.id, &s.token, "one", Some("msg-1".into()))
        .await
        .unwrap();
    let b = gw
        .client
        .post_message(&s.id, &s.token, "one", Some("msg-1".into()))
        .await
        .unwrap();
    assert_eq!(a.turn_id, b.turn_id);
    assert!(!a.deduplicated && b.deduplicated);
    let c = gw.post(&s, "two").await;
    assert_eq!(
        assert_completed(&r.until_complete(a.turn_id.as_str()).await),
        "one"
    );
    assert_eq!(assert_completed(&r.until_complete(&c).await), "two");
    r.assert_quiet(Duration::from_millis(300)).await;
    gw.stop().await;
}

async fn same_thread_resumes_the_session_unless_forced_new(b: Backend) {
    let gw = TestGateway::start_with(b, config(vec![("echo", worker(&["--mode", "echo"]))])).await;
    let req = |force_new| turnwatch::api::CreateSession {
        agent_id: None,
        thread: Some("t1".into()),
        force_new,
        ..Default::default()
    };
    let a = gw.client.create_session(&req(false)).await.unwrap();
    let b = gw.client.create_session(&req(false)).await.unwrap();
    let c = gw.client.create_session(&req(true)).await.unwrap();
    assert_eq!(a.agent_id, b.agent_id);
    assert_ne!(a.agent_id, c.agent_id);
    gw.stop().await;
}

async fn cursor_older_than_retention_is_told_about_the_gap(b: Backend) {
    let mut c = config(vec![("echo", worker(&["--mode", "echo"]))]);
    c.gateway.event_retention = Duration::from_millis(100);
    let gw = TestGateway::start_with(b, c).await;
    let (s, _, first) = gw.turn("echo", "soon forgotten").await;
    let old = first[0].id.unwrap();
    // The pruner runs every second at this retention; wait until the first turn is pruned.
    let deadline = tokio::time::Instant::now() + GUARD;
    loop {
        let left = gw.db().await.int("SELECT COUNT(*) FROM events", &[]).await;
        if left == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "events were never pruned"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut r = gw.open(&s, Some(old)).await;
    let connected = r.connected.clone().unwrap();
    assert_eq!(connected.data["gap"], true, "{connected:?}");
    assert!(connected.data["resumedFrom"].is_null());
    let turn = gw.post(&s, "after the gap").await;
    let events = r.until_complete(&turn).await;
    assert!(
        events[0].id.unwrap() > first.last().unwrap().id.unwrap(),
        "ids are never reused"
    );
    assert_completed(&events);
    gw.stop().await;
}

/// Reads from a raw connection until `needle` has arrived (or the connection ends).
async fn read_until(tcp: &mut tokio::net::TcpStream, needle: &str) -> String {
    use tokio::io::AsyncReadExt;
    let mut text = String::new();
    let mut buf = [0u8; 4096];
    while !text.contains(needle) {
        let n = tokio::time::timeout(GUARD, tcp.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        if n == 0 {
            break;
        }
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    text
}

async fn stream_count(gw: &TestGateway) -> u64 {
    let o: Value = gw
        .http
        .get(format!("{}/api/v1/admin/overview", gw.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    o["sseConnections"].as_u64().unwrap()
}

/// Session streams on a fresh connection are answered without hyper; a head split over two
/// writes, or a connection that already carried a request, goes through hyper. All three
/// behave the same, errors included, and a client hanging up is noticed.
#[tokio::test]
async fn session_streams_are_the_same_on_every_connection_path() {
    use tokio::io::AsyncWriteExt;
    let gw = TestGateway::start(config(vec![("echo", worker(&["--mode", "echo"]))])).await;
    let s = gw.session("echo").await;
    let addr = gw.url.trim_start_matches("http://").to_owned();
    let head = |token: &str| {
        format!(
            "GET /api/v1/agents/{}/events HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\r\n",
            s.id
        )
    };
    // Fresh connection, whole head at once.
    let mut direct = tokio::net::TcpStream::connect(&addr).await.unwrap();
    direct.write_all(head(&s.token).as_bytes()).await.unwrap();
    let text = read_until(&mut direct, "event: connected").await;
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(
        text.contains("content-type: text/event-stream\r\n"),
        "{text}"
    );
    assert!(
        text.contains(" GMT\r\n") && text.contains("\r\ndate: "),
        "{text}"
    );
    // The head in two pieces.
    let mut split = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let full = head(&s.token);
    split.write_all(&full.as_bytes()[..20]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    split.write_all(&full.as_bytes()[20..]).await.unwrap();
    let text = read_until(&mut split, "event: connected").await;
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    // A connection that served a request first.
    let mut reused = tokio::net::TcpStream::connect(&addr).await.unwrap();
    reused
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    read_until(&mut reused, "\r\n\r\n").await;
    reused.write_all(full.as_bytes()).await.unwrap();
    let text = read_until(&mut reused, "event: connected").await;
    assert!(text.contains("HTTP/1.1 200 OK\r\n"), "{text}");
    assert_eq!(stream_count(&gw).await, 3);

    gw.post(&s, "on every path").await;
    for tcp in [&mut direct, &mut split, &mut reused] {
        let text = read_until(tcp, "event: complete").await;
        assert!(text.contains("\"finalText\":\"on every path\""), "{text}");
    }
    // A wrong token: the same JSON error either way, and the connection ends.
    let mut forbidden = tokio::net::TcpStream::connect(&addr).await.unwrap();
    forbidden.write_all(head("wrong").as_bytes()).await.unwrap();
    let text = read_until(&mut forbidden, "\u{0}").await;
    assert!(text.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{text}");
    assert!(text.contains("\"code\":\"forbidden\""), "{text}");
    // Hanging up ends the stream.
    drop((direct, split, reused));
    let deadline = tokio::time::Instant::now() + GUARD;
    while stream_count(&gw).await > 0 {
        assert!(tokio::time::Instant::now() < deadline, "streams left open");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    gw.stop().await;
}
