//! Headless console tests at three levels: state (messages in, state and effects out),
//! widgets (one region rendered into a buffer, its cells' text and style checked), whole
//! screens (`TestBackend` + snapshots).

mod actions;
mod incident;
mod replicas;
mod screens;
mod states;
mod widgets;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use serde_json::{Value, json};

use super::msg::{Effect, LinkMsg, Msg, ReplicaPoll};
use super::render::{Palette, render};
use super::state::State;
use super::update::update;
use crate::api::admin::{ReplicaInfo, WorkerInfo};
use crate::api::state::ReplicaState;
use crate::api::{AdminEvent, WorkerState};
use crate::ids::{ReplicaId, SessionId, WorkerId};

/// The fixtures' clock: 2027-01-15T08:00:00Z.
pub const T0: i64 = 1_800_000_000_000;

/// An admin event from its wire name and data (the data must be that event's payload).
pub fn admin(kind: &str, data: Value) -> AdminEvent {
    let shown = data.to_string();
    AdminEvent::parse(kind, data).unwrap_or_else(|e| panic!("not a `{kind}` event: {e}: {shown}"))
}

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

/// A live console that has seen one healthy, one crashed, one hung, one slow and one queued
/// turn, on two live replicas: `gw-a` runs `w-echo`, `gw-b` runs `w-hang` and `w-slow` (the
/// replicas poll placed them; `w-crash` exited before it could be placed).
pub fn fixture() -> State {
    let mut story = Story::connected();
    story.healthy_echo();
    story.crashed();
    story.hung();
    story.slow_and_queued();
    let mut s = story.state;
    send(&mut s, [Msg::Tick(T0)]);
    let poll = ReplicaPoll {
        replicas: vec![
            replica(R_A, "gw-a", ReplicaState::Live, 1_000, 1),
            replica(R_B, "gw-b", ReplicaState::Live, 400, 2),
        ],
        workers: Some(vec![
            placed("w-echo", R_A),
            placed("w-hang", R_B),
            placed("w-slow", R_B),
        ]),
        failed_recently: None,
    };
    send(&mut s, [Msg::Replicas(Ok(Box::new(poll)))]);
    s.prepare();
    s
}

/// The fixture's replicas' ids.
pub const R_A: &str = "r-0a11ce00aaaa4aaa8aaaaaaaaaaaaaaa";
/// See [`R_A`].
pub const R_B: &str = "r-0b0b0000bbbb4bbb8bbbbbbbbbbbbbbb";
/// A replica whose lease ran out.
pub const R_C: &str = "r-0c0c0000cccc4ccc8ccccccccccccccc";

/// A replica as the gateway lists it: its last renewal `ago` ms before `T0`, a 5 s lease from
/// then, `workers` live workers in as many sessions.
pub fn replica(id: &str, name: &str, state: ReplicaState, ago: i64, workers: i64) -> ReplicaInfo {
    ReplicaInfo {
        replica_id: ReplicaId(id.into()),
        name: name.into(),
        host: format!("host-{name}"),
        pid: 4000 + u32::from(name.bytes().last().unwrap_or(0)),
        version: "0.1.0".into(),
        started_at: T0 - 3_600_000,
        heartbeat_at: T0 - ago,
        lease_until: T0 - ago + 5_000,
        state,
        workers,
        sessions: workers,
    }
}

/// A live worker of the fixture (generation 1) as the workers list says it, on `replica`.
pub fn placed(worker: &str, replica: &str) -> WorkerInfo {
    WorkerInfo {
        worker_id: WorkerId(worker.into()),
        generation: 1,
        pid: 0,
        agent_id: String::new(),
        session_id: SessionId(String::new()),
        state: WorkerState::Idle,
        started_at: T0,
        ready_at: None,
        last_heartbeat_at: None,
        last_progress_at: None,
        current_turn_id: None,
        turns_served: 0,
        exit_code: None,
        signal: None,
        exited_at: None,
        intentional: None,
        exit_reason: None,
        replica_id: ReplicaId(replica.into()),
        process: None,
    }
}

/// The fixture's admin log: events in order, numbered from 1, each stamped with its time.
struct Story {
    state: State,
    seq: i64,
}

fn spawn(w: &str, pid: u32, agent: &str, sess: &str) -> Value {
    json!({"workerId": w, "generation": 1, "pid": pid, "agentId": agent, "sessionId": sess})
}

fn turn(t: &str, agent: &str, sess: &str) -> Value {
    json!({"turnId": t, "agentId": agent, "sessionId": sess, "messageId": format!("m-{t}")})
}

