//! Chaos: a real `turnwatch gateway` process, clients chatting on many sessions, and at random
//! worker SIGKILLs and SIGSTOPs, operator kills and cancels, session deletes, and at least three
//! gateway SIGKILLs with restarts on the same data. At the end: every accepted message got
//! exactly one `complete` at its client, completed text is intact, event ids never repeat or go
//! back, no turn is open, and no worker process is left alive.
//!
//! Bounded: ~40 s and a few hundred turns by default. Longer runs:
//! `TURNWATCH_CHAOS_TURNS=5000 TURNWATCH_CHAOS_SECS=600 cargo test --test gateway chaos -- --nocapture`.

use futures::StreamExt;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::Mutex;
use turnwatch::client::{Client, SseEvent};

use crate::harness::{BIN, Backend, Data, gateway_args};

/// Seeded (and the seed printed) so a failing run can be replayed.
type Rng = fastrand::Rng;

/// An index below `n` (0 when `n` is 0: the caller's `get` then finds nothing).
fn below(rng: &mut Rng, n: usize) -> usize {
    if n == 0 { 0 } else { rng.usize(..n) }
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A `turnwatch gateway` child process on a fixed address and data file.
struct GatewayProcess {
    child: tokio::process::Child,
}

impl GatewayProcess {
    /// Starts it and waits for its "listening" line; returns it with its URL.
    async fn start(listen: &str, db_url: &str, conf: &Path) -> (Self, String) {
        for _ in 0..50 {
            let mut child = tokio::process::Command::new(BIN)
                .args(gateway_args(listen, db_url, conf))
                .env("RUST_LOG", "warn")
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::inherit())
                .kill_on_drop(true)
                .spawn()
                .unwrap();
            let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
            let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await;
            if let Ok(Ok(Some(line))) = line {
                let url = line.rsplit(' ').next().unwrap().to_owned();
                return (Self { child }, url);
            }
            // The port may still be held by the killed process's last connections: retry.
            let _ = child.kill().await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("the gateway did not start on {listen}");
    }

    async fn kill(&mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }

    async fn terminate(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("the gateway stops within 30 s of SIGTERM")
            .unwrap();
        assert!(status.success(), "graceful stop exits 0: {status}");
    }
}

/// What every client saw, for the final checks.
#[derive(Default)]
struct Ledger {
    /// Accepted turns: (turn id, content, agent).
    accepted: Vec<(String, String, String)>,
    /// `complete` events seen per turn.
    completes: HashMap<String, usize>,
    /// Completed turns whose streamed text differs from what was sent.
    bad_text: Vec<String>,
    /// Id regressions or repeats.
    bad_ids: Vec<String>,
    /// Turns whose `complete` never came.
    missing: Vec<String>,
}

struct Shared {
    /// The replicas' base URLs (the same across restarts); requests go round-robin, like a
    /// load balancer with no affinity.
    urls: Vec<String>,
    next: AtomicUsize,
    /// A client's pause between two messages, so the turns spread over the whole run.
    pause: Duration,
    stop: AtomicBool,
    /// Every session a client opened: (id, token), for the deletes.
    sessions: Mutex<Vec<(String, String)>>,
    budget: AtomicUsize,
    ledger: Mutex<Ledger>,
}

impl Shared {
    /// The base URL of the replica the next request goes to.
    fn url(&self) -> String {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        self.urls[i % self.urls.len()].clone()
    }
}

/// The chaos run's knobs, from the environment (defaults: a CI-sized run).
struct Knobs {
    turns: usize,
    secs: u64,
    clients: usize,
    seed: u64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_every_accepted_message_gets_exactly_one_complete() {
    chaos(Backend::Sqlite, knobs(400, 40), 1).await;
}

/// The same on `PostgreSQL`, shorter: the long run is `SQLite`'s, this one is for the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_on_postgres() {
    if crate::harness::database_url().is_some() {
        chaos(Backend::Postgres, knobs(100, 15), 1).await;
    }
}

/// Two replicas on one `PostgreSQL`, every request to the next replica round-robin: besides
/// the worker faults, replicas are killed (`SIGKILL`) and restarted in turn, one is paused (`SIGSTOP`)
/// past its lease and resumed, and one is stopped gracefully (`SIGTERM`) and restarted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_across_two_replicas() {
    if crate::harness::database_url().is_some() {
        chaos(Backend::Postgres, knobs(150, 25), 2).await;
    }
}

