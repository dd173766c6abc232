//! History retention: what `PruneHistory` forgets, and what it must keep.

use super::*;

conformance!(
    history_older_than_its_retention_is_forgotten_and_nothing_else,
    a_full_pruning_round_asks_for_another,
);

#[allow(clippy::too_many_lines)] // one story: the fixture, the prune, what is left
async fn history_older_than_its_retention_is_forgotten_and_nothing_else(fx: Fixture) {
    let (store, db) = (fx.store, fx.db);
    let now = now_ms();
    let old = now - 10 * 24 * 3600 * 1000;
    let mut gone = session("s-old");
    gone.created_at = old;
    gone.last_activity = old;
    let mut busy = session("s-busy");
    busy.created_at = old;
    busy.last_activity = old;
    let end = |id: &str, session: &str, at: i64| {
        let ending = TurnEnding::failed(ErrorCode::TurnStalled, "stalled");
        let events = ending.events(&TurnId(id.into()), &format!("m-{id}").into(), at);
        Change::EndTurn {
            session_id: SessionId(session.into()),
            turn_id: TurnId(id.into()),
            ending,
            events,
            at,
            stranded: true,
        }
    };
    let exit = |w: &str, at: i64| {
        Change::WorkerExited(WorkerExit {
            worker_id: WorkerId(w.into()),
            generation: 1,
            exit_code: Some(0),
            signal: None,
            at,
            intentional: true,
            reason: "idle".into(),
            stderr_tail: String::new(),
        })
    };
    let spawn = |w: &str, s: &str, at: i64| {
        Change::WorkerSpawned(WorkerSpawn {
            replica_id: crate::ids::ReplicaId("r-test".into()),
            worker_id: WorkerId(w.into()),
            generation: 1,
            pid: 4242,
            origin: None,
            agent_id: "echo".into(),
            session_id: SessionId(s.into()),
            at,
        })
    };
    store
        .apply(Arc::new([
            Change::CreateSession(gone),
            Change::CreateSession(busy),
            Change::CreateSession(session("s-new")),
            Change::InsertTurn {
                turn: turn("t-old", "s-old", old),
            },
            Change::InsertTurn {
                turn: turn("t-open", "s-busy", old),
            },
            Change::InsertTurn {
                turn: turn("t-new", "s-new", now),
            },
            spawn("w-old", "s-old", old),
            spawn("w-new", "s-new", now),
            end("t-old", "s-old", old),
            end("t-new", "s-new", now),
            exit("w-old", old),
            exit("w-new", now),
            Change::DeleteSession {
                id: SessionId("s-old".into()),
                at: old,
            },
        ]))
        .await
        .unwrap();
    let cutoff = now - 7 * 24 * 3600 * 1000;
    store
        .apply(Arc::new([
            Change::Prune { before: cutoff },
            Change::PruneHistory { before: cutoff },
        ]))
        .await
        .unwrap();
    assert_eq!(
        db.strings("SELECT id FROM turns").await,
        ["t-new", "t-open"],
        "open turns stay"
    );
    assert_eq!(db.strings("SELECT worker_id FROM workers").await, ["w-new"]);
    assert_eq!(
        db.strings("SELECT id FROM sessions").await,
        ["s-busy", "s-new"],
        "a session with an open turn stays"
    );
    let admin =
        |cmp: &str| format!("SELECT COUNT(*) FROM admin_events WHERE created_at {cmp} {cutoff}");
    assert_eq!(db.count(&admin("<")).await, 0);
    assert!(db.count(&admin(">=")).await > 0, "recent admin events stay");
}

/// A pruning round that finds a full batch says so, so the gateway runs the next one at once
/// rather than a minute later (pruning keeps up with any sustained rate of turns).
async fn a_full_pruning_round_asks_for_another(fx: Fixture) {
    let store = fx.store;
    let old = now_ms() - 3_600_000;
    let mut writes = vec![Change::CreateSession(session("s-busy"))];
    for i in 0..501 {
        let id = format!("t-{i:04}");
        writes.push(Change::InsertTurn {
            turn: turn(&id, "s-busy", old),
        });
        let ending = TurnEnding::failed(ErrorCode::TurnStalled, "stalled");
        writes.push(Change::EndTurn {
            session_id: SessionId("s-busy".into()),
            events: ending.events(&TurnId(id.clone()), &format!("m-{id}").into(), old),
            turn_id: TurnId(id),
            ending,
            at: old,
            stranded: true,
        });
    }
    store.apply(writes.into()).await.unwrap();
    let prune = || async {
        let b = store
            .apply(Arc::new([Change::Prune { before: now_ms() }]))
            .await
            .unwrap();
        matches!(b.results[0], Applied::Changed)
    };
    assert!(prune().await, "500 of 501 turns: a full batch, more to do");
    assert!(!prune().await, "the last one: done");
}
