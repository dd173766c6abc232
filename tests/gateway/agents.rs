//! Real agents behind the gateway: the exec adapter (`turnwatch worker --exec -- CMD`) driving
//! real commands (here), and the Python worker library of `assets/workers/` ([`python`]),
//! with its OpenAI-compatible example against a fake endpoint ([`openai`]).

use serde_json::json;
use std::path::Path;
use std::time::Duration;
use turnwatch::api::WorkerState;
use turnwatch::client::SseEvent;
use turnwatch::config::AgentConfig;

use crate::harness::{
    GUARD, Reader, Session, TestGateway, assert_completed, assert_failed, assert_gone, config,
    worker,
};

mod openai;
mod python;

/// An exec-adapter agent running `cmd` per turn, its sessions' directories under `dir`.
fn exec(dir: &Path, cmd: &[&str]) -> AgentConfig {
    let dir = dir.to_str().unwrap();
    let mut args = vec![
        "--exec",
        "--sessions-dir",
        dir,
        "--grace-ms",
        "300",
        "--heartbeat-ms",
        "100",
        "--",
    ];
    args.extend_from_slice(cmd);
    worker(&args)
}

/// The streamed text of a turn's events, piece by piece.
pub(super) fn pieces(events: &[SseEvent]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e.event == "output")
        .map(|e| e.data["content"].as_str().unwrap().to_owned())
        .collect()
}

/// The text of the stream's next delta.
pub(super) async fn next_output(r: &mut Reader) -> String {
    loop {
        let ev = r.next().await.expect("the stream ended before a delta");
        if ev.event == "output" {
            return ev.data["content"].as_str().unwrap().to_owned();
        }
    }
}

/// Waits (guarded) until `path` holds `lines` lines; returns them.
pub(super) async fn wait_lines(path: &Path, lines: usize) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + GUARD;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let got: Vec<String> = text.lines().map(str::to_owned).collect();
        if got.len() >= lines && text.ends_with('\n') {
            return got;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} never had {lines} lines: {got:?}",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Cancels `turn` through the admin API.
pub(super) async fn cancel(gw: &TestGateway, turn: &str) {
    let path = format!("/api/v1/admin/turns/{turn}/cancel");
    let ack = gw.client.post_json(&path, &json!({})).await.unwrap();
    assert_eq!(ack["success"], true, "{ack}");
}

/// A command that records its pid and a child's, says `started`, and ignores `SIGTERM`
/// (the child inherits that), so only the adapter's `SIGKILL` ends them.
fn stubborn(pids: &Path) -> Vec<String> {
    let script = format!(
        "trap '' TERM; echo $$ > {p}.tmp; sleep 60 & echo $! >> {p}.tmp; mv {p}.tmp {p}; \
         echo started; wait",
        p = pids.display()
    );
    vec!["sh".into(), "-c".into(), script]
}

#[tokio::test]
async fn exec_streams_stdout_as_it_arrives_without_newlines() {
    let dir = tempfile::tempdir().unwrap();
    // A character split across two writes arrives whole.
    let split = "printf 'a\\342\\206'; sleep 0.3; printf '\\222b'";
    let upper = ["tr", "a-z", "A-Z"];
    let placeholder = [
        "sh",
        "-c",
        "printf '%s|%s|%s' \"$1\" \"$TURNWATCH_THREAD\" \"$TURNWATCH_TURN_ID\"",
        "sh",
        "{message}",
    ];
    let gw = TestGateway::start(config(vec![
        ("split", exec(dir.path(), &["sh", "-c", split])),
        ("upper", exec(dir.path(), &upper)),
        ("args", exec(dir.path(), &placeholder)),
    ]))
    .await;
    let (_, _, events) = gw.turn("split", "ignored").await;
    assert_eq!(assert_completed(&events), "a→b");
    assert_eq!(pieces(&events), ["a", "→b"], "two reads, two deltas");

    let (_, _, events) = gw.turn("upper", "hello from stdin").await;
    assert_eq!(assert_completed(&events), "HELLO FROM STDIN");

    let req = turnwatch::api::CreateSession {
        agent_id: Some("args".into()),
        thread: Some("thread-7".into()),
        ..Default::default()
    };
    let created = gw.client.create_session(&req).await.unwrap();
    let s = Session {
        id: created.agent_id,
        token: created.token,
    };
    let mut r = gw.open(&s, None).await;
    let turn = gw.post(&s, "it's an {argument}").await;
    let text = assert_completed(&r.until_complete(&turn).await);
    assert_eq!(text, format!("it's an {{argument}}|thread-7|{turn}"));
    gw.stop().await;
}

