//! The cluster at every level: the poll (when it asks, what it asks, what an answer changes),
//! the Replicas view and the REPLICA column, and the lost count in the header, with and without
//! colour and at 80×24.

use crossterm::event::KeyCode;
use ratatui::style::{Color, Modifier};
use serde_json::json;

use super::widgets::{COLOR, NO_COLOR, draw, is, line, style_of};
use super::{R_A, R_B, R_C, T0, code, fixture, key, placed, replica, screen, send, typed};
use crate::api::admin::{TurnDetail, TurnInfo};
use crate::api::state::ReplicaState::{Live, Lost, Stopping};
use crate::console::cluster::{POLL_MS, Poll, RETRY_MS, TIMEOUT_MS};
use crate::console::msg::{Effect, LinkMsg, Msg, ReplicaPoll};
use crate::console::render::{header, table};
use crate::console::state::{Detail, Mode, RowKey, State, View};
use crate::ids::{ReplicaId, WorkerId};

fn answer(s: &mut State, poll: ReplicaPoll) {
    send(s, [Msg::Replicas(Ok(Box::new(poll)))]);
}

/// The fixture, then `gw-c` lost with one worker and its session not yet taken over.
fn with_lost() -> State {
    let mut s = fixture();
    let replicas = vec![
        replica(R_A, "gw-a", Live, 1_000, 1),
        replica(R_B, "gw-b", Live, 400, 2),
        replica(R_C, "gw-c", Lost, 40_000, 1),
    ];
    answer(
        &mut s,
        ReplicaPoll {
            replicas,
            workers: None,
            failed_recently: None,
        },
    );
    s.prepare();
    s
}

fn replica_of(s: &State, worker: &str) -> Option<String> {
    s.model.workers[&WorkerId(worker.into())]
        .replica
        .as_ref()
        .map(ToString::to_string)
}

#[test]
fn the_poll_asks_when_due_once_at_a_time_and_backs_off_after_a_failure() {
    let mut s = State::new("http://gw.test".into(), false, T0);
    assert_eq!(
        send(&mut s, [Msg::Tick(T0)]),
        [Effect::LoadReplicas { workers: false }],
        "the first poll goes at once; no worker to place yet"
    );
    assert!(
        send(&mut s, [Msg::Tick(T0 + POLL_MS)]).is_empty(),
        "one poll at a time"
    );
    assert_eq!(
        send(&mut s, [Msg::Tick(T0 + TIMEOUT_MS)]),
        [Effect::LoadReplicas { workers: false }],
        "an unanswered poll is given up"
    );
    let now = T0 + TIMEOUT_MS;
    send(&mut s, [Msg::Replicas(Err("404 no such route".into()))]);
    assert_eq!(s.cluster.poll, Poll::Due(now + RETRY_MS));
    assert_eq!(s.cluster.error.as_deref(), Some("404 no such route"));
    assert_eq!(s.cluster.counts(), None, "never listed: not known");
    send(&mut s, [Msg::Tick(now + RETRY_MS)]);
    answer(
        &mut s,
        ReplicaPoll {
            replicas: vec![replica(R_A, "gw-a", Live, 0, 0)],
            workers: None,
            failed_recently: None,
        },
    );
    assert_eq!(s.cluster.error, None, "an answer clears the error");
    assert_eq!(s.cluster.poll, Poll::Due(now + RETRY_MS + POLL_MS));
}

#[test]
fn workers_the_stream_does_not_place_are_placed_by_the_next_poll() {
    let mut s = fixture();
    assert_eq!(replica_of(&s, "w-echo").as_deref(), Some(R_A));
    assert_eq!(replica_of(&s, "w-slow").as_deref(), Some(R_B));
    assert_eq!(replica_of(&s, "w-crash"), None, "exited before a poll");
    let due = T0 + POLL_MS;
    // Live workers' heartbeats come with the workers list, so it is read while any lives.
    assert_eq!(
        send(&mut s, [Msg::Tick(due)]),
        [Effect::LoadReplicas { workers: true }],
    );
    // A new worker: `worker.spawned` names no replica.
    let spawned = json!({"workerId": "w-new", "generation": 1, "pid": 105, "agentId": "echo",
        "sessionId": "s-5", "timestamp": due});
    let event = super::admin("worker.spawned", spawned);
    send(&mut s, [Msg::Link(LinkMsg::Event(100, event))]);
    answer(&mut s, ReplicaPoll::default());
    assert_eq!(
        send(&mut s, [Msg::Tick(due + POLL_MS)]),
        [Effect::LoadReplicas { workers: true }]
    );
    // Another generation's row does not place this one.
    let mut stale = placed("w-new", R_A);
    stale.generation = 2;
    let poll = |workers| ReplicaPoll {
        replicas: vec![replica(R_A, "gw-a", Live, 0, 2)],
        workers: Some(workers),
        failed_recently: None,
    };
    answer(&mut s, poll(vec![stale]));
    assert_eq!(replica_of(&s, "w-new"), None);
    s.dirty = false;
    answer(&mut s, poll(vec![placed("w-new", R_A)]));
    assert_eq!(replica_of(&s, "w-new").as_deref(), Some(R_A));
    assert!(s.dirty, "a placed worker is redrawn");
}

