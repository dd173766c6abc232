//! How the actor reacts to its worker (lines and exit), to capacity and to its clocks.

use std::sync::Arc;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use super::{Actor, MAX_TEXT, Phase};
use crate::api::session::{self, Delta, StatusNote};
use crate::api::state::{ExitReason, RejectionKind};
use crate::api::{ErrorCode, FromWorker, SessionEvent, TurnEnding, WorkerState};
use crate::clock::now_ms;
use crate::store::{Change, Progress};
use crate::supervisor::QueuedTurn;
use crate::supervisor::process::{ExitInfo, WorkerEvent};
use crate::supervisor::stop::{StopHow, record_exit};

/// `turn.progress` admin events go out at most this often per turn.
const ANNOUNCE_EVERY: std::time::Duration = std::time::Duration::from_secs(1);
/// Heartbeats are written to the store at most this often.
const HEARTBEAT_WRITE_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

impl Actor {
    pub(super) async fn on_permit(&mut self, permit: Option<OwnedSemaphorePermit>) {
        if let Phase::WaitingCapacity { turn, .. } = self.take_phase() {
            match permit {
                Some(p) => self.spawn(turn, p).await,
                None => self.queue.push_front(turn),
            }
        }
    }

    pub(super) async fn on_timer(&mut self) {
        let now = Instant::now();
        if self.releasing.is_some_and(|until| now >= until) {
            self.drain_over().await;
            return;
        }
        let config = Arc::clone(&self.ctx.config); // a borrow that outlives `&mut self` calls
        let Some(agent) = config.agents.get(&self.agent_id) else {
            return;
        };
        let d = |d: std::time::Duration| humantime::format_duration(d).to_string();
        match self.take_phase() {
            Phase::WaitingCapacity { turn, until, .. } if now >= until => {
                let msg = format!(
                    "no worker capacity became free within {} (max_workers = {})",
                    d(agent.queue_timeout),
                    self.ctx.config.gateway.max_workers
                );
                self.end(&turn, TurnEnding::failed(ErrorCode::QueueTimeout, msg))
                    .await;
            }
            Phase::Starting { turn, until } if now >= until => {
                if let Some(turn) = turn {
                    let msg = format!(
                        "the worker did not report ready within {}",
                        d(agent.startup_timeout)
                    );
                    self.end(
                        &turn,
                        TurnEnding::failed(ErrorCode::WorkerStartupTimeout, msg),
                    )
                    .await;
                }
                self.stop_worker(StopHow::Graceful, ExitReason::StartupTimeout.to_string());
            }
            Phase::Busy {
                turn, deadline_at, ..
            } if now >= deadline_at => {
                let msg = format!(
                    "the turn ran past its {} deadline; the worker was stopped",
                    d(agent.deadline)
                );
                self.end(
                    &turn,
                    TurnEnding::failed(ErrorCode::TurnDeadlineExceeded, msg),
                )
                .await;
                self.finish_turn(&turn);
                self.stop_worker(
                    StopHow::Graceful,
                    ExitReason::TurnDeadlineExceeded.to_string(),
                );
            }
            Phase::Busy { turn, stall_at, .. } if now >= stall_at => {
                let msg = format!(
                    "the worker made no progress for {} (heartbeats do not count); it was stopped",
                    d(agent.stall_timeout)
                );
                self.end(&turn, TurnEnding::failed(ErrorCode::TurnStalled, msg))
                    .await;
                self.finish_turn(&turn);
                self.stop_worker(StopHow::Graceful, ExitReason::TurnStalled.to_string());
            }
            Phase::Idle { since } if now >= since + agent.idle_timeout => {
                if self.worker.is_some() {
                    self.stop_worker(StopHow::Graceful, ExitReason::IdleReap.to_string());
                } else if self.queue.is_empty() {
                    for cmd in self.retire(false) {
                        Box::pin(self.on_cmd(cmd)).await;
                    }
                }
            }
            other => self.phase = other,
        }
    }

