//! Writes: every [`Change`] variant as SQL, run synchronously inside the batch's transaction on
//! the writer connection (see [`super::Writer`]). Statements are prepared once per connection
//! and reused from its cache.

use rusqlite::{Connection, OptionalExtension, params};
use std::sync::Arc;

use super::super::lifecycle::{self, Lifecycle};
use super::super::{Applied, Change, LoggedEvent, Progress, StoredEvent, TurnRecord};
use crate::api::state::RejectionKind;
use crate::api::{ErrorCode, EventKind, TurnState};
use crate::ids::{SessionId, TurnId, WorkerId};

mod owners;
mod replicas;
mod tickets;
mod workers;

use workers::{Output, apply_worker_write, record_output};

type Result<T> = std::result::Result<T, rusqlite::Error>;

/// What one batch knows of the sessions it writes to: their last event sequence numbers (read
/// once per session, counted in memory, written back once at the end of the batch:
/// [`store_seqs`]) and their owners and epochs (read once per session for the fenced writes,
/// kept up to date by the batch's own claims and releases).
#[derive(Default)]
pub(super) struct Seqs {
    last: std::collections::HashMap<SessionId, i64>,
    owners: std::collections::HashMap<SessionId, (Option<String>, i64)>,
}

impl Seqs {
    /// Nothing known yet.
    pub(super) fn new() -> Self {
        Self::default()
    }
}

/// Appends one event, taking the session's next sequence number.
fn append(
    conn: &Connection,
    seqs: &mut Seqs,
    session: &SessionId,
    turn: Option<&TurnId>,
    (kind, data): (EventKind, String),
    at: i64,
) -> Result<Arc<StoredEvent>> {
    let seq = match seqs.last.get_mut(session) {
        Some(last) => {
            *last += 1;
            *last
        }
        None => {
            let last: i64 = conn
                .prepare_cached("SELECT last_seq FROM sessions WHERE id = ?")?
                .query_row([session.as_str()], |r| r.get(0))?;
            seqs.last.insert(session.clone(), last + 1);
            last + 1
        }
    };
    conn.prepare_cached(
        "INSERT INTO events (session_id, seq, turn_id, kind, data, created_at) VALUES (?, ?, ?, ?, ?, ?)",
    )?
    .execute(params![
        session.as_str(),
        seq,
        turn.map(TurnId::as_str),
        kind.as_str(),
        &data,
        at
    ])?;
    Ok(Arc::new(StoredEvent {
        session_id: session.clone(),
        seq,
        turn_id: turn.cloned(),
        kind,
        data,
    }))
}

/// Writes the batch's sequence counters back to their sessions.
pub(super) fn store_seqs(conn: &Connection, seqs: &Seqs) -> Result<()> {
    let mut update = conn.prepare_cached("UPDATE sessions SET last_seq = ? WHERE id = ?")?;
    for (session, last) in &seqs.last {
        update.execute(params![last, session.as_str()])?;
    }
    Ok(())
}

/// Applies one write and logs the admin events it implies.
pub(super) fn apply_logged(
    conn: &Connection,
    seqs: &mut Seqs,
    w: &Change,
    admin: &mut Vec<LoggedEvent>,
) -> Result<Applied> {
    match w {
        Change::Fenced { fence, change } => {
            return if owners::holds(conn, &mut seqs.owners, fence)? {
                apply_logged(conn, seqs, change, admin)
            } else {
                Ok(Applied::Fenced)
            };
        }
        Change::Claim {
            session_id,
            replica_id,
            at,
        } => return owners::claim(conn, seqs, admin, (session_id, replica_id, *at)),
        Change::Release { fence } => return owners::release(conn, &mut seqs.owners, fence),
        Change::Disown { session_id, at } => {
            return owners::disown(conn, seqs, admin, (session_id, *at));
        }
        _ => {}
    }
    let applied = apply_one(conn, seqs, w)?;
    for Lifecycle {
        event,
        turn_id,
        worker_id,
    } in lifecycle::derive(w, &applied)
    {
        let (kind, data) = (event.kind(), event.to_data());
        let seq: i64 = conn
            .prepare_cached(
                "INSERT INTO admin_events (kind, turn_id, worker_id, data, created_at) \
                 VALUES (?, ?, ?, ?, ?) RETURNING seq",
            )?
            .query_row(
                params![
                    kind,
                    turn_id.as_ref().map(TurnId::as_str),
                    worker_id.as_ref().map(WorkerId::as_str),
                    &data,
                    crate::clock::now_ms()
                ],
                |r| r.get(0),
            )?;
        admin.push(LoggedEvent {
            seq,
            kind: kind.to_owned(),
            data,
        });
    }
    Ok(applied)
}

fn apply_one(conn: &Connection, seqs: &mut Seqs, w: &Change) -> Result<Applied> {
    Ok(match w {
        Change::CreateSession(s) => {
            conn.prepare_cached(
                "INSERT INTO sessions (id, agent_id, thread, token, created_at, last_activity, expires_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?)",
            )?
            .execute(params![
                s.id.as_str(),
                &s.agent_id,
                &s.thread,
                &s.token,
                s.created_at,
                s.last_activity,
                s.expires_at
            ])?;
            Applied::Changed
        }
        Change::DeleteSession { id, at } => {
            let n = conn
                .prepare_cached(
                    "UPDATE sessions SET deleted_at = ? WHERE id = ? AND deleted_at IS NULL",
                )?
                .execute(params![at, id.as_str()])?;
            Applied::changed(n == 1)
        }
        Change::Event {
            session_id,
            turn_id,
            kind,
            data,
            at,
            from,
            progress,
        } => {
            // The turn's row is read or touched only when the event asks for it (see
            // `Progress`): most deltas are appended without looking.
            if let Some(turn) = turn_id
                && !is_open(conn, turn, *kind, *progress, *at)?
            {
                if let Some((worker, generation)) = from {
                    let late = Output {
                        kind: RejectionKind::Late,
                        reason: "its turn had already ended",
                        line: data,
                    };
                    record_output(conn, (worker, *generation), Some(turn), &late, *at)?;
                }
                return Ok(Applied::Events(Vec::new()));
            }
            let ev = append(
                conn,
                seqs,
                session_id,
                turn_id.as_ref(),
                (*kind, data.clone()),
                *at,
            )?;
            Applied::Events(vec![ev])
        }
        other => apply_turn_write(conn, seqs, other)?,
    })
}

