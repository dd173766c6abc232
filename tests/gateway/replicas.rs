//! Replicas (issue 13): each `turnwatch gateway` process registers with a lease it renews;
//! one that stops cleanly leaves the list, one that is killed is shown lost once its lease
//! has run out; its workers name it.

use std::time::Duration;
use tokio::process::{Child, Command};
use turnwatch::api::state::ReplicaState;
use turnwatch::client::Client;

use crate::harness::{BIN, GUARD, gateway_args, gateway_child};

async fn spawn_gateway(conf: &std::path::Path, db_url: &str) -> (Child, Client) {
    let mut cmd = Command::new(BIN);
    cmd.args(gateway_args("127.0.0.1:0", db_url, conf));
    let (child, url) = gateway_child(cmd).await;
    (child, Client::new(&url, None))
}

#[tokio::test]
async fn replicas_register_renew_and_are_lost_when_killed() {
    let dir = tempfile::tempdir().unwrap();
    let db_url = format!("sqlite://{}", dir.path().join("gw.db").display());
    let conf = dir.path().join("turnwatch.toml");
    let toml = format!(
        "[gateway]\nreplica_lease = \"1s\"\nreplica_name = \"first\"\n\
         [agents.hang]\ncommand = [\"{BIN}\", \"worker\", \"--mode\", \"hang\"]\n"
    );
    std::fs::write(&conf, toml).unwrap();
    let (mut first, client) = spawn_gateway(&conf, &db_url).await;
    let first_pid = first.id().unwrap();
    // A turn in flight: its worker names the replica that runs it.
    let s = client
        .create_session(&turnwatch::api::CreateSession::default())
        .await
        .unwrap();
    client
        .post_message(&s.agent_id, &s.token, "hold on", None)
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + GUARD;
    let replica = loop {
        let list = client.replicas().await.unwrap().items;
        assert_eq!(list.len(), 1, "{list:?}");
        if list[0].workers == 1 {
            break list[0].clone();
        }
        assert!(tokio::time::Instant::now() < deadline, "{list:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(replica.name, "first");
    assert_eq!(replica.pid, first_pid);
    assert_eq!(replica.state, ReplicaState::Live);
    assert_eq!(replica.sessions, 1);
    let workers = client
        .workers(&turnwatch::api::admin::ListQuery::of("live", 10))
        .await
        .unwrap();
    assert_eq!(workers.items[0].replica_id, replica.replica_id);
    assert_eq!(client.overview().await.unwrap().replicas, 1);
    // The lease is renewed: well past one lease, it is still live.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let again = client.replicas().await.unwrap().items;
    assert_eq!(again[0].state, ReplicaState::Live, "{again:?}");
    assert!(again[0].heartbeat_at > replica.heartbeat_at, "{again:?}");

    // Killed: its row stays, and once its lease has run out it is lost.
    first.start_kill().unwrap();
    first.wait().await.unwrap();
    let (mut second, client) = spawn_gateway(&conf, &db_url).await;
    let deadline = tokio::time::Instant::now() + GUARD;
    loop {
        let list = client.replicas().await.unwrap().items;
        let old = list.iter().find(|r| r.replica_id == replica.replica_id);
        let live = list
            .iter()
            .filter(|r| r.state == ReplicaState::Live)
            .count();
        if old.is_some_and(|r| r.state == ReplicaState::Lost) && live == 1 {
            assert_eq!(client.overview().await.unwrap().replicas, 1);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{list:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Stopped cleanly (SIGTERM): it leaves the list.
    let second_pid = second.id().unwrap();
    let pid = nix::unistd::Pid::from_raw(second_pid as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    tokio::time::timeout(GUARD, second.wait())
        .await
        .unwrap()
        .unwrap();
    let (mut third, client) = spawn_gateway(&conf, &db_url).await;
    let list = client.replicas().await.unwrap().items;
    assert_eq!(list.len(), 2, "the lost one and this one: {list:?}");
    assert!(list.iter().all(|r| r.pid != second_pid), "{list:?}");
    third.start_kill().unwrap();
    third.wait().await.unwrap();
}

/// Replicas share a `PostgreSQL` database, never an `SQLite` file: a second gateway on a live
/// file refuses to start (its start-up recovery would fail the first one's turns), and starts
/// at once once the first is dead (same host, its process gone).
#[tokio::test]
async fn a_second_gateway_on_a_live_database_is_refused_until_the_first_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let db_url = format!("sqlite://{}", dir.path().join("gw.db").display());
    let conf = dir.path().join("turnwatch.toml");
    std::fs::write(&conf, "[gateway]\nreplica_lease = \"1s\"\n").unwrap();
    let (mut first, client) = spawn_gateway(&conf, &db_url).await;
    let second = tokio::time::timeout(
        GUARD,
        Command::new(BIN)
            .args(gateway_args("127.0.0.1:0", &db_url, &conf))
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap()
    .unwrap();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "{stderr}");
    assert!(
        stderr.contains("another gateway uses this database"),
        "{stderr}"
    );
    assert!(
        !String::from_utf8_lossy(&second.stdout).contains("listening"),
        "it never served"
    );
    assert_eq!(
        client.overview().await.unwrap().replicas,
        1,
        "the first still serves"
    );
    first.start_kill().unwrap();
    first.wait().await.unwrap();
    let started = tokio::time::Instant::now();
    let (mut third, client) = spawn_gateway(&conf, &db_url).await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "a dead replica on this host is not waited for"
    );
    // The killed one counts as live until its lease runs out, then as lost.
    let deadline = tokio::time::Instant::now() + GUARD;
    while client.overview().await.unwrap().replicas != 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the dead one stays live"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    third.start_kill().unwrap();
    third.wait().await.unwrap();
}
