//! The supervisor: one actor task per session owns that session's worker process, its queue
//! of turns, and every clock that can end a turn (startup, stall, deadline, queue, idle).
//!
//! Because one task owns a session's worker and turns, the worker's reply, its crash, a timer
//! and an operator action are seen one at a time. Ending a turn is still the store's
//! conditional write ([`crate::store::Change::EndTurn`]), so whoever else might end it (a
//! restart, another replica) can never produce a second `complete`.

mod actor;
mod evict;
pub mod process;
pub mod procinfo;
pub(crate) mod recovery;
mod spawner;
mod stderr;
mod stop;

use std::collections::HashMap;
use std::ffi::OsString;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_util::task::TaskTracker;

use crate::api::{ErrorCode, TurnEnding};
use crate::clock::now_ms;
use crate::config::Config;
use crate::ids::{MessageId, ReplicaId, SessionId, TurnId, WorkerId};
use crate::journal::Journal;
use crate::metrics::Metrics;
use crate::store::{Change, OperatorAction, SessionRecord, Store};
use actor::{Actor, Cmd};

/// A turn handed to a session's actor.
#[derive(Clone, Debug)]
pub struct QueuedTurn {
    /// The turn.
    pub turn_id: TurnId,
    /// Its message.
    pub message_id: MessageId,
    /// The message text.
    pub content: String,
}

/// The sentence for [`ActionError::TargetChanged`].
fn target_changed(worker: &WorkerId, generation: Option<u32>, pid: Option<u32>) -> String {
    match (generation, pid) {
        (Some(g), Some(p)) => format!(
            "worker {worker} is now generation {g} (pid {p}), not the process you chose; nothing was killed"
        ),
        (Some(g), None) => format!(
            "worker {worker} is now generation {g} (not started yet), not the process you chose; nothing was killed"
        ),
        _ => format!("worker {worker} has no live process any more; nothing was killed"),
    }
}

/// Why an operator action was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ActionError {
    /// No live worker has that id.
    #[error("no live worker {0}")]
    UnknownWorker(WorkerId),
    /// The worker at that id is no longer the generation and pid asked for.
    #[error("{}", target_changed(worker, *generation, *pid))]
    TargetChanged {
        /// The worker slot.
        worker: WorkerId,
        /// Its live generation, if any.
        generation: Option<u32>,
        /// Its live pid, if any.
        pid: Option<u32>,
    },
    /// The turn does not exist.
    #[error("no turn {0}")]
    UnknownTurn(TurnId),
    /// The turn has already ended.
    #[error("turn {0} has already ended")]
    AlreadyEnded(TurnId),
    /// The gateway is stopping.
    #[error("the gateway is shutting down")]
    ShuttingDown,
}

/// What every actor shares.
pub(crate) struct Ctx {
    /// The replica this supervisor runs workers for.
    replica: ReplicaId,
    config: Arc<Config>,
    journal: Journal,
    store: Arc<dyn Store>,
    capacity: Arc<Semaphore>,
    tracker: TaskTracker,
    registry: Mutex<Registry>,
    /// Idle workers, for eviction when a turn needs a slot.
    idle: Mutex<evict::IdleBoard>,
    metrics: Arc<Metrics>,
}

#[derive(Default)]
struct Registry {
    actors: HashMap<SessionId, mpsc::UnboundedSender<Cmd>>,
    by_worker: HashMap<WorkerId, SessionId>,
    closed: bool,
}

impl Ctx {
    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A cheap, cloneable handle to the supervisor.
#[derive(Clone)]
pub struct Supervisor {
    ctx: Arc<Ctx>,
}

impl Supervisor {
    /// A supervisor with no workers yet.
    pub fn new(
        replica: ReplicaId,
        config: Arc<Config>,
        journal: Journal,
        store: Arc<dyn Store>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let capacity = Arc::new(Semaphore::new(config.gateway.max_workers));
        Self {
            ctx: Arc::new(Ctx {
                replica,
                config,
                journal,
                store,
                capacity,
                tracker: TaskTracker::new(),
                registry: Mutex::new(Registry::default()),
                idle: Mutex::new(evict::IdleBoard::default()),
                metrics,
            }),
        }
    }