fn dispatch(t: &str, w: &str, deadline: i64) -> Value {
    json!({"turnId": t, "workerId": w, "generation": 1, "deadlineAt": deadline})
}

fn ready(w: &str) -> Value {
    json!({"workerId": w, "generation": 1})
}

impl Story {
    /// Connected, with an empty snapshot.
    fn connected() -> Self {
        let mut state = State::new("http://gw.test:7420".into(), false, T0);
        send(
            &mut state,
            [
                Msg::Link(LinkMsg::Connecting(0)),
                Msg::Link(LinkMsg::Connected),
            ],
        );
        send(
            &mut state,
            [Msg::Link(LinkMsg::Snapshot(0, Box::default()))],
        );
        Self { state, seq: 0 }
    }

    fn ev(&mut self, kind: &str, at: i64, mut data: Value) {
        self.seq += 1;
        data["timestamp"] = json!(at);
        update(
            &mut self.state,
            Msg::Link(LinkMsg::Event(self.seq, admin(kind, data))),
        );
    }

    /// `w-echo` serves `t-healthy` to completion and is idle again.
    fn healthy_echo(&mut self) {
        let spawned = spawn("w-echo", 101, "echo", "s-1");
        self.ev("worker.spawned", T0 - 60_000, spawned);
        self.ev("worker.ready", T0 - 59_900, ready("w-echo"));
        self.ev("turn.queued", T0 - 50_000, turn("t-healthy", "echo", "s-1"));
        let dispatched = dispatch("t-healthy", "w-echo", T0 + 550_000);
        self.ev("turn.dispatched", T0 - 50_000, dispatched);
        self.ev("turn.progress", T0 - 49_990, json!({"turnId": "t-healthy"}));
        let completed = json!({"turnId": "t-healthy", "sessionId": "s-1"});
        self.ev("turn.completed", T0 - 49_980, completed);
    }

    /// `w-crash` is killed by SIGKILL mid-turn: `t-crashed` is stranded, then failed.
    fn crashed(&mut self) {
        let spawned = spawn("w-crash", 102, "crash", "s-2");
        self.ev("worker.spawned", T0 - 40_000, spawned);
        self.ev("worker.ready", T0 - 40_000, ready("w-crash"));
        self.ev(
            "turn.queued",
            T0 - 40_000,
            turn("t-crashed", "crash", "s-2"),
        );
        let dispatched = dispatch("t-crashed", "w-crash", T0 + 560_000);
        self.ev("turn.dispatched", T0 - 40_000, dispatched);
        self.ev(
            "worker.exited",
            T0 - 39_000,
            json!({"workerId": "w-crash", "generation": 1, "exitCode": null, "signal": "SIGKILL", "intentional": false, "reason": "crashed"}),
        );
        self.ev(
            "turn.stranded",
            T0 - 39_000,
            json!({"turnId": "t-crashed", "sessionId": "s-2", "reason": "worker_crashed"}),
        );
        self.ev(
            "turn.failed",
            T0 - 39_000,
            json!({"turnId": "t-crashed", "sessionId": "s-2", "code": "worker_crashed", "error": "the worker process was killed by SIGKILL while handling the turn"}),
        );
    }

    /// `w-hang` holds `t-hung`, which has made no progress for 30 s.
    fn hung(&mut self) {
        self.ev(
            "worker.spawned",
            T0 - 30_000,
            spawn("w-hang", 103, "hang", "s-3"),
        );
        self.ev("worker.ready", T0 - 30_000, ready("w-hang"));
        self.ev("turn.queued", T0 - 30_000, turn("t-hung", "hang", "s-3"));
        let dispatched = dispatch("t-hung", "w-hang", T0 + 30_000);
        self.ev("turn.dispatched", T0 - 30_000, dispatched);
    }

    /// `w-slow` streams `t-slow`; `t-waiting` is queued behind it.
    fn slow_and_queued(&mut self) {
        self.ev(
            "worker.spawned",
            T0 - 5_000,
            spawn("w-slow", 104, "slow", "s-4"),
        );
        self.ev("worker.ready", T0 - 5_000, ready("w-slow"));
        self.ev("turn.queued", T0 - 5_000, turn("t-slow", "slow", "s-4"));
        let dispatched = dispatch("t-slow", "w-slow", T0 + 595_000);
        self.ev("turn.dispatched", T0 - 5_000, dispatched);
        self.ev("turn.progress", T0 - 1_000, json!({"turnId": "t-slow"}));
        self.ev("turn.queued", T0 - 2_000, turn("t-waiting", "slow", "s-4"));
    }
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
