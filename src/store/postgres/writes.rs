//! Writes: every [`Change`] as SQL inside the batch's one transaction, in order.
//!
//! A round trip to the server costs far more than a statement, so the batch is shaped to need
//! few: the sessions it appends to are locked and their counters read in one query up front;
//! appended events are held and inserted together (one `INSERT … SELECT FROM UNNEST`) before
//! anything that reads them and at the end; the counters are written back in one `UPDATE`; the
//! admin events are numbered and inserted last. A delta (`Progress::Append`) costs no round
//! trip of its own.

use sqlx::PgConnection;
use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use super::super::lifecycle::{self, Lifecycle};
use super::super::{Applied, Batch, Change, LoggedEvent, StoredEvent};
use crate::api::EventKind;
use crate::api::state::RejectionKind;
use crate::ids::{SessionId, TurnId, WorkerId};

mod owners;
mod replicas;
mod tickets;
mod turns;

use owners::NOW_MS;
mod workers;

use workers::Output;

type Result<T> = std::result::Result<T, sqlx::Error>;

/// Text as `PostgreSQL` can store it: `text` cannot hold NUL, which `SQLite` and a worker's output
/// can; it becomes U+FFFD rather than fail the write.
pub(super) fn text(s: &str) -> Cow<'_, str> {
    if s.contains('\0') {
        Cow::Owned(s.replace('\0', "\u{FFFD}"))
    } else {
        Cow::Borrowed(s)
    }
}

/// Why a batch did not apply.
pub(super) enum Failed {
    /// It did not commit.
    Refused(sqlx::Error),
    /// The COMMIT was sent and its answer lost: it may have committed, with these results.
    Unknown(sqlx::Error, Batch),
}

impl From<sqlx::Error> for Failed {
    fn from(e: sqlx::Error) -> Self {
        Self::Refused(e)
    }
}

/// Whether the batch that left `token` committed. Inserting the token waits for a
/// transaction still holding it (a COMMIT still in flight) and conflicts once it committed.
pub(super) async fn committed(pool: &sqlx::PgPool, token: &str) -> Result<bool> {
    let n = sqlx::query(
        "INSERT INTO applied_batches (token, at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(token)
    .bind(crate::clock::now_ms())
    .execute(pool)
    .await?
    .rows_affected();
    Ok(n == 0)
}

/// Applies `batch` in one transaction that records `token`, and commits it.
pub(super) async fn apply(
    pool: &sqlx::PgPool,
    batch: &[Change],
    origin: &str,
    token: &str,
) -> std::result::Result<Batch, Failed> {
    let mut tx = pool.begin().await?;
    let mut w = Writes {
        announce: std::collections::BTreeMap::new(),
        conn: &mut tx,
        seqs: HashMap::new(),
        owners: HashMap::new(),
        events: Vec::new(),
        lifecycle: Vec::new(),
        admin: Vec::new(),
    };
    w.lock_sessions(batch).await?;
    let mut results = Vec::with_capacity(batch.len());
    for change in batch {
        if matches!(change, Change::Prune { .. } | Change::PruneHistory { .. }) {
            // Pruning reads the event log and deletes from the admin log: both up to date.
            w.flush_events().await?;
            w.flush_admin().await?;
        }
        let applied = w.apply_fenced(change).await?;
        w.lifecycle.extend(lifecycle::derive(change, &applied));
        results.push(applied);
    }
    w.flush_events().await?;
    w.store_seqs().await?;
    // Last: the admin counter's row lock is held from here to the commit only.
    w.flush_admin().await?;
    w.notify(origin, token).await?;
    let admin = std::mem::take(&mut w.admin);
    match tx.commit().await {
        Ok(()) => Ok(Batch { results, admin }),
        // The server answered: it did not commit.
        Err(e @ sqlx::Error::Database(_)) => Err(Failed::Refused(e)),
        Err(e) => Err(Failed::Unknown(e, Batch { results, admin })),
    }
}

/// A session's event counter within the batch.
struct Seq {
    last: i64,
    /// Moved by this batch: written back at the end.
    moved: bool,
}

/// One batch in progress.
pub(super) struct Writes<'c> {
    conn: &'c mut PgConnection,
    seqs: HashMap<SessionId, Seq>,
    /// The locked sessions' owners and epochs, as this batch leaves them.
    owners: HashMap<SessionId, (Option<String>, i64)>,
    /// Appended events not yet inserted, with their time.
    events: Vec<(Arc<StoredEvent>, i64)>,
    /// Admin events derived so far, not yet numbered.
    lifecycle: Vec<Lifecycle>,
    /// Admin events numbered and inserted.
    admin: Vec<LoggedEvent>,
    /// The sessions appended to, with the first and last number appended: announced to the
    /// other replicas at commit.
    announce: std::collections::BTreeMap<SessionId, (i64, i64)>,
}

