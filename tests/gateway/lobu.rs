//! The Lobu gateway's clients against turnwatch (issue 16): a contract test per route under
//! `/lobu`, written from Lobu's published zod schemas (`packages/server/src/gateway/routes/
//! public/agent.ts`: `CreateAgentResponseSchema`, `AgentStatusResponseSchema`,
//! `SendMessageResponseSchema`, `SuccessResponseSchema`, `ErrorResponseSchema`), and a small
//! client that behaves as the `lobu chat` CLI does (`packages/cli/src/commands/chat.ts`,
//! `internal/credentials.ts`): token from `POST /api/local-init`, create, stream, post, and the
//! same exit codes. Raw HTTP, nothing from this crate's client.

use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;
use turnwatch::config::Role;

use crate::harness::{GUARD, TestGateway, config, token, worker};

/// A zod type, as far as a schema check needs it.
#[derive(Clone, Copy, Debug)]
enum Zod {
    Str,
    Num,
    Bool,
    Obj,
}

impl Zod {
    fn accepts(self, v: &Value) -> bool {
        match self {
            Self::Str => v.is_string(),
            Self::Num => v.is_number(),
            Self::Bool => v.is_boolean(),
            Self::Obj => v.is_object(),
        }
    }
}

/// Asserts that `v` passes a `z.object` of these required and optional fields (zod strips
/// unknown keys, so others may be present).
fn conforms(v: &Value, required: &[(&str, Zod)], optional: &[(&str, Zod)]) {
    for (key, ty) in required {
        assert!(ty.accepts(&v[key]), "`{key}` must be {ty:?}: {v}");
    }
    for (key, ty) in optional {
        // zod's `.optional()` takes a missing key, not a `null`.
        let ok = v.get(key).is_none_or(|f| ty.accepts(f));
        assert!(ok, "`{key}` must be {ty:?} if present: {v}");
    }
}

const ERROR: &[(&str, Zod)] = &[("success", Zod::Bool), ("error", Zod::Str)];

fn lobu_agents() -> turnwatch::config::Config {
    let mut hang = worker(&["--mode", "hang"]);
    hang.stall_timeout = Duration::from_secs(2);
    config(vec![
        ("echo", worker(&["--mode", "echo"])),
        (
            "crash",
            worker(&["--mode", "crash-after", "--exit-code", "3"]),
        ),
        ("hang", hang),
    ])
}

async fn local_init(gw: &TestGateway, extra: &[(&str, &str)]) -> (StatusCode, Value) {
    let mut req = gw
        .http
        .post(format!("{}/api/local-init", gw.url))
        .header("X-Lobu-Client", "cli");
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    let res = req.send().await.unwrap();
    (res.status(), res.json().await.unwrap())
}

async fn call(req: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let res = req.send().await.unwrap();
    (res.status(), res.json().await.unwrap_or(Value::Null))
}

fn assert_unsupported(status: StatusCode, body: &Value, field: &str) {
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    conforms(body, ERROR, &[]);
    assert_eq!(body["code"], "unsupported_field", "{body}");
    assert_eq!(body["field"], field, "{body}");
    assert!(body["error"].as_str().unwrap().contains(field), "{body}");
}

