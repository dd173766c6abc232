//! Session ownership on `SQLite`: the fence check, the claim and the release (see
//! [`crate::store::claim`]). One writer connection serializes them; `at` is the clock.

use rusqlite::{Connection, OptionalExtension, params};

use super::{Result, Seqs, apply_logged};
use crate::ids::{MessageId, ReplicaId, SessionId, TurnId, WorkerId};
use crate::store::claim;
use crate::store::{Applied, Fence, LoggedEvent};

/// The batch's view of each session's owner and epoch.
type Owners = std::collections::HashMap<SessionId, (Option<String>, i64)>;

/// Whether the session is still owned as the fence says: read once per batch (one writer:
/// only the batch itself changes it meanwhile, and it keeps `owners` up to date).
pub(super) fn holds(conn: &Connection, owners: &mut Owners, fence: &Fence) -> Result<bool> {
    if !owners.contains_key(&fence.session_id) {
        let row: Option<(Option<String>, i64)> = conn
            .prepare_cached("SELECT owner, owner_epoch FROM sessions WHERE id = ?")?
            .query_row([fence.session_id.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let Some(row) = row else { return Ok(false) };
        owners.insert(fence.session_id.clone(), row);
    }
    Ok(owners
        .get(&fence.session_id)
        .is_some_and(|(o, e)| o.as_deref() == Some(fence.owner.as_str()) && *e == fence.epoch))
}

/// Claims the session for `me` if it may (see [`claim::may_claim`]).
pub(super) fn claim(
    conn: &Connection,
    seqs: &mut Seqs,
    admin: &mut Vec<LoggedEvent>,
    (session, me, at): (&SessionId, &ReplicaId, i64),
) -> Result<Applied> {
    let me_live = conn
        .prepare_cached("SELECT 1 FROM replicas WHERE id = ? AND state = 'live'")?
        .exists([me.as_str()])?;
    if !me_live {
        return Ok(Applied::Held { owner: None });
    }
    let row: Option<(Option<String>, Option<String>, i64)> = conn
        .prepare_cached(
            "SELECT s.owner, r.state, s.owner_epoch FROM sessions s \
             LEFT JOIN replicas r ON r.id = s.owner WHERE s.id = ?",
        )?
        .query_row([session.as_str()], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .optional()?;
    let Some((owner, state, current_epoch)) = row else {
        return Ok(Applied::Held { owner: None });
    };
    if let Some(answer) = claim::answer(owner, state.as_deref(), current_epoch, me) {
        return Ok(answer);
    }
    let _ = at;
    let epoch: i64 = conn
        .prepare_cached(
            "UPDATE sessions SET owner = ?, owner_epoch = owner_epoch + 1 WHERE id = ? RETURNING owner_epoch",
        )?
        .query_row(params![me.as_str(), session.as_str()], |r| r.get(0))?;
    seqs.owners
        .insert(session.clone(), (Some(me.as_str().to_owned()), epoch));
    let turns = conn
        .prepare_cached(
            "SELECT id, message_id FROM turns WHERE session_id = ? AND ended_at IS NULL \
             AND state <> 'queued' ORDER BY seq",
        )?
        .query_map([session.as_str()], |r| {
            Ok((TurnId(r.get(0)?), MessageId(r.get(1)?)))
        })?
        .collect::<Result<Vec<_>>>()?;
    let workers = open_workers(conn, session)?;
    let mut events = Vec::new();
    for change in claim::takeover(session, turns, workers, at) {
        if let Applied::Events(mut e) = apply_logged(conn, seqs, &change, admin)? {
            events.append(&mut e);
        }
    }
    Ok(Applied::Claimed { epoch, events })
}

/// Takes the session from any owner (it was deleted): the owner's next write is refused.
pub(super) fn disown(
    conn: &Connection,
    seqs: &mut Seqs,
    admin: &mut Vec<LoggedEvent>,
    (session, at): (&SessionId, i64),
) -> Result<Applied> {
    let n = conn
        .prepare_cached(
            "UPDATE sessions SET owner = NULL, owner_epoch = owner_epoch + 1 WHERE id = ?",
        )?
        .execute([session.as_str()])?;
    seqs.owners.remove(session);
    for change in claim::deleted(open_workers(conn, session)?, at) {
        apply_logged(conn, seqs, &change, admin)?;
    }
    Ok(Applied::changed(n == 1))
}

/// The session's worker rows with no recorded exit.
fn open_workers(conn: &Connection, session: &SessionId) -> Result<Vec<(WorkerId, u32)>> {
    conn.prepare_cached(
        "SELECT worker_id, generation FROM workers WHERE session_id = ? AND exited_at IS NULL",
    )?
    .query_map([session.as_str()], |r| Ok((WorkerId(r.get(0)?), r.get(1)?)))?
    .collect()
}

/// Gives the session up, if still owned as the fence says.
pub(super) fn release(conn: &Connection, owners: &mut Owners, fence: &Fence) -> Result<Applied> {
    let n = conn
        .prepare_cached(
            "UPDATE sessions SET owner = NULL WHERE id = ? AND owner = ? AND owner_epoch = ?",
        )?
        .execute(params![
            fence.session_id.as_str(),
            fence.owner.as_str(),
            fence.epoch
        ])?;
    owners.remove(&fence.session_id);
    Ok(Applied::changed(n == 1))
}