impl Writes<'_> {
    /// Locks the rows of the sessions the batch may append to or update and reads their
    /// counters, in one query and in id order, before any other write: two batches never wait
    /// on each other in a cycle. A session the batch itself creates is read when first
    /// appended to (no other transaction can see it yet).
    async fn lock_sessions(&mut self, batch: &[Change]) -> Result<()> {
        let ids: BTreeSet<&str> = batch
            .iter()
            .flat_map(|c| {
                let fence = match c {
                    Change::Fenced { fence, .. } | Change::Release { fence } => {
                        Some(fence.session_id.as_str())
                    }
                    Change::Claim { session_id, .. } | Change::Disown { session_id, .. } => {
                        Some(session_id.as_str())
                    }
                    _ => None,
                };
                let own = match c.inner() {
                    Change::Event { session_id, .. }
                    | Change::EndTurn { session_id, .. }
                    | Change::DeleteSession { id: session_id, .. } => Some(session_id.as_str()),
                    // Accepting a message touches its session's `last_activity`.
                    Change::InsertTurn { turn } => Some(turn.session_id.as_str()),
                    _ => None,
                };
                fence.into_iter().chain(own)
            })
            .collect();
        if ids.is_empty() {
            return Ok(());
        }
        let ids: Vec<&str> = ids.into_iter().collect();
        let rows: Vec<(String, i64, Option<String>, i64)> = sqlx::query_as(
            "SELECT id, last_seq, owner, owner_epoch FROM sessions WHERE id = ANY($1) ORDER BY id \
             FOR NO KEY UPDATE",
        )
        .bind(&ids)
        .fetch_all(&mut *self.conn)
        .await?;
        for (id, last, owner, epoch) in rows {
            let id = SessionId(id);
            self.owners.insert(id.clone(), (owner, epoch));
            self.seqs.insert(id, Seq { last, moved: false });
        }
        Ok(())
    }

    /// The session's next event sequence number.
    async fn next_seq(&mut self, session: &SessionId) -> Result<i64> {
        if let Some(s) = self.seqs.get_mut(session) {
            s.last += 1;
            s.moved = true;
            return Ok(s.last);
        }
        let last: i64 =
            sqlx::query_scalar("SELECT last_seq FROM sessions WHERE id = $1 FOR NO KEY UPDATE")
                .bind(session.as_str())
                .fetch_one(&mut *self.conn)
                .await?;
        self.seqs.insert(
            session.clone(),
            Seq {
                last: last + 1,
                moved: true,
            },
        );
        Ok(last + 1)
    }

    /// Appends one event (inserted at the next flush), taking the session's next number.
    async fn append(
        &mut self,
        session: &SessionId,
        turn: Option<&TurnId>,
        (kind, data): (EventKind, String),
        at: i64,
    ) -> Result<Arc<StoredEvent>> {
        let seq = self.next_seq(session).await?;
        self.announce
            .entry(session.clone())
            .and_modify(|r| r.1 = seq)
            .or_insert((seq, seq));
        let event = Arc::new(StoredEvent {
            session_id: session.clone(),
            seq,
            turn_id: turn.cloned(),
            kind,
            data,
        });
        self.events.push((Arc::clone(&event), at));
        Ok(event)
    }

    /// Inserts the events appended since the last flush, in one statement.
    async fn flush_events(&mut self) -> Result<()> {
        if self.events.is_empty() {
            return Ok(());
        }
        let events = std::mem::take(&mut self.events);
        let sessions: Vec<&str> = events.iter().map(|(e, _)| e.session_id.as_str()).collect();
        let seqs: Vec<i64> = events.iter().map(|(e, _)| e.seq).collect();
        let turns: Vec<Option<&str>> = events
            .iter()
            .map(|(e, _)| e.turn_id.as_ref().map(TurnId::as_str))
            .collect();
        let kinds: Vec<&str> = events.iter().map(|(e, _)| e.kind.as_str()).collect();
        let data: Vec<Cow<'_, str>> = events.iter().map(|(e, _)| text(&e.data)).collect();
        let at: Vec<i64> = events.iter().map(|(_, at)| *at).collect();
        sqlx::query(
            "INSERT INTO events (session_id, seq, turn_id, kind, data, created_at) \
             SELECT * FROM UNNEST($1::text[], $2::int8[], $3::text[], $4::text[], $5::text[], $6::int8[])",
        )
        .bind(&sessions)
        .bind(&seqs)
        .bind(&turns)
        .bind(&kinds)
        .bind(&data)
        .bind(&at)
        .execute(&mut *self.conn)
        .await?;
        Ok(())
    }

    /// Writes the moved counters back to their sessions, in one statement.
    async fn store_seqs(&mut self) -> Result<()> {
        let (ids, lasts): (Vec<&str>, Vec<i64>) = self
            .seqs
            .iter()
            .filter(|(_, s)| s.moved)
            .map(|(id, s)| (id.as_str(), s.last))
            .unzip();
        if ids.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "UPDATE sessions SET last_seq = v.last \
             FROM UNNEST($1::text[], $2::int8[]) AS v (id, last) WHERE sessions.id = v.id",
        )
        .bind(&ids)
        .bind(&lasts)
        .execute(&mut *self.conn)
        .await?;
        Ok(())
    }

    /// Numbers the admin events derived since the last flush and inserts them. The numbers are
    /// taken from the one-row counter, whose row lock is then held until the commit: a later
    /// transaction that logs admin events waits for this one to end, so numbers are handed out
    /// in commit order.
    async fn flush_admin(&mut self) -> Result<()> {
        if self.lifecycle.is_empty() {
            return Ok(());
        }
        let lifecycle = std::mem::take(&mut self.lifecycle);
        let n = lifecycle.len() as i64;
        let now = crate::clock::now_ms();
        let kinds: Vec<&str> = lifecycle.iter().map(|l| l.event.kind()).collect();
        let datas: Vec<String> = lifecycle.iter().map(|l| l.event.to_data()).collect();
        let turns: Vec<Option<&str>> = lifecycle
            .iter()
            .map(|l| l.turn_id.as_ref().map(TurnId::as_str))
            .collect();
        let workers: Vec<Option<&str>> = lifecycle
            .iter()
            .map(|l| l.worker_id.as_ref().map(WorkerId::as_str))
            .collect();
        let data: Vec<Cow<'_, str>> = datas.iter().map(|d| text(d)).collect();
        // One round trip: the numbers taken from the counter and the rows inserted with them.
        let last: i64 = sqlx::query_scalar(
            "WITH c AS (UPDATE admin_seq SET last = last + $1 RETURNING last), \
             i AS (INSERT INTO admin_events (seq, kind, turn_id, worker_id, data, created_at) \
                   SELECT c.last - $1 + v.ord, v.k, v.t, v.w, v.d, $6 FROM c, \
                   UNNEST($2::text[], $3::text[], $4::text[], $5::text[]) WITH ORDINALITY \
                   AS v (k, t, w, d, ord)) \
             SELECT last FROM c",
        )
        .bind(n)
        .bind(&kinds)
        .bind(&turns)
        .bind(&workers)
        .bind(&data)
        .bind(now)
        .fetch_one(&mut *self.conn)
        .await?;
        drop(data);
        let first = last - n + 1;
        let logged = kinds
            .iter()
            .zip(datas)
            .zip(first..)
            .map(|((kind, data), seq)| LoggedEvent {
                seq,
                kind: (*kind).to_owned(),
                data,
            });
        self.admin.extend(logged);
        Ok(())
    }

    /// Records the batch's token and announces its events to every listening replica
    /// (`NOTIFY`, delivered at commit and in commit order), in one statement.
    async fn notify(&mut self, origin: &str, token: &str) -> Result<()> {
        let mut channels = Vec::new();
        let mut payloads = Vec::new();
        for (session, (first, last)) in &self.announce {
            channels.push(super::EVENTS_CHANNEL);
            payloads.push(format!("{origin} {session} {first} {last}"));
        }
        if let (Some(first), Some(last)) = (self.admin.first(), self.admin.last()) {
            channels.push(super::ADMIN_CHANNEL);
            payloads.push(format!("{origin} {} {}", first.seq, last.seq));
        }
        sqlx::query(
            "WITH b AS (INSERT INTO applied_batches (token, at) VALUES ($3, $4) ON CONFLICT DO NOTHING) \
             SELECT pg_notify(c, p) FROM UNNEST($1::text[], $2::text[]) AS v (c, p)",
        )
        .bind(&channels)
        .bind(&payloads)
        .bind(token)
        .bind(crate::clock::now_ms())
        .execute(&mut *self.conn)
        .await?;
        Ok(())
    }

    /// The number of rows one statement changed.
    async fn execute(
        &mut self,
        q: sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ) -> Result<u64> {
        Ok(q.execute(&mut *self.conn).await?.rows_affected())
    }

    /// Applies one write of the batch: ownership writes here, a fenced one only while its
    /// fence holds, any other as it is.
    async fn apply_fenced(&mut self, w: &Change) -> Result<Applied> {
        match w {
            Change::Fenced { fence, change } => {
                if self.holds(fence).await? {
                    Box::pin(self.apply_fenced(change)).await
                } else {
                    Ok(Applied::Fenced)
                }
            }
            Change::Claim {
                session_id,
                replica_id,
                at,
            } => self.claim(session_id, replica_id, *at).await,
            Change::Release { fence } => self.release(fence).await,
            Change::Disown { session_id, at } => self.disown(session_id, *at).await,
            other => self.apply_one(other).await,
        }
    }

    async fn apply_one(&mut self, w: &Change) -> Result<Applied> {
        Ok(match w {
            Change::CreateSession(s) => {
                self.execute(
                    sqlx::query(
                        "INSERT INTO sessions (id, agent_id, thread, token, created_at, last_activity, expires_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    )
                    .bind(s.id.as_str())
                    .bind(&s.agent_id)
                    .bind(s.thread.as_deref().map(text))
                    .bind(&s.token)
                    .bind(s.created_at)
                    .bind(s.last_activity)
                    .bind(s.expires_at),
                )
                .await?;
                Applied::Changed
            }
            Change::DeleteSession { id, at } => {
                let n = self
                    .execute(
                        sqlx::query(
                            "UPDATE sessions SET deleted_at = $1 WHERE id = $2 AND deleted_at IS NULL",
                        )
                        .bind(at)
                        .bind(id.as_str()),
                    )
                    .await?;
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
                    && !self.is_open(turn, *kind, *progress, *at).await?
                {
                    if let Some((worker, generation)) = from {
                        let late = Output {
                            kind: RejectionKind::Late,
                            reason: "its turn had already ended",
                            line: data,
                        };
                        self.record_output((worker, *generation), Some(turn), &late, *at)
                            .await?;
                    }
                    return Ok(Applied::Events(Vec::new()));
                }
                let ev = self
                    .append(session_id, turn_id.as_ref(), (*kind, data.clone()), *at)
                    .await?;
                Applied::Events(vec![ev])
            }
            other => self.apply_turn_write(other).await?,
        })
    }
}
