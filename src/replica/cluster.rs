//! This replica among its peers: the periodic scan that claims sessions nobody live owns and
//! wakes its own actors (at most a second apart: it covers any missed notification), the
//! lease renewal that finds this replica lost, and the wake-ups and operator actions sent to
//! another replica. On `PostgreSQL` they travel by `NOTIFY` ([`listen`] receives them); on
//! `SQLite`, one replica only, nothing needs to travel.

use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use crate::api::state::ActionKind;
use crate::clock::now_ms;
use crate::ids::{ReplicaId, SessionId, TurnId, WorkerId};
use crate::journal::Journal;
use crate::store::{Applied, Change, OperatorAction, Store};
use crate::supervisor::Supervisor;

mod listen;

pub use listen::listen;

/// The channel wake-ups travel on: `OWNER SESSION`.
const WAKE_CHANNEL: &str = "turnwatch_wake";
/// The channel that tells a replica it has forwarded operator actions to take: `REPLICA`.
const ACTION_CHANNEL: &str = "turnwatch_action";
/// How often the store is scanned for sessions to claim or wake.
const SCAN_EVERY: Duration = Duration::from_secs(1);
/// A queued turn older than this is one its owner may not know of.
const STALE_QUEUED_MS: i64 = 2_000;
/// Sessions claimed per scan at most.
const CLAIMS_PER_SCAN: i64 = 100;

/// An operator action carried out by the replica that owns its target.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Forward {
    /// The replica that must act.
    pub replica: ReplicaId,
    /// Kill or cancel.
    pub action: ActionKind,
    /// The worker (kill) or turn (cancel).
    pub target: String,
    /// The generation and pid a kill compares against.
    pub generation: Option<u32>,
    /// See `generation`.
    pub pid: Option<u32>,
    /// The operator's reason.
    pub reason: String,
    /// The operator token's name.
    pub token: String,
}

/// Sends wake-ups and actions to peers.
#[derive(Clone)]
pub struct Peers {
    store: Arc<dyn Store>,
}

impl Peers {
    /// Peers reached through this store.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    async fn notify(&self, channel: &str, payload: &str) -> bool {
        let Some(pg) = self.store.postgres() else {
            return false;
        };
        let sent = sqlx::query("SELECT pg_notify($1, $2)")
            .bind(channel)
            .bind(payload)
            .execute(pg.pool())
            .await;
        if let Err(e) = &sent {
            tracing::warn!(error = %e, channel, "could not notify the other replicas");
        }
        sent.is_ok()
    }

    /// Wakes the replica that owns the session: a turn is queued for it. A lost notification
    /// is covered by that replica's scan.
    pub async fn wake(&self, owner: &ReplicaId, session: &SessionId) {
        self.notify(WAKE_CHANNEL, &format!("{owner} {session}"))
            .await;
    }

    /// Asks the replica that owns the target to carry the action out: the action is stored
    /// for it and it is woken, in one statement; false when it could not be stored.
    pub async fn forward(&self, action: &Forward) -> bool {
        let (Some(pg), Ok(json)) = (self.store.postgres(), serde_json::to_string(action)) else {
            return false;
        };
        let sent = sqlx::query(
            "WITH a AS (INSERT INTO forwarded_actions (replica_id, payload, created_at) \
             VALUES ($1, $2, $3)) SELECT pg_notify($4, $1)",
        )
        .bind(action.replica.as_str())
        .bind(&json)
        .bind(now_ms())
        .bind(ACTION_CHANNEL)
        .execute(pg.pool())
        .await;
        if let Err(e) = &sent {
            tracing::warn!(error = %e, "could not forward an operator action");
        }
        sent.is_ok()
    }
}

/// Takes the operator actions other replicas forwarded to this one, oldest first, and carries
/// them out (the admin log records each result). Each is taken once: the delete is the claim.
pub async fn take_actions(store: &dyn Store, supervisor: &Supervisor) {
    let Some(pg) = store.postgres() else { return };
    let taken: Result<Vec<(i64, String)>, _> =
        sqlx::query_as("DELETE FROM forwarded_actions WHERE replica_id = $1 RETURNING id, payload")
            .bind(supervisor.replica().as_str())
            .fetch_all(pg.pool())
            .await;
    let mut taken = match taken {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(error = %e, "could not take the forwarded operator actions");
            return;
        }
    };
    taken.sort_by_key(|(id, _)| *id);
    for (_, payload) in taken {
        match serde_json::from_str::<Forward>(&payload) {
            Ok(f) => act(supervisor, f).await,
            Err(e) => tracing::warn!(error = %e, "unreadable forwarded action"),
        }
    }
}

