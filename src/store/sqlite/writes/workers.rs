//! Worker bookkeeping (spawned, state, heartbeat, exit), rejected worker output, and pruning
//! the event log.

use rusqlite::{Connection, params};

use super::Result;
use crate::api::state::RejectionKind;
use crate::ids::{TurnId, WorkerId};
use crate::store::{Applied, Change, WorkerExit};

/// Worker bookkeeping, rejected output and pruning.
pub(super) fn apply_worker_write(conn: &Connection, w: &Change) -> Result<Applied> {
    Ok(match w {
        Change::WorkerSpawned(s) => {
            conn.prepare_cached(
                "INSERT INTO workers (worker_id, generation, pid, agent_id, session_id, state, started_at, \
                 host, boot_id, start_ticks, replica_id) VALUES (?, ?, ?, ?, ?, 'starting', ?, ?, ?, ?, ?)",
            )?
            .execute(params![
                s.worker_id.as_str(),
                s.generation,
                s.pid,
                &s.agent_id,
                s.session_id.as_str(),
                s.at,
                s.origin.as_ref().map(|o| &o.host),
                s.origin.as_ref().map(|o| &o.boot_id),
                s.origin.as_ref().map(|o| o.start_ticks as i64),
                s.replica_id.as_str(),
            ])?;
            Applied::Changed
        }
        Change::WorkerState {
            worker_id,
            generation,
            state,
            turn_id,
            at,
        } => {
            let n = conn
                .prepare_cached(
                    "UPDATE workers SET state = ?1, current_turn_id = ?2, \
                     ready_at = CASE WHEN ?1 = 'ready' THEN ?3 ELSE ready_at END, \
                     turns_served = turns_served + (?2 IS NOT NULL), \
                     last_progress_at = CASE WHEN ?2 IS NOT NULL THEN ?3 ELSE last_progress_at END \
                     WHERE worker_id = ?4 AND generation = ?5 AND exited_at IS NULL",
                )?
                .execute(params![
                    state.as_str(),
                    turn_id.as_ref().map(TurnId::as_str),
                    at,
                    worker_id.as_str(),
                    generation
                ])?;
            Applied::changed(n == 1)
        }
        Change::WorkerHeartbeat {
            worker_id,
            generation,
            at,
        } => {
            conn.prepare_cached(
                "UPDATE workers SET last_heartbeat_at = ? WHERE worker_id = ? AND generation = ?",
            )?
            .execute(params![at, worker_id.as_str(), generation])?;
            Applied::Changed
        }
        Change::WorkerExited(e) => worker_exited(conn, e)?,
        Change::Reject(r) => {
            let output = Output {
                kind: r.kind,
                reason: &r.reason,
                line: &r.line,
            };
            record_output(
                conn,
                (&r.worker_id, r.generation),
                r.turn_id.as_ref(),
                &output,
                r.at,
            )?;
            Applied::Changed
        }
        Change::Prune { before } => prune(conn, *before)?,
        Change::PruneHistory { before } => prune_history(conn, *before)?,
        Change::Action(_) => Applied::Changed,
        Change::RegisterReplica(_)
        | Change::RenewLease { .. }
        | Change::ReplicaStopping { .. }
        | Change::MarkLost { .. } => super::replicas::apply(conn, w)?,
        Change::IssueTicket(_) | Change::RedeemTicket { .. } => super::tickets::apply(conn, w)?,
        Change::CreateSession(_)
        | Change::DeleteSession { .. }
        | Change::InsertTurn { .. }
        | Change::Dispatch { .. }
        | Change::TurnWaiting { .. }
        | Change::Event { .. }
        | Change::EndTurn { .. }
        | Change::Fenced { .. }
        | Change::Claim { .. }
        | Change::Release { .. }
        | Change::Disown { .. } => Applied::Unchanged,
    })
}

fn worker_exited(conn: &Connection, e: &WorkerExit) -> Result<Applied> {
    let n = conn
        .prepare_cached(
            "UPDATE workers SET state = 'exited', exit_code = ?, signal = ?, exited_at = ?, \
             intentional = ?, exit_reason = ?, stderr_tail = ?, current_turn_id = NULL \
             WHERE worker_id = ? AND generation = ? AND exited_at IS NULL",
        )?
        .execute(params![
            e.exit_code,
            e.signal,
            e.at,
            e.intentional,
            &e.reason,
            &e.stderr_tail,
            e.worker_id.as_str(),
            e.generation
        ])?;
    Ok(Applied::changed(n == 1))
}

/// A worker's output line that was not accepted, and why.
pub(super) struct Output<'a> {
    pub kind: RejectionKind,
    pub reason: &'a str,
    pub line: &'a str,
}

