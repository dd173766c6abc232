//! The Events view's lines: an admin event as one line of text with its tone, and the
//! console's own notes.

use crate::api::state::ExitReason;
use crate::api::{AdminEvent, ErrorCode};

/// One line of the admin log.
#[derive(Clone, Debug, PartialEq)]
pub struct EventLine {
    /// Admin sequence number; `None` for the console's own notes (gaps, reconnects).
    pub seq: Option<i64>,
    /// Epoch ms.
    pub at: i64,
    /// Event name (or the console's note kind).
    pub kind: String,
    /// A one-line summary.
    pub text: String,
    /// How loudly to show it.
    pub tone: Tone,
    /// The turn it is about, for enter to open.
    pub turn: Option<crate::ids::TurnId>,
    /// The worker it is about, for enter to open when it names no turn.
    pub worker: Option<crate::ids::WorkerId>,
}

/// How an event line is shown.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Tone {
    /// As any line.
    #[default]
    Plain,
    /// Something to look at (a gap in the log).
    Warn,
    /// Something broke (a crash, a stranded or failed turn).
    Bad,
}

/// The console's own lines in the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Note {
    /// Link state and operator actions.
    Console,
    /// The admin log did not line up with the console's cursor.
    Gap,
}

impl Note {
    /// The kind column's word.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Console => "console",
            Self::Gap => "gap",
        }
    }
}

/// `137 SIGKILL`, `1`, `0`: an exit as a shell shows it, with the signal decoded.
pub fn exit_text(code: Option<i32>, signal: Option<&str>) -> String {
    match (signal, code) {
        (Some(sig), _) => {
            let n = sig
                .parse::<nix::sys::signal::Signal>()
                .map_or(0, |s| s as i32);
            format!("{} {sig}", 128 + n)
        }
        (None, Some(c)) => c.to_string(),
        (None, None) => "?".into(),
    }
}

/// How loudly the Events view shows an event.
pub(super) fn tone(event: &AdminEvent) -> Tone {
    match event {
        AdminEvent::WorkerExited(e) if !e.intentional => Tone::Bad,
        AdminEvent::TurnStranded(_) | AdminEvent::TurnFailed(_) => Tone::Bad,
        _ => Tone::Plain,
    }
}

/// A one-line description of an admin event for the Events view.
pub fn summary(event: &AdminEvent) -> String {
    let dash = |s: Option<&str>| s.unwrap_or("-").to_owned();
    match event {
        AdminEvent::WorkerSpawned(e) => format!(
            "{} gen {} pid {} ({})",
            e.worker_id, e.generation, e.pid, e.agent_id
        ),
        AdminEvent::WorkerReady(e) => format!("{} gen {} ready", e.worker_id, e.generation),
        AdminEvent::WorkerExited(e) => {
            let exit = exit_text(e.exit_code, e.signal.as_deref());
            let intent = if e.intentional {
                "intentional"
            } else if ExitReason::of(&e.reason).is_some_and(ExitReason::is_recovery) {
                // Found gone when a gateway started: nobody saw how it ended.
                "unseen (gateway restarted)"
            } else if e.exit_code == Some(0) && e.signal.is_none() {
                // A clean exit nobody asked for: `worker_exited`, not a crash.
                "unasked"
            } else {
                "CRASH"
            };
            format!(
                "{} gen {} exit {exit} {intent} ({})",
                e.worker_id, e.generation, e.reason
            )
        }
        AdminEvent::OutputRejected(e) => format!("{} {}: {}", e.worker_id, e.kind, e.reason),
        AdminEvent::TurnQueued(e) => format!("{} queued ({})", e.turn_id, e.agent_id),
        AdminEvent::TurnDispatched(e) => {
            format!("{} → {} gen {}", e.turn_id, e.worker_id, e.generation)
        }
        AdminEvent::TurnProgress(e) => format!("{} progress", e.turn_id),
        AdminEvent::TurnStranded(e) => format!(
            "{} STRANDED ({})",
            e.turn_id,
            dash(e.reason.map(ErrorCode::as_str))
        ),
        AdminEvent::TurnCompleted(e) => format!("{} completed", e.turn_id),
        AdminEvent::TurnFailed(e) => format!(
            "{} failed {}: {}",
            e.turn_id,
            dash(e.code.map(ErrorCode::as_str)),
            dash(e.error.as_deref())
        ),
        AdminEvent::OperatorAction(e) => {
            format!("{} {} by {}: {}", e.action, e.target, e.token, e.reason)
        }
    }
}
