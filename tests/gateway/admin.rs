//! The admin surface: the truth about real workers and turns, lifecycle events for the failure
//! rows, resume across a restart, roles, pagination, and the `status`/`kill` commands.

use futures::StreamExt;
use serde_json::{Value, json};
use std::time::Duration;
use turnwatch::api::WorkerState;
use turnwatch::api::admin::{Page, TurnDetail, TurnInfo, WorkerDetail, WorkerInfo};
use turnwatch::client::{Client, SseEvent};
use turnwatch::config::Role;

use crate::cluster::assert_prometheus_text;
use crate::harness::{
    BIN, Backend, GUARD, TestGateway, assert_failed, config, on_both, token, worker,
};

on_both!(
    lifecycle_events_for_the_failure_rows,
    workers_and_turns_tell_the_truth_about_real_processes,
    admin_stream_resumes_across_a_restart_without_loss_or_doubles,
    lists_paginate_without_overlap,
    metrics_and_health,
    status_and_kill_commands,
);

/// Reads admin events until `pred` matches one; returns everything read.
async fn admin_until(
    stream: &mut (impl futures::Stream<Item = Result<SseEvent, turnwatch::client::ClientError>> + Unpin),
    pred: impl Fn(&SseEvent) -> bool,
) -> Vec<SseEvent> {
    let mut seen = Vec::new();
    loop {
        let ev = tokio::time::timeout(GUARD, stream.next())
            .await
            .expect("admin stream silent")
            .expect("admin stream ended")
            .unwrap();
        let done = pred(&ev);
        seen.push(ev);
        if done {
            return seen;
        }
    }
}

fn kinds_for<'a>(events: &'a [SseEvent], turn: &str) -> Vec<&'a str> {
    events
        .iter()
        .filter(|e| e.data["turnId"] == turn)
        .map(|e| e.event.as_str())
        .collect()
}

async fn lifecycle_events_for_the_failure_rows(b: Backend) {
    let mut stall = worker(&["--mode", "heartbeat-only"]);
    stall.stall_timeout = Duration::from_millis(300);
    let gw = TestGateway::start_with(
        b,
        config(vec![
            ("echo", worker(&["--mode", "echo"])),
            (
                "crash",
                worker(&["--mode", "crash-after", "--exit-code", "4"]),
            ),
            ("stall", stall),
            ("junk", worker(&["--mode", "garbage"])),
        ]),
    )
    .await;
    let mut admin = gw.client.admin_events(None).await.unwrap();
    let snapshot = admin.next().await.unwrap().unwrap();
    assert_eq!(snapshot.event, "snapshot");

    let (_, turn, _) = gw.turn("echo", "fine").await;
    let seen = admin_until(&mut admin, |e| e.event == "turn.completed").await;
    assert_eq!(
        kinds_for(&seen, &turn),
        [
            "turn.queued",
            "turn.dispatched",
            "turn.progress",
            "turn.completed"
        ]
    );
    let names: Vec<&str> = seen.iter().map(|e| e.event.as_str()).collect();
    assert!(
        names.contains(&"worker.spawned") && names.contains(&"worker.ready"),
        "{names:?}"
    );

    let (_, turn, _) = gw.turn("crash", "boom").await;
    let seen = admin_until(&mut admin, |e| e.event == "turn.failed").await;
    let exited = seen
        .iter()
        .find(|e| e.event == "worker.exited")
        .expect("worker.exited");
    assert_eq!(
        (
            exited.data["exitCode"].clone(),
            exited.data["intentional"].clone()
        ),
        (json!(4), json!(false))
    );
    assert_eq!(
        kinds_for(&seen, &turn),
        [
            "turn.queued",
            "turn.dispatched",
            "turn.progress",
            "turn.stranded",
            "turn.failed"
        ]
    );
    assert_eq!(seen.last().unwrap().data["code"], "worker_crashed");

    let (_, turn, _) = gw.turn("stall", "wedged").await;
    let seen = admin_until(&mut admin, |e| e.event == "turn.failed").await;
    let k = kinds_for(&seen, &turn);
    assert_eq!(&k[k.len() - 2..], ["turn.stranded", "turn.failed"]);
    assert_eq!(seen.last().unwrap().data["code"], "turn_stalled");

    let (_, _, _) = gw.turn("junk", "mess").await;
    let seen = admin_until(&mut admin, |e| e.event == "turn.completed").await;
    assert_eq!(
        seen.iter()
            .filter(|e| e.event == "worker.output_rejected")
            .count(),
        3
    );
    gw.stop().await;
}

