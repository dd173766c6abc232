//! The journal: the one writer in front of the store, and the hub that fans committed events
//! out to live streams.
//!
//! Every mutation goes through [`Journal`]. Its task drains whatever writes are waiting and
//! applies them in one transaction (group commit), so a burst of deltas from many sessions
//! costs one commit, not one each. Events are published to the [`Hub`] only after their commit:
//! nothing reaches a client that a restart could lose.
//!
//! A store that refuses a write for a reason that passes (busy, locked, I/O, a full disk, a
//! lost connection) gets the same batch again, with backoff, until it commits: nothing queued
//! is dropped, and while it refuses, [`Journal::is_available`] is false (`/healthz` answers 503
//! and new messages are refused at once). A write refused for good fails alone; a turn that
//! lost an event that way can no longer end `completed` (its text has a hole): its success is
//! turned into a `store_unavailable` failure.

mod hub;

pub use hub::{Ephemeral, Hub};

use std::collections::HashSet;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

use crate::api::{ErrorCode, Outcome, SessionEvent, TurnEnding};
use crate::ids::{MessageId, TurnId};
use crate::store::{Applied, Change, Store, StoreError};

/// The most writes committed in one transaction.
const MAX_BATCH: usize = 512;
/// Live events buffered per session for slow readers; a reader that falls further behind
/// catches up from the store.
const SESSION_BUFFER: usize = 16;
/// The first pause before a refused batch is tried again; it doubles up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(50);
/// The longest pause between two tries of a refused batch.
const RETRY_MAX: Duration = Duration::from_secs(1);

/// Whether the store takes writes right now, as the journal last found it.
#[derive(Debug)]
struct StoreHealth {
    available: AtomicBool,
}

impl Default for StoreHealth {
    fn default() -> Self {
        Self {
            available: AtomicBool::new(true),
        }
    }
}

impl StoreHealth {
    /// False from the first refused try of a batch until a batch commits again.
    fn is_available(&self) -> bool {
        self.available.load(Ordering::Relaxed)
    }

    fn set(&self, available: bool) {
        let was = self.available.swap(available, Ordering::Relaxed);
        if was && !available {
            tracing::error!("the store refuses writes; retrying, and refusing new messages");
        } else if !was && available {
            tracing::warn!("the store takes writes again");
        }
    }
}

/// A write that did not happen.
#[derive(Clone, Debug, thiserror::Error)]
pub enum JournalError {
    /// The store refused it.
    #[error("{0}")]
    Store(Arc<StoreError>),
    /// The journal has stopped (the gateway is shutting down).
    #[error("the journal is closed")]
    Closed,
}

struct Job {
    /// `None` is a barrier: answered once everything queued before it has committed.
    write: Option<Change>,
    reply: Option<oneshot::Sender<Result<Applied, JournalError>>>,
}

/// A cheap, cloneable handle to the writer task.
#[derive(Clone)]
pub struct Journal {
    tx: mpsc::UnboundedSender<Job>,
    pending: Arc<AtomicUsize>,
    health: Arc<StoreHealth>,
}

impl Journal {
    /// Starts the writer task; it ends once every handle is dropped and its queue is drained.
    pub fn start(store: Arc<dyn Store>, hub: Arc<Hub>) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let pending = Arc::new(AtomicUsize::new(0));
        let health = Arc::new(StoreHealth::default());
        let writer = Writer {
            store,
            hub,
            pending: Arc::clone(&pending),
            health: Arc::clone(&health),
            holed: HashSet::new(),
        };
        let task = tokio::spawn(writer.run(rx));
        (
            Self {
                tx,
                pending,
                health,
            },
            task,
        )
    }

    /// Whether the store takes writes right now (false while the journal retries a refused
    /// batch).
    pub fn is_available(&self) -> bool {
        self.health.is_available()
    }

    /// Writes queued but not yet committed: the event log's lag.
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::Relaxed)
    }

    /// Applies one write and waits for its commit.
    pub async fn write(&self, write: Change) -> Result<Applied, JournalError> {
        self.submit(write).await
    }

    /// Queues a write now and returns its receipt, to await when the caller needs the outcome:
    /// what is queued after it meanwhile still commits after it.
    pub fn submit(&self, write: Change) -> Receipt {
        let (reply, rx) = oneshot::channel();
        self.pending.fetch_add(1, Ordering::Relaxed);
        let job = Job {
            write: Some(write),
            reply: Some(reply),
        };
        // A closed journal drops the job, and with it the reply: the receipt reads `Closed`.
        let _ = self.tx.send(job);
        Receipt(rx)
    }

    /// Waits until every write queued before this call has committed.
    pub async fn flush(&self) {
        let (reply, rx) = oneshot::channel();
        if self
            .tx
            .send(Job {
                write: None,
                reply: Some(reply),
            })
            .is_ok()
        {
            let _ = rx.await;
        }
    }

    /// Queues a write without waiting; it still commits before anything queued after it.
    pub fn send(&self, write: Change) {
        self.pending.fetch_add(1, Ordering::Relaxed);
        if self
            .tx
            .send(Job {
                write: Some(write),
                reply: None,
            })
            .is_err()
        {
            tracing::warn!("journal closed; a write was dropped");
        }
    }
}

