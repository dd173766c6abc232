//! `update(state, msg) -> effects`: every input arrives as a [`Msg`]; this changes memory only
//! and returns the I/O it wants as [`Effect`]s for the runner to perform.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::action::{self, Target};
use super::chat::{self, ChatMsg, ChatSession};
use super::keys::{Action, binding};
use super::model::Note;
use super::state::{Detail, Filter, Link, Mode, RowKey, State, View};
use crate::api::AdminEvent;
use crate::api::admin::{CallerRole, Overview, Snapshot, TurnDetail, WorkerDetail};
use crate::ids::{TurnId, WorkerId};

/// Everything that can happen to the console.
#[derive(Clone, Debug)]
pub enum Msg {
    /// A key press.
    Key(KeyEvent),
    /// The clock moved (epoch ms).
    Tick(i64),
    /// The terminal was resized: draw again.
    Resize,
    /// The admin stream.
    Link(LinkMsg),
    /// A worker's detail arrived.
    WorkerDetail(Result<Box<WorkerDetail>, String>),
    /// A turn's detail arrived.
    TurnDetail(Result<Box<TurnDetail>, String>),
    /// The gateway's overview (agents, who we are).
    Overview(Result<Box<Overview>, String>),
    /// The chat machinery.
    Chat(ChatMsg),
    /// The gateway's answer to a kill or cancel: accepted, or refused and why.
    ActionAnswer(Result<(), String>),
}

/// What the admin stream reports.
#[derive(Clone, Debug)]
pub enum LinkMsg {
    /// Connecting; attempt 0 is the first.
    Connecting(u32),
    /// Connected.
    Connected,
    /// The snapshot at admin sequence `seq`.
    Snapshot(i64, Box<Snapshot>),
    /// The gateway's log does not line up with our cursor; a snapshot at `seq` follows.
    Gap(i64),
    /// One lifecycle event.
    Event(i64, AdminEvent),
    /// The stream dropped or could not connect.
    Lost(String),
}

/// I/O the console wants done.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Leave.
    Quit,
    /// Reconnect the admin stream now; `fresh` drops the cursor and takes a new snapshot.
    Reconnect {
        /// Start over from a snapshot.
        fresh: bool,
    },
    /// Fetch a worker's detail.
    LoadWorker(WorkerId),
    /// Fetch a turn's detail.
    LoadTurn(TurnId),
    /// Fetch the overview.
    LoadOverview,
    /// Send a chat message (creating the session first when there is none).
    ChatSend {
        /// Agent.
        agent: String,
        /// The session to use.
        session: Option<ChatSession>,
        /// The text.
        content: String,
        /// Local id of the reply.
        local: u64,
    },
    /// Kill or cancel, exactly as snapshotted.
    Act {
        /// The target.
        target: Target,
        /// Why.
        reason: String,
    },
}

/// Applies one message.
pub fn update(state: &mut State, msg: Msg) -> Vec<Effect> {
    if let Msg::Tick(now) = msg {
        // A tick redraws only what it changes: every second while something on screen counts
        // seconds, else when the minute turns.
        let minute = |ms: i64| ms.div_euclid(60_000);
        state.dirty |= state.counts_seconds() || minute(now) != minute(state.now);
        state.now = now;
        return Vec::new();
    }
    state.dirty = true;
    match msg {
        Msg::Key(key) => on_key(state, key),
        Msg::Tick(_) | Msg::Resize => Vec::new(),
        Msg::Link(l) => on_link(state, l),
        Msg::WorkerDetail(r) => {
            if matches!(state.mode, Mode::Detail(Detail::Loading(_))) {
                state.mode = Mode::Detail(r.map_or_else(Detail::Failed, Detail::Worker));
            }
            Vec::new()
        }
        Msg::TurnDetail(r) => {
            if matches!(state.mode, Mode::Detail(Detail::Loading(_))) {
                state.mode = Mode::Detail(r.map_or_else(Detail::Failed, Detail::Turn));
            }
            Vec::new()
        }
        Msg::Overview(Ok(o)) => {
            on_overview(state, &o);
            Vec::new()
        }
        Msg::Overview(Err(e)) => {
            state.notice = Some((format!("overview unavailable: {e}"), true));
            Vec::new()
        }
        Msg::Chat(m) => {
            chat::on_msg(state, m);
            Vec::new()
        }
        Msg::ActionAnswer(a) => {
            action::on_answer(state, a);
            Vec::new()
        }
    }
}

