//! Connections cannot starve the gateway: a connection that sends no complete request head is
//! closed after `header_timeout` on both serving paths, and past `max_connections` newcomers
//! still get `/healthz` (and a 503 for anything else) instead of a timeout.

use std::time::Duration;

use crate::harness::{GUARD, TestGateway, config, worker};
use crate::raw::{Raw, host};

fn limited(header_timeout: Duration, max_connections: usize) -> turnwatch::config::Config {
    let mut c = config(vec![("echo", worker(&["--mode", "echo"]))]);
    c.gateway.header_timeout = header_timeout;
    c.gateway.max_connections = Some(max_connections);
    c
}

#[tokio::test]
async fn connections_without_a_request_head_are_closed_on_both_paths() {
    let gw = TestGateway::start(limited(Duration::from_millis(300), 100)).await;
    let own_host = format!("Host: {}", host(&gw.url));
    // Silent from the start: the direct path's peek is waiting.
    let mut silent = Raw::connect(&gw.url).await;
    // Half a stream request head: handed to hyper with what is left of the clock.
    let mut half_stream = Raw::connect(&gw.url).await;
    half_stream
        .send("GET /api/v1/agents/s-1/events HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .await;
    let mut half_other = Raw::connect(&gw.url).await;
    half_other.send("POST /api/v1/agents HTTP/1.1\r\n").await;
    // One request served, then silence on the kept-alive connection.
    let mut idle = Raw::connect(&gw.url).await;
    assert_eq!(
        idle.request("GET", "/healthz", &[&own_host]).await.status,
        200
    );
    for raw in [&mut silent, &mut half_stream, &mut half_other, &mut idle] {
        raw.assert_closed().await;
    }
    gw.stop().await;
}

#[tokio::test]
async fn past_the_connection_cap_healthz_answers_and_the_rest_get_503() {
    // A long header timeout: the silent connections hold their slots for the whole test.
    let gw = TestGateway::start(limited(GUARD, 2)).await;
    let own_host = format!("Host: {}", host(&gw.url));
    let silent = [Raw::connect(&gw.url).await, Raw::connect(&gw.url).await];

    let mut probe = Raw::connect(&gw.url).await;
    let r = probe.request("GET", "/healthz", &[&own_host]).await;
    assert_eq!(r.status, 200, "{r:?}");
    probe.assert_closed().await; // one request per connection past the cap
    let mut create = Raw::connect(&gw.url).await;
    let r = create
        .request("POST", "/api/v1/agents", &[&own_host, "Content-Length: 0"])
        .await;
    r.assert_error(503, "too_many_connections");
    // A stream request, which the direct path would have taken, is refused the same way.
    let mut stream = Raw::connect(&gw.url).await;
    let r = stream
        .request("GET", "/api/v1/agents/s-1/events", &[&own_host])
        .await;
    r.assert_error(503, "too_many_connections");

    // Once the silent ones hang up, their slots serve again.
    drop(silent);
    let deadline = tokio::time::Instant::now() + GUARD;
    loop {
        let mut create = Raw::connect(&gw.url).await;
        let r = create
            .request("POST", "/api/v1/agents", &[&own_host, "Content-Length: 0"])
            .await;
        if r.status == 201 {
            break;
        }
        r.assert_error(503, "too_many_connections");
        assert!(tokio::time::Instant::now() < deadline, "slots never freed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    gw.stop().await;
}

#[tokio::test]
async fn silent_connections_past_every_slot_time_out_and_healthz_answers() {
    let gw = TestGateway::start(limited(Duration::from_millis(300), 2)).await;
    let own_host = format!("Host: {}", host(&gw.url));
    // More than the cap and the overflow pool together: the last wait in the backlog.
    let mut silent = Vec::new();
    for _ in 0..40 {
        silent.push(Raw::connect(&gw.url).await);
    }
    let mut probe = Raw::connect(&gw.url).await;
    let r = probe.request("GET", "/healthz", &[&own_host]).await;
    assert_eq!(r.status, 200, "{r:?}");
    for raw in &mut silent {
        raw.assert_closed().await;
    }
    gw.stop().await;
}
