//! Session ownership on each backend (`replica.rs`, obligations 1, 5, 9, 10): one owner at a
//! time, fenced writes refused once the session is taken over, the takeover failing what
//! reached a worker and keeping the queue, dispatch in the session's order.

use super::*;
use crate::api::ErrorCode;
use crate::store::Fence;

conformance!(a_lost_owner_is_fenced_and_its_session_taken_over);

fn register(id: &str, at: i64) -> Change {
    Change::RegisterReplica(ReplicaRecord {
        id: ReplicaId(id.into()),
        name: id.into(),
        host: "host".into(),
        pid: 42,
        version: "1".into(),
        started_at: at,
        lease_until: at + 60_000,
    })
}

fn claim(replica: &str, at: i64) -> Change {
    Change::Claim {
        session_id: SessionId("s1".into()),
        replica_id: ReplicaId(replica.into()),
        at,
    }
}

async fn one(store: &Arc<dyn Store>, change: Change) -> Applied {
    store
        .apply(Arc::from(vec![change]))
        .await
        .unwrap()
        .results
        .remove(0)
}

async fn a_lost_owner_is_fenced_and_its_session_taken_over(fx: Fixture) {
    let store = fx.store;
    let t = crate::clock::now_ms();
    let setup = vec![
        register("r-a", t),
        register("r-b", t),
        Change::CreateSession(session("s1")),
        Change::InsertTurn {
            turn: turn("t1", "s1", t),
        },
        Change::InsertTurn {
            turn: turn("t2", "s1", t + 1),
        },
    ];
    store.apply(setup.into()).await.unwrap();
    let Applied::Claimed { epoch, events } = one(&store, claim("r-a", t)).await else {
        panic!("an unowned session is claimed");
    };
    assert!(events.is_empty());
    let held = one(&store, claim("r-b", t)).await;
    assert!(
        matches!(&held, Applied::Held { owner: Some(o) } if o.as_str() == "r-a"),
        "a live owner keeps its session: {held:?}"
    );
    let a = Fence {
        session_id: SessionId("s1".into()),
        owner: ReplicaId("r-a".into()),
        epoch,
    };
    let stale = Fence {
        epoch: epoch - 1,
        ..a.clone()
    };
    // Dispatch in the session's order: t2 waits while t1 is open.
    let early = one(&store, dispatch("t2", "w1", t, t + 60_000).fenced(&a)).await;
    assert!(matches!(early, Applied::Unchanged), "{early:?}");
    let refused = one(&store, dispatch("t1", "w1", t, t + 60_000).fenced(&stale)).await;
    assert!(matches!(refused, Applied::Fenced), "{refused:?}");
    let spawned = Change::WorkerSpawned(WorkerSpawn {
        replica_id: ReplicaId("r-a".into()),
        worker_id: WorkerId("w1".into()),
        generation: 1,
        pid: 4242,
        origin: None,
        agent_id: "echo".into(),
        session_id: SessionId("s1".into()),
        at: t,
    });
    let b = store
        .apply(Arc::from(vec![
            spawned.fenced(&a),
            dispatch("t1", "w1", t, t + 60_000).fenced(&a),
        ]))
        .await
        .unwrap();
    assert!(matches!(b.results[1], Applied::Changed), "{:?}", b.results);
    // r-a is lost: r-b takes the session over.
    let lost = Change::MarkLost {
        replicas: vec![ReplicaId("r-a".into())],
        judge: None,
        at: t,
    };
    assert!(matches!(one(&store, lost).await, Applied::Changed));
    let Applied::Claimed {
        epoch: next,
        events,
    } = one(&store, claim("r-b", t + 10)).await
    else {
        panic!("a lost owner's session is claimed");
    };
    assert_eq!(next, epoch + 1);
    assert!(
        events
            .iter()
            .any(|e| e.turn_id.as_ref().is_some_and(|x| x.as_str() == "t1")
                && e.data.contains("replica_lost")),
        "the dispatched turn failed replica_lost: {events:?}"
    );
    let t1 = store.turn(&TurnId("t1".into())).await.unwrap().unwrap();
    assert_eq!(t1.code, Some(ErrorCode::ReplicaLost));
    let (queued, last_seq) = store.queued_turns(&SessionId("s1".into())).await.unwrap();
    assert_eq!(
        queued
            .iter()
            .map(|q| q.turn_id.as_str())
            .collect::<Vec<_>>(),
        ["t2"],
        "the queued turn stays, for the new owner"
    );
    assert_eq!(last_seq, 2);
    assert!(
        store.live_workers().await.unwrap().is_empty(),
        "the lost owner's worker row is closed"
    );
    the_old_owner_is_refused(&store, &a, next, t).await;
}

/// After the takeover: the old owner's writes change nothing, it stays lost, and the new
/// owner dispatches the queued turn.
async fn the_old_owner_is_refused(store: &Arc<dyn Store>, a: &Fence, next: i64, t: i64) {
    // The old owner's late writes change nothing; its turn stays ended once.
    let late = store
        .apply(Arc::from(vec![
            Change::Event {
                session_id: SessionId("s1".into()),
                turn_id: Some(TurnId("t2".into())),
                kind: crate::api::EventKind::Output,
                data: "{}".into(),
                at: t + 20,
                from: None,
                progress: Progress::Check,
            }
            .fenced(a),
            dispatch("t2", "w1", t + 20, t + 60_000).fenced(a),
        ]))
        .await
        .unwrap();
    assert!(late.results.iter().all(|r| matches!(r, Applied::Fenced)));
    assert!(late.admin.is_empty(), "a fenced write logs nothing");
    // A lost replica stays lost and cannot claim.
    let renew = Change::RenewLease {
        replica_id: ReplicaId("r-a".into()),
        at: t,
        lease_until: t + 60_000,
    };
    assert!(matches!(one(store, renew).await, Applied::Unchanged));
    assert!(matches!(
        one(store, claim("r-a", t + 30)).await,
        Applied::Held { owner: None }
    ));
    let b_fence = Fence {
        owner: ReplicaId("r-b".into()),
        epoch: next,
        ..a.clone()
    };
    let ok = one(
        store,
        dispatch("t2", "w2", t + 40, t + 60_000).fenced(&b_fence),
    )
    .await;
    assert!(matches!(ok, Applied::Changed), "{ok:?}");
}
