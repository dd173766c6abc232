//! `turnwatch status`: a headless snapshot of the replicas, workers, in-flight and stranded
//! turns; `--json` for scripts, `--watch` for an NDJSON stream of admin events, `--exit-code` to
//! exit 3 when anything is stranded.

use serde_json::{Value, json};
use std::io::Write;
use std::time::Duration;

use crate::api::admin::{ListQuery, Overview, ReplicaInfo, TurnInfo, WorkerInfo};
use crate::api::lifecycle::AdminStreamEvent;
use crate::api::state::{ReplicaState, TurnSet, WorkerSet};
use crate::client::{Client, ClientError, Item};

/// Exit code when `--exit-code` finds stranded turns.
pub const STRANDED_EXIT: i32 = 3;

/// Everything `status` shows.
pub struct Status {
    /// The overview.
    pub overview: Overview,
    /// The replicas sharing the store, or why the gateway did not list them (one older than
    /// the list: the rest of the snapshot still shows).
    pub replicas: Result<Vec<ReplicaInfo>, String>,
    /// Live workers.
    pub workers: Vec<WorkerInfo>,
    /// Open turns (stranded ones are flagged).
    pub turns: Vec<TurnInfo>,
}

/// Reads the snapshot.
pub async fn fetch(client: &Client) -> Result<Status, ClientError> {
    let overview = client.overview().await?;
    let workers = client
        .workers(&ListQuery::of(WorkerSet::Live, 1000))
        .await?;
    let turns = client.turns(&ListQuery::of(TurnSet::Open, 1000)).await?;
    let replicas = match client.replicas().await {
        Ok(page) => Ok(page.items),
        // An answer (an older gateway's 404): the rest still shows.
        Err(e @ ClientError::Api { .. }) => Err(e.to_string()),
        Err(e) => return Err(e),
    };
    let mut status = Status {
        overview,
        replicas,
        workers: workers.items,
        turns: turns.items,
    };
    // Three requests are three moments: the header's live counts are taken from the rows
    // shown, so it never says `stranded: 2` above a table with no stranded row.
    if workers.next_cursor.is_none() {
        let o = &mut status.overview;
        o.workers.retain(|state, _| !state.is_live());
        for w in &status.workers {
            *o.workers.entry(w.state).or_default() += 1;
        }
    }
    if turns.next_cursor.is_none() {
        status.overview.stranded = status.turns.iter().filter(|t| t.stranded).count() as i64;
    }
    if let Ok(list) = &status.replicas {
        status.overview.replicas = count(list, ReplicaState::Live) as u32;
    }
    Ok(status)
}

fn count(replicas: &[ReplicaInfo], state: ReplicaState) -> usize {
    replicas.iter().filter(|r| r.state == state).count()
}

/// The snapshot as one JSON object (`replicas` is `null` when the gateway did not list them).
pub fn to_json(s: &Status) -> Value {
    json!({
        "overview": s.overview,
        "replicas": s.replicas.as_ref().ok(),
        "workers": s.workers,
        "turns": s.turns,
    })
}

fn age(since: Option<i64>) -> String {
    let Some(t) = since else {
        return "-".into();
    };
    let secs = (crate::clock::now_ms() - t).max(0) / 1000;
    humantime::format_duration(Duration::from_secs(secs as u64)).to_string()
}

