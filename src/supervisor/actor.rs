//! One session's actor: its queue, its worker, its phase and clocks. See the module docs of
//! [`crate::supervisor`].

use std::collections::VecDeque;
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot};
use tokio::time::{Instant, sleep_until};

use super::process::{Process, WorkerEvent};
use super::stop::{StopHow, clip, stop};
use super::{ActionError, Ctx, Ended, QueuedTurn, end_turn_as};
use crate::api::state::{ExitReason, RejectionKind};
use crate::api::{TurnEnding, WorkerState};
use crate::clock::now_ms;
use crate::config::AgentConfig;
use crate::ids::{SessionId, TurnId, WorkerId};
use crate::journal::{JournalError, Receipt};
use crate::store::{Applied, Change, Fence, OperatorAction, Rejection, SessionRecord};

/// Most recently ended turns remembered per worker, to tell a late reply from a stray one.
const REMEMBER_ENDED: usize = 16;
/// The longest reply text kept in memory to fill `finalText`.
const MAX_TEXT: usize = 1024 * 1024;

/// What the actor is told.
pub(super) enum Cmd {
    Turn(QueuedTurn),
    /// Cancel a turn this actor holds; the reply is `None` when it holds no such turn (nothing
    /// was logged), else whether its end won.
    Cancel {
        turn_id: TurnId,
        reason: String,
        action: OperatorAction,
        reply: oneshot::Sender<Option<bool>>,
    },
    /// Compare-and-kill; the action is logged only once the target matches, before its effects.
    Kill {
        generation: u32,
        pid: u32,
        action: OperatorAction,
        reply: oneshot::Sender<Result<(), ActionError>>,
    },
    Delete {
        reply: oneshot::Sender<()>,
    },
    Stderr {
        reply: oneshot::Sender<Option<(u32, String)>>,
    },
    /// Stop the idle worker for a turn of another session that needs its slot.
    Evict,
    Shutdown,
    /// Read the session's queued turns from the store: another replica accepted one, or a
    /// scan found one this actor may not know.
    Wake,
    /// The session is no longer this replica's: kill the worker, write nothing more, retire.
    Fenced,
    /// Give the session up (graceful stop with peers): dispatch nothing new, let the turn in
    /// flight finish until `until`, then fail it, stop the worker and release the session.
    Release {
        until: Instant,
    },
}

/// The session's worker process, while it lives.
struct Live {
    proc: Process,
    ready: bool,
    last_heartbeat_write: Option<Instant>,
    ended: VecDeque<TurnId>,
}

/// Aborts the capacity waiter when the turn stops waiting; counts the turn as waiting for a
/// slot ([`crate::supervisor::evict`]) meanwhile.
struct Waiter {
    task: tokio::task::JoinHandle<()>,
    _waiting: super::evict::WaitingTurn,
}
impl Drop for Waiter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

enum Phase {
    Idle {
        since: Instant,
    },
    WaitingCapacity {
        turn: QueuedTurn,
        permit: oneshot::Receiver<OwnedSemaphorePermit>,
        until: Instant,
        _waiter: Waiter,
    },
    Starting {
        turn: Option<QueuedTurn>,
        until: Instant,
    },
    Busy {
        turn: QueuedTurn,
        started: Instant,
        stall_at: Instant,
        deadline_at: Instant,
        text: String,
        produced: bool,
        /// When the last `turn.progress` admin event went out (at most one a second).
        announced: Option<Instant>,
        /// The dispatch write's receipt until it commits. The worker gets the turn without
        /// waiting for it; until it is confirmed, every event is checked against the turn's
        /// row, so nothing is appended to a turn that had already ended.
        dispatch: Option<Receipt>,
    },
}

enum Input {
    Cmd(Option<Cmd>),
    Worker(Option<WorkerEvent>),
    Permit(Option<OwnedSemaphorePermit>),
    Dispatched(Result<Applied, JournalError>),
    Timer,
}

