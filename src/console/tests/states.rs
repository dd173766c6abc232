//! State level: messages in, state and effects out.

use crate::api::WorkerState;
use crossterm::event::KeyCode;
use serde_json::json;

use super::{T0, code, ctrl, fixture, key, send, typed};
use crate::console::msg::{Effect, LinkMsg, Msg};
use crate::console::state::{Detail, Link, Mode, RowKey, View};
use crate::ids::{TurnId, WorkerId};

fn turn_rows(s: &crate::console::state::State) -> Vec<String> {
    s.rows
        .iter()
        .filter_map(|r| {
            if let RowKey::Turn(t) = r {
                Some(t.to_string())
            } else {
                None
            }
        })
        .collect()
}

#[test]
fn events_build_the_model() {
    let s = fixture();
    let crash = &s.model.workers[&WorkerId("w-crash".into())];
    assert_eq!(crash.state, WorkerState::Exited);
    assert_eq!(crash.last_exit.as_ref().unwrap().describe(), "137 SIGKILL");
    let hang = &s.model.workers[&WorkerId("w-hang".into())];
    assert_eq!(
        (
            hang.state.as_str(),
            hang.current_turn.as_ref().map(TurnId::as_str)
        ),
        ("busy", Some("t-hung"))
    );
    let echo = &s.model.workers[&WorkerId("w-echo".into())];
    assert_eq!(
        (echo.state.as_str(), echo.current_turn.is_none()),
        ("idle", true)
    );
    let t = &s.model.turns[&TurnId("t-crashed".into())];
    assert!(t.stranded && !t.is_open());
    assert_eq!(t.code, Some(crate::api::ErrorCode::WorkerCrashed));
    assert_eq!(
        s.model.stranded_count(),
        0,
        "the stranded turn was resolved"
    );
}

#[test]
fn turns_view_shows_in_flight_most_stuck_first() {
    let mut s = fixture();
    send(&mut s, [key('2')]);
    s.prepare();
    assert_eq!(s.view, View::Turns);
    assert_eq!(
        turn_rows(&s),
        ["t-hung", "t-waiting", "t-slow"],
        "longest without progress first"
    );
    send(&mut s, [key('a')]);
    s.prepare();
    assert_eq!(s.rows.len(), 5, "`a` adds the ended turns");
    send(&mut s, [key('3')]);
    s.prepare();
    assert_eq!(
        turn_rows(&s),
        ["t-crashed"],
        "stranded view keeps how a stranded turn was resolved"
    );
}

#[test]
fn navigation_keys_and_commands() {
    let mut s = fixture();
    send(&mut s, [code(KeyCode::Tab)]);
    assert_eq!(s.view, View::Turns);
    send(&mut s, [code(KeyCode::BackTab)]);
    assert_eq!(s.view, View::Workers);
    send(&mut s, [key(':')]);
    typed(&mut s, "stranded");
    send(&mut s, [code(KeyCode::Enter)]);
    assert_eq!(s.view, View::Stranded);
    send(&mut s, [key(':')]);
    typed(&mut s, "bogus");
    send(&mut s, [code(KeyCode::Enter)]);
    assert!(
        s.notice
            .as_ref()
            .is_some_and(|(m, err)| *err && m.contains(":bogus"))
    );
    send(&mut s, [key('?')]);
    assert!(matches!(s.mode, Mode::Help));
    send(&mut s, [code(KeyCode::Esc)]);
    assert!(matches!(s.mode, Mode::Normal));
    assert!(send(&mut s, [ctrl('d')]).is_empty(), "ctrl-d only pages");
    assert!(!s.quit);
    assert_eq!(send(&mut s, [key('q')]), [Effect::Quit]);
    assert!(s.quit);
}

#[test]
fn filter_inverts_and_rejects_bad_regex() {
    let mut s = fixture();
    send(&mut s, [key('/')]);
    typed(&mut s, "hang|slow");
    send(&mut s, [code(KeyCode::Enter)]);
    s.prepare();
    assert_eq!(s.rows.len(), 2);
    send(&mut s, [key('/'), code(KeyCode::Backspace)]);
    for _ in 0.."hang|slo".len() {
        send(&mut s, [code(KeyCode::Backspace)]);
    }
    typed(&mut s, "!exited");
    send(&mut s, [code(KeyCode::Enter)]);
    s.prepare();
    assert_eq!(s.rows.len(), 3, "! keeps rows that do not match");
    send(&mut s, [key('/')]);
    typed(&mut s, "(");
    send(&mut s, [code(KeyCode::Enter)]);
    assert!(
        s.notice
            .as_ref()
            .is_some_and(|(m, err)| *err && m.starts_with("bad filter"))
    );
    assert_eq!(
        s.filter.as_ref().unwrap().raw,
        "!exited",
        "a bad filter changes nothing"
    );
}

