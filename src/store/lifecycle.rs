//! The admin lifecycle events a write implies, derived in one place so every backend logs the
//! same events for the same writes (protocol.md §3).

use serde_json::{Value, json};

use super::{Applied, Progress, Write};
use crate::api::TurnEnding;
use crate::api::{Outcome, signal_name};
use crate::ids::{SessionId, TurnId, WorkerId};

/// One admin event to log.
pub struct Lifecycle {
    /// Event name.
    pub kind: &'static str,
    /// The turn it is about, for the turn's timeline.
    pub turn_id: Option<TurnId>,
    /// The worker it is about.
    pub worker_id: Option<WorkerId>,
    /// Its JSON.
    pub data: Value,
}

fn ev(
    kind: &'static str,
    turn: Option<&TurnId>,
    worker: Option<&WorkerId>,
    mut data: Value,
    at: i64,
) -> Lifecycle {
    data["timestamp"] = json!(at);
    Lifecycle {
        kind,
        turn_id: turn.cloned(),
        worker_id: worker.cloned(),
        data,
    }
}

/// The admin events for `write`, given what it did.
pub fn derive(write: &Write, applied: &Applied) -> Vec<Lifecycle> {
    match (write, applied) {
        (Write::InsertTurn { turn }, Applied::Turn { created: true, .. }) => vec![ev(
            "turn.queued",
            Some(&turn.id),
            None,
            json!({ "turnId": turn.id, "sessionId": turn.session_id, "agentId": turn.agent_id, "messageId": turn.message_id }),
            turn.created_at,
        )],
        (
            Write::Dispatch {
                turn_id,
                worker_id,
                generation,
                at,
                deadline_at,
                ..
            },
            Applied::Done(true),
        ) => vec![ev(
            "turn.dispatched",
            Some(turn_id),
            Some(worker_id),
            json!({ "turnId": turn_id, "workerId": worker_id, "generation": generation, "deadlineAt": deadline_at }),
            *at,
        )],
        (
            Write::Event {
                turn_id: Some(turn),
                progress: Progress::Announce,
                at,
                ..
            },
            Applied::Events(e),
        ) if !e.is_empty() => {
            vec![ev(
                "turn.progress",
                Some(turn),
                None,
                json!({ "turnId": turn }),
                *at,
            )]
        }
        (
            Write::Event {
                turn_id: Some(turn),
                from: Some((worker, generation)),
                at,
                ..
            },
            Applied::Events(e),
        ) if e.is_empty() => {
            vec![rejected(
                worker,
                *generation,
                Some(turn),
                "late",
                "its turn had already ended",
                *at,
            )]
        }
        (
            Write::EndTurn {
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
fn derive_worker(write: &Write, applied: &Applied) -> Vec<Lifecycle> {
    match (write, applied) {
        (Write::WorkerSpawned(s), _) => vec![ev(
            "worker.spawned",
            None,
            Some(&s.worker_id),
            json!({ "workerId": s.worker_id, "generation": s.generation, "pid": s.pid, "agentId": s.agent_id, "sessionId": s.session_id }),
            s.at,
        )],
        (
            Write::WorkerState {
                worker_id,
                generation,
                state: "ready",
                at,
                ..
            },
            Applied::Done(true),
        ) => vec![ev(
            "worker.ready",
            None,
            Some(worker_id),
            json!({ "workerId": worker_id, "generation": generation }),
            *at,
        )],
        (Write::WorkerExited(e), Applied::Done(true)) => vec![ev(
            "worker.exited",
            None,
            Some(&e.worker_id),
            json!({
                "workerId": e.worker_id, "generation": e.generation, "exitCode": e.exit_code,
                "signal": e.signal.map(signal_name), "intentional": e.intentional, "reason": e.reason,
            }),
            e.at,
        )],
        (Write::Reject(r), _) => vec![rejected(
            &r.worker_id,
            r.generation,
            r.turn_id.as_ref(),
            r.kind,
            &r.reason,
            r.at,
        )],
        (Write::Action(a), _) => vec![ev(
            "operator.action",
            (a.action == "cancel")
                .then(|| TurnId(a.target.clone()))
                .as_ref(),
            (a.action == "kill")
                .then(|| WorkerId(a.target.clone()))
                .as_ref(),
            json!({ "action": a.action, "target": a.target, "reason": a.reason, "token": a.token }),
            a.at,
        )],
        _ => Vec::new(),
    }
}

fn rejected(
    worker: &WorkerId,
    generation: u32,
    turn: Option<&TurnId>,
    kind: &str,
    reason: &str,
    at: i64,
) -> Lifecycle {
    ev(
        "worker.output_rejected",
        turn,
        Some(worker),
        json!({ "workerId": worker, "generation": generation, "turnId": turn, "kind": kind, "reason": reason }),
        at,
    )
}

/// `turn.stranded` (when it was) and `turn.completed` / `turn.failed`.
fn ended(
    session_id: &SessionId,
    turn_id: &TurnId,
    ending: &TurnEnding,
    at: i64,
    stranded: bool,
) -> Vec<Lifecycle> {
    let mut out = Vec::with_capacity(2);
    let code = ending.code.map(crate::api::ErrorCode::as_str);
    if stranded {
        out.push(ev(
            "turn.stranded",
            Some(turn_id),
            None,
            json!({ "turnId": turn_id, "sessionId": session_id, "reason": code }),
            at,
        ));
    }
    let (kind, mut data) = match ending.outcome {
        Outcome::Completed => (
            "turn.completed",
            json!({ "turnId": turn_id, "sessionId": session_id }),
        ),
        Outcome::Failed => (
            "turn.failed",
            json!({ "turnId": turn_id, "sessionId": session_id, "code": code, "error": ending.error }),
        ),
    };
    if let Some(c) = ending.exit_code {
        data["exitCode"] = json!(c);
    }
    if let Some(s) = ending.signal {
        data["signal"] = json!(signal_name(s));
    }
    out.push(ev(kind, Some(turn_id), None, data, at));
    out
}
