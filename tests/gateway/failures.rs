//! Failure-matrix rows 1–8, 14, 15 and 17: how a worker fails, and what the client sees.

use std::time::Duration;
use turnwatch::api::WorkerState;

use crate::harness::{
    BIN, Backend, TestGateway, assert_completed, assert_failed, config, on_both, worker,
};

on_both!(
    row01_echo_streams_and_completes,
    row02_worker_error_is_agent_error,
    row03_crash_mid_turn_exit_code_and_signal,
    row04_clean_exit_mid_turn_is_worker_exited,
    row05_missing_command_is_spawn_failed,
    row06_never_ready_is_startup_timeout,
    row07_silent_or_heartbeating_worker_stalls_and_is_stopped,
    row08_deadline_exceeded,
    row14_garbage_is_recorded_and_ignored,
    row15_oversized_line_is_a_protocol_error,
    row17_no_capacity_is_queue_timeout,
    chat_exit_codes,
);

async fn row01_echo_streams_and_completes(b: Backend) {
    let gw = TestGateway::start_with(
        b,
        config(vec![("echo", worker(&["--mode", "echo", "--deltas", "4"]))]),
    )
    .await;
    let (_, _, events) = gw.turn("echo", "hello, turnwatch").await;
    let deltas: String = events
        .iter()
        .filter(|e| e.event == "output")
        .map(|e| e.data["content"].as_str().unwrap())
        .collect();
    assert_eq!(deltas, "hello, turnwatch");
    assert!(events.iter().filter(|e| e.event == "output").count() >= 3);
    assert_eq!(assert_completed(&events), "hello, turnwatch");
    gw.stop().await;
}

async fn row02_worker_error_is_agent_error(b: Backend) {
    let gw =
        TestGateway::start_with(b, config(vec![("err", worker(&["--mode", "error-reply"]))])).await;
    let (_, _, events) = gw.turn("err", "fail please").await;
    let err = assert_failed(&events, "agent_error");
    assert!(
        err["error"].as_str().unwrap().contains("told to fail"),
        "{err}"
    );
    gw.stop().await;
}

async fn row03_crash_mid_turn_exit_code_and_signal(b: Backend) {
    let gw = TestGateway::start_with(
        b,
        config(vec![
            (
                "exit3",
                worker(&["--mode", "crash-after", "--after", "2", "--exit-code", "3"]),
            ),
            (
                "killed",
                worker(&["--mode", "crash-after", "--after", "1", "--signal", "KILL"]),
            ),
            (
                "atstart",
                worker(&["--mode", "exit-at-start", "--exit-code", "1"]),
            ),
        ]),
    )
    .await;
    let (s, _, events) = gw.turn("exit3", "crash me softly").await;
    assert_eq!(
        events.iter().filter(|e| e.event == "output").count(),
        2,
        "deltas before the crash arrive"
    );
    let err = assert_failed(&events, "worker_crashed");
    assert_eq!(err["exitCode"], 3);
    let rows = gw
        .wait_workers(&s, |r| r.iter().any(|w| w.state == WorkerState::Exited))
        .await;
    assert_eq!(
        (rows[0].exit_code, rows[0].intentional),
        (Some(3), Some(false)),
        "a crash is no intent"
    );

    let (_, _, events) = gw.turn("killed", "kill me").await;
    let err = assert_failed(&events, "worker_crashed");
    assert_eq!(err["signal"], "SIGKILL");
    assert!(err.get("exitCode").is_none(), "{err}");

    let (_, _, events) = gw.turn("atstart", "never served").await;
    let err = assert_failed(&events, "worker_crashed");
    assert_eq!(err["exitCode"], 1);
    assert!(
        err["error"]
            .as_str()
            .unwrap()
            .contains("before it was ready"),
        "{err}"
    );
    gw.stop().await;
}

async fn row04_clean_exit_mid_turn_is_worker_exited(b: Backend) {
    let gw = TestGateway::start_with(
        b,
        config(vec![(
            "exit0",
            worker(&["--mode", "crash-after", "--exit-code", "0"]),
        )]),
    )
    .await;
    let (_, _, events) = gw.turn("exit0", "bye").await;
    let err = assert_failed(&events, "worker_exited");
    assert_eq!(err["exitCode"], 0);
    gw.stop().await;
}

async fn row05_missing_command_is_spawn_failed(b: Backend) {
    let mut missing = worker(&[]);
    missing.command = vec!["/nonexistent/turnwatch-agent".into()];
    let gw = TestGateway::start_with(b, config(vec![("missing", missing)])).await;
    let (_, _, events) = gw.turn("missing", "anyone?").await;
    let err = assert_failed(&events, "worker_spawn_failed");
    assert!(
        err["error"]
            .as_str()
            .unwrap()
            .contains("/nonexistent/turnwatch-agent"),
        "{err}"
    );
    gw.stop().await;
}

async fn row06_never_ready_is_startup_timeout(b: Backend) {
    let mut a = worker(&["--mode", "never-ready"]);
    a.startup_timeout = Duration::from_millis(400);
    let gw = TestGateway::start_with(b, config(vec![("mute", a)])).await;
    let (s, _, events) = gw.turn("mute", "hello?").await;
    assert_failed(&events, "worker_startup_timeout");
    let rows = gw
        .wait_workers(&s, |r| r.iter().all(|w| w.state == WorkerState::Exited))
        .await;
    assert_eq!(rows[0].intentional, Some(true));
    gw.stop().await;
}

