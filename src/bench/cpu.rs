//! Where the CPU went during a throughput window, read from `/proc` (Linux): the replicas, their
//! workers (their children), the `PostgreSQL` server (every `postgres` process, so others' work
//! on it counts too), this process (the clients) and the whole machine. A coarse profile that
//! says which part a miss is spent in; `perf` tells the rest.

use std::collections::HashMap;

/// CPU ticks by part at one moment.
#[derive(Clone, Debug, Default)]
pub struct Ticks {
    replicas: u64,
    workers: u64,
    postgres: u64,
    client: u64,
    machine: u64,
}

/// (comm, ppid, utime + stime) of a process.
fn stat(process: u32) -> Option<(String, u32, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{process}/stat")).ok()?;
    // `pid (comm) state ppid ...`: comm may hold spaces and parentheses; it ends at the last `)`.
    let (head, rest) = text.rsplit_once(')')?;
    let comm = head.split_once('(')?.1.to_owned();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After comm: state(0) ppid(1) ... utime(11) stime(12).
    let ppid = fields.get(1)?.parse().ok()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((comm, ppid, utime + stime))
}

/// The machine's busy ticks over all cores (`/proc/stat`, idle and iowait left out).
fn machine() -> u64 {
    let Ok(text) = std::fs::read_to_string("/proc/stat") else {
        return 0;
    };
    let Some(cpu) = text.lines().next() else {
        return 0;
    };
    cpu.split_whitespace()
        .skip(1)
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4) // idle, iowait
        .filter_map(|(_, v)| v.parse::<u64>().ok())
        .sum()
}

impl Ticks {
    /// Now, for these replica processes.
    pub fn now(replicas: &[u32]) -> Self {
        let me = std::process::id();
        let mut t = Self {
            machine: machine(),
            ..Self::default()
        };
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return t;
        };
        let procs: HashMap<u32, (String, u32, u64)> = dir
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .filter_map(|pid| Some((pid, stat(pid)?)))
            .collect();
        for (pid, (comm, ppid, ticks)) in &procs {
            if *pid == me {
                t.client += ticks;
            } else if replicas.contains(pid) {
                t.replicas += ticks;
            } else if replicas.contains(ppid) {
                t.workers += ticks;
            } else if comm == "postgres" {
                t.postgres += ticks;
            }
        }
        t
    }

    /// CPU ms per turn by part from `self` to `later`, in words.
    pub fn per_turn(&self, later: &Self, turns: u64) -> String {
        // The kernel counts in USER_HZ, 100 per second on every Linux this runs on.
        let ms = |a: u64, b: u64| (b.saturating_sub(a)) as f64 * 10.0 / turns.max(1) as f64;
        format!(
            "CPU ms per turn: replicas {:.2}, workers {:.2}, postgres {:.2}, clients {:.2}, machine {:.2}",
            ms(self.replicas, later.replicas),
            ms(self.workers, later.workers),
            ms(self.postgres, later.postgres),
            ms(self.client, later.client),
            ms(self.machine, later.machine),
        )
    }
}
