//! The durable store: the source of truth for sessions, turns, the event log and workers.
//!
//! Every mutation is a [`Change`]; [`Store::apply`] runs a batch of them in one transaction, so
//! the [journal](crate::journal) can group-commit a burst of deltas. Ending a turn is one
//! conditional write: only the first [`Change::EndTurn`] for a turn changes anything and appends
//! its terminal events; every later one is a no-op. Backends share these semantics; the URL
//! scheme picks one ([`open`]).

mod claim;
mod lifecycle;
pub mod postgres;
pub mod query;
mod rows;
pub mod sqlite;
#[cfg(test)]
pub(crate) mod tests;

pub use query::{Overview, Page, Snapshot, TurnQuery, WorkerQuery, WorkerRecord};

use async_trait::async_trait;
use std::sync::Arc;

use crate::api::admin::{ReplicaInfo, TurnInfo};
use crate::api::state::{ActionKind, RejectionKind};
use crate::api::{ErrorCode, EventKind, SessionEvent, TurnEnding, TurnState, WorkerState};
use crate::ids::{MessageId, ReplicaId, SessionId, TurnId, WorkerId};

/// A store failure: the database is unreachable, full or corrupt, never bad input.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database answered with an error.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The database refused a write.
    #[error("database error: {0}")]
    Write(#[from] rusqlite::Error),
    /// The writer thread stopped before answering (it panicked).
    #[error("the database writer stopped: {0}")]
    WriterStopped(String),
    /// A migration failed.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The database file or its directory could not be opened or created.
    #[error("cannot open the database at {path}: {message}")]
    Open {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
    /// The database server could not be reached or refused the connection.
    #[error("cannot connect to the database at {url}: {message}")]
    Connect {
        /// The database, as its URL without a password.
        url: String,
        /// Why.
        message: String,
    },
    /// The URL names no supported backend.
    #[error(
        "unsupported database URL `{0}` (expected sqlite://PATH to a file, or postgres://USER@HOST/DATABASE)"
    )]
    UnsupportedUrl(String),
    /// A stored value could not be decoded.
    #[error("corrupt stored value: {0}")]
    Corrupt(String),
    /// The database was migrated by a newer turnwatch than this one.
    #[error(
        "the database was written by a newer turnwatch ({written_by}, schema version {found}); \
         this is turnwatch {ours}, which knows schema versions up to {known}: upgrade this \
         gateway, or point it at another database"
    )]
    NewerSchema {
        /// The newest migration applied to the database.
        found: i64,
        /// The newest migration this build has.
        known: i64,
        /// The version of the newest replica that registered there, if known.
        written_by: String,
        /// This build's version.
        ours: &'static str,
    },
}

/// Refuses a database whose newest applied migration (`found`) is newer than this build's
/// newest (`known`): its schema means things this build does not know, and writing to it
/// could corrupt what a newer replica relies on (`replicas.md` row 29).
///
/// # Errors
/// [`StoreError::NewerSchema`], naming both versions.
pub fn refuse_newer(
    found: Option<i64>,
    known: i64,
    written_by: Option<String>,
) -> Result<(), StoreError> {
    match found {
        Some(found) if found > known => Err(StoreError::NewerSchema {
            found,
            known,
            written_by: written_by
                .map_or_else(|| "version unknown".into(), |v| format!("turnwatch {v}")),
            ours: env!("CARGO_PKG_VERSION"),
        }),
        _ => Ok(()),
    }
}

impl StoreError {
    /// Whether the same write may succeed if tried again: the database is busy or locked by
    /// another connection, an I/O call failed, the disk is full, the connection was lost or
    /// refused, or the transaction lost a serialization race or a deadlock (`PostgreSQL`, see
    /// [`postgres::is_transient_code`]). Anything else (a constraint, a corrupt value, a failed
    /// migration) is refused for good.
    pub fn is_transient(&self) -> bool {
        use rusqlite::ErrorCode as C;
        match self {
            Self::Write(rusqlite::Error::SqliteFailure(e, _)) => matches!(
                e.code,
                C::DatabaseBusy
                    | C::DatabaseLocked
                    | C::SystemIoFailure
                    | C::DiskFull
                    | C::CannotOpen
                    | C::ReadOnly
                    | C::OutOfMemory
            ),
            Self::Database(e) => match e {
                sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::WorkerCrashed => true,
                sqlx::Error::Database(db)
                    if db
                        .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                        .is_some() =>
                {
                    db.code().is_some_and(|c| postgres::is_transient_code(&c))
                }
                sqlx::Error::Database(db) => db.code().is_some_and(|c| {
                    // SQLite's primary result codes: BUSY, LOCKED, NOMEM, READONLY, IOERR,
                    // FULL, CANTOPEN (the low byte of an extended code).
                    c.parse::<i32>()
                        .is_ok_and(|n| matches!(n & 0xff, 5 | 6 | 7 | 8 | 10 | 13 | 14))
                }),
                _ => false,
            },
            _ => false,
        }
    }
}

