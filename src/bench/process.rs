//! Figures about whole processes: P5 idle SSE connections, P9 demo cold start to first frame,
//! P11 gateway idle RSS, P12 gateway start to `/healthz` 200.

use futures::{StreamExt, stream};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;

use super::{Figure, ms, pct};
use crate::api::CreateSession;
use crate::client::Client;

/// A `turnwatch gateway` child process on a fresh data dir; killed on drop.
pub struct Spawned {
    /// The child.
    pub child: tokio::process::Child,
    /// Its base URL.
    pub url: String,
    /// From spawn to its "listening" line.
    pub to_listen: Duration,
    _dir: tempfile::TempDir,
}

impl Spawned {
    /// Starts a gateway and waits for its listening line.
    pub async fn gateway() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let db = format!("sqlite://{}", dir.path().join("gw.db").display());
        let args = ["--listen", "127.0.0.1:0", "--database", &db];
        let (child, url, to_listen) = spawn_gateway(&args, dir.path()).await?;
        Ok(Self {
            child,
            url,
            to_listen,
            _dir: dir,
        })
    }

    /// Its resident set size in KiB.
    pub fn rss_kib(&self) -> anyhow::Result<u64> {
        let pid = self.child.id().ok_or_else(|| anyhow::anyhow!("exited"))?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or_else(|| anyhow::anyhow!("no VmRSS"))
    }
}

/// Where `TURNWATCH_BENCH_LOGS` asks the gateways' logs to go: a directory in which each
/// gateway the bench spawns writes `gateway-<n>.log` at the level `RUST_LOG` says (`info`
/// without it). Without the variable, gateways log warnings to nowhere.
const LOGS: &str = "TURNWATCH_BENCH_LOGS";

/// Spawns `turnwatch gateway ARGS` (its data dir under `data_home`), killed on drop, and waits
/// for its listening line: the child, its base URL and the time from spawn to that line.
pub async fn spawn_gateway(
    args: &[&str],
    data_home: &std::path::Path,
) -> anyhow::Result<(tokio::process::Child, String, Duration)> {
    static SPAWNED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let mut cmd = tokio::process::Command::new(std::env::current_exe()?);
    cmd.arg("gateway")
        .args(args)
        .env("XDG_DATA_HOME", data_home);
    match std::env::var_os(LOGS) {
        Some(dir) => {
            let n = SPAWNED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let path = std::path::Path::new(&dir).join(format!("gateway-{n}.log"));
            let level = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into());
            cmd.env("RUST_LOG", level)
                .stderr(std::fs::File::create(path)?);
        }
        None => {
            cmd.env("RUST_LOG", "warn").stderr(Stdio::null());
        }
    }
    let t0 = Instant::now();
    let mut child = cmd.stdout(Stdio::piped()).kill_on_drop(true).spawn()?;
    let mut lines = super::stdout_lines(&mut child)?;
    let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await??
        .ok_or_else(|| anyhow::anyhow!("the gateway exited without listening"))?;
    let to_listen = t0.elapsed();
    let url = first.rsplit(' ').next().unwrap_or_default().to_owned();
    Ok((child, url, to_listen))
}

/// Whether the gateway at `url` answers `/healthz` with 200.
pub async fn healthy(url: &str) -> bool {
    reqwest::get(format!("{url}/healthz"))
        .await
        .is_ok_and(|r| r.status().is_success())
}

/// The cost of starting this binary at all: `turnwatch --version`, spawn to exit.
async fn exec_floor() -> anyhow::Result<f64> {
    let mut v = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        tokio::process::Command::new(std::env::current_exe()?)
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .await?;
        v.push(ms(t.elapsed()));
    }
    Ok(pct(&mut v, 50.0))
}

/// P12: spawn on a fresh data dir → first 200 from `/healthz` (median of 5); the floor is
/// starting the binary at all.
pub async fn p12_start_to_health() -> anyhow::Result<Vec<Figure>> {
    let floor = exec_floor().await?;
    let (mut v, mut listen) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        let t0 = Instant::now();
        let gw = Spawned::gateway().await?;
        listen.push(ms(gw.to_listen));
        while !healthy(&gw.url).await {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        v.push(ms(t0.elapsed()));
    }
    let extra = format!(
        "median of 5, max {:.1}; listening after {:.1}; floor = `turnwatch --version` spawn to exit",
        pct(&mut v, 100.0),
        pct(&mut listen, 50.0)
    );
    Ok(vec![Figure {
        name: "P12-start-to-healthz".into(),
        value: pct(&mut v, 50.0),
        unit: "ms",
        floor: Some(floor),
        target: "<= 200 ms",
        extra,
    }])
}

