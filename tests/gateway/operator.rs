//! Failure-matrix rows 9–13: operator kills and cancels, idle exits, late replies.

use serde_json::json;
use std::time::Duration;
use turnwatch::api::WorkerState;

use crate::harness::{
    Backend, TestGateway, assert_completed, assert_failed, config, on_both, worker,
};

on_both!(
    row09_kill_busy_worker_cancels_its_turn_and_is_intentional,
    row09_kill_with_stale_generation_is_refused,
    row10_cancel_turn_ends_it_and_worker_lives_on,
    row11_killing_an_idle_worker_and_idle_reap_say_nothing,
    row12_idle_crash_after_reply_is_no_error_on_the_stream,
    row13_reply_after_the_turn_ended_is_recorded_late,
);

/// Asserts the admin log has `operator.action` for `target` before `turn.failed` of `turn`:
/// the cause before its effect.
async fn assert_cause_before_effect(gw: &TestGateway, target: &str, turn: &str) {
    let db = gw.db().await;
    let log = db
        .pairs("SELECT kind, data FROM admin_events ORDER BY seq")
        .await;
    let at = |kind: &str, key: &str, value: &str| {
        log.iter()
            .position(|(k, d)| {
                k == kind && serde_json::from_str::<serde_json::Value>(d).unwrap()[key] == value
            })
            .unwrap_or_else(|| panic!("no {kind} for {value}: {log:?}"))
    };
    assert!(
        at("operator.action", "target", target) < at("turn.failed", "turnId", turn),
        "{log:?}"
    );
}

async fn row09_kill_busy_worker_cancels_its_turn_and_is_intentional(b: Backend) {
    let gw = TestGateway::start_with(b, config(vec![("hang", worker(&["--mode", "hang"]))])).await;
    let s = gw.session("hang").await;
    let mut r = gw.open(&s, None).await;
    let turn = gw.post(&s, "work forever").await;
    let rows = gw
        .wait_workers(&s, |r| r.iter().any(|w| w.state == WorkerState::Busy))
        .await;
    let w = &rows[0];
    let path = format!("/api/v1/admin/workers/{}/kill", w.worker_id);
    let ack = gw
        .client
        .post_json(
            &path,
            &json!({ "generation": w.generation, "pid": w.pid, "reason": "test" }),
        )
        .await
        .unwrap();
    assert_eq!(ack["success"], true);
    let events = r.until_complete(&turn).await;
    let err = assert_failed(&events, "cancelled_by_operator");
    assert!(err["error"].as_str().unwrap().contains("killed"), "{err}");
    assert_cause_before_effect(&gw, &w.worker_id, &turn).await;
    let rows = gw
        .wait_workers(&s, |r| r.iter().all(|w| w.state == WorkerState::Exited))
        .await;
    assert_eq!(
        rows[0].intentional,
        Some(true),
        "a kill is intentional, never a crash"
    );
    assert_eq!(rows[0].signal, Some(9));
    r.assert_quiet(Duration::from_millis(300)).await;
    gw.stop().await;
}

async fn row09_kill_with_stale_generation_is_refused(b: Backend) {
    let gw = TestGateway::start_with(b, config(vec![("echo", worker(&["--mode", "echo"]))])).await;
    let (s, _, _) = gw.turn("echo", "first").await;
    let w = gw.worker_rows(&s).await.remove(0);
    let path = format!("/api/v1/admin/workers/{}/kill", w.worker_id);
    let stale = gw
        .client
        .post_json(
            &path,
            &json!({ "generation": w.generation + 1, "pid": w.pid }),
        )
        .await;
    let err = stale.unwrap_err().to_string();
    assert!(
        err.contains("409") && err.contains("target_changed"),
        "{err}"
    );
    assert!(
        !err.contains("Some(") && err.contains("nothing was killed"),
        "a sentence, not Rust debug output: {err}"
    );
    let wrong_pid = gw
        .client
        .post_json(&path, &json!({ "generation": w.generation, "pid": 1 }))
        .await;
    assert!(
        wrong_pid
            .unwrap_err()
            .to_string()
            .contains("target_changed")
    );
    let rows = gw.worker_rows(&s).await;
    assert_ne!(rows[0].state, WorkerState::Exited, "nothing was killed");
    gw.stop().await;
}