#[test]
fn sort_cycles_columns_and_reverses() {
    let mut s = fixture();
    send(&mut s, [key('2'), key('s')]);
    s.prepare();
    assert_eq!(s.sorts[1].column, Some(0));
    assert_eq!(
        turn_rows(&s),
        ["t-hung", "t-slow", "t-waiting"],
        "by TURN id"
    );
    send(&mut s, [key('S')]);
    s.prepare();
    assert_eq!(turn_rows(&s), ["t-waiting", "t-slow", "t-hung"]);
    for _ in 0..9 {
        send(&mut s, [key('s')]);
    }
    assert_eq!(s.sorts[1].column, None, "cycles back to the default order");
}

#[test]
fn freeze_holds_rows_while_data_arrives() {
    let mut s = fixture();
    send(&mut s, [key('2'), key('f')]);
    let frozen = s.frozen.clone().unwrap();
    assert_eq!(frozen.len(), 3);
    let d = json!({"turnId": "t-new", "agentId": "echo", "sessionId": "s-9", "messageId": "m", "timestamp": T0});
    send(
        &mut s,
        [Msg::Link(LinkMsg::Event(
            100,
            super::admin("turn.queued", d),
        ))],
    );
    s.prepare();
    assert_eq!(
        s.frozen.as_ref().unwrap(),
        &frozen,
        "the rows on screen do not move"
    );
    assert!(
        s.model.turns.contains_key(&TurnId("t-new".into())),
        "but the data arrived"
    );
    send(&mut s, [key('f')]);
    s.prepare();
    assert_eq!(s.rows.len(), 4);
}

#[test]
fn stale_reconnect_and_resume() {
    let mut s = fixture();
    assert!(!s.is_stale());
    send(
        &mut s,
        [
            Msg::Tick(T0 + 1_000),
            Msg::Link(LinkMsg::Lost("connection refused".into())),
        ],
    );
    assert!(
        s.is_stale() || s.conn.link == Link::Live,
        "still live until the link says otherwise"
    );
    send(&mut s, [Msg::Link(LinkMsg::Connecting(3))]);
    assert_eq!(s.conn.link, Link::Reconnecting(3));
    assert_eq!(s.conn.stale_since, Some(T0 + 1_000));
    assert_eq!(s.model.turns.len(), 5, "the last data is kept");
    send(&mut s, [Msg::Link(LinkMsg::Connected)]);
    assert!(!s.is_stale());
    assert!(
        s.model
            .events
            .back()
            .unwrap()
            .text
            .contains("resuming from event #23")
    );
    // An id at or below what we hold means the gateway's log restarted: a gap, then a snapshot.
    let effects = send(
        &mut s,
        [Msg::Link(LinkMsg::Event(
            5,
            super::admin("turn.progress", json!({"turnId": "t-hung", "timestamp": 0})),
        ))],
    );
    assert_eq!(effects, [Effect::Reconnect { fresh: true }]);
    assert_eq!(s.model.events.back().unwrap().kind, "gap");
    assert_eq!(
        send(&mut s, [ctrl('r')]),
        [Effect::Reconnect { fresh: false }]
    );
}

#[test]
fn events_view_follows_until_scrolled_up() {
    let mut s = fixture();
    send(&mut s, [key('4')]);
    s.prepare();
    let last = s.rows.len() - 1;
    assert_eq!(s.selected[3], last);
    send(&mut s, [key('k')]);
    assert!(!s.follow);
    let d = json!({"turnId": "t-slow", "timestamp": T0});
    send(
        &mut s,
        [Msg::Link(LinkMsg::Event(
            50,
            super::admin("turn.progress", d),
        ))],
    );
    s.prepare();
    assert_eq!(s.selected[3], last - 1, "paused: the selection stays");
    send(&mut s, [key('G')]);
    s.prepare();
    assert!(s.follow);
    assert_eq!(s.selected[3], s.rows.len() - 1);
}

#[test]
fn enter_loads_details() {
    let mut s = fixture();
    s.prepare();
    let effects = send(&mut s, [code(KeyCode::Enter)]);
    let [Effect::LoadWorker(id)] = effects.as_slice() else {
        panic!("{effects:?}")
    };
    assert!(matches!(s.mode, Mode::Detail(Detail::Loading(_))));
    send(
        &mut s,
        [Msg::WorkerDetail(Err(format!("gateway said no for {id}")))],
    );
    assert!(matches!(&s.mode, Mode::Detail(Detail::Failed(e)) if e.contains("said no")));
    send(&mut s, [code(KeyCode::Esc), key('2')]);
    s.prepare();
    assert_eq!(
        send(&mut s, [code(KeyCode::Enter)]),
        [Effect::LoadTurn(TurnId("t-hung".into()))]
    );
}