/// The run's size: these defaults unless the environment says otherwise.
fn knobs(turns: u64, secs: u64) -> Knobs {
    Knobs {
        turns: env_or("TURNWATCH_CHAOS_TURNS", turns) as usize,
        secs: env_or("TURNWATCH_CHAOS_SECS", secs),
        clients: env_or("TURNWATCH_CHAOS_CLIENTS", 10) as usize,
        seed: env_or(
            "TURNWATCH_CHAOS_SEED",
            turnwatch::clock::now_ms() as u64 | 1,
        ),
    }
}

async fn chaos(b: Backend, knobs: Knobs, replicas: usize) {
    eprintln!(
        "chaos on {b:?} with {replicas} replica(s): seed {} (TURNWATCH_CHAOS_SEED), {} turns, {} s, {} clients",
        knobs.seed, knobs.turns, knobs.secs, knobs.clients
    );
    let data = Data::new(b).await;
    let db_url = data.url.clone();
    let conf = write_config(data.dir.path());
    let mut gws = Vec::new();
    let mut urls = Vec::new();
    for _ in 0..replicas {
        let (gw, url) = GatewayProcess::start("127.0.0.1:0", &db_url, &conf).await;
        gws.push(gw);
        urls.push(url);
    }
    let listens: Vec<String> = urls
        .iter()
        .map(|u| u.trim_start_matches("http://").to_owned())
        .collect();
    let shared = Arc::new(Shared {
        urls,
        next: AtomicUsize::new(0),
        pause: Duration::from_millis(
            knobs.secs * 1000 * knobs.clients as u64 / knobs.turns.max(1) as u64,
        ),
        stop: AtomicBool::new(false),
        sessions: Mutex::default(),
        budget: AtomicUsize::new(knobs.turns),
        ledger: Mutex::new(Ledger::default()),
    });
    let clients: Vec<_> = (0..knobs.clients)
        .map(|i| tokio::spawn(client_loop(Arc::clone(&shared), i)))
        .collect();

    // The chaos: random faults every ~100 ms, a gateway SIGKILL + restart at 20 %, 45 % and
    // 70 % (each replica in turn); with replicas, a pause past the lease at 55 % and a graceful
    // restart at 85 %.
    let mut rng = Rng::with_seed(knobs.seed);
    let started = tokio::time::Instant::now();
    let total = Duration::from_secs(knobs.secs);
    let mut restarts = 0;
    let mut counts: HashMap<&str, usize> = HashMap::new();
    let mut paused = replicas < 2;
    let mut rolled = replicas < 2;
    while started.elapsed() < total && shared.budget.load(Ordering::Relaxed) > 0 {
        let due = [0.2, 0.45, 0.7]
            .iter()
            .filter(|f| started.elapsed() >= total.mul_f64(**f))
            .count();
        if restarts < due {
            // A stopped worker ignores its stdin closing: only the kernel can end it now.
            let url = shared.url();
            stop_a_worker(&url, &mut rng).await;
            let i = restarts % replicas;
            gws[i].kill().await;
            tokio::time::sleep(Duration::from_millis(100 + below(&mut rng, 400) as u64)).await;
            gws[i] = GatewayProcess::start(&listens[i], &db_url, &conf).await.0;
            restarts += 1;
            continue;
        }
        if !paused && started.elapsed() >= total.mul_f64(0.55) {
            let pid = nix::unistd::Pid::from_raw(gws[1].child.id().unwrap() as i32);
            nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
            tokio::time::sleep(Duration::from_millis(2500)).await;
            nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT).unwrap();
            *counts.entry("replica paused past its lease").or_default() += 1;
            paused = true;
            continue;
        }
        if !rolled && started.elapsed() >= total.mul_f64(0.85) {
            let old = std::mem::replace(
                &mut gws[0],
                GatewayProcess::start("127.0.0.1:0", &db_url, &conf).await.0,
            );
            // The fresh one serves meanwhile on another port; the old one's port comes back.
            old.terminate().await;
            let fresh = std::mem::replace(
                &mut gws[0],
                GatewayProcess::start(&listens[0], &db_url, &conf).await.0,
            );
            fresh.terminate().await;
            *counts.entry("replica stopped gracefully").or_default() += 1;
            rolled = true;
            continue;
        }
        let url = shared.url();
        if let Some(what) = fault(&url, &shared, &mut rng).await {
            *counts.entry(what).or_default() += 1;
        }
        tokio::time::sleep(Duration::from_millis(50 + below(&mut rng, 100) as u64)).await;
    }
    // Restarts still due when the turn budget ran out first.
    while restarts < 3 {
        let i = restarts % replicas;
        gws[i].kill().await;
        gws[i] = GatewayProcess::start(&listens[i], &db_url, &conf).await.0;
        restarts += 1;
    }
    shared.stop.store(true, Ordering::Relaxed);
    for c in clients {
        tokio::time::timeout(Duration::from_secs(120), c)
            .await
            .expect("clients finish")
            .unwrap();
    }
    eprintln!("chaos: faults {counts:?}, {restarts} gateway restarts");

    let url = shared.url();
    wait_no_open_turn(&url).await;
    let pids = data.db().await.ints("SELECT pid FROM workers").await;
    for gw in gws {
        gw.terminate().await;
    }
    for pid in pids {
        assert_worker_gone(pid).await;
    }

    let ledger = shared.ledger.lock().await;
    eprintln!(
        "chaos: {} accepted turns, {} missing, {} bad text, {} bad ids",
        ledger.accepted.len(),
        ledger.missing.len(),
        ledger.bad_text.len(),
        ledger.bad_ids.len()
    );
    // Enough turns for the run to mean something: 50, or a quarter of a smaller budget.
    let enough = (knobs.turns / 4).min(50);
    assert!(
        ledger.accepted.len() >= enough,
        "too few turns ran: {} (want {enough})",
        ledger.accepted.len()
    );
    for (turn, _, _) in &ledger.accepted {
        assert_eq!(
            ledger.completes.get(turn).copied().unwrap_or(0),
            1,
            "turn {turn}: exactly one complete (seed {})",
            knobs.seed
        );
    }
    assert!(
        ledger.missing.is_empty(),
        "missing completes: {:?}",
        ledger.missing
    );
    assert!(
        ledger.bad_text.is_empty(),
        "text damaged: {:?}",
        ledger.bad_text
    );
    assert!(ledger.bad_ids.is_empty(), "ids: {:?}", ledger.bad_ids);
}

