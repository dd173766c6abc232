//! The console's copy of the gateway: workers, turns and the admin log, built from the admin
//! stream's `snapshot` and folded forward by each lifecycle event. Clocks are epoch ms.

mod lines;

use std::collections::{HashMap, VecDeque};

use crate::api::admin::{Snapshot, TurnInfo, WorkerInfo};
use crate::api::lifecycle::{TurnEnded, WorkerExited};
use crate::api::state::ExitReason;
use crate::api::{AdminEvent, ErrorCode, TurnState, WorkerState};
use crate::ids::{ReplicaId, SessionId, TurnId, WorkerId};
use lines::tone;
pub use lines::{EventLine, Note, Tone, exit_text, summary};

/// Admin log lines kept for the Events view.
pub const EVENT_LINES: usize = 5000;
/// Ended turns kept (the newest); older ones are dropped from the model.
pub const ENDED_TURNS: usize = 2000;
/// Exited worker slots kept (the newest).
pub const EXITED_WORKERS: usize = 1000;

/// One worker slot, as of its newest generation.
#[derive(Clone, Debug, PartialEq)]
pub struct Worker {
    /// Slot id.
    pub id: WorkerId,
    /// Newest generation.
    pub generation: u32,
    /// Its pid.
    pub pid: u32,
    /// Agent.
    pub agent: String,
    /// Session.
    pub session: SessionId,
    /// Its state.
    pub state: WorkerState,
    /// Epoch ms.
    pub started_at: i64,
    /// The turn it holds.
    pub current_turn: Option<TurnId>,
    /// How this generation (if exited) or the previous one ended.
    pub last_exit: Option<Exit>,
    /// The replica that runs it, once known (a snapshot says; `worker.spawned` does not).
    pub replica: Option<ReplicaId>,
    /// Its last heartbeat (epoch ms), as the workers list last said.
    pub last_heartbeat_at: Option<i64>,
    /// What its process was last seen doing (a sample of the replica that runs it).
    pub process: Option<crate::api::admin::ProcessSample>,
}

/// How a worker process ended.
#[derive(Clone, Debug, PartialEq)]
pub struct Exit {
    /// Generation that exited.
    pub generation: u32,
    /// Exit code.
    pub code: Option<i32>,
    /// Signal name.
    pub signal: Option<String>,
    /// Stopped on purpose.
    pub intentional: bool,
    /// Why.
    pub reason: String,
    /// Epoch ms.
    pub at: i64,
}

impl Exit {
    /// Whether the process ended on its own, and someone saw it: not stopped on purpose, and
    /// not found gone (or unverifiable) when a gateway restarted.
    pub fn is_crash(&self) -> bool {
        !self.intentional && !ExitReason::of(&self.reason).is_some_and(ExitReason::is_recovery)
    }

    /// `137 SIGKILL`, `1`, `0`: the shell's number with the signal decoded.
    pub fn describe(&self) -> String {
        exit_text(self.code, self.signal.as_deref())
    }
}

/// One turn.
#[derive(Clone, Debug, PartialEq)]
pub struct Turn {
    /// Turn id.
    pub id: TurnId,
    /// Session.
    pub session: SessionId,
    /// Agent.
    pub agent: String,
    /// Its state.
    pub state: TurnState,
    /// Its worker.
    pub worker: Option<WorkerId>,
    /// Epoch ms.
    pub created_at: i64,
    /// Epoch ms.
    pub last_progress_at: Option<i64>,
    /// Epoch ms.
    pub deadline_at: Option<i64>,
    /// The agent's stall timeout (ms), once dispatched (from gateways that say it).
    pub stall_ms: Option<i64>,
    /// Epoch ms.
    pub ended_at: Option<i64>,
    /// Failure code.
    pub code: Option<ErrorCode>,
    /// Failure sentence.
    pub error: Option<String>,
    /// The gateway reported it stranded.
    pub stranded: bool,
}

impl Turn {
    /// Still owed its terminal event.
    pub fn is_open(&self) -> bool {
        self.ended_at.is_none()
    }
}

/// Everything the console knows about the gateway.
#[derive(Clone, Debug, Default)]
pub struct Model {
    /// Worker slots.
    pub workers: HashMap<WorkerId, Worker>,
    /// Turns: all open ones and the newest ended ones.
    pub turns: HashMap<TurnId, Turn>,
    /// The admin log, oldest first.
    pub events: VecDeque<EventLine>,
    /// The last admin event id applied.
    pub last_seq: Option<i64>,
    ended: VecDeque<TurnId>,
    exited: VecDeque<WorkerId>,
    /// The gateway's failed turns by code over its recent window (seconds), as last polled.
    pub failed_recently: Option<(std::collections::BTreeMap<ErrorCode, i64>, u64)>,
}