/// The outcome of a [`Journal::submit`]ted write, once committed.
pub struct Receipt(oneshot::Receiver<Result<Applied, JournalError>>);

impl Future for Receipt {
    type Output = Result<Applied, JournalError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(JournalError::Closed)))
    }
}

/// The writer task's state.
struct Writer {
    store: Arc<dyn Store>,
    hub: Arc<Hub>,
    pending: Arc<AtomicUsize>,
    health: Arc<StoreHealth>,
    /// Turns an event of which was refused for good: they may not end `completed`.
    holed: HashSet<TurnId>,
}

impl Writer {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Job>) {
        let mut jobs = Vec::with_capacity(MAX_BATCH);
        while rx.recv_many(&mut jobs, MAX_BATCH).await > 0 {
            let mut writes = Vec::with_capacity(jobs.len());
            let mut replies = Vec::with_capacity(jobs.len());
            let mut barriers = Vec::new();
            for job in jobs.drain(..) {
                match job.write {
                    Some(w) => {
                        writes.push(self.mend(w));
                        replies.push(job.reply);
                    }
                    None => barriers.extend(job.reply),
                }
            }
            if !writes.is_empty() {
                self.commit(writes, replies).await;
            }
            for b in barriers {
                let _ = b.send(Ok(Applied::Unchanged));
            }
        }
    }

    /// Commits one batch (whole, or write by write when one of them is refused for good),
    /// publishes what committed and answers every write.
    async fn commit(
        &mut self,
        writes: Vec<Change>,
        replies: Vec<Option<oneshot::Sender<Result<Applied, JournalError>>>>,
    ) {
        let mut admin = Vec::new();
        let writes: Arc<[Change]> = writes.into();
        let results: Vec<Result<Applied, StoreError>> = match self.apply(&writes).await {
            Ok(batch) => {
                admin = batch.admin;
                batch.results.into_iter().map(Ok).collect()
            }
            // One bad write must not sink its neighbours: retry them one by one.
            Err(e) if writes.len() > 1 => {
                tracing::warn!(error = %e, "batch failed; retrying its writes one by one");
                let mut out = Vec::with_capacity(writes.len());
                for w in writes.iter() {
                    let one: Arc<[Change]> = Arc::new([self.mend(w.clone())]);
                    let result = self.apply(&one).await.map(|mut b| {
                        admin.append(&mut b.admin);
                        b.results.remove(0)
                    });
                    if result.is_err() {
                        self.note_hole(w);
                    }
                    out.push(result);
                }
                out
            }
            Err(e) => {
                self.note_hole(&writes[0]);
                vec![Err(e)]
            }
        };
        self.pending.fetch_sub(writes.len(), Ordering::Relaxed);
        for e in admin {
            self.hub.publish_admin(e);
        }
        for ((result, reply), write) in results.into_iter().zip(replies).zip(writes.iter()) {
            let result = result.map_err(|e| {
                tracing::error!(error = %e, "store write failed");
                JournalError::Store(Arc::new(e))
            });
            match &result {
                Ok(Applied::Events(events) | Applied::Claimed { events, .. }) => {
                    for e in events {
                        self.hub.publish(e);
                    }
                }
                Ok(Applied::Fenced) => {
                    if let Change::Fenced { fence, .. } = write {
                        self.hub.publish_fenced(fence);
                    }
                }
                _ => {}
            }
            if let Some(reply) = reply {
                let _ = reply.send(result);
            }
        }
    }

    /// Applies a batch, trying it again with backoff for as long as the store refuses it for a
    /// passing reason. Only a refusal for good comes back as an error.
    async fn apply(&self, writes: &Arc<[Change]>) -> Result<crate::store::Batch, StoreError> {
        let mut pause = RETRY_FIRST;
        loop {
            match self.store.apply(Arc::clone(writes)).await {
                Ok(batch) => {
                    self.health.set(true);
                    return Ok(batch);
                }
                Err(e) if e.is_transient() => {
                    self.health.set(false);
                    tracing::debug!(error = %e, ?pause, "store refused a batch; trying again");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(RETRY_MAX);
                }
                Err(e) => {
                    // The store answered: it is up, this write is what it refuses.
                    self.health.set(true);
                    return Err(e);
                }
            }
        }
    }

    /// Remembers the turn of an event refused for good.
    fn note_hole(&mut self, write: &Change) {
        if let Change::Event {
            turn_id: Some(t), ..
        } = write.inner()
        {
            tracing::error!(turn = %t, "an event of this turn could not be written; it will fail");
            self.holed.insert(t.clone());
        }
    }

    /// A turn with a hole in its text ends failed, never `completed`.
    fn mend(&mut self, mut write: Change) -> Change {
        if let Change::EndTurn {
            turn_id,
            ending,
            events,
            at,
            ..
        } = write.inner_mut()
            && self.holed.remove(turn_id)
            && ending.outcome == Outcome::Completed
        {
            let message = message_of(events);
            *ending = TurnEnding::failed(
                ErrorCode::StoreUnavailable,
                "part of the reply could not be recorded (the database refused the write), \
                 so the turn failed rather than end with a hole in its text",
            );
            *events = ending.events(turn_id, &message, *at);
        }
        write
    }
}