async fn workers_and_turns_tell_the_truth_about_real_processes(b: Backend) {
    let gw = TestGateway::start_with(
        b,
        config(vec![
            ("hang", worker(&["--mode", "hang"])),
            (
                "sig",
                worker(&["--mode", "crash-after", "--signal", "ABRT"]),
            ),
        ]),
    )
    .await;
    let s = gw.session("hang").await;
    let mut r = gw.open(&s, None).await;
    let turn = gw.post(&s, "held").await;
    gw.wait_workers(&s, |r| r.iter().any(|w| w.state == WorkerState::Busy))
        .await;
    let live: Page<WorkerInfo> = gw
        .client
        .get_json("/api/v1/admin/workers?state=live")
        .await
        .unwrap();
    let w = live
        .items
        .iter()
        .find(|w| w.session_id.as_str() == s.id)
        .unwrap()
        .clone();
    assert_eq!(w.state, WorkerState::Busy);
    assert_eq!(
        w.current_turn_id
            .as_ref()
            .map(turnwatch::ids::TurnId::as_str),
        Some(turn.as_str())
    );
    assert!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(w.pid as i32), None).is_ok(),
        "the pid is a live process"
    );
    let open: Page<TurnInfo> = gw
        .client
        .get_json("/api/v1/admin/turns?state=open")
        .await
        .unwrap();
    assert_eq!(open.items.len(), 1);
    assert!(
        open.items[0].content.is_none(),
        "lists never carry message content"
    );
    let detail: TurnDetail = gw
        .client
        .get_json(&format!("/api/v1/admin/turns/{turn}"))
        .await
        .unwrap();
    assert_eq!(
        detail.turn.content.as_deref(),
        Some("held"),
        "operators see content in a turn's detail"
    );

    // Kill: intentional. Crash by signal: not.
    let path = format!("/api/v1/admin/workers/{}/kill", w.worker_id);
    gw.client
        .post_json(
            &path,
            &json!({ "generation": w.generation, "pid": w.pid, "reason": "stuck" }),
        )
        .await
        .unwrap();
    assert_failed(&r.until_complete(&turn).await, "cancelled_by_operator");
    gw.wait_workers(&s, |r| r.iter().all(|w| w.state == WorkerState::Exited))
        .await;
    let d: WorkerDetail = gw
        .client
        .get_json(&format!("/api/v1/admin/workers/{}", w.worker_id))
        .await
        .unwrap();
    assert_eq!(
        (d.worker.intentional, d.worker.signal.as_deref()),
        (Some(true), Some("SIGKILL"))
    );
    assert!(d.worker.exit_reason.unwrap().contains("stuck"));
    assert!(
        d.stderr_tail
            .iter()
            .any(|l| l.contains("starting in Hang mode")),
        "{:?}",
        d.stderr_tail
    );
    assert_eq!(
        d.recent_turns[0].code,
        Some(turnwatch::api::ErrorCode::CancelledByOperator)
    );
    let detail: TurnDetail = gw
        .client
        .get_json(&format!("/api/v1/admin/turns/{turn}"))
        .await
        .unwrap();
    let timeline: Vec<&str> = detail.timeline.iter().map(|e| e.kind.as_str()).collect();
    for step in [
        "turn.queued",
        "turn.dispatched",
        "turn.failed",
        "error",
        "complete",
    ] {
        assert!(timeline.contains(&step), "{step} missing from {timeline:?}");
    }

    let (s2, _, _) = gw.turn("sig", "segfault").await;
    let rows = gw
        .wait_workers(&s2, |r| r.iter().all(|w| w.state == WorkerState::Exited))
        .await;
    let d: WorkerDetail = gw
        .client
        .get_json(&format!("/api/v1/admin/workers/{}", rows[0].worker_id))
        .await
        .unwrap();
    assert_eq!(
        (
            d.worker.intentional,
            d.worker.signal.as_deref(),
            d.worker.exit_reason.as_deref()
        ),
        (Some(false), Some("SIGABRT"), Some("crashed")),
        "{:?} stderr: {:?}",
        d.worker,
        d.stderr_tail
    );
    gw.stop().await;
}