/// A session as stored.
#[derive(Clone, Debug)]
pub struct SessionRecord {
    /// The session id.
    pub id: SessionId,
    /// The configured agent it talks to.
    pub agent_id: String,
    /// The client's conversation key.
    pub thread: Option<String>,
    /// Its bearer token.
    pub token: String,
    /// Creation time (epoch ms).
    pub created_at: i64,
    /// Last message or stream (epoch ms).
    pub last_activity: i64,
    /// Token expiry (epoch ms).
    pub expires_at: i64,
    /// Set once deleted.
    pub deleted_at: Option<i64>,
    /// Every event with a sequence number up to here has been pruned.
    pub pruned_through: i64,
    /// Its last sequence number when read (0 before its first event): every event it logs
    /// later has a larger one, so a cursor beyond it is not from this log. Ignored on create.
    pub last_seq: i64,
}

/// A turn as stored.
#[derive(Clone, Debug)]
pub struct TurnRecord {
    /// The turn id.
    pub id: TurnId,
    /// Its session.
    pub session_id: SessionId,
    /// Its agent.
    pub agent_id: String,
    /// Its message id.
    pub message_id: MessageId,
    /// The message text.
    pub content: String,
    /// Its state.
    pub state: TurnState,
    /// The worker it went to.
    pub worker_id: Option<WorkerId>,
    /// Accepted (epoch ms).
    pub created_at: i64,
    /// Ended (epoch ms); `None` while it is still owed its terminal event.
    pub ended_at: Option<i64>,
    /// The failure code, when failed.
    pub code: Option<ErrorCode>,
}

/// A logged session event.
#[derive(Clone, Debug)]
pub struct StoredEvent {
    /// Its session.
    pub session_id: SessionId,
    /// Per-session sequence number: the SSE `id`.
    pub seq: i64,
    /// The turn it belongs to.
    pub turn_id: Option<TurnId>,
    /// The SSE event name.
    pub kind: EventKind,
    /// One line of JSON.
    pub data: String,
}

/// A new worker process.
#[derive(Clone, Debug)]
pub struct WorkerSpawn {
    /// The replica that runs it.
    pub replica_id: ReplicaId,
    /// The worker slot.
    pub worker_id: WorkerId,
    /// Its generation.
    pub generation: u32,
    /// The OS process id.
    pub pid: u32,
    /// Where and when it started, when `/proc` could tell.
    pub origin: Option<ProcessOrigin>,
    /// The agent it runs.
    pub agent_id: String,
    /// The session it serves.
    pub session_id: SessionId,
    /// Start time (epoch ms).
    pub at: i64,
}

/// Where and when a process started: a pid is reused, this triple is not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessOrigin {
    /// The host (`/etc/machine-id`, else the hostname) and pid namespace.
    pub host: String,
    /// The host's boot (`/proc/sys/kernel/random/boot_id`).
    pub boot_id: String,
    /// The process's start time in clock ticks since boot (`/proc/PID/stat` field 22).
    pub start_ticks: u64,
}

/// A worker generation the store records as running.
#[derive(Clone, Debug)]
pub struct LiveWorker {
    /// The worker slot.
    pub worker_id: WorkerId,
    /// Its generation.
    pub generation: u32,
    /// Its OS process id, when recorded.
    pub pid: Option<u32>,
    /// Where and when it started, when recorded.
    pub origin: Option<ProcessOrigin>,
    /// The replica that ran it, when recorded.
    pub replica_id: Option<ReplicaId>,
}

/// How a worker process ended.
#[derive(Clone, Debug)]
pub struct WorkerExit {
    /// The worker slot.
    pub worker_id: WorkerId,
    /// Its generation.
    pub generation: u32,
    /// Its exit code, when it exited.
    pub exit_code: Option<i32>,
    /// The signal that killed it, when one did.
    pub signal: Option<i32>,
    /// When (epoch ms).
    pub at: i64,
    /// Stopped on purpose (operator kill, reap, delete, shutdown, stall stop).
    pub intentional: bool,
    /// Why, in a word or two.
    pub reason: String,
    /// The last lines of its stderr.
    pub stderr_tail: String,
}

