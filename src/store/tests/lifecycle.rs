//! A turn's whole life through the trait, on each backend: what a gateway writes, batch by
//! batch, and what every read then answers.

use super::*;
use crate::api::{EventKind, WorkerState};

conformance!(a_turn_lives_and_ends_once);

fn delta(text: &str, at: i64, progress: Progress) -> Change {
    Change::Event {
        session_id: sid("s1"),
        turn_id: Some(tid("t1")),
        kind: EventKind::Output,
        data: serde_json::json!({ "type": "delta", "content": text }).to_string(),
        at,
        from: Some((wid("w1"), 1)),
        progress,
    }
}

fn complete(at: i64) -> Change {
    let ending = TurnEnding::completed(Some("hello".into()));
    Change::EndTurn {
        session_id: sid("s1"),
        turn_id: tid("t1"),
        events: ending.events(&tid("t1"), &MessageId("m-t1".into()), at),
        ending,
        at,
        stranded: false,
    }
}

fn exited(at: i64) -> Change {
    Change::WorkerExited(WorkerExit {
        worker_id: wid("w1"),
        generation: 1,
        exit_code: Some(0),
        signal: None,
        at,
        intentional: true,
        reason: "idle".into(),
        stderr_tail: "bye".into(),
    })
}

fn worker_state(state: WorkerState, turn: Option<&str>, at: i64) -> Change {
    Change::WorkerState {
        worker_id: wid("w1"),
        generation: 1,
        state,
        turn_id: turn.map(tid),
        at,
    }
}

/// The numbers of the events a batch's writes appended.
fn seqs(results: &[Applied]) -> Vec<i64> {
    results
        .iter()
        .flat_map(|r| match r {
            Applied::Events(e) => e.iter().map(|e| e.seq).collect::<Vec<_>>(),
            other => panic!("{other:?}"),
        })
        .collect()
}

/// The gateway's writes for one turn, from the session's creation to its worker's exit; the
/// second end of the turn changes nothing and logs nothing.
async fn a_turn_lives_and_ends_once(fx: Fixture) {
    let store = fx.store;
    let now = now_ms();
    accept(&store, now).await;
    stream(&store, now).await;
    end(&store, now).await;
    exit(&store, now).await;
}

/// A session with a thread, its messages (one sent twice), a worker spawned for it.
async fn accept(store: &Arc<dyn Store>, now: i64) {
    let mut s1 = session("s1");
    s1.thread = Some("thread-1".into());
    let b = store
        .apply(Arc::new([
            Change::CreateSession(s1),
            Change::InsertTurn {
                turn: turn("t1", "s1", now),
            },
            Change::InsertTurn {
                turn: turn("t2", "s1", now + 1),
            },
            spawn("w1", "s1", 1, now),
        ]))
        .await
        .unwrap();
    assert!(
        matches!(&b.results[1], Applied::Turn { turn_id, created: true, seq: 1 } if turn_id.as_str() == "t1")
    );
    assert_eq!(
        kinds(&b.admin),
        ["turn.queued", "turn.queued", "worker.spawned"]
    );
    let mut again = turn("t1-again", "s1", now + 2);
    again.message_id = MessageId("m-t1".into());
    let b = store
        .apply(Arc::new([Change::InsertTurn { turn: again }]))
        .await
        .unwrap();
    assert!(
        matches!(&b.results[0], Applied::Turn { turn_id, created: false, seq: 1 } if turn_id.as_str() == "t1"),
        "a message id already accepted gives its turn back"
    );
    assert!(b.admin.is_empty());
    let found = store.session_by_thread("echo", "thread-1").await.unwrap();
    assert_eq!(found.map(|s| (s.id, s.last_seq)), Some((sid("s1"), 0)));
    assert_eq!(store.next_generation(&wid("w1")).await.unwrap(), 2);
    let live = store.live_workers().await.unwrap();
    let origin = live[0].origin.as_ref().map(|o| o.start_ticks);
    assert_eq!((live.len(), live[0].pid, origin), (1, Some(4242), Some(77)));
}