pub(super) struct Actor {
    ctx: Arc<Ctx>,
    session: SessionId,
    /// The client's conversation key, passed to the worker as `TURNWATCH_THREAD`.
    thread: Option<String>,
    agent_id: String,
    worker_id: WorkerId,
    rx: mpsc::UnboundedReceiver<Cmd>,
    queue: VecDeque<QueuedTurn>,
    worker: Option<Live>,
    phase: Phase,
    generation: u32,
    stops: Vec<tokio::task::JoinHandle<()>>,
    finished: bool,
    /// Whether the idle board lists this session's worker as idle.
    listed_idle: bool,
    /// The ownership every write of this actor is fenced on.
    fence: Fence,
    /// The highest place in the session's order this actor knows of (queued or beyond).
    last_seq: i64,
    /// The queue must be read from the store before the next turn starts.
    reload: bool,
    /// Releasing the session: the turn in flight may run until then.
    releasing: Option<Instant>,
    /// A fenced write was refused: the actor stops before anything else starts.
    gone: std::sync::atomic::AtomicBool,
}

impl Actor {
    pub(super) fn new(
        ctx: Arc<Ctx>,
        session: &SessionRecord,
        worker_id: WorkerId,
        fence: Fence,
        rx: mpsc::UnboundedReceiver<Cmd>,
    ) -> Self {
        Self {
            ctx,
            session: session.id.clone(),
            thread: session.thread.clone(),
            agent_id: session.agent_id.clone(),
            worker_id,
            rx,
            queue: VecDeque::new(),
            worker: None,
            phase: Phase::Idle {
                since: Instant::now(),
            },
            generation: 0,
            stops: Vec::new(),
            finished: false,
            listed_idle: false,
            fence,
            last_seq: 0,
            reload: true,
            releasing: None,
            gone: std::sync::atomic::AtomicBool::new(false),
        }
    }

    pub(super) async fn run(mut self) {
        while !self.finished {
            if self.gone.load(std::sync::atomic::Ordering::Relaxed) {
                self.fenced();
                break;
            }
            if self.reload {
                self.reload_queue().await;
                if self.gone.load(std::sync::atomic::Ordering::Relaxed) {
                    self.fenced();
                    break;
                }
            }
            self.advance().await;
            if self.finished {
                break;
            }
            self.sync_idle();
            let input = self.next_input().await;
            match input {
                Input::Cmd(Some(cmd)) => self.on_cmd(cmd).await,
                Input::Cmd(None) => break,
                Input::Worker(ev) => self.on_worker(ev).await,
                Input::Permit(p) => self.on_permit(p).await,
                Input::Dispatched(r) => self.on_dispatched(&r),
                Input::Timer => self.on_timer().await,
            }
            if self.gone.load(std::sync::atomic::Ordering::Relaxed) && !self.finished {
                self.fenced();
            }
        }
        self.ctx.set_idle(&self.session, false);
    }

    /// A ready worker with nothing to do: the kind of worker an eviction may stop.
    fn is_worker_idle(&self) -> bool {
        matches!(self.phase, Phase::Idle { .. })
            && self.queue.is_empty()
            && self.worker.as_ref().is_some_and(|w| w.ready)
    }

    /// Tells the idle board whether this session's worker is idle (the board may then order
    /// evictions for waiting turns, this worker's among them).
    fn sync_idle(&mut self) {
        let idle = self.is_worker_idle();
        if idle != self.listed_idle {
            self.listed_idle = idle;
            self.ctx.set_idle(&self.session, idle);
        }
    }

    /// Evicts the idle worker for another session's turn, if it is still idle.
    fn evict(&mut self) {
        let idle = self.is_worker_idle();
        let Some(live) = self.worker.take_if(|_| idle) else {
            self.ctx.eviction_refused();
            return;
        };
        self.listed_idle = false;
        let ctx = Arc::clone(&self.ctx);
        let stopping = stop(
            Arc::clone(&ctx),
            (self.worker_id.clone(), self.fence.clone()),
            live.proc,
            StopHow::Graceful,
            ExitReason::Evicted.to_string(),
        );
        self.stops.retain(|h| !h.is_finished());
        self.stops.push(self.ctx.tracker.spawn(async move {
            stopping.await; // the process, and with it its slot, is gone
            ctx.eviction_done();
        }));
    }

    fn agent(&self) -> Option<&AgentConfig> {
        self.ctx.config.agents.get(&self.agent_id)
    }

