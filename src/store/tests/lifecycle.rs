//! A turn's whole life through the trait, on each backend: what a gateway writes, batch by
//! batch, and what every read then answers. Also the orders and refusals both backends share.

use super::*;
use crate::api::state::{WorkerFilter, WorkerSet};
use crate::api::{EventKind, WorkerState};

conformance!(
    a_turn_lives_and_ends_once,
    lists_page_newest_first_with_cursors,
    numbers_follow_commit_order_under_concurrent_writers,
    refusals_are_for_good_and_unknown_names_do_not_decode,
    text_with_nul_is_stored,
);

fn sid(s: &str) -> SessionId {
    SessionId(s.into())
}

fn tid(t: &str) -> TurnId {
    TurnId(t.into())
}

fn wid(w: &str) -> WorkerId {
    WorkerId(w.into())
}

fn spawn(worker: &str, session: &str, generation: u32, at: i64) -> Change {
    Change::WorkerSpawned(WorkerSpawn {
        worker_id: wid(worker),
        generation,
        pid: 4242,
        origin: Some(ProcessOrigin {
            host: "h".into(),
            boot_id: "b".into(),
            start_ticks: 77,
        }),
        agent_id: "echo".into(),
        session_id: sid(session),
        at,
    })
}

fn delta(session: &str, turn: &str, text: &str, at: i64, progress: Progress) -> Change {
    Change::Event {
        session_id: sid(session),
        turn_id: Some(tid(turn)),
        kind: EventKind::Output,
        data: serde_json::json!({ "type": "delta", "content": text }).to_string(),
        at,
        from: Some((wid("w1"), 1)),
        progress,
    }
}

fn complete(session: &str, turn: &str, at: i64) -> Change {
    let ending = TurnEnding::completed(Some("hello".into()));
    Change::EndTurn {
        session_id: sid(session),
        turn_id: tid(turn),
        events: ending.events(&tid(turn), &format!("m-{turn}").into(), at),
        ending,
        at,
        stranded: false,
    }
}

fn exited(worker: &str, generation: u32, at: i64) -> Change {
    Change::WorkerExited(WorkerExit {
        worker_id: wid(worker),
        generation,
        exit_code: Some(0),
        signal: None,
        at,
        intentional: true,
        reason: "idle".into(),
        stderr_tail: "bye".into(),
    })
}

fn kinds(admin: &[LoggedEvent]) -> Vec<&str> {
    admin.iter().map(|e| e.kind.as_str()).collect()
}

/// Every admin event ever logged, checked to be numbered 1, 2, 3, … with no gap.
async fn admin_log(store: &Arc<dyn Store>) -> Vec<LoggedEvent> {
    let log = store.admin_events_after(0, 10_000).await.unwrap();
    let seqs: Vec<i64> = log.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=log.len() as i64).collect::<Vec<_>>());
    log
}

