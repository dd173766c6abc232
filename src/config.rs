//! `turnwatch.toml`: the gateway's agents, limits and tokens. Durations are humantime strings.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The longest a stream ticket may live (`gateway.stream_ticket_ttl`).
pub const MAX_TICKET_TTL: Duration = Duration::from_secs(60);

/// A config file that could not be read or understood; the message names the file, line and key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has a wrong key or value.
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line, column and key.
        message: String,
    },
    /// The file parses but says something impossible.
    #[error("invalid config file {path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// The whole configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Gateway-wide settings.
    #[serde(default)]
    pub gateway: GatewayConfig,
    /// Agents by name.
    #[serde(default)]
    pub agents: BTreeMap<String, AgentConfig>,
    /// Bearer tokens.
    #[serde(default)]
    pub tokens: Vec<TokenConfig>,
    /// Console contexts: named gateways.
    #[serde(default)]
    pub contexts: BTreeMap<String, ContextConfig>,
}

/// One `[contexts.NAME]` table: a gateway the console can attach to.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContextConfig {
    /// Its URL.
    pub url: String,
    /// An operator or read-only token.
    #[serde(default)]
    pub token: Option<String>,
    /// The environment variable holding the token.
    #[serde(default)]
    pub token_env: Option<String>,
    /// Attach read-only.
    #[serde(default)]
    pub readonly: bool,
}

/// The `[gateway]` table.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    /// Listen address.
    pub listen: String,
    /// Database URL (`sqlite://PATH` or `postgres://USER@HOST/DB`); the data dir's file when absent.
    pub database: Option<String>,
    /// The agent used when a session names none.
    pub default_agent: String,
    /// The cap on live worker processes.
    pub max_workers: usize,
    /// The largest accepted request body.
    pub max_body_bytes: usize,
    /// The largest accepted worker stdout line.
    pub max_line_bytes: usize,
    /// How long a stopping worker gets after `shutdown`, and again after SIGTERM.
    #[serde(with = "humantime_serde")]
    pub stop_grace: Duration,
    /// How long events are kept after their turn ended.
    #[serde(with = "humantime_serde")]
    pub event_retention: Duration,
    /// How long ended turns, exited workers, admin events and finished sessions are kept.
    #[serde(with = "humantime_serde")]
    pub history_retention: Duration,
    /// The `retry:` advice sent to SSE clients.
    #[serde(with = "humantime_serde")]
    pub sse_retry: Duration,
    /// How long a session token is valid (checked when a request or stream starts).
    #[serde(with = "humantime_serde")]
    pub token_ttl: Duration,
    /// Browser origins (`scheme://host[:port]`) allowed to call the Agent API and its streams
    /// besides the gateway's own: preflights answered, responses readable (CORS).
    pub cors_origins: Vec<String>,
    /// Browser origins allowed to call the admin API and `/metrics`; none by default (admin
    /// routes stay closed to browsers unless listed here).
    pub admin_cors_origins: Vec<String>,
    /// Where clients reach the gateway (`https://chat.example/`), for the absolute URLs of
    /// Lobu-shaped answers; `http://` and the request's `Host` when absent.
    pub public_url: Option<String>,
    /// How long a stream ticket (`POST …/stream-ticket`) may wait to be used: at most 60 s.
    #[serde(with = "humantime_serde")]
    pub stream_ticket_ttl: Duration,
    /// How long a connection may take to send a complete request head (and may sit idle
    /// between requests) before the gateway closes it.
    #[serde(with = "humantime_serde")]
    pub header_timeout: Duration,
    /// The cap on open client connections; by default the descriptor limit less a reserve for
    /// workers, the database and `/healthz`.
    pub max_connections: Option<usize>,
    /// How long a replica's registration holds without renewal (renewed every third of it);
    /// a replica whose lease ran out is lost.
    #[serde(with = "humantime_serde")]
    pub replica_lease: Duration,
    /// This replica's name in the admin API; the host name when absent.
    pub replica_name: Option<String>,
    /// On a graceful stop with live peers, how long turns in flight may finish before they
    /// fail `gateway_shutdown` (queued turns go to the peers).
    #[serde(with = "humantime_serde")]
    pub stop_drain: Duration,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:7420".into(),
            database: None,
            default_agent: "echo".into(),
            max_workers: 256,
            max_body_bytes: 1024 * 1024,
            max_line_bytes: 1024 * 1024,
            stop_grace: Duration::from_secs(2),
            event_retention: Duration::from_secs(15 * 60),
            history_retention: Duration::from_secs(7 * 24 * 3600),
            sse_retry: Duration::from_secs(3),
            token_ttl: Duration::from_secs(24 * 3600),
            cors_origins: Vec::new(),
            admin_cors_origins: Vec::new(),
            stream_ticket_ttl: Duration::from_secs(30),
            public_url: None,
            header_timeout: Duration::from_secs(10),
            max_connections: None,
            replica_lease: Duration::from_secs(5),
            stop_drain: Duration::from_secs(30),
            replica_name: None,
        }
    }
}

