//! The cluster: the gateway replicas sharing the store, as `GET /api/v1/admin/replicas` lists
//! them. The admin stream does not carry replicas (a heartbeat every lease / 3 is not an event),
//! so this feature polls: [`Cluster::ask`] on a tick when a poll is due, [`Cluster::on_answer`]
//! when it comes back. It also places workers on their replica where the stream did not say
//! (a `worker.spawned` names none): while a live worker's replica is unknown, a poll also reads
//! the live workers list.
//!
//! Ages and countdowns are the console's clock against the gateway's timestamps; whether a
//! replica is lost is the gateway's word (`state`), never judged here.

use std::collections::HashMap;

use super::model::Model;
use super::msg::{Effect, ReplicaPoll};
use crate::api::admin::ReplicaInfo;
use crate::api::state::ReplicaState;
use crate::ids::ReplicaId;

/// Between two polls. The default lease is 5 s: a lost replica shows within about this much
/// of the gateway judging it lost.
pub const POLL_MS: i64 = 2_000;
/// After a failed poll (an older gateway without the route, a refused token), ask less often.
pub const RETRY_MS: i64 = 10_000;
/// A poll unanswered this long is given up: the next one may go.
pub const TIMEOUT_MS: i64 = 10_000;

/// Where the poll is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Poll {
    /// Ask at this time (epoch ms).
    Due(i64),
    /// Asked at this time; waiting for the answer.
    Asked(i64),
}

/// Replicas by state, for the header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplicaCounts {
    /// Holding their lease.
    pub live: usize,
    /// Stopping gracefully.
    pub stopping: usize,
    /// Lease run out without a clean stop.
    pub lost: usize,
}

/// The Replicas view's sub-state.
#[derive(Clone, Debug)]
pub struct Cluster {
    /// The replicas as last listed, oldest first.
    pub replicas: Vec<ReplicaInfo>,
    /// When that list arrived (epoch ms); `None` before the first answer.
    pub as_of: Option<i64>,
    /// Why the last poll failed, if it did.
    pub error: Option<String>,
    /// The next poll.
    pub poll: Poll,
    /// What each replica is called on screen: its name, or its name and short id where names
    /// repeat (a restarted replica keeps its name under a new id).
    labels: HashMap<ReplicaId, String>,
}

impl Cluster {
    /// Nothing known yet; the first poll is due at `now`.
    pub fn new(now: i64) -> Self {
        Self {
            replicas: Vec::new(),
            as_of: None,
            error: None,
            poll: Poll::Due(now),
            labels: HashMap::new(),
        }
    }

    /// When the runner must wake for the poll (epoch ms).
    pub fn next_poll_at(&self) -> i64 {
        match self.poll {
            Poll::Due(at) => at,
            Poll::Asked(at) => at + TIMEOUT_MS,
        }
    }

    /// The poll's effect, if one is due at `now`; it also reads the live workers while one of
    /// the model's live workers has no known replica.
    pub fn ask(&mut self, now: i64, model: &Model) -> Option<Effect> {
        if now < self.next_poll_at() {
            return None;
        }
        self.poll = Poll::Asked(now);
        // Live workers' heartbeats (and where unplaced ones run) come with the workers list.
        let workers = model.workers.values().any(|w| w.state.is_live());
        Some(Effect::LoadReplicas { workers })
    }

    /// Takes a poll's answer; returns whether anything shown outside the Replicas view changed
    /// (a state, a name, a count, a worker placed, the error), so a heartbeat alone does not
    /// redraw an idle screen.
    pub fn on_answer(
        &mut self,
        now: i64,
        answer: Result<Box<ReplicaPoll>, String>,
        model: &mut Model,
    ) -> bool {
        let poll = match answer {
            Ok(p) => p,
            Err(e) => {
                self.poll = Poll::Due(now + RETRY_MS);
                let changed = self.error.as_ref() != Some(&e);
                self.error = Some(e);
                return changed;
            }
        };
        self.poll = Poll::Due(now + POLL_MS);
        let key = |r: &ReplicaInfo| {
            (
                r.replica_id.clone(),
                r.name.clone(),
                r.state,
                r.workers,
                r.sessions,
            )
        };
        let mut changed = self.error.take().is_some()
            || self.as_of.is_none()
            || !self
                .replicas
                .iter()
                .map(key)
                .eq(poll.replicas.iter().map(key));
        self.replicas = poll.replicas;
        self.as_of = Some(now);
        self.labels = labels(&self.replicas);
        if poll.failed_recently.is_some() && model.failed_recently != poll.failed_recently {
            model.failed_recently = poll.failed_recently;
            changed = true;
        }
        for w in poll.workers.iter().flatten() {
            let Some(m) = model.workers.get_mut(&w.worker_id) else {
                continue;
            };
            if m.generation != w.generation {
                continue;
            }
            if m.replica.is_none() {
                m.replica = Some(w.replica_id.clone());
                changed = true;
            }
            if m.last_heartbeat_at != w.last_heartbeat_at {
                m.last_heartbeat_at = w.last_heartbeat_at;
                changed = true;
            }
            if w.process.is_some() && m.process != w.process {
                m.process.clone_from(&w.process);
                changed = true;
            }
        }
        changed
    }

    /// How a replica is shown: its name (with its short id where names repeat), else its
    /// short id (one no longer listed: it stopped cleanly).
    pub fn label(&self, id: &ReplicaId) -> String {
        self.labels.get(id).cloned().unwrap_or_else(|| short_id(id))
    }

    /// A listed replica.
    pub fn get(&self, id: &ReplicaId) -> Option<&ReplicaInfo> {
        self.replicas.iter().find(|r| r.replica_id == *id)
    }

    /// Replicas by state; `None` before the first answer.
    pub fn counts(&self) -> Option<ReplicaCounts> {
        self.as_of?;
        let mut c = ReplicaCounts::default();
        for r in &self.replicas {
            match r.state {
                ReplicaState::Live => c.live += 1,
                ReplicaState::Stopping => c.stopping += 1,
                ReplicaState::Lost => c.lost += 1,
            }
        }
        Some(c)
    }
}

/// `r-1a2b3c4d`: the prefix and 8 hex digits, enough to tell a handful of replicas apart.
pub fn short_id(id: &ReplicaId) -> String {
    id.as_str().chars().take(10).collect()
}

fn labels(replicas: &[ReplicaInfo]) -> HashMap<ReplicaId, String> {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for r in replicas {
        *seen.entry(r.name.as_str()).or_default() += 1;
    }
    replicas
        .iter()
        .map(|r| {
            let label = if r.name.is_empty() {
                short_id(&r.replica_id)
            } else if seen[r.name.as_str()] > 1 {
                let hex = r.replica_id.as_str().trim_start_matches("r-");
                format!("{}/{}", r.name, hex.chars().take(6).collect::<String>())
            } else {
                r.name.clone()
            };
            (r.replica_id.clone(), label)
        })
        .collect()
}
