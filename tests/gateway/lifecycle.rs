//! Failure-matrix rows 16, 18 and 19: session delete, graceful stop, crash and restart.

use futures::StreamExt;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use turnwatch::api::WorkerState;

use crate::harness::{
    BIN, Backend, Data, TestGateway, assert_failed, assert_gone, config, on_both, worker,
};

on_both!(
    row16_session_deleted_mid_turn,
    row18_graceful_stop_fails_in_flight_turns_before_exit,
    row19_gateway_killed_then_restarted,
);

async fn row16_session_deleted_mid_turn(b: Backend) {
    let gw = TestGateway::start_with(b, config(vec![("hang", worker(&["--mode", "hang"]))])).await;
    let s = gw.session("hang").await;
    let mut r = gw.open(&s, None).await;
    let turn = gw.post(&s, "forever").await;
    gw.wait_workers(&s, |r| r.iter().any(|w| w.state == WorkerState::Busy))
        .await;
    let resp = gw
        .http
        .delete(format!("{}/api/v1/agents/{}", gw.url, s.id))
        .bearer_auth(&s.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // The session was just used to post: a message after its deletion is refused all the same.
    let late = gw
        .http
        .post(format!("{}/api/v1/agents/{}/messages", gw.url, s.id))
        .bearer_auth(&s.token)
        .json(&serde_json::json!({ "content": "after delete" }))
        .send()
        .await
        .unwrap();
    assert_eq!(late.status(), 404);
    assert_failed(&r.until_complete(&turn).await, "session_deleted");
    let closed = r.next().await.expect("a closed event");
    assert_eq!(closed.event, "closed");
    assert!(r.next().await.is_none(), "the stream ends after closed");
    let rows = gw
        .wait_workers(&s, |r| r.iter().all(|w| w.state == WorkerState::Exited))
        .await;
    assert_eq!(rows[0].intentional, Some(true));
    let gone = gw
        .http
        .get(format!("{}/api/v1/agents/{}", gw.url, s.id))
        .bearer_auth(&s.token)
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 404);
    gw.stop().await;
}

async fn row18_graceful_stop_fails_in_flight_turns_before_exit(b: Backend) {
    let gw = TestGateway::start_with(b, config(vec![("hang", worker(&["--mode", "hang"]))])).await;
    let s = gw.session("hang").await;
    let mut r = gw.open(&s, None).await;
    let turn = gw.post(&s, "mid-flight").await;
    gw.wait_workers(&s, |r| r.iter().any(|w| w.state == WorkerState::Busy))
        .await;
    let stopping = tokio::spawn(gw.stop());
    let events = r.until_complete(&turn).await;
    assert_failed(&events, "gateway_shutdown");
    stopping.await.unwrap();
}

/// Row 19: the gateway process is `SIGKILL`ed mid-turn; on restart the turn fails, and a client
/// that resumes with its last event id receives the failure. The orphaned worker exits too.
async fn row19_gateway_killed_then_restarted(b: Backend) {
    let data = Data::new(b).await;
    let conf = data.dir.path().join("turnwatch.toml");
    let toml = format!(
        "[gateway]\ndefault_agent = \"slow\"\nreplica_lease = \"1s\"\n[agents.slow]\ncommand = [\"{BIN}\", \"worker\", \"--mode\", \"slow\", \"--deltas\", \"200\", \"--delay-ms\", \"100\"]\n"
    );
    std::fs::write(&conf, toml).unwrap();
    let mut child = tokio::process::Command::new(BIN)
        .args([
            "gateway",
            "--listen",
            "127.0.0.1:0",
            "--database",
            &data.url,
            "--config",
        ])
        .arg(&conf)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(crate::harness::GUARD, lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let url = first.rsplit(' ').next().unwrap().to_owned();
    let client = turnwatch::client::Client::new(&url, None);
    let session = client
        .create_session(&turnwatch::api::CreateSession::default())
        .await
        .unwrap();
    let mut stream = client
        .events(&session.agent_id, &session.token, None)
        .await
        .unwrap();
    let turn = client
        .post_message(
            &session.agent_id,
            &session.token,
            "a long, slow reply",
            None,
        )
        .await
        .unwrap()
        .turn_id;
    let mut last = None;
    while let Some(Ok(ev)) = stream.next().await {
        if ev.event == "output" {
            last = ev.id;
            break;
        }
    }
    let last = last.expect("some output before the kill");
    let pid = data.db().await.int("SELECT pid FROM workers", &[]).await;
    child.kill().await.unwrap();
    drop(stream);
    assert_gone(pid as u32).await; // the worker saw its stdin close and exited
    // Restarted after the dead run's lease ran out: its row still says live, and its sessions
    // must still take turns (they are the new run's to claim).
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let gw = TestGateway::start_on(config(vec![("slow", worker(&["--mode", "echo"]))]), data).await;
    let s = crate::harness::Session {
        id: session.agent_id.clone(),
        token: session.token.clone(),
    };
    let mut r = gw.open(&s, Some(last)).await;
    let events = r.until_complete(turn.as_str()).await;
    let err = assert_failed(&events, "gateway_restarted");
    assert_eq!(err["turnId"], turn.as_str());
    assert!(
        events.iter().filter_map(|e| e.id).all(|id| id > last),
        "only what came after the cursor"
    );
    r.assert_quiet(Duration::from_millis(200)).await;
    let next = gw.post(&s, "after the restart").await;
    assert_eq!(
        crate::harness::assert_completed(&r.until_complete(&next).await),
        "after the restart"
    );
    gw.stop().await;
}