pub(super) fn record_output(
    conn: &Connection,
    (worker, generation): (&WorkerId, u32),
    turn: Option<&TurnId>,
    output: &Output<'_>,
    at: i64,
) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO worker_output (worker_id, generation, turn_id, kind, reason, line, created_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )?
    .execute(params![
        worker.as_str(),
        generation,
        turn.map(TurnId::as_str),
        output.kind.as_str(),
        output.reason,
        output.line,
        at
    ])?;
    Ok(())
}

/// Drops the events of turns that ended before `before`, remembering per session how far the
/// log was pruned so a resume from before that point is told about its gap.
/// Turns whose events are pruned per [`Change::Prune`] at most.
const PRUNE_TURNS: i64 = 500;

fn prune(conn: &Connection, before: i64) -> Result<Applied> {
    conn.prepare_cached(crate::store::rows::FREE_IDLE_SESSIONS)?
        .execute([])?;
    conn.prepare_cached(crate::store::rows::FORGET_REPLICAS)?
        .execute([before])?;
    // Tickets are worthless once expired (seconds after issue): forgotten by now, not by the
    // retention cutoff.
    conn.prepare_cached(crate::store::rows::FORGET_TICKETS)?
        .execute([crate::clock::now_ms()])?;
    let turns: Vec<(String, String)> = conn
        .prepare_cached(
            "SELECT id, session_id FROM turns WHERE ended_at IS NOT NULL AND events_pruned = 0 \
             AND ended_at < ? LIMIT ?",
        )?
        .query_map([before, PRUNE_TURNS], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_>>()?;
    for (turn, session) in &turns {
        conn.prepare_cached(
            "UPDATE sessions SET pruned_through = MAX(pruned_through, \
             COALESCE((SELECT MAX(seq) FROM events WHERE turn_id = ?1), 0)) WHERE id = ?2",
        )?
        .execute(params![turn, session])?;
        conn.prepare_cached("DELETE FROM events WHERE turn_id = ?")?
            .execute([turn])?;
        conn.prepare_cached("UPDATE turns SET events_pruned = 1 WHERE id = ?")?
            .execute([turn])?;
    }
    // True when the batch was full: there may be more to prune right away.
    Ok(Applied::changed(turns.len() as i64 == PRUNE_TURNS))
}

/// Rows of each table forgotten per [`Change::PruneHistory`] at most, so one round never holds
/// the writer long; while a round is full, the gateway runs the next one a second later.
const HISTORY_ROWS: i64 = 2000;

/// One delete per history table, each bound to `?1` (the cutoff) and `?2` (the batch size),
/// each walking an index in time order.
const HISTORY_DELETES: [&str; 5] = [
    // Turns: ended, their events already pruned (`turns_created` walks them oldest first).
    "DELETE FROM turns WHERE id IN (SELECT id FROM turns WHERE created_at < ?1 \
     AND ended_at IS NOT NULL AND ended_at < ?1 AND events_pruned = 1 \
     ORDER BY created_at LIMIT ?2)",
    "DELETE FROM workers WHERE (worker_id, generation) IN (SELECT worker_id, generation \
     FROM workers WHERE started_at < ?1 AND exited_at IS NOT NULL AND exited_at < ?1 \
     ORDER BY started_at LIMIT ?2)",
    // Both logs grow in time order: their oldest rows come first by key.
    "DELETE FROM admin_events WHERE seq IN (SELECT seq FROM admin_events \
     ORDER BY seq LIMIT ?2) AND created_at < ?1",
    "DELETE FROM worker_output WHERE id IN (SELECT id FROM worker_output \
     ORDER BY id LIMIT ?2) AND created_at < ?1",
    // A session goes once it is deleted or expired, idle, and nothing refers to it.
    "DELETE FROM sessions WHERE id IN (SELECT s.id FROM sessions s \
     WHERE (s.deleted_at < ?1 OR s.expires_at < ?1) AND s.last_activity < ?1 \
     AND NOT EXISTS (SELECT 1 FROM turns t WHERE t.session_id = s.id) \
     AND NOT EXISTS (SELECT 1 FROM workers w WHERE w.session_id = s.id) LIMIT ?2)",
];

/// Forgets history older than `before`, at most [`HISTORY_ROWS`] rows of each table.
fn prune_history(conn: &Connection, before: i64) -> Result<Applied> {
    let mut full = false;
    for sql in HISTORY_DELETES {
        let n = conn
            .prepare_cached(sql)?
            .execute(params![before, HISTORY_ROWS])?;
        full |= n as i64 == HISTORY_ROWS;
    }
    // True when a table gave a full batch: there may be more right away.
    Ok(Applied::changed(full))
}