#[tokio::test]
async fn exec_failures_are_agent_errors_naming_the_exit_and_the_last_stderr_line() {
    let dir = tempfile::tempdir().unwrap();
    let exits = "echo partial; echo 'loading model' >&2; echo 'model not found' >&2; exit 3";
    let gw = TestGateway::start(config(vec![
        ("exits", exec(dir.path(), &["sh", "-c", exits])),
        ("signal", exec(dir.path(), &["sh", "-c", "kill -SEGV $$"])),
        ("missing", exec(dir.path(), &["/nonexistent/agent-cli"])),
    ]))
    .await;
    let (s, _, events) = gw.turn("exits", "hi").await;
    let err = assert_failed(&events, "agent_error");
    let sentence = err["error"].as_str().unwrap();
    assert!(
        sentence.contains("exited with code 3: model not found"),
        "{err}"
    );
    assert_eq!(
        pieces(&events),
        ["partial\n"],
        "output before the failure streams"
    );
    // The worker stays and serves the session's next turn.
    let mut r = gw.open(&s, None).await;
    let turn = gw.post(&s, "again").await;
    assert_failed(&r.until_complete(&turn).await, "agent_error");
    assert_eq!(gw.worker_rows(&s).await.len(), 1, "no new worker");

    let (_, _, events) = gw.turn("signal", "hi").await;
    let err = assert_failed(&events, "agent_error");
    assert!(
        err["error"]
            .as_str()
            .unwrap()
            .contains("killed by signal SIGSEGV"),
        "{err}"
    );
    let (_, _, events) = gw.turn("missing", "hi").await;
    let err = assert_failed(&events, "agent_error");
    assert!(
        err["error"]
            .as_str()
            .unwrap()
            .contains("could not be started"),
        "{err}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn exec_command_that_prints_nothing_stalls_despite_heartbeats() {
    let dir = tempfile::tempdir().unwrap();
    let pids = dir.path().join("pids");
    let script = format!("echo $$ > {}; exec sleep 60", pids.display());
    let mut silent = exec(dir.path(), &["sh", "-c", &script]);
    silent.stall_timeout = Duration::from_millis(800);
    let gw = TestGateway::start(config(vec![("silent", silent)])).await;
    let s = gw.session("silent").await;
    let mut r = gw.open(&s, None).await;
    let turn = gw.post(&s, "think hard").await;
    let events = r.until_complete(&turn).await;
    assert_failed(&events, "turn_stalled");
    let pid = wait_lines(&pids, 1).await[0].parse().unwrap();
    assert_gone(pid).await;
    let rows = gw
        .wait_workers(&s, |r| r.iter().all(|w| w.state == WorkerState::Exited))
        .await;
    assert_eq!(rows[0].reason.as_deref(), Some("turn_stalled"));
    let sql = "SELECT last_heartbeat_at FROM workers WHERE session_id = $1";
    let beat = gw.db().await.maybe_int(sql, &[&s.id]).await;
    assert!(
        beat.is_some(),
        "the adapter heartbeat while the command ran"
    );
    gw.stop().await;
}

#[tokio::test]
async fn exec_cancel_stops_the_turns_process_group_and_the_worker_serves_on() {
    let dir = tempfile::tempdir().unwrap();
    let pids = dir.path().join("pids");
    let cmd = stubborn(&pids);
    let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
    let gw = TestGateway::start(config(vec![("stubborn", exec(dir.path(), &cmd))])).await;
    let s = gw.session("stubborn").await;
    let mut r = gw.open(&s, None).await;
    let turn = gw.post(&s, "go").await;
    assert_eq!(next_output(&mut r).await, "started\n");
    let running = wait_lines(&pids, 2).await;
    cancel(&gw, &turn).await;
    assert_failed(&r.until_complete(&turn).await, "cancelled_by_operator");
    for pid in running {
        assert_gone(pid.parse().unwrap()).await;
    }
    // The same worker takes the next turn.
    std::fs::remove_file(&pids).unwrap();
    let turn = gw.post(&s, "again").await;
    assert_eq!(next_output(&mut r).await, "started\n");
    let running = wait_lines(&pids, 2).await;
    let rows = gw.worker_rows(&s).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].state, WorkerState::Busy);
    cancel(&gw, &turn).await;
    assert_failed(&r.until_complete(&turn).await, "cancelled_by_operator");
    for pid in running {
        assert_gone(pid.parse().unwrap()).await;
    }
    gw.stop().await;
}

