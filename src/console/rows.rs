//! The current view's row index: which rows it shows (after the filter), in which order, and
//! the header's counts. [`State::prepare`] rebuilds them only when something they depend on
//! changed, so a frame never sorts.
//!
//! These are `State`'s methods, written here rather than in `state` because they format rows
//! with `cells`, which names `state`'s types: `state` itself imports neither, so the two never
//! form a cycle.

use super::cells;
use super::clocks;
use super::model::{Turn, Worker};
use super::state::{Counts, RowKey, State, View};
use crate::api::TurnState;
use crate::api::admin::ReplicaInfo;

/// Rows kept when freezing a view.
const FREEZE_ROWS: usize = 10_000;

impl State {
    /// Rebuilds the row index if needed and keeps the selection in range.
    pub fn prepare(&mut self) {
        if self.rows_dirty {
            // Counts stay live behind a frozen table; rows do not.
            self.counts = self.count();
        }
        let vi = self.vi();
        if self.rows_dirty && self.frozen.is_none() {
            // The selection is a row, not a row number (htop): it stays on the same key while
            // rows move, and only when that row is gone does it keep its place.
            let held = self.rows.get(self.selected[vi]).cloned();
            self.unfiltered = self.unfiltered_count();
            self.rows = self.build_rows();
            self.rows_dirty = false;
            if let Some(i) = held.and_then(|k| self.rows.iter().position(|r| *r == k)) {
                self.selected[vi] = i;
            }
        }
        let len = self.frozen.as_ref().map_or(self.rows.len(), Vec::len);
        if self.view == View::Events && self.follow {
            self.selected[vi] = len.saturating_sub(1);
        }
        self.selected[vi] = self.selected[vi].min(len.saturating_sub(1));
    }

    fn count(&self) -> Counts {
        let mut c = Counts::default();
        for w in self.model.workers.values() {
            *c.workers.entry(w.state).or_default() += 1;
        }
        for t in self.model.turns.values() {
            c.in_flight += usize::from(t.is_open());
            c.failed += usize::from(t.state == TurnState::Failed);
            c.stranded += usize::from(t.is_open() && t.stranded);
            c.stuck += usize::from(t.is_open() && (t.stranded || clocks::is_slow(t, self.now)));
        }
        c.replicas = self.cluster.counts();
        c
    }

    /// Whether the Turns or Stranded view shows a turn, before the filter. Stranded: open
    /// ones, and the resolved ones still in memory (how they ended).
    fn shows(&self, t: &Turn) -> bool {
        if self.view == View::Stranded {
            t.stranded
        } else {
            t.is_open() || self.show_ended
        }
    }

    /// The current view's rows before the filter.
    fn unfiltered_count(&self) -> usize {
        match self.view {
            View::Workers => self.model.workers.len(),
            View::Turns | View::Stranded => {
                self.model.turns.values().filter(|t| self.shows(t)).count()
            }
            View::Events => self.model.events.len(),
            View::Replicas => self.cluster.replicas.len(),
            View::Chat => 0,
        }
    }

    fn build_rows(&self) -> Vec<RowKey> {
        // Cells are formatted for the filter only when there is one.
        let keep = |cells: &dyn Fn() -> Vec<String>| {
            self.filter
                .as_ref()
                .is_none_or(|f| f.keeps(&cells().join(" ")))
        };
        let sort = self.sorts[self.vi()];
        match self.view {
            View::Workers => {
                let mut ws: Vec<&Worker> = self
                    .model
                    .workers
                    .values()
                    .filter(|w| keep(&|| cells::worker(w, self.now, &self.cluster)))
                    .collect();
                cells::sort_workers(&mut ws, sort, self.now, &self.cluster);
                ws.into_iter()
                    .map(|w| RowKey::Worker(w.id.clone()))
                    .collect()
            }
            View::Turns | View::Stranded => {
                let mut ts: Vec<&Turn> = self
                    .model
                    .turns
                    .values()
                    .filter(|t| self.shows(t))
                    .filter(|t| keep(&|| cells::turn(t, self.now, self.heartbeat(t))))
                    .collect();
                cells::sort_turns(&mut ts, sort, self.now);
                ts.into_iter().map(|t| RowKey::Turn(t.id.clone())).collect()
            }
            View::Replicas => {
                let mut rs: Vec<&ReplicaInfo> = self
                    .cluster
                    .replicas
                    .iter()
                    .filter(|r| keep(&|| cells::replica(r, self.now)))
                    .collect();
                cells::sort_replicas(&mut rs, sort, self.now);
                rs.into_iter()
                    .map(|r| RowKey::Replica(r.replica_id.clone()))
                    .collect()
            }
            View::Chat => Vec::new(),
            View::Events => (0..self.model.events.len())
                .filter(|i| keep(&|| cells::event(&self.model.events[*i])))
                .map(RowKey::Event)
                .collect(),
        }
    }

    /// The cells of a row.
    pub fn cells(&self, key: &RowKey) -> Vec<String> {
        match key {
            RowKey::Worker(id) => self
                .model
                .workers
                .get(id)
                .map(|w| cells::worker(w, self.now, &self.cluster))
                .unwrap_or_default(),
            RowKey::Turn(id) => self
                .model
                .turns
                .get(id)
                .map(|t| cells::turn(t, self.now, self.heartbeat(t)))
                .unwrap_or_default(),
            RowKey::Event(i) => self
                .model
                .events
                .get(*i)
                .map(cells::event)
                .unwrap_or_default(),
            RowKey::Replica(id) => self
                .cluster
                .get(id)
                .map(|r| cells::replica(r, self.now))
                .unwrap_or_default(),
        }
    }

    /// The last heartbeat of the worker a turn was dispatched to.
    pub fn heartbeat(&self, t: &Turn) -> Option<i64> {
        self.model
            .workers
            .get(t.worker.as_ref()?)
            .and_then(|w| w.last_heartbeat_at)
    }

    /// Freezes the current rows (their cells as they are now).
    pub fn freeze_rows(&mut self) {
        self.prepare();
        let rows = self
            .rows
            .iter()
            .take(FREEZE_ROWS)
            .map(|k| self.cells(k))
            .collect();
        self.frozen = Some(rows);
    }
}
