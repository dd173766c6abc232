//! The supervisor: one actor task per session owns that session's worker process, its queue
//! of turns, and every clock that can end a turn (startup, stall, deadline, queue, idle).
//!
//! Because one task owns a session's worker and turns, the worker's reply, its crash, a timer
//! and an operator action are seen one at a time. Ending a turn is still the store's
//! conditional write ([`crate::store::Change::EndTurn`]), so whoever else might end it (a
//! restart, another replica) can never produce a second `complete`.

mod actor;
mod evict;
mod live;
pub mod process;
pub mod procinfo;
pub mod procstat;
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
use crate::store::{Applied, Change, Fence, OperatorAction, SessionRecord, Store};
use actor::{Actor, Cmd};
pub use live::LiveProcess;

/// A turn handed to a session's actor.
#[derive(Clone, Debug)]
pub struct QueuedTurn {
    /// The turn.
    pub turn_id: TurnId,
    /// Its message.
    pub message_id: MessageId,
    /// The message text.
    pub content: String,
    /// Its place in the session's order.
    pub seq: i64,
}

/// Where a newly accepted turn went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// To this replica's actor for the session.
    Local,
    /// Another live replica owns the session: it must be woken.
    Remote(ReplicaId),
    /// Nobody took it now (this replica is stopping or lost): it stays queued for a peer.
    Queued,
}

/// What a claim came to.
#[derive(Debug, PartialEq, Eq)]
enum Claim {
    /// This replica owns the session.
    Won,
    /// A live replica owns it.
    Held(ReplicaId),
    /// Nobody was claimed for (this replica is stopping or lost, or the store refused).
    None,
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
    /// The replica this supervisor runs workers for (a new id after it was found lost).
    replica: std::sync::RwLock<ReplicaId>,
    /// Claims by this replica, one at a time (two claims of one session would fence each
    /// other).
    claims: tokio::sync::Mutex<()>,
    config: Arc<Config>,
    journal: Journal,
    store: Arc<dyn Store>,
    capacity: Arc<Semaphore>,
    tracker: TaskTracker,
    registry: Mutex<Registry>,
    /// Idle workers, for eviction when a turn needs a slot.
    idle: Mutex<evict::IdleBoard>,
    metrics: Arc<Metrics>,
    /// This replica's live worker processes.
    live: live::LiveTable,
}

#[derive(Default)]
struct Registry {
    actors: HashMap<SessionId, mpsc::UnboundedSender<Cmd>>,
    by_worker: HashMap<WorkerId, SessionId>,
    /// The sessions this replica owns, with the fence of its claim.
    owned: HashMap<SessionId, Fence>,
    closed: bool,
    /// Giving every session up (graceful stop with peers): claim nothing more.
    releasing: bool,
}

