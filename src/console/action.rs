//! Operator actions: kill a worker, cancel a turn. The dialog snapshots its target when it
//! opens and acts on that snapshot; it defaults to Cancel and confirms only after the focus
//! moved to the action, so a double press of the opening key cannot confirm. Success is
//! reported only when the gateway's own event confirms it.

use crossterm::event::{KeyCode, KeyEvent};

use super::cells::span;
use super::state::{Detail, Mode, RowKey, State};
use super::update::Effect;
use crate::api::{AdminEvent, ErrorCode};
use crate::ids::{SessionId, TurnId, WorkerId};

/// What the dialog will act on, as it was when the dialog opened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// Kill exactly this process.
    Kill {
        /// Worker slot.
        worker: WorkerId,
        /// Generation.
        generation: u32,
        /// Pid.
        pid: u32,
        /// The turn it held: id, when it was created, its session.
        turn: Option<(TurnId, i64, SessionId)>,
    },
    /// Cancel this turn.
    Cancel {
        /// The turn.
        turn: TurnId,
        /// When it was created.
        created_at: i64,
        /// Its session.
        session: SessionId,
        /// Its worker.
        worker: Option<WorkerId>,
    },
}

/// The open dialog.
#[derive(Clone, Debug)]
pub struct Confirm {
    /// The snapshot.
    pub target: Target,
    /// The operator's reason (optional).
    pub reason: String,
    /// Focus is on the action button (else on Cancel, the default).
    pub on_action: bool,
    /// The dialog froze the table (and thaws it on close).
    froze: bool,
}

/// An action sent, waiting for its confirming event.
#[derive(Clone, Debug)]
pub struct Pending {
    /// What was acted on.
    pub target: Target,
    /// The gateway accepted the request (202/200).
    pub accepted: bool,
}

impl Target {
    /// The dialog's title.
    pub fn title(&self) -> String {
        match self {
            Self::Kill { worker, .. } => format!("Kill worker {worker}?"),
            Self::Cancel { turn, .. } => format!("Cancel turn {turn}?"),
        }
    }

    /// The action button's word.
    pub fn verb(&self) -> &'static str {
        match self {
            Self::Kill { .. } => "Kill",
            Self::Cancel { .. } => "Cancel turn",
        }
    }

    /// What will happen, in sentences: the blast radius.
    pub fn blast_radius(&self, now: i64) -> Vec<String> {
        match self {
            Self::Kill {
                worker,
                generation,
                pid,
                turn,
            } => {
                let mut v = vec![format!(
                    "SIGKILL to worker {worker} generation {generation}, pid {pid} (and its process group)."
                )];
                v.push(match turn {
                    Some((t, created, session)) => format!(
                        "Its in-flight turn {t} (age {}, session {session}) ends now with cancelled_by_operator.",
                        span(now - created)
                    ),
                    None => "It holds no turn: no client stream is affected.".into(),
                });
                v.push("If the worker at this id is no longer this generation and pid, nothing is killed.".into());
                v
            }
            Self::Cancel {
                turn,
                created_at,
                session,
                worker,
            } => vec![
                format!(
                    "Turn {turn} (age {}, session {session}) ends now with cancelled_by_operator.",
                    span(now - created_at)
                ),
                format!(
                    "Its worker {} gets `cancel` and stays alive.",
                    worker
                        .as_ref()
                        .map_or_else(|| "(none yet)".to_owned(), ToString::to_string)
                ),
            ],
        }
    }
}

fn kill_target(state: &State, worker: &WorkerId) -> Option<Target> {
    let w = state
        .model
        .workers
        .get(worker)
        .filter(|w| w.state.is_live())?;
    let turn = w
        .current_turn
        .as_ref()
        .and_then(|t| state.model.turns.get(t))
        .map(|t| (t.id.clone(), t.created_at, t.session.clone()));
    Some(Target::Kill {
        worker: w.id.clone(),
        generation: w.generation,
        pid: w.pid,
        turn,
    })
}

fn cancel_target(state: &State, turn: &TurnId) -> Option<Target> {
    let t = state.model.turns.get(turn).filter(|t| t.is_open())?;
    Some(Target::Cancel {
        turn: t.id.clone(),
        created_at: t.created_at,
        session: t.session.clone(),
        worker: t.worker.clone(),
    })
}

/// Opens the kill dialog for the selected worker (or the worker of the turn in the detail).
pub fn open_kill(state: &mut State) {
    let worker = match (&state.mode, state.selected_row()) {
        (Mode::Detail(Detail::Worker(d)), _) => Some(d.worker.worker_id.clone()),
        (Mode::Detail(Detail::Turn(d)), _) => d.turn.worker_id.clone(),
        (Mode::Normal, Some(RowKey::Worker(w))) => Some(w.clone()),
        (Mode::Normal, Some(RowKey::Turn(t))) => {
            state.model.turns.get(t).and_then(|t| t.worker.clone())
        }
        _ => None,
    };
    match worker.and_then(|w| kill_target(state, &w)) {
        Some(target) => open(state, target),
        None => state.notice = Some(("nothing to kill here: pick a live worker".into(), true)),
    }
}

