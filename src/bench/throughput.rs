//! P3: throughput through one in-process gateway against the same loop over raw pipes.

use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

use super::Figure;
use super::cluster::RoundRobin;
use super::cpu::Ticks;
use super::gateway::{agent, next_of, raw_worker, session_on, start, turn_line};
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
    let total = echo_turns(&[RoundRobin::new(vec![client])], SESSIONS, window, &[])
        .await?
        .turns;
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

/// What one window of P3's workload gave.
pub struct Window {
    /// Turns completed in it.
    pub turns: u64,
    /// CPU by part when it opened and when it closed.
    pub cpu: (Ticks, Ticks),
}

/// P3's workload: `sessions` clients, each with a session of the `echo` agent and its stream
/// open, posting 1 kB messages one after another (the next once the last one's `complete`
/// arrived) for `window`, after one warm-up turn that spawns its worker; the window opens for
/// every client at once, when all are warm. Session `i` sends every request (the session, its
/// stream, each message) to the replica that `lbs[i % lbs.len()]` picks next. CPU is read
/// for the gateway processes `pids` (none for an in-process gateway).
pub async fn echo_turns(
    lbs: &[RoundRobin],
    sessions: usize,
    window: Duration,
    pids: &[u32],
) -> anyhow::Result<Window> {
    let content = "x".repeat(1024);
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(sessions);
    let (go_tx, go_rx) = tokio::sync::watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..sessions {
        let (lb, content) = (lbs[i % lbs.len()].clone(), content.clone());
        let (ready, mut go) = (ready_tx.clone(), go_rx.clone());
        tasks.spawn(async move {
            let (sid, token, mut events) = session_on(lb.pick(), lb.pick(), "echo").await?;
            let post = || lb.pick().post_message(&sid, &token, &content, None);
            post().await?; // warm: spawn the worker
            next_of(&mut events, &[EventKind::Complete]).await?;
            ready.send(()).await?;
            go.wait_for(|go| *go).await?;
            let (start, mut n) = (Instant::now(), 0u64);
            while start.elapsed() < window {
                post().await?;
                next_of(&mut events, &[EventKind::Complete]).await?;
                n += 1;
            }
            anyhow::Ok(n)
        });
    }
    drop(ready_tx);
    for _ in 0..sessions {
        // None: every sender is gone, so a client failed before it was warm.
        if ready_rx.recv().await.is_none() {
            break;
        }
    }
    let before = Ticks::now(pids);
    go_tx.send(true)?;
    tokio::time::sleep(window).await;
    let after = Ticks::now(pids);
    let mut turns = 0;
    while let Some(t) = tasks.join_next().await {
        turns += t??;
    }
    Ok(Window {
        turns,
        cpu: (before, after),
    })
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
