//! Gateway figures measured in-process over loopback with real worker processes: P1 crash to
//! error, P2 hung worker to error, P4 delta latency, and the helpers P3 (`throughput.rs`)
//! shares. Each floor is the same thing done over raw pipes with no gateway, in the same run.

use futures::StreamExt;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncWriteExt, BufReader};

use super::{Figure, ms, pct};
use crate::api::admin::ListQuery;
use crate::api::{CreateSession, ErrorCode, EventKind, FromWorker, SessionEvent, ToWorker};
use crate::client::{Client, SseEvent};
use crate::config::{AgentConfig, Config};
use crate::gateway::RunningGateway;
use crate::ids::{MessageId, TurnId};

const SAMPLES: usize = 300;
/// The P1 (and P10) worker: one stamped delta, then exit 1.
pub(super) const CRASH_EXIT1: &[&str] = &[
    "--mode",
    "crash-after",
    "--after",
    "1",
    "--exit-code",
    "1",
    "--stamp",
];
/// The P1 worker: one stamped delta, then SIGKILL.
const CRASH_KILL: &[&str] = &[
    "--mode",
    "crash-after",
    "--after",
    "1",
    "--signal",
    "KILL",
    "--stamp",
];

pub(super) fn agent(args: &[&str]) -> AgentConfig {
    let mut command = vec!["turnwatch".to_owned(), "worker".to_owned()];
    command.extend(args.iter().map(|a| (*a).to_owned()));
    AgentConfig::with_command(command)
}

pub(super) async fn start(
    agents: Vec<(&str, AgentConfig)>,
) -> anyhow::Result<(RunningGateway, Client, tempfile::TempDir)> {
    let mut c = Config::default();
    c.gateway.default_agent = agents[0].0.to_owned();
    c.gateway.stop_grace = Duration::from_millis(200);
    c.agents = agents.into_iter().map(|(n, a)| (n.to_owned(), a)).collect();
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let gw =
        crate::gateway::start(c, &url, tokio::net::TcpListener::bind("127.0.0.1:0").await?).await?;
    let client = Client::new(&gw.url(), None);
    Ok((gw, client, dir))
}

pub(super) type Events =
    Box<dyn futures::Stream<Item = Result<SseEvent, crate::client::ClientError>> + Unpin + Send>;

/// A session with its stream open (after `connected`).
pub(super) async fn session(
    client: &Client,
    agent: &str,
) -> anyhow::Result<(String, String, Events)> {
    session_on(client, client, agent).await
}

/// A session created through `create` with its stream open on `stream` (after `connected`):
/// the same gateway, or two replicas of one cluster.
pub(super) async fn session_on(
    create: &Client,
    stream: &Client,
    agent: &str,
) -> anyhow::Result<(String, String, Events)> {
    let s = create
        .create_session(&CreateSession {
            agent_id: Some(agent.into()),
            ..Default::default()
        })
        .await?;
    let mut events: Events = Box::new(stream.events(&s.agent_id, &s.token, None).await?);
    while let Some(ev) = events.next().await {
        if let SessionEvent::Connected(_) = ev?.session()? {
            break;
        }
    }
    Ok((s.agent_id, s.token, events))
}

/// The next event of one of `kinds` on the stream; an error after 30 s without one (pings do
/// not count), so a figure whose event never comes fails instead of hanging.
pub(super) async fn next_of(
    events: &mut Events,
    kinds: &[EventKind],
) -> anyhow::Result<(Instant, SessionEvent)> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let ev = tokio::time::timeout_at(deadline, events.next())
            .await
            .map_err(|_| anyhow::anyhow!("no {kinds:?} event within 30 s"))?
            .ok_or_else(|| anyhow::anyhow!("stream ended"))??;
        let ev = ev.session()?;
        if kinds.contains(&ev.kind()) {
            return Ok((Instant::now(), ev));
        }
    }
}

