//! The HTTP surface's own rules, on both serving paths (a session stream as a connection's
//! first request is answered without hyper; as a later request, by the router): loopback trust
//! is not a browser's trust, and the small lies (no `Host`, array bodies, 405 without a body,
//! negative cursors, percent-encoded ids) are gone.

use reqwest::StatusCode;
use serde_json::json;

use crate::harness::{Session, TestGateway, config, worker};
use crate::raw::{Raw, host};

fn echo_gateway_config() -> turnwatch::config::Config {
    let mut c = config(vec![("echo", worker(&["--mode", "echo"]))]);
    c.gateway.cors_origins = vec!["https://app.example".into()];
    c
}

async fn count(gw: &TestGateway, table: &str) -> i64 {
    let sql = format!("SELECT COUNT(*) FROM {table}");
    gw.db().await.int(&sql, &[]).await
}

fn events_path(s: &Session) -> String {
    format!("/api/v1/agents/{}/events", s.id)
}

#[tokio::test]
async fn browsers_reach_a_tokenless_gateway_only_from_its_own_or_listed_origins() {
    let gw = TestGateway::start(echo_gateway_config()).await;
    let own_host = format!("Host: {}", host(&gw.url));
    let create = |origin: &str| {
        let origin = format!("Origin: {origin}");
        let own_host = own_host.clone();
        let url = gw.url.clone();
        async move {
            let mut raw = Raw::connect(&url).await;
            let headers = [own_host.as_str(), origin.as_str(), "Content-Length: 0"];
            raw.request("POST", "/api/v1/agents", &headers).await
        }
    };
    // A cross-site form post: refused before any session exists.
    create("https://evil.example")
        .await
        .assert_error(403, "origin_not_allowed");
    create("null").await.assert_error(403, "origin_not_allowed");
    create("http://localhost:1")
        .await
        .assert_error(403, "origin_not_allowed");
    assert_eq!(count(&gw, "sessions").await, 0);
    // The gateway's own origin and a configured one are served.
    let own = format!("http://{}", host(&gw.url));
    assert_eq!(create(&own).await.status, 201);
    assert_eq!(create("https://app.example").await.status, 201);
    assert_eq!(count(&gw, "sessions").await, 2);

    // A stream request from a foreign page, on the direct path (a fresh connection's first
    // request) and through the router (second on a kept-alive connection).
    let s = gw.session("echo").await;
    let bearer = format!("Authorization: Bearer {}", s.token);
    let evil = ["Origin: https://evil.example", own_host.as_str(), &bearer];
    let mut raw = Raw::connect(&gw.url).await;
    let r = raw.request("GET", &events_path(&s), &evil).await;
    r.assert_error(403, "origin_not_allowed");
    let mut raw = Raw::connect(&gw.url).await;
    assert_eq!(
        raw.request("GET", "/healthz", &[&own_host]).await.status,
        200
    );
    let r = raw.request("GET", &events_path(&s), &evil).await;
    r.assert_error(403, "origin_not_allowed");
    gw.stop().await;
}

#[tokio::test]
async fn a_rebound_host_name_is_refused_on_both_paths() {
    let gw = TestGateway::start(echo_gateway_config()).await;
    let s = gw.session("echo").await;
    let own_host = format!("Host: {}", host(&gw.url));
    let port = host(&gw.url).rsplit(':').next().unwrap().to_owned();
    let evil_host = format!("Host: evil.example:{port}");
    let bearer = format!("Authorization: Bearer {}", s.token);

    let mut raw = Raw::connect(&gw.url).await;
    let r = raw
        .request("GET", "/api/v1/admin/overview", &[&evil_host])
        .await;
    r.assert_error(421, "host_not_allowed");
    // The stream as a fresh connection's first request (the direct path)...
    let mut raw = Raw::connect(&gw.url).await;
    let r = raw
        .request("GET", &events_path(&s), &[&evil_host, &bearer])
        .await;
    r.assert_error(421, "host_not_allowed");
    // ...and as the second request on a kept-alive connection (the router).
    let mut raw = Raw::connect(&gw.url).await;
    assert_eq!(
        raw.request("GET", "/healthz", &[&own_host]).await.status,
        200
    );
    let r = raw
        .request("GET", &events_path(&s), &[&evil_host, &bearer])
        .await;
    r.assert_error(421, "host_not_allowed");

    // Loopback names are served.
    for name in ["localhost", "127.0.0.1", "LocalHost"] {
        let h = format!("Host: {name}:{port}");
        let mut raw = Raw::connect(&gw.url).await;
        let r = raw.request("GET", "/api/v1/admin/overview", &[&h]).await;
        assert_eq!(r.status, 200, "{name}: {r:?}");
    }
    gw.stop().await;
}

