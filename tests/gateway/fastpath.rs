//! The direct stream path and the router agree. A session stream request as a fresh
//! connection's first request is answered without hyper's connection (`serve`), as a later
//! request on a kept-alive connection through hyper: for every path below, under every API
//! prefix and some that are not, both get the same answer, and the direct path takes exactly
//! the requests the router routes to the stream (anything but its `not_found` fallback).

use serde_json::Value;
use turnwatch::gateway::API_PREFIXES;

use crate::harness::{TestGateway, config, worker};
use crate::raw::{Raw, Reply, host};

/// What both paths must agree on: the status, and the session streamed or the error's code.
fn answer(r: &Reply) -> (u16, Value) {
    let what = if r.status == 200 {
        r.connected()["agentId"].clone()
    } else {
        r.json()["code"].clone()
    };
    (r.status, what)
}

/// Whether the connection was answered directly: it closes after its first answer, which hyper
/// never asks for on a kept-alive HTTP/1.1 connection.
fn is_direct(r: &Reply) -> bool {
    r.header("connection")
        .is_some_and(|c| c.eq_ignore_ascii_case("close"))
}

#[tokio::test]
async fn both_paths_give_every_stream_path_the_same_answer() {
    let gw = TestGateway::start(config(vec![("echo", worker(&["--mode", "echo"]))])).await;
    let s = gw.session("echo").await;
    let own_host = format!("Host: {}", host(&gw.url));
    let bearer = format!("Authorization: Bearer {}", s.token);
    let headers = [own_host.as_str(), bearer.as_str()];
    let id = &s.id;
    let encoded = format!("%{:02X}{}", id.as_bytes()[0], &id[1..]);
    let tails = [
        format!("/agents/{id}/events"),
        format!("/agents/{encoded}/events"),
        format!("/agents/{id}/events?since=0"),
        format!("/agents/{id}/events?since=abc"),
        format!("/agents/{id}/events?since=%FF"),
        format!("/agents/{id}/%65vents"),
        format!("/agents/{id}/events/"),
        format!("/agents/{id}/Events"),
        "/agents/%73-nope/events".to_owned(),
        "/agents/%FF/events".to_owned(),
        "/agents/%zz/events".to_owned(),
        "/agents/a%2Fb/events".to_owned(),
        "/agents//events".to_owned(),
        "/agents/a/b/events".to_owned(),
    ];
    let prefixes = API_PREFIXES.iter().copied().chain(["/api/v2", "/API/v1"]);
    let mut served = 0;
    for path in prefixes.flat_map(|p| tails.iter().map(move |t| format!("{p}{t}"))) {
        let mut direct = Raw::connect(&gw.url).await;
        let first = direct.request("GET", &path, &headers).await;
        let mut routed = Raw::connect(&gw.url).await;
        let health = routed.request("GET", "/healthz", &[&own_host]).await;
        assert_eq!(health.status, 200, "{health:?}");
        let second = routed.request("GET", &path, &headers).await;
        assert!(!is_direct(&second), "{path}: {second:?}");
        assert_eq!(
            answer(&first),
            answer(&second),
            "{path}: {first:?} / {second:?}"
        );
        let stream_route = answer(&second).1 != "not_found";
        assert_eq!(is_direct(&first), stream_route, "{path}: {first:?}");
        if first.status == 200 {
            assert_eq!(answer(&first).1, id.as_str(), "{path}");
            served += 1;
        }
    }
    // The session itself, plainly and percent-encoded, with and without a cursor, per prefix.
    assert_eq!(served, 3 * API_PREFIXES.len());
    gw.stop().await;
}
