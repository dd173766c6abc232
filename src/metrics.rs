//! In-process measurements the store cannot answer: the crash-to-error latency histogram.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Histogram bucket upper bounds, in seconds.
pub const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// A Prometheus-style histogram with fixed buckets, updated without locks.
#[derive(Default)]
pub struct Histogram {
    counts: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        for (bound, count) in BUCKETS.iter().zip(&self.counts) {
            if secs <= *bound {
                count.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    /// Renders it in the Prometheus text format under `name`, each series with `labels`
    /// (`key="value"` pairs, already escaped, comma-separated; empty for none).
    pub fn render(&self, name: &str, help: &str, labels: &str, out: &mut String) {
        use std::fmt::Write;
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let (all, before_le) = if labels.is_empty() {
            (String::new(), String::new())
        } else {
            (format!("{{{labels}}}"), format!("{labels},"))
        };
        for (bound, count) in BUCKETS.iter().zip(&self.counts) {
            let _ = writeln!(
                out,
                "{name}_bucket{{{before_le}le=\"{bound}\"}} {}",
                count.load(Ordering::Relaxed)
            );
        }
        let n = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{before_le}le=\"+Inf\"}} {n}");
        #[allow(clippy::cast_precision_loss)] // exact below 2^52 µs, i.e. 142 years of latency
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum{all} {sum}\n{name}_count{all} {n}");
    }
}

/// A label value in the Prometheus text format: backslash, double quote and newline escaped.
pub fn label_value(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The gateway's in-process metrics.
#[derive(Default)]
pub struct Metrics {
    /// From a worker's exit being seen to its turn's terminal events being committed.
    pub crash_to_error: Histogram,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_histogram_carries_its_labels_on_every_series() {
        let h = Histogram::default();
        h.observe(Duration::from_millis(3));
        let mut out = String::new();
        h.render("x_seconds", "X.", "replica=\"gw-a\"", &mut out);
        assert!(
            out.contains("x_seconds_bucket{replica=\"gw-a\",le=\"0.005\"} 1\n"),
            "{out}"
        );
        assert!(
            out.contains("x_seconds_bucket{replica=\"gw-a\",le=\"+Inf\"} 1\n"),
            "{out}"
        );
        assert!(
            out.contains("x_seconds_count{replica=\"gw-a\"} 1\n"),
            "{out}"
        );
        let mut bare = String::new();
        h.render("x_seconds", "X.", "", &mut bare);
        assert!(
            bare.contains("x_seconds_bucket{le=\"0.001\"} 0\n"),
            "{bare}"
        );
        assert!(bare.contains("x_seconds_sum 0.003\n"), "{bare}");
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label_value("gw-a"), "gw-a");
        assert_eq!(label_value("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