/// A reference worker on raw pipes: (child, stdin, stdout lines), after its `ready`.
pub(super) async fn raw_worker(
    args: &[&str],
) -> anyhow::Result<(
    tokio::process::Child,
    tokio::process::ChildStdin,
    tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
)> {
    let mut child = tokio::process::Command::new(std::env::current_exe()?)
        .arg("worker")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let stdin = child
        .stdin
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stdin"))?;
    let mut lines = super::stdout_lines(&mut child)?;
    lines.next_line().await?; // ready
    Ok((child, stdin, lines))
}

pub(super) fn turn_line(i: usize, content: &str) -> String {
    format!(
        "{}\n",
        serde_json::to_string(&ToWorker::Turn {
            turn_id: TurnId(format!("t-{i}")),
            message_id: MessageId(format!("m-{i}")),
            content: content.to_owned(),
        })
        .unwrap_or_default()
    )
}

/// A latency figure whose value (and floor) is the `at`-th percentile: 50 or 99.
pub(super) fn latency(
    name: &str,
    at: f64,
    mut samples: Vec<f64>,
    mut floor: Vec<f64>,
    target: &'static str,
) -> Figure {
    let (p50, p99, n) = (
        pct(&mut samples, 50.0),
        pct(&mut samples, 99.0),
        samples.len(),
    );
    let (floor_at, floor99) = (pct(&mut floor, at), pct(&mut floor, 99.0));
    let extra = format!(
        "p50={p50:.3} p99={p99:.3} max={:.3} n={n} floor-p99={floor99:.3}",
        samples[n - 1]
    );
    let value = if at >= 99.0 { p99 } else { p50 };
    Figure {
        name: name.into(),
        value,
        unit: "ms",
        floor: Some(floor_at),
        target,
        extra,
    }
}

/// P1: worker crash mid-turn → `error` at an SSE client, for exit 1 and SIGKILL. The worker
/// stamps its last delta with the time it wrote it, right before it dies; a sample is the
/// client's receipt of `error` minus that stamp. The floor is the same interval for a parent
/// reading the child's stdout and seeing its exit (`wait`), with no gateway.
pub async fn p1_crash_to_error() -> anyhow::Result<Vec<Figure>> {
    let stamp = |c: &str| c.parse::<f64>().ok();
    let mut floor = Vec::with_capacity(SAMPLES);
    for i in 0..SAMPLES {
        let (mut child, mut stdin, mut lines) = raw_worker(CRASH_EXIT1).await?;
        stdin.write_all(turn_line(i, "crash").as_bytes()).await?;
        let line = lines.next_line().await?.unwrap_or_default();
        let content = match serde_json::from_str(&line)? {
            FromWorker::Delta { content, .. } => content,
            other => anyhow::bail!("expected a delta, got {other:?}"),
        };
        let at = stamp(&content).ok_or_else(|| anyhow::anyhow!("no stamp"))?;
        child.wait().await?;
        floor.push((now_micros() - at) / 1000.0);
    }
    let (gw, client, _dir) = start(vec![
        ("exit1", agent(CRASH_EXIT1)),
        ("sigkill", agent(CRASH_KILL)),
    ])
    .await?;
    let mut out = Vec::new();
    for (name, agent) in [("P1-crash-exit1", "exit1"), ("P1-crash-sigkill", "sigkill")] {
        let mut samples = Vec::with_capacity(SAMPLES);
        for _ in 0..SAMPLES {
            let (sid, token, mut events) = session(&client, agent).await?;
            client.post_message(&sid, &token, "crash", None).await?;
            samples.push(crash_to_error(&mut events).await?);
        }
        out.push(latency(
            name,
            50.0,
            samples,
            floor.clone(),
            "p50 <= 5 ms, p99 <= 50 ms",
        ));
    }
    gw.stop().await?;
    Ok(out)
}

