//! Browser clients (issue 14) without a browser: CORS answers for listed origins only (the
//! admin side has its own list), and stream tickets open one stream once, on both serving
//! paths and both backends, from any replica. `browser.rs` drives the example page in Chromium.

use reqwest::StatusCode;
use serde_json::Value;
use std::time::Duration;
use turnwatch::config::{Config, Role};

use crate::harness::{Backend, Data, Session, TestGateway, config, on_both, token, worker};
use crate::raw::{Raw, Reply, host};

const APP: &str = "https://app.example";
const OPS: &str = "https://ops.example";

fn web_config() -> Config {
    let mut c = config(vec![("echo", worker(&["--mode", "echo"]))]);
    c.gateway.cors_origins = vec![APP.into()];
    c.gateway.admin_cors_origins = vec![OPS.into()];
    c
}

fn with_tokens(mut c: Config) -> Config {
    c.tokens = vec![
        token("ops", Role::Operator),
        token("viewer", Role::Readonly),
        token("app", Role::Client),
    ];
    c
}

/// A request on a fresh connection with `Host` set to the gateway's own.
async fn raw(gw: &TestGateway, method: &str, path: &str, headers: &[&str]) -> Reply {
    let own_host = format!("Host: {}", host(&gw.url));
    let mut all = vec![own_host.as_str()];
    all.extend_from_slice(headers);
    Raw::connect(&gw.url)
        .await
        .request(method, path, &all)
        .await
}

/// A preflight from `origin` for `method` with `authorization` and `content-type`.
async fn preflight(gw: &TestGateway, path: &str, origin: &str, method: &str) -> Reply {
    let origin = format!("Origin: {origin}");
    let method = format!("Access-Control-Request-Method: {method}");
    let headers = [
        origin.as_str(),
        method.as_str(),
        "Access-Control-Request-Headers: authorization, content-type",
    ];
    raw(gw, "OPTIONS", path, &headers).await
}

fn assert_no_cors(r: &Reply) {
    let cors: Vec<&str> = r
        .head
        .lines()
        .filter(|l| l.to_ascii_lowercase().starts_with("access-control-"))
        .collect();
    assert!(
        cors.is_empty(),
        "CORS headers for an origin not listed: {r:?}"
    );
}

fn assert_allowed(r: &Reply, origin: &str) {
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some(origin),
        "{r:?}"
    );
    assert!(
        r.header("access-control-allow-credentials").is_none(),
        "{r:?}"
    );
}

fn assert_preflight_answered(r: &Reply, origin: &str) {
    assert!(r.status < 300, "{r:?}");
    assert_allowed(r, origin);
    let methods = r.header("access-control-allow-methods").unwrap_or_default();
    for m in ["GET", "POST", "DELETE"] {
        assert!(methods.contains(m), "{methods}");
    }
    let headers = r
        .header("access-control-allow-headers")
        .unwrap_or_default()
        .to_ascii_lowercase();
    for h in ["authorization", "content-type", "last-event-id"] {
        assert!(headers.contains(h), "{headers}");
    }
}

/// Asks for a stream ticket at `path` with `bearer`; returns the reply's JSON and status.
async fn ticket_at(gw: &TestGateway, path: &str, bearer: Option<&str>) -> (StatusCode, Value) {
    let mut req = gw.http.post(format!("{}{path}", gw.url));
    if let Some(b) = bearer {
        req = req.bearer_auth(b);
    }
    let res = req.send().await.unwrap();
    (res.status(), res.json().await.unwrap())
}