    /// Hands a stored turn to its session's actor, starting the actor if needed.
    pub fn submit(&self, session: &SessionRecord, turn: QueuedTurn) -> Result<(), ActionError> {
        let mut reg = self.ctx.registry();
        if reg.closed {
            return Err(ActionError::ShuttingDown);
        }
        let tx = if let Some(tx) = reg.actors.get(&session.id) {
            tx.clone()
        } else {
            let (tx, rx) = mpsc::unbounded_channel();
            let worker = WorkerId::for_session(&session.id);
            reg.by_worker.insert(worker.clone(), session.id.clone());
            reg.actors.insert(session.id.clone(), tx.clone());
            let actor = Actor::new(Arc::clone(&self.ctx), session, worker, rx);
            self.ctx.tracker.spawn(actor.run());
            tx
        };
        // Sent under the registry lock, so an actor retiring at this moment sees it.
        tx.send(Cmd::Turn(turn))
            .map_err(|_| ActionError::ShuttingDown)
    }

    fn actor_of(&self, session: &SessionId) -> Option<mpsc::UnboundedSender<Cmd>> {
        self.ctx.registry().actors.get(session).cloned()
    }

    /// Compare-and-kill: kills the worker only if it is still that generation and pid.
    pub async fn kill(
        &self,
        worker: &WorkerId,
        generation: u32,
        pid: u32,
        action: OperatorAction,
    ) -> Result<(), ActionError> {
        let session = self.ctx.registry().by_worker.get(worker).cloned();
        let tx = session.and_then(|s| self.actor_of(&s));
        let Some(tx) = tx else {
            return Err(ActionError::UnknownWorker(worker.clone()));
        };
        let (reply, rx) = oneshot::channel();
        tx.send(Cmd::Kill {
            generation,
            pid,
            action,
            reply,
        })
        .map_err(|_| ActionError::UnknownWorker(worker.clone()))?;
        rx.await
            .map_err(|_| ActionError::UnknownWorker(worker.clone()))?
    }

    /// The live stderr tail of a worker slot's current process: (generation, text).
    pub async fn stderr_tail(&self, worker: &WorkerId) -> Option<(u32, String)> {
        let session = self.ctx.registry().by_worker.get(worker).cloned()?;
        let tx = self.actor_of(&session)?;
        let (reply, rx) = oneshot::channel();
        tx.send(Cmd::Stderr { reply }).ok()?;
        rx.await.ok().flatten()
    }

    /// Ends a turn now with `cancelled_by_operator`; the worker gets `cancel`. `action` is
    /// logged (`operator.action`) before the turn's end, once the turn is known to be open.
    pub async fn cancel(
        &self,
        turn_id: &TurnId,
        action: OperatorAction,
    ) -> Result<(), ActionError> {
        let reason = action.reason.clone();
        let turn = self
            .ctx
            .store
            .turn(turn_id)
            .await
            .ok()
            .flatten()
            .ok_or_else(|| ActionError::UnknownTurn(turn_id.clone()))?;
        if turn.ended_at.is_some() {
            return Err(ActionError::AlreadyEnded(turn_id.clone()));
        }
        let sentence = format!("an operator cancelled the turn ({reason})");
        if let Some(tx) = self.actor_of(&turn.session_id) {
            let (reply, rx) = oneshot::channel();
            let cmd = Cmd::Cancel {
                turn_id: turn_id.clone(),
                reason: sentence.clone(),
                action: action.clone(),
                reply,
            };
            if tx.send(cmd).is_ok() {
                match rx.await {
                    Ok(Some(true)) => return Ok(()),
                    Ok(Some(false)) => return Err(ActionError::AlreadyEnded(turn_id.clone())),
                    Ok(None) | Err(_) => {}
                }
            }
        }
        // No actor holds it: the conditional write decides.
        self.ctx.journal.send(Change::Action(action));
        let ending = TurnEnding::failed(ErrorCode::CancelledByOperator, sentence);
        if end_turn(
            &self.ctx.journal,
            &turn.session_id,
            turn_id,
            &turn.message_id,
            ending,
        )
        .await
        {
            Ok(())
        } else {
            Err(ActionError::AlreadyEnded(turn_id.clone()))
        }
    }

