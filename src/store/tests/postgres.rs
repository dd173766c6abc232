//! `PostgreSQL` alone: how its errors are classified, and the plans behind the admin lists.

use sqlx::{Connection, PgConnection, Row};

use super::backends::{Backend, Db, connect, database_url};
use super::*;

/// Errors the server really raises, by SQLSTATE: the ones that pass are retried, the others
/// are refused for good; a refused connection passes too.
#[tokio::test]
async fn errors_are_transient_by_sqlstate() {
    let Some(url) = database_url() else { return };
    let mut conn = connect(&url).await;
    let codes = [
        ("08006", true),  // connection failure
        ("57P01", true),  // admin shutdown
        ("57P03", true),  // cannot connect now
        ("53300", true),  // too many connections
        ("53100", true),  // disk full
        ("40001", true),  // serialization failure
        ("40P01", true),  // deadlock
        ("23505", false), // unique violation
        ("22P02", false), // invalid text representation
        ("42P01", false), // undefined table
    ];
    for (code, transient) in codes {
        let sql = format!("DO $$ BEGIN RAISE EXCEPTION 'test' USING ERRCODE = '{code}'; END $$");
        let e = sqlx::raw_sql(&sql).execute(&mut conn).await.unwrap_err();
        assert_eq!(StoreError::from(e).is_transient(), transient, "{code}");
    }
    let refused = PgConnection::connect("postgres://postgres@127.0.0.1:1/test")
        .await
        .unwrap_err();
    assert!(StoreError::from(refused).is_transient());
}

/// Rows enough that the planner prefers an index wherever one serves.
const SEED: &str = "
    INSERT INTO sessions (id, agent_id, token, created_at, last_activity, expires_at)
    SELECT 's' || i, 'a' || (i % 10), 'tok', i, i, 9000000000000000
    FROM generate_series(1, 2000) i;
    INSERT INTO turns (id, session_id, agent_id, message_id, content, state, worker_id,
                       worker_generation, created_at, ended_at, code)
    SELECT 't' || i, 's' || (i % 2000 + 1), 'a' || (i % 10), 'm' || i, 'hi',
           CASE WHEN i % 500 = 0 THEN 'queued' WHEN i % 20 = 0 THEN 'failed' ELSE 'completed' END,
           'w' || (i % 2000 + 1), 1, i,
           CASE WHEN i % 500 = 0 THEN NULL ELSE i + 1 END,
           CASE WHEN i % 20 = 0 AND i % 500 <> 0 THEN 'turn_stalled' END
    FROM generate_series(1, 50000) i;
    INSERT INTO workers (worker_id, generation, pid, agent_id, session_id, state, started_at,
                         exited_at)
    SELECT 'w' || i, 1, i, 'a' || (i % 10), 's' || i,
           CASE WHEN i % 100 = 0 THEN 'idle' ELSE 'exited' END, i,
           CASE WHEN i % 100 = 0 THEN NULL ELSE i + 1 END
    FROM generate_series(1, 2000) i;
    INSERT INTO events (session_id, seq, turn_id, kind, data, created_at)
    SELECT 's' || (i % 2000 + 1), i, 't' || i, 'output', '{}', i
    FROM generate_series(1, 50000) i;
    INSERT INTO admin_events (seq, kind, turn_id, data, created_at)
    SELECT i, 'turn.queued', 't' || i, '{}', i FROM generate_series(1, 50000) i;
    ANALYZE;
";

/// The admin lists' queries, as `reads` builds them.
const LISTS: [&str; 11] = [
    "SELECT * FROM turns t WHERE t.ended_at IS NULL ORDER BY t.created_at DESC LIMIT 100",
    "SELECT * FROM turns t WHERE t.state = 'failed' ORDER BY t.created_at DESC, t.id DESC LIMIT 100",
    "SELECT * FROM turns t WHERE (t.created_at, t.id) < (5000, 'x') ORDER BY t.created_at DESC, t.id DESC LIMIT 100",
    "SELECT * FROM turns t WHERE t.agent_id = 'a1' ORDER BY t.created_at DESC LIMIT 100",
    "SELECT * FROM turns t WHERE t.session_id = 's7' ORDER BY t.created_at DESC LIMIT 100",
    "SELECT * FROM turns t WHERE t.session_id IN (SELECT session_id FROM workers WHERE worker_id = 'w7') \
     AND t.worker_id = 'w7' ORDER BY t.created_at DESC LIMIT 100",
    "SELECT * FROM workers WHERE exited_at IS NULL ORDER BY started_at DESC LIMIT 100",
    "SELECT * FROM admin_events WHERE seq > 5 ORDER BY seq LIMIT 1000",
    "SELECT * FROM admin_events WHERE turn_id = 't7' ORDER BY seq",
    "SELECT code, COUNT(*) FROM turns WHERE code IS NOT NULL GROUP BY code",
    "SELECT e.seq FROM turns t JOIN events e ON e.turn_id = t.id \
     WHERE t.session_id = 's7' AND t.ended_at IS NULL AND e.seq <= 9 ORDER BY e.seq",
];

