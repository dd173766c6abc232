//! This process as a replica: its row in the store, a lease renewed every third of its length
//! until it stops, and a clean stop that takes it out of the list. A replica whose lease runs
//! out without a clean stop is lost (`GET /api/v1/admin/replicas` shows it so).
//!
//! What a lost replica's sessions become (takeover), and the fencing of a replica that comes
//! back after its lease ran out, follow the protocol in `model.pml`; this module is only the
//! registration that protocol starts from.

use std::time::Duration;
use tokio_util::sync::CancellationToken;

use crate::clock::now_ms;
use crate::ids::ReplicaId;
use crate::journal::{Journal, JournalError};
use crate::store::{Change, ReplicaRecord};

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