    /// Ends the session's turns with `session_deleted` and stops its worker; returns when done.
    pub async fn delete_session(&self, session: &SessionId) {
        if let Some(tx) = self.actor_of(session) {
            let (reply, rx) = oneshot::channel();
            if tx.send(Cmd::Delete { reply }).is_ok() {
                let _ = rx.await;
            }
        }
    }

    /// Ends every in-flight and queued turn with `gateway_shutdown`, stops every worker, and
    /// waits until all of them have exited.
    pub async fn shutdown(&self) {
        let actors: Vec<_> = {
            let mut reg = self.ctx.registry();
            reg.closed = true;
            reg.actors.values().cloned().collect()
        };
        for tx in actors {
            let _ = tx.send(Cmd::Shutdown);
        }
        self.ctx.tracker.close();
        self.ctx.tracker.wait().await;
    }
}

/// The one way to end a turn: the conditional terminal write with its events. True if this
/// call won (the turn was still open).
pub(crate) async fn end_turn(
    journal: &Journal,
    session: &SessionId,
    turn: &TurnId,
    message: &MessageId,
    ending: TurnEnding,
) -> bool {
    let at = now_ms();
    let events = ending.events(turn, message, at);
    let stranded = ending.code.is_some_and(ErrorCode::strands);
    let write = Change::EndTurn {
        session_id: session.clone(),
        turn_id: turn.clone(),
        ending,
        events,
        at,
        stranded,
    };
    matches!(journal.write(write).await, Ok(crate::store::Applied::Events(v)) if !v.is_empty())
}

/// Variables a worker inherits from the gateway by default (`LC_*` as a prefix).
const ALLOWED_ENV: [&str; 7] = ["PATH", "HOME", "LANG", "TZ", "TMPDIR", "USER", "LC_"];

/// The whole environment of a session's worker; nothing else of the gateway's reaches it. In
/// order (a later entry wins): the allowlist ([`ALLOWED_ENV`]) and the agent's `inherit_env`,
/// both from the gateway's environment and never a token's `secret_env` variable (config
/// validation refuses naming one explicitly); the agent's `env`; the `TURNWATCH_*` values.
pub(crate) fn worker_env(
    config: &Config,
    agent_id: &str,
    session: &SessionId,
    worker: &WorkerId,
    agent: &crate::config::AgentConfig,
) -> Vec<(OsString, OsString)> {
    let secret = |k: &str| {
        config
            .tokens
            .iter()
            .any(|t| t.secret_env.as_deref() == Some(k))
    };
    let allowed = |k: &str| {
        ALLOWED_ENV
            .iter()
            .any(|a| k == *a || (a.ends_with('_') && k.starts_with(a)))
            || agent.inherit_env.iter().any(|v| v == k)
    };
    let mut env: Vec<(OsString, OsString)> = std::env::vars_os()
        .filter(|(k, _)| k.to_str().is_some_and(|k| allowed(k) && !secret(k)))
        .collect();
    env.extend(agent.env.iter().map(|(k, v)| (k.into(), v.into())));
    env.push(("TURNWATCH_SESSION_ID".into(), session.to_string().into()));
    env.push(("TURNWATCH_AGENT_ID".into(), agent_id.into()));
    env.push(("TURNWATCH_WORKER_ID".into(), worker.to_string().into()));
    env
}