/// A session's stream ticket; returns its `eventsUrl`.
async fn ticket(gw: &TestGateway, s: &Session) -> String {
    let (status, body) = ticket_at(
        gw,
        &format!("/api/v1/agents/{}/stream-ticket", s.id),
        Some(&s.token),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["eventsUrl"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn cors_answers_listed_origins_and_keeps_the_admin_side_to_its_own_list() {
    let gw = TestGateway::start(web_config()).await;
    // The Agent API: a listed origin's preflight is answered, its responses are readable.
    let r = preflight(&gw, "/api/v1/agents", APP, "POST").await;
    assert_preflight_answered(&r, APP);
    let r = preflight(&gw, "/lobu/api/v1/agents", APP, "POST").await;
    assert_preflight_answered(&r, APP);
    let r = raw(
        &gw,
        "POST",
        "/api/v1/agents",
        &[&format!("Origin: {APP}"), "Content-Length: 0"],
    )
    .await;
    assert_eq!(r.status, 201, "{r:?}");
    assert_allowed(&r, APP);
    assert!(
        r.header("vary")
            .unwrap_or_default()
            .to_ascii_lowercase()
            .contains("origin"),
        "{r:?}"
    );
    // A refusal is readable too: the page can show its code.
    let r = raw(
        &gw,
        "GET",
        "/api/v1/agents/nope",
        &[&format!("Origin: {APP}")],
    )
    .await;
    r.assert_error(404, "session_not_found");
    assert_allowed(&r, APP);
    // An origin not listed: with no tokens, the guard refuses it, with nothing a page can read.
    let r = preflight(&gw, "/api/v1/agents", "https://evil.example", "POST").await;
    r.assert_error(403, "origin_not_allowed");
    assert_no_cors(&r);

    // The admin side answers its own list, not the Agent API's.
    let r = preflight(&gw, "/api/v1/admin/overview", APP, "GET").await;
    r.assert_error(403, "origin_not_allowed");
    assert_no_cors(&r);
    let r = raw(
        &gw,
        "POST",
        "/api/v1/admin/workers/w/kill",
        &[&format!("Origin: {APP}"), "Content-Length: 0"],
    )
    .await;
    r.assert_error(403, "origin_not_allowed");
    let r = raw(&gw, "GET", "/metrics", &[&format!("Origin: {APP}")]).await;
    r.assert_error(403, "origin_not_allowed");
    let r = preflight(&gw, "/api/v1/admin/workers/w/kill", OPS, "POST").await;
    assert_preflight_answered(&r, OPS);
    let r = raw(
        &gw,
        "GET",
        "/api/v1/admin/overview",
        &[&format!("Origin: {OPS}")],
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_allowed(&r, OPS);
    // ...and the admin list does not open the Agent API.
    let r = raw(
        &gw,
        "POST",
        "/api/v1/agents",
        &[&format!("Origin: {OPS}"), "Content-Length: 0"],
    )
    .await;
    r.assert_error(403, "origin_not_allowed");

    // A stream opened with a ticket from a listed page, on both serving paths: the direct one
    // (a fresh connection's first request) and the router (second on a kept-alive connection).
    let s = gw.session("echo").await;
    let origin = format!("Origin: {APP}");
    let r = raw(&gw, "GET", &ticket(&gw, &s).await, &[&origin]).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_allowed(&r, APP);
    let own_host = format!("Host: {}", host(&gw.url));
    let mut kept = Raw::connect(&gw.url).await;
    assert_eq!(
        kept.request("GET", "/healthz", &[&own_host]).await.status,
        200
    );
    let path = ticket(&gw, &s).await;
    let r = kept.request("GET", &path, &[&own_host, &origin]).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_allowed(&r, APP);
    gw.stop().await;

    // With tokens the guard lets any origin through (a browser sends no token by itself), so
    // CORS alone keeps unlisted pages out: no header a browser would honour.
    let gw = TestGateway::start(with_tokens(web_config())).await;
    let r = preflight(&gw, "/api/v1/agents", "https://evil.example", "POST").await;
    assert_eq!(r.status, 405, "{r:?}");
    assert_no_cors(&r);
    let r = preflight(&gw, "/api/v1/admin/overview", APP, "GET").await;
    assert_no_cors(&r);
    let r = raw(
        &gw,
        "GET",
        "/api/v1/admin/overview",
        &[
            &format!("Origin: {APP}"),
            "Authorization: Bearer ops-secret",
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_no_cors(&r);
    let r = preflight(&gw, "/api/v1/agents", APP, "POST").await;
    assert_preflight_answered(&r, APP);
    gw.stop().await;
}

// Tickets live in the database: both backends.
on_both!(a_stream_ticket_opens_one_stream_once_and_only_its_own);

async fn a_stream_ticket_opens_one_stream_once_and_only_its_own(b: Backend) {
    let gw = TestGateway::start_with(b, web_config()).await;
    let s = gw.session("echo").await;
    let other = gw.session("echo").await;
    let tickets = format!("/api/v1/agents/{}/stream-ticket", s.id);

    // Asking needs the session's token.
    let (status, body) = ticket_at(&gw, &tickets, None).await;
    assert_eq!(
        (status.as_u16(), body["code"].as_str()),
        (401, Some("unauthorized")),
        "{body}"
    );
    let (status, body) = ticket_at(&gw, &tickets, Some(&other.token)).await;
    assert_eq!(
        (status.as_u16(), body["code"].as_str()),
        (403, Some("forbidden")),
        "{body}"
    );
    let (status, body) = ticket_at(&gw, &tickets, Some(&s.token)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["expiresIn"], 30, "{body}");
    let events = body["eventsUrl"].as_str().unwrap();
    let secret = body["ticket"].as_str().unwrap();
    assert_eq!(
        events,
        format!("/api/v1/agents/{}/events?ticket={secret}", s.id)
    );
    assert!(!events.contains(&s.token));

    // The ticket opens the stream once, with no token; then it is spent.
    let r = raw(&gw, "GET", events, &[]).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.connected()["sessionId"], s.id.as_str());
    let r = raw(&gw, "GET", events, &[]).await;
    r.assert_error(401, "invalid_ticket");
    assert!(
        r.json()["error"].as_str().unwrap().contains("already used"),
        "{r:?}"
    );
    let r = raw(
        &gw,
        "GET",
        &format!("/api/v1/agents/{}/events?ticket=twt_made_up", s.id),
        &[],
    )
    .await;
    r.assert_error(401, "invalid_ticket");

    // Bound to its stream: another session's, or the admin stream, is refused (and spends it).
    let path = ticket(&gw, &s).await;
    let r = raw(&gw, "GET", &path.replace(&s.id, &other.id), &[]).await;
    r.assert_error(401, "invalid_ticket");
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .contains("another stream"),
        "{r:?}"
    );
    let r = raw(&gw, "GET", &path, &[]).await;
    r.assert_error(401, "invalid_ticket");
    let path = ticket(&gw, &s).await;
    let admin = path.replace(&format!("agents/{}/events", s.id), "admin/events");
    let res = gw
        .http
        .get(format!("{}{admin}", gw.url))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);

    // A bad cursor is refused before the ticket is spent.
    let path = ticket(&gw, &s).await;
    let r = raw(&gw, "GET", &format!("{path}&since=-1"), &[]).await;
    r.assert_error(400, "invalid_cursor");
    // Resuming: a new ticket and `since`, the events after it exactly once.
    let mut reader = gw.open(&s, None).await;
    let turn = gw.post(&s, "resume me").await;
    let all = reader.until_complete(&turn).await;
    let first = all[0].id.unwrap();
    let r = raw(&gw, "GET", &format!("{path}&since={first}"), &[]).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.connected()["resumedFrom"].as_i64(), Some(first), "{r:?}");

    // The admin stream's ticket, for an operator (here: loopback trust) and under `/lobu`.
    let (status, body) = ticket_at(&gw, "/lobu/api/v1/admin/stream-ticket", None).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let admin = body["eventsUrl"].as_str().unwrap();
    assert!(
        admin.starts_with("/lobu/api/v1/admin/events?ticket=twt_"),
        "{admin}"
    );
    let res = gw
        .http
        .get(format!("{}{admin}", gw.url))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    drop(res);
    let res = gw
        .http
        .get(format!("{}{admin}", gw.url))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    // A deleted session's log stays readable to its `closed` with a cursor: with a ticket too.
    gw.http
        .delete(format!("{}/api/v1/agents/{}", gw.url, other.id))
        .bearer_auth(&other.token)
        .send()
        .await
        .unwrap();
    let path = ticket(&gw, &other).await;
    raw(&gw, "GET", &path, &[])
        .await
        .assert_error(410, "session_deleted");
    let path = ticket(&gw, &other).await;
    let r = raw(&gw, "GET", &format!("{path}&since=0"), &[]).await;
    assert_eq!(r.status, 200, "{r:?}");
    gw.stop().await;
}

#[tokio::test]
async fn tickets_follow_the_token_roles_and_expire() {
    let mut c = with_tokens(web_config());
    c.gateway.stream_ticket_ttl = Duration::from_secs(1);
    let gw = TestGateway::start(c).await;
    let admin = "/api/v1/admin/stream-ticket";
    let (status, _) = ticket_at(&gw, admin, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = ticket_at(&gw, admin, Some("app-secret")).await;
    assert_eq!(
        (status.as_u16(), body["code"].as_str()),
        (403, Some("forbidden")),
        "{body}"
    );
    for reader in ["viewer-secret", "ops-secret"] {
        let (status, body) = ticket_at(&gw, admin, Some(reader)).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let url = format!("{}{}", gw.url, body["eventsUrl"].as_str().unwrap());
        let res = gw.http.get(url).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{reader}");
    }
    // Expired: refused, and says so.
    let (_, body) = ticket_at(&gw, admin, Some("viewer-secret")).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let url = format!("{}{}", gw.url, body["eventsUrl"].as_str().unwrap());
    let res = gw.http.get(url).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["code"], "invalid_ticket");
    assert!(
        body["error"].as_str().unwrap().contains("expired"),
        "{body}"
    );
    gw.stop().await;
}

/// A ticket one replica issued opens the stream on another (`PostgreSQL`, two gateways).
#[tokio::test]
async fn a_ticket_from_one_replica_opens_the_stream_on_another() {
    if crate::harness::database_url().is_none() {
        return;
    }
    let data = Data::new(Backend::Postgres).await;
    let url = data.url.clone();
    let first = TestGateway::start_on(web_config(), data).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let second = turnwatch::gateway::start(web_config(), &url, listener)
        .await
        .unwrap();
    let s = first.session("echo").await;
    let path = ticket(&first, &s).await;
    let res = first
        .http
        .get(format!("{}{path}", second.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    drop(res);
    // ...once: spent there, it is spent here too.
    let res = first
        .http
        .get(format!("{}{path}", first.url))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    second.stop().await.unwrap();
    first.stop().await;
}