/// Carries out an action a peer forwarded to this replica; the admin log records the result.
async fn act(supervisor: &Supervisor, f: Forward) {
    let action = OperatorAction {
        action: f.action,
        target: f.target.clone(),
        reason: f.reason,
        token: f.token,
        at: now_ms(),
    };
    let result = match (f.action, f.generation, f.pid) {
        (ActionKind::Kill, Some(g), Some(p)) => {
            supervisor.kill(&WorkerId(f.target), g, p, action).await
        }
        (ActionKind::Cancel, ..) => supervisor.cancel(&TurnId(f.target), action).await,
        _ => return,
    };
    if let Err(e) = result {
        tracing::warn!(error = %e, "a forwarded operator action was refused");
    }
}

/// Every second: marks the other replicas whose lease ran out lost, claims the sessions
/// nobody live owns (a lost replica's, a released one's with open turns), and wakes this
/// replica's own sessions that have queued turns. Runs until aborted.
///
/// Leases are judged on `PostgreSQL` only (on `SQLite` this is the one replica), and not
/// within a lease of the store coming back after an outage: nobody could renew meanwhile, and
/// a replica whose journal came back first must not take every peer's sessions.
pub async fn scan(
    store: Arc<dyn Store>,
    journal: Journal,
    supervisor: Supervisor,
    lease: Duration,
) {
    let mut tick = tokio::time::interval(SCAN_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let judges = store.postgres().is_some();
    let mut quiet_until = tokio::time::Instant::now() + lease;
    loop {
        tick.tick().await;
        if !journal.is_available() {
            quiet_until = tokio::time::Instant::now() + lease + SCAN_EVERY;
            continue;
        }
        let now = now_ms();
        let me = supervisor.replica();
        if judges && tokio::time::Instant::now() >= quiet_until {
            let mark = Change::MarkLost {
                replicas: Vec::new(),
                judge: Some(me.clone()),
                at: now,
            };
            if let Err(e) = journal.write(mark).await {
                tracing::warn!(error = %e, "could not judge the replicas' leases");
            }
        }
        match store.claimable(&me, CLAIMS_PER_SCAN).await {
            Ok(sessions) => {
                for s in sessions {
                    supervisor.wake(&s).await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not read the sessions to claim"),
        }
        // Actions whose notification was lost.
        take_actions(store.as_ref(), &supervisor).await;
        // Turns queued a while: an actor that knows of them dispatches them sooner; these were
        // missed (a wake-up lost), so the session's actor reads its queue again.
        match store.owned_with_queued(&me, now - STALE_QUEUED_MS).await {
            Ok(sessions) => {
                for s in sessions {
                    supervisor.wake(&s).await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not read this replica's queued sessions"),
        }
    }
}

/// Hands each ownership whose fenced write was refused to the supervisor (its actor stops,
/// if it still holds that ownership).
pub async fn follow_fences(
    mut fenced: tokio::sync::broadcast::Receiver<crate::store::Fence>,
    supervisor: Supervisor,
) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        match fenced.recv().await {
            Ok(s) => supervisor.fenced(&s),
            Err(RecvError::Lagged(_)) => {}
            Err(RecvError::Closed) => return,
        }
    }
}

/// Renews this replica's lease every third of it until `stop`. A renewal that changes nothing
/// means the replica was found lost (paused past its lease, say) and its sessions are being
/// taken over: every worker is killed without a write, and the replica registers anew and
/// serves on under its new id. A renewal the store refuses is retried (the journal retries a
/// store that is down; fencing keeps that safe).
pub async fn keep_lease(
    registration: Arc<std::sync::Mutex<super::registry::Registration>>,
    name: Option<String>,
    journal: Journal,
    supervisor: Supervisor,
    stop: CancellationToken,
) {
    let lease = lock(&registration).lease;
    let mut tick = tokio::time::interval(lease / 3);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await; // the first tick is now: registration just set the lease
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => return,
        }
        let current = lock(&registration).clone();
        match current.renew_once(&journal).await {
            Ok(Applied::Changed) => {}
            Ok(_) => {
                tracing::error!(replica = %current.id, "this replica was found lost (its lease ran out); stopping its workers and registering anew");
                // Workers first: none may run on while this replica has no live registration.
                supervisor.abandon().await;
                loop {
                    match super::registry::Registration::register(&journal, name.as_deref(), lease)
                        .await
                    {
                        Ok(fresh) => {
                            supervisor.rejoin(fresh.id.clone());
                            *lock(&registration) = fresh;
                            break;
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "could not register anew; retrying");
                            tokio::select! {
                                () = tokio::time::sleep(lease / 3) => {}
                                () = stop.cancelled() => return,
                            }
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not renew this replica's lease"),
        }
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
