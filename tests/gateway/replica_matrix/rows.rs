//! Rows 22–27, each a story over real replica processes.

use futures::StreamExt;
use nix::sys::signal::Signal;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use turnwatch::api::admin::KillRequest;
use turnwatch::api::state::ReplicaState;

use super::{Cluster, InFlight, Replica, in_flight, owner};
use crate::harness::{GUARD, assert_completed, assert_failed, assert_gone};

/// The id of the replica whose process is `pid`, as the cluster lists it.
async fn id_of(r: &Replica, pid: u32) -> String {
    let list = r.client.replicas().await.unwrap().items;
    let me = list
        .iter()
        .find(|x| x.pid == pid && x.state == ReplicaState::Live);
    me.unwrap_or_else(|| panic!("no live replica with pid {pid}: {list:?}"))
        .replica_id
        .to_string()
}

/// Rows 24 and 23, and ids that can be tailed: messages for one session posted to alternating
/// replicas are dispatched in order by the owner and reach a client on either replica; a
/// crash on the owner reaches a client streaming from the other; an admin stream on either
/// replica sees every admin event once, numbered without a gap, whoever committed it.
#[tokio::test]
async fn rows_23_24_streams_and_order_across_replicas() {
    let Some(c) = Cluster::new(2000).await else {
        return;
    };
    let (a, b) = (c.replica().await, c.replica().await);
    let mut admin = b.client.admin_events(None).await.unwrap();
    let snapshot = tokio::time::timeout(GUARD, admin.next()).await.unwrap();
    let mut last = snapshot.unwrap().unwrap().id.expect("the snapshot's id");
    let s = a.session("echo").await;
    let (mut on_a, mut on_b) = (a.open(&s).await, b.open(&s).await);
    let mut turns = Vec::new();
    for i in 0..6 {
        let r = if i % 2 == 0 { &a } else { &b };
        turns.push(r.post(&s, &format!("message {i}")).await);
    }
    assert_eq!(owner(&c.data, &s).await, Some(id_of(&a, a.pid).await));
    for (i, t) in turns.iter().enumerate() {
        // Read in order: a turn completing ahead of an earlier one would leave the earlier
        // one's `complete` behind, and this read would hang (the guard fails it).
        assert_eq!(
            assert_completed(&on_b.until_complete(t).await),
            format!("message {i}")
        );
        assert_eq!(
            assert_completed(&on_a.until_complete(t).await),
            format!("message {i}")
        );
    }
    let db = c.data.db().await;
    let order = db
        .ints(&format!(
            "SELECT seq FROM turns WHERE session_id = '{}' ORDER BY dispatched_at, seq",
            s.id
        ))
        .await;
    assert_eq!(
        order,
        [1, 2, 3, 4, 5, 6],
        "dispatched in the session's order"
    );

    // Row 23: the worker crashes on the owner (a); the client streams from b.
    let crashing = b.session("crash").await;
    let mut watch = b.open(&crashing).await;
    let t = a.post(&crashing, "crash now").await;
    assert_eq!(
        owner(&c.data, &crashing).await,
        Some(id_of(&a, a.pid).await)
    );
    let err = assert_failed(&watch.until_complete(&t).await, "worker_crashed");
    assert!(err["error"].as_str().unwrap().contains("code 3"), "{err}");

    // Every admin event so far, on b's stream, once each, numbered without a gap.
    let logged = db.int("SELECT MAX(seq) FROM admin_events", &[]).await;
    while last < logged {
        let ev = tokio::time::timeout(GUARD, admin.next())
            .await
            .expect("the admin stream went silent")
            .unwrap()
            .unwrap();
        // Neither is in the log: no id of its own (the client repeats the last one).
        if ev.event == "ping" || ev.event == "worker.sampled" {
            continue;
        }
        let id = ev.id.unwrap();
        assert_eq!(id, last + 1, "admin ids in order, without a gap: {ev:?}");
        last = id;
    }
}