impl Ctx {
    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// This replica's id.
    fn me(&self) -> ReplicaId {
        self.replica
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Forgets an ownership that ended (fenced or released), unless a newer claim replaced it.
    fn forget(&self, session: &SessionId, fence: &Fence) {
        let mut reg = self.registry();
        if reg.owned.get(session) == Some(fence) {
            reg.owned.remove(session);
        }
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
                replica: std::sync::RwLock::new(replica),
                claims: tokio::sync::Mutex::new(()),
                config,
                journal,
                store,
                capacity,
                tracker: TaskTracker::new(),
                registry: Mutex::new(Registry::default()),
                idle: Mutex::new(evict::IdleBoard::default()),
                metrics,
                live: live::LiveTable::default(),
            }),
        }
    }

    /// Hands a stored turn to its session's owner: this replica's actor when it owns the
    /// session or can claim it, else the live replica that owns it (to be woken).
    ///
    /// # Errors
    /// The supervisor is shutting down.
    pub async fn route(
        &self,
        session: &SessionRecord,
        turn: QueuedTurn,
    ) -> Result<Route, ActionError> {
        // Stopping with live peers, `send_owned` and `claim` take nothing: the turn waits in
        // the store for the replica that takes the session.
        if self.send_owned(session, Cmd::Turn(turn.clone()))? {
            return Ok(Route::Local);
        }
        match self.claim(&session.id).await {
            Claim::Won => {
                self.send_owned(session, Cmd::Turn(turn))?;
                Ok(Route::Local)
            }
            Claim::Held(owner) => Ok(Route::Remote(owner)),
            Claim::None => Ok(Route::Queued),
        }
    }

    /// Sends `cmd` to the session's actor if this replica owns the session, starting the
    /// actor if needed; false when it does not own it.
    fn send_owned(&self, session: &SessionRecord, cmd: Cmd) -> Result<bool, ActionError> {
        let mut reg = self.ctx.registry();
        if reg.releasing {
            // Handing sessions to the peers: nothing starts here any more.
            return Ok(false);
        }
        if reg.closed {
            return Err(ActionError::ShuttingDown);
        }
        let Some(fence) = reg.owned.get(&session.id).cloned() else {
            return Ok(false);
        };
        let tx = if let Some(tx) = reg.actors.get(&session.id) {
            tx.clone()
        } else {
            let (tx, rx) = mpsc::unbounded_channel();
            let worker = WorkerId::for_session(&session.id);
            reg.by_worker.insert(worker.clone(), session.id.clone());
            reg.actors.insert(session.id.clone(), tx.clone());
            let actor = Actor::new(Arc::clone(&self.ctx), session, worker, fence, rx);
            self.ctx.tracker.spawn(actor.run());
            tx
        };
        // Sent under the registry lock, so an actor retiring at this moment sees it.
        tx.send(cmd).map_err(|_| ActionError::ShuttingDown)?;
        Ok(true)
    }

    /// Claims the session for this replica unless it owns it already (one claim at a time).
    /// A session a live peer owns is answered from a read, without the claims' lock or a
    /// write: most messages posted to a replica that does not own their session are that.
    async fn claim(&self, session: &SessionId) -> Claim {
        if let Ok(Some((owner, _, true))) = self.ctx.store.owner(session, now_ms()).await
            && owner != self.ctx.me()
        {
            return Claim::Held(owner);
        }
        let _one = self.ctx.claims.lock().await;
        {
            let reg = self.ctx.registry();
            if reg.closed || reg.releasing {
                return Claim::None;
            }
            if reg.owned.contains_key(session) {
                return Claim::Won;
            }
        }
        let me = self.ctx.me();
        let claim = Change::Claim {
            session_id: session.clone(),
            replica_id: me.clone(),
            at: now_ms(),
        };
        match self.ctx.journal.write(claim).await {
            Ok(Applied::Claimed { epoch, .. }) => {
                let fence = Fence {
                    session_id: session.clone(),
                    owner: me,
                    epoch,
                };
                self.ctx.registry().owned.insert(session.clone(), fence);
                Claim::Won
            }
            Ok(Applied::Held { owner: Some(owner) }) => Claim::Held(owner),
            Ok(_) => Claim::None,
            Err(e) => {
                tracing::warn!(session = %session, error = %e, "could not claim the session");
                Claim::None
            }
        }
    }

    /// Tells the session's actor to read its queue from the store, claiming the session first
    /// when it has no live owner (the scan and `LISTEN/NOTIFY` call this).
    pub async fn wake(&self, session: &SessionId) {
        let Ok(Some(record)) = self.ctx.store.session(session).await else {
            return;
        };
        if matches!(self.send_owned(&record, Cmd::Wake), Ok(true)) {
            return;
        }
        if self.claim(session).await == Claim::Won {
            let _ = self.send_owned(&record, Cmd::Wake);
        }
    }

    /// The store refused a write fenced on `fence`: the session is no longer this replica's
    /// under that ownership. Acts only while the replica still holds exactly that ownership (a
    /// late refusal of an older one changes nothing).
    pub fn fenced(&self, fence: &Fence) {
        let tx = {
            let mut reg = self.ctx.registry();
            if reg.owned.get(&fence.session_id) != Some(fence) {
                return;
            }
            reg.owned.remove(&fence.session_id);
            reg.actors.get(&fence.session_id).cloned()
        };
        if let Some(tx) = tx {
            let _ = tx.send(Cmd::Fenced);
        }
    }

    /// This replica was found lost: every session is someone else's. Kills every worker
    /// without writing and forgets every ownership (no claim runs meanwhile).
    pub async fn abandon(&self) {
        let _no_claims = self.ctx.claims.lock().await;
        let actors: Vec<_> = {
            let mut reg = self.ctx.registry();
            reg.owned.clear();
            reg.actors.values().cloned().collect()
        };
        for tx in actors {
            let _ = tx.send(Cmd::Fenced);
        }
    }

    /// Serves on as `replica`, this process's new registration after it was found lost.
    pub fn rejoin(&self, replica: ReplicaId) {
        *self
            .ctx
            .replica
            .write()
            .unwrap_or_else(PoisonError::into_inner) = replica;
    }

    /// This replica's id now.
    pub fn replica(&self) -> ReplicaId {
        self.ctx.me()
    }

    /// Gives every session up to the peers (graceful stop): nothing new is dispatched, turns
    /// in flight may finish within `drain`, then fail `gateway_shutdown`; queued turns stay
    /// for the peers. Returns once every session is released.
    pub async fn release_all(&self, drain: std::time::Duration) {
        let until = tokio::time::Instant::now() + drain;
        // No claim is half-way while the flag is set: one that began has put its ownership
        // in place, and every later one sees the flag.
        let no_claims = self.ctx.claims.lock().await;
        let (actors, idle): (Vec<_>, Vec<_>) = {
            let mut reg = self.ctx.registry();
            reg.releasing = true;
            let actors: Vec<_> = reg.actors.values().cloned().collect();
            let idle: Vec<Fence> = reg
                .owned
                .iter()
                .filter(|(s, _)| !reg.actors.contains_key(*s))
                .map(|(_, f)| f.clone())
                .collect();
            // Forgotten now, under the lock: no actor can start for them any more.
            for f in &idle {
                reg.owned.remove(&f.session_id);
            }
            (actors, idle)
        };
        drop(no_claims);
        for tx in actors {
            let _ = tx.send(Cmd::Release { until });
        }
        for fence in idle {
            let _ = self.ctx.journal.write(Change::Release { fence }).await;
        }
        // Bounded: past the drain and a worker's stop, whatever is left is the shutdown's.
        let bound = until + self.ctx.config.gateway.stop_grace * 3;
        while !self.ctx.registry().actors.is_empty() && tokio::time::Instant::now() < bound {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
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

    /// This replica's live worker processes (newest generation per slot).
    pub fn live_processes(&self) -> Vec<LiveProcess> {
        self.ctx.live.list()
    }

    /// The slot's live process on this replica, if it runs one.
    pub fn live_process(&self, worker: &WorkerId) -> Option<LiveProcess> {
        self.ctx.live.get(worker)
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
            None,
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

/// What an end came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ended {
    /// This call ended the turn.
    Won,
    /// The turn had ended already (or the write failed).
    Lost,
    /// The write was fenced on an ownership that has ended: nothing was written.
    Fenced,
}

/// The one way to end a turn: the conditional terminal write with its events. True if this
/// call won (the turn was still open).
pub(crate) async fn end_turn(
    journal: &Journal,
    fence: Option<&Fence>,
    session: &SessionId,
    turn: &TurnId,
    message: &MessageId,
    ending: TurnEnding,
) -> bool {
    end_turn_as(journal, fence, session, (turn, message), ending).await == Ended::Won
}

/// [`end_turn`], telling a fenced write from a lost race.
pub(crate) async fn end_turn_as(
    journal: &Journal,
    fence: Option<&Fence>,
    session: &SessionId,
    (turn, message): (&TurnId, &MessageId),
    ending: TurnEnding,
) -> Ended {
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
    let write = match fence {
        Some(f) => write.fenced(f),
        None => write,
    };
    match journal.write(write).await {
        Ok(Applied::Events(v)) if !v.is_empty() => Ended::Won,
        Ok(Applied::Fenced) => Ended::Fenced,
        _ => Ended::Lost,
    }
}

/// Variables a worker inherits from the gateway by default (`LC_*` as a prefix).
const ALLOWED_ENV: [&str; 7] = ["PATH", "HOME", "LANG", "TZ", "TMPDIR", "USER", "LC_"];

/// The longest thread passed as `TURNWATCH_THREAD` (a longer one is not passed).
const MAX_THREAD_ENV: usize = 4096;

/// The whole environment of a session's worker; nothing else of the gateway's reaches it. In
/// order (a later entry wins): the allowlist ([`ALLOWED_ENV`]) and the agent's `inherit_env`,
/// both from the gateway's environment and never a token's `secret_env` variable (config
/// validation refuses naming one explicitly); the agent's `env`; the `TURNWATCH_*` values
/// (`TURNWATCH_THREAD` only when the session has a thread of at most 4 KiB without NUL).
pub(crate) fn worker_env(
    config: &Config,
    agent_id: &str,
    (session, thread): (&SessionId, Option<&str>),
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
    // A NUL byte cannot be in an environment variable, and Linux refuses one over 128 KiB
    // (every spawn would fail): such a thread is not passed.
    if let Some(thread) = thread.filter(|t| !t.contains('\0') && t.len() <= MAX_THREAD_ENV) {
        env.push(("TURNWATCH_THREAD".into(), thread.into()));
    }
    env
}
