//! P16: a rolling restart of two replicas under steady traffic. 50 turns/s of ~200 ms turns
//! (the `slow` worker, 4 pieces 50 ms apart) over 32 sessions, each message to the next
//! replica in turn (to the other one when a replica does not answer, with the same
//! `messageId`, as a load balancer retries a backend that is down); each session's stream is a
//! resuming client on one replica, which reconnects to the restarted process on the same port.
//! Each replica in turn gets SIGTERM, is waited for, and is started again. Counted at the
//! clients: turns accepted, completed, failed (by code), lost (no `complete` at the client
//! within 30 s of the last message), ended twice; and refused messages. The store is checked
//! too: open turns, and `complete` events per turn.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use super::cluster::{Cluster, RoundRobin};
use super::{Figure, pg};
use crate::api::{ErrorCode, Outcome, SessionEvent};
use crate::client::{Client, ClientError, Cursor, Item};

const SESSIONS: usize = 32;
/// 50 turns/s.
const EVERY: Duration = Duration::from_millis(20);
/// Steady traffic before, between and after the restarts.
const STEADY: Duration = Duration::from_secs(3);
/// How long after the last message every accepted turn may take to reach its client.
const SETTLE: Duration = Duration::from_secs(30);
const TURN: &[&str] = &["--mode", "slow", "--deltas", "4", "--delay-ms", "50"];

/// What the clients saw.
#[derive(Default)]
struct Ledger {
    /// Turns a replica accepted.
    accepted: HashSet<String>,
    /// Each turn's `complete` events at its client.
    ends: HashMap<String, Vec<Outcome>>,
    /// Each failed turn's code.
    codes: HashMap<String, ErrorCode>,
    /// Messages no replica accepted, by why.
    refused: BTreeMap<String, u32>,
    /// Gaps the streams reported.
    gaps: u32,
    /// Streams that broke and resumed.
    resumed: u32,
}

type Shared = Arc<Mutex<Ledger>>;

fn lock(ledger: &Shared) -> std::sync::MutexGuard<'_, Ledger> {
    ledger
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Reads one session's resuming stream into the ledger until aborted.
async fn read(client: Client, sid: String, token: String, ledger: Shared) {
    let mut stream = client.session_stream(&sid, &token, Cursor::default());
    loop {
        match stream.next().await {
            Ok(Item::Event(_, SessionEvent::Error(f))) => {
                lock(&ledger).codes.insert(f.turn_id.to_string(), f.code);
            }
            Ok(Item::Event(_, SessionEvent::Complete(c))) => {
                let mut l = lock(&ledger);
                l.ends
                    .entry(c.turn_id.to_string())
                    .or_default()
                    .push(c.status);
            }
            Ok(Item::Gap(_)) => lock(&ledger).gaps += 1,
            Ok(Item::Lost(_)) => lock(&ledger).resumed += 1,
            Ok(_) => {}
            Err(_) => return,
        }
    }
}

/// Posts message `n` to a session through the next replica, or the one after if that one is
/// not reachable; records the outcome.
async fn post(lb: RoundRobin, session: (String, String), n: usize, ledger: Shared) {
    let (sid, token) = session;
    let message_id = format!("m-{n}");
    let mut last = None;
    for _ in 0..2 {
        let content = format!("turn {n}");
        match lb
            .pick()
            .post_message(&sid, &token, &content, Some(message_id.clone()))
            .await
        {
            Ok(q) => {
                lock(&ledger).accepted.insert(q.turn_id.to_string());
                return;
            }
            Err(ClientError::Connect { .. }) => last = Some("unreachable".to_owned()),
            Err(e) => {
                last = Some(e.code().map_or_else(|| e.to_string(), |c| c.to_string()));
                break;
            }
        }
    }
    let why = last.unwrap_or_default();
    *lock(&ledger).refused.entry(why).or_default() += 1;
}

/// Open-loop traffic: a message every 20 ms to the next session until `stop`; returns how many.
async fn load(
    lb: RoundRobin,
    sessions: Vec<(String, String)>,
    ledger: Shared,
    stop: CancellationToken,
) -> usize {
    let mut tick = tokio::time::interval(EVERY);
    let mut posts = tokio::task::JoinSet::new();
    let mut n = 0;
    while !stop.is_cancelled() {
        tick.tick().await;
        let session = sessions[n % sessions.len()].clone();
        posts.spawn(post(lb.clone(), session, n, Arc::clone(&ledger)));
        n += 1;
    }
    posts.join_all().await;
    n
}

