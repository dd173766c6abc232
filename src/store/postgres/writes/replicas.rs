//! Replica registration: a row per gateway process, its lease renewed until it stops.

use super::{NOW_MS, Result, Writes, text};
use crate::ids::ReplicaId;
use crate::store::{Applied, Change};

impl Writes<'_> {
    /// Registers, renews or stops a replica.
    pub(super) async fn apply_replica_write(&mut self, w: &Change) -> Result<Applied> {
        let n = match w {
            Change::RegisterReplica(r) => {
                self.execute(
                    sqlx::query(&format!(
                        "INSERT INTO replicas (id, name, host, pid, version, started_at, heartbeat_at, \
                         lease_until, up_since) VALUES ($1, $2, $3, $4, $5, $6, {NOW_MS}, {NOW_MS} + $7 - $6, \
                         {NOW_MS})"
                    ))
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
                // The lease is measured from the database's clock; a row no longer live (lost,
                // stopped) is never renewed.
                self.execute(
                    sqlx::query(&format!(
                        "UPDATE replicas SET heartbeat_at = {NOW_MS}, lease_until = {NOW_MS} + $1, \
                         up_since = CASE WHEN heartbeat_at < {NOW_MS} - $1 * 2 / 3 THEN {NOW_MS} \
                         ELSE up_since END \
                         WHERE id = $2 AND state IN ('live', 'stopping')"
                    ))
                    .bind(lease_until - at)
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
                         stopped_at = CASE WHEN $2 THEN $1 ELSE stopped_at END, \
                         state = CASE WHEN $2 THEN 'stopped' ELSE 'stopping' END \
                         WHERE id = $3 AND state IN ('live', 'stopping')",
                    )
                    .bind(at)
                    .bind(stopped)
                    .bind(replica_id.as_str()),
                )
                .await?
            }
            Change::MarkLost {
                replicas, judge, ..
            } => {
                let ids: Vec<&str> = replicas.iter().map(ReplicaId::as_str).collect();
                let n = self
                    .execute(
                        sqlx::query(&format!(
                            "UPDATE replicas SET state = 'lost' WHERE state IN ('live', 'stopping') \
                             AND (id = ANY($1) OR ($2::text IS NOT NULL AND id <> $2 \
                                  AND lease_until < {NOW_MS} AND EXISTS (SELECT 1 FROM replicas j \
                                  WHERE j.id = $2 AND j.state = 'live' \
                                  AND j.up_since <= {NOW_MS} - (j.lease_until - j.heartbeat_at) \
                                  AND j.heartbeat_at >= {NOW_MS} - (j.lease_until - j.heartbeat_at) / 2)))"
                        ))
                        .bind(&ids)
                        .bind(judge.as_ref().map(ReplicaId::as_str)),
                    )
                    .await?;
                return Ok(Applied::changed(n > 0));
            }
            _ => 0,
        };
        Ok(Applied::changed(n == 1))
    }
}
