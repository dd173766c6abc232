//! Writes: every [`Write`] variant as SQL, run inside the batch's transaction.

use sqlx::SqliteConnection;

use super::super::lifecycle::{self, Lifecycle};
use super::super::{AdminEvent, Applied, StoredEvent, TurnRecord, WorkerExit, Write};
use crate::api::EventKind;
use crate::ids::{SessionId, TurnId, WorkerId};

/// Appends one event, taking the session's next sequence number.
#[allow(clippy::too_many_arguments)] // the event's columns, plus the batch's sequence counters
async fn append(
    conn: &mut SqliteConnection,
    seqs: &mut Seqs,
    session: &SessionId,
    turn: Option<&TurnId>,
    kind: EventKind,
    data: &serde_json::Value,
    at: i64,
) -> Result<StoredEvent, sqlx::Error> {
    let seq = match seqs.get_mut(session) {
        Some(last) => {
            *last += 1;
            *last
        }
        None => {
            let last: i64 = sqlx::query_scalar("SELECT last_seq FROM sessions WHERE id = ?")
                .bind(session.as_str())
                .fetch_one(&mut *conn)
                .await?;
            seqs.insert(session.clone(), last + 1);
            last + 1
        }
    };
    let data = data.to_string();
    sqlx::query(
        "INSERT INTO events (session_id, seq, turn_id, kind, data, created_at) VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(session.as_str())
    .bind(seq)
    .bind(turn.map(TurnId::as_str))
    .bind(kind.as_str())
    .bind(&data)
    .bind(at)
    .execute(&mut *conn)
    .await?;
    Ok(StoredEvent {
        session_id: session.clone(),
        seq,
        turn_id: turn.cloned(),
        kind: kind.as_str().to_owned(),
        data,
    })
}

/// The sessions' last event sequence numbers within one batch: read once per session, counted
/// in memory, written back once at the end of the batch ([`store_seqs`]).
pub(super) type Seqs = std::collections::HashMap<SessionId, i64>;

/// Writes the batch's sequence counters back to their sessions.
pub(super) async fn store_seqs(
    conn: &mut SqliteConnection,
    seqs: &Seqs,
) -> Result<(), sqlx::Error> {
    for (session, last) in seqs {
        sqlx::query("UPDATE sessions SET last_seq = ? WHERE id = ?")
            .bind(last)
            .bind(session.as_str())
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Applies one write and logs the admin events it implies.
pub(super) async fn apply_logged(
    conn: &mut SqliteConnection,
    seqs: &mut Seqs,
    w: &Write,
    admin: &mut Vec<AdminEvent>,
) -> Result<Applied, sqlx::Error> {
    let applied = apply_one(conn, seqs, w).await?;
    for Lifecycle {
        kind,
        turn_id,
        worker_id,
        data,
    } in lifecycle::derive(w, &applied)
    {
        let data = data.to_string();
        let at = crate::clock::now_ms();
        let seq: i64 = sqlx::query_scalar(
            "INSERT INTO admin_events (kind, turn_id, worker_id, data, created_at) VALUES (?, ?, ?, ?, ?) RETURNING seq",
        )
        .bind(kind)
        .bind(turn_id.as_ref().map(TurnId::as_str))
        .bind(worker_id.as_ref().map(WorkerId::as_str))
        .bind(&data)
        .bind(at)
        .fetch_one(&mut *conn)
        .await?;
        admin.push(AdminEvent {
            seq,
            kind: kind.to_owned(),
            data,
        });
    }
    Ok(applied)
}

async fn apply_one(
    conn: &mut SqliteConnection,
    seqs: &mut Seqs,
    w: &Write,
) -> Result<Applied, sqlx::Error> {
    Ok(match w {
        Write::CreateSession(s) => {
            sqlx::query(
                "INSERT INTO sessions (id, agent_id, thread, token, created_at, last_activity, expires_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(s.id.as_str())
            .bind(&s.agent_id)
            .bind(&s.thread)
            .bind(&s.token)
            .bind(s.created_at)
            .bind(s.last_activity)
            .bind(s.expires_at)
            .execute(&mut *conn)
            .await?;
            Applied::Done(true)
        }
        Write::DeleteSession { id, at } => {
            let r = sqlx::query(
                "UPDATE sessions SET deleted_at = ? WHERE id = ? AND deleted_at IS NULL",
            )
            .bind(at)
            .bind(id.as_str())
            .execute(&mut *conn)
            .await?;
            Applied::Done(r.rows_affected() == 1)
        }
        Write::Event {
            session_id,
            turn_id,
            kind,
            data,
            at,
            from,
            announce,
        } => {
            // The turn's row is touched (and checked open) on its first progress and at most once
            // a second after: its actor emits progress only for the turn it holds, and the
            // journal's order puts every such event before that turn's end.
            if let (Some(turn), true) = (turn_id, announce) {
                let streaming = matches!(kind, EventKind::Output);
                let r = sqlx::query(
                    "UPDATE turns SET last_progress_at = ?1, \
                     first_output_at = CASE WHEN ?2 THEN COALESCE(first_output_at, ?1) ELSE first_output_at END, \
                     state = CASE WHEN ?2 THEN 'streaming' ELSE state END \
                     WHERE id = ?3 AND ended_at IS NULL",
                )
                .bind(at)
                .bind(streaming)
                .bind(turn.as_str())
                .execute(&mut *conn)
                .await?;
                if r.rows_affected() == 0 {
                    if let Some((worker, generation)) = from {
                        record_output(
                            conn,
                            worker,
                            *generation,
                            Some(turn),
                            "late",
                            "its turn had already ended",
                            &data.to_string(),
                            *at,
                        )
                        .await?;
                    }
                    return Ok(Applied::Events(Vec::new()));
                }
            }
            let ev = append(conn, seqs, session_id, turn_id.as_ref(), *kind, data, *at).await?;
            Applied::Events(vec![ev])
        }
        other => apply_turn_write(conn, seqs, other).await?,
    })
}

/// Turn writes: accept, dispatch, end.
async fn apply_turn_write(
    conn: &mut SqliteConnection,
    seqs: &mut Seqs,
    w: &Write,
) -> Result<Applied, sqlx::Error> {
    Ok(match w {
        Write::InsertTurn { turn } => insert_turn(conn, turn).await?,
        Write::Dispatch {
            turn_id,
            worker_id,
            generation,
            at,
            deadline_at,
            stall_ms,
        } => {
            let r = sqlx::query(
                "UPDATE turns SET state = 'dispatched', worker_id = ?, worker_generation = ?, \
                 dispatched_at = ?, last_progress_at = ?, deadline_at = ?, stall_ms = ? \
                 WHERE id = ? AND ended_at IS NULL",
            )
            .bind(worker_id.as_str())
            .bind(i64::from(*generation))
            .bind(at)
            .bind(at)
            .bind(deadline_at)
            .bind(stall_ms)
            .bind(turn_id.as_str())
            .execute(&mut *conn)
            .await?;
            Applied::Done(r.rows_affected() == 1)
        }
        Write::EndTurn {
            session_id,
            turn_id,
            ending,
            events,
            at,
            ..
        } => {
            let r = sqlx::query(
                "UPDATE turns SET state = ?, outcome = ?, code = ?, error = ?, final_text = ?, \
                 exit_code = ?, signal = ?, ended_at = ? WHERE id = ? AND ended_at IS NULL",
            )
            .bind(ending.outcome.as_str())
            .bind(ending.outcome.as_str())
            .bind(ending.code.map(crate::api::ErrorCode::as_str))
            .bind(&ending.error)
            .bind(&ending.final_text)
            .bind(ending.exit_code)
            .bind(ending.signal)
            .bind(at)
            .bind(turn_id.as_str())
            .execute(&mut *conn)
            .await?;
            if r.rows_affected() == 0 {
                return Ok(Applied::Events(Vec::new()));
            }
            let mut out = Vec::with_capacity(events.len());
            for (kind, data) in events {
                out.push(append(conn, seqs, session_id, Some(turn_id), *kind, data, *at).await?);
            }
            Applied::Events(out)
        }
        Write::TurnWaiting { turn_id, until } => {
            let r = sqlx::query(
                "UPDATE turns SET queue_deadline_at = ? WHERE id = ? AND ended_at IS NULL",
            )
            .bind(until)
            .bind(turn_id.as_str())
            .execute(&mut *conn)
            .await?;
            Applied::Done(r.rows_affected() == 1)
        }
        other => apply_worker_write(conn, other).await?,
    })
}

/// Worker bookkeeping, rejected output and pruning.
async fn apply_worker_write(
    conn: &mut SqliteConnection,
    w: &Write,
) -> Result<Applied, sqlx::Error> {
    Ok(match w {
        Write::WorkerSpawned(s) => {
            sqlx::query(
                "INSERT INTO workers (worker_id, generation, pid, agent_id, session_id, state, started_at) \
                 VALUES (?, ?, ?, ?, ?, 'starting', ?)",
            )
            .bind(s.worker_id.as_str())
            .bind(i64::from(s.generation))
            .bind(i64::from(s.pid))
            .bind(&s.agent_id)
            .bind(s.session_id.as_str())
            .bind(s.at)
            .execute(&mut *conn)
            .await?;
            Applied::Done(true)
        }
        Write::WorkerState {
            worker_id,
            generation,
            state,
            turn_id,
            at,
        } => {
            let r = sqlx::query(
                "UPDATE workers SET state = ?1, current_turn_id = ?2, \
                 ready_at = CASE WHEN ?1 = 'ready' THEN ?3 ELSE ready_at END, \
                 turns_served = turns_served + (?2 IS NOT NULL), \
                 last_progress_at = CASE WHEN ?2 IS NOT NULL THEN ?3 ELSE last_progress_at END \
                 WHERE worker_id = ?4 AND generation = ?5 AND exited_at IS NULL",
            )
            .bind(state)
            .bind(turn_id.as_ref().map(TurnId::as_str))
            .bind(at)
            .bind(worker_id.as_str())
            .bind(i64::from(*generation))
            .execute(&mut *conn)
            .await?;
            Applied::Done(r.rows_affected() == 1)
        }
        Write::WorkerHeartbeat {
            worker_id,
            generation,
            at,
        } => {
            sqlx::query(
                "UPDATE workers SET last_heartbeat_at = ? WHERE worker_id = ? AND generation = ?",
            )
            .bind(at)
            .bind(worker_id.as_str())
            .bind(i64::from(*generation))
            .execute(&mut *conn)
            .await?;
            Applied::Done(true)
        }
        Write::WorkerExited(e) => worker_exited(conn, e).await?,
        Write::Reject(r) => {
            record_output(
                conn,
                &r.worker_id,
                r.generation,
                r.turn_id.as_ref(),
                r.kind,
                &r.reason,
                &r.line,
                r.at,
            )
            .await?;
            Applied::Done(true)
        }
        Write::Prune { before } => prune(conn, *before).await?,
        Write::Action(_) => Applied::Done(true),
        Write::CreateSession(_)
        | Write::DeleteSession { .. }
        | Write::InsertTurn { .. }
        | Write::Dispatch { .. }
        | Write::TurnWaiting { .. }
        | Write::Event { .. }
        | Write::EndTurn { .. } => Applied::Done(false),
    })
}

async fn insert_turn(conn: &mut SqliteConnection, t: &TurnRecord) -> Result<Applied, sqlx::Error> {
    let r = sqlx::query(
        "INSERT INTO turns (id, session_id, agent_id, message_id, content, state, created_at) \
         VALUES (?, ?, ?, ?, ?, 'queued', ?) ON CONFLICT (session_id, message_id) DO NOTHING",
    )
    .bind(t.id.as_str())
    .bind(t.session_id.as_str())
    .bind(&t.agent_id)
    .bind(t.message_id.as_str())
    .bind(&t.content)
    .bind(t.created_at)
    .execute(&mut *conn)
    .await?;
    if r.rows_affected() == 1 {
        sqlx::query("UPDATE sessions SET last_activity = ? WHERE id = ?")
            .bind(t.created_at)
            .bind(t.session_id.as_str())
            .execute(&mut *conn)
            .await?;
        return Ok(Applied::Turn {
            turn_id: t.id.clone(),
            created: true,
        });
    }
    let existing: String =
        sqlx::query_scalar("SELECT id FROM turns WHERE session_id = ? AND message_id = ?")
            .bind(t.session_id.as_str())
            .bind(t.message_id.as_str())
            .fetch_one(&mut *conn)
            .await?;
    Ok(Applied::Turn {
        turn_id: TurnId(existing),
        created: false,
    })
}

async fn worker_exited(
    conn: &mut SqliteConnection,
    e: &WorkerExit,
) -> Result<Applied, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE workers SET state = 'exited', exit_code = ?, signal = ?, exited_at = ?, \
         intentional = ?, exit_reason = ?, stderr_tail = ?, current_turn_id = NULL \
         WHERE worker_id = ? AND generation = ? AND exited_at IS NULL",
    )
    .bind(e.exit_code)
    .bind(e.signal)
    .bind(e.at)
    .bind(e.intentional)
    .bind(&e.reason)
    .bind(&e.stderr_tail)
    .bind(e.worker_id.as_str())
    .bind(i64::from(e.generation))
    .execute(&mut *conn)
    .await?;
    Ok(Applied::Done(r.rows_affected() == 1))
}

#[allow(clippy::too_many_arguments)] // one column each; a struct would only be unpacked again
async fn record_output(
    conn: &mut SqliteConnection,
    worker: &WorkerId,
    generation: u32,
    turn: Option<&TurnId>,
    kind: &str,
    reason: &str,
    line: &str,
    at: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO worker_output (worker_id, generation, turn_id, kind, reason, line, created_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(worker.as_str())
    .bind(i64::from(generation))
    .bind(turn.map(TurnId::as_str))
    .bind(kind)
    .bind(reason)
    .bind(line)
    .bind(at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Drops the events of turns that ended before `before`, remembering per session how far the
/// log was pruned so a resume from before that point is told about its gap.
async fn prune(conn: &mut SqliteConnection, before: i64) -> Result<Applied, sqlx::Error> {
    let turns: Vec<(String, String)> = sqlx::query_as(
        "SELECT id, session_id FROM turns WHERE ended_at IS NOT NULL AND events_pruned = 0 \
         AND ended_at < ? LIMIT 500",
    )
    .bind(before)
    .fetch_all(&mut *conn)
    .await?;
    for (turn, session) in &turns {
        sqlx::query(
            "UPDATE sessions SET pruned_through = MAX(pruned_through, \
             COALESCE((SELECT MAX(seq) FROM events WHERE turn_id = ?1), 0)) WHERE id = ?2",
        )
        .bind(turn)
        .bind(session)
        .execute(&mut *conn)
        .await?;
        sqlx::query("DELETE FROM events WHERE turn_id = ?")
            .bind(turn)
            .execute(&mut *conn)
            .await?;
        sqlx::query("UPDATE turns SET events_pruned = 1 WHERE id = ?")
            .bind(turn)
            .execute(&mut *conn)
            .await?;
    }
    Ok(Applied::Done(!turns.is_empty()))
}
