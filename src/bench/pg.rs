//! The `PostgreSQL` side of the replica figures: a fresh schema per figure (dropped at the end,
//! also when the figure fails), and the two floors measured on the server itself: a
//! `LISTEN`/`NOTIFY` delivery between two connections (P10) and a raw insert loop (P14).

use futures::{StreamExt, stream};
use sqlx::postgres::{PgListener, PgPoolOptions};
use sqlx::{Connection, PgConnection};
use std::future::Future;
use std::time::{Duration, Instant};

/// Runs `figure` with the URL of a schema of its own in the database `base` names (its
/// `search_path` set, its connections named after it), then drops the schema, whether the
/// figure measured or failed. Everything `figure` started (replicas are killed on drop) is
/// gone by then.
pub async fn in_schema<F, Fut, T>(base: &str, figure: F) -> anyhow::Result<T>
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let mut admin = PgConnection::connect(base)
        .await
        .map_err(|e| anyhow::anyhow!("PostgreSQL at {base} cannot be reached: {e}"))?;
    let schema = format!("tw_bench_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&mut admin)
        .await?;
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}application_name={schema}&options[search_path]={schema}");
    let outcome = figure(url).await;
    // The connections of replicas killed a moment ago may still be closing; end them so the
    // drop does not wait on their locks.
    let _ = sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
    )
    .bind(&schema)
    .execute(&mut admin)
    .await;
    let dropped = sqlx::raw_sql(&format!(
        "SET lock_timeout = '10s'; DROP SCHEMA {schema} CASCADE"
    ))
    .execute(&mut admin)
    .await;
    if let Err(e) = dropped {
        eprintln!("warning: schema {schema} was not dropped: {e}");
    }
    outcome
}

/// The floor of P10: `NOTIFY` on one connection → the notification read on another that
/// `LISTEN`s, in ms, `n` times (what a replica's commit costs before a peer hears of it).
pub async fn notify_delivery(url: &str, n: usize) -> anyhow::Result<Vec<f64>> {
    let channel = format!("tw_bench_{}", uuid::Uuid::new_v4().simple());
    let mut listener = PgListener::connect(url).await?;
    listener.listen(&channel).await?;
    let mut sender = PgConnection::connect(url).await?;
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let sent = Instant::now();
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(&channel)
            .bind(i.to_string())
            .execute(&mut sender)
            .await?;
        let note = tokio::time::timeout(Duration::from_secs(10), listener.recv()).await??;
        anyhow::ensure!(
            note.payload() == i.to_string(),
            "an unexpected notification"
        );
        samples.push(super::ms(sent.elapsed()));
    }
    Ok(samples)
}

/// The floor of P14: `tasks` connections each inserting a 1 kB row per transaction (autocommit)
/// into a table of the schema for `window`; rows per second.
pub async fn insert_rate(url: &str, tasks: usize, window: Duration) -> anyhow::Result<f64> {
    let pool = PgPoolOptions::new()
        .max_connections(tasks as u32)
        .connect(url)
        .await?;
    sqlx::query("CREATE TABLE bench_rows (id bigserial PRIMARY KEY, body text NOT NULL)")
        .execute(&pool)
        .await?;
    let body = "x".repeat(1024);
    let counts: Vec<anyhow::Result<u64>> = stream::iter(0..tasks)
        .map(|_| {
            let (pool, body) = (pool.clone(), body.clone());
            async move {
                let mut conn = pool.acquire().await?;
                let (start, mut n) = (Instant::now(), 0u64);
                while start.elapsed() < window {
                    sqlx::query("INSERT INTO bench_rows (body) VALUES ($1)")
                        .bind(&body)
                        .execute(&mut *conn)
                        .await?;
                    n += 1;
                }
                anyhow::Ok(n)
            }
        })
        .buffer_unordered(tasks)
        .collect()
        .await;
    let mut total = 0;
    for c in counts {
        total += c?;
    }
    pool.close().await;
    Ok(total as f64 / window.as_secs_f64())
}
