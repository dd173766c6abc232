//! P3: throughput through one in-process gateway against the same loop over raw pipes.

use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

use super::Figure;
use super::gateway::{agent, next_of, raw_worker, session, start, turn_line};
use crate::api::EventKind;

/// P3: turns/s through one gateway, echo worker, 1 kB reply in 10 deltas, 64 concurrent
/// sessions; the floor is the same loop over raw pipes to 64 workers with no gateway.
pub async fn p3_throughput() -> anyhow::Result<Vec<Figure>> {
    const SESSIONS: usize = 64;
    let window = Duration::from_secs(5);
    let content = "x".repeat(1024);
    // Floor: raw pipes.
    let mut tasks = Vec::new();
    for s in 0..SESSIONS {
        let content = content.clone();
        tasks.push(tokio::spawn(async move {
            let (_child, mut stdin, mut lines) =
                raw_worker(&["--mode", "echo", "--deltas", "10"]).await?;
            let (start, mut n) = (Instant::now(), 0u64);
            while start.elapsed() < window {
                stdin
                    .write_all(turn_line(s * 1_000_000 + n as usize, &content).as_bytes())
                    .await?;
                while let Some(l) = lines.next_line().await? {
                    if l.contains("\"complete\"") {
                        break;
                    }
                }
                n += 1;
            }
            anyhow::Ok(n)
        }));
    }
    let mut raw = 0;
    for t in tasks {
        raw += t.await??;
    }
    let raw_rate = raw as f64 / window.as_secs_f64();
    // Through the gateway.
    let (gw, client, _dir) =
        start(vec![("echo", agent(&["--mode", "echo", "--deltas", "10"]))]).await?;
    let written = written_bytes();
    let mut tasks = Vec::new();
    for _ in 0..SESSIONS {
        let (client, content) = (client.clone(), content.clone());
        tasks.push(tokio::spawn(async move {
            let (sid, token, mut events) = session(&client, "echo").await?;
            client.post_message(&sid, &token, &content, None).await?; // warm: spawn the worker
            next_of(&mut events, &[EventKind::Complete]).await?;
            let (start, mut n) = (Instant::now(), 0u64);
            while start.elapsed() < window {
                client.post_message(&sid, &token, &content, None).await?;
                next_of(&mut events, &[EventKind::Complete]).await?;
                n += 1;
            }
            anyhow::Ok(n)
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await??;
    }
    // Sessions, workers and warm-up turns are counted too: a slight overestimate.
    let per_turn = match (written, written_bytes()) {
        (Some(a), Some(b)) => format!(
            ", {:.0} KB written per turn",
            (b - a) as f64 / total.max(1) as f64 / 1e3
        ),
        _ => String::new(),
    };
    gw.stop().await?;
    let rate = total as f64 / window.as_secs_f64();
    let extra = format!(
        "turns={total} in {}s, 64 sessions, 1 kB in 10 deltas{per_turn}; floor = raw pipes, no gateway",
        window.as_secs()
    );
    Ok(vec![Figure {
        name: "P3-turns-per-second".into(),
        value: rate,
        unit: "turns/s",
        floor: Some(raw_rate),
        target: ">= 2000 turns/s",
        extra,
    }])
}

/// The bytes this process has caused to be written to storage (Linux's `/proc/self/io`): the
/// database's WAL and checkpoints, as the bench's gateway runs in-process.
fn written_bytes() -> Option<u64> {
    std::fs::read_to_string("/proc/self/io")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("write_bytes:"))?
        .trim()
        .parse()
        .ok()
}
