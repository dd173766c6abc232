//! Turn writes: accept a message, dispatch it, end it (the conditional first-writer-wins end),
//! and the open check an event may ask for.

use super::{Result, Writes, text};
use crate::api::{ErrorCode, EventKind, TurnState};
use crate::ids::TurnId;
use crate::store::{Applied, Change, Progress, TurnRecord};

impl Writes<'_> {
    /// Whether the turn is open, as far as `progress` asks; an announcement also refreshes the
    /// turn's progress clock (and marks it streaming on output).
    pub(super) async fn is_open(
        &mut self,
        turn: &TurnId,
        kind: EventKind,
        progress: Progress,
        at: i64,
    ) -> Result<bool> {
        Ok(match progress {
            Progress::Append => true,
            Progress::Check => {
                sqlx::query("SELECT 1 FROM turns WHERE id = $1 AND ended_at IS NULL")
                    .bind(turn.as_str())
                    .fetch_optional(&mut *self.conn)
                    .await?
                    .is_some()
            }
            Progress::Announce => {
                let streaming = matches!(kind, EventKind::Output);
                let n = self
                    .execute(
                        sqlx::query(
                            "UPDATE turns SET last_progress_at = $1, \
                             first_output_at = CASE WHEN $2 THEN COALESCE(first_output_at, $1) ELSE first_output_at END, \
                             state = CASE WHEN $2 THEN 'streaming' ELSE state END \
                             WHERE id = $3 AND ended_at IS NULL",
                        )
                        .bind(at)
                        .bind(streaming)
                        .bind(turn.as_str()),
                    )
                    .await?;
                n == 1
            }
        })
    }

    /// Turn writes: accept, dispatch, end.
    pub(super) async fn apply_turn_write(&mut self, w: &Change) -> Result<Applied> {
        Ok(match w {
            Change::InsertTurn { turn } => self.insert_turn(turn).await?,
            Change::Dispatch {
                turn_id,
                worker_id,
                generation,
                at,
                deadline_at,
                stall_ms,
            } => {
                let n = self
                    .execute(
                        sqlx::query(
                            "UPDATE turns SET state = 'dispatched', worker_id = $1, worker_generation = $2, \
                             dispatched_at = $3, last_progress_at = $3, deadline_at = $4, stall_ms = $5 \
                             WHERE id = $6 AND ended_at IS NULL AND state = 'queued' AND NOT EXISTS \
                             (SELECT 1 FROM turns e WHERE e.session_id = turns.session_id \
                              AND e.ended_at IS NULL AND e.seq < turns.seq)",
                        )
                        .bind(worker_id.as_str())
                        .bind(i64::from(*generation))
                        .bind(at)
                        .bind(deadline_at)
                        .bind(stall_ms)
                        .bind(turn_id.as_str()),
                    )
                    .await?;
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
                // The conditional end: under READ COMMITTED a second writer waits for the
                // first's row lock, then finds `ended_at` set and changes nothing.
                let n = self
                    .execute(
                        sqlx::query(
                            "UPDATE turns SET state = $1, outcome = $2, code = $3, error = $4, \
                             exit_code = $5, signal = $6, ended_at = $7 WHERE id = $8 AND ended_at IS NULL",
                        )
                        .bind(TurnState::from(ending.outcome).as_str())
                        .bind(ending.outcome.as_str())
                        .bind(ending.code.map(ErrorCode::as_str))
                        .bind(ending.error.as_deref().map(text))
                        .bind(ending.exit_code)
                        .bind(ending.signal)
                        .bind(at)
                        .bind(turn_id.as_str()),
                    )
                    .await?;
                if n == 0 {
                    return Ok(Applied::Events(Vec::new()));
                }
                let mut out = Vec::with_capacity(events.len());
                for event in events {
                    let ev = (event.kind(), event.to_data());
                    out.push(self.append(session_id, Some(turn_id), ev, *at).await?);
                }
                Applied::Events(out)
            }
            Change::TurnWaiting { turn_id, until } => {
                let n = self
                    .execute(
                        sqlx::query(
                            "UPDATE turns SET queue_deadline_at = $1 WHERE id = $2 AND ended_at IS NULL",
                        )
                        .bind(until)
                        .bind(turn_id.as_str()),
                    )
                    .await?;
                Applied::changed(n == 1)
            }
            other => self.apply_worker_write(other).await?,
        })
    }

    async fn insert_turn(&mut self, t: &TurnRecord) -> Result<Applied> {
        // The session's row is locked (`lock_sessions`): the next place in its order is safe.
        // Its `last_activity` moves in the same statement, only when the turn is new.
        let seq: Option<i64> = sqlx::query_scalar(
            "WITH t AS (INSERT INTO turns (id, session_id, agent_id, message_id, content, state, \
             created_at, seq) VALUES ($1, $2, $3, $4, $5, 'queued', $6, \
             (SELECT turn_seq + 1 FROM sessions WHERE id = $2)) \
             ON CONFLICT (session_id, message_id) DO NOTHING RETURNING seq), \
             u AS (UPDATE sessions SET last_activity = $6, turn_seq = t.seq FROM t WHERE sessions.id = $2) \
             SELECT seq FROM t",
        )
        .bind(t.id.as_str())
        .bind(t.session_id.as_str())
        .bind(&t.agent_id)
        .bind(t.message_id.as_str())
        .bind(text(&t.content))
        .bind(t.created_at)
        .fetch_optional(&mut *self.conn)
        .await?;
        if let Some(seq) = seq {
            return Ok(Applied::Turn {
                turn_id: t.id.clone(),
                created: true,
                seq,
            });
        }
        let (existing, seq): (String, i64) =
            sqlx::query_as("SELECT id, seq FROM turns WHERE session_id = $1 AND message_id = $2")
                .bind(t.session_id.as_str())
                .bind(t.message_id.as_str())
                .fetch_one(&mut *self.conn)
                .await?;
        Ok(Applied::Turn {
            turn_id: TurnId(existing),
            created: false,
            seq,
        })
    }
}