/// The tables a plan reads whole.
fn seq_scans(node: &serde_json::Value, out: &mut Vec<String>) {
    if node["Node Type"] == "Seq Scan" {
        out.push(node["Relation Name"].as_str().unwrap_or("?").to_owned());
    }
    for child in node["Plans"].as_array().into_iter().flatten() {
        seq_scans(child, out);
    }
}

/// With 50,000 turns, no admin list reads a whole table: each answers from an index.
#[tokio::test]
async fn admin_lists_answer_from_indexes() {
    Backend::Postgres
        .run(|fx| async move {
            let Db::Postgres(pool) = fx.db else {
                unreachable!("a PostgreSQL fixture")
            };
            sqlx::raw_sql(SEED).execute(&pool).await.unwrap();
            for q in LISTS {
                let row = sqlx::query(&format!("EXPLAIN (FORMAT JSON) {q}"))
                    .fetch_one(&pool)
                    .await
                    .unwrap();
                // `json`, whose wire form is its text (sqlx's `json` feature is not on).
                let plan: serde_json::Value =
                    serde_json::from_str(&row.try_get_unchecked::<String, _>(0).unwrap()).unwrap();
                let mut scans = Vec::new();
                seq_scans(&plan[0]["Plan"], &mut scans);
                assert!(scans.is_empty(), "`{q}` reads {scans:?} whole: {plan:#}");
            }
        })
        .await;
}

/// A batch whose COMMIT answer was lost is asked about before it is tried again: one that
/// committed is not applied twice (a delta would appear twice in a reply), one that did not is
/// applied.
#[tokio::test]
async fn a_lost_commit_answer_never_applies_a_batch_twice() {
    Backend::Postgres.run(lost_commit_answer).await;
}

async fn lost_commit_answer(fx: super::backends::Fixture) {
    let store = fx.store;
    let pg = store.postgres().expect("a PostgreSQL store");
    let setup: Arc<[Change]> = Arc::from(vec![Change::CreateSession(session("s1"))]);
    store.apply(setup).await.unwrap();
    let delta = |n: i64| Change::Event {
        session_id: SessionId("s1".into()),
        turn_id: None,
        kind: crate::api::EventKind::Output,
        data: format!("{{\"n\":{n}}}"),
        at: n,
        from: None,
        progress: Progress::Append,
    };
    let count = || async {
        store
            .events_after(&SessionId("s1".into()), 0, 100)
            .await
            .unwrap()
            .len()
    };
    // Committed, answer lost: the retry answers what it did, and appends nothing more.
    let batch: Arc<[Change]> = Arc::from(vec![delta(1)]);
    let e = pg.apply_losing_answer(&batch, true).await;
    assert!(e.is_transient(), "the journal tries it again: {e}");
    let again = store.apply(Arc::clone(&batch)).await.unwrap();
    assert!(
        matches!(&again.results[0], Applied::Events(v) if v[0].seq == 1),
        "{again:?}"
    );
    assert_eq!(count().await, 1);
    // Not committed: the retry applies it.
    let batch: Arc<[Change]> = Arc::from(vec![delta(2)]);
    let _ = pg.apply_losing_answer(&batch, false).await;
    store.apply(Arc::clone(&batch)).await.unwrap();
    assert_eq!(count().await, 2);
    // Another batch is never mistaken for the unsettled one.
    let batch: Arc<[Change]> = Arc::from(vec![delta(3)]);
    let _ = pg.apply_losing_answer(&batch, true).await;
    store.apply(Arc::from(vec![delta(4)])).await.unwrap();
    assert_eq!(count().await, 4);
}