impl Exit {
    /// How a worker generation from the admin API ended, if it has.
    pub fn of(w: &WorkerInfo) -> Option<Self> {
        w.exited_at.map(|at| Self {
            generation: w.generation,
            code: w.exit_code,
            signal: w.signal.clone(),
            intentional: w.intentional.unwrap_or(false),
            reason: w.exit_reason.clone().unwrap_or_default(),
            at,
        })
    }

    /// How a worker generation ended, from its `worker.exited` event.
    fn from_event(e: &WorkerExited) -> Self {
        Self {
            generation: e.generation,
            code: e.exit_code,
            signal: e.signal.clone(),
            intentional: e.intentional,
            reason: e.reason.clone(),
            at: e.timestamp,
        }
    }
}

fn worker_from(w: &WorkerInfo) -> Worker {
    let last_exit = Exit::of(w);
    Worker {
        id: w.worker_id.clone(),
        generation: w.generation,
        pid: w.pid,
        agent: w.agent_id.clone(),
        session: w.session_id.clone(),
        state: w.state,
        started_at: w.started_at,
        current_turn: w.current_turn_id.clone(),
        last_exit,
        replica: Some(w.replica_id.clone()),
        last_heartbeat_at: w.last_heartbeat_at,
        process: w.process.clone(),
    }
}

fn turn_from(t: &TurnInfo) -> Turn {
    Turn {
        id: t.turn_id.clone(),
        session: t.session_id.clone(),
        agent: t.agent_id.clone(),
        state: t.state,
        worker: t.worker_id.clone(),
        created_at: t.created_at,
        last_progress_at: t.last_progress_at,
        deadline_at: t.deadline_at,
        stall_ms: t.stall_ms,
        ended_at: t.ended_at,
        code: t.code,
        error: t.error.clone(),
        stranded: t.stranded,
    }
}

impl Model {
    /// Replaces everything with a snapshot taken at admin sequence `seq`.
    pub fn apply_snapshot(&mut self, snap: &Snapshot, seq: i64) {
        self.workers = snap
            .workers
            .iter()
            .map(|w| (w.worker_id.clone(), worker_from(w)))
            .collect();
        self.turns = snap
            .turns
            .iter()
            .map(|t| (t.turn_id.clone(), turn_from(t)))
            .collect();
        self.ended.clear();
        self.exited.clear();
        self.last_seq = Some(seq);
    }

    /// Adds a line of the console's own to the log.
    pub fn note(&mut self, at: i64, note: Note, text: String) {
        self.push_line(EventLine {
            seq: None,
            at,
            kind: note.as_str().to_owned(),
            text,
            tone: if note == Note::Gap {
                Tone::Warn
            } else {
                Tone::Plain
            },
            turn: None,
            worker: None,
        });
    }

    fn push_line(&mut self, line: EventLine) {
        if self.events.len() == EVENT_LINES {
            self.events.pop_front();
        }
        self.events.push_back(line);
    }

    /// Logs an admin event this version cannot read (a newer gateway's), so the log shows it
    /// and the cursor stays where the gateway is.
    pub fn apply_unreadable(&mut self, seq: i64, kind: String, why: &str) {
        if self.last_seq.is_some_and(|last| seq <= last) {
            return;
        }
        self.last_seq = Some(seq);
        self.push_line(EventLine {
            seq: Some(seq),
            at: self.events.back().map_or(0, |e| e.at),
            kind,
            text: format!("(not readable by this console: {why})"),
            tone: Tone::Warn,
            turn: None,
            worker: None,
        });
    }

