//! The console's own loop (state, link, effects; no terminal) against a real gateway.

use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;
use turnwatch::api::{ErrorCode, TurnState, WorkerState};
use turnwatch::client::Client;
use turnwatch::console::driver::Driver;
use turnwatch::console::msg::Msg;
use turnwatch::console::state::{Detail, Mode, RowKey, State, View};

use crate::harness::{GUARD, TestGateway, config, worker};

/// Feeds the console its messages until `done` holds (guarded).
async fn pump(driver: &mut Driver, rx: &mut UnboundedReceiver<Msg>, done: impl Fn(&State) -> bool) {
    let deadline = tokio::time::Instant::now() + GUARD;
    while !done(&driver.state) {
        let msg = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .expect("the console never saw it")
            .unwrap();
        driver.handle(msg);
    }
}

fn exits(s: &State) -> Vec<String> {
    let mut v: Vec<String> = s
        .model
        .workers
        .values()
        .filter_map(|w| {
            w.last_exit
                .as_ref()
                .map(turnwatch::console::model::Exit::describe)
        })
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn console_shows_real_exit_codes_and_stranded_turns() {
    let mut hang = worker(&["--mode", "hang"]);
    hang.stall_timeout = Duration::from_millis(300);
    let gw = TestGateway::start(config(vec![
        (
            "exit3",
            worker(&["--mode", "crash-after", "--exit-code", "3"]),
        ),
        (
            "killed",
            worker(&["--mode", "crash-after", "--signal", "KILL"]),
        ),
        ("hang", hang),
    ]))
    .await;
    let (mut driver, mut rx) = Driver::start(
        Client::new(&gw.url, None),
        gw.url.clone(),
        false,
        turnwatch::clock::now_ms(),
    );
    for agent in ["exit3", "killed", "hang"] {
        gw.turn(agent, "go").await;
    }
    pump(&mut driver, &mut rx, |s| {
        exits(s).len() == 3
            && s.model
                .turns
                .values()
                .filter(|t| t.stranded && t.code.is_some())
                .count()
                == 3
    })
    .await;
    // The hung worker ignores `shutdown`, so the stall stop took SIGTERM.
    assert_eq!(exits(&driver.state), ["137 SIGKILL", "143 SIGTERM", "3"]);
    let s = &mut driver.state;
    s.view = View::Stranded;
    s.rows_dirty = true;
    s.prepare();
    let mut codes: Vec<String> = s.rows.iter().map(|r| s.cells(r)[1].clone()).collect();
    codes.sort();
    assert_eq!(
        codes,
        ["✗ turn_stalled", "✗ worker_crashed", "✗ worker_crashed"]
    );

    // Drill down: the real worker's stderr comes back from the gateway.
    s.view = View::Workers;
    s.rows_dirty = true;
    s.prepare();
    let i = s
        .rows
        .iter()
        .position(|r| matches!(r, RowKey::Worker(w) if s.model.workers[w].agent == "exit3"))
        .unwrap();
    s.selected[0] = i;
    driver.handle(Msg::Key(crossterm::event::KeyEvent::from(
        crossterm::event::KeyCode::Enter,
    )));
    pump(&mut driver, &mut rx, |s| {
        matches!(s.mode, Mode::Detail(Detail::Worker(_)))
    })
    .await;
    let Mode::Detail(Detail::Worker(d)) = &driver.state.mode else {
        unreachable!()
    };
    assert_eq!(d.worker.exit_code, Some(3));
    assert!(
        d.stderr_tail
            .iter()
            .any(|l| l.contains("exiting with code 3")),
        "{:?}",
        d.stderr_tail
    );
    gw.stop().await;
}

#[tokio::test]
async fn console_marks_stale_then_resumes_after_a_gateway_restart() {
    let agents = || config(vec![("echo", worker(&["--mode", "echo"]))]);
    let gw = TestGateway::start(agents()).await;
    let (mut driver, mut rx) = Driver::start(
        Client::new(&gw.url, None),
        gw.url.clone(),
        false,
        turnwatch::clock::now_ms(),
    );
    let (_, first, _) = gw.turn("echo", "before").await;
    pump(&mut driver, &mut rx, |s| {
        s.model
            .turns
            .values()
            .any(|t| t.id.as_str() == first && t.state == TurnState::Completed)
    })
    .await;
    let gw = gw.restart_in_place(agents()).await;
    pump(&mut driver, &mut rx, State::is_stale).await;
    let seen = driver.state.model.last_seq.unwrap();
    assert!(
        driver
            .state
            .model
            .turns
            .values()
            .any(|t| t.id.as_str() == first),
        "the last data is kept while stale"
    );
    let (_, second, _) = gw.turn("echo", "after").await;
    pump(&mut driver, &mut rx, |s| {
        !s.is_stale()
            && s.model
                .turns
                .values()
                .any(|t| t.id.as_str() == second && t.state == TurnState::Completed)
    })
    .await;
    let notes: Vec<&str> = driver
        .state
        .model
        .events
        .iter()
        .filter(|e| e.seq.is_none())
        .map(|e| e.text.as_str())
        .collect();
    assert!(
        notes
            .iter()
            .any(|n| n.contains(&format!("resuming from event #{seen}"))),
        "{notes:?}"
    );
    assert!(
        !driver.state.model.events.iter().any(|e| e.kind == "gap"),
        "same log: no gap"
    );
    let seqs: Vec<i64> = driver
        .state
        .model
        .events
        .iter()
        .filter_map(|e| e.seq)
        .collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "every admin event once, in order: {seqs:?}"
    );
    gw.stop().await;
}