#[tokio::test]
async fn exec_operator_kill_leaves_no_process_of_the_turn() {
    let dir = tempfile::tempdir().unwrap();
    let pids = dir.path().join("pids");
    let cmd = stubborn(&pids);
    let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
    let gw = TestGateway::start(config(vec![("stubborn", exec(dir.path(), &cmd))])).await;
    let s = gw.session("stubborn").await;
    let mut r = gw.open(&s, None).await;
    let turn = gw.post(&s, "go").await;
    let running = wait_lines(&pids, 2).await;
    let w = gw.worker_rows(&s).await.remove(0);
    let path = format!("/api/v1/admin/workers/{}/kill", w.worker_id);
    let body = json!({ "generation": w.generation, "pid": w.pid, "reason": "test" });
    gw.client.post_json(&path, &body).await.unwrap();
    assert_failed(&r.until_complete(&turn).await, "cancelled_by_operator");
    // The worker died by SIGKILL and could do nothing; the turn's group went anyway.
    for pid in running {
        assert_gone(pid.parse().unwrap()).await;
    }
    gw.stop().await;
}

#[tokio::test]
async fn exec_session_directory_keeps_conversation_state_across_turns_and_workers() {
    let dir = tempfile::tempdir().unwrap();
    let remember = "cat >> history; echo >> history; printf '%s\\n' \"$PWD\"; cat history";
    let gw = TestGateway::start(config(vec![(
        "remember",
        exec(dir.path(), &["sh", "-c", remember]),
    )]))
    .await;
    let (s, _, events) = gw.turn("remember", "one").await;
    let own = dir.path().join(&s.id);
    let here = std::fs::canonicalize(&own).unwrap();
    assert_eq!(
        assert_completed(&events),
        format!("{}\none\n", here.display())
    );
    let mut r = gw.open(&s, None).await;
    let turn = gw.post(&s, "two").await;
    let text = assert_completed(&r.until_complete(&turn).await);
    assert_eq!(text, format!("{}\none\ntwo\n", here.display()));

    // A new generation of the session's worker continues in the same directory.
    let w = gw.worker_rows(&s).await.remove(0);
    let path = format!("/api/v1/admin/workers/{}/kill", w.worker_id);
    let body = json!({ "generation": w.generation, "pid": w.pid });
    gw.client.post_json(&path, &body).await.unwrap();
    gw.wait_workers(&s, |r| r.iter().all(|w| w.state == WorkerState::Exited))
        .await;
    let turn = gw.post(&s, "three").await;
    let text = assert_completed(&r.until_complete(&turn).await);
    assert!(text.ends_with("one\ntwo\nthree\n"), "{text}");
    assert_eq!(gw.worker_rows(&s).await.len(), 2);

    // Another session starts afresh in its own directory.
    let (other, _, events) = gw.turn("remember", "elsewhere").await;
    assert!(assert_completed(&events).ends_with("\nelsewhere\n"));
    assert!(dir.path().join(&other.id).join("history").exists());
    gw.stop().await;
}
