//! P14 and P15: P3's workload (64 sessions, echo worker, 1 kB reply in 10 deltas) through
//! gateway processes on `PostgreSQL`: one replica, against a raw insert loop on the same
//! server; then two replicas with requests spread round-robin, against one replica measured
//! in the same run.

use std::time::Duration;

use super::cluster::{Cluster, Replica, RoundRobin};
use super::cpu::Ticks;
use super::throughput::{EchoLoad, Took};
use super::{Figure, pct, pg};

const SESSIONS: usize = 64;
const WINDOW: Duration = Duration::from_secs(5);
const ECHO: &[&str] = &["--mode", "echo", "--deltas", "10"];

/// The server's WAL position in bytes (every database's writes count, others' too).
async fn wal_bytes(pool: &sqlx::PgPool) -> Option<i64> {
    sqlx::query_scalar("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint")
        .fetch_one(pool)
        .await
        .ok()
}

/// The window's latencies in words: of the `POST`s and to the `complete`s.
fn latencies(took: &[Took]) -> String {
    let mut answered: Vec<f64> = took.iter().map(|t| t.answered).collect();
    let mut completed: Vec<f64> = took.iter().map(|t| t.completed).collect();
    format!(
        "POST answered p50 {:.0} ms, p99 {:.0}; complete p50 {:.0}, p99 {:.0}, max {:.0}",
        pct(&mut answered, 50.0),
        pct(&mut answered, 99.0),
        pct(&mut completed, 50.0),
        pct(&mut completed, 99.0),
        pct(&mut completed, 100.0)
    )
}

/// What one run of the workload gave.
struct Run {
    /// Turns per second in the window.
    rate: f64,
    /// `", 12.0 KB WAL per turn"` when the server said.
    wal: String,
    /// CPU ms per turn by part, in words.
    cpu: String,
    /// Sessions each replica ran a worker for at the end, in start order.
    owned: Vec<i64>,
}

/// P3's workload on `replicas` fresh replicas of a fresh schema; `pinned` sends each session
/// to one replica (its index modulo the replicas), else every request goes round-robin.
async fn run(db: &str, replicas: usize, pinned: bool) -> anyhow::Result<Run> {
    pg::in_schema(db, |url| async move {
        let cluster = Cluster::new(&url, Duration::from_secs(5), &[("echo", ECHO)])?;
        let mut started: Vec<Replica> = Vec::new();
        for _ in 0..replicas {
            started.push(cluster.replica().await?);
        }
        let clients: Vec<_> = started.iter().map(|r| r.client.clone()).collect();
        let lbs: Vec<RoundRobin> = if pinned {
            clients
                .into_iter()
                .map(|c| RoundRobin::new(vec![c]))
                .collect()
        } else {
            vec![RoundRobin::new(clients)]
        };
        let pids: Vec<u32> = started.iter().map(|r| r.pid).collect();
        let stats = sqlx::PgPool::connect(&url).await?;
        let mut load = EchoLoad::warm(&lbs, SESSIONS, WINDOW).await?;
        let (cpu0, wal0) = (Ticks::now(&pids), wal_bytes(&stats).await);
        load.open();
        tokio::time::sleep(WINDOW).await;
        let (cpu1, wal1) = (Ticks::now(&pids), wal_bytes(&stats).await);
        let took = load.finish().await?;
        let turns = took.len() as u64;
        let latency = latencies(&took);
        stats.close().await;
        let wal = wal0.zip(wal1).map_or_else(String::new, |(a, b)| {
            format!(
                ", {:.1} KB WAL per turn",
                (b - a) as f64 / turns.max(1) as f64 / 1e3
            )
        });
        let cpu = cpu0.per_turn(&cpu1, turns);
        let list = started[0].client.replicas().await?.items;
        let owned = started
            .iter()
            .map(|r| {
                list.iter()
                    .find(|i| i.pid == r.pid)
                    .map_or(0, |i| i.sessions)
            })
            .collect();
        for r in started {
            r.stop().await?;
        }
        Ok(Run {
            rate: turns as f64 / WINDOW.as_secs_f64(),
            wal,
            cpu: format!("{latency}; {cpu}"),
            owned,
        })
    })
    .await
}

/// P14: turns/s through one replica on `PostgreSQL`; the floor is 64 connections each
/// inserting a 1 kB row per transaction on the same server for the same window.
pub async fn p14_one_replica(db: &str) -> anyhow::Result<Vec<Figure>> {
    let floor = pg::in_schema(db, |url| async move {
        pg::insert_rate(&url, SESSIONS, WINDOW).await
    })
    .await?;
    let one = run(db, 1, false).await?;
    Ok(vec![Figure {
        name: "P14-turns-per-s-pg".into(),
        value: one.rate,
        unit: "turns/s",
        floor: Some(floor),
        target: ">= 1000 turns/s",
        extra: format!(
            "{SESSIONS} sessions, 1 kB in 10 deltas, {}s{}; {}; floor = raw 1 kB inserts/s, {SESSIONS} connections",
            WINDOW.as_secs(),
            one.wal,
            one.cpu
        ),
    }])
}

/// P15: the same through two replicas, every request to the next replica in turn (a load
/// balancer without affinity: a session's messages land on both, its stream on either); the
/// floor is one replica measured in the same run. Also measured: two replicas with each
/// session pinned to one, which shows what the cross-replica wake-ups cost.
pub async fn p15_two_replicas(db: &str) -> anyhow::Result<Vec<Figure>> {
    let one = run(db, 1, false).await?;
    let two = run(db, 2, false).await?;
    let pinned = run(db, 2, true).await?;
    Ok(vec![Figure {
        name: "P15-turns-per-s-2-pg".into(),
        value: two.rate,
        unit: "turns/s",
        floor: Some(one.rate),
        target: ">= P14 on 2 cores",
        extra: format!(
            "round-robin per request, sessions owned {:?}{}; {} | each session pinned to one replica: \
             {:.0} turns/s, owned {:?}; {} | floor = 1 replica; {}",
            two.owned, two.wal, two.cpu, pinned.rate, pinned.owned, pinned.cpu, one.cpu
        ),
    }])
}