/// One `[agents.NAME]` table: how to start its worker and the clocks its turns run on.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// The worker command and its arguments; a first word `turnwatch` means this very binary.
    pub command: Vec<String>,
    /// Extra environment for the worker. A worker's environment is otherwise only `PATH`,
    /// `HOME`, `LANG`, `LC_*`, `TZ`, `TMPDIR`, `USER` and its `TURNWATCH_*` values.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// More of the gateway's environment variables to pass to the worker, by name. Never a
    /// token's `secret_env` (refused at load).
    #[serde(default)]
    pub inherit_env: Vec<String>,
    /// The worker's working directory.
    #[serde(default)]
    pub cwd: Option<PathBuf>,
    /// How long a new worker has to say `ready`.
    #[serde(default = "defaults::startup", with = "humantime_serde")]
    pub startup_timeout: Duration,
    /// How long a turn may go without progress (heartbeats do not count).
    #[serde(default = "defaults::stall", with = "humantime_serde")]
    pub stall_timeout: Duration,
    /// The hard limit on one turn, from dispatch.
    #[serde(default = "defaults::deadline", with = "humantime_serde")]
    pub deadline: Duration,
    /// How long an idle worker lives before it is reaped.
    #[serde(default = "defaults::idle", with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// How long a turn may wait for worker capacity.
    #[serde(default = "defaults::queue", with = "humantime_serde")]
    pub queue_timeout: Duration,
}

mod defaults {
    use std::time::Duration;
    pub fn startup() -> Duration {
        Duration::from_secs(10)
    }
    pub fn stall() -> Duration {
        Duration::from_secs(60)
    }
    pub fn deadline() -> Duration {
        Duration::from_secs(600)
    }
    pub fn idle() -> Duration {
        Duration::from_secs(300)
    }
    pub fn queue() -> Duration {
        Duration::from_secs(30)
    }
}

impl AgentConfig {
    /// An agent running `command` with the default clocks.
    pub fn with_command(command: Vec<String>) -> Self {
        Self {
            command,
            env: BTreeMap::new(),
            inherit_env: Vec::new(),
            cwd: None,
            startup_timeout: defaults::startup(),
            stall_timeout: defaults::stall(),
            deadline: defaults::deadline(),
            idle_timeout: defaults::idle(),
            queue_timeout: defaults::queue(),
        }
    }
}

/// What a token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything.
    Operator,
    /// The admin read side, without message content.
    Readonly,
    /// The Agent API only.
    Client,
}

/// One `[[tokens]]` entry.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Shown in the operator action log.
    pub name: String,
    /// The secret itself.
    #[serde(default)]
    pub secret: Option<String>,
    /// The environment variable that holds the secret.
    #[serde(default)]
    pub secret_env: Option<String>,
    /// What it may do.
    pub role: Role,
}