async fn row07_silent_or_heartbeating_worker_stalls_and_is_stopped(b: Backend) {
    let mut hang = worker(&["--mode", "hang"]);
    hang.stall_timeout = Duration::from_millis(500);
    let mut beat = worker(&["--mode", "heartbeat-only", "--interval-ms", "50"]);
    beat.stall_timeout = Duration::from_millis(500);
    let gw = TestGateway::start_with(b, config(vec![("hang", hang), ("beat", beat)])).await;
    for agent in ["hang", "beat"] {
        let (s, _, events) = gw.turn(agent, "are you there").await;
        let err = assert_failed(&events, "turn_stalled");
        assert!(
            err["error"]
                .as_str()
                .unwrap()
                .contains("heartbeats do not count"),
            "{err}"
        );
        // The hung worker is stopped (hang ignores `shutdown`, so this takes SIGTERM).
        let rows = gw
            .wait_workers(&s, |r| r.iter().all(|w| w.state == WorkerState::Exited))
            .await;
        assert_eq!(
            (rows[0].intentional, rows[0].reason.as_deref()),
            (Some(true), Some("turn_stalled"))
        );
        crate::harness::assert_gone(rows[0].pid).await;
    }
    gw.stop().await;
}

async fn row08_deadline_exceeded(b: Backend) {
    let mut a = worker(&["--mode", "slow", "--deltas", "50", "--delay-ms", "100"]);
    a.deadline = Duration::from_millis(600);
    let gw = TestGateway::start_with(b, config(vec![("slow", a)])).await;
    let (_, _, events) = gw
        .turn("slow", "a long story that goes on and on and on and on")
        .await;
    assert!(
        events.iter().any(|e| e.event == "output"),
        "progress before the deadline"
    );
    assert_failed(&events, "turn_deadline_exceeded");
    gw.stop().await;
}

async fn row14_garbage_is_recorded_and_ignored(b: Backend) {
    let gw =
        TestGateway::start_with(b, config(vec![("junk", worker(&["--mode", "garbage"]))])).await;
    let (_, _, events) = gw.turn("junk", "still fine").await;
    assert_eq!(assert_completed(&events), "still fine");
    assert!(
        events.iter().all(|e| e.data["content"] != "stray"),
        "other turns' lines never reach the stream"
    );
    let rejected = gw.output_rows("rejected").await;
    assert_eq!(rejected.len(), 3, "{rejected:?}");
    assert!(
        rejected
            .iter()
            .any(|(t, r)| t.as_deref() == Some("t-not-mine") && r.contains("does not hold"))
    );
    gw.stop().await;
}

async fn row15_oversized_line_is_a_protocol_error(b: Backend) {
    let mut c = config(vec![(
        "big",
        worker(&["--mode", "oversize", "--bytes", "300000"]),
    )]);
    c.gateway.max_line_bytes = 64 * 1024;
    let gw = TestGateway::start_with(b, c).await;
    let (s, _, events) = gw.turn("big", "overflow").await;
    assert_failed(&events, "worker_protocol_error");
    let rows = gw
        .wait_workers(&s, |r| r.iter().all(|w| w.state == WorkerState::Exited))
        .await;
    assert_eq!(rows[0].intentional, Some(true));
    gw.stop().await;
}

async fn row17_no_capacity_is_queue_timeout(b: Backend) {
    let mut hang = worker(&["--mode", "hang"]);
    hang.queue_timeout = Duration::from_millis(400);
    let mut c = config(vec![("hang", hang)]);
    c.gateway.max_workers = 1;
    let gw = TestGateway::start_with(b, c).await;
    let busy = gw.session("hang").await;
    let mut busy_stream = gw.open(&busy, None).await;
    let busy_turn = gw.post(&busy, "occupy the only worker").await;
    gw.wait_workers(&busy, |r| r.iter().any(|w| w.state == WorkerState::Busy))
        .await;
    let (_, _, events) = gw.turn("hang", "no room").await;
    let err = assert_failed(&events, "queue_timeout");
    assert!(
        err["error"].as_str().unwrap().contains("max_workers = 1"),
        "{err}"
    );
    gw.stop().await;
    let events = busy_stream.until_complete(&busy_turn).await;
    assert_failed(&events, "gateway_shutdown");
}

/// `turnwatch chat` exit codes: 0 completed, 1 failed (code on stderr), 2 unreachable.
async fn chat_exit_codes(b: Backend) {
    let gw = TestGateway::start_with(
        b,
        config(vec![
            ("echo", worker(&["--mode", "echo"])),
            (
                "crash",
                worker(&["--mode", "crash-after", "--exit-code", "7"]),
            ),
        ]),
    )
    .await;
    let run = |args: Vec<String>| async move {
        tokio::process::Command::new(BIN)
            .args(args)
            .env_remove("TURNWATCH_URL")
            .output()
            .await
            .unwrap()
    };
    let url = gw.url.clone();
    let ok = run(vec![
        "chat".into(),
        "--url".into(),
        url.clone(),
        "hi from the cli".into(),
    ])
    .await;
    assert_eq!(ok.status.code(), Some(0), "{ok:?}");
    assert_eq!(
        String::from_utf8_lossy(&ok.stdout).trim(),
        "hi from the cli"
    );
    let failed = run(vec![
        "chat".into(),
        "--url".into(),
        url,
        "--agent".into(),
        "crash".into(),
        "boom".into(),
    ])
    .await;
    assert_eq!(failed.status.code(), Some(1), "{failed:?}");
    assert!(String::from_utf8_lossy(&failed.stderr).contains("worker_crashed"));
    gw.stop().await;
    let down = run(vec![
        "chat".into(),
        "--url".into(),
        "http://127.0.0.1:9".into(),
        "anyone".into(),
    ])
    .await;
    assert_eq!(down.status.code(), Some(2), "{down:?}");
}
