//! The bad-input rows: each gets a 4xx with a code in the spec's error shape, and changes nothing.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{TestGateway, config, worker};

async fn expect(resp: reqwest::Response, status: StatusCode, code: &str) {
    assert_eq!(resp.status(), status);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["success"], false, "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert!(
        body["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{body}"
    );
}

#[tokio::test]
async fn bad_requests_get_clear_errors_and_change_nothing() {
    let mut c = config(vec![("echo", worker(&["--mode", "echo"]))]);
    c.gateway.max_body_bytes = 4096;
    let gw = TestGateway::start(c).await;
    let (s, turn, _) = gw.turn("echo", "baseline").await;
    let other = gw.session("echo").await;
    let h = &gw.http;
    let u = |p: &str| format!("{}{p}", gw.url);
    let msgs = u(&format!("/api/v1/agents/{}/messages", s.id));

    expect(
        h.get(u("/api/v1/agents/s-nope"))
            .bearer_auth(&s.token)
            .send()
            .await
            .unwrap(),
        StatusCode::NOT_FOUND,
        "session_not_found",
    )
    .await;
    expect(
        h.post(u("/api/v1/agents/s-nope/messages"))
            .bearer_auth(&s.token)
            .json(&json!({"content": "x"}))
            .send()
            .await
            .unwrap(),
        StatusCode::NOT_FOUND,
        "session_not_found",
    )
    .await;
    expect(
        h.post(&msgs)
            .bearer_auth(&s.token)
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .await
            .unwrap(),
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;
    expect(
        h.post(&msgs)
            .bearer_auth(&s.token)
            .json(&json!({"content": "  "}))
            .send()
            .await
            .unwrap(),
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;
    expect(
        h.post(&msgs)
            .bearer_auth(&s.token)
            .json(&json!({}))
            .send()
            .await
            .unwrap(),
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;
    expect(
        h.post(&msgs)
            .bearer_auth(&s.token)
            .json(&json!({"content": "x".repeat(10_000)}))
            .send()
            .await
            .unwrap(),
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    )
    .await;
    expect(
        h.post(&msgs)
            .bearer_auth(&other.token)
            .json(&json!({"content": "x"}))
            .send()
            .await
            .unwrap(),
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    expect(
        h.post(&msgs)
            .json(&json!({"content": "x"}))
            .send()
            .await
            .unwrap(),
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    expect(
        h.get(u(&format!("/api/v1/agents/{}/events", s.id)))
            .send()
            .await
            .unwrap(),
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    expect(
        h.get(u(&format!("/api/v1/agents/{}/events", s.id)))
            .bearer_auth(&s.token)
            .header("last-event-id", "abc")
            .send()
            .await
            .unwrap(),
        StatusCode::BAD_REQUEST,
        "invalid_cursor",
    )
    .await;
    expect(
        h.post(u("/api/v1/agents"))
            .json(&json!({"agentId": "nope"}))
            .send()
            .await
            .unwrap(),
        StatusCode::NOT_FOUND,
        "unknown_agent",
    )
    .await;
    expect(
        h.post(u(&format!("/api/v1/admin/turns/{turn}/cancel")))
            .json(&json!({}))
            .send()
            .await
            .unwrap(),
        StatusCode::CONFLICT,
        "already_ended",
    )
    .await;
    expect(
        h.post(u("/api/v1/admin/turns/t-nope/cancel"))
            .json(&json!({}))
            .send()
            .await
            .unwrap(),
        StatusCode::NOT_FOUND,
        "turn_not_found",
    )
    .await;
    let w = gw.worker_rows(&s).await.remove(0);
    let kill = u(&format!("/api/v1/admin/workers/{}/kill", w.worker_id));
    expect(
        h.post(&kill)
            .json(&json!({"generation": w.generation + 5, "pid": w.pid}))
            .send()
            .await
            .unwrap(),
        StatusCode::CONFLICT,
        "target_changed",
    )
    .await;
    expect(
        h.post(&kill)
            .json(&json!({"reason": "no target"}))
            .send()
            .await
            .unwrap(),
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;
    expect(
        h.get(u("/no/such/route")).send().await.unwrap(),
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;

    // Nothing changed: one turn, still completed; the worker still alive and serving.
    let turns = gw.db().await.int("SELECT COUNT(*) FROM turns", &[]).await;
    assert_eq!(turns, 1);
    assert_eq!(gw.turn_state(&turn).await, "completed");
    let mut r = gw.open(&s, None).await;
    let next = gw.post(&s, "still works").await;
    crate::harness::assert_completed(&r.until_complete(&next).await);
    gw.stop().await;
}
