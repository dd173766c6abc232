//! Replica registration: a row per gateway process, its lease renewed until it stops.

use rusqlite::{Connection, params};

use super::Result;
use crate::store::{Applied, Change};

/// Registers, renews or stops a replica.
pub(super) fn apply(conn: &Connection, w: &Change) -> Result<Applied> {
    let n = match w {
        Change::RegisterReplica(r) => conn
            .prepare_cached(
                "INSERT INTO replicas (id, name, host, pid, version, started_at, heartbeat_at, lease_until) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7)",
            )?
            .execute(params![
                r.id.as_str(),
                &r.name,
                &r.host,
                r.pid,
                &r.version,
                r.started_at,
                r.lease_until
            ])?,
        Change::RenewLease {
            replica_id,
            at,
            lease_until,
        } => conn
            .prepare_cached(
                "UPDATE replicas SET heartbeat_at = ?1, lease_until = ?2 \
                 WHERE id = ?3 AND state IN ('live', 'stopping')",
            )?
            .execute(params![at, lease_until, replica_id.as_str()])?,
        Change::ReplicaStopping {
            replica_id,
            at,
            stopped,
        } => conn
            .prepare_cached(
                "UPDATE replicas SET stopping = 1, heartbeat_at = ?1, \
                 stopped_at = CASE WHEN ?2 THEN ?1 ELSE stopped_at END, \
                 state = CASE WHEN ?2 THEN 'stopped' ELSE 'stopping' END \
                 WHERE id = ?3 AND state IN ('live', 'stopping')",
            )?
            .execute(params![at, stopped, replica_id.as_str()])?,
        Change::MarkLost { replicas, judge, at } => {
            let mut n = match judge {
                Some(me) => conn
                    .prepare_cached(
                        "UPDATE replicas SET state = 'lost' WHERE state IN ('live', 'stopping') \
                         AND lease_until < ? AND id <> ?",
                    )?
                    .execute(params![at, me.as_str()])?,
                None => 0,
            };
            let mut named = conn.prepare_cached(
                "UPDATE replicas SET state = 'lost' WHERE id = ? AND state IN ('live', 'stopping')",
            )?;
            for r in replicas {
                n += named.execute([r.as_str()])?;
            }
            return Ok(Applied::changed(n > 0));
        }
        _ => 0,
    };
    Ok(Applied::changed(n == 1))
}
