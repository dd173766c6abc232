//! Replica rows on each backend: registered live, renewed, stopping, lost once the lease has
//! run out, gone once stopped; their live workers and sessions counted.

use super::*;
use crate::api::state::ReplicaState::{self, Live, Lost, Stopping};

conformance!(replicas_are_live_stopping_lost_or_gone);

fn register(id: &str, at: i64) -> Change {
    Change::RegisterReplica(ReplicaRecord {
        id: ReplicaId(id.into()),
        name: format!("name-{id}"),
        host: "host".into(),
        pid: 42,
        version: "1".into(),
        started_at: at,
        lease_until: at + 5_000,
    })
}

async fn states(store: &Arc<dyn Store>, now: i64) -> Vec<(String, ReplicaState, i64, i64)> {
    store
        .replicas(now)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.replica_id.to_string(), r.state, r.workers, r.sessions))
        .collect()
}

async fn replicas_are_live_stopping_lost_or_gone(fx: Fixture) {
    let store = fx.store;
    // Real time: PostgreSQL measures leases by its own clock (the changes' times only give
    // their length there).
    let t = crate::clock::now_ms();
    store
        .apply(Arc::from(vec![
            register("r-a", t),
            register("r-b", t + 1),
            Change::CreateSession(session("s1")),
            Change::Claim {
                session_id: SessionId("s1".into()),
                replica_id: ReplicaId("r-a".into()),
                at: t,
            },
            Change::WorkerSpawned(WorkerSpawn {
                replica_id: ReplicaId("r-a".into()),
                worker_id: WorkerId("w1".into()),
                generation: 1,
                pid: 7,
                origin: None,
                agent_id: "echo".into(),
                session_id: SessionId("s1".into()),
                at: t,
            }),
        ]))
        .await
        .unwrap();
    assert_eq!(
        states(&store, t + 10).await,
        [("r-a".into(), Live, 1, 1), ("r-b".into(), Live, 0, 0)]
    );
    let renewed = Change::RenewLease {
        replica_id: ReplicaId("r-a".into()),
        at: t + 4_000,
        lease_until: t + 14_000,
    };
    let stopping = Change::ReplicaStopping {
        replica_id: ReplicaId("r-b".into()),
        at: t + 4_000,
        stopped: false,
    };
    store
        .apply(Arc::from(vec![renewed, stopping]))
        .await
        .unwrap();
    assert_eq!(
        states(&store, t + 4_500).await,
        [("r-a".into(), Live, 1, 1), ("r-b".into(), Stopping, 0, 0)]
    );
    // r-b's lease ran out before it finished stopping: lost. r-a's renewal holds.
    assert_eq!(
        states(&store, t + 6_000).await,
        [("r-a".into(), Live, 1, 1), ("r-b".into(), Lost, 0, 0)]
    );
    let stopped = Change::ReplicaStopping {
        replica_id: ReplicaId("r-b".into()),
        at: t + 6_500,
        stopped: true,
    };
    store.apply(Arc::from(vec![stopped])).await.unwrap();
    assert_eq!(
        states(&store, t + 6_600).await,
        [("r-a".into(), Live, 1, 1)]
    );
    // A stopped replica's lease is not renewed.
    let late = Change::RenewLease {
        replica_id: ReplicaId("r-b".into()),
        at: t + 7_000,
        lease_until: t + 12_000,
    };
    let applied = store.apply(Arc::from(vec![late])).await.unwrap();
    assert!(matches!(applied.results[0], Applied::Unchanged));
    assert_eq!(
        states(&store, t + 20_000).await,
        [("r-a".into(), Lost, 1, 1)]
    );
    forgotten_once_it_holds_nothing(&store, t).await;
}

/// Pruning keeps a lost replica while it still owns a session or runs a worker, and forgets
/// it once it holds nothing.
async fn forgotten_once_it_holds_nothing(store: &Arc<dyn Store>, t: i64) {
    let prune = || Change::Prune { before: t + 30_000 };
    store.apply(Arc::from(vec![prune()])).await.unwrap();
    assert_eq!(
        states(store, t + 20_000).await,
        [("r-a".into(), Lost, 1, 1)]
    );
    let exited = Change::WorkerExited(crate::store::WorkerExit {
        worker_id: WorkerId("w1".into()),
        generation: 1,
        exit_code: None,
        signal: None,
        at: t + 21_000,
        intentional: false,
        reason: "replica_lost".into(),
        stderr_tail: String::new(),
    });
    let disown = Change::Disown {
        session_id: SessionId("s1".into()),
        at: t + 21_000,
    };
    let lost = Change::MarkLost {
        replicas: vec![ReplicaId("r-a".into())],
        judge: None,
        at: t + 21_000,
    };
    store
        .apply(Arc::from(vec![exited, disown, lost, prune()]))
        .await
        .unwrap();
    assert!(states(store, t + 20_000).await.is_empty());
}