fn press(driver: &mut Driver, keys: &str) {
    for c in keys.chars() {
        driver.handle(Msg::Key(crossterm::event::KeyEvent::from(
            crossterm::event::KeyCode::Char(c),
        )));
    }
}

fn press_code(driver: &mut Driver, code: crossterm::event::KeyCode) {
    driver.handle(Msg::Key(crossterm::event::KeyEvent::from(code)));
}

/// Chats with `agent` from the Chat view; returns the reply's index.
fn chat(driver: &mut Driver, agent: &str, text: &str) -> usize {
    use crossterm::event::KeyCode;
    driver.state.view = View::Chat;
    while driver.state.chat.agent_name() != Some(agent) {
        press_code(driver, KeyCode::Right);
    }
    press(driver, text);
    press_code(driver, KeyCode::Enter);
    driver.state.chat.replies.len() - 1
}

#[tokio::test]
async fn console_chats_kills_and_cancels_against_a_real_gateway() {
    use crossterm::event::KeyCode;
    use turnwatch::console::chat::ReplyEnd;
    let gw = TestGateway::start(config(vec![
        ("echo", worker(&["--mode", "echo"])),
        (
            "crash",
            worker(&["--mode", "crash-after", "--exit-code", "5"]),
        ),
        ("hang", worker(&["--mode", "hang"])),
    ]))
    .await;
    let (mut driver, mut rx) = Driver::start(
        Client::new(&gw.url, None),
        gw.url.clone(),
        false,
        turnwatch::clock::now_ms(),
    );
    pump(&mut driver, &mut rx, |s| s.chat.agents.len() == 3).await;

    let i = chat(&mut driver, "echo", "hello console");
    pump(&mut driver, &mut rx, |s| s.chat.replies[i].end.is_some()).await;
    let r = &driver.state.chat.replies[i];
    assert_eq!(
        (r.text.as_str(), r.end.clone()),
        ("hello console", Some(ReplyEnd::Completed))
    );
    let turn = r.turn.clone().unwrap();
    pump(&mut driver, &mut rx, |s| {
        s.model
            .turns
            .get(&turn)
            .is_some_and(|t| t.state == TurnState::Completed)
    })
    .await;

    let i = chat(&mut driver, "crash", "boom");
    pump(&mut driver, &mut rx, |s| s.chat.replies[i].end.is_some()).await;
    assert!(
        matches!(&driver.state.chat.replies[i].end, Some(ReplyEnd::Failed { code, .. }) if *code == ErrorCode::WorkerCrashed)
    );

    // Kill the busy worker behind a hanging chat turn, from the Workers view.
    let i = chat(&mut driver, "hang", "wait for me");
    pump(&mut driver, &mut rx, |s| {
        s.model
            .workers
            .values()
            .any(|w| w.agent == "hang" && w.state == WorkerState::Busy)
    })
    .await;
    driver.state.view = View::Workers;
    driver.state.rows_dirty = true;
    driver.state.prepare();
    let row = driver
        .state
        .rows
        .iter()
        .position(
            |r| matches!(r, RowKey::Worker(w) if driver.state.model.workers[w].agent == "hang"),
        )
        .unwrap();
    driver.state.selected[0] = row;
    press(&mut driver, "x");
    press_code(&mut driver, KeyCode::Tab);
    press_code(&mut driver, KeyCode::Enter);
    pump(&mut driver, &mut rx, |s| s.pending.is_none()).await;
    let (notice, error) = driver.state.notice.clone().unwrap();
    assert!(!error && notice.starts_with("killed w-"), "{notice}");
    pump(&mut driver, &mut rx, |s| s.chat.replies[i].end.is_some()).await;
    assert!(
        matches!(&driver.state.chat.replies[i].end, Some(ReplyEnd::Failed { code, .. }) if *code == ErrorCode::CancelledByOperator)
    );
    let hang = driver
        .state
        .model
        .workers
        .values()
        .find(|w| w.agent == "hang")
        .unwrap();
    assert!(
        hang.last_exit
            .as_ref()
            .is_some_and(|e| e.intentional && e.describe() == "137 SIGKILL")
    );

    // Cancel a hanging turn from the Turns view.
    let i = chat(&mut driver, "hang", "and again");
    pump(&mut driver, &mut rx, |s| {
        s.chat.replies[i].turn.as_ref().is_some_and(|t| {
            s.model
                .turns
                .get(t)
                .is_some_and(|t| t.state == TurnState::Dispatched)
        })
    })
    .await;
    driver.state.view = View::Turns;
    driver.state.rows_dirty = true;
    driver.state.prepare();
    press(&mut driver, "c");
    press_code(&mut driver, KeyCode::Tab);
    press_code(&mut driver, KeyCode::Enter);
    pump(&mut driver, &mut rx, |s| s.pending.is_none()).await;
    let (notice, error) = driver.state.notice.clone().unwrap();
    assert!(!error && notice.starts_with("cancelled t-"), "{notice}");
    pump(&mut driver, &mut rx, |s| s.chat.replies[i].end.is_some()).await;
    assert!(
        matches!(&driver.state.chat.replies[i].end, Some(ReplyEnd::Failed { code, .. }) if *code == ErrorCode::CancelledByOperator)
    );
    gw.stop().await;
}