/// A worker line the gateway did not act on.
#[derive(Clone, Debug)]
pub struct Rejection {
    /// The worker slot.
    pub worker_id: WorkerId,
    /// Its generation.
    pub generation: u32,
    /// The turn the line named, if any.
    pub turn_id: Option<TurnId>,
    /// Rejected (a bad line) or late (its turn had ended).
    pub kind: RejectionKind,
    /// Why.
    pub reason: String,
    /// The line, cut to a few KiB.
    pub line: String,
    /// When (epoch ms).
    pub at: i64,
}

/// What a [`Change::Event`] does to its turn's row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Nothing: the turn's actor holds the turn, its dispatch has committed, and the journal's
    /// order puts the event before the turn's end.
    Append,
    /// Append only while the turn is open, else the event is late (its dispatch is not yet
    /// known to have committed, so the turn may have ended before it).
    Check,
    /// Check, refresh the turn's progress clock and log `turn.progress`: on a turn's first
    /// progress and at most once a second after.
    Announce,
}

/// One mutation. See [`Store::apply`].
#[derive(Clone, Debug)]
pub enum Change {
    /// Create a session.
    CreateSession(SessionRecord),
    /// Mark a session deleted.
    DeleteSession {
        /// The session.
        id: SessionId,
        /// When (epoch ms).
        at: i64,
    },
    /// Accept a message as a turn (idempotent on the session's message id).
    InsertTurn {
        /// The new turn, state `queued`.
        turn: TurnRecord,
    },
    /// Record that a turn was handed to a worker.
    Dispatch {
        /// The turn.
        turn_id: TurnId,
        /// The worker.
        worker_id: WorkerId,
        /// Its generation.
        generation: u32,
        /// When (epoch ms).
        at: i64,
        /// The hard deadline (epoch ms).
        deadline_at: i64,
        /// The agent's stall timeout (ms), for the stranded rule.
        stall_ms: i64,
    },
    /// A turn began waiting for worker capacity; past `until` it is stranded.
    TurnWaiting {
        /// The turn.
        turn_id: TurnId,
        /// Its queue deadline (epoch ms).
        until: i64,
    },
    /// Append a session event; with a turn, only while that turn is open (else it is late).
    Event {
        /// The session.
        session_id: SessionId,
        /// The turn, if the event belongs to one.
        turn_id: Option<TurnId>,
        /// The event name.
        kind: EventKind,
        /// Its JSON, one line, serialized by whoever sends it (not on the writer's thread).
        data: String,
        /// When (epoch ms).
        at: i64,
        /// The worker that produced it, to record it as late if its turn has ended.
        from: Option<(WorkerId, u32)>,
        /// What the event does to its turn's row.
        progress: Progress,
    },
    /// End a turn: the conditional terminal write.
    EndTurn {
        /// The session.
        session_id: SessionId,
        /// The turn.
        turn_id: TurnId,
        /// How it ends.
        ending: TurnEnding,
        /// Its terminal events, appended only if this write wins.
        events: Vec<SessionEvent>,
        /// When (epoch ms).
        at: i64,
        /// The turn was stranded (its worker gone, or a clock ran out): log `turn.stranded`
        /// before `turn.failed`.
        stranded: bool,
    },
    /// A worker process started.
    WorkerSpawned(WorkerSpawn),
    /// A worker changed state (`ready`, `busy`, `idle`) and maybe its turn.
    WorkerState {
        /// The worker slot.
        worker_id: WorkerId,
        /// Its generation.
        generation: u32,
        /// The new state.
        state: WorkerState,
        /// The turn it now holds (`busy`), counted as served.
        turn_id: Option<TurnId>,
        /// When (epoch ms).
        at: i64,
    },
    /// A worker's liveness clock.
    WorkerHeartbeat {
        /// The worker slot.
        worker_id: WorkerId,
        /// Its generation.
        generation: u32,
        /// When (epoch ms).
        at: i64,
    },
    /// A worker process ended.
    WorkerExited(WorkerExit),
    /// A worker line was rejected or late.
    Reject(Rejection),
    /// An operator acted (kill, cancel): logged as `operator.action`.
    Action(OperatorAction),
    /// Drop the events of turns that ended before `before` (epoch ms).
    Prune {
        /// The cutoff.
        before: i64,
    },
    /// A replica starts: its row, with its first lease.
    RegisterReplica(ReplicaRecord),
    /// A replica renews its lease.
    RenewLease {
        /// The replica.
        replica_id: ReplicaId,
        /// When (epoch ms).
        at: i64,
        /// The lease's new end (epoch ms).
        lease_until: i64,
    },
    /// A replica begins to stop (`stop` false) or has stopped cleanly (`stop` true).
    ReplicaStopping {
        /// The replica.
        replica_id: ReplicaId,
        /// When (epoch ms).
        at: i64,
        /// It has stopped: its row leaves the list.
        stopped: bool,
    },
    /// A write on behalf of a session its replica owns: applied only while the session's owner
    /// and epoch are still the fence's, else [`Applied::Fenced`] and nothing changes.
    Fenced {
        /// The ownership the write depends on.
        fence: Fence,
        /// The write.
        change: Box<Change>,
    },
    /// Take a session whose owner is gone (none, lost or stopped): the epoch moves on, every
    /// open turn of the session that reached a worker fails `replica_lost`, every worker row
    /// of the session still open is closed (`replica_lost`). Queued turns stay, for the new
    /// owner. A session the claimer owns already is adopted at its epoch, unchanged.
    /// [`Applied::Claimed`] or [`Applied::Held`].
    Claim {
        /// The session.
        session_id: SessionId,
        /// The claiming replica; it must be live.
        replica_id: ReplicaId,
        /// When (epoch ms).
        at: i64,
    },
    /// Give a session up (graceful stop): its owner becomes none, so a peer may claim it.
    Release {
        /// The ownership given up.
        fence: Fence,
    },
    /// Take a session from whoever owns it (it was deleted): owner none, epoch moved on, so
    /// the owner's next write is refused and it stops the session's worker; the session's
    /// worker rows still open are closed (`session_deleted`, intentional).
    Disown {
        /// The session.
        session_id: SessionId,
        /// When (epoch ms).
        at: i64,
    },
    /// Mark replicas lost: those named (known dead: their process is gone), and, when `judge`
    /// names the judging replica, any other live one whose lease has run out by the database's
    /// clock. A lost replica never renews again. Only this judges leases: a claim takes only
    /// what is already lost.
    MarkLost {
        /// Replicas known to be dead.
        replicas: Vec<ReplicaId>,
        /// The replica judging the others' leases (never itself), if any.
        judge: Option<ReplicaId>,
        /// When (epoch ms), where the backend has no clock of its own.
        at: i64,
    },
    /// Record a stream ticket.
    IssueTicket(StreamTicket),
    /// Use a stream ticket up: it is deleted, whether or not it is still valid, and returned
    /// ([`Applied::Ticket`]) if it existed; the caller checks its scope and expiry. A ticket is
    /// redeemed once: a second redemption finds nothing.
    RedeemTicket {
        /// The ticket's secret.
        ticket: String,
    },
    /// Forget history older than `before` (epoch ms): ended turns whose events are already
    /// pruned, exited worker generations, admin events, rejected output, and sessions left
    /// with none of these. Bounded per write; the next round takes the rest.
    PruneHistory {
        /// The cutoff.
        before: i64,
    },
}

