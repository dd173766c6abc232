//! Resuming streams: `connected` carries the cursor a client resumes from (issue 11 item 9),
//! a cursor ahead of the gateway's log is a gap (item 10), a deleted session's stream can be
//! finished (item 4).

use futures::StreamExt;
use serde_json::Value;
use turnwatch::api::TurnState;
use turnwatch::client::Client;
use turnwatch::console::driver::Driver;
use turnwatch::console::msg::Msg;
use turnwatch::console::state::State;
use turnwatch::gateway;

use crate::harness::{Backend, Data, GUARD, TestGateway, assert_failed, config, on_both, worker};

on_both!(
    session_cursor_ahead_of_the_log_is_a_gap,
    connected_carries_the_cursor_to_resume_from,
    admin_cursor_ahead_of_the_log_is_a_gap,
    admin_cursor_below_what_retention_kept_is_a_gap,
    deleted_session_stream_can_be_finished,
);

/// Item 10: a cursor beyond the end of the session's log (a client back from a gateway that
/// ran on other data) is a gap the client sees, then it gets what the log has.
async fn session_cursor_ahead_of_the_log_is_a_gap(b: Backend) {
    let gw = TestGateway::start_with(b, config(vec![("echo", worker(&["--mode", "echo"]))])).await;
    let (s, first, _) = gw.turn("echo", "already in the log").await;
    let mut r = gw.open(&s, Some(1000)).await;
    let connected = r.connected.clone().unwrap();
    assert_eq!(connected.data["gap"], true, "{connected:?}");
    assert!(connected.data["resumedFrom"].is_null(), "{connected:?}");
    assert_eq!(connected.data["lastEventId"], 0, "{connected:?}");
    let replayed = r.until_complete(&first).await;
    assert_eq!(replayed[0].id, Some(1), "the log from its start");
    let turn = gw.post(&s, "after the gap").await;
    let events = r.until_complete(&turn).await;
    assert_eq!(crate::harness::assert_completed(&events), "after the gap");
    gw.stop().await;
}

/// Item 9: `connected` says where the connection stands, so a client that receives no event
/// before its stream drops still resumes without missing anything.
async fn connected_carries_the_cursor_to_resume_from(b: Backend) {
    let gw = TestGateway::start_with(b, config(vec![("echo", worker(&["--mode", "echo"]))])).await;
    let (s, _, done) = gw.turn("echo", "one").await;
    let high = done.last().unwrap().id.unwrap();
    let r = gw.open(&s, None).await;
    let at = r.connected.as_ref().unwrap().data["lastEventId"].as_i64();
    assert_eq!(at, Some(high));
    drop(r);
    let turn = gw.post(&s, "while nobody listened").await;
    let mut r = gw.open(&s, at).await;
    assert_eq!(r.connected.as_ref().unwrap().data["resumedFrom"], high);
    crate::harness::assert_completed(&r.until_complete(&turn).await);
    gw.stop().await;
}

/// Item 10: the admin stream answers a cursor beyond its log with a snapshot marked as a gap.
async fn admin_cursor_ahead_of_the_log_is_a_gap(b: Backend) {
    let gw = TestGateway::start_with(b, config(vec![("echo", worker(&["--mode", "echo"]))])).await;
    let mut stream = gw.client.admin_events(Some(1000)).await.unwrap();
    let first = loop {
        let ev = tokio::time::timeout(GUARD, stream.next())
            .await
            .expect("the admin stream said nothing")
            .unwrap()
            .unwrap();
        if ev.event != "ping" {
            break ev;
        }
    };
    assert_eq!(first.event, "snapshot", "{first:?}");
    assert_eq!(first.data["gap"], true, "{first:?}");
    assert!(first.data["resumedFrom"].is_null(), "{first:?}");
    let at = first.id.unwrap();
    assert!(at < 1000);
    // And the tail follows the new log.
    let (_, turn, _) = gw.turn("echo", "seen").await;
    loop {
        let ev = tokio::time::timeout(GUARD, stream.next())
            .await
            .expect("the admin stream went silent")
            .unwrap()
            .unwrap();
        if ev.event == "ping" {
            continue;
        }
        assert!(ev.id.unwrap() > at, "{ev:?}");
        if ev.event == "turn.completed" && ev.data["turnId"] == turn.as_str() {
            break;
        }
    }
    gw.stop().await;
}