/// Whether the turn is open, as far as `progress` asks; an announcement also refreshes the
/// turn's progress clock (and marks it streaming on output).
fn is_open(
    conn: &Connection,
    turn: &TurnId,
    kind: EventKind,
    progress: Progress,
    at: i64,
) -> Result<bool> {
    Ok(match progress {
        Progress::Append => true,
        Progress::Check => conn
            .prepare_cached("SELECT 1 FROM turns WHERE id = ? AND ended_at IS NULL")?
            .exists([turn.as_str()])?,
        Progress::Announce => {
            let streaming = matches!(kind, EventKind::Output);
            let n = conn
                .prepare_cached(
                    "UPDATE turns SET last_progress_at = ?1, \
                     first_output_at = CASE WHEN ?2 THEN COALESCE(first_output_at, ?1) ELSE first_output_at END, \
                     state = CASE WHEN ?2 THEN 'streaming' ELSE state END \
                     WHERE id = ?3 AND ended_at IS NULL",
                )?
                .execute(params![at, streaming, turn.as_str()])?;
            n == 1
        }
    })
}

/// Turn writes: accept, dispatch, end.
fn apply_turn_write(conn: &Connection, seqs: &mut Seqs, w: &Change) -> Result<Applied> {
    Ok(match w {
        Change::InsertTurn { turn } => insert_turn(conn, turn)?,
        Change::Dispatch {
            turn_id,
            worker_id,
            generation,
            at,
            deadline_at,
            stall_ms,
        } => {
            let n = conn
                .prepare_cached(
                    "UPDATE turns SET state = 'dispatched', worker_id = ?, worker_generation = ?, \
                     dispatched_at = ?, last_progress_at = ?, deadline_at = ?, stall_ms = ? \
                     WHERE id = ? AND ended_at IS NULL AND state = 'queued' AND NOT EXISTS \
                     (SELECT 1 FROM turns e WHERE e.session_id = turns.session_id \
                      AND e.ended_at IS NULL AND e.seq < turns.seq)",
                )?
                .execute(params![
                    worker_id.as_str(),
                    generation,
                    at,
                    at,
                    deadline_at,
                    stall_ms,
                    turn_id.as_str()
                ])?;
            Applied::changed(n == 1)
        }
        Change::EndTurn {
            session_id,
            turn_id,
            ending,
            events,
            at,
            ..
        } => {
            let n = conn
                .prepare_cached(
                    "UPDATE turns SET state = ?, outcome = ?, code = ?, error = ?, \
                     exit_code = ?, signal = ?, ended_at = ? WHERE id = ? AND ended_at IS NULL",
                )?
                .execute(params![
                    TurnState::from(ending.outcome).as_str(),
                    ending.outcome.as_str(),
                    ending.code.map(ErrorCode::as_str),
                    &ending.error,
                    ending.exit_code,
                    ending.signal,
                    at,
                    turn_id.as_str()
                ])?;
            if n == 0 {
                return Ok(Applied::Events(Vec::new()));
            }
            let mut out = Vec::with_capacity(events.len());
            for event in events {
                out.push(append(
                    conn,
                    seqs,
                    session_id,
                    Some(turn_id),
                    (event.kind(), event.to_data()),
                    *at,
                )?);
            }
            Applied::Events(out)
        }
        Change::TurnWaiting { turn_id, until } => {
            let n = conn
                .prepare_cached(
                    "UPDATE turns SET queue_deadline_at = ? WHERE id = ? AND ended_at IS NULL",
                )?
                .execute(params![until, turn_id.as_str()])?;
            Applied::changed(n == 1)
        }
        other => apply_worker_write(conn, other)?,
    })
}

fn insert_turn(conn: &Connection, t: &TurnRecord) -> Result<Applied> {
    let n = conn
        .prepare_cached(
            "INSERT INTO turns (id, session_id, agent_id, message_id, content, state, created_at, seq) \
             VALUES (?1, ?2, ?3, ?4, ?5, 'queued', ?6, \
             (SELECT turn_seq + 1 FROM sessions WHERE id = ?2)) \
             ON CONFLICT (session_id, message_id) DO NOTHING RETURNING seq",
        )?
        .query_row(
            params![
                t.id.as_str(),
                t.session_id.as_str(),
                &t.agent_id,
                t.message_id.as_str(),
                &t.content,
                t.created_at
            ],
            |r| r.get::<_, i64>(0),
        )
        .optional()?;
    if let Some(seq) = n {
        conn.prepare_cached("UPDATE sessions SET last_activity = ?, turn_seq = ? WHERE id = ?")?
            .execute(params![t.created_at, seq, t.session_id.as_str()])?;
        return Ok(Applied::Turn {
            turn_id: t.id.clone(),
            created: true,
            seq,
        });
    }
    let (existing, seq): (String, i64) = conn
        .prepare_cached("SELECT id, seq FROM turns WHERE session_id = ? AND message_id = ?")?
        .query_row(params![t.session_id.as_str(), t.message_id.as_str()], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    Ok(Applied::Turn {
        turn_id: TurnId(existing),
        created: false,
        seq,
    })
}