/// The ownership a [`Change::Fenced`] write depends on: the session's owner and its epoch
/// when the replica claimed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fence {
    /// The session.
    pub session_id: SessionId,
    /// The owning replica.
    pub owner: ReplicaId,
    /// The epoch of its claim.
    pub epoch: i64,
}

impl Change {
    /// The write itself, under any fence.
    pub fn inner(&self) -> &Change {
        match self {
            Self::Fenced { change, .. } => change.inner(),
            other => other,
        }
    }

    /// The write itself, under any fence, to amend.
    pub fn inner_mut(&mut self) -> &mut Change {
        match self {
            Self::Fenced { change, .. } => change.inner_mut(),
            other => other,
        }
    }

    /// The write under `fence`.
    #[must_use]
    pub fn fenced(self, fence: &Fence) -> Self {
        Self::Fenced {
            fence: fence.clone(),
            change: Box::new(self),
        }
    }
}

/// A stream ticket: what a browser's `EventSource`, which cannot send `Authorization`, puts in
/// a stream's URL instead of a token. Short-lived and single use; the database holds it so that
/// any replica can redeem it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamTicket {
    /// The secret that goes into the URL.
    pub ticket: String,
    /// The session whose stream it opens; `None`: the admin stream.
    pub session_id: Option<SessionId>,
    /// Who asked for it: the configured token's name, or the session's id.
    pub holder: String,
    /// When it stops being accepted (epoch ms).
    pub expires_at: i64,
}