/// Item 10, the other end: a cursor below what history retention kept of the admin log is a
/// gap too, and the console is given a snapshot rather than silently missing the pruned events.
async fn admin_cursor_below_what_retention_kept_is_a_gap(b: Backend) {
    let mut c = config(vec![("echo", worker(&["--mode", "echo"]))]);
    c.gateway.event_retention = std::time::Duration::from_millis(100);
    c.gateway.history_retention = std::time::Duration::from_millis(100);
    let gw = TestGateway::start_with(b, c).await;
    gw.turn("echo", "soon forgotten").await;
    // The pruner runs every second at this retention; wait until the log's start is gone.
    let deadline = tokio::time::Instant::now() + GUARD;
    loop {
        let db = gw.db().await;
        let first = db.maybe_int("SELECT MIN(seq) FROM admin_events", &[]).await;
        if first.is_none_or(|f| f > 2) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "admin events were never pruned"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // A new turn: the log holds its events, from well past the cursor.
    gw.turn("echo", "kept").await;
    let mut stream = gw.client.admin_events(Some(1)).await.unwrap();
    let first = loop {
        let ev = tokio::time::timeout(GUARD, stream.next())
            .await
            .expect("the admin stream said nothing")
            .unwrap()
            .unwrap();
        if ev.event != "ping" {
            break ev;
        }
    };
    assert_eq!(first.event, "snapshot", "{first:?}");
    assert_eq!(first.data["gap"], true, "{first:?}");
    assert!(
        first.id.unwrap() > 2,
        "the log's end, not its pruned start: {first:?}"
    );
    gw.stop().await;
}

/// Feeds the console its messages until `done` holds (guarded).
async fn pump(
    driver: &mut Driver,
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<Msg>,
    done: impl Fn(&State) -> bool,
) {
    let deadline = tokio::time::Instant::now() + GUARD;
    while !done(&driver.state) {
        let msg = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .expect("the console never saw it")
            .unwrap();
        driver.handle(msg);
    }
}

/// Item 10: the console, back on a gateway restarted on a fresh database at the same address,
/// says `gap`, reloads a snapshot and follows the new log.
#[tokio::test]
async fn console_reloads_when_the_gateway_log_restarts_under_it() {
    let agents = || config(vec![("echo", worker(&["--mode", "echo"]))]);
    let gw = TestGateway::start(agents()).await;
    let (mut driver, mut rx) = Driver::start(
        Client::new(&gw.url, None),
        gw.url.clone(),
        false,
        turnwatch::clock::now_ms(),
    );
    for text in ["one", "two", "three"] {
        let (_, turn, _) = gw.turn("echo", text).await;
        pump(&mut driver, &mut rx, |s| {
            s.model
                .turns
                .values()
                .any(|t| t.id.as_str() == turn && t.state == TurnState::Completed)
        })
        .await;
    }
    let held = driver.state.model.last_seq.unwrap();
    let addr = gw.gw.as_ref().unwrap().addr;
    gw.stop().await;
    let data = Data::new(Backend::Sqlite).await;
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let fresh = gateway::start(agents(), &data.url, listener).await.unwrap();
    let gw = TestGateway {
        url: fresh.url(),
        client: Client::new(&fresh.url(), None),
        gw: Some(fresh),
        http: reqwest::Client::new(),
        data,
    };
    pump(&mut driver, &mut rx, |s| {
        s.model.events.iter().any(|e| e.kind == "gap") && !s.is_stale()
    })
    .await;
    let (_, turn, _) = gw.turn("echo", "after the restart").await;
    pump(&mut driver, &mut rx, |s| {
        s.model
            .turns
            .values()
            .any(|t| t.id.as_str() == turn && t.state == TurnState::Completed)
    })
    .await;
    let gaps: Vec<&str> = driver
        .state
        .model
        .events
        .iter()
        .filter(|e| e.kind == "gap")
        .map(|e| e.text.as_str())
        .collect();
    assert_eq!(gaps.len(), 1, "{gaps:?}");
    // (The stop itself logged a few more events after `held`.)
    let said: i64 = gaps[0]
        .split("we held up to event #")
        .nth(1)
        .and_then(|t| {
            t.trim_end_matches(|c: char| !c.is_ascii_digit())
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("{gaps:?}"));
    assert!(said >= held, "{gaps:?}");
    assert!(
        driver.state.model.last_seq.unwrap() < held,
        "the console follows the new log"
    );
    assert!(
        !driver.state.model.turns.keys().any(|t| t.as_str() != turn),
        "nothing of the old log is left: {:?}",
        driver.state.model.turns.keys().collect::<Vec<_>>()
    );
    gw.stop().await;
}

/// Item 4: a client whose stream dropped before its session was deleted finishes the stream
/// with its cursor (the turn's failure and `closed`); without a cursor it is told 410.
async fn deleted_session_stream_can_be_finished(b: Backend) {
    let gw = TestGateway::start_with(
        b,
        config(vec![(
            "slow",
            worker(&["--mode", "slow", "--deltas", "200", "--delay-ms", "100"]),
        )]),
    )
    .await;
    let s = gw.session("slow").await;
    let mut r = gw.open(&s, None).await;
    let turn = gw.post(&s, "a long reply, cut short").await;
    let first = r.next().await.unwrap();
    assert_eq!(first.event, "output", "{first:?}");
    let cursor = first.id.unwrap();
    drop(r);
    let resp = gw
        .http
        .delete(format!("{}/api/v1/agents/{}", gw.url, s.id))
        .bearer_auth(&s.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    let mut r = gw.open(&s, Some(cursor)).await;
    assert_eq!(r.connected.as_ref().unwrap().data["resumedFrom"], cursor);
    let events = r.until_complete(&turn).await;
    assert_failed(&events, "session_deleted");
    assert!(events.iter().all(|e| e.id.unwrap() > cursor));
    let closed = r.next().await.expect("a closed event");
    assert_eq!(closed.event, "closed");
    assert!(r.next().await.is_none(), "the stream ends after closed");

    let code = |resp: reqwest::Response| async move {
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap();
        (status, body["code"].as_str().unwrap_or_default().to_owned())
    };
    let events_url = format!("{}/api/v1/agents/{}/events", gw.url, s.id);
    let without = gw
        .http
        .get(&events_url)
        .bearer_auth(&s.token)
        .send()
        .await
        .unwrap();
    assert_eq!(code(without).await, (410, "session_deleted".into()));
    // A client that already read `closed` has the whole log: there is nothing to wait for.
    let after_closed = gw
        .http
        .get(&events_url)
        .bearer_auth(&s.token)
        .header("Last-Event-ID", closed.id.unwrap().to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(code(after_closed).await, (410, "session_deleted".into()));
    // The session's token is still required.
    let stranger = gw
        .http
        .get(&events_url)
        .bearer_auth("tw_wrong")
        .header("Last-Event-ID", cursor.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(stranger.status(), 403);
    gw.stop().await;
}
