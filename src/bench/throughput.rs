//! P3: throughput through one in-process gateway against the same loop over raw pipes.

use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

use super::Figure;
use super::cluster::RoundRobin;
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
    let mut load = EchoLoad::warm(&[RoundRobin::new(vec![client])], SESSIONS, window).await?;
    let written = written_bytes();
    load.open();
    let total = load.finish().await?.len() as u64;
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

/// One turn of the window, from the moment its message was posted, in ms.
#[derive(Clone, Copy, Debug)]
pub struct Took {
    /// To the answer to the `POST`.
    pub answered: f64,
    /// To its `complete` at the client.
    pub completed: f64,
}

/// P3's workload: `sessions` clients, each with a session of the `echo` agent and its stream
/// open, posting 1 kB messages one after another (the next once the last one's `complete`
/// arrived) for a window, after one warm-up turn that spawns its worker; the window opens for
/// every client at once, when all are warm ([`EchoLoad::open`]). Session `i` sends every
/// request (the session, its stream, each message) to the replica that `lbs[i % lbs.len()]`
/// picks next.
pub struct EchoLoad {
    tasks: tokio::task::JoinSet<anyhow::Result<Vec<Took>>>,
    go: tokio::sync::watch::Sender<bool>,
}

impl EchoLoad {
    /// Starts the clients and waits until every one is warm (or one failed).
    pub async fn warm(
        lbs: &[RoundRobin],
        sessions: usize,
        window: Duration,
    ) -> anyhow::Result<Self> {
        let content = "x".repeat(1024);
        let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(sessions);
        let (go, go_rx) = tokio::sync::watch::channel(false);
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
                let (start, mut took) = (Instant::now(), Vec::new());
                while start.elapsed() < window {
                    let t0 = Instant::now();
                    post().await?;
                    let answered = t0.elapsed();
                    let (at, _) = next_of(&mut events, &[EventKind::Complete]).await?;
                    took.push(Took {
                        answered: super::ms(answered),
                        completed: super::ms(at - t0),
                    });
                }
                anyhow::Ok(took)
            });
        }
        drop(ready_tx);
        let mut warm = 0;
        // None: every sender is gone early, so a client failed before it was warm.
        while warm < sessions && ready_rx.recv().await.is_some() {
            warm += 1;
        }
        let mut load = Self { tasks, go };
        if warm < sessions {
            load.open();
            load.finish().await?;
            anyhow::bail!("only {warm} of {sessions} clients got warm");
        }
        Ok(load)
    }

    /// Opens the window for every client.
    pub fn open(&mut self) {
        self.go.send_replace(true);
    }

    /// Waits for every client's last turn; how long each turn of the window took.
    pub async fn finish(mut self) -> anyhow::Result<Vec<Took>> {
        let mut took = Vec::new();
        while let Some(t) = self.tasks.join_next().await {
            took.extend(t??);
        }
        Ok(took)
    }
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
