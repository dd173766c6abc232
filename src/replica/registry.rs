//! This process as a replica: its row in the store, a lease renewed every third of its length
//! until it stops, and a clean stop that takes it out of the list. A replica whose lease runs
//! out without a clean stop is lost (`GET /api/v1/admin/replicas` shows it so).
//!
//! What a lost replica's sessions become (takeover), and the fencing of a replica that comes
//! back after its lease ran out, follow the protocol in `model.pml`; this module is only the
//! registration that protocol starts from.

use std::time::Duration;

use crate::api::admin::ReplicaInfo;
use crate::api::state::ReplicaState;
use crate::clock::now_ms;
use crate::ids::ReplicaId;
use crate::journal::{Journal, JournalError};
use crate::store::{Applied, Change, ReplicaRecord, Store};

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

    /// Renews the lease once: [`Applied::Changed`], or [`Applied::Unchanged`] when this
    /// replica is no longer live (found lost) and must register anew.
    ///
    /// # Errors
    /// The store refused the renewal.
    pub async fn renew_once(&self, journal: &Journal) -> Result<Applied, JournalError> {
        let at = now_ms();
        let renew = Change::RenewLease {
            replica_id: self.id.clone(),
            at,
            lease_until: at + millis(self.lease),
        };
        journal.write(renew).await
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
/// several replicas share a `PostgreSQL` database, never an `SQLite` file.
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
             replicas need a postgres:// database, not an SQLite file",
            r.replica_id, r.name, r.pid, r.host
        )),
    }
}

/// Replicas the store shows live that ran on this host and whose process is gone: dead for
/// sure, so they can be marked lost at once rather than when their lease runs out.
///
/// # Errors
/// The store could not be read.
pub async fn dead_here(store: &dyn Store) -> Result<Vec<ReplicaId>, String> {
    let host = host_name();
    let all = stored(store).await?;
    Ok(all
        .into_iter()
        .filter(|r| r.state != ReplicaState::Lost && r.host == host)
        .filter(|r| r.pid != std::process::id() && !crate::supervisor::procinfo::is_running(r.pid))
        .map(|r| r.replica_id)
        .collect())
}

/// Every replica the store does not show lost yet: on a database only one gateway may use
/// (`SQLite`), once [`wait_for_sole_use`] found none alive, all of them are dead.
///
/// # Errors
/// The store could not be read.
pub async fn earlier(store: &dyn Store) -> Result<Vec<ReplicaId>, String> {
    let all = stored(store).await?;
    Ok(all
        .into_iter()
        .filter(|r| r.state != ReplicaState::Lost)
        .map(|r| r.replica_id)
        .collect())
}

/// How many replicas may be serving, asked by one not registered yet: every one not marked
/// lost or stopped (live or stopping as stored), whether or not its lease looks run out from
/// here (it may be paused, or the store just back): a replica that starts beside them must not
/// close their books.
///
/// # Errors
/// The store could not be read.
pub async fn live_peers(store: &dyn Store) -> Result<usize, String> {
    Ok(earlier(store).await?.len())
}

/// How many replicas other than this process are live with a lease running now: the peers a
/// stopping replica may hand its sessions to.
///
/// # Errors
/// The store could not be read.
pub async fn serving_peers(store: &dyn Store, me: &ReplicaId) -> Result<usize, String> {
    let all = store.replicas(now_ms()).await.map_err(|e| e.to_string())?;
    Ok(all
        .iter()
        .filter(|r| r.state == ReplicaState::Live && &r.replica_id != me)
        .count())
}

/// The replicas with their states as stored (live, stopping, lost), no lease judged here:
/// judged from the epoch, no lease has run out.
async fn stored(store: &dyn Store) -> Result<Vec<ReplicaInfo>, String> {
    store.replicas(0).await.map_err(|e| e.to_string())
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
