//! Process truth (protocol.md §4): real worker processes through a real gateway read as what
//! they are doing (a `SIGSTOP`ped one stopped, a busy-looping one running hot, a heartbeating
//! one asleep), and the admin stream carries `worker.sampled` without ids while nothing of it
//! reaches the admin log. Sampling reads `/proc`; elsewhere than Linux there is nothing to see.
#![cfg(target_os = "linux")]

use futures::StreamExt;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::time::Duration;
use turnwatch::api::WorkerState;
use turnwatch::api::admin::{ListQuery, ProcessSample, ProcessState, WorkerInfo};
use turnwatch::api::lifecycle::AdminStreamEvent;
use turnwatch::config::AgentConfig;

use crate::harness::{GUARD, Session, TestGateway, config, worker};
use crate::workers::Reaper;

/// A reference worker whose turn outlives the test (no stall or deadline fires meanwhile).
fn patient(mode: &str) -> AgentConfig {
    let mut a = worker(&["--mode", mode]);
    a.stall_timeout = Duration::from_secs(120);
    a.deadline = Duration::from_secs(180);
    a
}

/// `SIGCONT`s the process when dropped: a failing test leaves nothing stopped.
struct Continue(u32);
impl Drop for Continue {
    fn drop(&mut self) {
        let _ = kill(Pid::from_raw(self.0 as i32), Signal::SIGCONT);
    }
}

/// Starts a turn on a new session of `agent` and waits until its worker holds it.
async fn busy(gw: &TestGateway, agent: &str) -> (Session, WorkerInfo) {
    let s = gw.session(agent).await;
    gw.post(&s, "keep at it").await;
    gw.wait_workers(&s, |r| r.iter().any(|w| w.state == WorkerState::Busy))
        .await;
    let q = ListQuery {
        session: Some(s.id.clone()),
        ..ListQuery::default()
    };
    let w = gw.client.workers(&q).await.unwrap().items.remove(0);
    (s, w)
}