/// P11: RSS of an idle gateway with no sessions, 2 s after it became healthy.
pub async fn p11_idle_rss() -> anyhow::Result<Vec<Figure>> {
    let gw = Spawned::gateway().await?;
    while !healthy(&gw.url).await {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss = gw.rss_kib()? as f64 / 1024.0;
    Ok(vec![Figure {
        name: "P11-gateway-idle-rss".into(),
        value: rss,
        unit: "MB",
        floor: None,
        target: "<= 30 MB",
        extra: "fresh data dir, no sessions".into(),
    }])
}

/// P5: idle SSE connections held by one gateway (10,000, each on its own session), and the
/// gateway's RSS growth per connection. Loopback only, bounded in count and time.
pub async fn p5_idle_connections() -> anyhow::Result<Vec<Figure>> {
    const N: usize = 10_000;
    let gw = Spawned::gateway().await?;
    while !healthy(&gw.url).await {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let client = Client::new(&gw.url, None);
    let sessions: Vec<_> = stream::iter(0..N)
        .map(|_| {
            let c = client.clone();
            async move { c.create_session(&CreateSession::default()).await }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    let sessions: Vec<_> = sessions.into_iter().collect::<Result<_, _>>()?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = gw.rss_kib()?;
    let streams: Vec<_> = stream::iter(sessions)
        .map(|s| {
            let c = client.clone();
            async move { c.events(&s.agent_id, &s.token, None).await }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    let held = streams.iter().filter(|s| s.is_ok()).count();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let o = client.overview().await?;
        if o.sse_connections >= held || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = gw.rss_kib()?;
    let per = (after.saturating_sub(before)) as f64 / held.max(1) as f64;
    drop(streams);
    let extra = format!(
        "{per:.2} KiB RSS per connection (gateway RSS {:.1} → {:.1} MB)",
        before as f64 / 1024.0,
        after as f64 / 1024.0
    );
    Ok(vec![Figure {
        name: "P5-idle-sse-connections".into(),
        value: held as f64,
        unit: "conns",
        floor: None,
        target: ">= 10,000 with <= 8 KiB each",
        extra,
    }])
}

/// P9: `turnwatch --demo` in a pseudo-terminal (`script`), spawn → the first frame on the
/// terminal, and → the first frame that says the stream is live.
pub async fn p9_demo_first_frame() -> anyhow::Result<Vec<Figure>> {
    let floor = exec_floor().await?;
    let (mut first, mut live) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        let dir = tempfile::tempdir()?;
        let exe = std::env::current_exe()?;
        let cmd = format!("stty rows 40 cols 160; exec '{}' --demo", exe.display());
        let t0 = Instant::now();
        let mut child = tokio::process::Command::new("script")
            .args(["-qec", &cmd, "/dev/null"])
            .env("XDG_DATA_HOME", dir.path())
            .env("TERM", "xterm-256color")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()?;
        let mut out = child
            .stdout
            .take()
            .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
        let (mut seen, mut buf) = (String::new(), vec![0u8; 65536]);
        let deadline = t0 + Duration::from_secs(20);
        while Instant::now() < deadline {
            let n = tokio::time::timeout(Duration::from_secs(5), out.read(&mut buf)).await??;
            if n == 0 {
                break;
            }
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            // The first frame skips blank cells (cursor moves), so look for a word, not a phrase.
            if first.len() == live.len() && seen.contains("turnwatch") {
                first.push(ms(t0.elapsed()));
            }
            if seen.contains("● live") {
                live.push(ms(t0.elapsed()));
                break;
            }
        }
        if let Some(pid) = child.id() {
            crate::supervisor::process::signal_group(pid, nix::sys::signal::Signal::SIGTERM);
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
    }
    let extra = format!(
        "median of 3 in a pty; first live frame {:.1} ms; floor = `turnwatch --version`",
        pct(&mut live, 50.0)
    );
    Ok(vec![Figure {
        name: "P9-demo-first-frame".into(),
        value: pct(&mut first, 50.0),
        unit: "ms",
        floor: Some(floor),
        target: "<= 300 ms",
        extra,
    }])
}