/// Feeds the console its messages and a tick at least every 100 ms (the replicas poll goes on
/// ticks) until `done` holds (guarded).
async fn pump_ticking(
    driver: &mut Driver,
    rx: &mut UnboundedReceiver<Msg>,
    done: impl Fn(&State) -> bool,
) {
    let deadline = tokio::time::Instant::now() + GUARD;
    loop {
        driver.handle(Msg::Tick(turnwatch::clock::now_ms()));
        if done(&driver.state) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the console never saw it"
        );
        if let Ok(Some(msg)) = tokio::time::timeout(Duration::from_millis(100), rx.recv()).await {
            driver.handle(msg);
        }
    }
}

#[tokio::test]
async fn console_lists_the_replicas_and_places_a_new_worker_on_its_own() {
    let gw = TestGateway::start(config(vec![("hang", worker(&["--mode", "hang"]))])).await;
    let (mut driver, mut rx) = Driver::start(
        Client::new(&gw.url, None),
        gw.url.clone(),
        false,
        turnwatch::clock::now_ms(),
    );
    pump_ticking(&mut driver, &mut rx, |s| {
        s.model.last_seq.is_some() && s.cluster.as_of.is_some()
    })
    .await;
    let listed = gw.client.replicas().await.unwrap().items;
    let me = &listed[0];
    assert_eq!(driver.state.cluster.replicas.len(), 1);
    assert_eq!(driver.state.cluster.replicas[0].replica_id, me.replica_id);
    // Spawned after the snapshot: `worker.spawned` does not name its replica, the next poll does.
    let s = gw.session("hang").await;
    gw.post(&s, "held").await;
    pump_ticking(&mut driver, &mut rx, |s| {
        s.model
            .workers
            .values()
            .any(|w| w.replica.as_ref() == Some(&me.replica_id))
    })
    .await;
    let s = &mut driver.state;
    s.view = View::Workers;
    s.rows_dirty = true;
    s.prepare();
    assert_eq!(s.cells(&s.rows[0])[5], me.name, "the REPLICA column");
    s.view = View::Replicas;
    s.rows_dirty = true;
    s.prepare();
    let row = s.cells(&s.rows[0]);
    assert_eq!(
        (row[0].as_str(), row[5].as_str()),
        (me.name.as_str(), "● live")
    );
    assert_eq!(s.counts.replicas.map(|c| (c.live, c.lost)), Some((1, 0)));
    gw.stop().await;
}