#[tokio::test]
async fn requests_without_host_array_bodies_405s_and_bad_cursors_get_json_errors() {
    let gw = TestGateway::start(echo_gateway_config()).await;
    let s = gw.session("echo").await;
    let h = &gw.http;
    let u = |p: &str| format!("{}{p}", gw.url);
    let bearer = format!("Authorization: Bearer {}", s.token);
    let own_host = format!("Host: {}", host(&gw.url));

    // No Host: refused by the router and by the direct stream path.
    let mut raw = Raw::connect(&gw.url).await;
    let r = raw.request("GET", "/healthz", &[]).await;
    r.assert_error(400, "invalid_request");
    let mut raw = Raw::connect(&gw.url).await;
    let r = raw.request("GET", &events_path(&s), &[&bearer]).await;
    r.assert_error(400, "invalid_request");

    // No body at all and no length (what `curl -X POST` sends) is an empty body: `{}`.
    let mut raw = Raw::connect(&gw.url).await;
    let r = raw.request("POST", "/api/v1/agents", &[&own_host]).await;
    assert_eq!(r.status, 201, "{:?}", r.json());

    // A JSON body that is not an object.
    let msgs = u(&format!("/api/v1/agents/{}/messages", s.id));
    for body in [json!(["x"]), json!("x"), json!(5)] {
        let r = h.post(&msgs).bearer_auth(&s.token).json(&body);
        let r = r.send().await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{body}");
        let e: serde_json::Value = r.json().await.unwrap();
        assert_eq!(e["code"], "invalid_request", "{e}");
        let r = h
            .post(u("/api/v1/agents"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{body}");
    }

    // A route that exists, with a method it does not take.
    for (method, path) in [("DELETE", "/healthz"), ("PUT", "/api/v1/agents")] {
        let mut raw = Raw::connect(&gw.url).await;
        let r = raw.request(method, path, &[&own_host]).await;
        r.assert_error(405, "method_not_allowed");
        assert!(r.header("allow").is_some(), "{r:?}");
    }

    // axum's own rejections (a query or a path segment that does not parse) in the same shape;
    // a session id that is not UTF-8 once decoded is the router's to refuse on both paths.
    let mut raw = Raw::connect(&gw.url).await;
    let r = raw
        .request("GET", "/api/v1/admin/turns?limit=many", &[&own_host])
        .await;
    r.assert_error(400, "invalid_request");
    let bad_id = "/api/v1/agents/%FF/events";
    let mut raw = Raw::connect(&gw.url).await;
    let r = raw.request("GET", bad_id, &[&own_host, &bearer]).await;
    r.assert_error(400, "invalid_request");
    let mut raw = Raw::connect(&gw.url).await;
    assert_eq!(
        raw.request("GET", "/healthz", &[&own_host]).await.status,
        200
    );
    let r = raw.request("GET", bad_id, &[&own_host, &bearer]).await;
    r.assert_error(400, "invalid_request");

    // A cursor that is no event id, on both paths.
    let since = format!("{}?since=-5", events_path(&s));
    let cases = [
        (events_path(&s), "Last-Event-ID: -5"),
        (events_path(&s), "Last-Event-ID: abc"),
        (since, "X-Nothing: 1"),
    ];
    for (path, cursor) in &cases {
        let mut raw = Raw::connect(&gw.url).await;
        let r = raw
            .request("GET", path, &[&own_host, &bearer, cursor])
            .await;
        r.assert_error(400, "invalid_cursor");
        let mut raw = Raw::connect(&gw.url).await;
        assert_eq!(
            raw.request("GET", "/healthz", &[&own_host]).await.status,
            200
        );
        let r = raw
            .request("GET", path, &[&own_host, &bearer, cursor])
            .await;
        r.assert_error(400, "invalid_cursor");
    }

    // Nothing changed (but the session made without a body).
    assert_eq!(count(&gw, "turns").await, 0);
    assert_eq!(count(&gw, "sessions").await, 2);
    gw.stop().await;
}

#[tokio::test]
async fn a_percent_encoded_session_id_is_the_same_session_on_both_paths() {
    let gw = TestGateway::start(echo_gateway_config()).await;
    let s = gw.session("echo").await;
    let own_host = format!("Host: {}", host(&gw.url));
    let bearer = format!("Authorization: Bearer {}", s.token);
    let encoded = format!("%{:02X}{}", s.id.as_bytes()[0], &s.id[1..]);
    let ids = [s.id.clone(), encoded, "%73-nope".to_owned()];
    for id in &ids {
        let path = format!("/lobu/api/v1/agents/{id}/events");
        let mut direct = Raw::connect(&gw.url).await;
        let first = direct.request("GET", &path, &[&own_host, &bearer]).await;
        let mut routed = Raw::connect(&gw.url).await;
        assert_eq!(
            routed.request("GET", "/healthz", &[&own_host]).await.status,
            200
        );
        let second = routed.request("GET", &path, &[&own_host, &bearer]).await;
        assert_eq!(first.status, second.status, "{id}: {first:?} / {second:?}");
        let want = if id.ends_with("nope") { 404 } else { 200 };
        assert_eq!(first.status, want, "{id}: {first:?}");
    }
    gw.stop().await;
}

/// `turnwatch gateway` says it listens only once it can serve: never for a database it cannot
/// open, and when it does, `/healthz` answers at once.
#[tokio::test]
async fn the_listening_line_means_ready() {
    use std::process::Stdio;
    use tokio::io::AsyncBufReadExt;
    let dir = tempfile::tempdir().unwrap();
    let gateway = |database: String| {
        let mut cmd = tokio::process::Command::new(crate::harness::BIN);
        cmd.args([
            "gateway",
            "--listen",
            "127.0.0.1:0",
            "--database",
            &database,
        ])
        .env("XDG_DATA_HOME", dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
        cmd
    };
    // A scheme no backend reads, and a PostgreSQL server that refuses the connection.
    for (database, says) in [
        ("mysql://nowhere/db", "unsupported database URL"),
        (
            "postgres://postgres@127.0.0.1:9/db",
            "cannot connect to the database",
        ),
    ] {
        let out = tokio::time::timeout(crate::harness::GUARD, gateway(database.into()).output())
            .await
            .unwrap()
            .unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert!(!out.status.success(), "{stdout} {stderr}");
        assert!(!stdout.contains("listening"), "{stdout}");
        assert!(stderr.contains(says), "{database}: {stderr}");
    }

    let db = format!("sqlite://{}", dir.path().join("gw.db").display());
    let mut child = gateway(db).spawn().unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(crate::harness::GUARD, lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let url = line
        .strip_prefix("turnwatch gateway listening on ")
        .unwrap_or_else(|| panic!("{line}"));
    let health = reqwest::get(format!("{url}/healthz")).await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let pid = nix::unistd::Pid::from_raw(child.id().unwrap() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = tokio::time::timeout(crate::harness::GUARD, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status}");
}

/// A session token is checked when a request or a stream starts (the README says so): a
/// stream opened before the token expired keeps flowing, a reconnect after it gets 401.
#[tokio::test]
async fn an_open_stream_outlives_its_token_and_a_reconnect_does_not() {
    use turnwatch::config::{Role, TokenConfig};
    let mut c = echo_gateway_config();
    c.gateway.token_ttl = std::time::Duration::from_millis(300);
    c.tokens = vec![TokenConfig {
        name: "op".into(),
        secret: Some("op-secret".into()),
        secret_env: None,
        role: Role::Operator,
    }];
    let gw = TestGateway::start(c).await;
    let op = turnwatch::client::Client::new(&gw.url, Some("op-secret".into()));
    let created = op
        .create_session(&turnwatch::api::CreateSession::default())
        .await
        .unwrap();
    let s = Session {
        id: created.agent_id,
        token: created.token,
    };
    let mut stream = gw.open(&s, None).await;
    let session_url = format!("{}/api/v1/agents/{}", gw.url, s.id);
    let deadline = tokio::time::Instant::now() + crate::harness::GUARD;
    loop {
        let r = gw.http.get(&session_url).bearer_auth(&s.token);
        let r = r.send().await.unwrap();
        if r.status() == StatusCode::UNAUTHORIZED {
            let e: serde_json::Value = r.json().await.unwrap();
            assert_eq!(e["code"], "token_expired", "{e}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never expired");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let queued = op.post_message(&s.id, "op-secret", "after expiry", None);
    let turn = queued.await.unwrap().turn_id.to_string();
    let text = crate::harness::assert_completed(&stream.until_complete(&turn).await);
    assert_eq!(text, "after expiry");
    let again = gw
        .http
        .get(format!("{session_url}/events"))
        .bearer_auth(&s.token);
    assert_eq!(
        again.send().await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    gw.stop().await;
}
