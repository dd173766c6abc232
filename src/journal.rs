//! The journal: the one writer in front of the store, and the hub that fans committed events
//! out to live streams.
//!
//! Every mutation goes through [`Journal`]. Its task drains whatever writes are waiting and
//! applies them in one transaction (group commit), so a burst of deltas from many sessions
//! costs one commit, not one each. Events are published to the [`Hub`] only after their commit:
//! nothing reaches a client that a restart could lose.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::ids::SessionId;
use crate::store::{AdminEvent, Applied, Store, StoreError, StoredEvent, Write};

/// The most writes committed in one transaction.
const MAX_BATCH: usize = 512;
/// Live events buffered per session for slow readers; a reader that falls further behind
/// catches up from the store.
const SESSION_BUFFER: usize = 16;

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
    write: Option<Write>,
    reply: Option<oneshot::Sender<Result<Applied, JournalError>>>,
}

/// A cheap, cloneable handle to the writer task.
#[derive(Clone)]
pub struct Journal {
    tx: mpsc::UnboundedSender<Job>,
    pending: Arc<AtomicUsize>,
}

impl Journal {
    /// Starts the writer task; it ends once every handle is dropped and its queue is drained.
    pub fn start(store: Arc<dyn Store>, hub: Arc<Hub>) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let pending = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(run(store, hub, rx, Arc::clone(&pending)));
        (Self { tx, pending }, task)
    }

    /// Writes queued but not yet committed: the event log's lag.
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::Relaxed)
    }

    /// Applies one write and waits for its commit.
    pub async fn write(&self, write: Write) -> Result<Applied, JournalError> {
        self.submit(write).await
    }

    /// Queues a write now and returns its receipt, to await when the caller needs the outcome:
    /// what is queued after it meanwhile still commits after it.
    pub fn submit(&self, write: Write) -> Receipt {
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
    pub fn send(&self, write: Write) {
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

async fn run(
    store: Arc<dyn Store>,
    hub: Arc<Hub>,
    mut rx: mpsc::UnboundedReceiver<Job>,
    pending: Arc<AtomicUsize>,
) {
    let mut jobs = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut jobs, MAX_BATCH).await > 0 {
        let mut writes = Vec::with_capacity(jobs.len());
        let mut replies = Vec::with_capacity(jobs.len());
        let mut barriers = Vec::new();
        for job in jobs.drain(..) {
            match job.write {
                Some(w) => {
                    writes.push(w);
                    replies.push(job.reply);
                }
                None => barriers.extend(job.reply),
            }
        }
        if writes.is_empty() {
            for b in barriers {
                let _ = b.send(Ok(Applied::Done(false)));
            }
            continue;
        }
        let mut admin = Vec::new();
        let writes: Arc<[Write]> = writes.into();
        let results: Vec<Result<Applied, StoreError>> = match store.apply(Arc::clone(&writes)).await
        {
            Ok(batch) => {
                admin = batch.admin;
                batch.results.into_iter().map(Ok).collect()
            }
            // One bad write must not sink its neighbours: retry them one by one.
            Err(e) if writes.len() > 1 => {
                tracing::warn!(error = %e, "batch failed; retrying its writes one by one");
                let mut out = Vec::with_capacity(writes.len());
                for w in writes.iter() {
                    out.push(store.apply(Arc::new([w.clone()])).await.map(|mut b| {
                        admin.append(&mut b.admin);
                        b.results.remove(0)
                    }));
                }
                out
            }
            Err(e) => vec![Err(e)],
        };
        pending.fetch_sub(writes.len(), Ordering::Relaxed);
        for e in admin {
            hub.publish_admin(e);
        }
        for (result, reply) in results.into_iter().zip(replies) {
            let result = result.map_err(|e| {
                tracing::error!(error = %e, "store write failed");
                JournalError::Store(Arc::new(e))
            });
            if let Ok(Applied::Events(events)) = &result {
                for e in events {
                    hub.publish(e);
                }
            }
            if let Some(reply) = reply {
                let _ = reply.send(result);
            }
        }
        for b in barriers {
            let _ = b.send(Ok(Applied::Done(false)));
        }
    }
}

/// Admin events buffered for slow admin readers; further behind, they catch up from the store.
const ADMIN_BUFFER: usize = 4096;

/// Live fan-out of committed events: one broadcast channel per watched session, one for the
/// admin log.
pub struct Hub {
    sessions: Mutex<HashMap<SessionId, broadcast::Sender<Arc<StoredEvent>>>>,
    admin: broadcast::Sender<Arc<AdminEvent>>,
}

impl Default for Hub {
    fn default() -> Self {
        Self {
            sessions: Mutex::default(),
            admin: broadcast::channel(ADMIN_BUFFER).0,
        }
    }
}

impl Hub {
    /// Subscribes to future admin events.
    pub fn subscribe_admin(&self) -> broadcast::Receiver<Arc<AdminEvent>> {
        self.admin.subscribe()
    }

    /// How many admin streams are open.
    pub fn admin_connections(&self) -> usize {
        self.admin.receiver_count()
    }

    fn publish_admin(&self, event: AdminEvent) {
        let _ = self.admin.send(Arc::new(event));
    }

    /// Subscribes to a session's future events.
    pub fn subscribe(&self, session: &SessionId) -> broadcast::Receiver<Arc<StoredEvent>> {
        let mut map = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        map.entry(session.clone())
            .or_insert_with(|| broadcast::channel(SESSION_BUFFER).0)
            .subscribe()
    }

    /// Whether any stream is watching the session.
    pub fn is_watched(&self, session: &SessionId) -> bool {
        let map = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(session).is_some_and(|tx| tx.receiver_count() > 0)
    }

    /// How many streams are open, over all sessions.
    pub fn connections(&self) -> usize {
        let map = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        map.values().map(broadcast::Sender::receiver_count).sum()
    }

    fn publish(&self, event: &Arc<StoredEvent>) {
        let mut map = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(tx) = map.get(&event.session_id)
            && tx.send(Arc::clone(event)).is_err()
        {
            // Nobody is watching any more; forget the channel.
            map.remove(&event.session_id);
        }
    }
}