    async fn next_input(&mut self) -> Input {
        let wake = self.wake_at();
        let Self {
            rx, worker, phase, ..
        } = self;
        let worker_ev = async {
            match worker.as_mut() {
                Some(live) => live.proc.events.recv().await,
                None => std::future::pending().await,
            }
        };
        // What the phase waits on: a capacity permit, or the dispatch write's commit.
        let phase_ev = async {
            match phase {
                Phase::WaitingCapacity { permit, .. } => Input::Permit(permit.await.ok()),
                Phase::Busy {
                    dispatch: Some(receipt),
                    ..
                } => Input::Dispatched(receipt.await),
                _ => std::future::pending().await,
            }
        };
        let timer = async {
            match wake {
                Some(at) => sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            cmd = rx.recv() => Input::Cmd(cmd),
            ev = worker_ev => Input::Worker(ev),
            input = phase_ev => input,
            () = timer => Input::Timer,
        }
    }

    fn wake_at(&self) -> Option<Instant> {
        let due = self.phase_wake_at();
        match (due, self.releasing) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn phase_wake_at(&self) -> Option<Instant> {
        match &self.phase {
            Phase::Idle { since } => self.agent().map(|a| *since + a.idle_timeout),
            Phase::WaitingCapacity { until, .. } | Phase::Starting { until, .. } => Some(*until),
            Phase::Busy {
                stall_at,
                deadline_at,
                ..
            } => Some((*stall_at).min(*deadline_at)),
        }
    }

    fn take_phase(&mut self) -> Phase {
        std::mem::replace(
            &mut self.phase,
            Phase::Idle {
                since: Instant::now(),
            },
        )
    }

    async fn end(&self, turn: &QueuedTurn, ending: TurnEnding) -> bool {
        let ended = end_turn_as(
            &self.ctx.journal,
            Some(&self.fence),
            &self.session,
            (&turn.turn_id, &turn.message_id),
            ending,
        )
        .await;
        if ended == Ended::Fenced {
            // Another replica owns the session: nothing more may start here.
            self.gone.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        ended == Ended::Won
    }

    /// Queues a write fenced on this actor's ownership.
    fn send(&self, change: Change) {
        self.ctx.journal.send(change.fenced(&self.fence));
    }

    fn worker_state(&self, state: WorkerState, turn_id: Option<TurnId>) {
        if let Some(live) = &self.worker {
            self.send(Change::WorkerState {
                worker_id: self.worker_id.clone(),
                generation: live.proc.generation,
                state,
                turn_id,
                at: now_ms(),
            });
        }
    }

    /// The busy turn is over: the worker (if still alive) is idle again.
    fn finish_turn(&mut self, turn: &QueuedTurn) {
        self.worker_state(WorkerState::Idle, None);
        if let Some(live) = &mut self.worker {
            if live.ended.len() == REMEMBER_ENDED {
                live.ended.pop_front();
            }
            live.ended.push_back(turn.turn_id.clone());
        }
        self.phase = Phase::Idle {
            since: Instant::now(),
        };
    }

    /// Stops the current worker in the background; its exit is recorded as intentional.
    fn stop_worker(&mut self, how: StopHow, reason: String) {
        if let Some(live) = self.worker.take() {
            let ctx = Arc::clone(&self.ctx);
            let target = (self.worker_id.clone(), self.fence.clone());
            let fut = stop(ctx, target, live.proc, how, reason);
            self.stops.retain(|h| !h.is_finished());
            self.stops.push(self.ctx.tracker.spawn(fut));
        }
    }

    fn reject(&self, turn_id: Option<TurnId>, kind: RejectionKind, reason: &str, raw: &str) {
        let Some(live) = &self.worker else { return };
        tracing::debug!(worker = %self.worker_id, %kind, reason, "worker output not acted on");
        self.ctx.journal.send(Change::Reject(Rejection {
            worker_id: self.worker_id.clone(),
            generation: live.proc.generation,
            turn_id,
            kind,
            reason: reason.to_owned(),
            line: clip(raw),
            at: now_ms(),
        }));
    }
}

mod commands;
mod dispatch;
mod events;
mod owner;