/// The worker gets the turn and streams: announced, appended and checked deltas.
async fn stream(store: &Arc<dyn Store>, now: i64) {
    let b = store
        .apply(Arc::new([
            worker_state(WorkerState::Ready, None, now),
            dispatch("t1", "w1", now, now + 60_000),
            worker_state(WorkerState::Busy, Some("t1"), now),
            delta("he", now, Progress::Announce),
            delta("l", now, Progress::Append),
            delta("lo", now, Progress::Check),
            Change::WorkerHeartbeat {
                worker_id: wid("w1"),
                generation: 1,
                at: now,
            },
        ]))
        .await
        .unwrap();
    let expected = ["worker.ready", "turn.dispatched", "turn.progress"];
    assert_eq!(kinds(&b.admin), expected);
    assert_eq!(seqs(&b.results[3..6]), [1, 2, 3]);
    let (last, owed) = store.events_in_flight(&sid("s1")).await.unwrap();
    assert_eq!((last, owed.len()), (3, 3), "an open turn's events are owed");
    let open = store.open_turns().await.unwrap();
    let open: Vec<&str> = open.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(open, ["t1", "t2"]);
    let row = store.turn_row(&tid("t1"), now).await.unwrap().unwrap();
    let got = (
        row.state,
        row.worker_generation,
        row.stranded,
        row.first_output_at,
    );
    assert_eq!(got, (TurnState::Streaming, Some(1), false, Some(now)));
}

/// The turn ends twice (the second changes nothing), then a late delta is recorded, not
/// appended.
async fn end(store: &Arc<dyn Store>, now: i64) {
    let b = store
        .apply(Arc::new([complete(now + 1), complete(now + 2)]))
        .await
        .unwrap();
    assert_eq!(seqs(&b.results), [4], "the second end is a no-op");
    assert_eq!(kinds(&b.admin), ["turn.completed"]);
    let b = store
        .apply(Arc::new([
            complete(now + 3),
            delta("!", now, Progress::Check),
        ]))
        .await
        .unwrap();
    assert!(seqs(&b.results).is_empty());
    assert_eq!(kinds(&b.admin), ["worker.output_rejected"]);
    let t1 = store.turn(&tid("t1")).await.unwrap().unwrap();
    let got = (t1.state, t1.ended_at, t1.code);
    assert_eq!(got, (TurnState::Completed, Some(now + 1), None));
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
    let timeline = [
        "turn.queued",
        "turn.dispatched",
        "turn.progress",
        "turn.completed",
        "worker.output_rejected",
    ];
    assert_eq!((kinds(&admin), events.len()), (timeline.to_vec(), 4));
    assert_eq!(store.rejections(&wid("w1"), 10).await.unwrap().len(), 1);
}

/// The worker exits once; the lists, the overview and the snapshot agree with the log.
async fn exit(store: &Arc<dyn Store>, now: i64) {
    let b = store
        .apply(Arc::new([exited(now + 5), exited(now + 6)]))
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
    let got = (
        w.state,
        w.turns_served,
        w.intentional,
        w.stderr_tail.as_deref(),
    );
    assert_eq!(got, (WorkerState::Exited, 1, Some(true), Some("bye")));
    let o = store.overview(now).await.unwrap();
    let by_state = |s| o.turns_by_state.get(&s).copied();
    let got = (by_state(TurnState::Completed), by_state(TurnState::Queued));
    assert_eq!(got, (Some(1), Some(1)));
    assert!(o.workers_by_state.is_empty());
    let log = store.admin_events_after(0, 10_000).await.unwrap();
    let numbers: Vec<i64> = log.iter().map(|e| e.seq).collect();
    let last = log.len() as i64;
    assert_eq!(numbers, (1..=last).collect::<Vec<_>>(), "no gap");
    assert_eq!(store.admin_log_bounds().await.unwrap(), (1, last));
    let snap = store.snapshot(now).await.unwrap();
    assert_eq!(
        (snap.seq, snap.workers.len(), snap.turns.len()),
        (last, 0, 1)
    );
    let s1 = store.session(&sid("s1")).await.unwrap().unwrap();
    assert_eq!(
        (s1.last_seq, s1.last_activity),
        (4, now + 1),
        "its last message"
    );
}
