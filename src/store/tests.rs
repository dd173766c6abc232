//! Store conformance: every test in a `conformance!` block runs on both backends (see
//! [`backends`]); the query plans and upgrades of one backend are checked on it alone.

use super::*;
use crate::api::state::{TurnFilter, TurnSet};
use crate::api::{ErrorCode, TurnEnding};
use crate::clock::now_ms;

mod backends;
mod history;
mod lifecycle;
mod orders;
mod owners;
mod postgres;
mod replicas;
mod tickets;

use backends::{Fixture, conformance};

conformance!(
    stranded_turns_appear_and_then_resolve,
    checked_events_of_a_turn_ended_before_its_dispatch_are_late,
);

/// A live session with token `tok` that never expires (also used by the gateway's tests).
pub(crate) fn session(id: &str) -> SessionRecord {
    SessionRecord {
        id: SessionId(id.into()),
        agent_id: "echo".into(),
        thread: None,
        token: "tok".into(),
        created_at: 0,
        last_activity: 0,
        expires_at: i64::MAX,
        deleted_at: None,
        pruned_through: 0,
        last_seq: 0,
    }
}

fn sid(s: &str) -> SessionId {
    SessionId(s.into())
}

fn tid(t: &str) -> TurnId {
    TurnId(t.into())
}

fn wid(w: &str) -> WorkerId {
    WorkerId(w.into())
}

/// Generation `generation` of worker `worker`, serving `session`, started at `at`.
fn spawn(worker: &str, session: &str, generation: u32, at: i64) -> Change {
    Change::WorkerSpawned(WorkerSpawn {
        replica_id: crate::ids::ReplicaId("r-test".into()),
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

/// The kinds of logged admin events, in order.
fn kinds(admin: &[LoggedEvent]) -> Vec<&str> {
    admin.iter().map(|e| e.kind.as_str()).collect()
}

fn turn(id: &str, session: &str, created_at: i64) -> TurnRecord {
    TurnRecord {
        id: TurnId(id.into()),
        session_id: SessionId(session.into()),
        agent_id: "echo".into(),
        message_id: format!("m-{id}").into(),
        content: "hi".into(),
        state: crate::api::TurnState::Queued,
        worker_id: None,
        created_at,
        ended_at: None,
        code: None,
    }
}

async fn stranded(store: &Arc<dyn Store>, now: i64) -> Vec<String> {
    let q = TurnQuery {
        state: Some(TurnFilter::Set(TurnSet::Stranded)),
        page: Page {
            limit: 100,
            cursor: None,
        },
        ..Default::default()
    };
    store
        .turns(&q, now)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.turn_id.to_string())
        .collect()
}

fn dispatch(id: &str, worker: &str, at: i64, deadline_at: i64) -> Change {
    Change::Dispatch {
        turn_id: TurnId(id.into()),
        worker_id: WorkerId(worker.into()),
        generation: 1,
        at,
        deadline_at,
        stall_ms: 1_000,
    }
}

async fn stranded_turns_appear_and_then_resolve(fx: Fixture) {
    let store = fx.store;
    let now = now_ms();
    let spawn = |w: &str, s: &str| {
        Change::WorkerSpawned(WorkerSpawn {
            replica_id: crate::ids::ReplicaId("r-test".into()),
            worker_id: WorkerId(w.into()),
            generation: 1,
            pid: 4242,
            origin: None,
            agent_id: "echo".into(),
            session_id: SessionId(s.into()),
            at: now - 10_000,
        })
    };
    // One session per turn: a session dispatches one turn at a time, in its order.
    let mut writes = vec![Change::CreateSession(session("s1"))];
    for t in ["healthy", "stalled", "late", "gone", "waiting", "queued"] {
        let s = format!("s-{t}");
        writes.push(Change::CreateSession(session(&s)));
        writes.push(Change::InsertTurn {
            turn: turn(t, &s, now - 5_000),
        });
    }
    writes.extend([
        spawn("w-ok", "s1"),
        spawn("w-gone", "s1"),
        dispatch("healthy", "w-ok", now - 100, now + 60_000),
        dispatch("stalled", "w-ok", now - 5_000, now + 60_000),
        dispatch("late", "w-ok", now - 100, now - 1),
        dispatch("gone", "w-gone", now - 100, now + 60_000),
        Change::TurnWaiting {
            turn_id: TurnId("waiting".into()),
            until: now - 1,
        },
        Change::WorkerExited(WorkerExit {
            worker_id: WorkerId("w-gone".into()),
            generation: 1,
            exit_code: Some(1),
            signal: None,
            at: now - 50,
            intentional: false,
            reason: "crashed".into(),
            stderr_tail: String::new(),
        }),
    ]);
    store.apply(writes.into()).await.unwrap();
    let mut found = stranded(&store, now).await;
    found.sort();
    assert_eq!(
        found,
        ["gone", "late", "stalled", "waiting"],
        "queued-behind and healthy turns are not stranded"
    );
    assert_eq!(store.overview(now).await.unwrap().stranded, 4);

    let end = |id: &str| {
        let ending = TurnEnding::failed(ErrorCode::TurnStalled, "stalled");
        let events = ending.events(&TurnId(id.into()), &format!("m-{id}").into(), now);
        Change::EndTurn {
            session_id: SessionId("s1".into()),
            turn_id: TurnId(id.into()),
            ending,
            events,
            at: now,
            stranded: true,
        }
    };
    let batch = store
        .apply(Arc::new([
            end("stalled"),
            end("late"),
            end("gone"),
            end("waiting"),
            end("gone"),
        ]))
        .await
        .unwrap();
    let kinds: Vec<&str> = batch.admin.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "turn.stranded").count(), 4);
    assert_eq!(
        kinds.iter().filter(|k| **k == "turn.failed").count(),
        4,
        "the second end of `gone` changes nothing"
    );
    assert!(stranded(&store, now).await.is_empty());
}