fn write_config(dir: &Path) -> PathBuf {
    let conf = dir.join("turnwatch.toml");
    let agent = |name: &str, args: &str| {
        format!(
            "[agents.{name}]\ncommand = [\"{BIN}\", \"worker\", {args}]\nstartup_timeout = \"5s\"\n\
             stall_timeout = \"2s\"\ndeadline = \"15s\"\nqueue_timeout = \"10s\"\nidle_timeout = \"5s\"\n"
        )
    };
    let text = format!(
        "[gateway]\ndefault_agent = \"echo\"\nmax_workers = 64\nstop_grace = \"500ms\"\n\
         replica_lease = \"1s\"\nstop_drain = \"3s\"\n\n{}\n{}\n{}\n",
        // Ignores its stdin closing: only the kernel (or recovery) ends it after a gateway dies.
        agent(
            "echo",
            "\"--mode\", \"echo\", \"--deltas\", \"4\", \"--ignore-eof\"",
        ),
        agent("slow", "\"--mode\", \"slow\", \"--delay-ms\", \"40\""),
        agent(
            "crash",
            "\"--mode\", \"crash-after\", \"--after\", \"1\", \"--exit-code\", \"3\""
        ),
    );
    std::fs::write(&conf, text).unwrap();
    conf
}

/// One random fault; returns its name when it acted.
async fn fault(url: &str, shared: &Shared, rng: &mut Rng) -> Option<&'static str> {
    let http = reqwest::Client::new();
    let roll = below(rng, 100);
    if roll < 60 {
        let workers: Value = get(&http, &format!("{url}/api/v1/admin/workers?state=live")).await?;
        let list = workers["items"].as_array()?;
        let w = list.get(below(rng, list.len()))?;
        let pid = w["pid"].as_i64()? as i32;
        let target = nix::unistd::Pid::from_raw(pid);
        if roll < 30 {
            nix::sys::signal::kill(target, nix::sys::signal::Signal::SIGKILL).ok()?;
            Some("worker SIGKILL")
        } else if roll < 45 {
            nix::sys::signal::kill(target, nix::sys::signal::Signal::SIGSTOP).ok()?;
            Some("worker SIGSTOP")
        } else {
            let body = json!({"generation": w["generation"], "pid": w["pid"], "reason": "chaos"});
            let id = w["workerId"].as_str()?;
            let r = http
                .post(format!("{url}/api/v1/admin/workers/{id}/kill"))
                .json(&body)
                .send()
                .await
                .ok()?;
            r.status().is_success().then_some("operator kill")
        }
    } else {
        let turns: Value = get(&http, &format!("{url}/api/v1/admin/turns?state=open")).await?;
        let list = turns["items"].as_array()?;
        let t = list.get(below(rng, list.len()))?;
        if roll < 85 {
            let id = t["turnId"].as_str()?;
            let r = http
                .post(format!("{url}/api/v1/admin/turns/{id}/cancel"))
                .json(&json!({"reason": "chaos"}))
                .send()
                .await
                .ok()?;
            r.status().is_success().then_some("cancel")
        } else {
            let id = t["sessionId"].as_str()?;
            let token = {
                let sessions = shared.sessions.lock().await;
                sessions.iter().find(|(s, _)| s == id)?.1.clone()
            };
            let r = http
                .delete(format!("{url}/api/v1/agents/{id}"))
                .bearer_auth(token)
                .send()
                .await
                .ok()?;
            r.status().is_success().then_some("session delete")
        }
    }
}

