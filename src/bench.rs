//! `turnwatch bench [NAME]`: the performance figures of `performance.md`, each printed beside a
//! floor measured in the same run (these machines are shared and noisy: ratios hold, absolute
//! times drift). One line per figure: `name value unit floor ratio`, then details.
//!
//! The replica figures (P10, P13–P16, `replicas.md`) run real gateway processes on the
//! `PostgreSQL` database `--database` or `TURNWATCH_TEST_DATABASE_URL` names, each in a schema
//! of its own that is dropped at the end; without a database they are skipped with a notice.

// Counts and microseconds here stay far below 2^52: the f64 conversions are exact.
#![allow(clippy::cast_precision_loss)]

mod cluster;
mod console;
mod cpu;
mod evict;
mod gateway;
mod pg;
mod pg_throughput;
mod process;
mod replicas;
mod rolling;
mod sample;
#[cfg(test)]
mod tests;
mod throughput;

use std::time::Duration;

/// One measured figure.
#[derive(Clone, Debug)]
pub struct Figure {
    /// `P1-crash-exit1`, …
    pub name: String,
    /// The value.
    pub value: f64,
    /// Its unit.
    pub unit: &'static str,
    /// The floor measured in the same run, if the figure has one.
    pub floor: Option<f64>,
    /// The target from performance.md, in words.
    pub target: &'static str,
    /// p50/p99 and other details.
    pub extra: String,
}

impl Figure {
    fn line(&self) -> String {
        let floor = self.floor.map_or_else(|| "-".into(), |f| format!("{f:.3}"));
        let ratio = self
            .floor
            .filter(|f| *f > 0.0)
            .map_or_else(|| "-".into(), |f| format!("{:.2}", self.value / f));
        format!(
            "{:<24} {:>12.3} {:<8} {:>10} {:>8}  {}  [target {}]",
            self.name, self.value, self.unit, floor, ratio, self.extra, self.target
        )
    }
}

/// Milliseconds of a duration.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The p-th percentile (0..=100) of samples, sorted in place.
pub fn pct(samples: &mut [f64], p: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    samples.sort_by(f64::total_cmp);
    let i = ((p / 100.0) * (samples.len() - 1) as f64).round() as usize;
    samples[i.min(samples.len() - 1)]
}

/// The figures, in order, with the names `bench NAME` accepts.
pub const NAMES: &[&str] = &[
    "p1", "p2", "p3", "p4", "p5", "p6", "p7", "p8", "p9", "p10", "p11", "p12", "p13", "p14", "p15",
    "p16", "evict", "sample",
];

/// The figures that need a `PostgreSQL` database.
const ON_POSTGRES: &[&str] = &["p10", "p13", "p14", "p15", "p16"];

/// Runs one figure (or all with `None`), printing each line as it is measured; the replica
/// figures run on `database` (a `postgres://` URL).
pub async fn run(only: Option<&str>, database: Option<&str>) -> anyhow::Result<()> {
    if let Some(name) = only
        && !NAMES.contains(&name)
    {
        anyhow::bail!("unknown figure `{name}`; one of: {}", NAMES.join(" "));
    }
    println!(
        "{:<24} {:>12} {:<8} {:>10} {:>8}  details",
        "name", "value", "unit", "floor", "ratio"
    );
    match only {
        Some(name) => {
            for f in measure(name, database).await? {
                println!("{}", f.line());
            }
            Ok(())
        }
        None => run_each(database).await,
    }
}

/// Every figure, each in a fresh `turnwatch bench NAME` process: a figure must not pay for
/// what an earlier one left behind (after P5's 10,000 connections, the console's idle frames
/// cost this process several times their fresh cost, pushing P8 over its target).
async fn run_each(database: Option<&str>) -> anyhow::Result<()> {
    let mut failed = Vec::new();
    for name in NAMES {
        let mut cmd = tokio::process::Command::new(std::env::current_exe()?);
        cmd.args(["bench", name]);
        if let Some(db) = database {
            cmd.args(["--database", db]);
        }
        let mut child = cmd
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let mut lines = stdout_lines(&mut child)?;
        lines.next_line().await?; // its header
        while let Some(line) = lines.next_line().await? {
            println!("{line}");
        }
        if !child.wait().await?.success() {
            failed.push(*name);
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        anyhow::bail!("figures that failed to measure: {}", failed.join(" "))
    }
}

async fn measure(name: &str, database: Option<&str>) -> anyhow::Result<Vec<Figure>> {
    if ON_POSTGRES.contains(&name) {
        let Some(db) = database else {
            eprintln!(
                "{name}: skipped: it needs PostgreSQL (--database postgres://… or TURNWATCH_TEST_DATABASE_URL)"
            );
            return Ok(Vec::new());
        };
        return Ok(match name {
            "p10" => replicas::p10_crash_across_replicas(db).await?,
            "p13" => replicas::p13_replica_kill(db).await?,
            "p14" => pg_throughput::p14_one_replica(db).await?,
            "p15" => pg_throughput::p15_two_replicas(db).await?,
            _ => rolling::p16_rolling_restart(db).await?,
        });
    }
    Ok(match name {
        "p1" => gateway::p1_crash_to_error().await?,
        "p2" => gateway::p2_hung_to_error().await?,
        "p3" => throughput::p3_throughput().await?,
        "p4" => gateway::p4_delta_latency().await?,
        "p5" => process::p5_idle_connections().await?,
        "p6" => console::p6_frame_time(),
        "p7" => console::p7_ingest(),
        "p8" => console::p8_idle_cpu().await?,
        "p9" => process::p9_demo_first_frame().await?,
        "p11" => process::p11_idle_rss().await?,
        "p12" => process::p12_start_to_health().await?,
        "evict" => evict::rotation().await?,
        "sample" => sample::sampling_cost().await?,
        _ => Vec::new(),
    })
}

/// The lines a piped child writes to stdout.
pub fn stdout_lines(
    child: &mut tokio::process::Child,
) -> anyhow::Result<tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>> {
    use tokio::io::AsyncBufReadExt as _;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("the child's stdout is not piped"))?;
    Ok(tokio::io::BufReader::new(stdout).lines())
}
