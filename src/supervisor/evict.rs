//! Idle workers yield their slot. One worker serves one session and holds a `max_workers` slot
//! while idle; when a turn needs a slot and none is free, the least recently used idle worker
//! is stopped (intentionally, reason `evicted`) instead of making the turn wait, so a turn
//! fails `queue_timeout` only when every slot is busy.
//!
//! The board lists the sessions whose worker is idle (with when each became idle), counts the
//! turns waiting for a slot, and counts the evictions ordered whose slot is not free yet. Each
//! time the balance can change (a turn starts waiting, a worker becomes idle, an eviction is
//! refused because its worker got a turn meanwhile), it orders evictions, oldest idle first,
//! until every waiting turn has one on its way. A freed slot goes to the longest-waiting turn
//! (the semaphore is fair), whichever eviction freed it: the counts, not a pairing, are what
//! must balance.

use std::collections::HashMap;
use tokio::time::Instant;

use super::Ctx;
use super::actor::Cmd;
use crate::ids::SessionId;

/// Who is idle, how many turns wait for a slot, how many evictions are on their way.
#[derive(Default)]
pub(super) struct IdleBoard {
    since: HashMap<SessionId, Instant>,
    waiting: usize,
    in_flight: usize,
}

impl IdleBoard {
    /// Orders evictions (oldest idle first) until the waiting turns are covered.
    fn rebalance(&mut self) -> Vec<SessionId> {
        let mut targets = Vec::new();
        while self.waiting > self.in_flight {
            let Some(oldest) = self
                .since
                .iter()
                .min_by_key(|(_, at)| **at)
                .map(|(s, _)| s.clone())
            else {
                break;
            };
            self.since.remove(&oldest);
            self.in_flight += 1;
            targets.push(oldest);
        }
        targets
    }
}

/// Counts a turn waiting for a slot while it lives.
pub(super) struct WaitingTurn(std::sync::Arc<Ctx>);

impl Drop for WaitingTurn {
    fn drop(&mut self) {
        let mut board = self.0.board();
        board.waiting = board.waiting.saturating_sub(1);
    }
}

impl Ctx {
    fn board(&self) -> std::sync::MutexGuard<'_, IdleBoard> {
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A turn starts waiting for a slot: an idle worker is evicted for it if there is one.
    pub(super) fn turn_waits(self: &std::sync::Arc<Self>) -> WaitingTurn {
        let targets = {
            let mut board = self.board();
            board.waiting += 1;
            board.rebalance()
        };
        self.send_evictions(targets);
        WaitingTurn(std::sync::Arc::clone(self))
    }

    /// The session's worker became idle (`true`) or stopped being idle.
    pub(super) fn set_idle(&self, session: &SessionId, idle: bool) {
        let targets = {
            let mut board = self.board();
            if !idle {
                board.since.remove(session);
                return;
            }
            board.since.insert(session.clone(), Instant::now());
            board.rebalance()
        };
        self.send_evictions(targets);
    }

    /// An eviction could not be carried out (its worker got a turn meanwhile, or is gone).
    pub(super) fn eviction_refused(&self) {
        let targets = {
            let mut board = self.board();
            board.in_flight = board.in_flight.saturating_sub(1);
            board.rebalance()
        };
        self.send_evictions(targets);
    }

    /// An evicted worker has exited: its slot is free (and already handed to a waiting turn).
    pub(super) fn eviction_done(&self) {
        let mut board = self.board();
        board.in_flight = board.in_flight.saturating_sub(1);
    }

    /// Sent under the registry lock, so an actor retiring meanwhile finds (and refuses) it.
    fn send_evictions(&self, targets: Vec<SessionId>) {
        for target in targets {
            let sent = {
                let reg = self.registry();
                reg.actors
                    .get(&target)
                    .is_some_and(|tx| tx.send(Cmd::Evict).is_ok())
            };
            if !sent {
                self.eviction_refused();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idle(board: &mut IdleBoard, s: &str) {
        board.since.insert(SessionId(s.into()), Instant::now());
    }

    #[test]
    fn evicts_oldest_idle_first_and_only_as_many_as_wait() {
        let mut b = IdleBoard::default();
        idle(&mut b, "old");
        std::thread::sleep(std::time::Duration::from_millis(2));
        idle(&mut b, "new");
        assert!(b.rebalance().is_empty(), "nobody waits");
        b.waiting = 1;
        assert_eq!(b.rebalance(), [SessionId("old".into())]);
        assert!(
            b.rebalance().is_empty(),
            "one eviction on its way covers one turn"
        );
        b.waiting = 3;
        assert_eq!(b.rebalance(), [SessionId("new".into())]);
        assert!(b.rebalance().is_empty(), "nobody left to evict");
        assert_eq!(b.in_flight, 2);
        idle(&mut b, "later");
        assert_eq!(b.rebalance(), [SessionId("later".into())]);
    }
}
