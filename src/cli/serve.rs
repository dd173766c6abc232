//! `turnwatch gateway`: the gateway as a process of its own, serving until SIGTERM or ctrl-c.

use clap::Args;
use std::path::PathBuf;

use crate::config::{Config, data_dir};

/// The gateway's options.
#[derive(Debug, Args)]
pub struct GatewayArgs {
    /// Listen address (default from the config, else 127.0.0.1:7420; port 0 picks one).
    #[arg(long)]
    listen: Option<String>,
    /// Database URL: `sqlite://PATH` or `postgres://USER@HOST/DB` (default: the data dir's gateway.db).
    #[arg(long)]
    database: Option<String>,
    /// Config file (turnwatch.toml).
    #[arg(long, env = "TURNWATCH_CONFIG")]
    config: Option<PathBuf>,
    /// This replica's name in the admin API (else `[gateway] replica_name`, else the host name).
    #[arg(long)]
    replica_name: Option<String>,
    /// Adds the console demo's agents (healthy, slow, crashing, hanging, failing ones) to the
    /// config's, for `turnwatch --url URL --demo` traffic against this gateway.
    #[arg(long)]
    demo_agents: bool,
}

/// Runs the gateway until a stop signal; returns the exit code.
pub(super) async fn gateway(args: GatewayArgs) -> anyhow::Result<i32> {
    let mut config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if args.demo_agents {
        config = super::embedded::demo_config(Some(config));
    }
    if let Some(l) = args.listen {
        config.gateway.listen = l;
    }
    if let Some(name) = args.replica_name {
        config.gateway.replica_name = Some(name);
    }
    let database = match args.database.or_else(|| config.gateway.database.clone()) {
        Some(d) => d,
        None => {
            let dir = data_dir();
            std::fs::create_dir_all(&dir).map_err(|e| {
                anyhow::anyhow!("cannot create the data dir {}: {e}", dir.display())
            })?;
            format!("sqlite://{}", dir.join("gateway.db").display())
        }
    };
    super::hide_environment();
    let listener = bind_listener(&config.gateway.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.gateway.listen))?;
    // Printed once the store is open, migrated and recovered: a script waiting for this line
    // may use the gateway at once.
    let ready = |addr| println!("turnwatch gateway listening on http://{addr}");
    crate::gateway::run(config, &database, listener, ready, stop_signal()).await?;
    Ok(0)
}

/// Binds `addr` with a listen queue of 1,024 (std's 128 overflows under a burst of connects:
/// the client's SYN is dropped and retried a second later).
async fn bind_listener(addr: &str) -> std::io::Result<tokio::net::TcpListener> {
    let mut last = None;
    for a in tokio::net::lookup_host(addr).await? {
        let socket = if a.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        match socket.bind(a).and_then(|()| socket.listen(1024)) {
            Ok(l) => return Ok(l),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("the address resolved to nothing")))
}

/// Resolves on ctrl-c (SIGINT) or SIGTERM. The handlers are installed when this is called, not
/// when the future is first polled: a script that sends SIGTERM as soon as it reads the
/// "listening" line gets a graceful stop, not the default action.
fn stop_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{Signal, SignalKind, signal};
    async fn recv(s: Option<&mut Signal>) {
        match s {
            Some(s) => {
                s.recv().await;
            }
            None => std::future::pending().await,
        }
    }
    let mut int = signal(SignalKind::interrupt()).ok();
    let mut term = signal(SignalKind::terminate()).ok();
    async move {
        tokio::select! {
            () = recv(int.as_mut()) => {}
            () = recv(term.as_mut()) => {}
        }
    }
}
