//! How the actor carries out commands: cancel a turn, kill its worker, close the session.

use tokio::sync::oneshot;
use tokio::time::Instant;

use super::{Actor, Cmd, Phase};
use crate::api::state::ExitReason;
use crate::api::{ErrorCode, ToWorker, TurnEnding};
use crate::store::{Change, OperatorAction};
use crate::supervisor::ActionError;
use crate::supervisor::stop::StopHow;

impl Actor {
    pub(super) async fn on_cmd(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Turn(t) => self.take(t),
            Cmd::Wake => self.reload = true,
            Cmd::Fenced => self.fenced(),
            Cmd::Release { until } => {
                if self.releasing.is_none() {
                    self.releasing = Some(until);
                }
            }
            Cmd::Cancel {
                turn_id,
                reason,
                action,
                reply,
            } => {
                let held = self.holds(&turn_id);
                if held {
                    // The cause is logged before its effects (`turn.failed`).
                    self.ctx.journal.send(Change::Action(action));
                }
                let won = held && self.cancel(&turn_id, reason).await;
                let _ = reply.send(held.then_some(won));
            }
            Cmd::Kill {
                generation,
                pid,
                action,
                reply,
            } => {
                let _ = reply.send(self.kill(generation, pid, action).await);
            }
            Cmd::Delete { reply } => {
                self.close(
                    ErrorCode::SessionDeleted,
                    "the session was deleted",
                    ExitReason::SessionDeleted,
                    Some(reply),
                )
                .await;
            }
            Cmd::Stderr { reply } => {
                let tail = self
                    .worker
                    .as_ref()
                    .map(|l| (l.proc.generation, l.proc.stderr_tail()));
                let _ = reply.send(tail);
            }
            Cmd::Evict => self.evict(),
            Cmd::Shutdown => {
                self.close(
                    ErrorCode::GatewayShutdown,
                    "the gateway is shutting down",
                    ExitReason::GatewayShutdown,
                    None,
                )
                .await;
            }
        }
    }

    async fn cancel(&mut self, turn_id: &crate::ids::TurnId, reason: String) -> bool {
        if let Some(i) = self.queue.iter().position(|t| &t.turn_id == turn_id) {
            let turn = self.queue.remove(i).expect("index from position");
            return self
                .end(
                    &turn,
                    TurnEnding::failed(ErrorCode::CancelledByOperator, reason),
                )
                .await;
        }
        match self.take_phase() {
            Phase::Busy { turn, .. } if &turn.turn_id == turn_id => {
                let won = self
                    .end(
                        &turn,
                        TurnEnding::failed(ErrorCode::CancelledByOperator, reason),
                    )
                    .await;
                if let Some(live) = &self.worker {
                    live.proc.send(&ToWorker::Cancel {
                        turn_id: turn.turn_id.clone(),
                    });
                }
                self.finish_turn(&turn);
                won
            }
            Phase::Starting {
                turn: Some(turn),
                until,
            } if &turn.turn_id == turn_id => {
                self.phase = Phase::Starting { turn: None, until };
                self.end(
                    &turn,
                    TurnEnding::failed(ErrorCode::CancelledByOperator, reason),
                )
                .await
            }
            Phase::WaitingCapacity { turn, .. } if &turn.turn_id == turn_id => {
                self.end(
                    &turn,
                    TurnEnding::failed(ErrorCode::CancelledByOperator, reason),
                )
                .await
            }
            other => {
                self.phase = other;
                false
            }
        }
    }

    /// Whether the turn is this actor's: queued, starting, waiting or in flight.
    fn holds(&self, turn_id: &crate::ids::TurnId) -> bool {
        self.queue.iter().any(|t| &t.turn_id == turn_id) || self.current() == Some(turn_id)
    }

    async fn kill(
        &mut self,
        generation: u32,
        pid: u32,
        action: OperatorAction,
    ) -> Result<(), ActionError> {
        let current = self
            .worker
            .as_ref()
            .map(|l| (l.proc.generation, l.proc.pid));
        if current != Some((generation, pid)) {
            return Err(ActionError::TargetChanged {
                worker: self.worker_id.clone(),
                generation: current.map(|c| c.0),
                pid: current.map(|c| c.1),
            });
        }
        let reason = action.reason.clone();
        // The cause is logged before its effects (`turn.failed`, `worker.exited`).
        self.ctx.journal.send(Change::Action(action));
        let sentence = format!("an operator killed the worker ({reason})");
        match self.take_phase() {
            Phase::Busy { turn, .. }
            | Phase::Starting {
                turn: Some(turn), ..
            } => {
                self.end(
                    &turn,
                    TurnEnding::failed(ErrorCode::CancelledByOperator, sentence),
                )
                .await;
            }
            other => self.phase = other,
        }
        self.phase = Phase::Idle {
            since: Instant::now(),
        };
        self.stop_worker(
            StopHow::Kill,
            format!("{}: {reason}", ExitReason::OperatorKill),
        );
        Ok(())
    }

    /// Ends everything this session owes, stops its worker and retires the actor.
    async fn close(
        &mut self,
        code: ErrorCode,
        sentence: &str,
        reason: ExitReason,
        reply: Option<oneshot::Sender<()>>,
    ) {
        let ending = || TurnEnding::failed(code, sentence);
        match self.take_phase() {
            Phase::Busy { turn, .. }
            | Phase::Starting {
                turn: Some(turn), ..
            }
            | Phase::WaitingCapacity { turn, .. } => {
                self.end(&turn, ending()).await;
            }
            Phase::Idle { .. } | Phase::Starting { turn: None, .. } => {}
        }
        for turn in std::mem::take(&mut self.queue) {
            self.end(&turn, ending()).await;
        }
        self.stop_worker(StopHow::Graceful, reason.to_string());
        let mut replies: Vec<_> = reply.into_iter().collect();
        for cmd in self.retire(true) {
            match cmd {
                Cmd::Turn(turn) => {
                    self.end(&turn, ending()).await;
                }
                Cmd::Cancel { reply, .. } => drop(reply.send(None)),
                Cmd::Kill { reply, .. } => {
                    drop(reply.send(Err(ActionError::UnknownWorker(self.worker_id.clone()))))
                }
                Cmd::Delete { reply } => replies.push(reply),
                Cmd::Stderr { reply } => drop(reply.send(None)),
                Cmd::Evict => self.ctx.eviction_refused(),
                Cmd::Shutdown | Cmd::Wake | Cmd::Fenced | Cmd::Release { .. } => {}
            }
        }
        for h in self.stops.drain(..) {
            let _ = h.await;
        }
        for r in replies {
            let _ = r.send(());
        }
    }

    /// Leaves the registry. Unless `force`, only when no command is waiting; returns the
    /// commands that arrived in the meantime (empty when not retired).
    pub(super) fn retire(&mut self, force: bool) -> Vec<Cmd> {
        let mut reg = self.ctx.registry();
        let mut pending = Vec::new();
        while let Ok(cmd) = self.rx.try_recv() {
            pending.push(cmd);
        }
        if force || pending.is_empty() {
            reg.actors.remove(&self.session);
            reg.by_worker.remove(&self.worker_id);
            self.finished = true;
        }
        pending
    }
}
