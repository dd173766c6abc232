//! The bench's own parts, checked without timing anything: the replicas' config, the
//! round-robin, the `/proc` reading, the command line, and (with `PostgreSQL`) that a figure's
//! schema is dropped and the `NOTIFY` floor measures. No test asserts on a figure's value.

use clap::Parser;
use std::time::Duration;

use super::cluster::{Cluster, RoundRobin};
use super::cpu::Ticks;
use super::pg;
use crate::cli::{Cli, Command};
use crate::client::Client;
use crate::config::Config;

/// The `PostgreSQL` database to test on, by the store tests' rule: without
/// `TURNWATCH_TEST_DATABASE_URL` a test skips with a notice, except under `CI=true`, where
/// it fails.
fn database_url() -> Option<String> {
    match std::env::var("TURNWATCH_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!(
                "TURNWATCH_TEST_DATABASE_URL is unset: under CI=true PostgreSQL tests never skip"
            )
        }
        _ => {
            eprintln!("notice: TURNWATCH_TEST_DATABASE_URL is unset; skipping a PostgreSQL test");
            None
        }
    }
}

#[test]
fn a_cluster_s_config_is_one_the_gateway_loads() {
    let slow: &[&str] = &["--mode", "slow", "--deltas", "4", "--delay-ms", "50"];
    let agents: &[(&str, &[&str])] = &[("turn", slow), ("echo", &["--mode", "echo"])];
    let c = Cluster::new("postgres://nowhere/db", Duration::from_secs(2), agents).unwrap();
    let config = Config::load(&c.config_file()).unwrap();
    assert_eq!(config.gateway.replica_lease, Duration::from_secs(2));
    assert_eq!(config.gateway.default_agent, "turn");
    assert_eq!(
        config.agents.keys().collect::<Vec<_>>(),
        ["echo", "turn"],
        "only the figure's agents"
    );
    assert_eq!(config.agents["turn"].command[2..], *slow);
}

#[test]
fn round_robin_hands_out_each_replica_in_turn() {
    let lb = RoundRobin::new(vec![
        Client::new("http://127.0.0.1:1", None),
        Client::new("http://127.0.0.1:2", None),
    ]);
    let other = lb.clone();
    let picked: Vec<String> = (0..4)
        .map(|i| {
            if i % 2 == 0 { &lb } else { &other }
                .pick()
                .base()
                .to_owned()
        })
        .collect();
    assert_eq!(
        picked,
        [
            "http://127.0.0.1:1",
            "http://127.0.0.1:2",
            "http://127.0.0.1:1",
            "http://127.0.0.1:2"
        ],
        "clones share the turn"
    );
}

#[test]
fn cpu_ticks_count_this_process_as_the_client() {
    let before = Ticks::now(&[]);
    let deadline = std::time::Instant::now() + Duration::from_millis(100);
    let mut x = 0u64;
    while std::time::Instant::now() < deadline {
        x = std::hint::black_box(x.wrapping_add(1));
    }
    let after = Ticks::now(&[]);
    let words = before.per_turn(&after, 1);
    assert!(
        words.starts_with("CPU ms per turn: replicas 0.00"),
        "{words}"
    );
    let client: f64 = words
        .split("clients ")
        .nth(1)
        .and_then(|w| w.split(',').next())
        .unwrap()
        .parse()
        .unwrap();
    assert!(client > 0.0, "100 ms of spinning counted: {words}");
}

#[test]
fn the_command_line_takes_the_cluster_flags() {
    let cli = Cli::try_parse_from([
        "turnwatch",
        "--url",
        "http://127.0.0.1:7421",
        "--demo",
        "--demo-url",
        "http://127.0.0.1:7422",
    ])
    .unwrap();
    assert!(cli.console.demo);
    assert_eq!(cli.console.demo_url, ["http://127.0.0.1:7422"]);
    let alone = Cli::try_parse_from(["turnwatch", "--demo-url", "http://127.0.0.1:7422"]);
    assert!(alone.is_err(), "--demo-url needs --demo and --url");
    let gw = Cli::try_parse_from([
        "turnwatch",
        "gateway",
        "--replica-name",
        "a",
        "--demo-agents",
    ]);
    assert!(matches!(gw.unwrap().command, Some(Command::Gateway(_))));
    let bench = Cli::try_parse_from(["turnwatch", "bench", "p16", "--database", "postgres://h/d"]);
    match bench.unwrap().command {
        Some(Command::Bench { name, database }) => {
            assert_eq!(name.as_deref(), Some("p16"));
            assert_eq!(database.as_deref(), Some("postgres://h/d"));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_figure_s_schema_is_dropped_even_when_it_fails() {
    let Some(db) = database_url() else {
        return;
    };
    let mut seen = String::new();
    let failed: anyhow::Result<()> = pg::in_schema(&db, |url| {
        seen.clone_from(&url);
        async move {
            // The floor measures in the schema's database.
            let samples = pg::notify_delivery(&url, 3).await?;
            assert_eq!(samples.len(), 3);
            anyhow::bail!("the figure failed")
        }
    })
    .await;
    assert!(failed.is_err());
    let schema = seen
        .split("search_path]=")
        .nth(1)
        .expect("the URL names its schema")
        .to_owned();
    let pool = sqlx::PgPool::connect(&db).await.unwrap();
    let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM pg_namespace WHERE nspname = $1")
        .bind(&schema)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(left, 0, "schema {schema} was dropped");
}