/// SIGSTOPs one live worker, if there is one.
async fn stop_a_worker(url: &str, rng: &mut Rng) {
    let http = reqwest::Client::new();
    if let Some(v) = get(&http, &format!("{url}/api/v1/admin/workers?state=live")).await
        && let Some(list) = v["items"].as_array()
        && let Some(pid) = list
            .get(below(rng, list.len()))
            .and_then(|w| w["pid"].as_i64())
    {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGSTOP,
        );
    }
}

async fn get(http: &reqwest::Client, url: &str) -> Option<Value> {
    let r = http.get(url).send().await.ok()?;
    r.json().await.ok()
}

/// One chatting client: a session, one message at a time, a new session when its own is
/// deleted; every stream read resumes after a drop with the last event id it holds.
async fn client_loop(shared: Arc<Shared>, index: usize) {
    let agents = ["echo", "slow", "echo", "crash", "slow"];
    let mut n = 0;
    'sessions: while !shared.stop.load(Ordering::Relaxed) {
        let agent = agents[(index + n) % agents.len()];
        let Some((session, token)) = create_session(&shared, agent).await else {
            continue;
        };
        let mut stream = Stream::open(&shared, &session, &token).await;
        while !shared.stop.load(Ordering::Relaxed) {
            if shared
                .budget
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| b.checked_sub(1))
                .is_err()
            {
                return;
            }
            n += 1;
            let content = format!("client {index} says hello number {n}");
            let Some(turn) = post(&shared, &session, &token, &content, n, index).await else {
                continue 'sessions;
            };
            shared.ledger.lock().await.accepted.push((
                turn.clone(),
                content.clone(),
                agent.to_owned(),
            ));
            let closed = stream.until_complete(&shared, &turn, &content).await;
            if closed {
                continue 'sessions;
            }
            let jitter = f64::from(u32::try_from(n * 7919 % 100).unwrap_or(0)) / 100.0;
            tokio::time::sleep(shared.pause.mul_f64(0.5 + jitter)).await;
        }
    }
}

async fn create_session(shared: &Shared, agent: &str) -> Option<(String, String)> {
    let url = shared.url();
    let r = reqwest::Client::new()
        .post(format!("{url}/api/v1/agents"))
        .json(&json!({"agentId": agent, "forceNew": true}))
        .send()
        .await;
    match r {
        Ok(r) if r.status().is_success() => {
            let v: Value = r.json().await.ok()?;
            let pair = (
                v["agentId"].as_str()?.to_owned(),
                v["token"].as_str()?.to_owned(),
            );
            shared.sessions.lock().await.push(pair.clone());
            Some(pair)
        }
        _ => {
            tokio::time::sleep(Duration::from_millis(100)).await;
            None
        }
    }
}

