//! Row text and row order: the cells each view shows, and how each column sorts. Every state
//! is spelled out in text (with a glyph), so colour is never the only signal.

use std::cmp::Ordering;

use super::clocks;
use super::cluster::{Cluster, short_id};
use super::model::{EventLine, Turn, Worker};
use super::state::Sort;
use crate::api::admin::ReplicaInfo;
use crate::api::state::{ExitReason, ReplicaState};
use crate::api::{ErrorCode, TurnState, WorkerState};

/// `4s`, `2m05s`, `1h02m`, `3d04h`.
pub fn span(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86_400 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{:02}h", s / 86_400, (s % 86_400) / 3600),
    }
}

/// A worker state with its glyph.
pub fn worker_state(state: WorkerState) -> String {
    let glyph = match state {
        WorkerState::Busy => "●",
        WorkerState::Idle | WorkerState::Ready => "○",
        WorkerState::Starting => "…",
        WorkerState::Exited => "✗",
    };
    format!("{glyph} {state}")
}

/// A turn state with its glyph; stranded wins.
pub fn turn_state(t: &Turn) -> String {
    if t.stranded && t.is_open() {
        return "! STRANDED".into();
    }
    let glyph = match t.state {
        TurnState::Queued => "…",
        TurnState::Dispatched => "→",
        TurnState::Streaming => "▸",
        TurnState::Completed => "✓",
        TurnState::Failed => {
            return format!(
                "✗ {}",
                t.code.map_or(TurnState::Failed.as_str(), ErrorCode::as_str)
            );
        }
    };
    format!("{glyph} {}", t.state)
}

/// The Workers view's cells; its replica as `cluster` names it.
pub fn worker(w: &Worker, now: i64, cluster: &Cluster) -> Vec<String> {
    let exited = w.state == WorkerState::Exited;
    // Process truth is a live worker's only.
    let process = w.process.as_ref().filter(|_| !exited);
    let last_exit = w.last_exit.as_ref().map_or_else(String::new, |e| {
        let why = if e.intentional {
            e.reason
                .split(':')
                .next()
                .unwrap_or("intentional")
                .to_owned()
        } else if ExitReason::of(&e.reason).is_some_and(ExitReason::is_recovery) {
            // Found gone (or unverifiable) when a gateway restarted: not seen to crash.
            e.reason.clone()
        } else if e.code == Some(0) && e.signal.is_none() {
            // It ended cleanly, only not when asked to: `worker_exited`, not a crash.
            "exited unasked".to_owned()
        } else {
            ExitReason::Crashed.to_string()
        };
        format!("{} {why}", e.describe())
    });
    vec![
        w.id.to_string(),
        w.generation.to_string(),
        // An exited worker keeps its last pid: what dmesg and the OOM killer name.
        w.pid.to_string(),
        worker_state(w.state),
        w.agent.clone(),
        w.replica
            .as_ref()
            .map_or_else(|| "-".into(), |r| cluster.label(r)),
        if exited {
            "-".into()
        } else {
            span(now - w.started_at)
        },
        w.current_turn
            .as_ref()
            .map_or_else(|| "-".into(), ToString::to_string),
        last_exit,
        w.last_exit
            .as_ref()
            .map_or_else(|| "-".into(), |e| clocks::clock(e.at)),
        process.map_or_else(|| "-".into(), |p| format!("{:.0}%", p.cpu_percent)),
        process.map_or_else(
            || "-".into(),
            |p| format!("{}M", p.rss_bytes / (1024 * 1024)),
        ),
        process.map_or_else(|| "-".into(), |p| p.state.to_string()),
    ]
}

/// The Turns and Stranded views' cells; `heartbeat` is its worker's last heartbeat. A slow
/// turn says so in text (`12s slow`), so `NO_COLOR` keeps it.
pub fn turn(t: &Turn, now: i64, heartbeat: Option<i64>) -> Vec<String> {
    let end = t.ended_at.unwrap_or(now);
    let stuck = |p: i64| {
        if !t.is_open() {
            "-".into()
        } else if clocks::is_slow(t, now) {
            format!("{} slow", span(end - p))
        } else {
            span(end - p)
        }
    };
    vec![
        t.id.to_string(),
        turn_state(t),
        t.agent.clone(),
        span(end - t.created_at),
        t.last_progress_at.map_or_else(|| "-".into(), stuck),
        clocks::ends_in(t, now),
        t.worker
            .as_ref()
            .map_or_else(|| "-".into(), ToString::to_string),
        if t.is_open() && t.worker.is_some() {
            clocks::ago(heartbeat, now)
        } else {
            "-".into()
        },
        t.ended_at.map_or_else(|| "-".into(), clocks::clock),
    ]
}