/// Reads the worker's detail until its process sample satisfies `f` (guarded); returns it.
async fn detail_until(
    gw: &TestGateway,
    w: &WorkerInfo,
    what: &str,
    f: impl Fn(&ProcessSample) -> bool,
) -> ProcessSample {
    let deadline = tokio::time::Instant::now() + GUARD;
    loop {
        let d = gw.client.worker(w.worker_id.as_str()).await.unwrap();
        assert_eq!(d.worker.generation, w.generation);
        if let Some(p) = d.worker.process.clone() {
            assert_eq!(d.generations[0].process.as_ref(), Some(&p), "{d:?}");
            if f(&p) {
                return p;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} never read as {what}: {:?}",
            w.worker_id,
            d.worker.process
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn stopped_spinning_and_heartbeating_workers_read_as_such() {
    let gw = TestGateway::start(config(vec![
        ("hang", patient("hang")),
        ("spin", patient("spin")),
        ("beat", patient("heartbeat-only")),
    ]))
    .await;
    let (_, hang) = busy(&gw, "hang").await;
    let (_, spin) = busy(&gw, "spin").await;
    let (_, beat) = busy(&gw, "beat").await;
    let _reaper = Reaper(vec![hang.pid, spin.pid, beat.pid]);

    // The list carries a sample for each live worker of this replica.
    let listed = gw
        .client
        .workers(&ListQuery::of("live", 100))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 3);
    // Light samples there (a round over every worker affords only `stat`); a worker's own
    // detail is sampled wholly.
    for w in &listed.items {
        let p = w.process.as_ref().expect("a live worker is sampled");
        assert!(p.threads >= 1 && p.rss_bytes > 0, "{p:?}");
        assert!(
            p.fds.is_none() && p.children.is_none() && p.wchan.is_none(),
            "{p:?}"
        );
        let detail = gw.client.worker(w.worker_id.as_str()).await.unwrap();
        let whole = detail.worker.process.expect("the detail is sampled");
        assert!(
            whole.fds.is_some_and(|n| n >= 3),
            "stdio at least: {whole:?}"
        );
        assert_eq!(whole.children, Some(0), "{whole:?}");
    }

    let stopped = {
        let _cont = Continue(hang.pid);
        kill(Pid::from_raw(hang.pid as i32), Signal::SIGSTOP).unwrap();
        detail_until(&gw, &hang, "stopped", |p| p.state == ProcessState::Stopped).await
    };
    assert!(stopped.cpu_percent < 30.0, "{stopped:?}");
    detail_until(&gw, &hang, "continued", |p| {
        p.state != ProcessState::Stopped
    })
    .await;

    let hot = detail_until(&gw, &spin, "spinning", |p| {
        p.state == ProcessState::Running && p.cpu_percent > 30.0
    })
    .await;
    assert!(hot.cpu_percent > 30.0, "{hot:?}");

    let asleep = detail_until(&gw, &beat, "asleep", |p| {
        p.state == ProcessState::Sleeping && p.cpu_percent < 10.0
    })
    .await;
    assert!(asleep.threads >= 2, "the heartbeat thread: {asleep:?}");
    gw.stop().await;
}

/// One SSE frame as the wire carries it.
#[derive(Debug, Default)]
struct Frame {
    id: Option<String>,
    event: String,
    data: String,
}

fn frames(block: &str) -> Frame {
    let mut f = Frame::default();
    for line in block.lines() {
        if let Some(v) = line.strip_prefix("id: ") {
            f.id = Some(v.to_owned());
        } else if let Some(v) = line.strip_prefix("event: ") {
            v.clone_into(&mut f.event);
        } else if let Some(v) = line.strip_prefix("data: ") {
            f.data.push_str(v);
        }
    }
    f
}

#[tokio::test]
async fn worker_sampled_rides_the_admin_stream_without_ids_and_is_never_logged() {
    let gw = TestGateway::start(config(vec![("beat", patient("heartbeat-only"))])).await;
    let url = format!("{}/api/v1/admin/events", gw.url);
    let resp = gw.http.get(&url).send().await.unwrap();
    assert!(resp.status().is_success());
    let mut body = resp.bytes_stream();
    let (_, w) = busy(&gw, "beat").await;
    let _reaper = Reaper(vec![w.pid]);

    let mut text = String::new();
    let mut sampled = Vec::new();
    let mut logged = 0;
    let deadline = tokio::time::Instant::now() + GUARD;
    while sampled.len() < 3 {
        let chunk = tokio::time::timeout_at(deadline, body.next())
            .await
            .expect("three samples within the guard")
            .expect("the stream stays open")
            .unwrap();
        text.push_str(std::str::from_utf8(&chunk).unwrap());
        while let Some(end) = text.find("\n\n") {
            let block: String = text.drain(..end + 2).collect();
            let f = frames(&block);
            if f.event == AdminStreamEvent::WORKER_SAMPLED {
                assert_eq!(f.id, None, "a sample moves no cursor: {block:?}");
                sampled.push(f);
            } else if f.event.starts_with("worker.") || f.event.starts_with("turn.") {
                assert!(f.id.is_some(), "a logged event has its id: {block:?}");
                logged += 1;
            }
        }
    }
    assert!(logged > 0, "the log's events came too");
    for f in &sampled {
        let data = serde_json::from_str(&f.data).unwrap();
        let Ok(AdminStreamEvent::Sampled(s)) = AdminStreamEvent::parse(&f.event, data) else {
            panic!("the vocabulary reads it: {f:?}");
        };
        assert_eq!((&s.worker_id, s.generation), (&w.worker_id, w.generation));
        assert!(s.process.rss_bytes > 0, "{s:?}");
    }
    // One round a second: three samples of one worker are three rounds apart.
    let times: Vec<_> = sampled
        .iter()
        .map(|f| {
            serde_json::from_str::<serde_json::Value>(&f.data).unwrap()["process"]["sampledAt"]
                .clone()
        })
        .collect();
    assert!(times.windows(2).all(|t| t[0] != t[1]), "{times:?}");

    drop(body);
    let db = gw.db().await;
    let sql = "SELECT COUNT(*) FROM admin_events WHERE kind = 'worker.sampled' \
               OR data LIKE '%cpuPercent%'";
    assert_eq!(db.int(sql, &[]).await, 0, "samples are not history");
    gw.stop().await;
}
