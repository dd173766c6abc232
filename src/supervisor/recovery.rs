//! At start-up, the workers a previous run of the gateway left recorded as live. Each is
//! judged by where and when its process started ([`super::procinfo`]): one still running on
//! this host and boot with the same start time is that very worker (its gateway died without
//! stopping it), so its process group is `SIGKILL`ed (which also ends a `SIGSTOP`ped one); a
//! pid that is gone, or now another process (reused), is left alone. The store records what
//! really happened as the exit reason, seen in `worker.exited` and the admin worker views:
//!
//! | reason | meaning | `intentional` |
//! |---|---|---|
//! | `killed_at_recovery` | the worker was still running; the gateway killed its group | true |
//! | `gone_at_recovery` | no process with that pid and start time (exited, or host rebooted) | false |
//! | `gateway_restarted` | cannot be checked: another host's worker, or a row from before start times were recorded | false |

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::process::signal_group;
use super::procinfo;
use crate::api::state::ExitReason;
use crate::clock::now_ms;
use crate::ids::ReplicaId;
use crate::journal::Journal;
use crate::store::{Change, LiveWorker, Store, StoreError, WorkerExit};

/// What recovery found for one worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    Killed,
    Gone,
    Unverified,
}

impl Verdict {
    fn reason(self) -> ExitReason {
        match self {
            Self::Killed => ExitReason::KilledAtRecovery,
            Self::Gone => ExitReason::GoneAtRecovery,
            Self::Unverified => ExitReason::GatewayRestarted,
        }
    }
}

/// Closes the books on the workers the store records as live, killing those still running:
/// every one, or (`only`) those of the replicas named, known dead (a replica starting beside
/// live peers leaves theirs alone).
pub(crate) async fn recover_workers(
    store: &dyn Store,
    journal: &Journal,
    only: Option<&[ReplicaId]>,
) -> Result<(), StoreError> {
    for w in store.live_workers().await? {
        if let Some(dead) = only
            && !w.replica_id.as_ref().is_some_and(|r| dead.contains(r))
        {
            continue;
        }
        let verdict = judge(&w);
        tracing::warn!(worker = %w.worker_id, generation = w.generation, pid = ?w.pid,
            reason = %verdict.reason(), "a worker of a previous run, recovered");
        journal.send(Change::WorkerExited(WorkerExit {
            worker_id: w.worker_id,
            generation: w.generation,
            exit_code: None,
            signal: (verdict == Verdict::Killed).then_some(Signal::SIGKILL as i32),
            at: now_ms(),
            intentional: verdict == Verdict::Killed,
            reason: verdict.reason().to_string(),
            stderr_tail: String::new(),
        }));
    }
    Ok(())
}

/// Kills the worker's process group if its pid is still that worker's process, and what is
/// left of its group when the worker itself is gone.
fn judge(w: &LiveWorker) -> Verdict {
    let (Some(pid), Some(origin)) = (w.pid, &w.origin) else {
        return Verdict::Unverified;
    };
    let (host, boot) = procinfo::host();
    if pid <= 1 || pid == std::process::id() || origin.host != *host {
        return Verdict::Unverified;
    }
    if origin.boot_id != *boot {
        return Verdict::Gone;
    }
    match procinfo::start_ticks(pid) {
        // The same process, alive: its group (it leads one) and itself, should it have left
        // the group. A zombie (killed, not yet reaped) is not running: it is gone.
        Some(t) if t == origin.start_ticks && procinfo::is_running(pid) => {
            signal_group(pid, Signal::SIGKILL);
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
            Verdict::Killed
        }
        // Another process now has the pid: neither it nor its group is ours.
        Some(t) if t != origin.start_ticks => Verdict::Gone,
        // The worker is gone (or a zombie), but the kernel's kill-with-parent reached only the
        // worker: its own children may live on in its group. The kernel never hands out a pid
        // while a process group still carries it as its id, so whatever is in group `pid` now
        // is the worker's.
        _ => {
            if nix::sys::signal::killpg(Pid::from_raw(pid as i32), Signal::SIGKILL).is_ok() {
                tracing::warn!(pid, "killed what was left of a gone worker's process group");
            }
            Verdict::Gone
        }
    }
}
