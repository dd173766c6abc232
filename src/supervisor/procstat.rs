//! A process's truth from `/proc` (Linux): its scheduler state, CPU use over the interval
//! since it was last sampled, resident memory, threads, open descriptors, child processes and
//! the kernel function it sleeps in. Elsewhere nothing is read: every sample is `None` ("not
//! available").
//!
//! A [`Sampler`] owns what the CPU figure needs: the previous reading of each process, keyed
//! by pid and start time (so a reused pid starts afresh).

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;
use std::time::Instant;

use crate::api::admin::{ProcessSample, ProcessState};
use crate::clock::now_ms;

/// What one read of `/proc/PID/stat` says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stat {
    state: char,
    ppid: u32,
    /// User and system time, in clock ticks.
    cpu_ticks: u64,
    threads: u32,
    /// Clock ticks after boot at which it started.
    start_ticks: u64,
    rss_pages: u64,
}

/// Reads `/proc/PID/stat` text. The command name (field 2) may hold spaces and parentheses:
/// the fields are counted from the last `)`.
fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok());
    Some(Stat {
        state: f.first()?.chars().next()?,
        ppid: u32::try_from(num(1)?).ok()?,
        cpu_ticks: num(11)? + num(12)?,
        threads: u32::try_from(num(17)?).unwrap_or(u32::MAX),
        start_ticks: num(19)?,
        // Field 24 is signed; a negative count is nothing resident.
        rss_pages: f.get(21)?.parse::<i64>().ok()?.max(0).unsigned_abs(),
    })
}

/// A small `/proc` file's text, in as few system calls as may be: open, read, close (no size
/// query, which `/proc` cannot answer). A read that does not fill the buffer got all there is:
/// `/proc` files hand out their whole text to a read that has room for it.
fn read_proc(path: &str) -> Option<String> {
    use std::io::Read as _;
    let mut file = std::fs::File::open(path).ok()?;
    let mut buf = [0u8; 4096];
    let mut out = Vec::new();
    loop {
        let n = file.read(&mut buf).ok()?;
        out.extend_from_slice(&buf[..n]);
        if n < buf.len() {
            break;
        }
    }
    String::from_utf8(out).ok()
}

fn read_stat(pid: u32) -> Option<Stat> {
    parse_stat(&read_proc(&format!("/proc/{pid}/stat"))?)
}

/// Clock ticks per second and the page size, from `sysconf` (100 and 4096 if it cannot say).
fn units() -> (u64, u64) {
    use nix::unistd::{SysconfVar, sysconf};
    static UNITS: OnceLock<(u64, u64)> = OnceLock::new();
    *UNITS.get_or_init(|| {
        let get = |v, default: u64| {
            sysconf(v)
                .ok()
                .flatten()
                .and_then(|n| u64::try_from(n).ok())
                .filter(|n| *n > 0)
                .unwrap_or(default)
        };
        (
            get(SysconfVar::CLK_TCK, 100),
            get(SysconfVar::PAGE_SIZE, 4096),
        )
    })
}

/// Seconds since boot (`/proc/uptime`).
fn uptime_secs() -> Option<f64> {
    let text = read_proc("/proc/uptime")?;
    text.split_whitespace().next()?.parse().ok()
}

/// Whether this kernel has `/proc/PID/task/TID/children` (`CONFIG_PROC_CHILDREN`); without
/// it, children are counted by one scan of `/proc` per round.
pub fn children_files() -> bool {
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| {
        let me = std::process::id();
        std::path::Path::new(&format!("/proc/{me}/task/{me}/children")).exists()
    })
}

/// Direct children of `pid`, from its threads' `children` files (a process of one thread has
/// one, read without listing its threads).
fn children_from_files(pid: u32, threads: u32) -> u32 {
    let count = |text: String| text.split_whitespace().count();
    let n: usize = if threads == 1 {
        read_proc(&format!("/proc/{pid}/task/{pid}/children")).map_or(0, count)
    } else {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            return 0;
        };
        tasks
            .flatten()
            .filter_map(|t| read_proc(&t.path().join("children").to_string_lossy()))
            .map(count)
            .sum()
    };
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Direct children of each of `parents`, by one scan of every process's `stat`.
fn children_by_scan(parents: &HashSet<u32>) -> HashMap<u32, u32> {
    let mut out = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if let Some(stat) = read_stat(pid)
            && parents.contains(&stat.ppid)
        {
            *out.entry(stat.ppid).or_insert(0) += 1;
        }
    }
    out
}

