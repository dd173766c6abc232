//! The store-driven sweeper: about once a second it asks the store which open turns are
//! stranded (the rule described in [`crate::store::query`], run as SQL by the backend's
//! `?state=stranded` list) and ends each one that is still stranded a
//! round later, whoever should have ended it.
//!
//! Normally a session's actor ends its own turns the moment a worker exits or a clock runs
//! out, and the sweeper finds nothing. It is the backstop for when that did not happen (a write
//! the store refused for good, an actor that died, a turn no actor holds): the conditional end
//! means that if the owner does get there first, the sweeper's write changes nothing.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use crate::api::admin::TurnInfo;
use crate::api::state::{TurnFilter, TurnSet};
use crate::api::{ErrorCode, TurnEnding, TurnState};
use crate::clock::now_ms;
use crate::ids::TurnId;
use crate::journal::Journal;
use crate::store::{Page, Store, TurnQuery, WorkerQuery};
use crate::supervisor::end_turn;

/// How often the store is asked.
const EVERY: Duration = Duration::from_secs(1);
/// Clocks are read this far in the past, so an actor whose own timer is due (the store's
/// progress clock is refreshed at most once a second) always ends its turn first.
const GRACE_MS: i64 = 2_000;
/// Turns resolved per round at most.
const PER_ROUND: i64 = 200;

/// Runs until aborted.
pub async fn run(store: Arc<dyn Store>, journal: Journal) {
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Stranded in the previous round: a turn is ended only when it is seen stranded twice.
    let mut seen: HashSet<TurnId> = HashSet::new();
    loop {
        tick.tick().await;
        if !journal.is_available() {
            // Nothing can be written; the owners' writes are queued and will land first.
            seen.clear();
            continue;
        }
        let q = TurnQuery {
            state: Some(TurnFilter::Set(TurnSet::Stranded)),
            page: Page {
                limit: PER_ROUND,
                cursor: None,
            },
            ..TurnQuery::default()
        };
        let rows = match store.turns(&q, now_ms() - GRACE_MS).await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(error = %e, "sweeper could not read stranded turns");
                continue;
            }
        };
        let mut now_seen = HashSet::with_capacity(rows.len());
        for row in rows {
            if seen.contains(&row.turn_id) {
                resolve(store.as_ref(), &journal, &row).await;
            } else {
                now_seen.insert(row.turn_id);
            }
        }
        seen = now_seen;
    }
}

/// Ends one stranded turn with the code its state calls for.
async fn resolve(store: &dyn Store, journal: &Journal, row: &TurnInfo) {
    let ending = ending_for(store, row).await;
    let code = ending.code;
    if end_turn(
        journal,
        None,
        &row.session_id,
        &row.turn_id,
        &row.message_id,
        ending,
    )
    .await
    {
        tracing::warn!(turn = %row.turn_id, ?code, "sweeper resolved a stranded turn its owner left open");
    }
}

/// Why the turn is stranded, as an ending: its worker gone, its deadline or queue wait over,
/// or no progress.
async fn ending_for(store: &dyn Store, row: &TurnInfo) -> TurnEnding {
    const BY: &str = "(resolved by the gateway's sweeper)";
    if let (Some(worker), Some(generation)) = (&row.worker_id, row.worker_generation) {
        let exit = store
            .workers(&WorkerQuery::slot(worker, 1000))
            .await
            .ok()
            .and_then(|ws| {
                ws.into_iter()
                    .find(|w| w.generation == generation && w.exited_at.is_some())
            });
        if let Some(w) = exit {
            let code = if w.exit_code == Some(0) && w.signal.is_none() {
                ErrorCode::WorkerExited
            } else {
                ErrorCode::WorkerCrashed
            };
            let mut ending = TurnEnding::failed(
                code,
                format!("the worker process is gone and the turn was never ended {BY}"),
            );
            ending.exit_code = w.exit_code;
            ending.signal = w.signal;
            return ending;
        }
    }
    let now = now_ms();
    if row.deadline_at.is_some_and(|d| d < now) {
        TurnEnding::failed(
            ErrorCode::TurnDeadlineExceeded,
            format!("the turn ran past its deadline {BY}"),
        )
    } else if row.state == TurnState::Queued {
        TurnEnding::failed(
            ErrorCode::QueueTimeout,
            format!("no worker took the turn within the queue timeout {BY}"),
        )
    } else {
        TurnEnding::failed(
            ErrorCode::TurnStalled,
            format!("the turn made no progress within the stall timeout {BY}"),
        )
    }
}
