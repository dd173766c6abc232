//! Starting a gateway with chosen agents, talking to it, and checking no worker outlives it.

use futures::StreamExt;
use serde_json::Value;
use sqlx::Row;
use std::time::Duration;
use turnwatch::client::{Client, SseEvent};
use turnwatch::config::{AgentConfig, Config};
use turnwatch::gateway::{self, RunningGateway};

mod data;
pub use data::{Backend, Data, Db, database_url};
pub(crate) use data::{on_both, on_pool};

/// The binary under test; its `worker` subcommand is the reference worker.
pub const BIN: &str = env!("CARGO_BIN_EXE_turnwatch");
/// Guard against hangs only; no test asserts on time.
pub const GUARD: Duration = Duration::from_secs(30);

/// An agent running the reference worker with these arguments and test-sized clocks.
pub fn worker(args: &[&str]) -> AgentConfig {
    let mut command = vec![BIN.to_owned(), "worker".to_owned()];
    command.extend(args.iter().map(|a| (*a).to_owned()));
    let mut a = AgentConfig::with_command(command);
    a.startup_timeout = Duration::from_secs(10);
    a.stall_timeout = Duration::from_secs(20);
    a.deadline = Duration::from_secs(25);
    a.queue_timeout = Duration::from_secs(10);
    a
}

/// A configured token `name` with this role; its secret is `NAME-secret`.
pub fn token(name: &str, role: turnwatch::config::Role) -> turnwatch::config::TokenConfig {
    turnwatch::config::TokenConfig {
        name: name.into(),
        secret: Some(format!("{name}-secret")),
        secret_env: None,
        role,
    }
}

/// A config with these agents (the first is the default).
pub fn config(agents: Vec<(&str, AgentConfig)>) -> Config {
    let mut c = Config::default();
    agents[0].0.clone_into(&mut c.gateway.default_agent);
    c.gateway.stop_grace = Duration::from_millis(500);
    c.agents = agents.into_iter().map(|(n, a)| (n.to_owned(), a)).collect();
    c
}

/// A session as a client holds it.
#[derive(Clone, Debug)]
pub struct Session {
    pub id: String,
    pub token: String,
}

/// A gateway in this process on fresh data.
pub struct TestGateway {
    pub gw: Option<RunningGateway>,
    pub url: String,
    pub client: Client,
    pub http: reqwest::Client,
    /// Its data, kept (and, on `PostgreSQL`, its schema) as long as the gateway.
    pub data: Data,
}

impl TestGateway {
    /// A gateway on a fresh `SQLite` file.
    pub async fn start(config: Config) -> Self {
        Self::start_with(Backend::Sqlite, config).await
    }

    /// A gateway on fresh data of this backend.
    pub async fn start_with(backend: Backend, config: Config) -> Self {
        Self::start_on(config, Data::new(backend).await).await
    }

