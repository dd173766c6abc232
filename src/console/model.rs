//! The console's copy of the gateway: workers, turns and the admin log, built from the admin
//! stream's `snapshot` and folded forward by each lifecycle event. Clocks are epoch ms.

use serde_json::Value;
use std::collections::{HashMap, VecDeque};

use crate::api::admin::{Snapshot, TurnInfo, WorkerInfo};
use crate::ids::{SessionId, TurnId, WorkerId};

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
    /// `starting`, `ready`, `busy`, `idle`, `exited`.
    pub state: String,
    /// Epoch ms.
    pub started_at: i64,
    /// The turn it holds.
    pub current_turn: Option<TurnId>,
    /// How this generation (if exited) or the previous one ended.
    pub last_exit: Option<Exit>,
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
    /// `queued`, `dispatched`, `streaming`, `completed`, `failed`.
    pub state: String,
    /// Its worker.
    pub worker: Option<WorkerId>,
    /// Epoch ms.
    pub created_at: i64,
    /// Epoch ms.
    pub last_progress_at: Option<i64>,
    /// Epoch ms.
    pub deadline_at: Option<i64>,
    /// Epoch ms.
    pub ended_at: Option<i64>,
    /// Failure code.
    pub code: Option<String>,
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

/// One line of the admin log.
#[derive(Clone, Debug, PartialEq)]
pub struct EventLine {
    /// Admin sequence number; `None` for the console's own notes (gaps, reconnects).
    pub seq: Option<i64>,
    /// Epoch ms.
    pub at: i64,
    /// Event name.
    pub kind: String,
    /// A one-line summary.
    pub text: String,
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
}

fn opt_ms(v: Option<&String>) -> Option<i64> {
    v.map(|s| ms(s))
}

impl Exit {
    /// How a worker generation from the admin API ended, if it has.
    pub fn of(w: &WorkerInfo) -> Option<Self> {
        w.exited_at.as_ref().map(|at| Self {
            generation: w.generation,
            code: w.exit_code,
            signal: w.signal.clone(),
            intentional: w.intentional.unwrap_or(false),
            reason: w.exit_reason.clone().unwrap_or_default(),
            at: ms(at),
        })
    }
}

/// Epoch ms of an RFC 3339 time (0 when unreadable).
pub fn ms(rfc3339: &str) -> i64 {
    crate::clock::from_rfc3339(rfc3339).unwrap_or(0)
}

fn worker_from(w: &WorkerInfo) -> Worker {
    let last_exit = Exit::of(w);
    Worker {
        id: w.worker_id.clone(),
        generation: w.generation,
        pid: w.pid,
        agent: w.agent_id.clone(),
        session: w.session_id.clone(),
        state: w.state.clone(),
        started_at: ms(&w.started_at),
        current_turn: w.current_turn_id.clone(),
        last_exit,
    }
}

fn turn_from(t: &TurnInfo) -> Turn {
    Turn {
        id: t.turn_id.clone(),
        session: t.session_id.clone(),
        agent: t.agent_id.clone(),
        state: t.state.clone(),
        worker: t.worker_id.clone(),
        created_at: ms(&t.created_at),
        last_progress_at: opt_ms(t.last_progress_at.as_ref()),
        deadline_at: opt_ms(t.deadline_at.as_ref()),
        ended_at: opt_ms(t.ended_at.as_ref()),
        code: t.code.clone(),
        error: t.error.clone(),
        stranded: t.stranded,
    }
}