    pub(super) async fn on_worker(&mut self, ev: Option<WorkerEvent>) {
        match ev {
            Some(WorkerEvent::Line(line)) => self.on_line(&line).await,
            Some(WorkerEvent::NotUtf8(line)) => {
                self.reject(None, RejectionKind::Rejected, "not valid UTF-8", &line);
            }
            Some(WorkerEvent::Oversize) => {
                let limit = self.ctx.config.gateway.max_line_bytes;
                if let Phase::Busy { turn, .. } = self.take_phase() {
                    let msg = format!(
                        "the worker wrote a line over the {limit}-byte limit; it was stopped"
                    );
                    self.end(
                        &turn,
                        TurnEnding::failed(ErrorCode::WorkerProtocolError, msg),
                    )
                    .await;
                    self.finish_turn(&turn);
                }
                self.reject(
                    None,
                    RejectionKind::Rejected,
                    "line over the size limit",
                    "",
                );
                self.stop_worker(StopHow::Kill, ExitReason::WorkerProtocolError.to_string());
            }
            Some(WorkerEvent::Exited(info)) => self.on_exit(info).await,
            None => {
                self.on_exit(ExitInfo {
                    code: None,
                    signal: None,
                })
                .await
            }
        }
    }

    async fn on_exit(&mut self, info: ExitInfo) {
        let seen = Instant::now();
        let Some(live) = self.worker.take() else {
            return;
        };
        let reason = if info.is_clean() {
            ExitReason::Exited
        } else {
            ExitReason::Crashed
        };
        record_exit(
            &self.ctx,
            (&self.worker_id, &self.fence),
            &live.proc,
            info,
            false,
            reason.to_string(),
        );
        let (turn, when) = match self.take_phase() {
            Phase::Busy { turn, .. } => (turn, "while handling the turn"),
            Phase::Starting {
                turn: Some(turn), ..
            } => (turn, "before it was ready"),
            other => {
                self.phase = other;
                return; // An idle worker's exit owes no stream anything.
            }
        };
        let code = if info.is_clean() {
            ErrorCode::WorkerExited
        } else {
            ErrorCode::WorkerCrashed
        };
        let msg = format!("the worker process {} {when}", info.describe());
        let ending = TurnEnding::failed(code, msg).with_exit(info.code, info.signal);
        if self.end(&turn, ending).await {
            self.ctx.metrics.crash_to_error.observe(seen.elapsed());
        }
    }

    async fn on_line(&mut self, line: &str) {
        let Ok(msg) = serde_json::from_str::<FromWorker>(line) else {
            self.reject(
                None,
                RejectionKind::Rejected,
                "not a protocol line (bad JSON or unknown type)",
                line,
            );
            return;
        };
        let Some(turn_id) = msg.turn_id().cloned() else {
            return self.on_lifecycle(&msg, line);
        };
        match &self.phase {
            Phase::Busy { turn, .. } if turn.turn_id == turn_id => self.on_turn_line(msg).await,
            _ if self
                .worker
                .as_ref()
                .is_some_and(|l| l.ended.contains(&turn_id)) =>
            {
                self.reject(
                    Some(turn_id),
                    RejectionKind::Late,
                    "its turn had already ended",
                    line,
                );
            }
            _ => self.reject(
                Some(turn_id),
                RejectionKind::Rejected,
                "names a turn this worker does not hold",
                line,
            ),
        }
    }

    fn on_lifecycle(&mut self, msg: &FromWorker, raw: &str) {
        let Some(live) = self.worker.as_mut() else {
            return;
        };
        match msg {
            FromWorker::Heartbeat => {
                let now = Instant::now();
                if live
                    .last_heartbeat_write
                    .is_none_or(|t| now >= t + HEARTBEAT_WRITE_EVERY)
                {
                    live.last_heartbeat_write = Some(now);
                    let generation = live.proc.generation;
                    self.send(Change::WorkerHeartbeat {
                        worker_id: self.worker_id.clone(),
                        generation,
                        at: now_ms(),
                    });
                }
            }
            FromWorker::Ready if !live.ready => {
                live.ready = true;
                self.worker_state(WorkerState::Ready, None);
                if let Phase::Starting { turn, .. } = self.take_phase()
                    && let Some(turn) = turn
                {
                    self.dispatch(turn);
                }
            }
            _ => self.reject(None, RejectionKind::Rejected, "unexpected line", raw),
        }
    }

