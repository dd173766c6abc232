//! The failure matrix across replicas (`replicas.md`, rows 22–27): two or three real
//! `turnwatch gateway` processes on one `PostgreSQL` schema, driven over HTTP like a load
//! balancer that alternates replicas per request; real workers; streams read from a replica
//! that does not run the session.

use std::time::Duration;
use tokio::process::{Child, Command};
use turnwatch::api::admin::ListQuery;
use turnwatch::client::Client;

use crate::harness::{
    BIN, Backend, Data, GUARD, Reader, Session, database_url, gateway_args, gateway_child, post_on,
    session_on,
};

mod rows;

/// One replica: a `turnwatch gateway` process and a client of it.
pub struct Replica {
    pub child: Child,
    pub client: Client,
    pub pid: u32,
    pub url: String,
}

/// Replicas on one fresh `PostgreSQL` schema with test-sized clocks.
pub struct Cluster {
    pub data: Data,
    pub conf: std::path::PathBuf,
}

impl Cluster {
    /// A cluster with a lease of `lease_ms`, a short stop drain, and the test agents:
    /// `echo`, `slow` (20 pieces 150 ms apart), `hang`, `crash` (one delta, then exit 3),
    /// `parent` (an echo worker that first starts `sleep 300` in its group and writes its pid
    /// to `child.pid` in the data directory).
    pub async fn new(lease_ms: u64) -> Option<Self> {
        database_url()?;
        let data = Data::new(Backend::Postgres).await;
        let conf = data.dir.path().join("turnwatch.toml");
        let agent = |name: &str, args: &str| {
            format!(
                "[agents.{name}]\ncommand = [\"{BIN}\", \"worker\", {args}]\n\
                 startup_timeout = \"10s\"\nstall_timeout = \"20s\"\ndeadline = \"25s\"\n"
            )
        };
        let child = data.dir.path().join("child.pid");
        let script = format!(
            "sleep 300 & echo $! > {}; exec {BIN} worker --mode echo",
            child.display()
        );
        let parent = format!(
            "[agents.parent]\ncommand = [\"sh\", \"-c\", {script:?}]\nstartup_timeout = \"10s\"\n"
        );
        let toml = format!(
            "[gateway]\nreplica_lease = \"{lease_ms}ms\"\nstop_drain = \"10s\"\nstop_grace = \"500ms\"\n\
             default_agent = \"echo\"\n{}{}{}{}{parent}",
            agent("echo", "\"--mode\", \"echo\""),
            agent(
                "slow",
                "\"--mode\", \"slow\", \"--deltas\", \"20\", \"--delay-ms\", \"150\""
            ),
            agent("hang", "\"--mode\", \"hang\""),
            agent(
                "crash",
                "\"--mode\", \"crash-after\", \"--after\", \"1\", \"--exit-code\", \"3\""
            ),
        );
        std::fs::write(&conf, toml).unwrap();
        Some(Self { data, conf })
    }

    /// Starts one more replica.
    pub async fn replica(&self) -> Replica {
        let mut cmd = Command::new(BIN);
        cmd.args(gateway_args("127.0.0.1:0", &self.data.url, &self.conf));
        let (child, url) = gateway_child(cmd).await;
        let pid = child.id().unwrap();
        Replica {
            child,
            client: Client::new(&url, None),
            pid,
            url,
        }
    }
}

impl Replica {
    /// A new session of `agent`.
    pub async fn session(&self, agent: &str) -> Session {
        session_on(&self.client, agent).await
    }

    /// Posts a message here; returns the turn id.
    pub async fn post(&self, s: &Session, content: &str) -> String {
        post_on(&self.client, s, content).await
    }

    /// Opens the session's stream here and waits for `connected`.
    pub async fn open(&self, s: &Session) -> Reader {
        let stream = self.client.events(&s.id, &s.token, None).await.unwrap();
        Reader::new(Box::new(stream)).await
    }

    /// Sends a signal to the replica's process.
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid as i32), signal).unwrap();
    }

    /// Waits (guarded) until this replica runs a live worker for the session's turn; returns
    /// (worker id, generation, pid).
    pub async fn live_worker(&self, session: &Session) -> (String, u32, u32) {
        let deadline = tokio::time::Instant::now() + GUARD;
        loop {
            let page = self
                .client
                .workers(&ListQuery::of("busy", 100))
                .await
                .unwrap();
            if let Some(w) = page
                .items
                .iter()
                .find(|w| w.session_id.as_str() == session.id)
            {
                return (w.worker_id.to_string(), w.generation, w.pid);
            }
            assert!(tokio::time::Instant::now() < deadline, "no busy worker");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

/// A turn in flight: a new session of `agent` run by replica `a` (the message posted there)
/// and streamed from replica `b`, once `a` runs a busy worker for it.
pub async fn in_flight(a: &Replica, b: &Replica, agent: &str, content: &str) -> InFlight {
    let session = a.session(agent).await;
    let on_b = b.open(&session).await;
    let turn = a.post(&session, content).await;
    let worker = a.live_worker(&session).await;
    InFlight {
        session,
        on_b,
        turn,
        worker,
    }
}

/// What [`in_flight`] set up.
pub struct InFlight {
    pub session: Session,
    /// The session's stream, read from the other replica.
    pub on_b: Reader,
    pub turn: String,
    /// Its worker: id, generation, pid.
    pub worker: (String, u32, u32),
}

/// The replica id that owns the session, from the store.
pub async fn owner(data: &Data, session: &Session) -> Option<String> {
    data.db()
        .await
        .text("SELECT owner FROM sessions WHERE id = $1", &[&session.id])
        .await
}
