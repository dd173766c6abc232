//! `turnwatch status`: a headless snapshot of workers, in-flight and stranded turns; `--json`
//! for scripts, `--watch` for an NDJSON stream of admin events, `--exit-code` to exit 3 when
//! anything is stranded.

use serde_json::{Value, json};
use std::io::Write;
use std::time::Duration;

use crate::api::admin::{ListQuery, Overview, TurnInfo, WorkerInfo};
use crate::api::lifecycle::AdminStreamEvent;
use crate::api::state::{TurnSet, WorkerSet};
use crate::client::{Client, ClientError, Item};

/// Exit code when `--exit-code` finds stranded turns.
pub const STRANDED_EXIT: i32 = 3;

/// Everything `status` shows.
pub struct Status {
    /// The overview.
    pub overview: Overview,
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
    let mut status = Status {
        overview,
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
    Ok(status)
}

/// The snapshot as one JSON object.
pub fn to_json(s: &Status) -> Value {
    json!({ "overview": s.overview, "workers": s.workers, "turns": s.turns })
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
    writeln!(
        out,
        "gateway {url}  v{}  up {}  replicas: {} live",
        o.version,
        humantime::format_duration(Duration::from_secs(o.uptime_seconds)),
        o.replicas
    )?;
    writeln!(
        out,
        "workers: {}   turns: {}   stranded: {}",
        counts(&o.workers),
        counts(&o.turns),
        o.stranded
    )?;
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
            Item::Event(_, AdminStreamEvent::Ping(_)) => continue,
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
