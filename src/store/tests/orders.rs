//! The orders and refusals both backends share: list pages, numbers under concurrent writers,
//! writes refused for good, names this version does not know, text `PostgreSQL` cannot hold.

use super::*;
use crate::api::EventKind;
use crate::api::state::{WorkerFilter, WorkerSet};

conformance!(
    lists_page_newest_first_with_cursors,
    numbers_follow_commit_order_under_concurrent_writers,
    refusals_are_for_good_and_unknown_names_do_not_decode,
    text_with_nul_is_stored,
);

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
        turns.extend(page.iter().map(|t| t.turn_id.to_string()));
        match page.last() {
            Some(t) if page.len() == 2 => q.page.cursor = Some(super::super::query::turn_cursor(t)),
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
