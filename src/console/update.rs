//! `update(state, msg) -> effects`: every input arrives as a [`Msg`]; this changes memory only
//! and returns the I/O it wants as [`Effect`]s for the runner to perform. A key is read by the
//! mode it arrives in (`input`); what a bound key does is `navigation`'s; the features
//! (`action`, `chat`, `cluster`) update their own sub-state.

mod input;
mod navigation;

use super::action;
use super::chat;
use super::model::Note;
use super::msg::{Effect, LinkMsg, Msg};
use super::state::{Detail, Link, Mode, State, View};
use crate::api::AdminEvent;
use crate::api::admin::{CallerRole, Overview, TurnDetail, WorkerDetail};

/// Applies one message.
pub fn update(state: &mut State, msg: Msg) -> Vec<Effect> {
    if let Msg::Tick(now) = msg {
        // A tick redraws only what it changes: every second while something on screen counts
        // seconds, else when the minute turns.
        let minute = |ms: i64| ms.div_euclid(60_000);
        state.dirty |= state.counts_seconds() || minute(now) != minute(state.now);
        // Open turns' clocks move: their slow marks, the stuck count and the most-stuck order
        // are rebuilt once a second (the selection stays on its row).
        state.rows_dirty |= state.counts.in_flight > 0;
        state.now = now;
        state.pulse.advance(now);
        // A footer message goes after a few seconds; the keys come back.
        if state.notice.is_some() && now - state.notice_at >= NOTICE_MS {
            state.notice = None;
            state.dirty = true;
        }
        let mut effects: Vec<Effect> = state.cluster.ask(now, &state.model).into_iter().collect();
        // An open turn detail's worker is sampled wholly (its kernel wait, descriptors,
        // children) only when asked: ask every 2 s while the pane is open.
        if let Mode::Detail(Detail::Turn(d)) = &state.mode
            && let Some(w) = d.turn.worker_id.clone()
            && d.turn.ended_at.is_none()
            && now - state.detail_worker_asked >= 2_000
        {
            state.detail_worker_asked = now;
            effects.push(Effect::LoadWorker(w));
        }
        return effects;
    }
    if let Msg::Replicas(answer) = msg {
        // A heartbeat alone redraws only the Replicas view, which counts seconds anyway.
        let changed = state.cluster.on_answer(state.now, answer, &mut state.model);
        let shown = state.view == View::Replicas;
        state.rows_dirty |= changed || shown;
        state.dirty |= changed || shown;
        return Vec::new();
    }
    state.dirty = true;
    let before = state.notice.clone();
    let effects = apply(state, msg);
    if state.notice.is_some() && state.notice != before {
        state.notice_at = state.now;
    }
    effects
}

/// How long a footer message stays.
const NOTICE_MS: i64 = 6_000;

/// [`update`] for every message but ticks and replica polls.
fn apply(state: &mut State, msg: Msg) -> Vec<Effect> {
    match msg {
        Msg::Key(key) => input::on_key(state, key),
        Msg::Tick(_) | Msg::Resize | Msg::Replicas(_) => Vec::new(),
        Msg::Link(l) => on_link(state, l),
        Msg::WorkerDetail(r) => {
            on_worker_detail(state, r);
            Vec::new()
        }
        Msg::TurnDetail(r) => on_turn_detail(state, r),
        Msg::Overview(Ok(o)) => {
            on_overview(state, &o);
            Vec::new()
        }
        Msg::Overview(Err(e)) => {
            state.notice = Some((format!("overview unavailable: {e}"), true));
            Vec::new()
        }
        Msg::Chat(m) => {
            chat::on_msg(&mut state.chat, state.now, m);
            Vec::new()
        }
        Msg::ActionAnswer(a) => {
            action::on_answer(&mut state.pending, &mut state.notice, a);
            Vec::new()
        }
    }
}

/// A worker's detail: the pane's (first load or a refresh of the same worker), or the worker of
/// the turn the pane shows.
fn on_worker_detail(state: &mut State, r: Result<Box<WorkerDetail>, String>) {
    match (&mut state.mode, r) {
        (Mode::Detail(d @ Detail::Loading(_)), r) => {
            *d = r.map_or_else(Detail::Failed, Detail::Worker);
        }
        (Mode::Detail(Detail::Worker(d)), Ok(n)) if n.worker.worker_id == d.worker.worker_id => {
            *d = n;
        }
        (Mode::Detail(Detail::Turn(t)), Ok(n))
            if t.turn.worker_id.as_ref() == Some(&n.worker.worker_id) =>
        {
            state.detail_worker = Some(n);
        }
        _ => {}
    }
}

/// A turn's detail: the pane's (first load or a refresh of the same turn); its worker is
/// loaded beside it.
fn on_turn_detail(state: &mut State, r: Result<Box<TurnDetail>, String>) -> Vec<Effect> {
    match (&mut state.mode, r) {
        (Mode::Detail(d @ Detail::Loading(_)), r) => {
            *d = r.map_or_else(Detail::Failed, Detail::Turn);
        }
        (Mode::Detail(Detail::Turn(d)), Ok(n)) if n.turn.turn_id == d.turn.turn_id => *d = n,
        _ => return Vec::new(),
    }
    match &state.mode {
        Mode::Detail(Detail::Turn(d)) => d
            .turn
            .worker_id
            .clone()
            .map(Effect::LoadWorker)
            .into_iter()
            .collect(),
        _ => Vec::new(),
    }
}

