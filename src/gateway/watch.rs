//! Process truth for the admin API (protocol.md §4): while someone watches (an admin stream is
//! open, or a worker was read through the admin API in the last few seconds), this replica's
//! live worker processes are sampled from `/proc` about once a second; the latest sample per
//! worker is kept in memory (never stored), attached to the worker rows the admin API answers
//! with, and sent to the admin streams as `worker.sampled` (no `id:`, not in the log).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::api::admin::{ProcessSample, WorkerInfo};
use crate::api::lifecycle::{AdminStreamEvent, WorkerSampled};
use crate::ids::WorkerId;
use crate::journal::{Ephemeral, Hub};
use crate::supervisor::procstat::Sampler;
use crate::supervisor::{LiveProcess, Supervisor};

/// How often the watched workers are sampled.
const EVERY: Duration = Duration::from_secs(1);
/// How long a read of a worker through the admin API keeps the sampling on.
const READ_KEEPS_WATCHING: Duration = Duration::from_secs(5);
/// A sample younger than this is answered as is; an older one is taken again on demand.
const FRESH: Duration = Duration::from_millis(1500);
/// A round leaves a sample this young alone (one taken on demand just before): a CPU figure
/// over a few milliseconds would be noise.
const TOO_SOON: Duration = Duration::from_millis(500);

/// The latest sample of one worker process.
#[derive(Clone, Debug)]
struct Latest {
    generation: u32,
    pid: u32,
    at: Instant,
    sample: ProcessSample,
}

/// The sampler, the latest samples, and when a worker was last read.
#[derive(Default)]
pub struct Watch {
    sampler: Mutex<Sampler>,
    latest: Mutex<HashMap<WorkerId, Latest>>,
    read_at: Mutex<Option<Instant>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Watch {
    /// Whether anyone watches: an admin stream is open, or a worker was read lately.
    fn watched(&self, hub: &Hub) -> bool {
        hub.admin_connections() > 0
            || lock(&self.read_at).is_some_and(|at| at.elapsed() < READ_KEEPS_WATCHING)
    }

    /// Samples `procs` now and keeps the samples. A full round (`skip_young`) leaves out those
    /// sampled in the last [`TOO_SOON`] and forgets every process not in `procs`. Blocking:
    /// reads `/proc`.
    fn round(
        &self,
        procs: &[LiveProcess],
        skip_young: bool,
        full: bool,
    ) -> Vec<(LiveProcess, ProcessSample)> {
        let due: Vec<&LiveProcess> = {
            let latest = lock(&self.latest);
            procs
                .iter()
                .filter(|p| {
                    !skip_young
                        || !latest.get(&p.worker_id).is_some_and(|l| {
                            l.generation == p.generation
                                && l.pid == p.pid
                                && l.at.elapsed() < TOO_SOON
                        })
                })
                .collect()
        };
        let pids: Vec<u32> = due.iter().map(|p| p.pid).collect();
        let samples = {
            let mut sampler = lock(&self.sampler);
            if skip_young {
                // A round covers every live process: the sampler forgets the others.
                sampler.forget_others(&procs.iter().map(|p| p.pid).collect::<Vec<_>>());
            }
            sampler.sample_all(&pids, full)
        };
        let now = Instant::now();
        let taken: Vec<(LiveProcess, ProcessSample)> = due
            .into_iter()
            .zip(samples)
            .filter_map(|(p, s)| Some((p.clone(), s?)))
            .collect();
        let mut latest = lock(&self.latest);
        if skip_young {
            latest.retain(|w, l| {
                procs
                    .iter()
                    .any(|p| &p.worker_id == w && p.generation == l.generation && p.pid == l.pid)
            });
        }
        for (p, s) in &taken {
            let entry = Latest {
                generation: p.generation,
                pid: p.pid,
                at: now,
                sample: s.clone(),
            };
            latest.insert(p.worker_id.clone(), entry);
        }
        taken
    }

    /// Attaches to each row of a live worker of this replica its latest sample, sampling on
    /// demand those without a fresh one; `full` (one worker's detail): sampled wholly now, its
    /// descriptors, children and kernel wait too. Counts as a read of workers (sampling goes
    /// on for a few seconds).
    pub async fn attach(
        self: &Arc<Self>,
        supervisor: &Supervisor,
        rows: &mut [WorkerInfo],
        full: bool,
    ) {
        *lock(&self.read_at) = Some(Instant::now());
        let live: Vec<LiveProcess> = rows
            .iter()
            .filter_map(|w| {
                supervisor
                    .live_process(&w.worker_id)
                    .filter(|p| p.generation == w.generation && p.pid == w.pid)
            })
            .collect();
        if live.is_empty() {
            return;
        }
        let stale: Vec<LiveProcess> = {
            let latest = lock(&self.latest);
            live.iter()
                .filter(|p| {
                    full || !latest.get(&p.worker_id).is_some_and(|l| {
                        l.generation == p.generation && l.pid == p.pid && l.at.elapsed() < FRESH
                    })
                })
                .cloned()
                .collect()
        };
        if !stale.is_empty() {
            let me = Arc::clone(self);
            let _ = tokio::task::spawn_blocking(move || me.round(&stale, false, full)).await;
        }
        let latest = lock(&self.latest);
        for row in rows {
            row.process = latest
                .get(&row.worker_id)
                .filter(|l| l.generation == row.generation && l.pid == row.pid)
                .filter(|_| live.iter().any(|p| p.worker_id == row.worker_id))
                .map(|l| l.sample.clone());
        }
    }
}

/// Samples every live worker process of this replica once a second while anyone watches,
/// and sends each sample to the open admin streams. Runs until aborted.
pub async fn run(watch: Arc<Watch>, supervisor: Supervisor, hub: Arc<Hub>) {
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if !watch.watched(&hub) {
            continue;
        }
        let procs = supervisor.live_processes();
        let w = Arc::clone(&watch);
        let Ok(taken) = tokio::task::spawn_blocking(move || w.round(&procs, true, false)).await
        else {
            continue;
        };
        if hub.admin_connections() == 0 {
            continue;
        }
        for (p, process) in taken {
            let event = WorkerSampled {
                worker_id: p.worker_id,
                generation: p.generation,
                process,
            };
            if let Ok(data) = serde_json::to_string(&event) {
                hub.publish_ephemeral(Ephemeral {
                    kind: AdminStreamEvent::WORKER_SAMPLED,
                    data,
                });
            }
        }
    }
}