/// Open descriptors, `None` when `/proc/PID/fd` cannot be read.
/// Linux 6.2 and later give the count as the directory's size (one `statx`); older ones say
/// 0, and the directory is listed.
fn count_fds(pid: u32) -> Option<u32> {
    let path = format!("/proc/{pid}/fd");
    let size = std::fs::metadata(&path).ok()?.len();
    let n = if size > 0 {
        usize::try_from(size).unwrap_or(usize::MAX)
    } else {
        std::fs::read_dir(&path).ok()?.count()
    };
    Some(u32::try_from(n).unwrap_or(u32::MAX))
}

/// The kernel function the process sleeps in, when the kernel says (`0` or empty: it does
/// not, or it is running).
fn wchan(pid: u32) -> Option<String> {
    let text = read_proc(&format!("/proc/{pid}/wchan"))?;
    let text = text.trim();
    (!text.is_empty() && text != "0").then(|| text.to_owned())
}

/// The previous reading of one process.
#[derive(Clone, Copy, Debug)]
struct Prev {
    start_ticks: u64,
    cpu_ticks: u64,
    at: Instant,
}

/// How much of a process to read.
#[derive(Clone, Copy)]
enum Depth<'a> {
    /// Its `stat` only: state, CPU, RSS, threads.
    Light,
    /// All of it; children from the scan's counts by parent when there was one.
    Full(Option<&'a HashMap<u32, u32>>),
}

/// Samples processes, remembering each one's previous reading for its CPU figure.
#[derive(Debug, Default)]
pub struct Sampler {
    prev: HashMap<u32, Prev>,
}

impl Sampler {
    /// A sampler that has seen nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Samples one process now, wholly (its descriptors, children and kernel wait too);
    /// `None` when it is gone or this is not Linux.
    pub fn sample(&mut self, pid: u32) -> Option<ProcessSample> {
        let children = if children_files() {
            None
        } else {
            Some(children_by_scan(&HashSet::from([pid])))
        };
        self.read(pid, Depth::Full(children.as_ref()))
    }

    /// Forgets every process but `live` (their previous readings).
    pub fn forget_others(&mut self, live: &[u32]) {
        let live: HashSet<u32> = live.iter().copied().collect();
        self.prev.retain(|pid, _| live.contains(pid));
    }

    /// Samples each of `pids` now (in order; `None` for one that is gone): wholly when `full`
    /// (children then counted by at most one scan of `/proc`), else only what `stat` says
    /// (state, CPU, RSS, threads): a third of the cost, what a once-a-second round over every
    /// worker can afford (`bench sample`).
    pub fn sample_all(&mut self, pids: &[u32], full: bool) -> Vec<Option<ProcessSample>> {
        if !cfg!(target_os = "linux") {
            return vec![None; pids.len()];
        }
        let wanted: HashSet<u32> = pids.iter().copied().collect();
        let children = (full && !children_files()).then(|| children_by_scan(&wanted));
        pids.iter()
            .map(|pid| {
                let depth = if full {
                    Depth::Full(children.as_ref())
                } else {
                    Depth::Light
                };
                self.read(*pid, depth)
            })
            .collect()
    }