/// The gateway's writes for one turn, from the session's creation to its worker's exit; the
/// second end of the turn changes nothing and logs nothing.
#[allow(clippy::too_many_lines)] // one story, told in order
async fn a_turn_lives_and_ends_once(fx: Fixture) {
    let store = fx.store;
    let now = now_ms();
    let mut s1 = session("s1");
    s1.thread = Some("thread-1".into());
    let b = store
        .apply(Arc::new([
            Change::CreateSession(s1),
            Change::InsertTurn {
                turn: turn("t1", "s1", now),
            },
            Change::InsertTurn {
                turn: turn("t1-again", "s1", now + 1),
            },
            spawn("w1", "s1", 1, now),
        ]))
        .await
        .unwrap();
    assert!(
        matches!(&b.results[1], Applied::Turn { turn_id, created: true } if turn_id.as_str() == "t1")
    );
    assert_eq!(
        kinds(&b.admin),
        ["turn.queued", "turn.queued", "worker.spawned"]
    );
    let mut same = turn("t1-dup", "s1", now);
    same.message_id = MessageId("m-t1".into());
    let b = store
        .apply(Arc::new([Change::InsertTurn { turn: same }]))
        .await
        .unwrap();
    assert!(
        matches!(&b.results[0], Applied::Turn { turn_id, created: false } if turn_id.as_str() == "t1"),
        "a message id already accepted gives its turn back"
    );
    assert!(b.admin.is_empty());
    let found = store
        .session_by_thread("echo", "thread-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((found.id.as_str(), found.last_seq), ("s1", 0));
    assert_eq!(store.next_generation(&wid("w1")).await.unwrap(), 2);
    let live = store.live_workers().await.unwrap();
    assert_eq!(live.len(), 1);
    assert_eq!(
        (live[0].pid, live[0].origin.as_ref().map(|o| o.start_ticks)),
        (Some(4242), Some(77))
    );

    let b = store
        .apply(Arc::new([
            Change::WorkerState {
                worker_id: wid("w1"),
                generation: 1,
                state: WorkerState::Ready,
                turn_id: None,
                at: now,
            },
            dispatch("t1", "w1", now, now + 60_000),
            Change::WorkerState {
                worker_id: wid("w1"),
                generation: 1,
                state: WorkerState::Busy,
                turn_id: Some(tid("t1")),
                at: now,
            },
            delta("s1", "t1", "he", now, Progress::Announce),
            delta("s1", "t1", "l", now, Progress::Append),
            delta("s1", "t1", "lo", now, Progress::Check),
            Change::WorkerHeartbeat {
                worker_id: wid("w1"),
                generation: 1,
                at: now,
            },
        ]))
        .await
        .unwrap();
    assert_eq!(
        kinds(&b.admin),
        ["worker.ready", "turn.dispatched", "turn.progress"]
    );
    let seqs: Vec<i64> = b.results[3..6]
        .iter()
        .flat_map(|r| match r {
            Applied::Events(e) => e.iter().map(|e| e.seq).collect::<Vec<_>>(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(seqs, [1, 2, 3]);
    let (last, owed) = store.events_in_flight(&sid("s1")).await.unwrap();
    assert_eq!((last, owed.len()), (3, 3), "an open turn's events are owed");
    let open = store.open_turns().await.unwrap();
    assert_eq!(
        open.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
        ["t1", "t1-again"]
    );
    let row = store.turn_row(&tid("t1"), now).await.unwrap().unwrap();
    assert_eq!(
        (row.state, row.worker_generation, row.stranded),
        (TurnState::Streaming, Some(1), false)
    );
    assert_eq!(row.first_output_at, Some(now));

    let b = store
        .apply(Arc::new([
            complete("s1", "t1", now + 1),
            complete("s1", "t1", now + 2),
        ]))
        .await
        .unwrap();
    assert!(matches!(&b.results[0], Applied::Events(e) if e.len() == 1 && e[0].seq == 4));
    assert!(
        matches!(&b.results[1], Applied::Events(e) if e.is_empty()),
        "the second end is a no-op"
    );
    assert_eq!(kinds(&b.admin), ["turn.completed"]);
    let b = store
        .apply(Arc::new([
            complete("s1", "t1", now + 3),
            delta("s1", "t1", "!", now, Progress::Check),
        ]))
        .await
        .unwrap();
    assert!(
        b.results
            .iter()
            .all(|r| matches!(r, Applied::Events(e) if e.is_empty()))
    );
    assert_eq!(
        kinds(&b.admin),
        ["worker.output_rejected"],
        "a late delta is recorded, never appended"
    );

    let t1 = store.turn(&tid("t1")).await.unwrap().unwrap();
    assert_eq!(
        (t1.state, t1.ended_at, t1.code),
        (TurnState::Completed, Some(now + 1), None)
    );
    let log = store.events_after(&sid("s1"), 0, 100).await.unwrap();
    let names: Vec<&str> = log.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(names, ["output", "output", "output", "complete"]);
    assert_eq!(
        store.events_after(&sid("s1"), 2, 1).await.unwrap()[0].seq,
        3
    );
    let (last, owed) = store.events_in_flight(&sid("s1")).await.unwrap();
    assert_eq!(
        (last, owed.len()),
        (4, 0),
        "nothing is owed once the turn has ended"
    );
    let (admin, events) = store.turn_timeline(&tid("t1")).await.unwrap();
    assert_eq!(
        kinds(&admin),
        [
            "turn.queued",
            "turn.dispatched",
            "turn.progress",
            "turn.completed",
            "worker.output_rejected"
        ]
    );
    assert_eq!(events.len(), 4);
    let late = store.rejections(&wid("w1"), 10).await.unwrap();
    assert_eq!(late.len(), 1);

    let b = store
        .apply(Arc::new([
            exited("w1", 1, now + 5),
            exited("w1", 1, now + 6),
        ]))
        .await
        .unwrap();
    assert!(
        matches!(b.results[1], Applied::Unchanged),
        "a generation exits once"
    );
    assert_eq!(kinds(&b.admin), ["worker.exited"]);
    assert!(store.live_workers().await.unwrap().is_empty());
    let q = WorkerQuery {
        page: Page {
            limit: 10,
            cursor: None,
        },
        ..Default::default()
    };
    let w = &store.workers(&q).await.unwrap()[0];
    assert_eq!(
        (
            w.state,
            w.turns_served,
            w.intentional,
            w.stderr_tail.as_deref()
        ),
        (WorkerState::Exited, 1, Some(true), Some("bye"))
    );
    let o = store.overview(now).await.unwrap();
    assert_eq!(
        (
            o.turns_by_state.get(&TurnState::Completed),
            o.turns_by_state.get(&TurnState::Queued)
        ),
        (Some(&1), Some(&1))
    );
    assert!(o.workers_by_state.is_empty());

    let log = admin_log(&store).await;
    let snap = store.snapshot(now).await.unwrap();
    assert_eq!(
        store.admin_log_bounds().await.unwrap(),
        (1, log.len() as i64)
    );
    assert_eq!(
        (snap.seq, snap.workers.len(), snap.turns.len()),
        (log.len() as i64, 0, 1)
    );
    let s1 = store.session(&sid("s1")).await.unwrap().unwrap();
    assert_eq!(
        (s1.last_seq, s1.last_activity),
        (4, now + 1),
        "the last message accepted"
    );
}

/// Admin lists come newest first, a page at a time, each row once, in one order on every
/// backend: ties on time are broken by id, compared byte by byte.
async fn lists_page_newest_first_with_cursors(fx: Fixture) {
    let store = fx.store;
    let mut writes = vec![Change::CreateSession(session("s1"))];
    for (id, at) in [("t-a", 5), ("T-b", 5), ("t_c", 5), ("t-d", 3), ("t-e", 9)] {
        writes.push(Change::InsertTurn {
            turn: turn(id, "s1", at),
        });
    }
    for (w, generation, at) in [("w-a", 1, 5), ("w-a", 2, 5), ("W-b", 1, 5), ("w-c", 1, 1)] {
        writes.push(spawn(w, "s1", generation, at));
    }
    store.apply(writes.into()).await.unwrap();
    let mut turns = Vec::new();
    let mut q = TurnQuery {
        session: Some(sid("s1")),
        page: Page {
            limit: 2,
            cursor: None,
        },
        ..Default::default()
    };
    loop {
        let page = store.turns(&q, 0).await.unwrap();
        turns.extend(page.iter().map(|t| t.id.to_string()));
        match page.last() {
            Some(t) if page.len() == 2 => q.page.cursor = Some(t.cursor()),
            _ => break,
        }
    }
    assert_eq!(turns, ["t-e", "t_c", "t-a", "T-b", "t-d"]);
    let mut workers = Vec::new();
    let mut q = WorkerQuery {
        state: Some(WorkerFilter::Set(WorkerSet::Live)),
        page: Page {
            limit: 3,
            cursor: None,
        },
        ..Default::default()
    };
    loop {
        let page = store.workers(&q).await.unwrap();
        workers.extend(
            page.iter()
                .map(|w| format!("{}:{}", w.worker_id, w.generation)),
        );
        match page.last() {
            Some(w) if page.len() == 3 => q.page.cursor = Some(w.cursor()),
            _ => break,
        }
    }
    assert_eq!(workers, ["w-a:2", "w-a:1", "W-b:1", "w-c:1"]);
}

/// Two writers at once: every session event number and admin event number is given once, and
/// a reader tailing the admin log never finds a number below one it has already passed.
async fn numbers_follow_commit_order_under_concurrent_writers(fx: Fixture) {
    const BATCHES: u32 = 40;
    let store = fx.store;
    let sessions = ["s-a", "s-b", "s-shared"].map(|s| Change::CreateSession(session(s)));
    store.apply(Arc::new(sessions)).await.unwrap();
    let writer = |w: &'static str, own: &'static str| {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            for i in 0..BATCHES {
                let status = Change::Event {
                    // Half the batches share a session: its writers take turns.
                    session_id: sid(if i % 2 == 0 { own } else { "s-shared" }),
                    turn_id: None,
                    kind: EventKind::Status,
                    data: "{}".into(),
                    at: 0,
                    from: None,
                    progress: Progress::Append,
                };
                store
                    .apply(Arc::new([spawn(w, own, i + 1, 0), status]))
                    .await
                    .unwrap();
            }
        })
    };
    let (a, b) = (writer("w-a", "s-a"), writer("w-b", "s-b"));
    let mut cursor = 0;
    loop {
        let done = a.is_finished() && b.is_finished();
        for e in store.admin_events_after(cursor, 1000).await.unwrap() {
            assert_eq!(
                e.seq,
                cursor + 1,
                "admin event {} was visible before {}",
                e.seq,
                cursor + 1
            );
            cursor = e.seq;
        }
        if done {
            break;
        }
        tokio::task::yield_now().await;
    }
    a.await.unwrap();
    b.await.unwrap();
    assert_eq!(cursor, i64::from(2 * BATCHES));
    for (s, n) in [
        ("s-a", BATCHES / 2),
        ("s-b", BATCHES / 2),
        ("s-shared", BATCHES),
    ] {
        let seqs: Vec<i64> = store
            .events_after(&sid(s), 0, 1000)
            .await
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(seqs, (1..=i64::from(n)).collect::<Vec<_>>(), "{s}");
    }
}

/// A write the database refuses for good (a second session with one id) is not taken for a
/// passing outage, and a stored state name this version does not know fails the read rather
/// than decode as some default.
async fn refusals_are_for_good_and_unknown_names_do_not_decode(fx: Fixture) {
    let store = fx.store;
    let first = [
        Change::CreateSession(session("s1")),
        Change::InsertTurn {
            turn: turn("t1", "s1", 1),
        },
    ];
    store.apply(Arc::new(first)).await.unwrap();
    let e = store
        .apply(Arc::new([Change::CreateSession(session("s1"))]))
        .await
        .unwrap_err();
    assert!(!e.is_transient(), "{e}");
    fx.db.execute("UPDATE turns SET state = 'levitating'").await;
    let e = store.turn(&tid("t1")).await.unwrap_err();
    assert!(!e.is_transient() && e.to_string().contains("state"), "{e}");
    assert!(store.open_turns().await.is_err());
}

/// Free text with a NUL in it (a message, a worker's line) is stored, not refused.
async fn text_with_nul_is_stored(fx: Fixture) {
    let store = fx.store;
    let mut t = turn("t1", "s1", 1);
    t.content = "a\0b".into();
    let reject = Change::Reject(Rejection {
        worker_id: wid("w1"),
        generation: 1,
        turn_id: None,
        kind: crate::api::state::RejectionKind::Rejected,
        reason: "not JSON".into(),
        line: "x\0y".into(),
        at: 1,
    });
    let b = store
        .apply(Arc::new([
            Change::CreateSession(session("s1")),
            Change::InsertTurn { turn: t },
            reject,
        ]))
        .await
        .unwrap();
    assert_eq!(kinds(&b.admin), ["turn.queued", "worker.output_rejected"]);
    let content = store.turn(&tid("t1")).await.unwrap().unwrap().content;
    assert!(
        ["a\0b", "a\u{FFFD}b"].contains(&content.as_str()),
        "{content:?}"
    );
    assert_eq!(store.rejections(&wid("w1"), 1).await.unwrap().len(), 1);
}
