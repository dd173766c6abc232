//! Command-line parsing and dispatch: `main` parses, this module calls the library.

pub mod chat;
pub mod embedded;
pub mod kill;
pub mod serve;
pub mod status;

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

use crate::client::Client;
use crate::config::{Config, data_dir};
use crate::worker::WorkerArgs;
use chat::{ChatRequest, chat};

/// turnwatch: an agent gateway that never leaves a chat turn hanging.
#[derive(Debug, Parser)]
#[command(name = "turnwatch", version, about)]
pub struct Cli {
    /// What to do; without a subcommand, the operator console.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Console options.
    #[command(flatten)]
    pub console: ConsoleArgs,
}

/// The console's options (no subcommand).
#[derive(Debug, Args)]
pub struct ConsoleArgs {
    /// Attach to this gateway (else a context, else an embedded gateway).
    #[arg(long, env = "TURNWATCH_URL")]
    pub url: Option<String>,
    /// Operator or read-only token.
    #[arg(long, env = "TURNWATCH_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// A named gateway from the config's `[contexts.NAME]`.
    #[arg(long)]
    pub context: Option<String>,
    /// No actions.
    #[arg(long)]
    pub readonly: bool,
    /// No colours (also: the `NO_COLOR` environment variable).
    #[arg(long)]
    pub no_color: bool,
    /// Demo traffic (healthy, slow, crashing, hanging, failing agents) against an embedded
    /// gateway, or with `--url` against that gateway (started with `gateway --demo-agents`).
    #[arg(long, conflicts_with = "context")]
    pub demo: bool,
    /// Another gateway (a replica) to spread the demo traffic over with `--url`'s: each
    /// request goes to the next one in turn. Repeatable.
    #[arg(long, requires_all = ["demo", "url"])]
    pub demo_url: Vec<String>,
    /// Config file (contexts; the embedded gateway's agents).
    #[arg(long, env = "TURNWATCH_CONFIG")]
    pub config: Option<PathBuf>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway.
    Gateway(serve::GatewayArgs),
    /// Send one message and stream the reply (exit 0 completed, 1 failed, 2 usage/connection).
    Chat {
        /// Gateway URL.
        #[arg(long, env = "TURNWATCH_URL", default_value = "http://127.0.0.1:7420")]
        url: String,
        /// Bearer token (client or operator) for creating the session.
        #[arg(long, env = "TURNWATCH_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// Agent to talk to (the gateway's default when absent).
        #[arg(long)]
        agent: Option<String>,
        /// Conversation key: the same thread resumes the same session.
        #[arg(long)]
        thread: Option<String>,
        /// Start a new session even if the thread has one.
        #[arg(long)]
        new: bool,
        /// Print every event as one JSON line.
        #[arg(long)]
        json: bool,
        /// The message.
        message: String,
    },
    /// Snapshot of the replicas, workers, in-flight and stranded turns.
    Status {
        /// Which gateway.
        #[command(flatten)]
        target: Target,
        /// One JSON object instead of tables.
        #[arg(long)]
        json: bool,
        /// Stream admin events as NDJSON (snapshot first) until interrupted.
        #[arg(long)]
        watch: bool,
        /// Exit 3 when any turn is stranded.
        #[arg(long)]
        exit_code: bool,
    },
    /// Kill a worker's current process (compare-and-kill), waiting for its exit.
    Kill {
        /// Which gateway.
        #[command(flatten)]
        target: Target,
        /// The worker id (`w-...`).
        worker: String,
        /// Why, for the operator log.
        #[arg(long, default_value = "killed from the CLI")]
        reason: String,
    },
    /// The reference worker (speaks the worker protocol on stdin/stdout).
    Worker(WorkerArgs),
    /// Measure the performance figures (all, or one: p1 … p16, evict, sample).
    Bench {
        /// One figure only: p1 p2 p3 p4 p5 p6 p7 p8 p9 p10 p11 p12 p13 p14 p15 p16 evict sample.
        name: Option<String>,
        /// The `PostgreSQL` database for the replica figures (p10, p13–p16), each in a schema of
        /// its own that is dropped after it; without one they are skipped.
        #[arg(long, env = "TURNWATCH_TEST_DATABASE_URL")]
        database: Option<String>,
    },
}