/// The Events view's cells.
pub fn event(e: &EventLine) -> Vec<String> {
    let secs = e.at.div_euclid(1000);
    let time = format!(
        "{:02}:{:02}:{:02}.{:03}",
        (secs / 3600) % 24,
        (secs / 60) % 60,
        secs % 60,
        e.at.rem_euclid(1000)
    );
    vec![
        e.seq.map_or_else(|| "—".into(), |s| s.to_string()),
        time,
        e.kind.clone(),
        e.text.clone(),
    ]
}

fn rank(state: WorkerState) -> u8 {
    match state {
        WorkerState::Busy => 0,
        WorkerState::Starting => 1,
        WorkerState::Idle | WorkerState::Ready => 2,
        WorkerState::Exited => 3,
    }
}

fn directed(o: Ordering, sort: Sort) -> Ordering {
    if sort.reverse { o.reverse() } else { o }
}

/// Orders workers: by default busy first, then newest; else by the chosen column.
pub fn sort_workers(ws: &mut [&Worker], sort: Sort, now: i64, cluster: &Cluster) {
    ws.sort_by(|a, b| {
        let o = match sort.column {
            None => rank(a.state)
                .cmp(&rank(b.state))
                .then(b.started_at.cmp(&a.started_at)),
            Some(1) => a.generation.cmp(&b.generation),
            Some(2) => a.pid.cmp(&b.pid),
            Some(6) => (now - a.started_at).cmp(&(now - b.started_at)),
            Some(c) => worker(a, now, cluster)[c].cmp(&worker(b, now, cluster)[c]),
        };
        directed(o.then_with(|| a.id.cmp(&b.id)), sort)
    });
}

/// Orders turns: by default the most stuck first (stranded, then longest without progress,
/// then oldest); else by the chosen column.
pub fn sort_turns(ts: &mut [&Turn], sort: Sort, now: i64) {
    let stuck = |t: &Turn| now - t.last_progress_at.unwrap_or(t.created_at);
    ts.sort_by(|a, b| {
        let o = match sort.column {
            None => b
                .is_open()
                .cmp(&a.is_open())
                .then(b.stranded.cmp(&a.stranded))
                .then(b.ended_at.cmp(&a.ended_at))
                .then(stuck(b).cmp(&stuck(a)))
                .then(a.created_at.cmp(&b.created_at)),
            Some(3) => b.created_at.cmp(&a.created_at),
            Some(4) => stuck(a).cmp(&stuck(b)),
            Some(5) => {
                let at = |t: &Turn| clocks::next_limit(t).map_or(i64::MAX, |(_, at)| at);
                at(a).cmp(&at(b))
            }
            Some(8) => b.ended_at.cmp(&a.ended_at),
            Some(c) => turn(a, now, None)[c].cmp(&turn(b, now, None)[c]),
        };
        directed(o.then_with(|| a.id.cmp(&b.id)), sort)
    });
}

/// A replica state with its glyph; lost is spelled in capitals, as `! STRANDED` is.
pub fn replica_state(state: ReplicaState) -> String {
    match state {
        ReplicaState::Live => "● live".into(),
        ReplicaState::Stopping => "◐ stopping".into(),
        ReplicaState::Lost => "✗ LOST".into(),
    }
}

/// The Replicas view's cells: the heartbeat's age and the lease's countdown at `now`.
pub fn replica(r: &ReplicaInfo, now: i64) -> Vec<String> {
    let lease = if r.lease_until >= now {
        format!("in {}", span(r.lease_until - now))
    } else {
        format!("ran out {} ago", span(now - r.lease_until))
    };
    vec![
        r.name.clone(),
        short_id(&r.replica_id),
        r.host.clone(),
        r.pid.to_string(),
        r.version.clone(),
        replica_state(r.state),
        r.workers.to_string(),
        r.sessions.to_string(),
        format!("{} ago", span(now - r.heartbeat_at)),
        lease,
    ]
}

fn replica_rank(state: ReplicaState) -> u8 {
    match state {
        ReplicaState::Lost => 0,
        ReplicaState::Stopping => 1,
        ReplicaState::Live => 2,
    }
}

/// Orders replicas: by default lost first, then stopping, then by name; else by the chosen
/// column (numbers and times as numbers).
pub fn sort_replicas(rs: &mut [&ReplicaInfo], sort: Sort, now: i64) {
    rs.sort_by(|a, b| {
        let o = match sort.column {
            None => replica_rank(a.state)
                .cmp(&replica_rank(b.state))
                .then_with(|| a.name.cmp(&b.name)),
            Some(3) => a.pid.cmp(&b.pid),
            Some(5) => replica_rank(a.state).cmp(&replica_rank(b.state)),
            Some(6) => a.workers.cmp(&b.workers),
            Some(7) => a.sessions.cmp(&b.sessions),
            Some(8) => b.heartbeat_at.cmp(&a.heartbeat_at),
            Some(9) => a.lease_until.cmp(&b.lease_until),
            Some(c) => replica(a, now)[c].cmp(&replica(b, now)[c]),
        };
        directed(o.then_with(|| a.replica_id.cmp(&b.replica_id)), sort)
    });
}