impl Default for Config {
    /// No file: the `echo` agent, served by this binary's reference worker.
    fn default() -> Self {
        let mut agents = BTreeMap::new();
        agents.insert(
            "echo".to_owned(),
            AgentConfig::with_command(
                ["turnwatch", "worker", "--mode", "echo"]
                    .map(String::from)
                    .to_vec(),
            ),
        );
        Self {
            gateway: GatewayConfig::default(),
            agents,
            tokens: Vec::new(),
            contexts: BTreeMap::new(),
        }
    }
}

impl Config {
    /// Reads and checks a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses config text; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let mut config: Self = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        if config.agents.is_empty() {
            config.agents = Self::default().agents;
        }
        // With one agent and no `default_agent`, that agent is the default: every key of the
        // file stays optional.
        let names_default = text
            .parse::<toml::Table>()
            .ok()
            .and_then(|t| t.get("gateway")?.get("default_agent").cloned())
            .is_some();
        if !names_default
            && config.agents.len() == 1
            && let Some(only) = config.agents.keys().next()
        {
            config.gateway.default_agent = only.clone();
        }
        config.validate(path).map_err(|e| match e {
            ConfigError::Invalid { path, message } => ConfigError::Invalid {
                message: match line_of_key(text, &message) {
                    Some(line) => format!("line {line}: {message}"),
                    None => message,
                },
                path,
            },
            e => e,
        })?;
        Ok(config)
    }

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        };
        if !self.agents.contains_key(&self.gateway.default_agent) {
            let names: Vec<&str> = self.agents.keys().map(String::as_str).collect();
            return Err(invalid(format!(
                "key `gateway.default_agent`: agent `{}` is not configured (set it to one of: {})",
                self.gateway.default_agent,
                names.join(", ")
            )));
        }
        for (name, agent) in &self.agents {
            if agent.command.is_empty() {
                return Err(invalid(format!(
                    "key `agents.{name}.command`: must name a program"
                )));
            }
        }
        if self.gateway.max_workers == 0 {
            return Err(invalid(
                "key `gateway.max_workers`: must be at least 1".into(),
            ));
        }
        if self.gateway.header_timeout.is_zero() {
            return Err(invalid(
                "key `gateway.header_timeout`: must be more than zero".into(),
            ));
        }
        if self.gateway.max_connections == Some(0) {
            return Err(invalid(
                "key `gateway.max_connections`: must be at least 1".into(),
            ));
        }
        for (key, origins) in [
            ("cors_origins", &self.gateway.cors_origins),
            ("admin_cors_origins", &self.gateway.admin_cors_origins),
        ] {
            if let Some(o) = origins.iter().find(|o| !is_origin(o)) {
                return Err(invalid(format!(
                    "key `gateway.{key}`: `{o}` is not an origin (scheme://host[:port], no path)"
                )));
            }
        }
        if let Some(url) = &self.gateway.public_url
            && !is_public_url(url)
        {
            return Err(invalid(format!(
                "key `gateway.public_url`: `{url}` is not the gateway's root as clients reach it \
                 (http(s)://host[:port][/path], no query or fragment, not ending in /lobu)"
            )));
        }
        let ttl = self.gateway.stream_ticket_ttl;
        if ttl.is_zero() || ttl > MAX_TICKET_TTL {
            return Err(invalid(format!(
                "key `gateway.stream_ticket_ttl`: must be more than zero and at most 60s, not {}",
                humantime::format_duration(ttl)
            )));
        }
        for (i, t) in self.tokens.iter().enumerate() {
            if t.secret.is_none() == t.secret_env.is_none() {
                return Err(invalid(format!(
                    "key `tokens[{i}]` ({}): set exactly one of `secret` and `secret_env`",
                    t.name
                )));
            }
        }
        self.validate_worker_env().map_err(invalid)
    }

    /// No agent may pass a token's secret variable to its workers (agent code with the
    /// operator's token has the operator's rights).
    fn validate_worker_env(&self) -> Result<(), String> {
        for (name, agent) in &self.agents {
            let named = agent
                .inherit_env
                .iter()
                .map(|v| ("inherit_env", v))
                .chain(agent.env.keys().map(|v| ("env", v)));
            for (key, var) in named {
                if var.is_empty() || var.contains('=') || var.contains('\0') {
                    return Err(format!(
                        "key `agents.{name}.{key}`: `{var}` is not an environment variable name"
                    ));
                }
                if let Some(t) = self
                    .tokens
                    .iter()
                    .find(|t| t.secret_env.as_deref() == Some(var.as_str()))
                {
                    return Err(format!(
                        "key `agents.{name}.{key}`: agent `{name}` would pass `{var}` to its \
                         workers, the variable that holds the secret of token `{}`; workers \
                         must never see a token",
                        t.name
                    ));
                }
            }
        }
        Ok(())
    }

    /// The token secrets with their names and roles; a missing `secret_env` variable is an error.
    pub fn resolve_tokens(&self) -> Result<Vec<(String, String, Role)>, String> {
        self.tokens
            .iter()
            .map(|t| {
                let secret = match (&t.secret, &t.secret_env) {
                    (Some(s), _) => s.clone(),
                    (None, Some(var)) => std::env::var(var).map_err(|_| {
                        format!("token `{}`: environment variable {var} is not set", t.name)
                    })?,
                    (None, None) => unreachable!("validated at load"),
                };
                Ok((t.name.clone(), secret, t.role))
            })
            .collect()
    }
}

