//! Headless console tests at three levels: state (messages in, state and effects out),
//! widgets (a region rendered into a buffer), whole screens (`TestBackend` + snapshots).

#![allow(clippy::too_many_lines)] // fixtures read best as one story

mod actions;
mod screens;
mod states;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use serde_json::{Value, json};

use super::msg::{Effect, LinkMsg, Msg};
use super::render::{Palette, render};
use super::state::State;
use super::update::update;

/// The fixtures' clock: 2027-01-15T08:00:00Z.
pub const T0: i64 = 1_800_000_000_000;

pub fn key(c: char) -> Msg {
    let mods = if c.is_ascii_uppercase() {
        KeyModifiers::SHIFT
    } else {
        KeyModifiers::NONE
    };
    Msg::Key(KeyEvent::new(KeyCode::Char(c), mods))
}

pub fn code(k: KeyCode) -> Msg {
    Msg::Key(KeyEvent::new(k, KeyModifiers::NONE))
}

pub fn ctrl(c: char) -> Msg {
    Msg::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL))
}

pub fn send(s: &mut State, msgs: impl IntoIterator<Item = Msg>) -> Vec<Effect> {
    msgs.into_iter().flat_map(|m| update(s, m)).collect()
}

pub fn typed(s: &mut State, text: &str) {
    send(s, text.chars().map(key));
}

/// A live console that has seen one healthy, one crashed, one hung, one slow and one queued turn.
pub fn fixture() -> State {
    let mut s = State::new("http://gw.test:7420".into(), false, T0);
    let mut seq = 0;
    let mut ev = |s: &mut State, kind: &str, at: i64, mut data: Value| {
        seq += 1;
        data["timestamp"] = json!(at);
        update(s, Msg::Link(LinkMsg::Event(seq, kind.into(), data)));
    };
    send(
        &mut s,
        [
            Msg::Link(LinkMsg::Connecting(0)),
            Msg::Link(LinkMsg::Connected),
        ],
    );
    send(&mut s, [Msg::Link(LinkMsg::Snapshot(0, Box::default()))]);
    let spawn = |w: &str, pid: u32, agent: &str, sess: &str| json!({"workerId": w, "generation": 1, "pid": pid, "agentId": agent, "sessionId": sess});
    let turn = |t: &str, agent: &str, sess: &str| json!({"turnId": t, "agentId": agent, "sessionId": sess, "messageId": format!("m-{t}")});
    let dispatch = |t: &str, w: &str, deadline: i64| json!({"turnId": t, "workerId": w, "generation": 1, "deadlineAt": deadline});
    ev(
        &mut s,
        "worker.spawned",
        T0 - 60_000,
        spawn("w-echo", 101, "echo", "s-1"),
    );
    ev(
        &mut s,
        "worker.ready",
        T0 - 59_900,
        json!({"workerId": "w-echo", "generation": 1}),
    );
    ev(
        &mut s,
        "turn.queued",
        T0 - 50_000,
        turn("t-healthy", "echo", "s-1"),
    );
    ev(
        &mut s,
        "turn.dispatched",
        T0 - 50_000,
        dispatch("t-healthy", "w-echo", T0 + 550_000),
    );
    ev(
        &mut s,
        "turn.progress",
        T0 - 49_990,
        json!({"turnId": "t-healthy"}),
    );
    ev(
        &mut s,
        "turn.completed",
        T0 - 49_980,
        json!({"turnId": "t-healthy", "sessionId": "s-1"}),
    );
    ev(
        &mut s,
        "worker.spawned",
        T0 - 40_000,
        spawn("w-crash", 102, "crash", "s-2"),
    );
    ev(
        &mut s,
        "worker.ready",
        T0 - 40_000,
        json!({"workerId": "w-crash", "generation": 1}),
    );
    ev(
        &mut s,
        "turn.queued",
        T0 - 40_000,
        turn("t-crashed", "crash", "s-2"),
    );
    ev(
        &mut s,
        "turn.dispatched",
        T0 - 40_000,
        dispatch("t-crashed", "w-crash", T0 + 560_000),
    );
    ev(
        &mut s,
        "worker.exited",
        T0 - 39_000,
        json!({"workerId": "w-crash", "generation": 1, "exitCode": null, "signal": "SIGKILL", "intentional": false, "reason": "crashed"}),
    );
    ev(
        &mut s,
        "turn.stranded",
        T0 - 39_000,
        json!({"turnId": "t-crashed", "sessionId": "s-2", "reason": "worker_crashed"}),
    );
    ev(
        &mut s,
        "turn.failed",
        T0 - 39_000,
        json!({"turnId": "t-crashed", "sessionId": "s-2", "code": "worker_crashed", "error": "the worker process was killed by SIGKILL while handling the turn"}),
    );
    ev(
        &mut s,
        "worker.spawned",
        T0 - 30_000,
        spawn("w-hang", 103, "hang", "s-3"),
    );
    ev(
        &mut s,
        "worker.ready",
        T0 - 30_000,
        json!({"workerId": "w-hang", "generation": 1}),
    );
    ev(
        &mut s,
        "turn.queued",
        T0 - 30_000,
        turn("t-hung", "hang", "s-3"),
    );
    ev(
        &mut s,
        "turn.dispatched",
        T0 - 30_000,
        dispatch("t-hung", "w-hang", T0 + 30_000),
    );
    ev(
        &mut s,
        "worker.spawned",
        T0 - 5_000,
        spawn("w-slow", 104, "slow", "s-4"),
    );
    ev(
        &mut s,
        "worker.ready",
        T0 - 5_000,
        json!({"workerId": "w-slow", "generation": 1}),
    );
    ev(
        &mut s,
        "turn.queued",
        T0 - 5_000,
        turn("t-slow", "slow", "s-4"),
    );
    ev(
        &mut s,
        "turn.dispatched",
        T0 - 5_000,
        dispatch("t-slow", "w-slow", T0 + 595_000),
    );
    ev(
        &mut s,
        "turn.progress",
        T0 - 1_000,
        json!({"turnId": "t-slow"}),
    );
    ev(
        &mut s,
        "turn.queued",
        T0 - 2_000,
        turn("t-waiting", "slow", "s-4"),
    );
    send(&mut s, [Msg::Tick(T0)]);
    s.prepare();
    s
}

/// The whole screen as text, `w`×`h`, without colour.
pub fn screen(s: &mut State, w: u16, h: u16) -> String {
    s.prepare();
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| render(f, s, Palette { color: false })).unwrap();
    let buf = t.backend().buffer().clone();
    (0..h)
        .map(|y| {
            (0..w)
                .map(|x| buf[(x, y)].symbol().to_owned())
                .collect::<String>()
                .trim_end()
                .to_owned()
        })
        .collect::<Vec<_>>()
        .join("\n")
}
