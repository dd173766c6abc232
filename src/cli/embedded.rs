//! The console's embedded gateway: with no `--url` and no context, the command line starts a
//! gateway in this process (`SQLite` in the data dir, an ephemeral loopback port, a generated
//! operator token) and the console attaches to it over HTTP like to any other.

use std::path::Path;

use crate::config::{AgentConfig, Config, Role, TokenConfig};
use crate::gateway::{self, GatewayError, RunningGateway};

/// A running embedded gateway and the operator token to reach it.
pub struct Embedded {
    /// The gateway.
    pub gateway: RunningGateway,
    /// Its operator token.
    pub token: String,
}

/// Starts a gateway on `127.0.0.1:0` with `config`'s agents and a fresh operator token.
pub async fn start(
    mut config: Config,
    data_dir: &Path,
    db_name: &str,
) -> Result<Embedded, GatewayError> {
    std::fs::create_dir_all(data_dir)?;
    let token = format!("tw_console_{}", uuid::Uuid::new_v4().simple());
    config.tokens.push(TokenConfig {
        name: "console".into(),
        secret: Some(token.clone()),
        secret_env: None,
        role: Role::Operator,
    });
    let url = format!("sqlite://{}", data_dir.join(db_name).display());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let gateway = gateway::start(config, &url, listener).await?;
    Ok(Embedded { gateway, token })
}

fn agent(args: &[&str], tweak: impl FnOnce(&mut AgentConfig)) -> AgentConfig {
    let mut command = vec!["turnwatch".to_owned(), "worker".to_owned()];
    command.extend(args.iter().map(|a| (*a).to_owned()));
    let mut a = AgentConfig::with_command(command);
    a.idle_timeout = std::time::Duration::from_secs(15);
    a.deadline = std::time::Duration::from_secs(60);
    a.stall_timeout = std::time::Duration::from_secs(8);
    a.startup_timeout = std::time::Duration::from_secs(3);
    tweak(&mut a);
    a
}

/// The demo's agents: healthy, slow, crashing (exit codes and signals), hanging, heartbeating
/// without progress, never ready, missing, noisy and failing ones, with short clocks so every
/// failure shows within seconds. They are added to `base` (a `--config` file's agents and
/// settings), whose own agents keep their names; with no file they are the only agents.
pub fn demo_config(base: Option<Config>) -> Config {
    let from_file = base.is_some();
    let mut c = base.unwrap_or_else(|| Config {
        agents: std::collections::BTreeMap::new(),
        ..Config::default()
    });
    for (name, agent) in demo_agents() {
        c.agents.entry(name.to_owned()).or_insert(agent);
    }
    if !from_file {
        c.gateway.default_agent = "echo".into();
    }
    c
}

/// The demo's agents by name, each a reference worker in one mode.
fn demo_agents() -> [(&'static str, AgentConfig); 13] {
    [
        ("echo", agent(&["--mode", "echo", "--deltas", "5"], |_| {})),
        (
            "slow",
            agent(
                &["--mode", "slow", "--deltas", "20", "--delay-ms", "500"],
                |_| {},
            ),
        ),
        (
            "crash-exit1",
            agent(
                &["--mode", "crash-after", "--after", "2", "--exit-code", "1"],
                |_| {},
            ),
        ),
        (
            "crash-kill",
            agent(
                &["--mode", "crash-after", "--after", "1", "--signal", "KILL"],
                |_| {},
            ),
        ),
        (
            "crash-abort",
            agent(&["--mode", "crash-after", "--signal", "ABRT"], |_| {}),
        ),
        (
            "exit0",
            agent(&["--mode", "crash-after", "--exit-code", "0"], |_| {}),
        ),
        ("hang", agent(&["--mode", "hang"], |_| {})),
        (
            "heartbeat",
            agent(
                &["--mode", "heartbeat-only", "--interval-ms", "500"],
                |_| {},
            ),
        ),
        ("never-ready", agent(&["--mode", "never-ready"], |_| {})),
        (
            "missing",
            agent(&[], |a| {
                a.command = vec!["/nonexistent/agent-binary".into()]
            }),
        ),
        ("garbage", agent(&["--mode", "garbage"], |_| {})),
        ("error", agent(&["--mode", "error-reply"], |_| {})),
        // Production-like clocks: a stuck turn that stays long enough to be inspected
        // (`enter` on it: why is it stuck) and cancelled before the gateway ends it.
        (
            "stuck",
            agent(&["--mode", "hang"], |a| {
                a.stall_timeout = std::time::Duration::from_secs(90);
                a.deadline = std::time::Duration::from_secs(300);
            }),
        ),
    ]
}