fn counts<K: std::fmt::Display>(m: &std::collections::BTreeMap<K, i64>) -> String {
    if m.is_empty() {
        return "none".into();
    }
    m.iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The snapshot as a readable table.
pub fn render(url: &str, s: &Status, out: &mut dyn Write) -> std::io::Result<()> {
    let o = &s.overview;
    let lost = s
        .replicas
        .as_ref()
        .map_or(0, |list| count(list, ReplicaState::Lost));
    writeln!(
        out,
        "gateway {url}  v{}  up {}  replicas: {} live{}",
        o.version,
        humantime::format_duration(Duration::from_secs(o.uptime_seconds)),
        o.replicas,
        if lost > 0 {
            format!(", {lost} LOST")
        } else {
            String::new()
        }
    )?;
    writeln!(
        out,
        "workers: {}   turns: {}   stranded: {}",
        counts(&o.workers),
        counts(&o.turns),
        o.stranded
    )?;
    render_replicas(&s.replicas, out)?;
    writeln!(out, "\nWORKERS ({})", s.workers.len())?;
    writeln!(
        out,
        "{:<20} {:>4} {:>8} {:<9} {:<12} {:>10}  TURN",
        "WORKER", "GEN", "PID", "STATE", "AGENT", "UPTIME"
    )?;
    for w in &s.workers {
        let turn = w.current_turn_id.as_ref().map_or("-", |t| t.as_str());
        writeln!(
            out,
            "{:<20} {:>4} {:>8} {:<9} {:<12} {:>10}  {turn}",
            w.worker_id,
            w.generation,
            w.pid,
            w.state,
            w.agent_id,
            age(Some(w.started_at))
        )?;
    }
    writeln!(out, "\nTURNS IN FLIGHT ({})", s.turns.len())?;
    writeln!(
        out,
        "{:<36} {:<10} {:<12} {:>10} {:>12}  WORKER",
        "TURN", "STATE", "AGENT", "AGE", "NO PROGRESS"
    )?;
    for t in &s.turns {
        let state = if t.stranded {
            "STRANDED"
        } else {
            t.state.as_str()
        };
        let worker = t.worker_id.as_ref().map_or("-", |w| w.as_str());
        writeln!(
            out,
            "{:<36} {:<10} {:<12} {:>10} {:>12}  {worker}",
            t.turn_id,
            state,
            t.agent_id,
            age(Some(t.created_at)),
            age(t.last_progress_at)
        )?;
    }
    Ok(())
}

/// One line per replica, lost ones first; a lost one is spelled `LOST` and says when its
/// lease ran out.
fn render_replicas(
    replicas: &Result<Vec<ReplicaInfo>, String>,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let list = match replicas {
        Ok(list) => list,
        Err(e) => return writeln!(out, "\nREPLICAS: not listed ({e})"),
    };
    writeln!(out, "\nREPLICAS ({})", list.len())?;
    writeln!(
        out,
        "{:<20} {:<9} {:>7} {:>8}  HEARTBEAT",
        "NAME", "STATE", "WORKERS", "SESSIONS"
    )?;
    let mut rows: Vec<&ReplicaInfo> = list.iter().collect();
    rows.sort_by_key(|r| (r.state != ReplicaState::Lost, r.name.clone()));
    for r in rows {
        let (state, note) = if r.state == ReplicaState::Lost {
            (
                "LOST",
                format!("  ! lease ran out {} ago", age(Some(r.lease_until))),
            )
        } else {
            (r.state.as_str(), String::new())
        };
        writeln!(
            out,
            "{:<20} {state:<9} {:>7} {:>8}  {} ago{note}",
            r.name,
            r.workers,
            r.sessions,
            age(Some(r.heartbeat_at))
        )?;
    }
    Ok(())
}

/// The gateway pings an idle admin stream every 30 s.
const SILENT: Duration = Duration::from_secs(75);
/// How long `--watch` keeps trying to resume a broken stream.
const GIVE_UP: Duration = Duration::from_secs(30);

/// Prints admin events as NDJSON until the stream can no longer be resumed.
pub async fn watch(client: &Client, out: &mut (dyn Write + Send)) -> Result<(), ClientError> {
    // A stream with nothing, not even a ping, for `SILENT` is dead: it is resumed.
    let mut stream = client
        .admin_stream(None)
        .quiet_after(SILENT, true)
        .give_up_after(GIVE_UP);
    loop {
        let ev = match stream.next().await? {
            // The log only: neither a ping nor a process sample is in it.
            Item::Event(_, AdminStreamEvent::Ping(_) | AdminStreamEvent::Sampled(_)) => continue,
            Item::Event(ev, _) | Item::Unreadable(ev, _) => ev,
            Item::Connecting(_) | Item::Connected | Item::Gap(_) | Item::Lost(_) | Item::Quiet => {
                continue;
            }
        };
        let line = json!({ "event": ev.event, "id": ev.id, "data": ev.data });
        if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
            return Ok(()); // stdout closed: the reader is gone
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::now_ms;
    use crate::ids::ReplicaId;

    fn replica(name: &str, state: ReplicaState, ago: i64, workers: i64) -> ReplicaInfo {
        let now = now_ms();
        ReplicaInfo {
            replica_id: ReplicaId(format!("r-{name}")),
            name: name.into(),
            host: "h".into(),
            pid: 1,
            version: "0.1.0".into(),
            started_at: now - 60_000,
            heartbeat_at: now - ago,
            lease_until: now - ago + 5_000,
            state,
            workers,
            sessions: workers,
        }
    }

    fn text(s: &Status) -> String {
        let mut out = Vec::new();
        render("http://gw", s, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn replicas_are_listed_below_the_summary_lost_ones_first_and_flagged() {
        let mut s = Status {
            overview: Overview {
                replicas: 2,
                ..Overview::default()
            },
            replicas: Ok(vec![
                replica("gw-a", ReplicaState::Live, 1_000, 2),
                replica("gw-b", ReplicaState::Stopping, 0, 0),
                replica("gw-c", ReplicaState::Lost, 40_000, 1),
            ]),
            workers: Vec::new(),
            turns: Vec::new(),
        };
        let out = text(&s);
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[0].ends_with("replicas: 2 live, 1 LOST"), "{out}");
        assert_eq!(lines[3], "REPLICAS (3)", "{out}");
        assert_eq!(
            lines[4],
            "NAME                 STATE     WORKERS SESSIONS  HEARTBEAT"
        );
        assert_eq!(
            lines[5],
            "gw-c                 LOST            1        1  40s ago  ! lease ran out 35s ago"
        );
        assert_eq!(
            lines[6],
            "gw-a                 live            2        2  1s ago"
        );
        assert!(lines[7].starts_with("gw-b                 stopping        0        0  "));
        assert_eq!(lines[9], "WORKERS (0)", "{out}");
        let json = to_json(&s);
        assert_eq!(json["replicas"][2]["state"], "lost");
        // An older gateway without the list: said, and the rest still shows.
        s.replicas = Err("no such route (HTTP 404, code not_found)".into());
        let out = text(&s);
        assert!(
            out.contains("REPLICAS: not listed (no such route (HTTP 404, code not_found))"),
            "{out}"
        );
        assert!(out.lines().next().unwrap().ends_with("replicas: 2 live"));
        assert!(to_json(&s)["replicas"].is_null());
    }
}
