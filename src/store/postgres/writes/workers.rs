//! Worker bookkeeping (spawned, state, heartbeat, exit), rejected worker output, and pruning
//! the event log and the history, as `SQLite`'s writes do them.

use super::{Result, Writes, text};
use crate::api::state::RejectionKind;
use crate::ids::{TurnId, WorkerId};
use crate::store::{Applied, Change, WorkerExit, WorkerSpawn};

/// A worker's output line that was not accepted, and why.
pub(super) struct Output<'a> {
    pub kind: RejectionKind,
    pub reason: &'a str,
    pub line: &'a str,
}

/// Turns whose events are pruned per [`Change::Prune`] at most.
const PRUNE_TURNS: i64 = 500;

/// Rows of each table forgotten per [`Change::PruneHistory`] at most, so one round never holds
/// the writer long; while a round is full, the gateway runs the next one a second later.
const HISTORY_ROWS: i64 = 2000;

/// One delete per history table, each bound to `$1` (the cutoff) and `$2` (the batch size),
/// each walking an index in time order (the same deletes as `SQLite`'s).
const HISTORY_DELETES: [&str; 5] = [
    // Turns: ended, their events already pruned (`turns_created` walks them oldest first).
    "DELETE FROM turns WHERE id IN (SELECT id FROM turns WHERE created_at < $1 \
     AND ended_at IS NOT NULL AND ended_at < $1 AND events_pruned \
     ORDER BY created_at LIMIT $2)",
    "DELETE FROM workers WHERE (worker_id, generation) IN (SELECT worker_id, generation \
     FROM workers WHERE started_at < $1 AND exited_at IS NOT NULL AND exited_at < $1 \
     ORDER BY started_at LIMIT $2)",
    // Both logs grow in key order: their oldest rows come first by key.
    "DELETE FROM admin_events WHERE seq IN (SELECT seq FROM admin_events \
     ORDER BY seq LIMIT $2) AND created_at < $1",
    "DELETE FROM worker_output WHERE id IN (SELECT id FROM worker_output \
     ORDER BY id LIMIT $2) AND created_at < $1",
    // A session goes once it is deleted or expired, idle, and nothing refers to it.
    "DELETE FROM sessions WHERE id IN (SELECT s.id FROM sessions s \
     WHERE (s.deleted_at < $1 OR s.expires_at < $1) AND s.last_activity < $1 \
     AND NOT EXISTS (SELECT 1 FROM turns t WHERE t.session_id = s.id) \
     AND NOT EXISTS (SELECT 1 FROM workers w WHERE w.session_id = s.id) LIMIT $2)",
];

