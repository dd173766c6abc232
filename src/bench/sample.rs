//! `sample`: what watching costs. 1,000 live processes (`sleep`, standing in for idle workers)
//! are sampled from `/proc` once a second for 5 s, as the gateway does while an admin stream is
//! open, each sample encoded as its `worker.sampled` event; reported is this process's CPU time
//! over wall time, in percent of one core. The floor: the same rounds reading only each
//! process's `/proc/PID/stat` (the least any sampler reads).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::Figure;
use crate::api::lifecycle::WorkerSampled;
use crate::ids::WorkerId;
use crate::supervisor::procstat::{Sampler, children_files};

const PROCESSES: usize = 1000;
const ROUNDS: u32 = 5;
const EVERY: Duration = Duration::from_secs(1);

/// The stand-in workers; killed and reaped when dropped.
struct Stand(Vec<Child>);

impl Drop for Stand {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// This process's CPU seconds (user and system).
fn cpu_seconds() -> f64 {
    use nix::sys::resource::{UsageWho, getrusage};
    getrusage(UsageWho::RUSAGE_SELF).map_or(0.0, |u| {
        let t = |tv: nix::sys::time::TimeVal| tv.tv_sec() as f64 + tv.tv_usec() as f64 / 1e6;
        t(u.user_time()) + t(u.system_time())
    })
}

/// Runs `round` once every [`EVERY`], [`ROUNDS`] times; returns CPU % of one core over the
/// window and the slowest round.
async fn window(mut round: impl FnMut()) -> (f64, Duration) {
    let (cpu0, wall0) = (cpu_seconds(), Instant::now());
    let mut slowest = Duration::ZERO;
    let mut tick = tokio::time::interval(EVERY);
    for _ in 0..ROUNDS {
        tick.tick().await;
        let at = Instant::now();
        round();
        slowest = slowest.max(at.elapsed());
    }
    tick.tick().await; // the window ends a period after the last round began
    let (cpu, wall) = (cpu_seconds() - cpu0, wall0.elapsed().as_secs_f64());
    (100.0 * cpu / wall, slowest)
}

/// The sampler's cost for 1,000 live processes, in percent of one core.
pub async fn sampling_cost() -> anyhow::Result<Vec<Figure>> {
    let mut stand = Stand(Vec::with_capacity(PROCESSES));
    for _ in 0..PROCESSES {
        let child = Command::new("sleep")
            .arg("600")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()?;
        stand.0.push(child);
    }
    let pids: Vec<u32> = stand.0.iter().map(Child::id).collect();
    let slots: Vec<WorkerId> = (0..PROCESSES).map(|i| WorkerId(format!("w-{i}"))).collect();
    let mut seen = 0usize;
    let (floor, _) = window(|| {
        for pid in &pids {
            seen += std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(0, |s| s.len());
        }
    })
    .await;
    let mut sampler = Sampler::new();
    let mut taken = 0usize;
    let mut bytes = 0usize;
    let (value, slowest) = window(|| {
        sampler.forget_others(&pids);
        for (slot, s) in slots.iter().zip(sampler.sample_all(&pids, false)) {
            let Some(process) = s else { continue };
            taken += 1;
            let event = WorkerSampled {
                worker_id: slot.clone(),
                generation: 1,
                process,
            };
            bytes += serde_json::to_string(&event).map_or(0, |d| d.len());
        }
    })
    .await;
    drop(stand);
    anyhow::ensure!(seen > 0, "could not read /proc");
    let how = if children_files() {
        "children from /proc/PID/task/*/children"
    } else {
        "children by one scan of /proc per round (no CONFIG_PROC_CHILDREN)"
    };
    Ok(vec![Figure {
        name: "sample-1000-processes".into(),
        value,
        unit: "% core",
        floor: Some(floor),
        target: "< 2 % of a core",
        extra: format!(
            "{taken} samples in {ROUNDS} rounds ({} bytes of worker.sampled each), slowest \
             round {:.1} ms; {how}; floor: /proc/PID/stat only",
            bytes / taken.max(1),
            super::ms(slowest)
        ),
    }])
}