#[test]
fn a_heartbeat_alone_redraws_nothing_but_a_lost_replica_does() {
    let mut s = fixture();
    s.dirty = false;
    s.rows_dirty = false;
    let beat = |ago_b: i64, b_state| ReplicaPoll {
        replicas: vec![
            replica(R_A, "gw-a", Live, 0, 1),
            replica(R_B, "gw-b", b_state, ago_b, 2),
        ],
        workers: None,
        failed_recently: None,
    };
    answer(&mut s, beat(0, Live));
    assert!(!s.dirty && !s.rows_dirty, "only heartbeats moved");
    answer(&mut s, beat(6_000, Lost));
    assert!(s.dirty && s.rows_dirty);
    s.prepare();
    let c = s.counts.replicas.unwrap();
    assert_eq!((c.live, c.stopping, c.lost), (1, 0, 1));
    // In the Replicas view every answer redraws (its ages count seconds anyway).
    send(&mut s, [key('6')]);
    s.prepare();
    s.dirty = false;
    answer(&mut s, beat(7_000, Lost));
    assert!(s.dirty && s.rows_dirty);
    assert!(s.counts_seconds());
}

#[test]
fn replicas_view_lists_lost_first_and_sorts_by_its_columns() {
    let mut s = with_lost();
    send(&mut s, [key(':')]);
    typed(&mut s, "replicas");
    send(&mut s, [code(KeyCode::Enter)]);
    assert_eq!(s.view, View::Replicas);
    s.prepare();
    let names =
        |s: &State| -> Vec<String> { s.rows.iter().map(|r| s.cells(r)[0].clone()).collect() };
    assert_eq!(
        names(&s),
        ["gw-c", "gw-a", "gw-b"],
        "lost first, then by name"
    );
    let cells = s.cells(&RowKey::Replica(ReplicaId(R_C.into())));
    assert_eq!(cells[1], "r-0c0c0000", "the short id");
    assert_eq!(cells[5], "✗ LOST");
    assert_eq!(
        (cells[8].as_str(), cells[9].as_str()),
        ("40s ago", "ran out 35s ago")
    );
    let live = s.cells(&RowKey::Replica(ReplicaId(R_B.into())));
    assert_eq!((live[8].as_str(), live[9].as_str()), ("0s ago", "in 4s"));
    // By WORKERS (column 6), fewest first.
    for _ in 0..7 {
        send(&mut s, [key('s')]);
    }
    s.prepare();
    assert_eq!(names(&s), ["gw-a", "gw-c", "gw-b"]);
    send(&mut s, [key('/')]);
    typed(&mut s, "LOST");
    send(&mut s, [code(KeyCode::Enter)]);
    s.prepare();
    assert_eq!(names(&s), ["gw-c"], "the filter reads the state as shown");
}

#[test]
fn a_name_two_replicas_share_is_told_apart_by_its_id() {
    let mut s = fixture();
    // gw-b restarted: the old registration is lost, the new one has the same name.
    answer(
        &mut s,
        ReplicaPoll {
            replicas: vec![
                replica(R_A, "gw-a", Live, 0, 1),
                replica(R_B, "gw-b", Lost, 9_000, 2),
                replica(R_C, "gw-b", Live, 0, 0),
            ],
            workers: None,
            failed_recently: None,
        },
    );
    s.prepare();
    assert_eq!(s.cluster.label(&ReplicaId(R_A.into())), "gw-a");
    assert_eq!(s.cluster.label(&ReplicaId(R_B.into())), "gw-b/0b0b00");
    assert_eq!(s.cluster.label(&ReplicaId(R_C.into())), "gw-b/0c0c00");
    let hang = s.cells(&RowKey::Worker(WorkerId("w-hang".into())));
    assert_eq!(hang[5], "gw-b/0b0b00", "the REPLICA column");
    // One no longer listed (it stopped cleanly) is shown by its short id.
    assert_eq!(
        s.cluster.label(&ReplicaId("r-99999999aaaa".into())),
        "r-99999999"
    );
}

