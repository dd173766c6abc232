//! A store that refuses writes loses nothing: a real `SQLite` write lock held by a second
//! connection, and the store-driven sweeper that ends turns nobody else ends.

use std::time::Duration;

use crate::harness::{
    Backend, TestGateway, assert_completed, assert_failed, config, on_both, worker,
};

// The locked-file tests are SQLite's own fault, lost connections PostgreSQL's; the sweeper is
// every store's.
on_both!(the_sweeper_ends_a_stranded_turn_nobody_holds);

/// Holds the database's write lock from another connection until told to let go.
fn hold_write_lock(
    path: std::path::PathBuf,
) -> (std::sync::mpsc::Sender<()>, std::thread::JoinHandle<()>) {
    let (release, rx) = std::sync::mpsc::channel::<()>();
    let (locked_tx, locked_rx) = std::sync::mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        let conn = rusqlite::Connection::open(path).unwrap();
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        locked_tx.send(()).unwrap();
        let _ = rx.recv_timeout(Duration::from_secs(60));
        conn.execute_batch("ROLLBACK").unwrap();
    });
    locked_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    (release, holder)
}

/// Polls `/healthz` until it answers `status`, within `guard`.
async fn wait_health(gw: &TestGateway, status: u16, guard: Duration) {
    let deadline = tokio::time::Instant::now() + guard;
    loop {
        let got = gw
            .http
            .get(format!("{}/healthz", gw.url))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        if got == status {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "/healthz stayed {got}, expected {status}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The write lock is held longer than any single wait for it (the old code gave up after
/// 10 s and dropped the batch: a delta vanished and the turn still ended `completed`).
#[tokio::test]
async fn a_locked_store_loses_no_text_and_refuses_new_messages_at_once() {
    let gw = TestGateway::start(config(vec![(
        "slow",
        worker(&["--mode", "slow", "--delay-ms", "400"]),
    )]))
    .await;
    let s = gw.session("slow").await;
    let other = gw.session("slow").await;
    let mut r = gw.open(&s, None).await;
    let text = "slow one two three four five six";
    let turn = gw.post(&s, text).await;
    // The first delta has committed: now take the lock while the rest streams.
    let first = r.next().await.expect("first event");
    assert_eq!(first.event, "output");
    let path = gw.data.dir.path().join("gw.db");
    let (release, holder) = hold_write_lock(path);
    wait_health(&gw, 503, Duration::from_secs(10)).await;
    // New work is refused at once, with the code, and nothing is created.
    let resp = gw
        .http
        .post(format!("{}/api/v1/agents/{}/messages", gw.url, other.id))
        .bearer_auth(&other.token)
        .json(&serde_json::json!({"content": "are you there"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 503);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "store_unavailable", "{body}");
    let resp = gw
        .http
        .post(format!("{}/api/v1/agents", gw.url))
        .json(&serde_json::json!({"agentId": "slow"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 503);
    // Longer than the old 10 s busy wait: every write queued meanwhile must still land.
    tokio::time::sleep(Duration::from_secs(11)).await;
    release.send(()).unwrap();
    holder.join().unwrap();
    let mut events = vec![first];
    events.extend(r.until_complete(&turn).await);
    let streamed: String = events
        .iter()
        .filter(|e| e.event == "output")
        .map(|e| e.data["content"].as_str().unwrap())
        .collect();
    assert_eq!(streamed, text, "no delta lost");
    assert_eq!(assert_completed(&events), text);
    let ids: Vec<i64> = events.iter().filter_map(|e| e.id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids increase: {ids:?}");
    wait_health(&gw, 200, Duration::from_secs(10)).await;
    let db = gw.db().await;
    let open = db
        .int("SELECT COUNT(*) FROM turns WHERE ended_at IS NULL", &[])
        .await;
    assert_eq!(open, 0, "no turn left open");
    let turns = db.int("SELECT COUNT(*) FROM turns", &[]).await;
    assert_eq!(turns, 1, "the refused message created no turn");
    gw.stop().await;
}

/// A turn the store holds open past its deadline with no actor to end it (written by a
/// gateway that is gone) is ended by the sweeper, with its terminal events on the stream.
async fn the_sweeper_ends_a_stranded_turn_nobody_holds(b: Backend) {
    let gw = TestGateway::start_with(b, config(vec![("echo", worker(&["--mode", "echo"]))])).await;
    let s = gw.session("echo").await;
    let db = gw.db().await;
    let past = turnwatch::clock::now_ms() - 60_000;
    let deadline = past + 1000;
    let sql = format!(
        "INSERT INTO turns (id, session_id, agent_id, message_id, content, state, created_at, \
         dispatched_at, last_progress_at, deadline_at) \
         VALUES ('t-orphan', $1, 'echo', 'm-orphan', 'hello', 'dispatched', {past}, {past}, \
         {past}, {deadline})"
    );
    db.execute(&sql, &[&s.id]).await;
    let mut r = gw.open(&s, Some(0)).await;
    let events = tokio::time::timeout(Duration::from_secs(20), r.until_complete("t-orphan"))
        .await
        .expect("the sweeper ends the turn");
    let err = assert_failed(&events, "turn_deadline_exceeded");
    assert!(err["error"].as_str().unwrap().contains("sweeper"), "{err}");
    assert_eq!(gw.turn_state("t-orphan").await, "failed");
    gw.stop().await;
}

/// A client that hangs up while its message waits on a slow store: the turn is still accepted
/// whole (recorded and handed to a worker) and ends; before, it stayed `queued` for good.
#[tokio::test]
async fn a_message_whose_client_hangs_up_mid_accept_still_ends() {
    let gw = TestGateway::start(config(vec![("echo", worker(&["--mode", "echo"]))])).await;
    let s = gw.session("echo").await;
    let (release, holder) = hold_write_lock(gw.data.dir.path().join("gw.db"));
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let r = impatient
        .post(format!("{}/api/v1/agents/{}/messages", gw.url, s.id))
        .bearer_auth(&s.token)
        .json(&serde_json::json!({"content": "anyone there", "messageId": "m-impatient"}))
        .send()
        .await;
    assert!(r.is_err(), "the client gave up before the store answered");
    tokio::time::sleep(Duration::from_secs(2)).await;
    release.send(()).unwrap();
    holder.join().unwrap();
    let db = gw.db().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let sql = "SELECT state FROM turns WHERE message_id = 'm-impatient'";
        let state = db.text(sql, &[]).await;
        if state.as_deref() == Some("completed") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the turn never ended: {state:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    gw.stop().await;
}

/// `PostgreSQL`'s outage: every connection of the gateway is ended by the server, again and
/// again, while a turn streams. Each write in flight is retried on a new connection: no delta
/// lost or doubled, ids in order, one `complete`, and the admin log agrees with the store.
#[tokio::test]
async fn lost_postgres_connections_lose_no_text_and_double_nothing() {
    if crate::harness::database_url().is_none() {
        return;
    }
    let gw = TestGateway::start_with(
        Backend::Postgres,
        config(vec![(
            "slow",
            worker(&["--mode", "slow", "--delay-ms", "150"]),
        )]),
    )
    .await;
    let s = gw.session("slow").await;
    let mut r = gw.open(&s, None).await;
    let text = "slow one two three four five six seven eight nine ten";
    let turn = gw.post(&s, text).await;
    let first = r.next().await.expect("first event");
    assert_eq!(first.event, "output");
    let ended = gw.data.terminate_connections(Duration::from_secs(1)).await;
    assert!(ended > 0, "the gateway had connections to end");
    let mut events = vec![first];
    events.extend(r.until_complete(&turn).await);
    let streamed: String = events
        .iter()
        .filter(|e| e.event == "output")
        .map(|e| e.data["content"].as_str().unwrap())
        .collect();
    assert_eq!(streamed, text, "no delta lost or doubled");
    assert_eq!(assert_completed(&events), text);
    let ids: Vec<i64> = events.iter().filter_map(|e| e.id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids increase: {ids:?}");
    let db = gw.db().await;
    let sql = "SELECT COUNT(*) FROM events WHERE turn_id = $1 AND kind = 'complete'";
    assert_eq!(db.int(sql, &[&turn]).await, 1, "one complete stored");
    // A new message after the outage is accepted and runs.
    let next = gw.post(&s, "slow after").await;
    assert_completed(&r.until_complete(&next).await);
    gw.stop().await;
}