/// A queued turn as its session's owner reads it, in the session's order.
#[derive(Clone, Debug)]
pub struct QueuedRow {
    /// The turn.
    pub turn_id: TurnId,
    /// Its message.
    pub message_id: MessageId,
    /// The message text.
    pub content: String,
    /// Its place in the session's order.
    pub seq: i64,
}

/// A replica's registration (see [`Change::RegisterReplica`]).
#[derive(Clone, Debug)]
pub struct ReplicaRecord {
    /// Its id.
    pub id: ReplicaId,
    /// Its name.
    pub name: String,
    /// The host it runs on.
    pub host: String,
    /// Its OS pid.
    pub pid: u32,
    /// Its version.
    pub version: String,
    /// When it started (epoch ms).
    pub started_at: i64,
    /// When its first lease runs out (epoch ms).
    pub lease_until: i64,
}

/// An operator action, for the admin log.
#[derive(Clone, Debug)]
pub struct OperatorAction {
    /// What was done.
    pub action: ActionKind,
    /// The worker or turn acted on.
    pub target: String,
    /// The operator's reason.
    pub reason: String,
    /// The token's configured name.
    pub token: String,
    /// When (epoch ms).
    pub at: i64,
}

/// A logged admin lifecycle event (protocol.md §3), as stored: streams send it as it is,
/// readers parse it into an [`api::AdminEvent`](crate::api::AdminEvent).
#[derive(Clone, Debug)]
pub struct LoggedEvent {
    /// Its sequence number in the admin log: the SSE `id`.
    pub seq: i64,
    /// `worker.spawned`, `turn.failed`, ...
    pub kind: String,
    /// One line of JSON.
    pub data: String,
}

/// What a batch did: one result per write, and the admin events it logged.
#[derive(Debug, Default)]
pub struct Batch {
    /// One per write, in order.
    pub results: Vec<Applied>,
    /// The lifecycle events the batch logged, in order.
    pub admin: Vec<LoggedEvent>,
}

/// What one [`Change`] did.
#[derive(Clone, Debug)]
pub enum Applied {
    /// The write changed something.
    Changed,
    /// The write changed nothing (its condition did not hold).
    Unchanged,
    /// The turn that holds the message, and whether this write created it.
    Turn {
        /// The turn id (an existing one when deduplicated).
        turn_id: TurnId,
        /// False when the message id was already accepted.
        created: bool,
        /// Its place in the session's order (1, 2, ...).
        seq: i64,
    },
    /// A fenced write found the session owned by another replica or epoch: nothing changed.
    Fenced,
    /// The claim won: the session is the claimer's at this epoch; the events of the turns it
    /// failed were appended.
    Claimed {
        /// The new epoch.
        epoch: i64,
        /// The appended events.
        events: Vec<Arc<StoredEvent>>,
    },
    /// The claim lost: a live replica owns the session (`None`: the claimer itself is not
    /// live).
    Held {
        /// The owner.
        owner: Option<ReplicaId>,
    },
    /// The ticket redeemed, if it existed (valid or not: the caller judges).
    Ticket(Option<StreamTicket>),
    /// The events appended (empty when the turn had already ended).
    /// Shared, so publishing them to every stream copies none.
    Events(Vec<Arc<StoredEvent>>),
}

impl Applied {
    /// [`Applied::Changed`] when `changed`, else [`Applied::Unchanged`].
    pub fn changed(changed: bool) -> Self {
        if changed {
            Self::Changed
        } else {
            Self::Unchanged
        }
    }
}