/// Row 22: a replica killed (`SIGKILL`) mid-turn. A survivor fails the dispatched turn `replica_lost`
/// for a client streaming from it, the dead replica's worker is gone, and the turn queued
/// behind is dispatched by the new owner, not failed.
#[tokio::test]
async fn row_22_a_killed_replica_s_turn_fails_replica_lost_on_a_survivor() {
    let Some(c) = Cluster::new(1000).await else {
        return;
    };
    let (a, b) = (c.replica().await, c.replica().await);
    let s = b.session("hang").await;
    let mut on_b = b.open(&s).await;
    let first = a.post(&s, "hold on").await;
    let (_, _, pid) = a.live_worker(&s).await;
    let queued = b.post(&s, "queued behind").await;
    let killed = tokio::time::Instant::now();
    a.signal(Signal::SIGKILL);
    assert_failed(&on_b.until_complete(&first).await, "replica_lost");
    eprintln!(
        "row 22: replica_lost reached a client on the survivor {:?} after the SIGKILL (lease 1 s)",
        killed.elapsed()
    );
    assert_gone(pid).await;
    let b_id = id_of(&b, b.pid).await;
    assert_eq!(owner(&c.data, &s).await, Some(b_id.clone()));
    let (_, _, next_pid) = b.live_worker(&s).await;
    assert_ne!(next_pid, pid);
    let turn = b.client.turn(&queued).await.unwrap();
    assert_eq!(turn.turn.replica_id.map(|r| r.to_string()), Some(b_id));
    assert!(
        turn.turn.ended_at.is_none(),
        "the queued turn was handed over, not failed"
    );
}

