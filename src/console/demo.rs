//! `--demo`: traffic against the embedded gateway (or the gateways `--url` and `--demo-url`
//! name) that keeps every view populated with real turns on real worker processes, in a
//! realistic mix (of the agents `cli::embedded::demo_config` adds).

use std::time::Duration;

use crate::api::CreateSession;
use crate::client::Client;

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

/// Sends demo turns until the task is dropped: every 150–650 ms, one message to an agent from
/// the mix; a few threads are reused so sessions see several turns. Each request goes to the
/// next of `targets` in turn (replicas of one cluster behind a load balancer without
/// affinity): a session is created on one and its message posted on the next.
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
        };
        let at = |k: u64| targets[(k % targets.len() as u64) as usize].clone();
        let (create, post) = (at(n), at(n + 1));
        tokio::spawn(async move {
            if let Ok(s) = create.create_session(&req).await {
                let text = format!(
                    "demo message {n} for {agent}: the quick brown fox jumps over the lazy dog"
                );
                let _ = post.post_message(&s.agent_id, &s.token, &text, None).await;
            }
        });
        tokio::time::sleep(Duration::from_millis(150 + rng.u64(..500))).await;
    }
}
