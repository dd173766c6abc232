//! The gateway's pulse: turns ended per second over the last minute and failed turns per
//! minute over the last fifteen, from the admin events as they arrive, for the header's
//! sparklines (the text beside them says the same numbers: colour only repeats it).

use std::collections::VecDeque;

use crate::api::AdminEvent;

/// Seconds of turns per second kept.
const SECONDS: usize = 60;
/// Minutes of failures per minute kept.
const MINUTES: usize = 15;

/// Counts per second and per minute, newest last.
#[derive(Clone, Debug, Default)]
pub struct Pulse {
    /// Turns ended in each of the last seconds.
    pub per_second: VecDeque<u64>,
    /// Turns failed in each of the last minutes.
    pub failed_per_minute: VecDeque<u64>,
    /// The second (epoch s) the newest bucket counts.
    second: i64,
    /// The minute (epoch min) the newest bucket counts.
    minute: i64,
}

impl Pulse {
    /// Moves the buckets on to `now` (epoch ms): empty ones for the time that passed.
    pub fn advance(&mut self, now: i64) {
        let (s, m) = (now.div_euclid(1000), now.div_euclid(60_000));
        roll(&mut self.per_second, &mut self.second, s, SECONDS);
        roll(&mut self.failed_per_minute, &mut self.minute, m, MINUTES);
    }

    /// Counts an ended turn (at the time it arrives).
    pub fn on_event(&mut self, event: &AdminEvent, now: i64) {
        let failed = match event {
            AdminEvent::TurnCompleted(_) => false,
            AdminEvent::TurnFailed(_) => true,
            _ => return,
        };
        self.advance(now);
        if let Some(n) = self.per_second.back_mut() {
            *n += 1;
        }
        if failed && let Some(n) = self.failed_per_minute.back_mut() {
            *n += 1;
        }
    }

    /// Turns per second over the last ten seconds.
    pub fn turns_per_second(&self) -> f64 {
        let sum: u64 = self.per_second.iter().rev().take(10).sum();
        // Counts of turns in ten seconds: far below f64's exact integers.
        u32::try_from(sum).map_or(f64::MAX, f64::from) / 10.0
    }

    /// Failed turns in the current minute and the one before (so it does not drop to 0
    /// at each minute's turn).
    pub fn failed_last_minutes(&self) -> u64 {
        self.failed_per_minute.iter().rev().take(2).sum()
    }
}

/// Adds empty buckets up to `to`, keeping at most `keep`.
fn roll(buckets: &mut VecDeque<u64>, at: &mut i64, to: i64, keep: usize) {
    if buckets.is_empty() {
        buckets.push_back(0);
        *at = to;
        return;
    }
    let gap = usize::try_from(to - *at).unwrap_or(0).min(keep);
    for _ in 0..gap {
        buckets.push_back(0);
    }
    *at = (*at).max(to);
    while buckets.len() > keep {
        buckets.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ended(kind: &str) -> AdminEvent {
        AdminEvent::parse(
            kind,
            json!({"turnId": "t", "sessionId": "s", "code": "turn_stalled",
            "error": "x", "timestamp": 0}),
        )
        .unwrap()
    }

    #[test]
    fn turns_and_failures_land_in_their_second_and_minute() {
        let mut p = Pulse::default();
        let t0 = 1_800_000_000_000;
        for i in 0..10 {
            p.on_event(&ended("turn.completed"), t0 + i * 1000);
            p.on_event(&ended("turn.completed"), t0 + i * 1000 + 500);
        }
        p.on_event(&ended("turn.failed"), t0 + 9_900);
        assert!(
            (p.turns_per_second() - 2.1).abs() < 1e-9,
            "{}",
            p.turns_per_second()
        );
        assert_eq!(p.failed_last_minutes(), 1);
        p.advance(t0 + 10 * 60_000);
        assert_eq!(p.failed_last_minutes(), 0, "old minutes age out");
        assert!(p.per_second.len() <= SECONDS && p.failed_per_minute.len() <= MINUTES);
    }
}