#[test]
fn the_header_counts_lost_replicas_in_red_and_in_words() {
    let s = with_lost();
    let buf = draw(150, 2, |f, area| header::render(f, area, &s, COLOR));
    assert!(
        line(&buf, 0).ends_with("08:00 UTC  replicas: 2 live"),
        "{}",
        line(&buf, 0)
    );
    assert!(
        line(&buf, 1).starts_with("✗ lost 1 replica   stranded 0  stuck 1"),
        "{}",
        line(&buf, 1)
    );
    let lost = style_of(&buf, "✗ lost 1 replica");
    assert!(is(lost, Some(Color::Red), Modifier::BOLD), "{lost:?}");
    let buf = draw(150, 2, |f, area| header::render(f, area, &s, NO_COLOR));
    assert!(is(style_of(&buf, "✗ lost 1 replica"), None, Modifier::BOLD));
    // None lost: the counts line is as on one gateway; a stopping one is counted.
    let mut s = fixture();
    let replicas = vec![
        replica(R_A, "gw-a", Live, 0, 1),
        replica(R_B, "gw-b", Stopping, 0, 2),
    ];
    answer(
        &mut s,
        ReplicaPoll {
            replicas,
            workers: None,
            failed_recently: None,
        },
    );
    s.prepare();
    let buf = draw(150, 2, |f, area| header::render(f, area, &s, COLOR));
    assert!(
        line(&buf, 0).ends_with("replicas: 1 live, 1 stopping"),
        "{}",
        line(&buf, 0)
    );
    assert!(
        line(&buf, 1).starts_with("stranded 0  stuck 1"),
        "{}",
        line(&buf, 1)
    );
    // Before the gateway has listed them: not known, so not said.
    let mut s = State::new("http://gw.test".into(), false, T0);
    s.prepare();
    let buf = draw(150, 2, |f, area| header::render(f, area, &s, COLOR));
    assert!(!line(&buf, 0).contains("replicas"), "{}", line(&buf, 0));
    // Never connected: the counts are unknown, not zero.
    assert!(
        line(&buf, 1).starts_with("counts unknown: connecting…"),
        "{}",
        line(&buf, 1)
    );
}

#[test]
fn a_lost_replicas_row_is_red_and_says_lost() {
    let mut s = with_lost();
    send(&mut s, [key('6'), key('j')]);
    s.prepare();
    let buf = draw(150, 6, |f, area| table::render(f, area, &s, COLOR));
    let row = line(&buf, 2);
    assert!(row.starts_with("gw-c") && row.contains("✗ LOST"), "{row}");
    assert!(is(
        style_of(&buf, "✗ LOST"),
        Some(Color::Red),
        Modifier::BOLD
    ));
    let live = style_of(&buf, "● live");
    assert!(!live.add_modifier.contains(Modifier::BOLD), "{live:?}");
    let buf = draw(150, 6, |f, area| table::render(f, area, &s, NO_COLOR));
    assert!(is(style_of(&buf, "✗ LOST"), None, Modifier::BOLD));
}

#[test]
fn a_turns_detail_names_its_replica() {
    let mut s = with_lost();
    send(&mut s, [key('2'), code(KeyCode::Enter)]);
    let data = json!({"turnId": "t-hung", "sessionId": "s-3", "agentId": "hang",
        "messageId": "m-t-hung", "state": "dispatched", "stranded": false,
        "workerId": "w-hang", "workerGeneration": 1, "replicaId": R_C,
        "createdAt": "2027-01-15T07:59:30Z", "dispatchedAt": null, "firstOutputAt": null,
        "lastProgressAt": null, "deadlineAt": null, "endedAt": null, "outcome": null,
        "code": null, "error": null});
    let turn: TurnInfo = serde_json::from_value(data).unwrap();
    let detail = TurnDetail {
        success: true,
        turn,
        timeline: Vec::new(),
    };
    send(&mut s, [Msg::TurnDetail(Ok(Box::new(detail)))]);
    assert!(matches!(s.mode, Mode::Detail(Detail::Turn(_))));
    let text = screen(&mut s, 150, 24);
    assert!(
        text.contains(&format!("worker w-hang gen 1  replica gw-c ({R_C}) ✗ LOST")),
        "{text}"
    );
}

#[test]
fn replicas_view_snapshot() {
    let mut s = with_lost();
    send(&mut s, [key('6')]);
    insta::assert_snapshot!("replicas", screen(&mut s, 150, 24));
}

/// The smallest terminal: the lost count and the lost row's marker are still on screen, in
/// words (the snapshot has no colour).
#[test]
fn lost_replicas_at_80x24_snapshot() {
    let mut s = with_lost();
    insta::assert_snapshot!("lost_80x24_workers", screen(&mut s, 80, 24));
    send(&mut s, [key('6')]);
    let text = screen(&mut s, 80, 24);
    let lost = text.lines().find(|l| l.starts_with("gw-c")).unwrap();
    assert!(lost.contains("✗ LOST"), "{lost}");
    insta::assert_snapshot!("lost_80x24_replicas", text);
}