/// The store's interface; one implementation per backend.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Applies a batch of writes in one transaction, in order, logging the admin lifecycle
    /// events they imply in the same transaction.
    /// The batch is shared so a backend may hand it to another thread without copying it.
    async fn apply(&self, batch: Arc<[Change]>) -> Result<Batch, StoreError>;
    /// A session by id (deleted ones included).
    async fn session(&self, id: &SessionId) -> Result<Option<SessionRecord>, StoreError>;
    /// The live session of an agent's thread.
    async fn session_by_thread(
        &self,
        agent_id: &str,
        thread: &str,
    ) -> Result<Option<SessionRecord>, StoreError>;
    /// A turn by id.
    async fn turn(&self, id: &TurnId) -> Result<Option<TurnRecord>, StoreError>;
    /// The session's events with `seq > after`, oldest first, at most `limit`.
    async fn events_after(
        &self,
        session: &SessionId,
        after: i64,
        limit: i64,
    ) -> Result<Vec<StoredEvent>, StoreError>;
    /// The session's last sequence number and the events, up to it, of turns that had no
    /// `complete` by then: what a client connecting without a cursor is owed.
    async fn events_in_flight(
        &self,
        session: &SessionId,
    ) -> Result<(i64, Vec<StoredEvent>), StoreError>;
    /// Every turn still owed its terminal event.
    async fn open_turns(&self) -> Result<Vec<TurnRecord>, StoreError>;
    /// Worker generations with no recorded exit.
    async fn live_workers(&self) -> Result<Vec<LiveWorker>, StoreError>;
    /// The generation a new process in this slot gets.
    async fn next_generation(&self, worker: &WorkerId) -> Result<u32, StoreError>;

    /// Counts for the overview at time `now` (epoch ms).
    async fn overview(&self, now: i64) -> Result<Overview, StoreError>;
    /// Worker generations, newest first.
    async fn workers(&self, q: &WorkerQuery) -> Result<Vec<WorkerRecord>, StoreError>;
    /// Turns, newest first; `now` decides which are stranded.
    async fn turns(&self, q: &TurnQuery, now: i64) -> Result<Vec<TurnInfo>, StoreError>;
    /// One turn with its message content.
    async fn turn_row(&self, id: &TurnId, now: i64) -> Result<Option<TurnInfo>, StoreError>;
    /// The admin events about a turn, then its session events still kept, in order.
    async fn turn_timeline(
        &self,
        id: &TurnId,
    ) -> Result<(Vec<LoggedEvent>, Vec<StoredEvent>), StoreError>;
    /// Rejected and late output of a worker slot, newest first: (generation, turn, kind,
    /// reason, line, at).
    async fn rejections(
        &self,
        worker: &WorkerId,
        limit: i64,
    ) -> Result<Vec<query::RejectionRow>, StoreError>;
    /// The admin log's bounds: the first sequence number still kept and the last one ever
    /// given (0 before the first event); `first` is `last + 1` while nothing is kept. A cursor
    /// outside `first - 1 ..= last` does not line up with this log.
    async fn admin_log_bounds(&self) -> Result<(i64, i64), StoreError>;
    /// Admin events with `seq > after`, oldest first, at most `limit`.
    async fn admin_events_after(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<LoggedEvent>, StoreError>;
    /// The replicas that have not stopped cleanly, as of `now` (epoch ms): live, stopping, or
    /// lost (lease run out), with their live workers and the sessions those serve.
    async fn replicas(&self, now: i64) -> Result<Vec<ReplicaInfo>, StoreError>;
    /// Live workers, open turns and the admin log's high-water mark, read together.
    async fn snapshot(&self, now: i64) -> Result<Snapshot, StoreError>;
    /// The `PostgreSQL` store, for what only it offers (notifications between replicas).
    fn postgres(&self) -> Option<&postgres::PgStore> {
        None
    }
    /// The session's queued turns in its order, and the last place given in that order.
    async fn queued_turns(&self, session: &SessionId) -> Result<(Vec<QueuedRow>, i64), StoreError>;
    /// Sessions `me` should claim: unowned ones with a queued turn, and those of a replica
    /// marked lost or stopped with an open turn or worker. At most `limit`.
    async fn claimable(&self, me: &ReplicaId, limit: i64) -> Result<Vec<SessionId>, StoreError>;
    /// Sessions `me` owns that have a turn queued since before `before` (epoch ms).
    async fn owned_with_queued(
        &self,
        me: &ReplicaId,
        before: i64,
    ) -> Result<Vec<SessionId>, StoreError>;
    /// Whether this stream ticket is stored (issued, not yet redeemed or forgotten).
    async fn is_ticket(&self, ticket: &str) -> Result<bool, StoreError>;
    /// The session's owner and epoch, and whether that owner is live as of `now`.
    async fn owner(
        &self,
        session: &SessionId,
        now: i64,
    ) -> Result<Option<(ReplicaId, i64, bool)>, StoreError>;
}

/// Opens the store a URL names, creating and migrating it as needed: `sqlite://PATH`, or
/// `postgres://…` (also `postgresql://…`) for a `PostgreSQL` database.
pub async fn open(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(sqlite::SqliteStore::open(url).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(postgres::PgStore::open(url).await?))
    } else {
        Err(StoreError::UnsupportedUrl(url.to_owned()))
    }
}
