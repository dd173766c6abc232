//! `--demo`: traffic against the embedded gateway (or the gateways `--url` and `--demo-url`
//! name) that keeps every view populated with real turns on real worker processes, in a
//! realistic mix (of the agents `cli::embedded::demo_config` adds).

use std::time::Duration;

use crate::api::CreateSession;
use crate::client::{Client, ClientError};

/// Agents and their weights in the mix.
const MIX: &[(&str, u32)] = &[
    ("echo", 30),
    ("slow", 14),
    ("crash-exit1", 6),
    ("crash-kill", 4),
    ("crash-abort", 3),
    ("exit0", 2),
    ("hang", 4),
    ("heartbeat", 3),
    ("never-ready", 2),
    ("missing", 2),
    ("garbage", 3),
    ("error", 3),
    ("stuck", 1),
];

fn pick_agent(rng: &mut fastrand::Rng) -> &'static str {
    let total: u32 = MIX.iter().map(|(_, w)| w).sum();
    let mut r = rng.u32(..total);
    for (name, w) in MIX {
        if r < *w {
            return name;
        }
        r -= w;
    }
    "echo"
}

/// `targets` from the `k`-th on, round the circle.
fn from(targets: &[Client], k: u64) -> Vec<Client> {
    let len = targets.len() as u64;
    (0..len)
        .map(|i| targets[((k + i) % len) as usize].clone())
        .collect()
}

/// Sends demo turns until the task is dropped: every 150–650 ms, one message to an agent from
/// the mix; a few threads are reused so sessions see several turns. Each request goes to the
/// next of `targets` in turn (replicas of one cluster behind a load balancer without
/// affinity): a session is created on one and its message posted on the next; a replica
/// that cannot be reached is passed over, as a load balancer passes over a dead backend.
pub async fn run(targets: Vec<Client>) {
    if targets.is_empty() {
        return;
    }
    // Variety, not cryptography.
    let mut rng = fastrand::Rng::new();
    let mut n = 0u64;
    loop {
        n += 1;
        let agent = pick_agent(&mut rng);
        let thread =
            (agent == "echo" && rng.u32(..3) == 0).then(|| format!("demo-thread-{}", rng.u32(..4)));
        let req = CreateSession {
            agent_id: Some(agent.into()),
            thread,
            force_new: false,
            ..Default::default()
        };
        let (create, post) = (from(&targets, n), from(&targets, n + 1));
        tokio::spawn(async move {
            let text = format!(
                "demo message {n} for {agent}: the quick brown fox jumps over the lazy dog"
            );
            for c in &create {
                match c.create_session(&req).await {
                    Ok(s) => {
                        for p in &post {
                            let posted = p.post_message(&s.agent_id, &s.token, &text, None).await;
                            if !matches!(posted, Err(ClientError::Connect { .. })) {
                                break;
                            }
                        }
                        break;
                    }
                    Err(ClientError::Connect { .. }) => {}
                    Err(_) => break,
                }
            }
        });
        tokio::time::sleep(Duration::from_millis(150 + rng.u64(..500))).await;
    }
}