/// The store's own count: (open turns, turns, turns with other than one `complete` event).
async fn store_counts(url: &str) -> anyhow::Result<(i64, i64, i64)> {
    let pool = sqlx::PgPool::connect(url).await?;
    let open = sqlx::query_scalar("SELECT COUNT(*) FROM turns WHERE ended_at IS NULL")
        .fetch_one(&pool)
        .await?;
    let turns = sqlx::query_scalar("SELECT COUNT(*) FROM turns")
        .fetch_one(&pool)
        .await?;
    let odd = sqlx::query_scalar(
        "SELECT COUNT(*) FROM turns t WHERE (SELECT COUNT(*) FROM events e \
         WHERE e.turn_id = t.id AND e.kind = 'complete') <> 1",
    )
    .fetch_one(&pool)
    .await?;
    pool.close().await;
    Ok((open, turns, odd))
}

/// P16: failed and lost turns over a rolling restart of two replicas under 50 turns/s.
pub async fn p16_rolling_restart(db: &str) -> anyhow::Result<Vec<Figure>> {
    pg::in_schema(db, |url| async move {
        let cluster = Cluster::new(&url, Duration::from_secs(2), &[("turn", TURN)])?;
        let mut replicas = vec![cluster.replica().await?, cluster.replica().await?];
        // The ports stay: these clients reach the restarted processes too.
        let clients: Vec<Client> = replicas.iter().map(|r| r.client.clone()).collect();
        let ledger = Shared::default();
        let (mut sessions, mut readers) = (Vec::new(), tokio::task::JoinSet::new());
        for i in 0..SESSIONS {
            let s = clients[i % 2]
                .create_session(&crate::api::CreateSession::default())
                .await?;
            let reader = read(
                clients[(i + 1) % 2].clone(),
                s.agent_id.clone(),
                s.token.clone(),
                Arc::clone(&ledger),
            );
            readers.spawn(reader);
            sessions.push((s.agent_id, s.token));
        }
        let stop = CancellationToken::new();
        let traffic = tokio::spawn(load(
            RoundRobin::new(clients),
            sessions,
            Arc::clone(&ledger),
            stop.clone(),
        ));
        let mut stops = Vec::new();
        tokio::time::sleep(STEADY).await;
        for _ in 0..2 {
            let old = replicas.remove(0);
            let port = old.port;
            stops.push(old.stop().await?.as_millis());
            replicas.push(cluster.replica_on(port).await?);
            tokio::time::sleep(STEADY).await;
        }
        stop.cancel();
        let messages = traffic.await?;
        let deadline = tokio::time::Instant::now() + SETTLE;
        loop {
            let done = {
                let l = lock(&ledger);
                l.accepted.iter().all(|t| l.ends.contains_key(t))
            };
            if done || tokio::time::Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        readers.abort_all();
        let (open, turns, odd) = store_counts(&url).await?;
        for r in replicas {
            r.stop().await?;
        }
        let l = lock(&ledger);
        let (mut completed, mut failed, mut lost, mut twice) = (0, BTreeMap::new(), 0, 0);
        for t in &l.accepted {
            match l.ends.get(t).map(Vec::as_slice) {
                None | Some([]) => lost += 1,
                Some([Outcome::Completed]) => completed += 1,
                Some([_]) => {
                    let code = l
                        .codes
                        .get(t)
                        .map_or_else(|| "?".to_owned(), ToString::to_string);
                    *failed.entry(code).or_insert(0) += 1;
                }
                Some(_) => twice += 1,
            }
        }
        let failed_n: u32 = failed.values().sum();
        let extra = format!(
            "messages={messages} accepted={} completed={completed} failed={failed:?} lost={lost} \
             ended-twice={twice} refused={:?} gaps={} streams-resumed={}; stops took {stops:?} ms; \
             store: turns={turns} open={open} without-one-complete={odd}",
            l.accepted.len(),
            l.refused,
            l.gaps,
            l.resumed
        );
        let figure = |name: &str, value: f64, extra: String| Figure {
            name: name.into(),
            value,
            unit: "turns",
            floor: None,
            target: "0",
            extra,
        };
        Ok(vec![
            figure("P16-rolling-failed", f64::from(failed_n), extra),
            figure(
                "P16-rolling-lost",
                f64::from(lost),
                format!("of {} accepted (see above)", l.accepted.len()),
            ),
        ])
    })
    .await
}
