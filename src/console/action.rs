//! Operator actions: kill a worker, cancel a turn. The dialog snapshots its target when it
//! opens and acts on that snapshot; it defaults to Cancel and confirms only after the focus
//! moved to the action, so a double press of the opening key cannot confirm. Success is
//! reported only when the gateway's own event confirms it.
//!
//! This feature's state is the open dialog ([`Confirm`], held by the modal `Mode`) and the
//! action awaiting its confirmation ([`Pending`]). Its functions take those and the notice
//! line, never the whole console state; opening and closing the dialog (which freezes and
//! thaws the table) is the caller's.

use crossterm::event::{KeyCode, KeyEvent};

use super::clocks;
use super::model::Model;
use super::msg::{Effect, Notice, Target};
use crate::api::{AdminEvent, ErrorCode, TurnState};
use crate::ids::{TurnId, WorkerId};

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
    pub froze: bool,
    /// The target ended while the dialog was open: when (epoch ms) and how, in words. The
    /// action is then off.
    pub ended: Option<(i64, String)>,
}

impl Confirm {
    /// A dialog on `target` with no reason yet and the focus on Cancel.
    pub fn new(target: Target, froze: bool) -> Self {
        Self {
            target,
            reason: String::new(),
            on_action: false,
            froze,
            ended: None,
        }
    }
}

/// An action sent, waiting for its confirming event.
#[derive(Clone, Debug)]
pub struct Pending {
    /// What was acted on.
    pub target: Target,
    /// The gateway accepted the request (202/200).
    pub accepted: bool,
}

/// The kill target for `worker` if it is live: its generation, pid and the turn it holds.
pub fn kill_target(model: &Model, worker: &WorkerId) -> Option<Target> {
    let w = model.workers.get(worker).filter(|w| w.state.is_live())?;
    let turn = w
        .current_turn
        .as_ref()
        .and_then(|t| model.turns.get(t))
        .map(|t| (t.id.clone(), t.created_at, t.session.clone()));
    Some(Target::Kill {
        worker: w.id.clone(),
        generation: w.generation,
        pid: w.pid,
        turn,
    })
}

/// The cancel target for `turn` if it is still open.
pub fn cancel_target(model: &Model, turn: &TurnId) -> Option<Target> {
    let t = model.turns.get(turn).filter(|t| t.is_open())?;
    Some(Target::Cancel {
        turn: t.id.clone(),
        created_at: t.created_at,
        session: t.session.clone(),
        worker: t.worker.clone(),
    })
}

/// A key while the dialog is open: `None` while it stays open; once it closes, the effects
/// (none when dismissed, the action when confirmed, which is then pending).
pub fn on_key(
    c: &mut Confirm,
    pending: &mut Option<Pending>,
    notice: &mut Option<Notice>,
    key: KeyEvent,
) -> Option<Vec<Effect>> {
    match key.code {
        KeyCode::Tab | KeyCode::BackTab | KeyCode::Left | KeyCode::Right => c.on_action ^= true,
        KeyCode::Backspace => drop(c.reason.pop()),
        KeyCode::Char(ch) => c.reason.push(ch),
        KeyCode::Enter if c.on_action && c.ended.is_some() => {
            *notice = Some((
                format!(
                    "nothing to {}: {}",
                    c.target.verb().to_lowercase(),
                    ended_text(c)
                ),
                true,
            ));
        }
        KeyCode::Enter if c.on_action => {
            let target = c.target.clone();
            let reason = if c.reason.trim().is_empty() {
                "from the console".to_owned()
            } else {
                c.reason.trim().to_owned()
            };
            *notice = Some((
                format!(
                    "{} sent; waiting for the gateway to confirm…",
                    target.verb()
                ),
                false,
            ));
            *pending = Some(Pending {
                target: target.clone(),
                accepted: false,
            });
            return Some(vec![Effect::Act { target, reason }]);
        }
        // Esc, or enter on Cancel: closed, nothing done.
        KeyCode::Esc | KeyCode::Enter => return Some(Vec::new()),
        _ => {}
    }
    None
}

fn ended_text(c: &Confirm) -> String {
    c.ended
        .as_ref()
        .map_or_else(String::new, |(_, how)| how.clone())
}

/// Follows the dialog's target: once the gateway says it ended (its turn's end, its worker
/// generation's exit), the dialog says how and when, and its action is off.
pub fn follow(c: &mut Confirm, event: &AdminEvent) {
    if c.ended.is_some() {
        return;
    }
    let at = event.timestamp();
    let how = match (&c.target, event) {
        (Target::Cancel { turn, .. }, AdminEvent::TurnCompleted(e)) if e.turn_id == *turn => {
            format!("the turn completed at {}", clocks::clock(at))
        }
        (Target::Cancel { turn, .. }, AdminEvent::TurnFailed(e)) if e.turn_id == *turn => {
            format!(
                "the turn ended at {}: failed, {}",
                clocks::clock(at),
                e.code.map_or("without a code", ErrorCode::as_str)
            )
        }
        (
            Target::Kill {
                worker, generation, ..
            },
            AdminEvent::WorkerExited(e),
        ) if e.worker_id == *worker && e.generation == *generation => {
            let exit = e.signal.clone().unwrap_or_else(|| {
                e.exit_code
                    .map_or_else(|| "exit status unknown".into(), |c| format!("exit {c}"))
            });
            format!("the worker exited at {} ({exit})", clocks::clock(at))
        }
        _ => return,
    };
    c.ended = Some((at, how));
    c.on_action = false;
}

/// The gateway's answer to the request: accepted, or refused with its reason.
pub fn on_answer(
    pending: &mut Option<Pending>,
    notice: &mut Option<Notice>,
    answer: Result<(), String>,
) {
    match answer {
        Ok(()) => {
            if let Some(p) = pending {
                p.accepted = true;
            }
        }
        Err(e) => {
            *pending = None;
            *notice = Some((format!("refused: {e}"), true));
        }
    }
}

/// Checks an admin event against the pending action; reports success only on its confirmation.
pub fn on_event(pending: &mut Option<Pending>, notice: &mut Option<Notice>, event: &AdminEvent) {
    let Some(p) = pending.as_ref() else { return };
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
                        e.code
                            .map_or(TurnState::Completed.as_str(), ErrorCode::as_str)
                    ),
                    true,
                ))
            }
        }
        _ => None,
    };
    if let Some(n) = outcome {
        *pending = None;
        *notice = Some(n);
    }
}
