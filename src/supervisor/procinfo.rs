//! Telling one process from another across a gateway restart. A pid is reused; the triple
//! (host and boot, pid, start time) is not: the kernel counts a process's start time in clock
//! ticks since boot (field 22 of `/proc/PID/stat`), so two processes that held the same pid in
//! one boot have different start times.

use std::sync::OnceLock;

use crate::store::ProcessOrigin;

/// This host and its current boot: `(host, boot_id)`. The host is `/etc/machine-id` (else the
/// hostname) and this process's pid namespace (pids are only comparable within one: two
/// containers of one image share a machine id); the boot id is
/// `/proc/sys/kernel/random/boot_id`. Read once per process.
pub fn host() -> &'static (String, String) {
    static HOST: OnceLock<(String, String)> = OnceLock::new();
    HOST.get_or_init(|| {
        let machine = ["/etc/machine-id", "/var/lib/dbus/machine-id"]
            .into_iter()
            .chain(["/proc/sys/kernel/hostname"])
            .find_map(read_trimmed)
            .unwrap_or_default();
        let pid_ns = std::fs::read_link("/proc/self/ns/pid")
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let host = if machine.is_empty() {
            String::new()
        } else {
            format!("{machine} {pid_ns}")
        };
        let boot = read_trimmed("/proc/sys/kernel/random/boot_id").unwrap_or_default();
        (host, boot)
    })
}

fn read_trimmed(path: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

/// The fields of `/proc/PID/stat` after the command name (which may hold spaces and parens):
/// index 0 is field 3 (the state), index 19 is field 22 (the start time).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// The process's start time in clock ticks since boot; `None` when no such process.
pub fn start_ticks(pid: u32) -> Option<u64> {
    stat_fields(pid)?.get(19)?.parse().ok()
}

/// True while a process with this pid exists and is not a zombie (dead, waiting to be reaped).
pub fn is_running(pid: u32) -> bool {
    stat_fields(pid).is_some_and(|f| f.first().is_some_and(|s| s != "Z" && s != "X"))
}

/// Where and when the process `pid` started, read now; `None` when `/proc` cannot say.
pub fn origin(pid: u32) -> Option<ProcessOrigin> {
    let (host, boot_id) = host();
    if host.is_empty() || boot_id.is_empty() {
        return None;
    }
    Some(ProcessOrigin {
        host: host.clone(),
        boot_id: boot_id.clone(),
        start_ticks: start_ticks(pid)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_an_origin_that_matches_itself() {
        let me = std::process::id();
        let o = origin(me).expect("this process is in /proc");
        assert_eq!(start_ticks(me), Some(o.start_ticks));
        assert!(is_running(me));
        assert!(!is_running(u32::MAX));
        assert_eq!(start_ticks(u32::MAX), None);
    }
}
