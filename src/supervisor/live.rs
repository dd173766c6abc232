//! The worker processes this replica runs now, by slot: what the process sampler
//! ([`super::procstat`]) walks. A process is listed from its spawn until its [`Process`] is
//! dropped (it exited, or its stop finished).
//!
//! [`Process`]: super::process::Process

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use crate::ids::WorkerId;

/// A live worker process of this replica.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveProcess {
    /// Its slot.
    pub worker_id: WorkerId,
    /// Its generation in the slot.
    pub generation: u32,
    /// Its OS pid.
    pub pid: u32,
}

/// The live worker processes, newest generation per slot.
#[derive(Clone, Debug, Default)]
pub(crate) struct LiveTable(Arc<Mutex<HashMap<WorkerId, (u32, u32)>>>);

impl LiveTable {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<WorkerId, (u32, u32)>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Lists a process until the returned entry is dropped.
    pub(crate) fn enter(&self, worker: &WorkerId, generation: u32, pid: u32) -> Listed {
        self.map().insert(worker.clone(), (generation, pid));
        Listed {
            table: self.clone(),
            worker: worker.clone(),
            generation,
        }
    }

    /// Every listed process.
    pub(crate) fn list(&self) -> Vec<LiveProcess> {
        self.map()
            .iter()
            .map(|(w, (generation, pid))| LiveProcess {
                worker_id: w.clone(),
                generation: *generation,
                pid: *pid,
            })
            .collect()
    }

    /// The slot's listed process.
    pub(crate) fn get(&self, worker: &WorkerId) -> Option<LiveProcess> {
        self.map().get(worker).map(|(generation, pid)| LiveProcess {
            worker_id: worker.clone(),
            generation: *generation,
            pid: *pid,
        })
    }
}

/// A process's place in the [`LiveTable`]; dropping it unlists the process (unless a newer
/// generation of the slot replaced it already).
#[derive(Debug)]
pub(crate) struct Listed {
    table: LiveTable,
    worker: WorkerId,
    generation: u32,
}

impl Drop for Listed {
    fn drop(&mut self) {
        let mut map = self.table.map();
        if map
            .get(&self.worker)
            .is_some_and(|(g, _)| *g == self.generation)
        {
            map.remove(&self.worker);
        }
    }
}