/// The message id a turn's terminal events name.
fn message_of(events: &[SessionEvent]) -> MessageId {
    events
        .iter()
        .find_map(|e| match e {
            SessionEvent::Complete(c) => Some(c.message_id.clone()),
            _ => None,
        })
        .unwrap_or_else(|| MessageId(String::new()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::EventKind;
    use crate::ids::SessionId;
    use crate::store::Progress;

    /// A turn one of whose events was refused for good fails `store_unavailable` instead of
    /// completing with a hole in its text; a failure keeps its own code; the mark is used once.
    #[tokio::test]
    async fn a_turn_with_a_hole_in_its_text_cannot_end_completed() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("j.db").display());
        let mut w = Writer {
            store: crate::store::open(&url).await.unwrap(),
            hub: Arc::default(),
            pending: Arc::default(),
            health: Arc::default(),
            holed: HashSet::new(),
        };
        let (session, turn) = (SessionId("s-1".into()), TurnId("t-1".into()));
        w.note_hole(&Change::Event {
            session_id: session.clone(),
            turn_id: Some(turn.clone()),
            kind: EventKind::Output,
            data: "{}".into(),
            at: 1,
            from: None,
            progress: Progress::Append,
        });
        let end = |ending: TurnEnding| Change::EndTurn {
            session_id: session.clone(),
            turn_id: turn.clone(),
            events: ending.events(&turn, &MessageId("m-1".into()), 2),
            ending,
            at: 2,
            stranded: false,
        };
        let Change::EndTurn { ending, events, .. } =
            w.mend(end(TurnEnding::completed(Some("slone two three".into()))))
        else {
            panic!("still an end");
        };
        assert_eq!(ending.code, Some(ErrorCode::StoreUnavailable));
        assert!(events.iter().any(|e| matches!(e, SessionEvent::Error(f)
            if f.code == ErrorCode::StoreUnavailable && f.message_id.as_str() == "m-1")));
        assert!(
            !events
                .iter()
                .any(|e| matches!(e, SessionEvent::Complete(c) if c.status == Outcome::Completed))
        );
        // Used once: the next end of that turn id is left as it is.
        let Change::EndTurn { ending, .. } = w.mend(end(TurnEnding::completed(None))) else {
            panic!("still an end");
        };
        assert_eq!(ending.outcome, Outcome::Completed);
    }
}