/// Opens the cancel dialog for the selected turn (or the turn in the detail).
pub fn open_cancel(state: &mut State) {
    let turn = match (&state.mode, state.selected_row()) {
        (Mode::Detail(Detail::Turn(d)), _) => Some(d.turn.turn_id.clone()),
        (Mode::Normal, Some(RowKey::Turn(t))) => Some(t.clone()),
        _ => None,
    };
    match turn.and_then(|t| cancel_target(state, &t)) {
        Some(target) => open(state, target),
        None => state.notice = Some(("nothing to cancel here: pick a turn in flight".into(), true)),
    }
}

fn open(state: &mut State, target: Target) {
    // While the dialog is open the table behind it does not move.
    let froze = state.frozen.is_none();
    if froze {
        state.freeze_rows();
    }
    state.mode = Mode::Confirm(Box::new(Confirm {
        target,
        reason: String::new(),
        on_action: false,
        froze,
    }));
}

fn close(state: &mut State, froze: bool) {
    state.mode = Mode::Normal;
    if froze {
        state.frozen = None;
        state.rows_dirty = true;
    }
}

/// A key while the dialog is open.
pub fn on_key(state: &mut State, key: KeyEvent) -> Vec<Effect> {
    let Mode::Confirm(c) = &mut state.mode else {
        return Vec::new();
    };
    match key.code {
        KeyCode::Tab | KeyCode::BackTab | KeyCode::Left | KeyCode::Right => c.on_action ^= true,
        KeyCode::Backspace => drop(c.reason.pop()),
        KeyCode::Char(ch) => c.reason.push(ch),
        KeyCode::Esc => {
            let froze = c.froze;
            close(state, froze);
        }
        KeyCode::Enter => {
            let (froze, go, target) = (c.froze, c.on_action, c.target.clone());
            let reason = if c.reason.trim().is_empty() {
                "from the console".to_owned()
            } else {
                c.reason.trim().to_owned()
            };
            close(state, froze);
            if go {
                state.notice = Some((
                    format!(
                        "{} sent; waiting for the gateway to confirm…",
                        target.verb()
                    ),
                    false,
                ));
                state.pending = Some(Pending {
                    target: target.clone(),
                    accepted: false,
                });
                return vec![Effect::Act { target, reason }];
            }
        }
        _ => {}
    }
    Vec::new()
}

/// The gateway's answer to the request: accepted, or refused with its reason.
pub fn on_answer(state: &mut State, answer: Result<(), String>) {
    match answer {
        Ok(()) => {
            if let Some(p) = &mut state.pending {
                p.accepted = true;
            }
        }
        Err(e) => {
            state.pending = None;
            state.notice = Some((format!("refused: {e}"), true));
        }
    }
}

/// Checks an admin event against the pending action; reports success only on its confirmation.
pub fn on_event(state: &mut State, event: &AdminEvent) {
    let Some(p) = &state.pending else { return };
    let outcome = match (&p.target, event) {
        (
            Target::Kill {
                worker, generation, ..
            },
            AdminEvent::WorkerExited(e),
        ) if e.worker_id == *worker && e.generation == *generation => {
            let how = e.signal.clone().unwrap_or_else(|| match e.exit_code {
                Some(c) => format!("exit {c}"),
                None => "exit status unknown".into(),
            });
            if e.intentional {
                Some((
                    format!(
                        "killed {worker} generation {generation} ({how}), recorded as intentional"
                    ),
                    false,
                ))
            } else {
                Some((
                    format!(
                        "{worker} generation {generation} exited on its own ({how}) before the kill landed"
                    ),
                    true,
                ))
            }
        }
        (Target::Cancel { turn, .. }, AdminEvent::TurnFailed(e) | AdminEvent::TurnCompleted(e))
            if e.turn_id == *turn =>
        {
            if e.code == Some(ErrorCode::CancelledByOperator) {
                Some((
                    format!("cancelled {turn}: it ended with cancelled_by_operator"),
                    false,
                ))
            } else {
                Some((
                    format!(
                        "{turn} ended on its own ({}) before the cancel",
                        e.code.map_or("completed", ErrorCode::as_str)
                    ),
                    true,
                ))
            }
        }
        _ => None,
    };
    if let Some(n) = outcome {
        state.pending = None;
        state.notice = Some(n);
    }
}
