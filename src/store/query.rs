//! What the admin read side asks the store, and what it gets back.
//!
//! **Stranded**, defined once: a turn still owed its terminal event whose worker is gone (the
//! generation it was dispatched to has exited), or whose stall clock (`last_progress_at +
//! stall_ms`) or deadline has run out, or that has waited for worker capacity past its queue
//! deadline. The gateway resolves these itself; while one exists, operators see it.

use std::collections::BTreeMap;

use crate::api::state::{TurnFilter, WorkerFilter};
use crate::api::{ErrorCode, TurnState, WorkerState};
use crate::ids::{ReplicaId, SessionId, TurnId, WorkerId};

pub use crate::api::admin::RejectedLine as RejectionRow;
use crate::api::admin::TurnInfo;

/// Pagination: at most `limit` rows after the opaque `cursor` of a previous page.
#[derive(Clone, Debug, Default)]
pub struct Page {
    /// Rows per page (1..=1000).
    pub limit: i64,
    /// The last row of the previous page, as [`WorkerRecord::cursor`] / [`turn_cursor`] gave it.
    pub cursor: Option<String>,
}

/// Which workers to list.
#[derive(Clone, Debug, Default)]
pub struct WorkerQuery {
    /// A state, or every live one.
    pub state: Option<WorkerFilter>,
    /// One worker slot only.
    pub worker: Option<WorkerId>,
    /// One session only.
    pub session: Option<SessionId>,
    /// One agent only.
    pub agent: Option<String>,
    /// The page.
    pub page: Page,
}

impl WorkerQuery {
    /// The newest `limit` generations of one worker slot.
    pub fn slot(worker: &WorkerId, limit: i64) -> Self {
        Self {
            worker: Some(worker.clone()),
            page: Page {
                limit,
                cursor: None,
            },
            ..Self::default()
        }
    }
}

/// Which turns to list.
#[derive(Clone, Debug, Default)]
pub struct TurnQuery {
    /// A state, the open turns or the stranded ones.
    pub state: Option<TurnFilter>,
    /// One agent only.
    pub agent: Option<String>,
    /// One session only.
    pub session: Option<SessionId>,
    /// One worker slot only.
    pub worker: Option<WorkerId>,
    /// The page.
    pub page: Page,
}

/// One worker generation as stored.
#[derive(Clone, Debug)]
pub struct WorkerRecord {
    /// The slot.
    pub worker_id: WorkerId,
    /// The generation.
    pub generation: u32,
    /// OS pid.
    pub pid: u32,
    /// Agent.
    pub agent_id: String,
    /// Session.
    pub session_id: SessionId,
    /// Its state.
    pub state: WorkerState,
    /// Epoch ms.
    pub started_at: i64,
    /// Epoch ms.
    pub ready_at: Option<i64>,
    /// Epoch ms.
    pub last_heartbeat_at: Option<i64>,
    /// Epoch ms.
    pub last_progress_at: Option<i64>,
    /// The turn it holds.
    pub current_turn_id: Option<TurnId>,
    /// Turns handed to it.
    pub turns_served: i64,
    /// Exit code.
    pub exit_code: Option<i32>,
    /// Signal number.
    pub signal: Option<i32>,
    /// Epoch ms.
    pub exited_at: Option<i64>,
    /// Stopped on purpose.
    pub intentional: Option<bool>,
    /// Why it exited.
    pub exit_reason: Option<String>,
    /// Last stderr lines (set at exit).
    pub stderr_tail: Option<String>,
    /// The replica that runs (or ran) it; unknown for rows older than replicas.
    pub replica_id: Option<ReplicaId>,
}

impl WorkerRecord {
    /// This row as a pagination cursor.
    pub fn cursor(&self) -> String {
        format!("{}:{}:{}", self.started_at, self.worker_id, self.generation)
    }
}

/// The pagination cursor of a turn in a list (newest first): its creation time and id.
pub fn turn_cursor(t: &TurnInfo) -> String {
    format!("{}:{}", t.created_at, t.turn_id)
}

/// Counts for the overview.
#[derive(Clone, Debug, Default)]
pub struct Overview {
    /// Live workers by state.
    pub workers_by_state: BTreeMap<WorkerState, i64>,
    /// Turns by state.
    pub turns_by_state: BTreeMap<TurnState, i64>,
    /// Failed turns by code.
    pub failed_by_code: BTreeMap<ErrorCode, i64>,
    /// Turns failed in the last [`RECENT_MS`], by code.
    pub failed_recently: BTreeMap<ErrorCode, i64>,
    /// Turns stranded now.
    pub stranded: i64,
}

/// The window of [`Overview::failed_recently`]: the last 15 minutes.
pub const RECENT_MS: i64 = 15 * 60_000;

/// What a cursorless admin stream starts from.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// The admin log's last sequence number when the snapshot was read.
    pub seq: i64,
    /// Live workers.
    pub workers: Vec<WorkerRecord>,
    /// Open turns.
    pub turns: Vec<TurnInfo>,
}

/// Splits a cursor `a:b[:c]` into its epoch-ms head and the rest.
pub fn split_cursor(cursor: &str) -> Option<(i64, &str)> {
    let (ms, rest) = cursor.split_once(':')?;
    Some((ms.parse().ok()?, rest))
}