#[tokio::test]
async fn admin_lists_answer_from_indexes() {
    let fx = backends::sqlite().await;
    let backends::Db::Sqlite(pool) = fx.db else {
        unreachable!("an SQLite fixture")
    };
    let plans = [
        "SELECT * FROM turns t WHERE t.ended_at IS NULL ORDER BY t.created_at DESC LIMIT 100",
        "SELECT * FROM turns t WHERE t.state = 'failed' ORDER BY t.created_at DESC, t.id DESC LIMIT 100",
        "SELECT * FROM turns t WHERE (t.created_at, t.id) < (5, 'x') ORDER BY t.created_at DESC, t.id DESC LIMIT 100",
        "SELECT * FROM turns t WHERE t.agent_id = 'a' ORDER BY t.created_at DESC LIMIT 100",
        "SELECT * FROM turns t WHERE t.session_id = 's' ORDER BY t.created_at DESC LIMIT 100",
        "SELECT * FROM turns t WHERE t.session_id IN (SELECT session_id FROM workers WHERE worker_id = 'w') \
         AND t.worker_id = 'w' ORDER BY t.created_at DESC LIMIT 100",
        "SELECT * FROM workers WHERE exited_at IS NULL ORDER BY started_at DESC LIMIT 100",
        "SELECT * FROM admin_events WHERE seq > 5 ORDER BY seq LIMIT 1000",
        "SELECT * FROM admin_events WHERE turn_id = 't' ORDER BY seq",
        "SELECT code, COUNT(*) FROM turns WHERE code IS NOT NULL GROUP BY code",
        "SELECT e.seq FROM turns t JOIN events e ON e.turn_id = t.id \
         WHERE t.session_id = 's' AND t.ended_at IS NULL AND e.seq <= 9 ORDER BY e.seq",
    ];
    for q in plans {
        let rows: Vec<(i64, i64, i64, String)> = sqlx::query_as(&format!("EXPLAIN QUERY PLAN {q}"))
            .fetch_all(&pool)
            .await
            .unwrap();
        let plan: Vec<&str> = rows.iter().map(|r| r.3.as_str()).collect();
        assert!(
            plan.iter()
                .all(|p| !p.starts_with("SCAN") || p.contains("USING")),
            "full scan for `{q}`: {plan:?}"
        );
        // A session's or a worker's turns are searched, not found by walking every turn.
        if q.contains("session_id") {
            assert!(
                plan.iter()
                    .any(|p| p.starts_with("SEARCH t USING INDEX") && p.contains("session_id=")),
                "`{q}` does not search by session: {plan:?}"
            );
        }
    }
}