    /// Folds one admin event into the model.
    pub fn apply_event(&mut self, seq: i64, event: &AdminEvent) {
        if self.last_seq.is_some_and(|last| seq <= last) {
            return; // already applied (a resume can overlap a snapshot)
        }
        self.last_seq = Some(seq);
        let at = event.timestamp();
        let mut text = summary(event);
        if let AdminEvent::WorkerExited(e) = event
            && let Some(w) = self.workers.get(&e.worker_id)
        {
            // Which agent died is the first thing asked of a crash.
            text = format!("{text} agent {}", w.agent);
        }
        self.push_line(EventLine {
            seq: Some(seq),
            at,
            kind: event.kind().to_owned(),
            text,
            tone: tone(event),
            turn: event.turn_id().cloned(),
            worker: event.worker_id().cloned(),
        });
        match event {
            AdminEvent::WorkerSpawned(e) => {
                let last_exit = self
                    .workers
                    .get(&e.worker_id)
                    .and_then(|w| w.last_exit.clone());
                let worker = Worker {
                    id: e.worker_id.clone(),
                    generation: e.generation,
                    pid: e.pid,
                    agent: e.agent_id.clone(),
                    session: e.session_id.clone(),
                    state: WorkerState::Starting,
                    started_at: at,
                    current_turn: None,
                    last_exit,
                    replica: e.replica_id.clone(),
                    last_heartbeat_at: None,
                    process: None,
                };
                self.workers.insert(e.worker_id.clone(), worker);
            }
            AdminEvent::WorkerReady(e) => {
                self.set_worker(&e.worker_id, |w| w.state = WorkerState::Ready);
            }
            AdminEvent::WorkerExited(e) => self.worker_exited(e),
            AdminEvent::TurnQueued(e) => {
                let turn = Turn {
                    id: e.turn_id.clone(),
                    session: e.session_id.clone(),
                    agent: e.agent_id.clone(),
                    state: TurnState::Queued,
                    worker: None,
                    created_at: at,
                    last_progress_at: None,
                    deadline_at: None,
                    stall_ms: None,
                    ended_at: None,
                    code: None,
                    error: None,
                    stranded: false,
                };
                self.turns.insert(e.turn_id.clone(), turn);
            }
            AdminEvent::TurnDispatched(e) => {
                self.set_turn(&e.turn_id, |t| {
                    t.state = TurnState::Dispatched;
                    t.worker = Some(e.worker_id.clone());
                    t.last_progress_at = Some(at);
                    t.deadline_at = Some(e.deadline_at);
                    t.stall_ms = e.stall_ms;
                });
                self.set_worker(&e.worker_id, |w| {
                    w.state = WorkerState::Busy;
                    w.current_turn = Some(e.turn_id.clone());
                });
            }
            AdminEvent::TurnProgress(e) => self.set_turn(&e.turn_id, |t| {
                t.state = TurnState::Streaming;
                t.last_progress_at = Some(at);
            }),
            AdminEvent::TurnStranded(e) => self.set_turn(&e.turn_id, |t| t.stranded = true),
            AdminEvent::TurnCompleted(e) => self.end_turn(e, TurnState::Completed),
            AdminEvent::TurnFailed(e) => self.end_turn(e, TurnState::Failed),
            AdminEvent::OutputRejected(_) | AdminEvent::OperatorAction(_) => {}
        }
    }

    fn worker_exited(&mut self, e: &WorkerExited) {
        let exit = Exit::from_event(e);
        self.set_worker(&e.worker_id, |w| {
            if w.generation == exit.generation {
                w.state = WorkerState::Exited;
                w.current_turn = None;
            }
            w.last_exit = Some(exit);
        });
        self.exited.push_back(e.worker_id.clone());
        while self.exited.len() > EXITED_WORKERS {
            if let Some(old) = self.exited.pop_front()
                && self
                    .workers
                    .get(&old)
                    .is_some_and(|w| w.state == WorkerState::Exited)
            {
                self.workers.remove(&old);
            }
        }
    }

    fn end_turn(&mut self, e: &TurnEnded, state: TurnState) {
        let mut worker = None;
        self.set_turn(&e.turn_id, |t| {
            t.state = state;
            t.ended_at = Some(e.timestamp);
            t.code = e.code;
            t.error.clone_from(&e.error);
            worker.clone_from(&t.worker);
        });
        if let Some(w) = worker {
            self.set_worker(&w, |w| {
                if w.current_turn.as_ref() == Some(&e.turn_id) {
                    w.current_turn = None;
                    if w.state == WorkerState::Busy {
                        w.state = WorkerState::Idle;
                    }
                }
            });
        }
        self.ended.push_back(e.turn_id.clone());
        while self.ended.len() > ENDED_TURNS {
            if let Some(old) = self.ended.pop_front() {
                self.turns.remove(&old);
            }
        }
    }

    fn set_worker(&mut self, id: &WorkerId, f: impl FnOnce(&mut Worker)) {
        if let Some(w) = self.workers.get_mut(id) {
            f(w);
        }
    }

    fn set_turn(&mut self, id: &TurnId, f: impl FnOnce(&mut Turn)) {
        if let Some(t) = self.turns.get_mut(id) {
            f(t);
        }
    }

    /// Open turns the gateway reported stranded.
    pub fn stranded_count(&self) -> usize {
        self.turns
            .values()
            .filter(|t| t.is_open() && t.stranded)
            .count()
    }
}