/// Row 25: an operator on replica b kills replica a's busy worker: a kills exactly that
/// generation, the client sees `cancelled_by_operator`, and b's admin stream shows the
/// intentional exit.
#[tokio::test]
async fn row_25_an_operator_on_one_replica_kills_another_s_worker() {
    let Some(c) = Cluster::new(2000).await else {
        return;
    };
    let (a, b) = (c.replica().await, c.replica().await);
    let InFlight {
        session: _,
        mut on_b,
        turn: t,
        worker: (worker, generation, pid),
    } = in_flight(&a, &b, "hang", "hold on").await;
    let stale = KillRequest {
        generation: Some(generation + 1),
        pid: Some(pid),
        reason: Some("wrong generation".into()),
    };
    let refused = b.client.kill(&worker, &stale).await.unwrap_err();
    assert_eq!(
        refused.code().map(|c| c.as_str().to_owned()).as_deref(),
        Some("target_changed")
    );
    let req = KillRequest {
        generation: Some(generation),
        pid: Some(pid),
        reason: Some("row 25".into()),
    };
    let accepted = b.client.kill(&worker, &req).await.unwrap();
    assert!(accepted.success);
    let err = assert_failed(&on_b.until_complete(&t).await, "cancelled_by_operator");
    assert!(err["error"].as_str().unwrap().contains("row 25"), "{err}");
    assert_gone(pid).await;
    let deadline = tokio::time::Instant::now() + GUARD;
    loop {
        let detail = b.client.worker(&worker).await.unwrap();
        let exited = detail
            .generations
            .iter()
            .find(|w| w.generation == generation && w.exited_at.is_some());
        if let Some(w) = exited {
            assert_eq!(w.intentional, Some(true), "{w:?}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{detail:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Row 26: replica a is paused (SIGSTOP) past its lease; b takes over and fails a's turn
/// once; a resumes, its writes are refused, it stops its worker and registers anew; the
/// client never sees a second `complete`, and the session goes on.
#[tokio::test]
async fn row_26_a_paused_replica_is_fenced_and_rejoins() {
    let Some(c) = Cluster::new(1000).await else {
        return;
    };
    let (a, b) = (c.replica().await, c.replica().await);
    let old_id = id_of(&b, a.pid).await;
    let InFlight {
        session: s,
        mut on_b,
        turn: t,
        worker: (_, _, pid),
    } = in_flight(&a, &b, "slow", "a long reply").await;
    a.signal(Signal::SIGSTOP);
    assert_failed(&on_b.until_complete(&t).await, "replica_lost");
    a.signal(Signal::SIGCONT);
    assert_gone(pid).await;
    let deadline = tokio::time::Instant::now() + GUARD;
    loop {
        let list = b.client.replicas().await.unwrap().items;
        let again = list.iter().any(|r| {
            r.pid == a.pid && r.state == ReplicaState::Live && r.replica_id.as_str() != old_id
        });
        let old_lost = list
            .iter()
            .any(|r| r.replica_id.as_str() == old_id && r.state == ReplicaState::Lost);
        if again && old_lost {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{list:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Whatever a still had of the turn was refused: no second end, no late text.
    on_b.assert_quiet(Duration::from_secs(2)).await;
    let db = c.data.db().await;
    let completes = db
        .int(
            "SELECT COUNT(*) FROM events WHERE turn_id = $1 AND kind = 'complete'",
            &[&t],
        )
        .await;
    assert_eq!(completes, 1);
    let next = a.post(&s, "and on").await;
    let events = on_b.until_complete(&next).await;
    assert!(assert_completed(&events).contains("and on"));
}

/// Row 27: a rolling restart (SIGTERM each replica in turn, start it again) under steady
/// traffic of short turns fails no turn: what a stopping replica held finishes or moves to a
/// peer.
#[tokio::test]
async fn row_27_a_rolling_restart_fails_no_turn() {
    let Some(c) = Cluster::new(2000).await else {
        return;
    };
    let first = vec![c.replica().await, c.replica().await];
    let clients = Arc::new(Mutex::new(
        first.iter().map(|r| r.client.clone()).collect::<Vec<_>>(),
    ));
    let mut sessions = Vec::new();
    for _ in 0..4 {
        sessions.push(first[0].session("echo").await);
    }
    let stop = tokio_util::sync::CancellationToken::new();
    let load = {
        let (clients, stop) = (Arc::clone(&clients), stop.clone());
        tokio::spawn(async move {
            let mut accepted = 0u32;
            let mut i = 0usize;
            while !stop.is_cancelled() {
                let s = &sessions[i % sessions.len()];
                let list = clients.lock().unwrap().clone();
                for k in 0..list.len() {
                    let client = &list[(i + k) % list.len()];
                    let msg = format!("turn {i}");
                    if client
                        .post_message(&s.id, &s.token, &msg, None)
                        .await
                        .is_ok()
                    {
                        accepted += 1;
                        break;
                    }
                }
                i += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            accepted
        })
    };
    let mut replicas = first;
    for k in 0..2 {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let mut old = replicas.remove(0);
        old.signal(Signal::SIGTERM);
        tokio::time::timeout(GUARD, old.child.wait())
            .await
            .unwrap()
            .unwrap();
        let fresh = c.replica().await;
        *clients.lock().unwrap() = vec![replicas[0].client.clone(), fresh.client.clone()];
        replicas.push(fresh);
        eprintln!("row 27: replica {k} restarted");
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.cancel();
    let accepted = i64::from(load.await.unwrap());
    let db = c.data.db().await;
    let deadline = tokio::time::Instant::now() + GUARD;
    while db
        .int("SELECT COUNT(*) FROM turns WHERE ended_at IS NULL", &[])
        .await
        > 0
    {
        assert!(tokio::time::Instant::now() < deadline, "turns left open");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let turns = db.int("SELECT COUNT(*) FROM turns", &[]).await;
    let failed = db
        .pairs("SELECT id, COALESCE(code, '') FROM turns WHERE outcome <> 'completed'")
        .await;
    eprintln!("row 27: {accepted} turns accepted across the restarts");
    assert_eq!(turns, accepted, "every accepted turn was recorded once");
    assert!(failed.is_empty(), "no turn failed: {failed:?}");
    let completes = db
        .int("SELECT COUNT(*) FROM events WHERE kind = 'complete'", &[])
        .await;
    assert_eq!(completes, accepted, "one complete per turn");
}

/// Row 29: a replica refuses a database written by a newer version, naming both versions,
/// and changes nothing.
#[tokio::test]
async fn row_29_a_database_from_a_newer_version_is_refused() {
    let Some(c) = Cluster::new(2000).await else {
        return;
    };
    let mut first = c.replica().await;
    first.signal(Signal::SIGTERM);
    tokio::time::timeout(GUARD, first.child.wait())
        .await
        .unwrap()
        .unwrap();
    let db = c.data.db().await;
    db.execute(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (999, 'from the future', true, '\\x00', 0)",
        &[],
    )
    .await;
    db.execute(
        "INSERT INTO replicas (id, name, host, pid, version, started_at, heartbeat_at, lease_until, state) \
         VALUES ('r-future', 'future', 'elsewhere', 1, '9.9.9', 9000000000000, 0, 0, 'stopped')",
        &[],
    )
    .await;
    let out = tokio::time::timeout(
        GUARD,
        tokio::process::Command::new(crate::harness::BIN)
            .args(crate::harness::gateway_args(
                "127.0.0.1:0",
                &c.data.url,
                &c.conf,
            ))
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("turnwatch 9.9.9") && stderr.contains("schema version 999"),
        "{stderr}"
    );
    assert!(stderr.contains(env!("CARGO_PKG_VERSION")), "{stderr}");
    let migrations = db
        .int(
            "SELECT COUNT(*) FROM _sqlx_migrations WHERE version = 999",
            &[],
        )
        .await;
    assert_eq!(migrations, 1, "nothing changed");
}

/// Row 16 across replicas: a session deleted through a replica that does not run it ends its
/// turn `session_deleted` once, and the owner stops the worker.
#[tokio::test]
async fn a_session_deleted_on_another_replica_ends_its_turn_and_worker() {
    let Some(c) = Cluster::new(2000).await else {
        return;
    };
    let (a, b) = (c.replica().await, c.replica().await);
    let InFlight {
        session: s,
        mut on_b,
        turn: t,
        worker: (_, _, pid),
    } = in_flight(&a, &b, "hang", "hold on").await;
    b.client.delete_session(&s.id, &s.token).await.unwrap();
    assert_failed(&on_b.until_complete(&t).await, "session_deleted");
    let closed = on_b.next().await.expect("a closed event");
    assert_eq!(closed.event, "closed", "{closed:?}");
    assert_gone(pid).await;
}

/// Row 28: `PostgreSQL` goes away for three leases (every connection of both replicas ended
/// as it appears, as a server restart would) while turns stream. Meanwhile `/healthz` says
/// 503; afterwards both turns complete with their text whole, once, on the other replica's
/// stream; nobody was found lost (no lease can be renewed during an outage, so none is judged
/// for a lease after it), and no turn failed.
#[tokio::test]
async fn row_28_a_postgres_outage_fails_nothing_and_doubles_nothing() {
    let Some(c) = Cluster::new(1000).await else {
        return;
    };
    let (a, b) = (c.replica().await, c.replica().await);
    let ids = (id_of(&a, a.pid).await, id_of(&a, b.pid).await);
    let (s1, s2) = (a.session("slow").await, b.session("slow").await);
    let (mut r1, mut r2) = (b.open(&s1).await, a.open(&s2).await);
    let text = "one two three four five six seven eight nine ten";
    let (t1, t2) = (a.post(&s1, text).await, b.post(&s2, text).await);
    let (f1, f2) = (r1.next().await.unwrap(), r2.next().await.unwrap());
    assert_eq!((f1.event.as_str(), f2.event.as_str()), ("output", "output"));
    let healthz = format!("{}/healthz", a.url);
    let watch = tokio::spawn(async move {
        let http = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + GUARD;
        loop {
            if let Ok(r) = http.get(&healthz).send().await
                && r.status().as_u16() == 503
            {
                return true;
            }
            if tokio::time::Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let ended = c.data.terminate_connections(Duration::from_secs(3)).await;
    assert!(ended > 0, "the replicas had connections to end");
    assert!(watch.await.unwrap(), "/healthz said 503 during the outage");
    for (r, t, first) in [(&mut r1, &t1, f1), (&mut r2, &t2, f2)] {
        let events = r.until_complete(t).await;
        let streamed: String = std::iter::once(&first)
            .chain(&events)
            .filter(|e| e.event == "output")
            .map(|e| e.data["content"].as_str().unwrap())
            .collect();
        assert_eq!(streamed, text, "no delta lost or doubled");
        assert_eq!(assert_completed(&events), text);
    }
    let db = c.data.db().await;
    for t in [&t1, &t2] {
        let sql = "SELECT COUNT(*) FROM events WHERE turn_id = $1 AND kind = 'complete'";
        assert_eq!(db.int(sql, &[t]).await, 1, "one complete stored");
    }
    assert_eq!(
        db.int("SELECT COUNT(*) FROM turns WHERE outcome = 'failed'", &[])
            .await,
        0
    );
    assert_eq!(id_of(&a, a.pid).await, ids.0, "a was not found lost");
    assert_eq!(id_of(&a, b.pid).await, ids.1, "b was not found lost");
}

/// A replica killed on this host beside a live peer: the next replica to start on this host
/// kills what the dead one's workers left behind (a worker's own children, which the kernel's
/// kill-with-parent does not reach), and leaves the peer's workers alone.
#[tokio::test]
async fn a_dead_replica_s_leftovers_are_killed_by_the_next_to_start_beside_peers() {
    let Some(c) = Cluster::new(2000).await else {
        return;
    };
    let (mut a, b) = (c.replica().await, c.replica().await);
    let s = a.session("parent").await;
    let mut on_b = b.open(&s).await;
    let t = a.post(&s, "hi").await;
    assert_eq!(assert_completed(&on_b.until_complete(&t).await), "hi");
    let child: u32 = std::fs::read_to_string(c.data.dir.path().join("child.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let _reaper = crate::workers::Reaper(vec![child]);
    let busy = b.session("hang").await;
    b.post(&busy, "hold on").await;
    let (_, _, peer_worker) = b.live_worker(&busy).await;
    a.signal(Signal::SIGKILL);
    a.child.wait().await.unwrap();
    assert!(
        turnwatch::supervisor::procinfo::is_running(child),
        "the worker's child outlived its replica"
    );
    let _third = c.replica().await;
    assert_gone(child).await;
    assert!(
        turnwatch::supervisor::procinfo::is_running(peer_worker),
        "the live peer's worker was left alone"
    );
}

/// A forwarded operator action whose notification was lost is still carried out: it waits
/// in the store until the owner's scan takes it.
#[tokio::test]
async fn a_forwarded_action_survives_a_lost_notification() {
    let Some(c) = Cluster::new(2000).await else {
        return;
    };
    let (a, b) = (c.replica().await, c.replica().await);
    let InFlight {
        session: _,
        mut on_b,
        turn: t,
        worker: (worker, generation, pid),
    } = in_flight(&a, &b, "hang", "hold on").await;
    let forward = serde_json::json!({
        "replica": id_of(&b, a.pid).await, "action": "kill", "target": worker,
        "generation": generation, "pid": pid, "reason": "notification lost", "token": "local",
    });
    // Stored as `Peers::forward` stores it, but with no NOTIFY.
    c.data
        .db()
        .await
        .execute(
            &format!(
                "INSERT INTO forwarded_actions (replica_id, payload, created_at) VALUES ($1, $2, {})",
                turnwatch::clock::now_ms()
            ),
            &[forward["replica"].as_str().unwrap(), &forward.to_string()],
        )
        .await;
    let err = assert_failed(&on_b.until_complete(&t).await, "cancelled_by_operator");
    assert!(
        err["error"].as_str().unwrap().contains("notification lost"),
        "{err}"
    );
    assert_gone(pid).await;
}