fn on_overview(state: &mut State, o: &Overview) {
    let chosen = state.chat.agent_name().map(str::to_owned);
    state.chat.agents.clone_from(&o.agents);
    state.chat.agent = chosen
        .and_then(|c| o.agents.iter().position(|a| *a == c))
        .unwrap_or(0);
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
        LinkMsg::Connected => {
            state.conn.link = Link::Live;
            state.conn.stale_since = None;
            state.conn.error = None;
            let from = state
                .model
                .last_seq
                .map_or_else(|| "a snapshot".into(), |s| format!("event #{s}"));
            state.model.note(
                now,
                Note::Console,
                format!("connected to {}, resuming from {from}", state.conn.target),
            );
            return vec![Effect::LoadOverview];
        }
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
        LinkMsg::Event(seq, event) => {
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
            state.model.apply_event(seq, &event);
            action::on_event(state, &event);
            state.conn.last_event_at = Some(now);
            state.rows_dirty = true;
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

fn on_key(state: &mut State, key: KeyEvent) -> Vec<Effect> {
    if key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL) {
        state.quit = true;
        return vec![Effect::Quit];
    }
    match &mut state.mode {
        Mode::Filter(input) => match key.code {
            KeyCode::Enter => {
                let raw = std::mem::take(input);
                state.mode = Mode::Normal;
                apply_filter(state, &raw);
            }
            KeyCode::Esc => state.mode = Mode::Normal,
            KeyCode::Backspace => drop(input.pop()),
            KeyCode::Char(c) => input.push(c),
            _ => {}
        },
        Mode::Command(input) => match key.code {
            KeyCode::Enter => {
                let cmd = std::mem::take(input);
                state.mode = Mode::Normal;
                return run_command(state, cmd.trim());
            }
            KeyCode::Esc => state.mode = Mode::Normal,
            KeyCode::Backspace => drop(input.pop()),
            KeyCode::Char(c) => input.push(c),
            _ => {}
        },
        Mode::Confirm(_) => return action::on_key(state, key),
        Mode::Detail(_) if !state.readonly => {
            let b = binding(state.view, key, false).map(|b| b.action);
            if let Some(a @ (Action::Kill | Action::CancelTurn)) = b {
                return act(state, a);
            }
            if matches!(
                key.code,
                KeyCode::Esc | KeyCode::Char('q' | '?') | KeyCode::Backspace
            ) {
                state.mode = Mode::Normal;
            }
        }
        Mode::Help | Mode::Detail(_) => {
            if matches!(
                key.code,
                KeyCode::Esc | KeyCode::Char('q' | '?') | KeyCode::Backspace
            ) {
                state.mode = Mode::Normal;
            }
        }
        Mode::Normal if state.view == View::Chat => match key.code {
            KeyCode::Tab => return act(state, Action::NextView),
            KeyCode::BackTab => return act(state, Action::PrevView),
            _ => return chat::on_key(state, key),
        },
        Mode::Normal => {
            if let Some(b) = binding(state.view, key, state.readonly) {
                return act(state, b.action);
            }
        }
    }
    Vec::new()
}

fn apply_filter(state: &mut State, raw: &str) {
    if raw.is_empty() {
        state.filter = None;
        state.notice = Some(("filter cleared".into(), false));
    } else {
        match Filter::parse(raw) {
            Ok(f) => {
                state.filter = Some(f);
                state.notice = None;
            }
            Err(e) => state.notice = Some((e, true)),
        }
    }
    state.rows_dirty = true;
}

fn run_command(state: &mut State, cmd: &str) -> Vec<Effect> {
    let view = match cmd {
        "q" | "q!" | "quit" => return act(state, Action::Quit),
        "workers" | "w" => View::Workers,
        "turns" | "t" => View::Turns,
        "stranded" | "s" => View::Stranded,
        "events" | "e" => View::Events,
        "chat" | "c" => View::Chat,
        other => {
            state.notice = Some((
                format!("unknown command `:{other}` (try :workers :turns :stranded :events :q)"),
                true,
            ));
            return Vec::new();
        }
    };
    act(state, Action::Goto(view))
}

fn set_view(state: &mut State, view: View) {
    if state.view != view {
        state.view = view;
        state.frozen = None;
        state.rows_dirty = true;
    }
}

fn act(state: &mut State, action: Action) -> Vec<Effect> {
    let vi = state.vi();
    let len = state.frozen.as_ref().map_or(state.rows.len(), Vec::len);
    let last = len.saturating_sub(1);
    let sel = &mut state.selected[vi];
    let events = state.view == View::Events;
    match action {
        Action::Quit => {
            state.quit = true;
            return vec![Effect::Quit];
        }
        Action::NextView => set_view(state, state.view.step(true)),
        Action::PrevView => set_view(state, state.view.step(false)),
        Action::Goto(v) => set_view(state, v),
        Action::Down => *sel = (*sel + 1).min(last),
        Action::Up => {
            *sel = sel.saturating_sub(1);
            state.follow &= !events;
        }
        Action::PageDown => *sel = (*sel + state.page.max(1)).min(last),
        Action::PageUp => {
            *sel = sel.saturating_sub(state.page.max(1));
            state.follow &= !events;
        }
        Action::Top => {
            *sel = 0;
            state.follow &= !events;
        }
        Action::Bottom => {
            *sel = last;
            state.follow |= events;
        }
        Action::Open => return open(state),
        Action::Filter => {
            state.mode = Mode::Filter(
                state
                    .filter
                    .as_ref()
                    .map(|f| f.raw.clone())
                    .unwrap_or_default(),
            )
        }
        Action::Command => state.mode = Mode::Command(String::new()),
        Action::Help => state.mode = Mode::Help,
        Action::Freeze => freeze(state),
        Action::Sort => {
            let n = state.view.columns().len();
            let s = &mut state.sorts[vi];
            s.column = match s.column {
                None => Some(0),
                Some(c) if c + 1 < n => Some(c + 1),
                Some(_) => None,
            };
            state.rows_dirty = true;
        }
        Action::Reverse => {
            state.sorts[vi].reverse ^= true;
            state.rows_dirty = true;
        }
        Action::Kill => action::open_kill(state),
        Action::CancelTurn => action::open_cancel(state),
        Action::ToggleEnded => {
            state.show_ended ^= true;
            state.rows_dirty = true;
        }
        Action::Reconnect => {
            state
                .model
                .note(state.now, Note::Console, "reconnecting (ctrl-r)".into());
            return vec![Effect::Reconnect { fresh: false }];
        }
    }
    Vec::new()
}

fn open(state: &mut State) -> Vec<Effect> {
    let effect = match state.selected_row() {
        Some(RowKey::Worker(id)) => Effect::LoadWorker(id.clone()),
        Some(RowKey::Turn(id)) => Effect::LoadTurn(id.clone()),
        _ => return Vec::new(),
    };
    let what = match &effect {
        Effect::LoadWorker(id) => format!("worker {id}"),
        Effect::LoadTurn(id) => format!("turn {id}"),
        _ => String::new(),
    };
    state.mode = Mode::Detail(Detail::Loading(what));
    vec![effect]
}

fn freeze(state: &mut State) {
    if state.frozen.take().is_some() {
        state.rows_dirty = true;
        return;
    }
    state.freeze_rows();
}
