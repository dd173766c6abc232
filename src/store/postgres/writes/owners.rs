//! Session ownership on `PostgreSQL`: the fence check, the claim and the release (see
//! [`crate::store::claim`]). The session rows a batch touches are locked up front
//! (`lock_sessions`), so a fence checked here holds until the commit; replicas' leases are
//! judged by the database's clock ([`NOW_MS`]), never by a replica's.

use super::{Result, Writes};
use crate::ids::{MessageId, ReplicaId, SessionId, TurnId, WorkerId};
use crate::store::claim;
use crate::store::lifecycle;
use crate::store::{Applied, Fence};

/// The database's clock in epoch milliseconds, at the moment the statement runs (not the
/// transaction's start).
pub(in crate::store::postgres) const NOW_MS: &str =
    "(extract(epoch FROM clock_timestamp()) * 1000)::bigint";

impl Writes<'_> {
    /// The session's owner and epoch, from the batch's lock or read (and locked) now.
    async fn owner_of(&mut self, session: &SessionId) -> Result<Option<(Option<String>, i64)>> {
        if let Some(o) = self.owners.get(session) {
            return Ok(Some(o.clone()));
        }
        let row: Option<(Option<String>, i64)> = sqlx::query_as(
            "SELECT owner, owner_epoch FROM sessions WHERE id = $1 FOR NO KEY UPDATE",
        )
        .bind(session.as_str())
        .fetch_optional(&mut *self.conn)
        .await?;
        if let Some(o) = &row {
            self.owners.insert(session.clone(), o.clone());
        }
        Ok(row)
    }

    /// Whether the session is still owned as the fence says.
    pub(super) async fn holds(&mut self, fence: &Fence) -> Result<bool> {
        Ok(self
            .owner_of(&fence.session_id)
            .await?
            .is_some_and(|(o, e)| o.as_deref() == Some(fence.owner.as_str()) && e == fence.epoch))
    }

    /// Claims the session for `me` if it may (see [`claim::may_claim`]).
    pub(super) async fn claim(
        &mut self,
        session: &SessionId,
        me: &ReplicaId,
        at: i64,
    ) -> Result<Applied> {
        let me_live = sqlx::query("SELECT 1 FROM replicas WHERE id = $1 AND state = 'live'")
            .bind(me.as_str())
            .fetch_optional(&mut *self.conn)
            .await?
            .is_some();
        let Some((owner, current_epoch)) = self.owner_of(session).await? else {
            return Ok(Applied::Held { owner: None });
        };
        if !me_live {
            return Ok(Applied::Held { owner: None });
        }
        let mut state: Option<String> = None;
        if let Some(o) = owner.as_deref().filter(|o| *o != me.as_str()) {
            // Read, not locked: `lost` and `stopped` are final, so what is read stays true.
            state = sqlx::query_scalar("SELECT state FROM replicas WHERE id = $1")
                .bind(o)
                .fetch_optional(&mut *self.conn)
                .await?;
        }
        if let Some(answer) = claim::answer(owner, state.as_deref(), current_epoch, me) {
            return Ok(answer);
        }
        let epoch: i64 = sqlx::query_scalar(
            "UPDATE sessions SET owner = $1, owner_epoch = owner_epoch + 1 WHERE id = $2 RETURNING owner_epoch",
        )
        .bind(me.as_str())
        .bind(session.as_str())
        .fetch_one(&mut *self.conn)
        .await?;
        self.owners
            .insert(session.clone(), (Some(me.as_str().to_owned()), epoch));
        let turns: Vec<(String, String)> = sqlx::query_as(
            "SELECT id, message_id FROM turns WHERE session_id = $1 AND ended_at IS NULL \
             AND state <> 'queued' ORDER BY seq",
        )
        .bind(session.as_str())
        .fetch_all(&mut *self.conn)
        .await?;
        let workers = self.open_workers(session).await?;
        let turns = turns
            .into_iter()
            .map(|(t, m)| (TurnId(t), MessageId(m)))
            .collect();

        let mut events = Vec::new();
        for change in claim::takeover(session, turns, workers, at) {
            let applied = Box::pin(self.apply_one(&change)).await?;
            self.lifecycle.extend(lifecycle::derive(&change, &applied));
            if let Applied::Events(mut e) = applied {
                events.append(&mut e);
            }
        }
        Ok(Applied::Claimed { epoch, events })
    }

    /// Takes the session from any owner (it was deleted): the owner's next write is refused.
    pub(super) async fn disown(&mut self, session: &SessionId, at: i64) -> Result<Applied> {
        let Some((_, epoch)) = self.owner_of(session).await? else {
            return Ok(Applied::Unchanged);
        };
        self.execute(
            sqlx::query("UPDATE sessions SET owner = NULL, owner_epoch = $1 WHERE id = $2")
                .bind(epoch + 1)
                .bind(session.as_str()),
        )
        .await?;
        self.owners.insert(session.clone(), (None, epoch + 1));
        for change in claim::deleted(self.open_workers(session).await?, at) {
            let applied = Box::pin(self.apply_one(&change)).await?;
            self.lifecycle.extend(lifecycle::derive(&change, &applied));
        }
        Ok(Applied::Changed)
    }

    /// The session's worker rows with no recorded exit.
    async fn open_workers(&mut self, session: &SessionId) -> Result<Vec<(WorkerId, u32)>> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT worker_id, generation FROM workers WHERE session_id = $1 AND exited_at IS NULL",
        )
        .bind(session.as_str())
        .fetch_all(&mut *self.conn)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(w, g)| (WorkerId(w), u32::try_from(g).unwrap_or(0)))
            .collect())
    }

    /// Gives the session up, if still owned as the fence says.
    pub(super) async fn release(&mut self, fence: &Fence) -> Result<Applied> {
        if !self.holds(fence).await? {
            return Ok(Applied::Unchanged);
        }
        self.execute(
            sqlx::query("UPDATE sessions SET owner = NULL WHERE id = $1")
                .bind(fence.session_id.as_str()),
        )
        .await?;
        self.owners
            .insert(fence.session_id.clone(), (None, fence.epoch));
        Ok(Applied::Changed)
    }
}