/// The actor gives a worker its turn before the dispatch commits; if an operator ended the turn
/// first, the dispatch changes nothing and the deltas sent meanwhile (checked) are recorded as
/// late, never appended after the turn's terminal event.
async fn checked_events_of_a_turn_ended_before_its_dispatch_are_late(fx: Fixture) {
    let store = fx.store;
    let now = now_ms();
    let ending = TurnEnding::failed(ErrorCode::CancelledByOperator, "cancelled");
    let events = ending.events(&TurnId("t1".into()), &MessageId("m-t1".into()), now);
    let delta = |progress| Change::Event {
        session_id: SessionId("s1".into()),
        turn_id: Some(TurnId("t1".into())),
        kind: crate::api::EventKind::Output,
        data: serde_json::json!({ "type": "delta", "content": "x" }).to_string(),
        at: now,
        from: Some((WorkerId("w1".into()), 1)),
        progress,
    };
    let batch = store
        .apply(Arc::new([
            Change::CreateSession(session("s1")),
            Change::InsertTurn {
                turn: turn("t1", "s1", now),
            },
            Change::EndTurn {
                session_id: SessionId("s1".into()),
                turn_id: TurnId("t1".into()),
                ending,
                events,
                at: now,
                stranded: false,
            },
            dispatch("t1", "w1", now, now + 60_000),
            delta(Progress::Announce),
            delta(Progress::Check),
        ]))
        .await
        .unwrap();
    assert!(matches!(batch.results[3], Applied::Unchanged));
    for r in &batch.results[4..] {
        assert!(matches!(r, Applied::Events(e) if e.is_empty()), "{r:?}");
    }
    let log = store
        .events_after(&SessionId("s1".into()), 0, 100)
        .await
        .unwrap();
    let kinds: Vec<&str> = log.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds.last(),
        Some(&"complete"),
        "nothing after the terminal events"
    );
    assert!(!kinds.contains(&"output"));
    let late = store.rejections(&WorkerId("w1".into()), 10).await.unwrap();
    assert_eq!(late.len(), 2, "both deltas are recorded as late");
}

/// A database written by the first release (migrations 0001–0002), with a finished turn and
/// its events, opens with every later migration applied and its history intact.
#[tokio::test]
async fn a_database_from_the_first_release_upgrades_with_its_history() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let options: sqlx::sqlite::SqliteConnectOptions = url.parse().unwrap();
    let pool = sqlx::SqlitePool::connect_with(options.create_if_missing(true))
        .await
        .unwrap();
    let mut first = sqlx::migrate!("migrations/sqlite");
    first.migrations = first
        .migrations
        .iter()
        .filter(|m| m.version <= 2)
        .cloned()
        .collect::<Vec<_>>()
        .into();
    first.run(&pool).await.unwrap();
    for q in [
        "INSERT INTO sessions (id, agent_id, token, created_at, last_activity, expires_at, last_seq) \
         VALUES ('s1', 'echo', 'tok', 1, 1, 9999999999999, 2)",
        "INSERT INTO turns (id, session_id, agent_id, message_id, content, state, worker_id, \
         created_at, ended_at, outcome, final_text) \
         VALUES ('t1', 's1', 'echo', 'm1', 'hello', 'completed', 'w1', 1, 2, 'completed', 'hi')",
        "INSERT INTO events (session_id, seq, turn_id, kind, data, created_at) VALUES \
         ('s1', 1, 't1', 'output', '{}', 1), ('s1', 2, 't1', 'complete', '{}', 2)",
        "INSERT INTO admin_events (kind, turn_id, worker_id, data, created_at) \
         VALUES ('turn.completed', 't1', 'w1', '{}', 2)",
    ] {
        sqlx::query(q).execute(&pool).await.unwrap();
    }
    pool.close().await;

    let store = open(&url).await.unwrap();
    let turn = store.turn(&TurnId("t1".into())).await.unwrap().unwrap();
    assert_eq!(
        (turn.content.as_str(), turn.state.as_str()),
        ("hello", "completed")
    );
    let log = store
        .events_after(&SessionId("s1".into()), 0, 10)
        .await
        .unwrap();
    assert_eq!(log.len(), 2);
    let session = store.session(&SessionId("s1".into())).await.unwrap();
    assert_eq!(session.map(|s| s.token), Some("tok".into()));
}

#[tokio::test]
async fn a_missing_data_directory_is_made_and_an_impossible_one_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("var/lib/turnwatch/gw.db");
    open(&format!("sqlite://{}", nested.display()))
        .await
        .unwrap();
    assert!(nested.exists());
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, "not a directory").unwrap();
    let bad = blocker.join("gw.db");
    let Err(e) = open(&format!("sqlite://{}", bad.display())).await else {
        panic!("a database under a file cannot open");
    };
    assert!(e.to_string().contains(&bad.display().to_string()), "{e}");
}