#[tokio::test]
async fn every_lobu_route_answers_lobus_schema_and_refuses_what_it_does_not_do() {
    let gw = TestGateway::start(lobu_agents()).await;
    let h = &gw.http;
    let lobu = format!("{}/lobu/api/v1", gw.url);

    // local-init: two tokens (the same local token), accepted for creating sessions.
    let (status, init) = local_init(&gw, &[]).await;
    assert_eq!(status, StatusCode::OK, "{init}");
    conforms(
        &init,
        &[("session_token", Zod::Str), ("device_token", Zod::Str)],
        &[],
    );
    let device = init["device_token"].as_str().unwrap();
    // ...not to a proxied request.
    for proxied in ["X-Forwarded-For", "X-Forwarded-Proto", "Forwarded"] {
        let (status, body) = local_init(&gw, &[(proxied, "x")]).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{proxied}: {body}");
    }
    let (status, body) = local_init(&gw, &[("X-Forwarded-For", "203.0.113.9")]).await;
    assert_eq!(
        (status.as_u16(), body["code"].as_str()),
        (403, Some("forbidden")),
        "{body}"
    );
    assert!(body.get("device_token").is_none());

    // Create: CreateAgentResponseSchema, with `expiresAt` a number and absolute URLs.
    let (status, created) = call(
        h.post(format!("{lobu}/agents"))
            .bearer_auth(device)
            .json(&json!({"agentId": "echo"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    conforms(
        &created,
        &[
            ("success", Zod::Bool),
            ("agentId", Zod::Str),
            ("token", Zod::Str),
            ("expiresAt", Zod::Num),
            ("sseUrl", Zod::Str),
            ("messagesUrl", Zod::Str),
        ],
        &[],
    );
    let id = created["agentId"].as_str().unwrap();
    let token = created["token"].as_str().unwrap();
    assert_eq!(created["sseUrl"], format!("{lobu}/agents/{id}/events"));
    assert_eq!(
        created["messagesUrl"],
        format!("{lobu}/agents/{id}/messages")
    );
    assert!(created["expiresAt"].as_i64().unwrap() > turnwatch::clock::now_ms());
    // Under turnwatch's own prefix, its own conventions stay (documented in the README).
    let (_, own) = call(
        h.post(format!("{}/api/v1/agents", gw.url))
            .bearer_auth(device),
    )
    .await;
    assert!(
        own["expiresAt"].is_string() && own["sseUrl"].as_str().unwrap().starts_with("/api/v1/"),
        "{own}"
    );
    // A local token stands for the loopback caller on every route, the admin side included,
    // and across the gateway's restarts and databases (nothing is stored); any other bearer
    // that is no configured token is refused, saying why.
    let (status, _) = call(h.get(format!("{lobu}/admin/overview")).bearer_auth(device)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = call(h.post(format!("{lobu}/agents")).bearer_auth("nope")).await;
    assert_eq!(
        (status.as_u16(), body["code"].as_str()),
        (403, Some("forbidden")),
        "{body}"
    );
    assert!(
        body["error"].as_str().unwrap().contains("local-init"),
        "{body}"
    );
    // The fields of Lobu's CreateAgentRequestSchema that turnwatch does not honour.
    for (field, value) in [
        ("dryRun", json!(true)),
        ("provider", json!("claude")),
        ("model", json!("m")),
        ("userId", json!("u")),
        (
            "intent",
            json!({"kind": "watcher_run", "runId": 1, "watcherId": 1}),
        ),
        ("networkConfig", json!({})),
        ("mcpServers", json!({})),
        ("nix", json!({})),
        ("agentID", json!("a typo")),
    ] {
        let (status, body) = call(
            h.post(format!("{lobu}/agents"))
                .bearer_auth(device)
                .json(&json!({ field: value })),
        )
        .await;
        assert_unsupported(status, &body, field);
    }
    let (status, body) = call(
        h.post(format!("{lobu}/agents"))
            .bearer_auth(device)
            .json(&json!({"dryRun": false})),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "`dryRun: false` asks for nothing: {body}"
    );

    // Status: AgentStatusResponseSchema (times as numbers, a userId).
    let (status, info) = call(h.get(format!("{lobu}/agents/{id}")).bearer_auth(token)).await;
    assert_eq!(status, StatusCode::OK, "{info}");
    conforms(&info, &[("success", Zod::Bool), ("agent", Zod::Obj)], &[]);
    conforms(
        &info["agent"],
        &[
            ("agentId", Zod::Str),
            ("userId", Zod::Str),
            ("status", Zod::Str),
            ("createdAt", Zod::Num),
            ("lastActivity", Zod::Num),
            ("hasActiveConnection", Zod::Bool),
        ],
        &[],
    );

    // Messages: SendMessageResponseSchema; platform delivery refused, naming the field.
    let (status, sent) = call(
        h.post(format!("{lobu}/agents/{id}/messages"))
            .bearer_auth(token)
            .json(&json!({"content": "hi", "platform": "api"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{sent}");
    conforms(
        &sent,
        &[
            ("success", Zod::Bool),
            ("messageId", Zod::Str),
            ("queued", Zod::Bool),
        ],
        &[
            ("agentId", Zod::Str),
            ("jobId", Zod::Str),
            ("eventsUrl", Zod::Str),
            ("deduplicated", Zod::Bool),
        ],
    );
    for (field, body) in [
        (
            "platform",
            json!({"content": "hi", "platform": "telegram", "telegram": {"chatId": "12345"}}),
        ),
        (
            "slack",
            json!({"content": "hi", "slack": {"channel": "C1"}}),
        ),
        (
            "durableMessage",
            json!({"content": "hi", "durableMessage": false}),
        ),
    ] {
        let (status, reply) = call(
            h.post(format!("{lobu}/agents/{id}/messages"))
                .bearer_auth(token)
                .json(&body),
        )
        .await;
        assert_unsupported(status, &reply, field);
    }
    // `lobu chat --user telegram:12345` posts to an agent name, not a session: it hears why.
    let platform =
        json!({"platform": "telegram", "content": "hi", "telegram": {"chatId": "12345"}});
    let (status, reply) = call(
        h.post(format!("{lobu}/agents/echo/messages"))
            .bearer_auth(device)
            .json(&platform),
    )
    .await;
    assert_unsupported(status, &reply, "platform");

    // Errors: ErrorResponseSchema.
    let (status, body) = call(h.get(format!("{lobu}/agents/s-none")).bearer_auth(token)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    conforms(&body, ERROR, &[("details", Zod::Str)]);

    // Delete: SuccessResponseSchema.
    let (status, deleted) = call(h.delete(format!("{lobu}/agents/{id}")).bearer_auth(token)).await;
    assert_eq!(status, StatusCode::OK, "{deleted}");
    conforms(
        &deleted,
        &[("success", Zod::Bool)],
        &[("message", Zod::Str), ("agentId", Zod::Str)],
    );
    gw.stop().await;
}

#[tokio::test]
async fn local_init_gives_no_token_once_tokens_are_configured() {
    let mut c = lobu_agents();
    c.tokens = vec![token("app", Role::Client)];
    let gw = TestGateway::start(c).await;
    let (status, body) = local_init(&gw, &[]).await;
    assert_eq!(
        (status.as_u16(), body["code"].as_str()),
        (403, Some("forbidden")),
        "{body}"
    );
    assert!(body.get("session_token").is_none() && body.get("device_token").is_none());
    // A local token saved while the gateway trusted loopback is refused now, saying why.
    let local = format!("twl_{}", "0".repeat(64));
    let res = gw
        .http
        .post(format!("{}/lobu/api/v1/agents", gw.url))
        .bearer_auth(&local)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let body: Value = res.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("LOBU_API_TOKEN"),
        "{body}"
    );
    // The CLI then has no token and stops before its first request.
    let out = lobu_chat(&gw.url, None, "hello", false).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("Session expired or not logged in"),
        "{out:?}"
    );
    gw.stop().await;
}

/// What `lobu chat` printed and how it exited.
#[derive(Debug)]
struct ChatRun {
    code: i32,
    stdout: String,
    stderr: String,
}

/// `lobu chat PROMPT [--agent A] [--dry-run]` against a loopback context at `origin`, step for
/// step as the CLI does it.
async fn lobu_chat(origin: &str, agent: Option<&str>, prompt: &str, dry_run: bool) -> ChatRun {
    let http = reqwest::Client::new();
    let fail = |stderr: String| ChatRun {
        code: 1,
        stdout: String::new(),
        stderr,
    };
    // credentials.ts: no stored credentials, a loopback context: POST /api/local-init.
    let init = http
        .post(format!("{origin}/api/local-init"))
        .header("X-Lobu-Client", "cli")
        .send()
        .await
        .unwrap();
    let token = if init.status().is_success() {
        let body: Value = init.json().await.unwrap();
        body["device_token"]
            .as_str()
            .or(body["session_token"].as_str())
            .map(str::to_owned)
    } else {
        None
    };
    let Some(token) = token else {
        return fail("Session expired or not logged in. Run `lobu login`.".into());
    };
    // chat.ts: the Agent API lives under `<origin>/lobu`.
    let gateway = format!("{origin}/lobu");
    let mut body = json!({});
    if let Some(a) = agent {
        body["agentId"] = json!(a);
    }
    if dry_run {
        body["dryRun"] = json!(true);
    }
    let created = http
        .post(format!("{gateway}/api/v1/agents"))
        .bearer_auth(&token)
        .json(&body)
        .send()
        .await
        .unwrap();
    if !created.status().is_success() {
        let status = created.status().as_u16();
        if status == 401 {
            return fail("Authentication required. Run `lobu login`.".into());
        }
        let text = created.text().await.unwrap_or_default();
        return fail(format!("Failed to create session ({status}): {text}"));
    }
    let session: Value = created.json().await.unwrap();
    let (id, token) = (
        session["agentId"].as_str().unwrap(),
        session["token"].as_str().unwrap(),
    );
    // The CLI builds the URLs itself, opens the stream, then posts.
    let base = format!("{gateway}/api/v1/agents/{id}");
    let events = http
        .get(format!("{base}/events"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    if !events.status().is_success() {
        return fail(format!(
            "SSE connection failed ({})",
            events.status().as_u16()
        ));
    }
    let posted = http
        .post(format!("{base}/messages"))
        .bearer_auth(token)
        .json(&json!({"content": prompt}))
        .send()
        .await
        .unwrap();
    if !posted.status().is_success() {
        let status = posted.status().as_u16();
        return fail(format!(
            "Failed to send message ({status}): {}",
            posted.text().await.unwrap_or_default()
        ));
    }
    // streamResponse: `event:` then `data:`; output to stdout; complete → 0; error → 1.
    let mut stream = events.bytes_stream();
    let (mut buffer, mut event, mut stdout) = (String::new(), String::new(), String::new());
    loop {
        let chunk = tokio::time::timeout(GUARD, stream.next())
            .await
            .expect("hang guard")
            .unwrap()
            .unwrap();
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(nl) = buffer.find('\n') {
            let line: String = buffer.drain(..=nl).collect();
            let line = line.trim_end_matches('\n');
            if let Some(name) = line.strip_prefix("event: ") {
                name.trim().clone_into(&mut event);
            } else if let Some(data) = line.strip_prefix("data: ").filter(|_| !event.is_empty()) {
                let data: Value = serde_json::from_str(data).unwrap_or(Value::Null);
                match event.as_str() {
                    "output" => stdout.push_str(data["content"].as_str().unwrap_or_default()),
                    "complete" => {
                        return ChatRun {
                            code: 0,
                            stdout,
                            stderr: String::new(),
                        };
                    }
                    "error" => {
                        let stderr = format!(
                            "Agent error: {}",
                            data["error"].as_str().unwrap_or_default()
                        );
                        return ChatRun {
                            code: 1,
                            stdout,
                            stderr,
                        };
                    }
                    _ => {}
                }
                event.clear();
            } else if line.is_empty() {
                event.clear();
            }
        }
    }
}

#[tokio::test]
async fn a_client_that_behaves_as_lobu_chat_gets_text_errors_and_exit_codes() {
    let gw = TestGateway::start(lobu_agents()).await;
    let out = lobu_chat(&gw.url, None, "hello from lobu", false).await;
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "hello from lobu"),
        "{out:?}"
    );
    let out = lobu_chat(&gw.url, Some("crash"), "boom", false).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(
        out.stderr,
        "Agent error: the worker process exited with code 3 while handling the turn"
    );
    let out = lobu_chat(&gw.url, Some("hang"), "wait", false).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr
            .starts_with("Agent error: the worker made no progress for 2s"),
        "{out:?}"
    );
    let out = lobu_chat(&gw.url, None, "pretend", true).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.starts_with("Failed to create session (400)") && out.stderr.contains("dryRun"),
        "{out:?}"
    );
    gw.stop().await;
}

/// `lobu chat` opens its stream and posts without waiting for the stream: a quick turn may
/// end before the stream arrives. Under `/lobu` the first stream after a create starts where
/// the create left the log, so the reply is heard; the stream after a resume, only what
/// followed it.
#[tokio::test]
async fn a_lobu_stream_opened_after_its_turn_ended_still_hears_the_reply() {
    let gw = TestGateway::start(lobu_agents()).await;
    let h = &gw.http;
    let lobu = format!("{}/lobu/api/v1", gw.url);
    let body = json!({"agentId": "echo", "thread": "t-late"});
    let (_, created) = call(h.post(format!("{lobu}/agents")).json(&body)).await;
    let (id, token) = (
        created["agentId"].as_str().unwrap(),
        created["token"].as_str().unwrap(),
    );
    for (round, text) in ["first reply", "second reply"].into_iter().enumerate() {
        if round == 1 {
            // Resumed by thread: its stream starts after the first round.
            let (_, again) = call(h.post(format!("{lobu}/agents")).json(&body)).await;
            assert_eq!(again["agentId"], id);
        }
        let (_, sent) = call(
            h.post(format!("{lobu}/agents/{id}/messages"))
                .bearer_auth(token)
                .json(&json!({"content": text})),
        )
        .await;
        let turn = sent["turnId"].as_str().unwrap().to_owned();
        let deadline = tokio::time::Instant::now() + GUARD;
        while gw.turn_state(&turn).await != "completed" {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the turn never ended"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let events = h
            .get(format!("{lobu}/agents/{id}/events"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let mut stream = events.bytes_stream();
        let mut seen = String::new();
        while !seen.contains("event: complete") {
            let chunk = tokio::time::timeout(GUARD, stream.next())
                .await
                .expect("the reply never came")
                .unwrap()
                .unwrap();
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
        assert!(
            seen.contains(&format!("\"finalText\":\"{text}\"")),
            "{seen}"
        );
        assert_eq!(
            seen.matches("event: complete").count(),
            1,
            "only this round's turn: {seen}"
        );
    }
    gw.stop().await;
}

/// `/api/local-init` is behind loopback trust's `Host` and `Origin` rules like every route.
#[tokio::test]
async fn local_init_obeys_the_host_and_origin_rules() {
    let gw = TestGateway::start(lobu_agents()).await;
    let port = gw.url.rsplit(':').next().unwrap().to_owned();
    let (status, body) = local_init(&gw, &[("Host", &format!("evil.example:{port}"))]).await;
    assert_eq!(
        (status.as_u16(), body["code"].as_str()),
        (421, Some("host_not_allowed")),
        "{body}"
    );
    let (status, body) = local_init(&gw, &[("Origin", "https://evil.example")]).await;
    assert_eq!(
        (status.as_u16(), body["code"].as_str()),
        (403, Some("origin_not_allowed")),
        "{body}"
    );
    gw.stop().await;
}

/// `[gateway] public_url` is where Lobu-shaped answers point, path and all.
#[tokio::test]
async fn lobu_urls_follow_the_public_url() {
    let mut c = lobu_agents();
    c.gateway.public_url = Some("https://chat.example/gw/".into());
    let gw = TestGateway::start(c).await;
    let (_, created) = call(gw.http.post(format!("{}/lobu/api/v1/agents", gw.url))).await;
    let id = created["agentId"].as_str().unwrap();
    assert_eq!(
        created["sseUrl"],
        format!("https://chat.example/gw/lobu/api/v1/agents/{id}/events")
    );
    gw.stop().await;
}