    /// Reads one process: only its `stat` ([`Depth::Light`]), or wholly, its children from
    /// its threads' `children` files or from a scan's counts by parent.
    fn read(&mut self, pid: u32, depth: Depth<'_>) -> Option<ProcessSample> {
        if !cfg!(target_os = "linux") {
            return None;
        }
        let now = Instant::now();
        let stat = read_stat(pid)?;
        let (hz, page) = units();
        let cpu_percent = match self.prev.get(&pid) {
            Some(p) if p.start_ticks == stat.start_ticks => {
                let secs = now.duration_since(p.at).as_secs_f64();
                let used = stat.cpu_ticks.saturating_sub(p.cpu_ticks);
                percent(used, hz, secs)
            }
            // First sight of this process: its average since it started.
            _ => uptime_secs().map_or(0.0, |up| {
                percent(stat.cpu_ticks, hz, up - ticks_secs(stat.start_ticks, hz))
            }),
        };
        self.prev.insert(
            pid,
            Prev {
                start_ticks: stat.start_ticks,
                cpu_ticks: stat.cpu_ticks,
                at: now,
            },
        );
        let children = match depth {
            Depth::Light => None,
            Depth::Full(Some(by_parent)) => Some(by_parent.get(&pid).copied().unwrap_or(0)),
            Depth::Full(None) => Some(children_from_files(pid, stat.threads)),
        };
        let (fds, wchan) = match depth {
            Depth::Light => (None, None),
            Depth::Full(_) => (count_fds(pid), wchan(pid)),
        };
        Some(ProcessSample {
            sampled_at: now_ms(),
            state: ProcessState::from_letter(stat.state),
            cpu_percent,
            rss_bytes: stat.rss_pages.saturating_mul(page),
            threads: stat.threads,
            fds,
            children,
            wchan,
        })
    }
}

#[allow(
    clippy::cast_precision_loss,
    reason = "clock ticks stay far below 2^52 for any process lifetime"
)]
fn ticks_secs(ticks: u64, hz: u64) -> f64 {
    ticks as f64 / hz as f64
}

/// `used` ticks over `secs` seconds, in percent of one core (0 over no time), rounded to a
/// tenth.
fn percent(used: u64, hz: u64, secs: f64) -> f64 {
    if secs <= 0.0 {
        return 0.0;
    }
    (ticks_secs(used, hz) / secs * 1000.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_is_read_past_a_command_name_with_spaces_and_parens() {
        let text = "42 (a (b) c) S 7 42 42 0 -1 4194304 102 0 0 0 250 50 0 0 20 0 3 0 186510 \
                    3133440 416 18446744073709551615";
        let s = parse_stat(text).expect("a stat line");
        assert_eq!(
            s,
            Stat {
                state: 'S',
                ppid: 7,
                cpu_ticks: 300,
                threads: 3,
                start_ticks: 186_510,
                rss_pages: 416,
            }
        );
        assert_eq!(parse_stat("42 (x) S 7"), None);
    }

    #[test]
    fn letters_name_states() {
        assert_eq!(ProcessState::from_letter('t'), ProcessState::Stopped);
        assert_eq!(ProcessState::from_letter('T'), ProcessState::Stopped);
        assert_eq!(ProcessState::from_letter('D'), ProcessState::DiskWait);
        assert_eq!(ProcessState::from_letter('W'), ProcessState::Other);
        assert!((percent(150, 100, 1.5) - 100.0).abs() < f64::EPSILON);
        assert!(percent(5, 100, 0.0).abs() < f64::EPSILON);
    }

    #[test]
    fn this_process_samples_itself() {
        let mut s = Sampler::new();
        let me = std::process::id();
        let first = s.sample(me).expect("this process is in /proc");
        // The main thread (whose state this is) waits while the test thread runs.
        assert_ne!(first.state, ProcessState::Other);
        assert!(first.threads >= 1);
        assert!(first.rss_bytes > 0);
        assert!(first.fds.is_some_and(|n| n >= 3));
        let child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let again = s.sample_all(&[me, u32::MAX], true);
        s.forget_others(&[]);
        assert!(s.prev.is_empty());
        let mut child = child;
        let _ = child.kill();
        let _ = child.wait();
        assert!(again[0].as_ref().is_some_and(|p| p.children >= Some(1)));
        let light = s.sample_all(&[me], false);
        assert!(
            light[0]
                .as_ref()
                .is_some_and(|p| p.children.is_none() && p.wchan.is_none() && p.fds.is_none())
        );
        assert!(again[1].is_none());
    }
}