/// The gateway an admin command talks to.
#[derive(Debug, Args)]
pub struct Target {
    /// Gateway URL.
    #[arg(long, env = "TURNWATCH_URL", default_value = "http://127.0.0.1:7420")]
    pub url: String,
    /// Token: operator or read-only for `status`; `kill` needs an operator token.
    #[arg(long, env = "TURNWATCH_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// Runs the parsed command; returns the process exit code.
pub async fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        None => console(cli.console).await,
        Some(Command::Gateway(args)) => serve::gateway(args).await,
        Some(Command::Chat {
            url,
            token,
            agent,
            thread,
            new,
            json,
            message,
        }) => {
            let client = Client::new(&url, token);
            let req = ChatRequest {
                agent,
                thread,
                new,
                json,
                message,
            };
            let mut stdout = std::io::stdout();
            let outcome = chat(&client, &req, &mut stdout).await;
            match &outcome {
                crate::cli::chat::ChatOutcome::Completed => {}
                crate::cli::chat::ChatOutcome::Failed { code, error } => {
                    eprintln!("turnwatch: turn failed: {error} [{code}]")
                }
                crate::cli::chat::ChatOutcome::Unreachable(e) => eprintln!("turnwatch: {e}"),
            }
            Ok(outcome.exit_code())
        }
        Some(Command::Status {
            target,
            json,
            watch,
            exit_code,
        }) => status_cmd(&target, json, watch, exit_code).await,
        Some(Command::Kill {
            target,
            worker,
            reason,
        }) => {
            let client = Client::new(&target.url, target.token);
            match kill::kill(&client, &worker, &reason).await {
                Ok(k) => {
                    let how = match (&k.exit.signal, k.exit.exit_code) {
                        (Some(s), _) => s.clone(),
                        (None, Some(c)) => format!("exit code {c}"),
                        (None, None) => "exit status unknown".into(),
                    };
                    println!(
                        "killed {worker} generation {} (pid {}): {how}, intentional",
                        k.generation, k.pid
                    );
                    Ok(0)
                }
                Err(kill::KillError::Client(e @ crate::client::ClientError::Connect { .. })) => {
                    eprintln!("turnwatch: {e}");
                    Ok(2)
                }
                Err(e) => {
                    eprintln!("turnwatch: kill failed: {e}");
                    Ok(1)
                }
            }
        }
        Some(Command::Worker(args)) => Ok(crate::worker::run(&args)),
        Some(Command::Bench { name, database }) => {
            crate::bench::run(name.as_deref(), database.as_deref()).await?;
            Ok(0)
        }
    }
}

/// Makes this process non-dumpable: its `/proc/PID/environ` (which holds the secrets of
/// `secret_env` tokens) and memory can then be read only by root, not by the workers it
/// starts, which run as the same user. Also: no core dumps, no debugger attach as that user.
fn hide_environment() {
    if let Err(e) = nix::sys::prctl::set_dumpable(false) {
        tracing::warn!(error = %e, "could not hide the gateway's environment from its workers");
    }
}

async fn console(args: ConsoleArgs) -> anyhow::Result<i32> {
    use crate::console::{demo, driver::Driver, render::Palette, runner};
    let file = args.config.as_deref().map(Config::load).transpose()?;
    let config = file.clone().unwrap_or_default();
    let color = !args.no_color && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let mut embedded_gw = None;
    let (url, token, readonly) = if let Some(url) = args.url {
        (url, args.token, args.readonly)
    } else if let Some(name) = &args.context {
        let ctx = config
            .contexts
            .get(name)
            .ok_or_else(|| anyhow::anyhow!("no context `{name}` in the config file"))?;
        let token = args
            .token
            .or_else(|| ctx.token.clone())
            .or_else(|| ctx.token_env.as_ref().and_then(|v| std::env::var(v).ok()));
        (ctx.url.clone(), token, args.readonly || ctx.readonly)
    } else {
        hide_environment();
        let (cfg, db) = if args.demo {
            (embedded::demo_config(file), "demo.db")
        } else {
            (config, "embedded.db")
        };
        let e = embedded::start(cfg, &data_dir(), db).await?;
        let out = (e.gateway.url(), Some(e.token.clone()), args.readonly);
        embedded_gw = Some(e);
        out
    };
    let client = Client::new(&url, token.clone());
    let traffic = args.demo.then(|| {
        let mut targets = vec![client.clone()];
        targets.extend(args.demo_url.iter().map(|u| Client::new(u, token.clone())));
        tokio::spawn(demo::run(targets))
    });
    let (driver, rx) = Driver::start(client.clone(), url, readonly, crate::clock::now_ms());
    let result = runner::run(driver, rx, Palette { color }).await;
    if let Some(t) = traffic {
        t.abort();
    }
    if let Some(e) = embedded_gw {
        // Stopping takes up to the workers' stop grace: say so rather than sit blank.
        let live: i64 = client.overview().await.map_or(0, |o| {
            o.workers
                .iter()
                .filter(|(s, _)| s.is_live())
                .map(|(_, n)| *n)
                .sum()
        });
        eprintln!(
            "turnwatch: stopping the embedded gateway: its open turns end, {live} live workers stop…"
        );
        e.gateway.stop().await?; // ends its turns, stops its workers
    }
    result?;
    Ok(0)
}

async fn status_cmd(
    target: &Target,
    json: bool,
    watch: bool,
    exit_code: bool,
) -> anyhow::Result<i32> {
    let client = Client::new(&target.url, target.token.clone());
    if watch {
        let mut stdout = std::io::stdout();
        return match status::watch(&client, &mut stdout).await {
            Ok(()) => Ok(0),
            Err(e) => {
                eprintln!("turnwatch: {e}");
                Ok(2)
            }
        };
    }
    let s = match status::fetch(&client).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("turnwatch: {e}");
            return Ok(2);
        }
    };
    if json {
        println!("{}", status::to_json(&s));
    } else {
        status::render(&target.url, &s, &mut std::io::stdout())?;
    }
    Ok(if exit_code && s.overview.stranded > 0 {
        status::STRANDED_EXIT
    } else {
        0
    })
}