/// P2: a hung worker (alive, silent) → `error`, against the configured stall timeout; and the
/// time until the hung worker is gone.
pub async fn p2_hung_to_error() -> anyhow::Result<Vec<Figure>> {
    let stall = Duration::from_secs(1);
    let mut hang = agent(&["--mode", "hang"]);
    hang.stall_timeout = stall;
    let (gw, client, _dir) = start(vec![("hang", hang)]).await?;
    let (mut to_error, mut stopped) = (Vec::new(), 0);
    for _ in 0..5 {
        let (sid, token, mut events) = session(&client, "hang").await?;
        client
            .post_message(&sid, &token, "are you there", None)
            .await?;
        let t0 = Instant::now();
        let (t1, ev) = next_of(&mut events, &[EventKind::Error]).await?;
        anyhow::ensure!(
            matches!(&ev, SessionEvent::Error(f) if f.code == ErrorCode::TurnStalled),
            "unexpected {ev:?}"
        );
        to_error.push(ms(t1 - t0));
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let q = ListQuery {
                session: Some(sid.clone()),
                ..ListQuery::default()
            };
            let d = client.workers(&q).await?;
            if d.items.first().is_some_and(|w| w.exited_at.is_some()) {
                stopped += 1;
                break;
            }
            if Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    gw.stop().await?;
    let mut s = to_error.clone();
    let extra = format!(
        "p50={:.1} max={:.1} n=5 hung-workers-stopped={stopped}/5",
        pct(&mut s, 50.0),
        s[s.len() - 1]
    );
    Ok(vec![Figure {
        name: "P2-hung-to-error".into(),
        value: pct(&mut s, 50.0),
        unit: "ms",
        floor: Some(ms(stall)),
        target: "stall timeout + <= 1 s, worker stopped",
        extra,
    }])
}

/// One crash sample: the stamped delta of a [`CRASH_EXIT1`]-style worker, then its
/// `worker_crashed` error; the ms from the stamp to the error's receipt.
pub(super) async fn crash_to_error(events: &mut Events) -> anyhow::Result<f64> {
    let (_, delta) = next_of(events, &[EventKind::Output]).await?;
    let (_, ev) = next_of(events, &[EventKind::Error]).await?;
    let received = now_micros();
    anyhow::ensure!(
        matches!(&ev, SessionEvent::Error(f) if f.code == ErrorCode::WorkerCrashed),
        "unexpected {ev:?}"
    );
    let SessionEvent::Output(delta) = delta else {
        anyhow::bail!("expected output, got {delta:?}");
    };
    let at: f64 = delta
        .content
        .parse()
        .map_err(|_| anyhow::anyhow!("no stamp"))?;
    Ok((received - at) / 1000.0)
}

/// Now, in µs since the epoch (the clock `--stamp` writes).
pub(super) fn now_micros() -> f64 {
    crate::clock::now_micros() as f64
}

/// P4: worker delta → SSE client latency (the worker stamps each delta as it writes it); the
/// floor is the same stamp read by a parent straight from the worker's stdout.
pub async fn p4_delta_latency() -> anyhow::Result<Vec<Figure>> {
    let args = [
        "--mode",
        "slow",
        "--stamp",
        "--deltas",
        "50",
        "--delay-ms",
        "4",
    ];
    let mut floor = Vec::new();
    let (_child, mut stdin, mut lines) = raw_worker(&args).await?;
    for i in 0..10 {
        stdin
            .write_all(turn_line(i, &"x".repeat(50)).as_bytes())
            .await?;
        while let Some(l) = lines.next_line().await? {
            match serde_json::from_str(&l)? {
                FromWorker::Complete { .. } => break,
                FromWorker::Delta { content, .. } => {
                    if let Ok(stamp) = content.parse::<f64>() {
                        floor.push((now_micros() - stamp) / 1000.0);
                    }
                }
                _ => {}
            }
        }
    }
    let (gw, client, _dir) = start(vec![("stamp", agent(&args))]).await?;
    let (sid, token, mut events) = session(&client, "stamp").await?;
    let mut samples = Vec::new();
    for _ in 0..20 {
        client
            .post_message(&sid, &token, &"x".repeat(50), None)
            .await?;
        loop {
            let (_, ev) = next_of(&mut events, &[EventKind::Output, EventKind::Complete]).await?;
            let SessionEvent::Output(delta) = ev else {
                break;
            };
            if let Ok(stamp) = delta.content.parse::<f64>() {
                samples.push((now_micros() - stamp) / 1000.0);
            }
        }
    }
    gw.stop().await?;
    // The target is a p99.
    Ok(vec![latency(
        "P4-delta-to-sse",
        99.0,
        samples,
        floor,
        "p99 <= 5 ms",
    )])
}
