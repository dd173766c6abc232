//! The admin lifecycle events a write implies, derived in one place so every backend logs the
//! same events for the same writes (protocol.md §3).

use super::{Applied, Change, Progress};
use crate::api::lifecycle::{
    OperatorAction, OutputRejected, TurnDispatched, TurnEnded, TurnProgress, TurnQueued,
    TurnStranded, WorkerExited, WorkerReady, WorkerSpawned,
};
use crate::api::state::{ActionKind, RejectionKind};
use crate::api::{AdminEvent, Outcome, TurnEnding, WorkerState, signal_name};
use crate::ids::{SessionId, TurnId, WorkerId};

/// One admin event to log, with what it is about (for a turn's timeline and a worker's).
pub struct Lifecycle {
    /// The event.
    pub event: AdminEvent,
    /// The turn it is about.
    pub turn_id: Option<TurnId>,
    /// The worker it is about.
    pub worker_id: Option<WorkerId>,
}

impl From<AdminEvent> for Lifecycle {
    fn from(event: AdminEvent) -> Self {
        Self {
            turn_id: event.turn_id().cloned(),
            worker_id: event.worker_id().cloned(),
            event,
        }
    }
}

/// The admin events for `write`, given what it did.
pub fn derive(write: &Change, applied: &Applied) -> Vec<Lifecycle> {
    if let Change::Fenced { change, fence } = write {
        if matches!(applied, Applied::Fenced) {
            return Vec::new();
        }
        let mut out = derive(change, applied);
        for l in &mut out {
            if let AdminEvent::TurnDispatched(d) = &mut l.event {
                d.replica_id = Some(fence.owner.clone());
            }
        }
        return out;
    }
    derive_events(write, applied)
        .into_iter()
        .map(|event| match (&event, write) {
            // An operator's action is about its target, which the event names as text.
            (AdminEvent::OperatorAction(a), Change::Action(_)) => Lifecycle {
                turn_id: (a.action == ActionKind::Cancel).then(|| TurnId(a.target.clone())),
                worker_id: (a.action == ActionKind::Kill).then(|| WorkerId(a.target.clone())),
                event,
            },
            _ => event.into(),
        })
        .collect()
}

fn derive_events(write: &Change, applied: &Applied) -> Vec<AdminEvent> {
    match (write, applied) {
        (Change::InsertTurn { turn }, Applied::Turn { created: true, .. }) => {
            vec![AdminEvent::TurnQueued(TurnQueued {
                turn_id: turn.id.clone(),
                session_id: turn.session_id.clone(),
                agent_id: turn.agent_id.clone(),
                message_id: turn.message_id.clone(),
                timestamp: turn.created_at,
            })]
        }
        (
            Change::Dispatch {
                turn_id,
                worker_id,
                generation,
                at,
                deadline_at,
                stall_ms,
            },
            Applied::Changed,
        ) => vec![AdminEvent::TurnDispatched(TurnDispatched {
            turn_id: turn_id.clone(),
            worker_id: worker_id.clone(),
            generation: *generation,
            deadline_at: *deadline_at,
            stall_ms: Some(*stall_ms),
            timestamp: *at,
            replica_id: None,
        })],
        (
            Change::Event {
                turn_id: Some(turn),
                progress: Progress::Announce,
                at,
                ..
            },
            Applied::Events(e),
        ) if !e.is_empty() => vec![AdminEvent::TurnProgress(TurnProgress {
            turn_id: turn.clone(),
            timestamp: *at,
        })],
        (
            Change::Event {
                turn_id: Some(turn),
                from: Some((worker, generation)),
                at,
                ..
            },
            Applied::Events(e),
        ) if e.is_empty() => vec![AdminEvent::OutputRejected(OutputRejected {
            worker_id: worker.clone(),
            generation: *generation,
            turn_id: Some(turn.clone()),
            kind: RejectionKind::Late,
            reason: "its turn had already ended".into(),
            timestamp: *at,
        })],
        (
            Change::EndTurn {
                session_id,
                turn_id,
                ending,
                at,
                stranded,
                ..
            },
            Applied::Events(e),
        ) if !e.is_empty() => ended(session_id, turn_id, ending, *at, *stranded),
        _ => derive_worker(write, applied),
    }
}

/// Worker, output and operator events.
fn derive_worker(write: &Change, applied: &Applied) -> Vec<AdminEvent> {
    match (write, applied) {
        (Change::WorkerSpawned(s), _) => vec![AdminEvent::WorkerSpawned(WorkerSpawned {
            worker_id: s.worker_id.clone(),
            generation: s.generation,
            pid: s.pid,
            agent_id: s.agent_id.clone(),
            session_id: s.session_id.clone(),
            timestamp: s.at,
            replica_id: Some(s.replica_id.clone()),
        })],
        (
            Change::WorkerState {
                worker_id,
                generation,
                state: WorkerState::Ready,
                at,
                ..
            },
            Applied::Changed,
        ) => vec![AdminEvent::WorkerReady(WorkerReady {
            worker_id: worker_id.clone(),
            generation: *generation,
            timestamp: *at,
        })],
        (Change::WorkerExited(e), Applied::Changed) => {
            vec![AdminEvent::WorkerExited(WorkerExited {
                worker_id: e.worker_id.clone(),
                generation: e.generation,
                exit_code: e.exit_code,
                signal: e.signal.map(signal_name),
                intentional: e.intentional,
                reason: e.reason.clone(),
                timestamp: e.at,
            })]
        }
        (Change::Reject(r), _) => vec![AdminEvent::OutputRejected(OutputRejected {
            worker_id: r.worker_id.clone(),
            generation: r.generation,
            turn_id: r.turn_id.clone(),
            kind: r.kind,
            reason: r.reason.clone(),
            timestamp: r.at,
        })],
        (Change::Action(a), _) => vec![AdminEvent::OperatorAction(OperatorAction {
            action: a.action,
            target: a.target.clone(),
            reason: a.reason.clone(),
            token: a.token.clone(),
            timestamp: a.at,
        })],
        _ => Vec::new(),
    }
}

/// `turn.stranded` (when it was) and `turn.completed` / `turn.failed`.
fn ended(
    session_id: &SessionId,
    turn_id: &TurnId,
    ending: &TurnEnding,
    at: i64,
    stranded: bool,
) -> Vec<AdminEvent> {
    let mut out = Vec::with_capacity(2);
    if stranded {
        out.push(AdminEvent::TurnStranded(TurnStranded {
            turn_id: turn_id.clone(),
            session_id: session_id.clone(),
            reason: ending.code,
            timestamp: at,
        }));
    }
    let failed = ending.outcome == Outcome::Failed;
    let end = TurnEnded {
        turn_id: turn_id.clone(),
        session_id: session_id.clone(),
        code: if failed { ending.code } else { None },
        error: if failed { ending.error.clone() } else { None },
        exit_code: ending.exit_code,
        signal: ending.signal.map(signal_name),
        timestamp: at,
    };
    out.push(if failed {
        AdminEvent::TurnFailed(end)
    } else {
        AdminEvent::TurnCompleted(end)
    });
    out
}