    async fn on_turn_line(&mut self, msg: FromWorker) {
        match msg {
            FromWorker::Complete { final_text, .. } => {
                let Phase::Busy { text, produced, .. } = &self.phase else {
                    return;
                };
                let ending = completion(final_text, text, *produced);
                self.end_busy(ending).await;
            }
            FromWorker::Error { error, code, .. } => {
                let sentence = match code {
                    Some(c) => format!("{error} (worker code: {c})"),
                    None => error,
                };
                let ending = TurnEnding::failed(ErrorCode::AgentError, sentence);
                self.end_busy(ending).await;
            }
            FromWorker::Delta { .. } | FromWorker::Status { .. } => self.on_progress(msg),
            FromWorker::Ready | FromWorker::Heartbeat => {}
        }
    }

    /// A delta or a status note: logged as the turn's event; it restarts the stall clock.
    fn on_progress(&mut self, msg: FromWorker) {
        let Some(stall_timeout) = self.agent().map(|a| a.stall_timeout) else {
            return;
        };
        let generation = self.worker.as_ref().map_or(0, |l| l.proc.generation);
        let Phase::Busy {
            turn,
            started,
            stall_at,
            text,
            produced,
            announced,
            dispatch,
            ..
        } = &mut self.phase
        else {
            return;
        };
        let timestamp = now_ms();
        let Some(event) = progress_event(msg, turn, started.elapsed(), text, produced, timestamp)
        else {
            return;
        };
        let now = Instant::now();
        *stall_at = now + stall_timeout;
        let due = announced.is_none_or(|t| now >= t + ANNOUNCE_EVERY);
        if due {
            *announced = Some(now);
        }
        let progress = match (due, dispatch.is_some()) {
            (true, _) => Progress::Announce,
            (false, true) => Progress::Check,
            (false, false) => Progress::Append,
        };
        let event = Change::Event {
            session_id: self.session.clone(),
            turn_id: Some(turn.turn_id.clone()),
            kind: event.kind(),
            data: event.to_data(),
            at: timestamp,
            from: Some((self.worker_id.clone(), generation)),
            progress,
        };
        self.ctx.journal.send(event.fenced(&self.fence));
    }

    async fn end_busy(&mut self, ending: TurnEnding) {
        if let Phase::Busy { turn, .. } = self.take_phase() {
            self.end(&turn, ending).await;
            self.finish_turn(&turn);
        }
    }
}

/// How a `complete` ends the turn: with the worker's final text, else the text it streamed; a
/// turn that produced nothing at all fails, rather than completing with no reply.
fn completion(final_text: Option<String>, streamed: &str, produced: bool) -> TurnEnding {
    let final_text = final_text
        .filter(|t| !t.is_empty())
        .or_else(|| (!streamed.is_empty()).then(|| streamed.to_owned()));
    if final_text.is_some() || produced {
        TurnEnding::completed(final_text)
    } else {
        TurnEnding::failed(
            ErrorCode::AgentError,
            "the worker reported the turn complete without producing any text",
        )
    }
}

/// The session event for a delta or a status note of the busy `turn`; a delta's text is also
/// kept (up to [`MAX_TEXT`]) as the turn's reply so far.
fn progress_event(
    msg: FromWorker,
    turn: &QueuedTurn,
    elapsed: std::time::Duration,
    text: &mut String,
    produced: &mut bool,
    timestamp: i64,
) -> Option<SessionEvent> {
    let (message_id, turn_id) = (turn.message_id.clone(), turn.turn_id.clone());
    Some(match msg {
        FromWorker::Delta { content, .. } => {
            if text.len() + content.len() <= MAX_TEXT {
                text.push_str(&content);
            }
            *produced |= !content.is_empty();
            SessionEvent::Output(Delta {
                content,
                message_id,
                turn_id,
                timestamp,
            })
        }
        FromWorker::Status { state, .. } => SessionEvent::Status(StatusNote {
            status: session::Progress {
                state,
                elapsed_seconds: elapsed.as_secs(),
            },
            message_id,
            turn_id,
            timestamp,
        }),
        _ => return None,
    })
}