#[tokio::test]
async fn roles_and_tokens() {
    let mut c = config(vec![
        ("echo", worker(&["--mode", "echo"])),
        ("hang", worker(&["--mode", "hang"])),
    ]);
    c.tokens = vec![
        token("oncall", Role::Operator),
        token("viewer", Role::Readonly),
        token("app", Role::Client),
    ];
    let gw = TestGateway::start(c).await;
    let op = Client::new(&gw.url, Some("oncall-secret".into()));
    let ro = Client::new(&gw.url, Some("viewer-secret".into()));
    let app = Client::new(&gw.url, Some("app-secret".into()));
    let anon = Client::new(&gw.url, None);
    let session = app
        .create_session(&turnwatch::api::CreateSession {
            agent_id: Some("hang".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(
        anon.create_session(&turnwatch::api::CreateSession::default())
            .await
            .unwrap_err()
            .to_string()
            .contains("401")
    );
    assert!(
        ro.create_session(&turnwatch::api::CreateSession::default())
            .await
            .unwrap_err()
            .to_string()
            .contains("403")
    );
    let turn = app
        .post_message(&session.agent_id, &session.token, "secret message", None)
        .await
        .unwrap()
        .turn_id;

    assert!(
        anon.get_json::<Value>("/api/v1/admin/overview")
            .await
            .unwrap_err()
            .to_string()
            .contains("401")
    );
    assert!(
        app.get_json::<Value>("/api/v1/admin/overview")
            .await
            .unwrap_err()
            .to_string()
            .contains("403")
    );
    let ov: Value = ro.get_json("/api/v1/admin/overview").await.unwrap();
    assert_eq!(ov["success"], true);
    let detail: Value = ro
        .get_json(&format!("/api/v1/admin/turns/{turn}"))
        .await
        .unwrap();
    assert!(
        !detail.to_string().contains("secret message"),
        "read-only never sees content: {detail}"
    );
    let cancel = format!("/api/v1/admin/turns/{turn}/cancel");
    assert!(
        ro.post_json(&cancel, &json!({}))
            .await
            .unwrap_err()
            .to_string()
            .contains("403")
    );
    let deadline = tokio::time::Instant::now() + GUARD;
    let w = loop {
        let live: Page<WorkerInfo> = ro
            .get_json("/api/v1/admin/workers?state=live")
            .await
            .unwrap();
        if let Some(w) = live.items.into_iter().next() {
            break w;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the worker never showed up"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    let kill = format!("/api/v1/admin/workers/{}/kill", w.worker_id);
    assert!(
        ro.post_json(&kill, &json!({ "generation": w.generation, "pid": w.pid }))
            .await
            .unwrap_err()
            .to_string()
            .contains("403")
    );
    op.post_json(&cancel, &json!({ "reason": "by the book" }))
        .await
        .unwrap();
    let mut events = op.admin_events(Some(0)).await.unwrap();
    let seen = admin_until(&mut events, |e| e.event == "operator.action").await;
    let action = seen.last().unwrap();
    assert_eq!(
        (action.data["token"].clone(), action.data["reason"].clone()),
        (json!("oncall"), json!("by the book"))
    );
    gw.stop().await;
}

async fn admin_stream_resumes_across_a_restart_without_loss_or_doubles(b: Backend) {
    let gw = TestGateway::start_with(b, config(vec![("echo", worker(&["--mode", "echo"]))])).await;
    for i in 0..3 {
        gw.turn("echo", &format!("before {i}")).await;
    }
    let mut stream = gw.client.admin_events(Some(0)).await.unwrap();
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(stream.next().await.unwrap().unwrap().id.unwrap());
    }
    drop(stream);
    let gw = gw
        .restart(config(vec![("echo", worker(&["--mode", "echo"]))]))
        .await;
    gw.turn("echo", "after the restart").await;
    let mut stream = gw
        .client
        .admin_events(Some(*ids.last().unwrap()))
        .await
        .unwrap();
    let db = gw.db().await;
    let total = db.int("SELECT MAX(seq) FROM admin_events", &[]).await;
    while *ids.last().unwrap() < total {
        let ev = tokio::time::timeout(GUARD, stream.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        // A process sample is not in the log: the id it comes with is the last one's.
        if let Some(id) = ev.id.filter(|_| ev.event != "worker.sampled") {
            ids.push(id);
        }
    }
    assert_eq!(
        ids,
        (1..=total).collect::<Vec<_>>(),
        "every admin event once, in order"
    );
    gw.stop().await;
}

async fn lists_paginate_without_overlap(b: Backend) {
    let gw = TestGateway::start_with(b, config(vec![("echo", worker(&["--mode", "echo"]))])).await;
    let s = gw.session("echo").await;
    let mut r = gw.open(&s, None).await;
    let mut turns = Vec::new();
    for i in 0..5 {
        let t = gw.post(&s, &format!("m{i}")).await;
        r.until_complete(&t).await;
        turns.push(t);
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = cursor
            .as_ref()
            .map_or(String::new(), |c| format!("&cursor={c}"));
        let p: Page<TurnInfo> = gw
            .client
            .get_json(&format!("/api/v1/admin/turns?limit=2{q}"))
            .await
            .unwrap();
        seen.extend(p.items.iter().map(|t| t.turn_id.to_string()));
        match p.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    turns.reverse();
    assert_eq!(seen, turns, "newest first, each once");
    let bad = gw
        .client
        .get_json::<Value>("/api/v1/admin/turns?limit=5000")
        .await
        .unwrap_err()
        .to_string();
    assert!(bad.contains("invalid_request"), "{bad}");
    let bad = gw
        .client
        .get_json::<Value>("/api/v1/admin/turns?state=sleepy")
        .await
        .unwrap_err()
        .to_string();
    assert!(bad.contains("invalid_request"), "{bad}");
    gw.stop().await;
}

async fn metrics_and_health(b: Backend) {
    let gw = TestGateway::start_with(
        b,
        config(vec![("crash", worker(&["--mode", "crash-after"]))]),
    )
    .await;
    gw.turn("crash", "x").await;
    let text = gw
        .http
        .get(format!("{}/metrics", gw.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("turnwatch_turns_failed{code=\"worker_crashed\"} 1"),
        "{text}"
    );
    // What this process measured names it (see `cluster` for the rest of the labels).
    let me = gw.client.replicas().await.unwrap().items[0].name.clone();
    for series in [
        format!("turnwatch_sse_connections{{replica=\"{me}\",stream=\"session\"}} 0"),
        format!("turnwatch_crash_to_error_seconds_count{{replica=\"{me}\"}} 1"),
        format!("turnwatch_crash_to_error_seconds_bucket{{replica=\"{me}\",le=\"+Inf\"}} 1"),
    ] {
        assert!(text.contains(&series), "no `{series}` in:\n{text}");
    }
    assert!(
        !text.contains("turnwatch_crash_to_error_seconds_count 1"),
        "unlabelled: {text}"
    );
    assert_prometheus_text(&text);
    let health = gw
        .http
        .get(format!("{}/healthz", gw.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    gw.stop().await;
}

async fn status_and_kill_commands(b: Backend) {
    let gw = TestGateway::start_with(b, config(vec![("hang", worker(&["--mode", "hang"]))])).await;
    let s = gw.session("hang").await;
    let mut r = gw.open(&s, None).await;
    let turn = gw.post(&s, "for the cli").await;
    let rows = gw
        .wait_workers(&s, |r| r.iter().any(|w| w.state == WorkerState::Busy))
        .await;
    let run = |args: &[&str]| {
        let mut cmd = std::process::Command::new(BIN);
        cmd.args(args)
            .args(["--url", &gw.url])
            .env_remove("TURNWATCH_TOKEN");
        async move {
            tokio::task::spawn_blocking(move || cmd.output().unwrap())
                .await
                .unwrap()
        }
    };
    let out = run(&["status", "--json", "--exit-code"]).await;
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["turns"][0]["turnId"], turn.as_str());
    assert_eq!(v["workers"][0]["state"], "busy");
    assert_eq!(v["replicas"][0]["state"], "live");
    assert_eq!(v["replicas"][0]["workers"], 1);
    let table = run(&["status"]).await;
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("WORKERS (1)") && text.contains(&rows[0].worker_id),
        "{text}"
    );
    let name = v["replicas"][0]["name"].as_str().unwrap();
    let line = text
        .lines()
        .skip_while(|l| *l != "REPLICAS (1)")
        .nth(2)
        .unwrap_or_default();
    assert!(
        line.starts_with(name)
            && line
                .split_whitespace()
                .skip(1)
                .take(3)
                .eq(["live", "1", "1"])
            && line.ends_with(" ago"),
        "one line per replica: name, state, workers, sessions, heartbeat age:\n{text}"
    );

    let killed = run(&["kill", &rows[0].worker_id, "--reason", "cli test"]).await;
    assert_eq!(killed.status.code(), Some(0), "{killed:?}");
    assert!(
        String::from_utf8_lossy(&killed.stdout).contains("SIGKILL"),
        "{killed:?}"
    );
    assert_failed(&r.until_complete(&turn).await, "cancelled_by_operator");
    let again = run(&["kill", &rows[0].worker_id]).await;
    assert_eq!(
        again.status.code(),
        Some(1),
        "a dead worker cannot be killed again: {again:?}"
    );

    let mut watch = tokio::process::Command::new(BIN)
        .args(["status", "--watch", "--url", &gw.url])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines =
        tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(watch.stdout.take().unwrap()));
    let first: Value = serde_json::from_str(&lines.next_line().await.unwrap().unwrap()).unwrap();
    assert_eq!(first["event"], "snapshot");
    watch.kill().await.unwrap();
    gw.stop().await;
}

// The header's failure counts are the gateway's, by code over its recent window.
on_both!(the_overview_counts_recent_failures_by_code);

async fn the_overview_counts_recent_failures_by_code(b: Backend) {
    let gw = TestGateway::start_with(
        b,
        config(vec![
            (
                "crash",
                worker(&["--mode", "crash-after", "--exit-code", "3"]),
            ),
            ("echo", worker(&["--mode", "echo"])),
        ]),
    )
    .await;
    for _ in 0..2 {
        let (_, _, events) = gw.turn("crash", "boom").await;
        assert_failed(&events, "worker_crashed");
    }
    gw.turn("echo", "fine").await;
    let o = gw.client.overview().await.unwrap();
    assert_eq!(o.recent_seconds, 900);
    assert_eq!(
        o.failed_recently
            .get(&turnwatch::api::ErrorCode::WorkerCrashed),
        Some(&2),
        "{:?}",
        o.failed_recently
    );
    assert_eq!(
        o.failed_recently.len(),
        1,
        "completed turns are not failures"
    );
    gw.stop().await;
}
