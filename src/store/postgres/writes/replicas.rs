//! Replica registration: a row per gateway process, its lease renewed until it stops.

use super::{Result, Writes, text};
use crate::store::{Applied, Change};

impl Writes<'_> {
    /// Registers, renews or stops a replica.
    pub(super) async fn apply_replica_write(&mut self, w: &Change) -> Result<Applied> {
        let n = match w {
            Change::RegisterReplica(r) => {
                self.execute(
                    sqlx::query(
                        "INSERT INTO replicas (id, name, host, pid, version, started_at, heartbeat_at, \
                         lease_until) VALUES ($1, $2, $3, $4, $5, $6, $6, $7)",
                    )
                    .bind(r.id.as_str())
                    .bind(text(&r.name))
                    .bind(text(&r.host))
                    .bind(i64::from(r.pid))
                    .bind(text(&r.version))
                    .bind(r.started_at)
                    .bind(r.lease_until),
                )
                .await?
            }
            Change::RenewLease {
                replica_id,
                at,
                lease_until,
            } => {
                self.execute(
                    sqlx::query(
                        "UPDATE replicas SET heartbeat_at = $1, lease_until = $2 \
                         WHERE id = $3 AND stopped_at IS NULL",
                    )
                    .bind(at)
                    .bind(lease_until)
                    .bind(replica_id.as_str()),
                )
                .await?
            }
            Change::ReplicaStopping {
                replica_id,
                at,
                stopped,
            } => {
                self.execute(
                    sqlx::query(
                        "UPDATE replicas SET stopping = true, heartbeat_at = $1, \
                         stopped_at = CASE WHEN $2 THEN $1 ELSE stopped_at END WHERE id = $3",
                    )
                    .bind(at)
                    .bind(stopped)
                    .bind(replica_id.as_str()),
                )
                .await?
            }
            _ => 0,
        };
        Ok(Applied::changed(n == 1))
    }
}
