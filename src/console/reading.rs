//! Why is it stuck: a turn's worker read in words, from its process truth (the gateway's
//! `/proc` sample), its heartbeat and its output: "alive, heartbeating, 0 % CPU, sleeping in a
//! network wait, no output for 41s", "spinning at 100 % CPU with no output for 30s", "stopped
//! (SIGSTOP …): it will not progress until continued".

use super::cells::span;
use crate::api::admin::{ProcessSample, ProcessState};

/// A heartbeat older than this no longer says the worker is alive.
const HEARTBEAT_FRESH_MS: i64 = 10_000;
/// Above this CPU (percent of a core) with no output, a worker is spinning.
const SPINNING: f64 = 50.0;

/// What is known of a dispatched turn's worker at `now` (epoch ms).
#[derive(Clone, Copy, Debug)]
pub struct Signs<'a> {
    /// Its process, as last sampled (`None`: not sampled, or not on Linux).
    pub process: Option<&'a ProcessSample>,
    /// Its last heartbeat.
    pub heartbeat_at: Option<i64>,
    /// The turn's last output or progress, else its dispatch.
    pub output_at: Option<i64>,
    /// The moment read at.
    pub now: i64,
}

/// The reading, one sentence.
pub fn reading(s: Signs<'_>) -> String {
    let quiet = s.output_at.map(|at| s.now - at);
    let quiet_text = quiet.map_or_else(
        || "no output yet".into(),
        |q| format!("no output for {}", span(q)),
    );
    if let Some(p) = s.process {
        match p.state {
            ProcessState::Stopped => {
                return "stopped (SIGSTOP or a debugger): it will not progress until continued \
                        (SIGCONT)"
                    .into();
            }
            ProcessState::Zombie | ProcessState::Dead => {
                return "its process has exited (a zombie not yet reaped): the gateway is about \
                        to end the turn"
                    .into();
            }
            _ if p.cpu_percent >= SPINNING && quiet.is_some_and(|q| q >= 5_000) => {
                return format!("spinning at {:.0} % CPU with {quiet_text}", p.cpu_percent);
            }
            _ => {}
        }
    }
    let alive = match s.heartbeat_at.map(|at| s.now - at) {
        Some(age) if age <= HEARTBEAT_FRESH_MS => "alive, heartbeating".to_owned(),
        Some(age) => format!("no heartbeat for {}", span(age)),
        None => "never heartbeated".to_owned(),
    };
    let doing = s.process.map(|p| {
        let cpu = format!("{:.0} % CPU", p.cpu_percent);
        match p.state {
            ProcessState::Sleeping | ProcessState::Idle => {
                let wait = p
                    .wchan
                    .as_deref()
                    .map_or_else(String::new, |w| format!(" in {}", wait_name(w)));
                format!("{cpu}, sleeping{wait}")
            }
            ProcessState::DiskWait => format!("{cpu}, in an uninterruptible (disk) wait"),
            ProcessState::Running => format!("{cpu}, running"),
            _ => cpu,
        }
    });
    match doing {
        Some(d) => format!("{alive}, {d}, {quiet_text}"),
        None => format!("{alive}, {quiet_text} (process not sampled)"),
    }
}

/// A kernel wait function as an operator reads it.
fn wait_name(wchan: &str) -> String {
    let what = match wchan {
        w if w.contains("epoll") || w.contains("poll") || w.contains("select") => {
            "a network or pipe wait"
        }
        w if w.contains("futex") => "a lock or condition wait",
        w if w.contains("nanosleep") || w.contains("hrtimer") => "a timer (sleep)",
        w if w.contains("pipe") || w.contains("read") => "a read",
        w if w.contains("wait") => "a wait for a child",
        _ => return wchan.to_owned(),
    };
    format!("{what} ({wchan})")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(state: ProcessState, cpu: f64, wchan: Option<&str>) -> ProcessSample {
        ProcessSample {
            sampled_at: 0,
            state,
            cpu_percent: cpu,
            rss_bytes: 1 << 20,
            threads: 1,
            fds: Some(4),
            children: Some(0),
            wchan: wchan.map(str::to_owned),
        }
    }

    fn read(p: Option<&ProcessSample>, heartbeat: Option<i64>, output: Option<i64>) -> String {
        reading(Signs {
            process: p,
            heartbeat_at: heartbeat,
            output_at: output,
            now: 100_000,
        })
    }

    #[test]
    fn every_reading_says_what_the_worker_is_doing() {
        let sleeping = sample(ProcessState::Sleeping, 0.0, Some("do_epoll_wait"));
        assert_eq!(
            read(Some(&sleeping), Some(99_800), Some(59_000)),
            "alive, heartbeating, 0 % CPU, sleeping in a network or pipe wait (do_epoll_wait), \
             no output for 41s"
        );
        let spinning = sample(ProcessState::Running, 99.6, None);
        assert_eq!(
            read(Some(&spinning), None, Some(70_000)),
            "spinning at 100 % CPU with no output for 30s"
        );
        let stopped = sample(ProcessState::Stopped, 0.0, None);
        assert!(read(Some(&stopped), Some(99_000), None).starts_with("stopped"));
        assert_eq!(
            read(None, Some(99_500), Some(70_000)),
            "alive, heartbeating, no output for 30s (process not sampled)"
        );
        assert_eq!(
            read(Some(&sleeping), None, Some(70_000)),
            "never heartbeated, 0 % CPU, sleeping in a network or pipe wait (do_epoll_wait), \
             no output for 30s"
        );
    }
}