/// What an admin event asks of the open pane or dialog: a pane reloads what it shows when its
/// turn or worker changed (it never says `dispatched` of a turn that ended); a dialog follows
/// its target (it says how the target ended and stops offering the action).
fn follow_target(state: &mut State, event: &AdminEvent) -> Vec<Effect> {
    let (turn, worker) = (event.turn_id(), event.worker_id());
    match &mut state.mode {
        Mode::Detail(Detail::Turn(d)) => {
            let mut out = Vec::new();
            if turn == Some(&d.turn.turn_id) {
                out.push(Effect::LoadTurn(d.turn.turn_id.clone()));
            }
            if let Some(w) = worker.filter(|w| d.turn.worker_id.as_ref() == Some(*w)) {
                out.push(Effect::LoadWorker(w.clone()));
            }
            out
        }
        Mode::Detail(Detail::Worker(d)) if worker == Some(&d.worker.worker_id) => {
            vec![Effect::LoadWorker(d.worker.worker_id.clone())]
        }
        Mode::Confirm(c) => {
            action::follow(c, event);
            Vec::new()
        }
        _ => Vec::new(),
    }
}

fn on_overview(state: &mut State, o: &Overview) {
    state.chat.set_agents(&o.agents, o.default_agent.as_deref());
    if o.caller.role == CallerRole::Readonly && !state.readonly {
        state.readonly = true;
        state.model.note(
            state.now,
            Note::Console,
            format!("token `{}` is read-only: actions are off", o.caller.name),
        );
    }
}

fn on_link(state: &mut State, l: LinkMsg) -> Vec<Effect> {
    let now = state.now;
    match l {
        LinkMsg::Connecting(0) => state.conn.link = Link::Connecting,
        LinkMsg::Connecting(n) => state.conn.link = Link::Reconnecting(n),
        LinkMsg::Connected => return on_connected(state),
        LinkMsg::Snapshot(seq, snap) => {
            state.model.apply_snapshot(&snap, seq);
            state.conn.last_event_at = Some(now);
            let text = format!(
                "snapshot: {} workers, {} open turns",
                snap.workers.len(),
                snap.turns.len()
            );
            state.model.note(now, Note::Console, text);
            state.rows_dirty = true;
        }
        LinkMsg::Gap(seq) => {
            let from = state
                .model
                .last_seq
                .map_or_else(String::new, |s| format!(" (we held up to event #{s})"));
            state.model.note(
                now,
                Note::Gap,
                format!("event log restarted at #{seq}{from}; reloading a snapshot"),
            );
            state.model.last_seq = None;
        }
        LinkMsg::Event(seq, event) => return on_event(state, seq, &event),
        LinkMsg::Unreadable(seq, kind, why) => {
            state.model.apply_unreadable(seq, kind, &why);
            state.rows_dirty = true;
        }
        LinkMsg::Sampled(s) => {
            if let Some(w) = state.model.workers.get_mut(&s.worker_id)
                && w.generation == s.generation
            {
                w.process = Some(s.process);
                state.rows_dirty = true;
            }
        }
        LinkMsg::Refused(error) => {
            state.model.note(
                now,
                Note::Console,
                format!(
                    "the gateway refused this token: {error}; not reconnecting (ctrl-r tries again)"
                ),
            );
            state.conn.link = Link::Refused;
            state.conn.stale_since.get_or_insert(now);
            state.conn.error = Some(format!("token refused: {error}"));
        }
        LinkMsg::Lost(error) => {
            if state.conn.link == Link::Live {
                state
                    .model
                    .note(now, Note::Console, format!("admin stream lost: {error}"));
            }
            state.conn.stale_since.get_or_insert(now);
            state.conn.error = Some(error);
        }
    }
    Vec::new()
}

fn on_connected(state: &mut State) -> Vec<Effect> {
    state.conn.link = Link::Live;
    state.conn.stale_since = None;
    state.conn.error = None;
    let from = state
        .model
        .last_seq
        .map_or_else(|| "a snapshot".into(), |s| format!("event #{s}"));
    state.model.note(
        state.now,
        Note::Console,
        format!("connected to {}, resuming from {from}", state.conn.target),
    );
    vec![Effect::LoadOverview]
}

fn on_event(state: &mut State, seq: i64, event: &AdminEvent) -> Vec<Effect> {
    let now = state.now;
    if state.model.last_seq.is_some_and(|last| seq <= last) {
        // The gateway's log restarted under us: what we hold no longer lines up.
        state.model.note(
            now,
            Note::Gap,
            format!("event log restarted at #{seq}; reloading a snapshot"),
        );
        state.model.last_seq = None;
        return vec![Effect::Reconnect { fresh: true }];
    }
    state.model.apply_event(seq, event);
    state.pulse.on_event(event, now);
    action::on_event(&mut state.pending, &mut state.notice, event);
    state.conn.last_event_at = Some(now);
    state.rows_dirty = true;
    follow_target(state, event)
}
