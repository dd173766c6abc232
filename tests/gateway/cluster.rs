//! What operators see of the replicas (issue 13, "operators see the cluster"): a turn names the
//! replica of the worker it was dispatched to, and `/metrics` labels this process's gauges with
//! its replica and counts the replicas by state, in text the Prometheus format accepts.

use serde_json::{Value, json};
use std::collections::HashSet;
use turnwatch::api::WorkerState;
use turnwatch::api::admin::{Page, TurnDetail, TurnInfo};

use crate::harness::{Backend, TestGateway, assert_failed, config, on_both, worker};

on_both!(
    turns_name_the_replica_of_their_worker,
    metrics_label_what_this_replica_holds,
);

fn is_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Every line of a `/metrics` answer is one the Prometheus text format allows: `# HELP` or
/// `# TYPE`, or a sample `name{label="value",...} number` of a family declared before it, each
/// family declared once and each series given once. When `promtool` is installed (Debian's
/// `prometheus` package), `promtool check metrics` must accept the text too.
pub fn assert_prometheus_text(text: &str) {
    let mut families = HashSet::new();
    let mut series = HashSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect(line);
            assert!(["gauge", "counter", "histogram"].contains(&kind), "{line}");
            assert!(families.insert(name.to_owned()), "declared twice: {line}");
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        let (key, value) = line.rsplit_once(' ').expect(line);
        assert!(value.parse::<f64>().is_ok(), "not a number: {line}");
        let name = key.split('{').next().unwrap();
        assert!(is_name(name), "{line}");
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|f| families.contains(*f)))
            .unwrap_or(name);
        assert!(families.contains(family), "undeclared: {line}");
        if let Some(labels) = key.strip_prefix(name).filter(|l| !l.is_empty()) {
            let inner = labels.strip_prefix('{').and_then(|l| l.strip_suffix('}'));
            let inner = inner.unwrap_or_else(|| panic!("bad labels: {line}"));
            for pair in inner.split(',') {
                let (k, v) = pair.split_once('=').expect(line);
                assert!(is_name(k), "{line}");
                assert!(
                    v.len() >= 2 && v.starts_with('"') && v.ends_with('"'),
                    "{line}"
                );
            }
        }
        assert!(series.insert(key.to_owned()), "series twice: {line}");
    }
    promtool_accepts(text);
}

/// `promtool check metrics` on the text, when promtool is installed.
fn promtool_accepts(text: &str) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let Ok(mut child) = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    else {
        return; // not installed: the checks above stand alone
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn metrics(gw: &TestGateway) -> String {
    let text = gw
        .http
        .get(format!("{}/metrics", gw.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_prometheus_text(&text);
    text
}

/// A turn names the replica of the worker it was dispatched to, ended or not; a queued one
/// names none.
async fn turns_name_the_replica_of_their_worker(b: Backend) {
    let gw = TestGateway::start_with(b, config(vec![("hang", worker(&["--mode", "hang"]))])).await;
    let s = gw.session("hang").await;
    let mut r = gw.open(&s, None).await;
    let first = gw.post(&s, "first").await;
    let second = gw.post(&s, "queued behind the first").await;
    let rows = gw
        .wait_workers(&s, |r| r.iter().any(|w| w.state == WorkerState::Busy))
        .await;
    let replica = gw.client.replicas().await.unwrap().items[0]
        .replica_id
        .clone();
    let open: Value = gw
        .client
        .get_json("/api/v1/admin/turns?state=open")
        .await
        .unwrap();
    let by_id = |id: &str| {
        open["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["turnId"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(by_id(&first)["replicaId"], replica.as_str());
    assert_eq!(by_id(&second)["state"], "queued");
    assert!(by_id(&second)["replicaId"].is_null(), "{open}");
    let detail: TurnDetail = gw
        .client
        .get_json(&format!("/api/v1/admin/turns/{first}"))
        .await
        .unwrap();
    assert_eq!(detail.turn.replica_id.as_ref(), Some(&replica));
    // Ended, it still names where it ran; the next one runs on the slot's next generation.
    let w = &rows[0];
    gw.client
        .post_json(
            &format!("/api/v1/admin/workers/{}/kill", w.worker_id),
            &json!({ "generation": w.generation, "pid": w.pid }),
        )
        .await
        .unwrap();
    assert_failed(&r.until_complete(&first).await, "cancelled_by_operator");
    gw.wait_workers(&s, |r| {
        r.iter()
            .any(|w| w.generation == 2 && w.state == WorkerState::Busy)
    })
    .await;
    let all: Page<TurnInfo> = gw.client.get_json("/api/v1/admin/turns").await.unwrap();
    assert_eq!(all.items.len(), 2);
    assert!(
        all.items
            .iter()
            .all(|t| t.replica_id.as_ref() == Some(&replica) && t.worker_generation.is_some()),
        "{:?}",
        all.items
    );
    gw.stop().await;
}

/// This replica's live workers, streams, journal lag and latencies carry its name; the store's
/// counts (turns, replicas by state) carry none.
async fn metrics_label_what_this_replica_holds(b: Backend) {
    let gw = TestGateway::start_with(b, config(vec![("hang", worker(&["--mode", "hang"]))])).await;
    let s = gw.session("hang").await;
    let _r = gw.open(&s, None).await;
    gw.post(&s, "held").await;
    gw.wait_workers(&s, |r| r.iter().any(|w| w.state == WorkerState::Busy))
        .await;
    let me = gw.client.replicas().await.unwrap().items[0].name.clone();
    let text = metrics(&gw).await;
    for series in [
        format!("turnwatch_workers{{replica=\"{me}\",state=\"busy\"}} 1"),
        format!("turnwatch_sse_connections{{replica=\"{me}\",stream=\"session\"}} 1"),
        format!("turnwatch_sse_connections{{replica=\"{me}\",stream=\"admin\"}} 0"),
        format!("turnwatch_event_log_lag{{replica=\"{me}\"}} "),
        format!("turnwatch_crash_to_error_seconds_count{{replica=\"{me}\"}} 0"),
        "turnwatch_replicas{state=\"live\"} 1".to_owned(),
        "turnwatch_replicas{state=\"stopping\"} 0".to_owned(),
        "turnwatch_replicas{state=\"lost\"} 0".to_owned(),
        "turnwatch_turns{state=\"dispatched\"} 1".to_owned(),
    ] {
        assert!(text.contains(&series), "no `{series}` in:\n{text}");
    }
    gw.stop().await;
}
