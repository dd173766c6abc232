//! Taking the next turn: waiting for capacity, spawning the worker, dispatching the turn and
//! confirming the dispatch.

use std::collections::VecDeque;
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, oneshot};
use tokio::time::Instant;

use super::{Actor, Live, Phase, Waiter};
use crate::api::{ErrorCode, ToWorker, TurnEnding, WorkerState};
use crate::clock::now_ms;
use crate::journal::JournalError;
use crate::store::{Applied, Change, WorkerSpawn};
use crate::supervisor::process::{Process, Spawn};
use crate::supervisor::{QueuedTurn, worker_env};

impl Actor {
    /// Starts the next queued turn when nothing is in flight.
    pub(super) async fn advance(&mut self) {
        if self.releasing.is_some() {
            self.release_if_idle().await;
            return;
        }
        loop {
            match &mut self.phase {
                Phase::Idle { .. } => {}
                Phase::Starting {
                    turn: slot @ None, ..
                } => {
                    *slot = self.queue.pop_front();
                    return;
                }
                _ => return,
            }
            let Some(turn) = self.queue.pop_front() else {
                return;
            };
            if self.worker.as_ref().is_some_and(|w| w.ready) {
                self.dispatch(turn);
                return;
            }
            match Arc::clone(&self.ctx.capacity).try_acquire_owned() {
                Ok(permit) => self.spawn(turn, permit).await,
                Err(_) => {
                    // No free slot: the least recently used idle worker yields its own.
                    let waiting = self.ctx.turn_waits();
                    let (tx, rx) = oneshot::channel();
                    let capacity = Arc::clone(&self.ctx.capacity);
                    let waiter = Waiter {
                        task: tokio::spawn(async move {
                            if let Ok(p) = capacity.acquire_owned().await {
                                let _ = tx.send(p);
                            }
                        }),
                        _waiting: waiting,
                    };
                    let wait = self
                        .agent()
                        .map_or(std::time::Duration::ZERO, |a| a.queue_timeout);
                    self.send(Change::TurnWaiting {
                        turn_id: turn.turn_id.clone(),
                        until: now_ms() + wait.as_millis() as i64,
                    });
                    self.phase = Phase::WaitingCapacity {
                        turn,
                        permit: rx,
                        until: Instant::now() + wait,
                        _waiter: waiter,
                    };
                    return;
                }
            }
        }
    }

    pub(super) async fn spawn(&mut self, turn: QueuedTurn, permit: OwnedSemaphorePermit) {
        let Some(agent) = self.agent().cloned() else {
            let msg = format!("agent `{}` is no longer configured", self.agent_id);
            self.end(&turn, TurnEnding::failed(ErrorCode::WorkerSpawnFailed, msg))
                .await;
            return;
        };
        if self.generation == 0 {
            self.generation = self
                .ctx
                .store
                .next_generation(&self.worker_id)
                .await
                .unwrap_or(1)
                .saturating_sub(1);
        }
        self.generation += 1;
        let spec = Spawn {
            command: &agent.command,
            env: worker_env(
                &self.ctx.config,
                &self.agent_id,
                (&self.session, self.thread.as_deref()),
                &self.worker_id,
                &agent,
            ),
            cwd: agent.cwd.as_deref(),
            max_line: self.ctx.config.gateway.max_line_bytes,
            generation: self.generation,
        };
        match Process::spawn(&spec, permit).await {
            Err(e) => {
                let msg = format!(
                    "the worker command `{}` could not be started: {e}",
                    agent.command.join(" ")
                );
                tracing::warn!(session = %self.session, error = %e, "worker spawn failed");
                self.end(&turn, TurnEnding::failed(ErrorCode::WorkerSpawnFailed, msg))
                    .await;
            }
            Ok(mut proc) => {
                proc.list(
                    self.ctx
                        .live
                        .enter(&self.worker_id, proc.generation, proc.pid),
                );
                self.send(Change::WorkerSpawned(WorkerSpawn {
                    replica_id: self.fence.owner.clone(),
                    worker_id: self.worker_id.clone(),
                    generation: proc.generation,
                    pid: proc.pid,
                    origin: proc.origin.clone(),
                    agent_id: self.agent_id.clone(),
                    session_id: self.session.clone(),
                    at: now_ms(),
                }));
                self.worker = Some(Live {
                    proc,
                    ready: false,
                    last_heartbeat_write: None,
                    ended: VecDeque::new(),
                });
                self.phase = Phase::Starting {
                    turn: Some(turn),
                    until: Instant::now() + agent.startup_timeout,
                };
            }
        }
    }

    pub(super) fn dispatch(&mut self, turn: QueuedTurn) {
        let (Some(agent), Some(live)) = (
            self.ctx.config.agents.get(&self.agent_id),
            self.worker.as_ref(),
        ) else {
            return;
        };
        let (stall, deadline) = (agent.stall_timeout, agent.deadline);
        let at = now_ms();
        let write = Change::Dispatch {
            turn_id: turn.turn_id.clone(),
            worker_id: self.worker_id.clone(),
            generation: live.proc.generation,
            at,
            deadline_at: at + deadline.as_millis() as i64,
            stall_ms: stall.as_millis() as i64,
        };
        // Not awaited: the worker starts while the write commits (see `Phase::Busy::dispatch`).
        let receipt = self.ctx.journal.submit(write.fenced(&self.fence));
        live.proc.send(&ToWorker::Turn {
            turn_id: turn.turn_id.clone(),
            message_id: turn.message_id.clone(),
            content: turn.content.clone(),
        });
        self.worker_state(WorkerState::Busy, Some(turn.turn_id.clone()));
        let now = Instant::now();
        self.phase = Phase::Busy {
            turn,
            started: now,
            stall_at: now + stall,
            deadline_at: now + deadline,
            text: String::new(),
            produced: false,
            announced: None,
            dispatch: Some(receipt),
        };
    }

    /// The dispatch write committed. If the turn had ended before it (an operator's cancel
    /// raced the dispatch), the worker is told to drop it and nothing more is written for it.
    pub(super) fn on_dispatched(&mut self, result: &Result<Applied, JournalError>) {
        let confirmed = matches!(result, Ok(Applied::Changed));
        if let Err(e) = result {
            tracing::error!(session = %self.session, error = %e, "dispatch write failed");
        }
        if matches!(result, Ok(Applied::Fenced)) {
            self.fenced();
            return;
        }
        if !confirmed {
            // Ended meanwhile, or an earlier turn of the session is still open (it reached
            // the store by another replica): the store's queue decides what comes next.
            self.reload = true;
        }
        if confirmed {
            if let Phase::Busy { dispatch, .. } = &mut self.phase {
                *dispatch = None;
            }
            return;
        }
        if let Phase::Busy { turn, .. } = self.take_phase() {
            if let Some(live) = &self.worker {
                live.proc.send(&ToWorker::Cancel {
                    turn_id: turn.turn_id.clone(),
                });
            }
            self.finish_turn(&turn);
        }
    }
}