fn s(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or_default().to_owned()
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
    pub fn note(&mut self, at: i64, kind: &str, text: String) {
        self.push_line(EventLine {
            seq: None,
            at,
            kind: kind.to_owned(),
            text,
        });
    }

    fn push_line(&mut self, line: EventLine) {
        if self.events.len() == EVENT_LINES {
            self.events.pop_front();
        }
        self.events.push_back(line);
    }

    /// Folds one admin event into the model.
    pub fn apply_event(&mut self, seq: i64, kind: &str, d: &Value) {
        if self.last_seq.is_some_and(|last| seq <= last) {
            return; // already applied (a resume can overlap a snapshot)
        }
        self.last_seq = Some(seq);
        let at = d["timestamp"].as_i64().unwrap_or_default();
        let text = summary(kind, d);
        self.push_line(EventLine {
            seq: Some(seq),
            at,
            kind: kind.to_owned(),
            text,
        });
        let turn_id = TurnId(s(d, "turnId"));
        let worker_id = WorkerId(s(d, "workerId"));
        match kind {
            "worker.spawned" => {
                let last_exit = self
                    .workers
                    .get(&worker_id)
                    .and_then(|w| w.last_exit.clone());
                self.workers.insert(
                    worker_id.clone(),
                    Worker {
                        id: worker_id,
                        generation: d["generation"].as_u64().unwrap_or_default() as u32,
                        pid: d["pid"].as_u64().unwrap_or_default() as u32,
                        agent: s(d, "agentId"),
                        session: SessionId(s(d, "sessionId")),
                        state: "starting".into(),
                        started_at: at,
                        current_turn: None,
                        last_exit,
                    },
                );
            }
            "worker.ready" => self.set_worker(&worker_id, |w| w.state = "idle".into()),
            "worker.exited" => {
                let exit = Exit {
                    generation: d["generation"].as_u64().unwrap_or_default() as u32,
                    code: d["exitCode"].as_i64().map(|c| c as i32),
                    signal: d["signal"].as_str().map(str::to_owned),
                    intentional: d["intentional"].as_bool().unwrap_or(false),
                    reason: s(d, "reason"),
                    at,
                };
                self.set_worker(&worker_id, |w| {
                    if w.generation == exit.generation {
                        w.state = "exited".into();
                        w.current_turn = None;
                    }
                    w.last_exit = Some(exit);
                });
                self.exited.push_back(worker_id);
                while self.exited.len() > EXITED_WORKERS {
                    if let Some(old) = self.exited.pop_front()
                        && self.workers.get(&old).is_some_and(|w| w.state == "exited")
                    {
                        self.workers.remove(&old);
                    }
                }
            }
            "turn.queued" => {
                self.turns.insert(
                    turn_id.clone(),
                    Turn {
                        id: turn_id,
                        session: SessionId(s(d, "sessionId")),
                        agent: s(d, "agentId"),
                        state: "queued".into(),
                        worker: None,
                        created_at: at,
                        last_progress_at: None,
                        deadline_at: None,
                        ended_at: None,
                        code: None,
                        error: None,
                        stranded: false,
                    },
                );
            }
            "turn.dispatched" => {
                self.set_turn(&turn_id, |t| {
                    t.state = "dispatched".into();
                    t.worker = Some(worker_id.clone());
                    t.last_progress_at = Some(at);
                    t.deadline_at = d["deadlineAt"].as_i64();
                });
                self.set_worker(&worker_id, |w| {
                    w.state = "busy".into();
                    w.current_turn = Some(turn_id.clone());
                });
            }
            "turn.progress" => self.set_turn(&turn_id, |t| {
                t.state = "streaming".into();
                t.last_progress_at = Some(at);
            }),
            "turn.stranded" => self.set_turn(&turn_id, |t| t.stranded = true),
            "turn.completed" | "turn.failed" => self.end_turn(&turn_id, kind, d, at),
            _ => {}
        }
    }

    fn end_turn(&mut self, turn_id: &TurnId, kind: &str, d: &Value, at: i64) {
        let mut worker = None;
        self.set_turn(turn_id, |t| {
            kind.trim_start_matches("turn.").clone_into(&mut t.state);
            t.ended_at = Some(at);
            t.code = d["code"].as_str().map(str::to_owned);
            t.error = d["error"].as_str().map(str::to_owned);
            worker.clone_from(&t.worker);
        });
        if let Some(w) = worker {
            self.set_worker(&w, |w| {
                if w.current_turn.as_ref() == Some(turn_id) {
                    w.current_turn = None;
                    if w.state == "busy" {
                        w.state = "idle".into();
                    }
                }
            });
        }
        self.ended.push_back(turn_id.clone());
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

/// `137 SIGKILL`, `1`, `0`: an exit as a shell shows it, with the signal decoded.
pub fn exit_text(code: Option<i32>, signal: Option<&str>) -> String {
    match (signal, code) {
        (Some(sig), _) => {
            let n = sig
                .parse::<nix::sys::signal::Signal>()
                .map_or(0, |s| s as i32);
            format!("{} {sig}", 128 + n)
        }
        (None, Some(c)) => c.to_string(),
        (None, None) => "?".into(),
    }
}

/// A one-line description of an admin event for the Events view.
pub fn summary(kind: &str, d: &Value) -> String {
    let g = |k: &str| d[k].as_str().unwrap_or("-").to_owned();
    match kind {
        "worker.spawned" => format!(
            "{} gen {} pid {} ({})",
            g("workerId"),
            d["generation"],
            d["pid"],
            g("agentId")
        ),
        "worker.ready" => format!("{} gen {} ready", g("workerId"), d["generation"]),
        "worker.exited" => {
            let exit = exit_text(
                d["exitCode"].as_i64().map(|c| c as i32),
                d["signal"].as_str(),
            );
            let intent = if d["intentional"] == true {
                "intentional"
            } else {
                "CRASH"
            };
            format!(
                "{} gen {} exit {} {intent} ({})",
                g("workerId"),
                d["generation"],
                exit,
                g("reason")
            )
        }
        "worker.output_rejected" => format!("{} {}: {}", g("workerId"), g("kind"), g("reason")),
        "turn.queued" => format!("{} queued ({})", g("turnId"), g("agentId")),
        "turn.dispatched" => format!(
            "{} → {} gen {}",
            g("turnId"),
            g("workerId"),
            d["generation"]
        ),
        "turn.progress" => format!("{} progress", g("turnId")),
        "turn.stranded" => format!("{} STRANDED ({})", g("turnId"), g("reason")),
        "turn.completed" => format!("{} completed", g("turnId")),
        "turn.failed" => format!("{} failed {}: {}", g("turnId"), g("code"), g("error")),
        "operator.action" => format!(
            "{} {} by {}: {}",
            g("action"),
            g("target"),
            g("token"),
            g("reason")
        ),
        _ => d.to_string(),
    }
}