#[test]
fn readonly_and_exit_descriptions() {
    let s = crate::console::state::State::new("x".into(), true, T0);
    assert!(s.readonly);
    let exit = |code, signal: Option<&str>| crate::console::model::Exit {
        generation: 1,
        code,
        signal: signal.map(str::to_owned),
        intentional: false,
        reason: String::new(),
        at: 0,
    };
    assert_eq!(exit(Some(3), None).describe(), "3");
    assert_eq!(exit(None, Some("SIGTERM")).describe(), "143 SIGTERM");
    assert_eq!(exit(None, Some("SIGABRT")).describe(), "134 SIGABRT");
}

/// A tick redraws every second while something on screen counts seconds, and otherwise only
/// when the minute turns: an idle console attached to an idle gateway stays asleep.
#[test]
fn ticks_redraw_only_what_they_change() {
    let mut idle = crate::console::state::State::new("http://gw.test:7420".into(), false, T0);
    send(
        &mut idle,
        [
            Msg::Link(LinkMsg::Connecting(0)),
            Msg::Link(LinkMsg::Connected),
            Msg::Link(LinkMsg::Snapshot(0, Box::default())),
        ],
    );
    idle.prepare();
    idle.dirty = false;
    send(&mut idle, [Msg::Tick(T0 + 1_000)]);
    assert!(!idle.dirty, "nothing counts seconds: no redraw");
    send(&mut idle, [Msg::Resize]);
    assert!(idle.dirty, "a resized terminal is drawn again");
    idle.dirty = false;
    send(&mut idle, [Msg::Tick(T0 + 60_000)]);
    assert!(idle.dirty, "the minute turned: the clock changes");

    // Live workers show their age in seconds.
    let mut busy = fixture();
    busy.prepare();
    busy.dirty = false;
    send(&mut busy, [Msg::Tick(T0 + 1_000)]);
    assert!(busy.dirty);

    // So does a stream that is not live.
    send(&mut idle, [Msg::Link(LinkMsg::Lost("refused".into()))]);
    idle.prepare();
    idle.dirty = false;
    send(&mut idle, [Msg::Tick(T0 + 61_000)]);
    assert!(idle.dirty);
}

/// A resumed admin stream answered with a gap (the gateway's log restarted on other data): the
/// console says `gap`, forgets its cursor and replaces what it held with the snapshot.
#[test]
fn a_gap_is_shown_and_the_snapshot_replaces_the_model() {
    let mut s = fixture();
    let held = s.model.last_seq.unwrap();
    assert!(!s.model.workers.is_empty());
    let effects = send(
        &mut s,
        [
            Msg::Link(LinkMsg::Gap(2)),
            Msg::Link(LinkMsg::Snapshot(2, Box::default())),
        ],
    );
    assert!(
        effects.is_empty(),
        "the snapshot is the reload: {effects:?}"
    );
    let gap = s.model.events.iter().find(|e| e.kind == "gap").unwrap();
    assert!(gap.text.contains(&format!("#{held}")), "{}", gap.text);
    assert!(s.model.workers.is_empty() && s.model.turns.is_empty());
    assert_eq!(s.model.last_seq, Some(2));
    // The new log's events apply from there.
    send(
        &mut s,
        [Msg::Link(LinkMsg::Event(
            3,
            super::admin(
                "turn.queued",
                json!({"turnId": "t-new", "agentId": "echo", "sessionId": "s-1", "messageId": "m-1", "timestamp": T0}),
            ),
        ))],
    );
    assert!(s.model.turns.contains_key(&TurnId("t-new".into())));
}

#[test]
fn a_worker_found_gone_at_restart_is_not_called_crashed() {
    let s = fixture();
    let mut w = s.model.workers[&WorkerId("w-crash".into())].clone();
    let cells = crate::console::cells::worker(&w, T0, &s.cluster);
    assert!(cells.iter().any(|c| c.ends_with("crashed")), "{cells:?}");
    for reason in ["gone_at_recovery", "gateway_restarted"] {
        let exit = w.last_exit.as_mut().unwrap();
        exit.reason = reason.into();
        exit.signal = None;
        let cells = crate::console::cells::worker(&w, T0, &s.cluster);
        assert!(cells.iter().any(|c| c.ends_with(reason)), "{cells:?}");
        assert!(!cells.iter().any(|c| c.contains("crashed")), "{cells:?}");
    }
}
