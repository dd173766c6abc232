//! Whole-screen level: the header as the screen shows it, every view and overlay as a
//! snapshot, and a frame of a 100,000-turn model.

use serde_json::json;

use super::{T0, fixture, key, screen, send};
use crate::console::msg::{LinkMsg, Msg};
use crate::console::state::State;

#[test]
fn header_widget_says_where_what_and_how_fresh() {
    let mut s = fixture();
    let text = screen(&mut s, 120, 8);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "turnwatch http://gw.test:7420  admin stream ● live  last event <1m ago  08:00 UTC  replicas: 2 live"
    );
    assert_eq!(
        lines[1],
        "stranded 0  stuck 1   turns: in flight 3, failed 1 since the console started   workers: busy 2, idle 1, exited 1"
    );
    send(
        &mut s,
        [
            Msg::Link(LinkMsg::Lost("connection refused".into())),
            Msg::Link(LinkMsg::Connecting(2)),
            Msg::Tick(T0 + 12_000),
        ],
    );
    let text = screen(&mut s, 140, 8);
    assert!(
        text.contains("↻ reconnecting 2") && text.contains("connection refused"),
        "{text}"
    );
    assert!(text.contains("[STALE 12s]"), "{text}");
}

#[test]
fn every_view_snapshot() {
    for (k, name) in [
        ('1', "workers"),
        ('2', "turns"),
        ('3', "stranded"),
        ('4', "events"),
    ] {
        let mut s = fixture();
        send(&mut s, [key(k)]);
        insta::assert_snapshot!(name, screen(&mut s, 150, 24));
    }
}

#[test]
fn overlays_and_badges_snapshot() {
    let mut s = fixture();
    send(&mut s, [key('?')]);
    insta::assert_snapshot!("help", screen(&mut s, 110, 40));
    let mut s = State::new("http://10.0.0.9:7420".into(), true, T0);
    send(
        &mut s,
        [
            Msg::Link(LinkMsg::Connecting(0)),
            Msg::Link(LinkMsg::Lost("connection refused".into())),
            Msg::Link(LinkMsg::Connecting(4)),
        ],
    );
    send(&mut s, [Msg::Tick(T0 + 9_000)]);
    insta::assert_snapshot!("unreachable_readonly", screen(&mut s, 120, 8));
    let mut s = fixture();
    send(&mut s, [key('2'), key('f'), key('/')]);
    for c in "hang".chars() {
        send(&mut s, [key(c)]);
    }
    insta::assert_snapshot!("frozen_filter_typing", screen(&mut s, 120, 10));
}

#[test]
fn a_frame_of_100k_turns_and_10k_workers() {
    let mut s = State::new("http://gw.test".into(), false, T0);
    let mut seq = 0;
    let mut ev = |s: &mut State, kind: &str, data: serde_json::Value| {
        seq += 1;
        crate::console::update::update(s, Msg::Link(LinkMsg::Event(seq, super::admin(kind, data))));
    };
    for w in 0..10_000 {
        ev(
            &mut s,
            "worker.spawned",
            json!({"workerId": format!("w-{w:05}"), "generation": 1, "pid": 1000 + w, "agentId": "echo", "sessionId": format!("s-{w}"), "timestamp": T0 - 100_000}),
        );
    }
    for t in 0..100_000 {
        let id = format!("t-{t:06}");
        ev(
            &mut s,
            "turn.queued",
            json!({"turnId": id, "agentId": "echo", "sessionId": "s-1", "messageId": format!("m-{t}"), "timestamp": T0 - 100_000 + t}),
        );
        ev(
            &mut s,
            "turn.dispatched",
            json!({"turnId": id, "workerId": format!("w-{:05}", t % 10_000), "generation": 1, "deadlineAt": T0 + 60_000, "timestamp": T0 - 100_000 + t}),
        );
    }
    assert_eq!(s.model.turns.len(), 100_000);
    send(&mut s, [key('2')]);
    let text = screen(&mut s, 200, 60);
    let rows: Vec<&str> = text.lines().filter(|l| l.starts_with("t-")).collect();
    assert_eq!(rows.len(), 60 - 6, "exactly the rows that fit are drawn");
    assert!(
        rows[0].starts_with("t-000000"),
        "the longest without progress first: {}",
        rows[0]
    );
    assert!(text.contains("Turns · 100000 rows"), "{text}");
}
