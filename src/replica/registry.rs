//! This process as a replica: its row in the store, a lease renewed every third of its length
//! until it stops, and a clean stop that takes it out of the list. A replica whose lease runs
//! out without a clean stop is lost (`GET /api/v1/admin/replicas` shows it so).
//!
//! What a lost replica's sessions become (takeover), and the fencing of a replica that comes
//! back after its lease ran out, follow the protocol in `model.pml`; this module is only the
//! registration that protocol starts from.

use std::time::Duration;
use tokio_util::sync::CancellationToken;

use crate::api::admin::ReplicaInfo;
use crate::api::state::ReplicaState;
use crate::clock::now_ms;
use crate::ids::ReplicaId;
use crate::journal::{Journal, JournalError};
use crate::store::{Change, ReplicaRecord, Store};

/// This process's registration.
#[derive(Clone, Debug)]
pub struct Registration {
    /// Its id, new at each start.
    pub id: ReplicaId,
    /// How long its lease holds without renewal.
    pub lease: Duration,
}

/// The host name shown for a replica: the kernel's, else `localhost`.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

impl Registration {
    /// Registers a new replica: its row and first lease, committed before it serves.
    ///
    /// # Errors
    /// The store refused the registration.
    pub async fn register(
        journal: &Journal,
        name: Option<&str>,
        lease: Duration,
    ) -> Result<Self, JournalError> {
        let id = ReplicaId::generate();
        let host = host_name();
        let now = now_ms();
        let record = ReplicaRecord {
            id: id.clone(),
            name: name.map_or_else(|| host.clone(), str::to_owned),
            host,
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            started_at: now,
            lease_until: now + millis(lease),
        };
        journal.write(Change::RegisterReplica(record)).await?;
        tracing::info!(replica = %id, "registered");
        Ok(Self { id, lease })
    }

    /// Renews the lease every third of its length until `stop` is cancelled. A renewal the
    /// store refuses is logged and tried again at the next tick (the journal already retries
    /// a store that is down).
    pub async fn renew(self, journal: Journal, stop: CancellationToken) {
        let mut tick = tokio::time::interval(self.lease / 3);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await; // the first tick is now: registration just set the lease
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = stop.cancelled() => return,
            }
            let at = now_ms();
            let renew = Change::RenewLease {
                replica_id: self.id.clone(),
                at,
                lease_until: at + millis(self.lease),
            };
            if let Err(e) = journal.write(renew).await {
                tracing::warn!(error = %e, "could not renew this replica's lease");
            }
        }
    }

    /// Records that this replica is stopping (`stopped` false) or has stopped (`stopped`
    /// true); a stopped replica leaves the list.
    pub async fn mark(&self, journal: &Journal, stopped: bool) {
        let change = Change::ReplicaStopping {
            replica_id: self.id.clone(),
            at: now_ms(),
            stopped,
        };
        if let Err(e) = journal.write(change).await {
            tracing::warn!(error = %e, stopped, "could not record this replica's stop");
        }
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Waits until no other replica is live on this store, as long as one could still be dying:
/// a replica on this host whose process is gone is dead at once; any other's lease must run
/// out. One that renews its lease meanwhile is alive, and this process refuses to start:
/// several replicas on one database are not built yet, and a second gateway's start-up
/// recovery would fail the first one's turns.
///
/// # Errors
/// Another replica is alive, or the store could not be read.
pub async fn wait_for_sole_use(store: &dyn Store) -> Result<(), String> {
    let host = host_name();
    let first = other_live(store, &host).await?;
    let Some(until) = first.iter().map(|r| r.lease_until).max() else {
        return Ok(());
    };
    tracing::info!(
        count = first.len(),
        "waiting for the leases of replicas that may be dying"
    );
    while now_ms() <= until + 100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let alive: Vec<_> = other_live(store, &host)
        .await?
        .into_iter()
        .filter(|r| first.iter().any(|f| f.replica_id == r.replica_id))
        .collect();
    match alive.first() {
        None => Ok(()),
        Some(r) => Err(format!(
            "another gateway uses this database (replica {} `{}`, pid {} on {}); several \
             replicas on one database are not supported yet",
            r.replica_id, r.name, r.pid, r.host
        )),
    }
}

/// The replicas other than a dead one on this host that the store shows live.
async fn other_live(store: &dyn Store, host: &str) -> Result<Vec<ReplicaInfo>, String> {
    let all = store.replicas(now_ms()).await.map_err(|e| e.to_string())?;
    Ok(all
        .into_iter()
        .filter(|r| r.state == ReplicaState::Live)
        .filter(|r| r.host != host || crate::supervisor::procinfo::is_running(r.pid))
        .collect())
}
