//! A turn's clocks as an operator reads them: which limit ends it next and when, whether it
//! is slow, and how long ago its worker last said it was alive. One place, so the Turns view,
//! the header's `stuck` count and the turn detail agree.

use super::cells::span;
use super::model::Turn;

/// No progress for this long marks a turn slow when its agent's stall timeout is unknown.
const SLOW_MS: i64 = 10_000;

/// The limit that will end an open turn first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// No progress for the agent's stall timeout: `turn_stalled`.
    Stall,
    /// The hard per-turn deadline: `turn_deadline_exceeded`.
    Deadline,
}

impl Limit {
    /// Its name in a cell.
    pub fn name(self) -> &'static str {
        match self {
            Self::Stall => "stall",
            Self::Deadline => "deadline",
        }
    }
}

/// When the stall clock of a dispatched, open turn fires (epoch ms), if the gateway said its
/// stall timeout.
pub fn stall_at(t: &Turn) -> Option<i64> {
    let since = t.last_progress_at?;
    (t.is_open() && t.worker.is_some()).then_some(since + t.stall_ms?)
}

/// The limit that ends an open turn first, and when (epoch ms).
pub fn next_limit(t: &Turn) -> Option<(Limit, i64)> {
    if !t.is_open() {
        return None;
    }
    let stall = stall_at(t).map(|at| (Limit::Stall, at));
    let deadline = t.deadline_at.map(|at| (Limit::Deadline, at));
    match (stall, deadline) {
        (Some(s), Some(d)) => Some(if s.1 <= d.1 { s } else { d }),
        (one, other) => one.or(other),
    }
}

/// `in 19s`, or `PASSED 3s ago` once the moment is behind `now`.
pub fn countdown(at: i64, now: i64) -> String {
    if at >= now {
        format!("in {}", span(at - now))
    } else {
        format!("PASSED {} ago", span(now - at))
    }
}

/// The Turns view's "ENDS IN" cell: the next limit and its countdown (`stall in 19s`).
pub fn ends_in(t: &Turn, now: i64) -> String {
    next_limit(t).map_or_else(
        || "-".into(),
        |(limit, at)| format!("{} {}", limit.name(), countdown(at, now)),
    )
}

/// Whether an open turn is slow: no progress for more than half its stall timeout (or
/// [`SLOW_MS`] when that is unknown). Queued turns wait for a worker and are not slow.
pub fn is_slow(t: &Turn, now: i64) -> bool {
    let Some(since) = t
        .last_progress_at
        .filter(|_| t.is_open() && t.worker.is_some())
    else {
        return false;
    };
    now - since > t.stall_ms.map_or(SLOW_MS, |s| s / 2)
}

/// An age as "0.2s ago", "41s ago", or "never".
pub fn ago(at: Option<i64>, now: i64) -> String {
    match at {
        None => "never".into(),
        Some(at) if now - at < 10_000 => {
            let tenths = (now - at).max(0) / 100;
            format!("{}.{}s ago", tenths / 10, tenths % 10)
        }
        Some(at) => format!("{} ago", span(now - at)),
    }
}

/// A time of day, `HH:MM:SS` (UTC), for "ended at" and "exited at".
pub fn clock(at: i64) -> String {
    let secs = at.div_euclid(1000);
    format!(
        "{:02}:{:02}:{:02}",
        (secs / 3600) % 24,
        (secs / 60) % 60,
        secs % 60
    )
}