impl Writes<'_> {
    /// Worker bookkeeping, rejected output and pruning.
    pub(super) async fn apply_worker_write(&mut self, w: &Change) -> Result<Applied> {
        Ok(match w {
            Change::WorkerSpawned(s) => self.worker_spawned(s).await?,
            Change::WorkerState {
                worker_id,
                generation,
                state,
                turn_id,
                at,
            } => {
                let n = self
                    .execute(
                        sqlx::query(
                            "UPDATE workers SET state = $1, current_turn_id = $2, \
                             ready_at = CASE WHEN $1 = 'ready' THEN $3 ELSE ready_at END, \
                             turns_served = turns_served + CASE WHEN $2::text IS NULL THEN 0 ELSE 1 END, \
                             last_progress_at = CASE WHEN $2::text IS NULL THEN last_progress_at ELSE $3 END \
                             WHERE worker_id = $4 AND generation = $5 AND exited_at IS NULL",
                        )
                        .bind(state.as_str())
                        .bind(turn_id.as_ref().map(TurnId::as_str))
                        .bind(at)
                        .bind(worker_id.as_str())
                        .bind(i64::from(*generation)),
                    )
                    .await?;
                Applied::changed(n == 1)
            }
            Change::WorkerHeartbeat {
                worker_id,
                generation,
                at,
            } => {
                self.execute(
                    sqlx::query(
                        "UPDATE workers SET last_heartbeat_at = $1 WHERE worker_id = $2 AND generation = $3",
                    )
                    .bind(at)
                    .bind(worker_id.as_str())
                    .bind(i64::from(*generation)),
                )
                .await?;
                Applied::Changed
            }
            Change::WorkerExited(e) => self.worker_exited(e).await?,
            Change::Reject(r) => {
                let output = Output {
                    kind: r.kind,
                    reason: &r.reason,
                    line: &r.line,
                };
                self.record_output(
                    (&r.worker_id, r.generation),
                    r.turn_id.as_ref(),
                    &output,
                    r.at,
                )
                .await?;
                Applied::Changed
            }
            Change::Prune { before } => self.prune(*before).await?,
            Change::PruneHistory { before } => self.prune_history(*before).await?,
            Change::Action(_) => Applied::Changed,
            Change::RegisterReplica(_)
            | Change::RenewLease { .. }
            | Change::ReplicaStopping { .. }
            | Change::MarkLost { .. } => self.apply_replica_write(w).await?,
            Change::IssueTicket(_) | Change::RedeemTicket { .. } => {
                self.apply_ticket_write(w).await?
            }
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

    async fn worker_spawned(&mut self, s: &WorkerSpawn) -> Result<Applied> {
        let origin = s.origin.as_ref();
        self.execute(
            sqlx::query(
                "INSERT INTO workers (worker_id, generation, pid, agent_id, session_id, state, started_at, \
                 host, boot_id, start_ticks, replica_id) \
                 VALUES ($1, $2, $3, $4, $5, 'starting', $6, $7, $8, $9, $10)",
            )
            .bind(s.worker_id.as_str())
            .bind(i64::from(s.generation))
            .bind(i64::from(s.pid))
            .bind(&s.agent_id)
            .bind(s.session_id.as_str())
            .bind(s.at)
            .bind(origin.map(|o| text(&o.host)))
            .bind(origin.map(|o| text(&o.boot_id)))
            .bind(origin.map(|o| o.start_ticks as i64))
            .bind(s.replica_id.as_str()),
        )
        .await?;
        Ok(Applied::Changed)
    }

    async fn worker_exited(&mut self, e: &WorkerExit) -> Result<Applied> {
        let n = self
            .execute(
                sqlx::query(
                    "UPDATE workers SET state = 'exited', exit_code = $1, signal = $2, exited_at = $3, \
                     intentional = $4, exit_reason = $5, stderr_tail = $6, current_turn_id = NULL \
                     WHERE worker_id = $7 AND generation = $8 AND exited_at IS NULL",
                )
                .bind(e.exit_code)
                .bind(e.signal)
                .bind(e.at)
                .bind(e.intentional)
                .bind(text(&e.reason))
                .bind(text(&e.stderr_tail))
                .bind(e.worker_id.as_str())
                .bind(i64::from(e.generation)),
            )
            .await?;
        Ok(Applied::changed(n == 1))
    }

    /// Records a rejected or late line of a worker's output.
    pub(super) async fn record_output(
        &mut self,
        (worker, generation): (&WorkerId, u32),
        turn: Option<&TurnId>,
        output: &Output<'_>,
        at: i64,
    ) -> Result<()> {
        self.execute(
            sqlx::query(
                "INSERT INTO worker_output (worker_id, generation, turn_id, kind, reason, line, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(worker.as_str())
            .bind(i64::from(generation))
            .bind(turn.map(TurnId::as_str))
            .bind(output.kind.as_str())
            .bind(text(output.reason))
            .bind(text(output.line))
            .bind(at),
        )
        .await?;
        Ok(())
    }

    /// Drops the events of turns that ended before `before`, remembering per session how far
    /// the log was pruned so a resume from before that point is told about its gap.
    async fn prune(&mut self, before: i64) -> Result<Applied> {
        self.execute(sqlx::query(crate::store::rows::FREE_IDLE_SESSIONS))
            .await?;
        self.execute(sqlx::query(crate::store::rows::FORGET_REPLICAS).bind(before))
            .await?;
        // Tickets are worthless once expired (seconds after issue): forgotten by now, not by
        // the retention cutoff.
        self.execute(sqlx::query(crate::store::rows::FORGET_TICKETS).bind(crate::clock::now_ms()))
            .await?;
        // Actions for a replica that never took them (it was lost meanwhile).
        self.execute(
            sqlx::query("DELETE FROM forwarded_actions WHERE created_at < $1").bind(before),
        )
        .await?;
        // Batch tokens are asked for only right after a lost COMMIT: a short memory suffices.
        self.execute(sqlx::query("DELETE FROM applied_batches WHERE at < $1").bind(before))
            .await?;
        let turns: Vec<(String, String)> = sqlx::query_as(
            "SELECT id, session_id FROM turns WHERE ended_at IS NOT NULL AND NOT events_pruned \
             AND ended_at < $1 LIMIT $2",
        )
        .bind(before)
        .bind(PRUNE_TURNS)
        .fetch_all(&mut *self.conn)
        .await?;
        if turns.is_empty() {
            return Ok(Applied::Unchanged);
        }
        let (ids, sessions): (Vec<&str>, Vec<&str>) =
            turns.iter().map(|(t, s)| (t.as_str(), s.as_str())).unzip();
        // Set-wise, not turn by turn: one round trip per statement.
        self.execute(
            sqlx::query(
                "UPDATE sessions s SET pruned_through = GREATEST(s.pruned_through, m.seq) \
                 FROM (SELECT v.session_id, COALESCE(MAX(e.seq), 0) AS seq \
                       FROM UNNEST($1::text[], $2::text[]) AS v (turn_id, session_id) \
                       LEFT JOIN events e ON e.turn_id = v.turn_id GROUP BY v.session_id) m \
                 WHERE s.id = m.session_id",
            )
            .bind(&ids)
            .bind(&sessions),
        )
        .await?;
        self.execute(sqlx::query("DELETE FROM events WHERE turn_id = ANY($1)").bind(&ids))
            .await?;
        self.execute(
            sqlx::query("UPDATE turns SET events_pruned = true WHERE id = ANY($1)").bind(&ids),
        )
        .await?;
        // True when the batch was full: there may be more to prune right away.
        Ok(Applied::changed(turns.len() as i64 == PRUNE_TURNS))
    }

    /// Forgets history older than `before`, at most [`HISTORY_ROWS`] rows of each table.
    async fn prune_history(&mut self, before: i64) -> Result<Applied> {
        let mut full = false;
        for sql in HISTORY_DELETES {
            let n = self
                .execute(sqlx::query(sql).bind(before).bind(HISTORY_ROWS))
                .await?;
            full |= n as i64 == HISTORY_ROWS;
        }
        // True when a table gave a full batch: there may be more right away.
        Ok(Applied::changed(full))
    }
}
