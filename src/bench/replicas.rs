//! Latency figures across replicas on `PostgreSQL`: P10, a worker crash on one replica → the
//! `error` at a client streaming from another; P13, a replica `SIGKILL`ed mid-turn →
//! `replica_lost` at a client streaming from a survivor. Real gateway processes, real workers,
//! real HTTP/SSE.

use std::time::{Duration, Instant};

use super::cluster::{Cluster, Replica};
use super::gateway::{CRASH_EXIT1, crash_to_error, latency, next_of, session_on};
use super::{Figure, ms, pct, pg};
use crate::api::admin::ListQuery;
use crate::api::{ErrorCode, EventKind, SessionEvent};
use crate::client::Client;

/// P10's crashes.
const CRASHES: usize = 300;
/// P13's kills.
const KILLS: usize = 8;
/// P13's lease: short, so that a kill costs seconds.
const LEASE: Duration = Duration::from_secs(2);

/// The replica that ran the session's latest worker, as `via` lists it.
async fn runner_of(via: &Client, session: &str) -> anyhow::Result<Option<String>> {
    let q = ListQuery {
        session: Some(session.to_owned()),
        ..ListQuery::default()
    };
    let page = via.workers(&q).await?;
    Ok(page.items.first().map(|w| w.replica_id.to_string()))
}

/// P10: a worker crash (exit 1 mid-turn, after one stamped delta) on replica A → the `error`
/// at a client whose stream is on replica B; a sample is B's `error` at the client minus the
/// stamp the worker wrote right before it died. Each session is created and its message
/// posted on A, so A claims it and runs the worker. The floor is a `NOTIFY` on one connection
/// read by another that `LISTEN`s, on the same server.
pub async fn p10_crash_across_replicas(db: &str) -> anyhow::Result<Vec<Figure>> {
    pg::in_schema(db, |url| async move {
        let floor = pg::notify_delivery(&url, CRASHES).await?;
        let cluster = Cluster::new(&url, Duration::from_secs(5), &[("crash", CRASH_EXIT1)])?;
        let (a, b) = (cluster.replica().await?, cluster.replica().await?);
        let a_id = a.id().await?;
        let (mut samples, mut ran_on_a) = (Vec::with_capacity(CRASHES), 0);
        for _ in 0..CRASHES {
            let (sid, token, mut events) = session_on(&a.client, &b.client, "crash").await?;
            a.client.post_message(&sid, &token, "crash", None).await?;
            samples.push(crash_to_error(&mut events).await?);
            if runner_of(&b.client, &sid).await?.as_deref() == Some(a_id.as_str()) {
                ran_on_a += 1;
            }
        }
        a.stop().await?;
        b.stop().await?;
        let mut f = latency(
            "P10-crash-other-replica",
            99.0,
            samples,
            floor,
            "p99 <= 100 ms",
        );
        f.extra = format!(
            "{}; {ran_on_a}/{CRASHES} workers ran on A, the stream on B; \
             floor = NOTIFY → LISTEN on the same server",
            f.extra
        );
        Ok(vec![f])
    })
    .await
}

/// One P13 sample: a turn of `slow` running on `a` with its stream on `b`; `a` is killed; the
/// time from the kill to `replica_lost` at the client, and whether `a`'s worker is gone.
async fn kill_one(a: Replica, b: &Replica) -> anyhow::Result<(f64, bool)> {
    let (sid, token, mut events) = session_on(&a.client, &b.client, "slow").await?;
    // 600 pieces 50 ms apart: the turn runs for 30 s unless the kill ends it.
    let content = "x".repeat(600);
    a.client.post_message(&sid, &token, &content, None).await?;
    next_of(&mut events, &[EventKind::Output]).await?; // running on a
    let q = ListQuery {
        session: Some(sid.clone()),
        ..ListQuery::of("live", 10)
    };
    let pid = b.client.workers(&q).await?.items.first().map(|w| w.pid);
    // At a random moment within a second: each sample meets the lease renewals and the
    // survivor's once-a-second scan at another phase.
    tokio::time::sleep(Duration::from_millis(fastrand::u64(..1000))).await;
    let killed = Instant::now();
    a.kill().await?;
    let (at, ev) = next_of(&mut events, &[EventKind::Error]).await?;
    anyhow::ensure!(
        matches!(&ev, SessionEvent::Error(f) if f.code == ErrorCode::ReplicaLost),
        "unexpected {ev:?}"
    );
    let took = ms(at - killed);
    // Its worker dies with it (`PR_SET_PDEATHSIG`): give the kernel a moment.
    let mut gone = false;
    for _ in 0..100 {
        gone = pid.is_some_and(|p| {
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(p as i32), None).is_err()
        });
        if gone {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok((took, gone))
}

/// P13: a replica `SIGKILL`ed mid-turn → `replica_lost` at a client streaming from a survivor,
/// with a 2 s lease; the killed replica is started again before the next kill. The floor is
/// the lease: the survivor can only judge the other lost once its lease ran out (it was
/// renewed up to a third of a lease before the kill).
pub async fn p13_replica_kill(db: &str) -> anyhow::Result<Vec<Figure>> {
    pg::in_schema(db, |url| async move {
        let slow: &[&str] = &["--mode", "slow", "--deltas", "600", "--delay-ms", "50"];
        let cluster = Cluster::new(&url, LEASE, &[("slow", slow)])?;
        let b = cluster.replica().await?;
        let (mut samples, mut gone) = (Vec::with_capacity(KILLS), 0);
        for _ in 0..KILLS {
            let a = cluster.replica().await?;
            let (took, worker_gone) = kill_one(a, &b).await?;
            samples.push(took);
            gone += usize::from(worker_gone);
        }
        b.stop().await?;
        let extra = format!(
            "p50={:.0} max={:.0} n={KILLS}, lease {} ms, the killed replica's worker gone {gone}/{KILLS}",
            pct(&mut samples, 50.0),
            pct(&mut samples, 100.0),
            LEASE.as_millis()
        );
        Ok(vec![Figure {
            name: "P13-kill-to-replica-lost".into(),
            value: pct(&mut samples, 99.0),
            unit: "ms",
            floor: Some(ms(LEASE)),
            target: "<= lease + 1 s",
            extra,
        }])
    })
    .await
}