/// Issue 17 item 1, wired to real processes: the console's reading of a turn's worker comes
/// from the gateway's `/proc` samples on the admin stream: a worker the test SIGSTOPs reads
/// as stopped, a busy-looping one as spinning.
#[tokio::test]
async fn the_console_reads_a_stopped_and_a_spinning_worker_as_such() {
    use turnwatch::api::admin::ProcessState;
    use turnwatch::console::reading::{Signs, reading};
    let gw = TestGateway::start(config(vec![
        ("hang", worker(&["--mode", "hang"])),
        ("spin", worker(&["--mode", "spin"])),
    ]))
    .await;
    let (mut driver, mut rx) = Driver::start(
        Client::new(&gw.url, None),
        gw.url.clone(),
        false,
        turnwatch::clock::now_ms(),
    );
    pump_ticking(&mut driver, &mut rx, |s| s.model.last_seq.is_some()).await;
    for agent in ["hang", "spin"] {
        let s = gw.session(agent).await;
        gw.post(&s, "go").await;
    }
    let pid_of = |s: &State, agent: &str| {
        s.model
            .workers
            .values()
            .find(|w| w.agent == agent && w.state == WorkerState::Busy)
            .map(|w| w.pid)
    };
    pump_ticking(&mut driver, &mut rx, |s| {
        pid_of(s, "hang").is_some() && pid_of(s, "spin").is_some()
    })
    .await;
    let hang = pid_of(&driver.state, "hang").unwrap();
    let stopped = nix::unistd::Pid::from_raw(i32::try_from(hang).unwrap());
    nix::sys::signal::kill(stopped, nix::sys::signal::Signal::SIGSTOP).unwrap();
    let read = |s: &State, agent: &str| {
        let w = s.model.workers.values().find(|w| w.agent == agent)?;
        let t = s.model.turns.get(w.current_turn.as_ref()?)?;
        let p = w.process.as_ref()?;
        Some((
            p.state,
            reading(Signs {
                process: Some(p),
                heartbeat_at: w.last_heartbeat_at,
                output_at: t.last_progress_at,
                now: s.now,
            }),
        ))
    };
    // Spinning needs 5 s without output before it is called so (a busy loop that prints is
    // working, not spinning).
    pump_ticking(&mut driver, &mut rx, |s| {
        read(s, "hang").is_some_and(|(st, _)| st == ProcessState::Stopped)
            && read(s, "spin").is_some_and(|(_, r)| r.starts_with("spinning"))
    })
    .await;
    let (_, stopped_reading) = read(&driver.state, "hang").unwrap();
    assert!(
        stopped_reading.starts_with("stopped (SIGSTOP"),
        "{stopped_reading}"
    );
    let (state, spin_reading) = read(&driver.state, "spin").unwrap();
    assert_eq!(state, ProcessState::Running, "{spin_reading}");
    nix::sys::signal::kill(stopped, nix::sys::signal::Signal::SIGCONT).unwrap();
    gw.stop().await;
}
