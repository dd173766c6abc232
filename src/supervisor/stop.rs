//! Stopping a worker on purpose, in the background: `shutdown` (or SIGKILL for an operator
//! kill), then SIGTERM after the grace period, then SIGKILL, until it exits. The exit is
//! recorded as intentional, with the reason.

use nix::sys::signal::Signal;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::{Instant, sleep_until};

use super::Ctx;
use super::process::{ExitInfo, Process, WorkerEvent, signal_group};
use crate::api::state::RejectionKind;
use crate::api::{FromWorker, ToWorker};
use crate::clock::now_ms;
use crate::ids::WorkerId;
use crate::store::{Change, Fence, Rejection, WorkerExit};

/// How to begin a stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopHow {
    /// Ask with a `shutdown` line, then escalate.
    Graceful,
    /// SIGKILL the group at once (operator kill, protocol violation).
    Kill,
}

/// Stops the process and records its exit; returns once it has exited.
pub async fn stop(
    ctx: Arc<Ctx>,
    (worker, fence): (WorkerId, Fence),
    mut proc: Process,
    how: StopHow,
    reason: String,
) {
    let grace = ctx.config.gateway.stop_grace.max(Duration::from_millis(10));
    match how {
        StopHow::Graceful => proc.send(&ToWorker::Shutdown),
        StopHow::Kill => proc.signal(Signal::SIGKILL),
    }
    let mut escalations = [Signal::SIGTERM, Signal::SIGKILL].into_iter();
    let mut until = Instant::now() + grace;
    loop {
        tokio::select! {
            ev = proc.events.recv() => match ev {
                // Liveness lines are no output; anything else arriving now is too late.
                Some(WorkerEvent::Line(line)) if is_liveness(&line) => {}
                Some(WorkerEvent::Line(line) | WorkerEvent::NotUtf8(line)) => ctx.journal.send(Change::Reject(Rejection {
                    worker_id: worker.clone(),
                    generation: proc.generation,
                    turn_id: None,
                    kind: RejectionKind::Late,
                    reason: "the worker was being stopped".into(),
                    line: clip(&line),
                    at: now_ms(),
                })),
                Some(WorkerEvent::Oversize) => {}
                Some(WorkerEvent::Exited(info)) => {
                    record_exit(&ctx, (&worker, &fence), &proc, info, true, reason);
                    return;
                }
                None => {
                    record_exit(&ctx, (&worker, &fence), &proc, ExitInfo { code: None, signal: None }, true, reason);
                    return;
                }
            },
            () = sleep_until(until) => {
                let signal = escalations.next().unwrap_or(Signal::SIGKILL);
                tracing::info!(%worker, pid = proc.pid, %signal, "worker did not stop in time; escalating");
                proc.signal(signal);
                until = Instant::now() + grace;
            }
        }
    }
}

/// Records a worker's exit and kills whatever it left behind in its process group.
pub fn record_exit(
    ctx: &Ctx,
    (worker, fence): (&WorkerId, &Fence),
    proc: &Process,
    info: ExitInfo,
    intentional: bool,
    reason: String,
) {
    signal_group(proc.pid, Signal::SIGKILL);
    tracing::info!(%worker, generation = proc.generation, pid = proc.pid, code = ?info.code,
        signal = ?info.signal, intentional, %reason, "worker exited");
    let exit = Change::WorkerExited(WorkerExit {
        worker_id: worker.clone(),
        generation: proc.generation,
        exit_code: info.code,
        signal: info.signal,
        at: now_ms(),
        intentional,
        reason,
        stderr_tail: proc.stderr_tail(),
    });
    ctx.journal.send(exit.fenced(fence));
}

fn is_liveness(line: &str) -> bool {
    matches!(
        serde_json::from_str::<FromWorker>(line),
        Ok(FromWorker::Heartbeat | FromWorker::Ready)
    )
}

/// Cuts a rejected line to what is worth keeping.
pub fn clip(line: &str) -> String {
    const KEEP: usize = 4096;
    if line.len() <= KEEP {
        return line.to_owned();
    }
    let mut end = KEEP;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &line[..end], line.len())
}
