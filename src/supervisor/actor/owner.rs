//! The actor as its session's owner among replicas: the session's order read from the store,
//! the end of its ownership when another replica took the session (fenced), and the release
//! of the session on a graceful stop with peers (`replica.rs`, obligations 4, 9 and 11).

use nix::sys::signal::Signal;
use tokio::time::Instant;

use super::{Actor, Cmd, Phase};
use crate::api::state::ExitReason;
use crate::api::{ErrorCode, TurnEnding};
use crate::ids::TurnId;
use crate::store::Change;
use crate::supervisor::QueuedTurn;
use crate::supervisor::process::signal_group;
use crate::supervisor::stop::StopHow;

impl Actor {
    /// A turn handed over in memory: the next in the session's order joins the queue; one
    /// already known is ignored; one beyond a gap (another replica accepted the turns between)
    /// makes the actor read the store's queue instead.
    pub(super) fn take(&mut self, turn: QueuedTurn) {
        if turn.seq <= self.last_seq {
            return;
        }
        if turn.seq == self.last_seq + 1 && !self.reload {
            self.last_seq = turn.seq;
            self.queue.push_back(turn);
        } else {
            self.reload = true;
        }
    }

    /// The turn this actor holds outside its queue (starting, waiting, in flight).
    pub(super) fn current(&self) -> Option<&TurnId> {
        match &self.phase {
            Phase::Busy { turn, .. }
            | Phase::Starting {
                turn: Some(turn), ..
            }
            | Phase::WaitingCapacity { turn, .. } => Some(&turn.turn_id),
            _ => None,
        }
    }

    /// Replaces the queue with the store's queued turns in the session's order (the one the
    /// actor holds excepted). A read that fails is tried again at the next wake-up.
    pub(super) async fn reload_queue(&mut self) {
        if self.releasing.is_some() {
            self.reload = false;
            return;
        }
        // Woken: the session may have been taken from this replica (deleted elsewhere).
        if let Ok(owner) = self
            .ctx
            .store
            .owner(&self.session, crate::clock::now_ms())
            .await
            && owner.is_none_or(|(o, e, _)| o != self.fence.owner || e != self.fence.epoch)
        {
            self.gone.store(true, std::sync::atomic::Ordering::Relaxed);
            self.reload = false;
            return;
        }
        match self.ctx.store.queued_turns(&self.session).await {
            Ok((rows, last)) => {
                let current = self.current().cloned();
                self.queue = rows
                    .into_iter()
                    .filter(|r| Some(&r.turn_id) != current.as_ref())
                    .map(|r| QueuedTurn {
                        turn_id: r.turn_id,
                        message_id: r.message_id,
                        content: r.content,
                        seq: r.seq,
                    })
                    .collect();
                self.last_seq = self.last_seq.max(last);
                self.reload = false;
            }
            Err(e) => {
                tracing::warn!(session = %self.session, error = %e, "could not read the session's queue");
                self.reload = false;
            }
        }
    }

    /// Another replica owns the session now: kill the worker's group without writing (the new
    /// owner closed its row), forget the queue (the turns stay queued in the store) and retire.
    pub(super) fn fenced(&mut self) {
        tracing::warn!(session = %self.session, "the session was taken over by another replica; stopping its worker");
        if let Some(live) = self.worker.take() {
            signal_group(live.proc.pid, Signal::SIGKILL);
        }
        self.queue.clear();
        self.phase = Phase::Idle {
            since: Instant::now(),
        };
        self.ctx.forget(&self.session, &self.fence);
        for cmd in self.retire(true) {
            drop_cmd(cmd, self);
        }
    }

    /// Releasing: once nothing is in flight, stop the worker, give the session up and retire.
    pub(super) async fn release_if_idle(&mut self) {
        if matches!(self.phase, Phase::Busy { .. }) {
            return;
        }
        // A turn starting or waiting for capacity was never dispatched: it stays queued.
        self.take_phase();
        self.queue.clear();
        self.stop_worker(StopHow::Graceful, ExitReason::GatewayShutdown.to_string());
        for h in self.stops.drain(..) {
            let _ = h.await;
        }
        let release = Change::Release {
            fence: self.fence.clone(),
        };
        if let Err(e) = self.ctx.journal.write(release).await {
            tracing::warn!(session = %self.session, error = %e, "could not release the session");
        }
        self.ctx.forget(&self.session, &self.fence);
        for cmd in self.retire(true) {
            drop_cmd(cmd, self);
        }
    }

    /// The drain is over: the turn still in flight fails `gateway_shutdown`; a turn not yet
    /// dispatched stays queued for a peer.
    pub(super) async fn drain_over(&mut self) {
        match self.take_phase() {
            Phase::Busy { turn, .. } => {
                let ending = TurnEnding::failed(
                    ErrorCode::GatewayShutdown,
                    "the gateway replica stopped before the turn finished (its drain ran out)",
                );
                self.end(&turn, ending).await;
                self.finish_turn(&turn);
            }
            Phase::Starting { .. } | Phase::WaitingCapacity { .. } | Phase::Idle { .. } => {}
        }
        self.release_if_idle().await;
    }
}

/// Answers a command that reached a retired actor.
fn drop_cmd(cmd: Cmd, actor: &Actor) {
    match cmd {
        Cmd::Cancel { reply, .. } => drop(reply.send(None)),
        Cmd::Kill { reply, .. } => drop(reply.send(Err(
            crate::supervisor::ActionError::UnknownWorker(actor.worker_id.clone()),
        ))),
        Cmd::Delete { reply } => drop(reply.send(())),
        Cmd::Stderr { reply } => drop(reply.send(None)),
        Cmd::Evict => actor.ctx.eviction_refused(),
        Cmd::Turn(_) | Cmd::Shutdown | Cmd::Wake | Cmd::Fenced | Cmd::Release { .. } => {}
    }
}