/// Posts until accepted (the same message id each try, so a try the gateway took before it
/// died is not a second turn); `None` when the session is gone.
async fn post(
    shared: &Shared,
    session: &str,
    token: &str,
    content: &str,
    n: usize,
    index: usize,
) -> Option<String> {
    let message_id = format!("m-chaos-{index}-{n}");
    let http = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while tokio::time::Instant::now() < deadline {
        let url = shared.url();
        let r = http
            .post(format!("{url}/api/v1/agents/{session}/messages"))
            .bearer_auth(token)
            .json(&json!({"content": content, "messageId": message_id}))
            .send()
            .await;
        match r {
            Ok(r) if r.status().is_success() => {
                let v: Value = r.json().await.ok()?;
                return Some(v["turnId"].as_str()?.to_owned());
            }
            Ok(r) if r.status().is_client_error() => return None,
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    panic!("message {message_id} never accepted");
}

type EventStream = std::pin::Pin<
    Box<dyn futures::Stream<Item = Result<SseEvent, turnwatch::client::ClientError>> + Send>,
>;

/// A session stream that resumes after drops with the last id it holds.
struct Stream {
    session: String,
    token: String,
    cursor: Option<i64>,
    inner: Option<EventStream>,
    /// Deltas per turn, for the text check.
    text: HashMap<String, String>,
}

impl Stream {
    async fn open(shared: &Shared, session: &str, token: &str) -> Self {
        let mut s = Self {
            session: session.to_owned(),
            token: token.to_owned(),
            cursor: None,
            inner: None,
            text: HashMap::new(),
        };
        s.connect(shared).await;
        s
    }

    /// (Re)connects; on `connected`, takes the session's cursor when the gateway gives one.
    async fn connect(&mut self, shared: &Shared) -> bool {
        for _ in 0..600 {
            let url = shared.url();
            let client = Client::new(&url, None);
            if let Ok(s) = client.events(&self.session, &self.token, self.cursor).await {
                let mut s: EventStream = Box::pin(s);
                if let Ok(Some(Ok(first))) =
                    tokio::time::timeout(Duration::from_secs(5), s.next()).await
                    && first.event == "connected"
                {
                    if self.cursor.is_none() {
                        self.cursor = first.data["lastEventId"].as_i64();
                    }
                    self.inner = Some(s);
                    return true;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    /// Reads until `turn`'s `complete`; true when the session was closed (deleted).
    async fn until_complete(&mut self, shared: &Shared, turn: &str, content: &str) -> bool {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let mut closed = false;
        loop {
            if tokio::time::Instant::now() > deadline {
                shared.ledger.lock().await.missing.push(turn.to_owned());
                return true;
            }
            let next = match self.inner.as_mut() {
                Some(s) => tokio::time::timeout(Duration::from_secs(5), s.next()).await,
                None => Ok(None),
            };
            let ev = match next {
                Ok(Some(Ok(ev))) => ev,
                // Dropped, ended or silent: resume after the last id.
                _ => {
                    self.inner = None;
                    if !self.connect(shared).await || closed {
                        shared.ledger.lock().await.missing.push(turn.to_owned());
                        return true;
                    }
                    continue;
                }
            };
            if ev.event == "ping" || ev.event == "connected" {
                continue;
            }
            if let Some(id) = ev.id {
                if self.cursor.is_some_and(|c| id <= c) {
                    shared.ledger.lock().await.bad_ids.push(format!(
                        "{}: id {id} after {:?} ({})",
                        self.session, self.cursor, ev.event
                    ));
                }
                self.cursor = Some(id);
            }
            if ev.event == "closed" {
                closed = true;
                continue;
            }
            let Some(t) = ev.data["turnId"].as_str() else {
                continue;
            };
            if ev.event == "output" {
                let piece = ev.data["content"].as_str().unwrap_or_default();
                self.text.entry(t.to_owned()).or_default().push_str(piece);
            }
            if ev.event == "complete" {
                let mut ledger = shared.ledger.lock().await;
                *ledger.completes.entry(t.to_owned()).or_default() += 1;
                if t == turn {
                    if ev.data["status"] == "completed"
                        && self.text.get(t).map(String::as_str) != Some(content)
                    {
                        ledger
                            .bad_text
                            .push(format!("{t}: {:?} for {content:?}", self.text.get(t)));
                    }
                    drop(ledger);
                    // A deleted session's `closed` follows its last turn's `complete`.
                    return self.drain_closed().await;
                }
            }
        }
    }

    /// After a `complete`, whether the session was closed right behind it.
    async fn drain_closed(&mut self) -> bool {
        let Some(s) = self.inner.as_mut() else {
            return false;
        };
        match tokio::time::timeout(Duration::from_millis(50), s.next()).await {
            Ok(Some(Ok(ev))) => ev.event == "closed",
            Ok(_) => {
                self.inner = None;
                false
            }
            Err(_) => false,
        }
    }
}

/// Waits (guarded) until the gateway reports no open turn.
async fn wait_no_open_turn(url: &str) {
    let http = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = get(&http, &format!("{url}/api/v1/admin/turns?state=open")).await
            && v["items"].as_array().is_some_and(Vec::is_empty)
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "turns still open after the chaos"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits (guarded) until `pid` is no longer a `turnwatch worker` (a reused pid is not ours).
async fn assert_worker_gone(pid: i64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let zombie = stat
            .rsplit(')')
            .next()
            .is_some_and(|s| s.trim_start().starts_with('Z'));
        let ours = !zombie
            && String::from_utf8_lossy(&cmdline).contains("worker")
            && String::from_utf8_lossy(&cmdline).contains(BIN);
        if !ours {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "worker process {pid} outlived its gateway: {}",
            String::from_utf8_lossy(&cmdline).replace('\0', " ")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
