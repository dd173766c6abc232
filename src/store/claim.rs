//! What a claim decides and writes, the same on every backend (`replica.rs` obligation 5):
//! a session may be taken when it has no owner, its owner is this replica, or its owner is no
//! longer live; taking it fails the open turns that reached a worker (`replica_lost`) and
//! closes the open worker rows (the previous owner's workers). Queued turns stay.

use super::{Change, WorkerExit};
use crate::api::state::ExitReason;
use crate::api::{ErrorCode, TurnEnding};
use crate::ids::{MessageId, ReplicaId, SessionId, TurnId, WorkerId};

/// The claimer's view of the session's current owner.
pub struct Owner<'a> {
    /// The owner's id, if any.
    pub id: Option<&'a str>,
    /// The owner's replica state (`live`, `stopping`, `lost`, `stopped`), if it has a row.
    pub state: Option<&'a str>,
}

/// What a claim does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Take the session over (a new epoch, the takeover's writes).
    Take,
    /// The claimer owns it already: keep its epoch, write nothing.
    Adopt,
    /// A replica not known to be gone owns it.
    Held,
}

/// What `me` may do with a session `owner` holds. Leases are not judged here (only
/// [`super::Change::MarkLost`] judges them): a live or stopping owner keeps its sessions (a
/// stopping one finishes its turns in flight and releases them itself), and a lost or stopped
/// one never comes back.
pub fn may_claim(owner: &Owner<'_>, me: &ReplicaId) -> Verdict {
    match owner.id {
        Some(id) if id == me.as_str() => Verdict::Adopt,
        Some(_) if matches!(owner.state, Some("live" | "stopping")) => Verdict::Held,
        _ => Verdict::Take,
    }
}

/// What a claim answers without writing, when it does not take the session over: the
/// claimer's own session adopted at its epoch, or the live owner that keeps it. `None`: take
/// it.
pub fn answer(
    owner: Option<String>,
    state: Option<&str>,
    epoch: i64,
    me: &ReplicaId,
) -> Option<super::Applied> {
    let current = Owner {
        id: owner.as_deref(),
        state,
    };
    match may_claim(&current, me) {
        Verdict::Take => None,
        Verdict::Adopt => Some(super::Applied::Claimed {
            epoch,
            events: Vec::new(),
        }),
        Verdict::Held => Some(super::Applied::Held {
            owner: owner.map(ReplicaId),
        }),
    }
}

/// The exits of a deleted session's workers, recorded by whoever deleted it (the owner, if
/// another replica, is refused its own record).
pub fn deleted(workers: Vec<(WorkerId, u32)>, at: i64) -> Vec<Change> {
    workers
        .into_iter()
        .map(|(worker_id, generation)| {
            Change::WorkerExited(WorkerExit {
                worker_id,
                generation,
                exit_code: None,
                signal: None,
                at,
                intentional: true,
                reason: ExitReason::SessionDeleted.to_string(),
                stderr_tail: String::new(),
            })
        })
        .collect()
}

/// The writes that close a lost owner's books on a session: each open turn that reached a
/// worker fails `replica_lost`, each open worker row exits (`replica_lost`, not intentional,
/// exit code unknown).
pub fn takeover(
    session: &SessionId,
    turns: Vec<(TurnId, MessageId)>,
    workers: Vec<(WorkerId, u32)>,
    at: i64,
) -> Vec<Change> {
    let mut out = Vec::with_capacity(turns.len() + workers.len());
    for (turn, message) in turns {
        let ending = TurnEnding::failed(
            ErrorCode::ReplicaLost,
            "the gateway replica running this turn was lost (it stopped renewing its lease); \
             another replica took the session over",
        );
        out.push(Change::EndTurn {
            session_id: session.clone(),
            events: ending.events(&turn, &message, at),
            turn_id: turn,
            ending,
            at,
            stranded: true,
        });
    }
    for (worker, generation) in workers {
        out.push(Change::WorkerExited(WorkerExit {
            worker_id: worker,
            generation,
            exit_code: None,
            signal: None,
            at,
            intentional: false,
            reason: ExitReason::ReplicaLost.to_string(),
            stderr_tail: String::new(),
        }));
    }
    out
}