/// Whether `s` reads as a browser origin: `http` or `https`, a host, maybe a port, no path.
fn is_origin(s: &str) -> bool {
    let Ok(uri) = s.parse::<axum::http::Uri>() else {
        return false;
    };
    matches!(uri.scheme_str(), Some("http" | "https"))
        && uri.authority().is_some_and(|a| !a.as_str().contains('@'))
        && matches!(uri.path(), "" | "/")
        && uri.query().is_none()
}

/// An http(s) URL with a host and perhaps a path, no query: where clients reach the gateway.
fn is_public_url(s: &str) -> bool {
    let Ok(uri) = s.parse::<axum::http::Uri>() else {
        return false;
    };
    matches!(uri.scheme_str(), Some("http" | "https"))
        && uri.authority().is_some_and(|a| !a.as_str().contains('@'))
        && uri.query().is_none()
        && !s.contains('#')
        && !uri.path().trim_end_matches('/').ends_with("/lobu")
}

/// The 1-based line of the key a validation message names (``key `a.b.c` ``), when the file
/// sets it: the key's own line, else its table's header; `tokens[i]` is the i-th
/// `[[tokens]]` header.
fn line_of_key(text: &str, message: &str) -> Option<usize> {
    let key = message.strip_prefix("key `")?.split('`').next()?;
    if let Some(i) = key
        .strip_prefix("tokens[")
        .and_then(|r| r.strip_suffix(']'))
        .and_then(|i| i.parse::<usize>().ok())
    {
        return text
            .lines()
            .enumerate()
            .filter(|(_, l)| l.trim() == "[[tokens]]")
            .nth(i)
            .map(|(n, _)| n + 1);
    }
    let (table, leaf) = key.rsplit_once('.')?;
    let mut current = String::new();
    let mut header = None;
    for (n, line) in text.lines().enumerate() {
        let l = line.trim();
        if let Some(h) = l.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            h.trim_matches(|c| c == '[' || c == ']')
                .trim()
                .clone_into(&mut current);
            if current == table {
                header = Some(n + 1);
            }
        } else if current == table
            && l.strip_prefix(leaf)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        {
            return Some(n + 1);
        }
    }
    header
}

/// The data directory: `$XDG_DATA_HOME/turnwatch`, else `~/.local/share/turnwatch`.
pub fn data_dir() -> PathBuf {
    let base = std::env::var_os("XDG_DATA_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("turnwatch")
}

#[cfg(test)]
mod tests;
