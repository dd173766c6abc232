//! Several replicas on one database (`replicas.md`): registration and leases, session
//! ownership with epochs, fenced writes, takeover of a lost replica's sessions, graceful stop.
//! [`registry`] registers this process and renews its lease; [`cluster`] judges the others'
//! leases, claims and wakes sessions, and carries wake-ups, commits and operator actions
//! between replicas (`LISTEN/NOTIFY`); the store holds ownership (`store::claim`, the fenced
//! writes of each backend) and the supervisor's actors write under their fence
//! (`supervisor/actor/owner.rs`). Where the code refines the model: a claim never judges a
//! lease (only the scan's `MarkLost` does, never its own, and not within a lease of a store
//! outage), and a replica that claims a session it owns already adopts its epoch.
//!
//! The protocol is designed and model-checked before it is built. `src/replica/model.pml` is
//! a Promela model of it whose header maps every step to the function and SQL that will
//! implement it here, states what is checked and why "no two replicas run a session's worker at
//! once" means "at most one worker is effective" (the literal reading is false for any lease
//! protocol while a replica can be `SIGSTOP`ped). `model_check` runs spin on it in `cargo test`.
//!
//! # What the code must do for the model to describe it
//!
//! 1. **One step, one serialized transaction.** A fenced change opens with `SELECT 1 FROM
//!    sessions WHERE id = $s AND owner = $me AND owner_epoch = $e FOR SHARE`, held to commit.
//!    `FOR SHARE`, not `FOR KEY SHARE`: the claim's `UPDATE` takes `FOR NO KEY UPDATE`, which
//!    conflicts with the former only. Without the lock, READ COMMITTED lets a write that read
//!    the session before a claim commit after it.
//! 2. **Lock order.** A session's row before its turns and workers rows; a batch that touches
//!    several sessions (the journal's group commit, the sweeper's claims) locks them in id order.
//! 3. **The fence on every actor write.** `WorkerSpawned`, `Dispatch`, `Event`, the actor's
//!    `EndTurn` (reply, crash, clocks, cancel, kill, drain), `WorkerState`, `WorkerHeartbeat`,
//!    `WorkerExited` and the release carry `Fence { owner, epoch }`. A refused fence is
//!    `Applied::Fenced` for that change alone; the rest of the batch applies. The fence checks
//!    the session row, not the replica's lease: a replica whose lease ran out may still write
//!    until a peer claims (ownership has not changed), and locking the replicas row on every
//!    write would contend with renewals.
//! 4. **Fenced means gone.** On `Applied::Fenced` the actor SIGKILLs its worker's group, writes
//!    nothing more for the session and forgets its queue (the turns stay queued in the store).
//!    Output the worker still sends is recorded as late (`Change::Reject`, unfenced), never as
//!    an event or an end.
//! 5. **`claim` is one transaction**: lock the session row; claim only if `owner IS NULL` or
//!    the owner's replicas row is not `live`, and the claimer's own row is `live`;
//!    `owner_epoch + 1`; every open turn of the session that is not `queued` ends
//!    `replica_lost` through the conditional end (with its events); every open workers row of
//!    the session is exited (`replica_lost`, not intentional). Queued turns stay for the new
//!    owner. Split in two, a crash between them leaves a dispatched turn open ahead of the queue.
//! 6. **Three callers claim**: the replica that inserted a turn for a session with no live
//!    owner; the queued-turn scan (at most 1 s apart); the sweeper, for *every* session a lost
//!    replica owns, queued turns or not (the seeded bug `BAD_SWEEP_ONLY_QUEUED` shows a lost
//!    replica's dispatched last turn never ending otherwise).
//! 7. **Leases are judged once, by the database clock.** `mark_lost` is `UPDATE replicas SET
//!    state = 'lost' WHERE state = 'live' AND lease_until < clock_timestamp()`; `renew` is
//!    `... WHERE id = $me AND state = 'live'`, so a lost row never comes back. Use
//!    `clock_timestamp()`, not `now()` (the transaction's start). Replicas' clocks are never
//!    compared. A replica that is lost or restarts registers a new row (a new id).
//! 8. **A renewal that updates no row means lost**: SIGKILL every worker group, drop every
//!    actor without writing, register anew. A renewal that fails with an error (the store is
//!    unreachable) is not lost: keep the workers and retry; fencing makes that safe.
//! 9. **Dispatch in order.** `... WHERE id = $t AND state = 'queued' AND NOT EXISTS` an earlier
//!    open turn of the session, plus the fence. The session's order is commit order (`seq`
//!    given under the session row's lock at insert); the owner reads queued turns from the
//!    store in that order on every wake-up (NOTIFY, scan), never in notification order.
//! 10. **Ends stay first-writer-wins** (`ended_at IS NULL`). The actor's ends are fenced; the
//!     takeover's `replica_lost` and the stranded sweeper's ends are not, and they end only
//!     turns that reached a worker.
//! 11. **Graceful stop** only with a live peer: state `stopping` (claim nothing, dispatch
//!     nothing new); drain up to `stop_drain`, then fail what is in flight `gateway_shutdown`
//!     (fenced); release each session (`WorkerExited{intentional}` and `UPDATE sessions SET
//!     owner = NULL WHERE id = $s AND owner = $me AND owner_epoch = $e`, then NOTIFY); then
//!     state `stopped`. A stop never fails a queued turn.
//! 12. **Workers cannot act on their own.** A worker never writes to the store; its output
//!     reaches it only through its replica's fenced changes. It dies with its replica (own
//!     process group, `PR_SET_PDEATHSIG` in `supervisor/spawner.rs`, start-up recovery of this
//!     host's leftovers in `supervisor/recovery.rs`, both existing).
//! 13. **Rows say whose they are.** Workers rows carry `replica_id` and `session_id` (the claim
//!     closes the previous owner's); a fence names a registration id, never a host name.
//!
//! Not required: a watchdog outside the replica that kills its workers before the database
//! expires its lease would make the literal "no second worker process" true (`-DWATCHDOG` in
//! the model), but only while that watchdog itself is never paused.

pub mod cluster;
pub mod registry;

#[cfg(test)]
mod model_check;