async fn row10_cancel_turn_ends_it_and_worker_lives_on(b: Backend) {
    let gw = TestGateway::start_with(
        b,
        config(vec![(
            "slow",
            worker(&["--mode", "slow", "--deltas", "100", "--delay-ms", "100"]),
        )]),
    )
    .await;
    let s = gw.session("slow").await;
    let mut r = gw.open(&s, None).await;
    let turn = gw
        .post(&s, "a very long reply, one hundred pieces of it, slowly")
        .await;
    let first = r.next().await.unwrap();
    assert_eq!(first.event, "output");
    let ack = gw
        .client
        .post_json(
            &format!("/api/v1/admin/turns/{turn}/cancel"),
            &json!({ "reason": "enough" }),
        )
        .await
        .unwrap();
    assert_eq!(ack["success"], true);
    let events = r.until_complete(&turn).await;
    let err = assert_failed(&events, "cancelled_by_operator");
    assert!(err["error"].as_str().unwrap().contains("enough"), "{err}");
    assert_cause_before_effect(&gw, &turn, &turn).await;
    // Cancelling again is a conflict; the worker took `cancel` and serves the next turn.
    let again = gw
        .client
        .post_json(&format!("/api/v1/admin/turns/{turn}/cancel"), &json!({}))
        .await;
    assert!(again.unwrap_err().to_string().contains("already_ended"));
    let next = gw.post(&s, "ok").await;
    assert_completed(&r.until_complete(&next).await);
    let rows = gw.worker_rows(&s).await;
    assert_eq!(rows.len(), 1, "same worker, no respawn: {rows:?}");
    gw.stop().await;
}

async fn row11_killing_an_idle_worker_and_idle_reap_say_nothing(b: Backend) {
    let mut reaped = worker(&["--mode", "echo"]);
    reaped.idle_timeout = Duration::from_millis(300);
    let gw = TestGateway::start_with(
        b,
        config(vec![
            ("echo", worker(&["--mode", "echo"])),
            ("reaped", reaped),
        ]),
    )
    .await;
    let (s, _, _) = gw.turn("echo", "then idle").await;
    let mut r = gw.open(&s, None).await;
    let w = gw.worker_rows(&s).await.remove(0);
    let path = format!("/api/v1/admin/workers/{}/kill", w.worker_id);
    gw.client
        .post_json(&path, &json!({ "generation": w.generation, "pid": w.pid }))
        .await
        .unwrap();
    let rows = gw
        .wait_workers(&s, |r| r.iter().all(|w| w.state == WorkerState::Exited))
        .await;
    assert_eq!(rows[0].intentional, Some(true));
    r.assert_quiet(Duration::from_millis(300)).await;

    let (s, _, _) = gw.turn("reaped", "then reaped").await;
    let mut r = gw.open(&s, None).await;
    let rows = gw
        .wait_workers(&s, |r| r.iter().all(|w| w.state == WorkerState::Exited))
        .await;
    assert_eq!(
        (rows[0].intentional, rows[0].reason.as_deref()),
        (Some(true), Some("idle_reap"))
    );
    r.assert_quiet(Duration::from_millis(300)).await;
    // The next turn gets a new generation.
    let turn = gw.post(&s, "again").await;
    assert_completed(&r.until_complete(&turn).await);
    let rows = gw.worker_rows(&s).await;
    assert_eq!(
        rows.iter().map(|w| w.generation).collect::<Vec<_>>(),
        [1, 2]
    );
    gw.stop().await;
}

async fn row12_idle_crash_after_reply_is_no_error_on_the_stream(b: Backend) {
    let gw = TestGateway::start_with(
        b,
        config(vec![(
            "flaky",
            worker(&[
                "--mode",
                "echo",
                "--exit-after-turns",
                "1",
                "--delay-ms",
                "100",
                "--exit-code",
                "5",
            ]),
        )]),
    )
    .await;
    let s = gw.session("flaky").await;
    let mut r = gw.open(&s, None).await;
    let turn = gw.post(&s, "reply then die").await;
    assert_completed(&r.until_complete(&turn).await);
    let rows = gw
        .wait_workers(&s, |r| r.iter().all(|w| w.state == WorkerState::Exited))
        .await;
    assert_eq!(
        (rows[0].exit_code, rows[0].intentional),
        (Some(5), Some(false)),
        "operators see the crash"
    );
    r.assert_quiet(Duration::from_millis(400)).await;
    gw.stop().await;
}

async fn row13_reply_after_the_turn_ended_is_recorded_late(b: Backend) {
    let gw = TestGateway::start_with(
        b,
        config(vec![(
            "late",
            worker(&["--mode", "late-reply", "--delay-ms", "600"]),
        )]),
    )
    .await;
    let s = gw.session("late").await;
    let mut r = gw.open(&s, None).await;
    let turn = gw.post(&s, "too slow").await;
    gw.wait_workers(&s, |r| r.iter().any(|w| w.state == WorkerState::Busy))
        .await;
    gw.client
        .post_json(
            &format!("/api/v1/admin/turns/{turn}/cancel"),
            &json!({ "reason": "late" }),
        )
        .await
        .unwrap();
    assert_failed(&r.until_complete(&turn).await, "cancelled_by_operator");
    r.assert_quiet(Duration::from_millis(1200)).await;
    let deadline = tokio::time::Instant::now() + crate::harness::GUARD;
    loop {
        let late = gw.output_rows("late").await;
        if late.len() >= 2 {
            assert!(
                late.iter()
                    .all(|(t, _)| t.as_deref() == Some(turn.as_str())),
                "{late:?}"
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "late replies never recorded: {late:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(gw.turn_state(&turn).await, "failed");
    gw.stop().await;
}
