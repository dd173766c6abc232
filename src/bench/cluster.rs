//! Replicas for the figures of `replicas.md`: real `turnwatch gateway` processes on one
//! `PostgreSQL` schema, each on a port of its own that it keeps across restarts (so a client's
//! resuming stream finds it again), and a client that spreads requests over them round-robin
//! as a load balancer without session affinity does.

use nix::sys::signal::Signal;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::process::spawn_gateway;
use crate::client::Client;

/// The reference worker's arguments for each agent of a cluster, by name.
pub type Agents<'a> = &'a [(&'a str, &'a [&'a str])];

/// What the replicas of one figure share: the schema's URL and a config file.
pub struct Cluster {
    url: String,
    dir: tempfile::TempDir,
}

impl Cluster {
    /// A cluster on the schema at `url`: `[gateway]` gets `lease`, a stop drain of 10 s and
    /// these agents (the first is the default), each with generous clocks.
    pub fn new(url: &str, lease: Duration, agents: Agents<'_>) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let mut toml = format!(
            "[gateway]\nreplica_lease = \"{}ms\"\nstop_drain = \"10s\"\nstop_grace = \"500ms\"\n\
             default_agent = \"{}\"\n",
            lease.as_millis(),
            agents.first().map_or("echo", |a| a.0),
        );
        for (name, args) in agents {
            let args: Vec<String> = args.iter().map(|a| format!("{a:?}")).collect();
            let _ = write!(
                toml,
                "[agents.{name}]\ncommand = [\"turnwatch\", \"worker\", {}]\n\
                 startup_timeout = \"10s\"\nstall_timeout = \"30s\"\ndeadline = \"60s\"\n\
                 queue_timeout = \"30s\"\n",
                args.join(", ")
            );
        }
        std::fs::write(dir.path().join("turnwatch.toml"), toml)?;
        Ok(Self {
            url: url.to_owned(),
            dir,
        })
    }

    /// Starts a replica on a free loopback port.
    pub async fn replica(&self) -> anyhow::Result<Replica> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        self.replica_on(port).await
    }

    /// The config file its replicas are started with.
    pub fn config_file(&self) -> std::path::PathBuf {
        self.dir.path().join("turnwatch.toml")
    }

    /// Starts a replica on this port (a restarted one keeps its predecessor's).
    pub async fn replica_on(&self, port: u16) -> anyhow::Result<Replica> {
        let listen = format!("127.0.0.1:{port}");
        let conf = self.config_file();
        let conf = conf.to_string_lossy();
        let args = [
            "--listen",
            &listen,
            "--database",
            &self.url,
            "--config",
            &conf,
        ];
        let (child, url, _) = spawn_gateway(&args, self.dir.path()).await?;
        let pid = child
            .id()
            .ok_or_else(|| anyhow::anyhow!("exited at once"))?;
        Ok(Replica {
            client: Client::new(&url, None),
            child,
            pid,
            port,
        })
    }
}

/// One `turnwatch gateway` process of a cluster; killed if dropped.
pub struct Replica {
    /// A client of it.
    pub client: Client,
    /// Its process.
    pub child: tokio::process::Child,
    /// Its pid.
    pub pid: u32,
    /// Its port.
    pub port: u16,
}

impl Replica {
    /// Sends it a signal.
    pub fn signal(&self, signal: Signal) -> anyhow::Result<()> {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid as i32), signal)?;
        Ok(())
    }

    /// Stops it gracefully (SIGTERM) and waits for its exit (SIGKILL after 30 s); returns how
    /// long the stop took.
    pub async fn stop(mut self) -> anyhow::Result<Duration> {
        let t0 = tokio::time::Instant::now();
        self.signal(Signal::SIGTERM)?;
        if tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .is_err()
        {
            self.child.kill().await?;
            anyhow::bail!("replica {} did not stop within 30 s of SIGTERM", self.pid);
        }
        Ok(t0.elapsed())
    }

    /// Kills it (SIGKILL) and reaps it.
    pub async fn kill(mut self) -> anyhow::Result<()> {
        self.signal(Signal::SIGKILL)?;
        self.child.wait().await?;
        Ok(())
    }

    /// Its replica id, from its own replicas list (by pid).
    pub async fn id(&self) -> anyhow::Result<String> {
        let list = self.client.replicas().await?.items;
        list.iter()
            .find(|r| r.pid == self.pid)
            .map(|r| r.replica_id.to_string())
            .ok_or_else(|| anyhow::anyhow!("replica {} is not in its own list", self.pid))
    }
}

/// Clients of several replicas handed out round-robin, one per request (a load balancer with
/// no session affinity); cheap to clone, the turn is shared.
#[derive(Clone)]
pub struct RoundRobin {
    clients: Arc<Vec<Client>>,
    next: Arc<AtomicUsize>,
}

impl RoundRobin {
    /// Over these clients.
    pub fn new(clients: Vec<Client>) -> Self {
        Self {
            clients: Arc::new(clients),
            next: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// The client for the next request.
    pub fn pick(&self) -> &Client {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        &self.clients[i % self.clients.len()]
    }
}