    /// A gateway on this data (perhaps another gateway's, which has stopped).
    pub async fn start_on(config: Config, data: Data) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let gw = gateway::start(config, &data.url, listener).await.unwrap();
        let url = gw.url();
        Self {
            client: Client::new(&url, None),
            http: reqwest::Client::new(),
            url,
            gw: Some(gw),
            data,
        }
    }

    pub async fn session(&self, agent: &str) -> Session {
        session_on(&self.client, agent).await
    }

    /// Posts a message; returns the turn id.
    pub async fn post(&self, s: &Session, content: &str) -> String {
        post_on(&self.client, s, content).await
    }

    /// Opens the session's stream and waits for `connected`.
    pub async fn open(&self, s: &Session, last: Option<i64>) -> Reader {
        let stream = self.client.events(&s.id, &s.token, last).await.unwrap();
        Reader::new(Box::new(stream)).await
    }

    /// Creates a session, opens its stream, posts `content`, reads until the turn's `complete`.
    pub async fn turn(&self, agent: &str, content: &str) -> (Session, String, Vec<SseEvent>) {
        let s = self.session(agent).await;
        let mut r = self.open(&s, None).await;
        let turn = self.post(&s, content).await;
        let events = r.until_complete(&turn).await;
        r.assert_quiet(Duration::from_millis(300)).await;
        (s, turn, events)
    }

    /// A direct connection to its database.
    pub async fn db(&self) -> Db {
        self.data.db().await
    }

    /// One row of `workers` as JSON-ish columns.
    pub async fn worker_rows(&self, session: &Session) -> Vec<WorkerRow> {
        let sql = "SELECT worker_id, generation, pid, state, exit_code, signal, intentional, \
                   exit_reason FROM workers WHERE session_id = $1 ORDER BY generation";
        on_pool!(&self.db().await, p => {
            let rows = sqlx::query(sql).bind(&session.id).fetch_all(p).await.unwrap();
            rows.iter().map(|r| WorkerRow {
                worker_id: r.get("worker_id"),
                generation: r.get::<i64, _>("generation") as u32,
                pid: r.get::<i64, _>("pid") as u32,
                state: r
                    .get::<String, _>("state")
                    .parse()
                    .expect("a state this version knows"),
                exit_code: r.get("exit_code"),
                signal: r.get("signal"),
                intentional: r.get("intentional"),
                reason: r.get("exit_reason"),
            }).collect()
        })
    }

    /// Polls until `f` holds for the session's worker rows (guarded).
    pub async fn wait_workers(
        &self,
        s: &Session,
        f: impl Fn(&[WorkerRow]) -> bool,
    ) -> Vec<WorkerRow> {
        let deadline = tokio::time::Instant::now() + GUARD;
        loop {
            let rows = self.worker_rows(s).await;
            if f(&rows) {
                return rows;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "worker rows never matched: {rows:?}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Rows of `worker_output` of a kind.
    pub async fn output_rows(&self, kind: &str) -> Vec<(Option<String>, String)> {
        let sql = "SELECT turn_id, reason FROM worker_output WHERE kind = $1 ORDER BY id";
        on_pool!(&self.db().await, p => sqlx::query_as(sql).bind(kind).fetch_all(p).await).unwrap()
    }

    /// The state the store records for a turn.
    pub async fn turn_state(&self, turn: &str) -> String {
        let db = self.db().await;
        let sql = "SELECT state FROM turns WHERE id = $1";
        db.text(sql, &[turn]).await.expect("the turn is recorded")
    }

    /// Stops the gateway gracefully and checks that every worker process it started is gone.
    pub async fn stop(mut self) {
        self.halt().await;
    }

    async fn halt(&mut self) {
        let pids = self.db().await.ints("SELECT pid FROM workers").await;
        self.gw.take().unwrap().stop().await.unwrap();
        for pid in pids {
            assert_gone(pid as u32).await;
        }
        self.audit_admin_log().await;
    }

    /// Every test ends by checking the admin log against the state it describes: each ended
    /// turn has exactly one `turn.completed`/`turn.failed` with its code, preceded by
    /// `turn.stranded` exactly when that code strands; each exited worker exactly one
    /// `worker.exited` with its exit code and intent.
    async fn audit_admin_log(&self) {
        let db = self.db().await;
        let log = db
            .pairs("SELECT kind, data FROM admin_events ORDER BY seq")
            .await;
        let log: Vec<(String, Value)> = log
            .into_iter()
            .map(|(k, d)| (k, serde_json::from_str(&d).unwrap()))
            .collect();
        let sql = "SELECT id, state, code FROM turns WHERE ended_at IS NOT NULL";
        let turns: Vec<(String, String, Option<String>)> =
            on_pool!(&db, p => sqlx::query_as(sql).fetch_all(p).await).unwrap();
        for (id, state, code) in turns {
            let about: Vec<&(String, Value)> = log
                .iter()
                .filter(|(k, d)| k.starts_with("turn.") && d["turnId"] == id.as_str())
                .collect();
            let ends: Vec<_> = about
                .iter()
                .filter(|(k, _)| k == "turn.completed" || k == "turn.failed")
                .collect();
            assert_eq!(
                ends.len(),
                1,
                "turn {id} must have one terminal admin event: {about:?}"
            );
            assert_eq!(ends[0].0, format!("turn.{state}"), "{about:?}");
            assert_eq!(ends[0].1["code"].as_str(), code.as_deref(), "{about:?}");
            let strands = code
                .as_deref()
                .and_then(|c| c.parse().ok())
                .is_some_and(turnwatch::api::ErrorCode::strands);
            let stranded: Vec<_> = about
                .iter()
                .map(|(k, _)| k.as_str())
                .filter(|k| *k == "turn.stranded")
                .collect();
            assert_eq!(
                stranded.len(),
                usize::from(strands),
                "turn {id} ({code:?}): {about:?}"
            );
        }
        let sql = "SELECT worker_id, generation, exit_code, intentional FROM workers \
                   WHERE exited_at IS NOT NULL";
        let workers: Vec<(String, i64, Option<i32>, Option<bool>)> =
            on_pool!(&db, p => sqlx::query_as(sql).fetch_all(p).await).unwrap();
        for (id, generation, code, intentional) in workers {
            let exits: Vec<_> = log
                .iter()
                .filter(|(k, d)| {
                    k == "worker.exited"
                        && d["workerId"] == id.as_str()
                        && d["generation"] == generation
                })
                .collect();
            assert_eq!(exits.len(), 1, "worker {id}/{generation}: {exits:?}");
            assert_eq!(exits[0].1["exitCode"].as_i64(), code.map(i64::from));
            assert_eq!(exits[0].1["intentional"].as_bool(), intentional);
        }
    }

    /// Stops it gracefully and starts a new gateway on the same data.
    pub async fn restart(mut self, config: Config) -> Self {
        self.halt().await;
        Self::start_on(config, self.data).await
    }

    /// Stops it gracefully and starts a new gateway on the same data and the same address.
    pub async fn restart_in_place(mut self, config: Config) -> Self {
        let addr = self.gw.as_ref().unwrap().addr;
        self.halt().await;
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let gw = gateway::start(config, &self.data.url, listener)
            .await
            .unwrap();
        Self {
            gw: Some(gw),
            ..self
        }
    }
}

/// A new session of `agent` through `client`.
pub async fn session_on(client: &Client, agent: &str) -> Session {
    let req = turnwatch::api::CreateSession {
        agent_id: Some(agent.into()),
        ..Default::default()
    };
    let s = client.create_session(&req).await.unwrap();
    Session {
        id: s.agent_id,
        token: s.token,
    }
}

/// Posts a message through `client`; returns the turn id.
pub async fn post_on(client: &Client, s: &Session, content: &str) -> String {
    client
        .post_message(&s.id, &s.token, content, None)
        .await
        .unwrap()
        .turn_id
        .to_string()
}

/// The arguments of `turnwatch gateway` on `listen` with this database and config file.
pub fn gateway_args(listen: &str, db_url: &str, conf: &std::path::Path) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = ["gateway", "--listen", listen, "--database", db_url]
        .iter()
        .map(Into::into)
        .collect();
    args.push("--config".into());
    args.push(conf.into());
    args
}

/// Spawns `cmd` (a `turnwatch gateway`, perhaps behind a wrapper such as `setpriv`) and waits
/// (guarded) for its `listening on` line; returns the process, killed when dropped, and its URL.
pub async fn gateway_child(mut cmd: tokio::process::Command) -> (tokio::process::Child, String) {
    use tokio::io::AsyncBufReadExt;
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let first = tokio::time::timeout(GUARD, lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .expect("the gateway says where it listens");
    let url = first.rsplit(' ').next().unwrap().to_owned();
    (child, url)
}

/// Stops a gateway process gracefully (SIGTERM) and waits for it.
pub async fn stop_child(gw: &mut tokio::process::Child) {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(gw.id().unwrap()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    tokio::time::timeout(GUARD, gw.wait())
        .await
        .expect("the gateway did not stop")
        .unwrap();
}

/// Waits (guarded) until no process has this pid.
pub async fn assert_gone(pid: u32) {
    let deadline = tokio::time::Instant::now() + GUARD;
    while nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), None).is_ok() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "worker process {pid} outlived the gateway"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[derive(Clone, Debug)]
pub struct WorkerRow {
    pub worker_id: String,
    pub generation: u32,
    pub pid: u32,
    pub state: turnwatch::api::WorkerState,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub intentional: Option<bool>,
    pub reason: Option<String>,
}

pub type EventStream =
    dyn futures::Stream<Item = Result<SseEvent, turnwatch::client::ClientError>> + Unpin + Send;

/// Reads a session stream, remembering what it saw.
pub struct Reader {
    stream: Box<EventStream>,
    pub seen: Vec<SseEvent>,
    pub connected: Option<SseEvent>,
}

impl Reader {
    /// Reads `stream`, once its `connected` event has come.
    pub async fn new(stream: Box<EventStream>) -> Self {
        let mut r = Reader {
            stream,
            seen: Vec::new(),
            connected: None,
        };
        let first = r.next().await.expect("a connected event");
        assert_eq!(first.event, "connected");
        r.seen.clear();
        r.connected = Some(first);
        r
    }

    /// The next non-ping event, `None` when the stream ends.
    pub async fn next(&mut self) -> Option<SseEvent> {
        loop {
            let ev = tokio::time::timeout(GUARD, self.stream.next())
                .await
                .expect("stream went silent")?;
            let ev = ev.ok()?;
            if ev.event != "ping" {
                self.seen.push(ev.clone());
                return Some(ev);
            }
        }
    }

    /// Events up to and including `turn`'s `complete`; the turn's events only.
    pub async fn until_complete(&mut self, turn: &str) -> Vec<SseEvent> {
        let mut out = Vec::new();
        loop {
            let ev = self
                .next()
                .await
                .unwrap_or_else(|| panic!("stream ended before {turn} completed: {out:?}"));
            if ev.data.get("turnId").and_then(Value::as_str) == Some(turn) {
                let done = ev.event == "complete";
                out.push(ev);
                if done {
                    return out;
                }
            }
        }
    }

    /// Asserts nothing but pings arrives for `d`.
    pub async fn assert_quiet(&mut self, d: Duration) {
        if let Ok(Some(Ok(ev))) = tokio::time::timeout(d, self.stream.next()).await {
            assert_eq!(ev.event, "ping", "expected silence, got {ev:?}");
        }
    }
}

/// Asserts a failed turn's shape: `error`, `agent-error`, then one `complete{failed}`; returns
/// the error data.
pub fn assert_failed(events: &[SseEvent], code: &str) -> Value {
    let names: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
    let n = names.len();
    assert!(n >= 3, "too few events: {names:?}");
    assert_eq!(
        &names[n - 3..],
        ["error", "agent-error", "complete"],
        "{names:?}"
    );
    assert_eq!(
        names.iter().filter(|e| **e == "complete").count(),
        1,
        "{names:?}"
    );
    let err = &events[n - 3].data;
    assert_eq!(err["code"], code, "{err}");
    assert!(
        err["error"].as_str().is_some_and(|s| s.len() > 10),
        "a sentence: {err}"
    );
    assert_eq!(events[n - 2].data, *err);
    assert_eq!(events[n - 1].data["status"], "failed");
    err.clone()
}

/// Asserts a completed turn; returns its final text.
pub fn assert_completed(events: &[SseEvent]) -> String {
    let last = events.last().unwrap();
    assert_eq!(last.event, "complete", "{events:?}");
    assert_eq!(last.data["status"], "completed");
    assert_eq!(events.iter().filter(|e| e.event == "complete").count(), 1);
    assert!(!events.iter().any(|e| e.event == "error"), "{events:?}");
    last.data["finalText"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}
