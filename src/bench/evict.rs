//! `evict`: idle workers yield their slot. 1,000 sessions take turns in rotation over 64 worker
//! slots (64 clients, each cycling through its share of the sessions), so nearly every turn
//! needs a slot that an idle worker of another session holds: the least recently used idle
//! worker is evicted. Reported: `queue_timeout`s (must be 0), other failures, spawns per turn.

use std::time::{Duration, Instant};

use super::Figure;
use super::gateway::{Events, agent, next_of, session};
use crate::api::{ErrorCode, EventKind};
use crate::client::Client;
use crate::config::Config;

const SESSIONS: usize = 1000;
const SLOTS: usize = 64;
const ROUNDS: usize = 2;

/// One client: its share of the sessions, each taking a turn in rotation; returns the turns.
async fn client_loop(client: Client, first: usize) -> anyhow::Result<u64> {
    let mut mine: Vec<(String, String, Events)> = Vec::new();
    for _ in (first..SESSIONS).step_by(SLOTS) {
        mine.push(session(&client, "echo").await?);
    }
    let mut turns = 0;
    for _ in 0..ROUNDS {
        for (sid, token, events) in &mut mine {
            client.post_message(sid, token, "rotate", None).await?;
            next_of(events, &[EventKind::Complete]).await?; // outcomes are counted from the store
            turns += 1;
        }
    }
    Ok(turns)
}

/// Eviction under rotation; spawns per turn and `queue_timeout`s. (It was numbered P13 before
/// `replicas.md` gave that number to the replica takeover.)
pub async fn rotation() -> anyhow::Result<Vec<Figure>> {
    let mut c = Config::default();
    c.gateway.max_workers = SLOTS;
    c.gateway.stop_grace = Duration::from_millis(200);
    c.agents = [(
        "echo".to_owned(),
        agent(&["--mode", "echo", "--deltas", "1"]),
    )]
    .into();
    let dir = tempfile::tempdir()?;
    let db = format!("sqlite://{}", dir.path().join("bench.db").display());
    let gw =
        crate::gateway::start(c, &db, tokio::net::TcpListener::bind("127.0.0.1:0").await?).await?;
    let client = Client::new(&gw.url(), None);
    let start = Instant::now();
    let tasks: Vec<_> = (0..SLOTS)
        .map(|i| tokio::spawn(client_loop(client.clone(), i)))
        .collect();
    let mut turns = 0;
    for t in tasks {
        turns += t.await??;
    }
    let took = start.elapsed();
    let pool = sqlx::SqlitePool::connect(&db).await?;
    let spawns: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM workers")
        .fetch_one(&pool)
        .await?;
    let codes: Vec<(String, i64)> = sqlx::query_as(
        "SELECT code, COUNT(*) FROM turns WHERE code IS NOT NULL GROUP BY code ORDER BY code",
    )
    .fetch_all(&pool)
    .await?;
    let evicted: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM workers WHERE exit_reason = 'evicted'")
            .fetch_one(&pool)
            .await?;
    gw.stop().await?;
    let timeouts = codes
        .iter()
        .find(|(c, _)| c == ErrorCode::QueueTimeout.as_str())
        .map_or(0, |(_, n)| *n);
    Ok(vec![Figure {
        name: "evict-queue-timeouts".into(),
        value: timeouts as f64,
        unit: "turns",
        floor: None,
        target: "0 queue_timeout",
        extra: format!(
            "turns={turns} over {SESSIONS} sessions, {SLOTS} slots, {:.1}s; spawns={spawns} \
             ({:.2} per turn), evicted={evicted}, failed by code={codes:?}",
            took.as_secs_f64(),
            spawns as f64 / turns.max(1) as f64
        ),
    }])
}
