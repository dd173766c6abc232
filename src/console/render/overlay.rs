//! Overlays: the help (generated from the key table) and the detail panes.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};

use super::Palette;
use crate::api::SessionEvent;
use crate::api::admin::{ProcessSample, TimelineEvent, TurnDetail, WorkerDetail, WorkerInfo};
use crate::api::state::ReplicaState;
use crate::clock::to_rfc3339;
use crate::console::cells::{span, worker_state};
use crate::console::cluster::Cluster;
use crate::console::keys;
use crate::console::model::{Exit, Worker, summary};
use crate::console::state::{Detail, State};
use crate::console::{clocks, reading};
use crate::ids::ReplicaId;

/// `area` shrunk by `dx` columns and `dy` lines on each side (at most a quarter of it).
pub(super) fn inset(area: Rect, dx: u16, dy: u16) -> Rect {
    Rect {
        x: area.x + dx.min(area.width / 4),
        y: area.y + dy.min(area.height / 4),
        width: area.width.saturating_sub(2 * dx.min(area.width / 4)),
        height: area.height.saturating_sub(2 * dy.min(area.height / 4)),
    }
}

fn boxed(frame: &mut Frame<'_>, area: Rect, title: &str, lines: Vec<Line<'static>>) {
    scrolled(frame, area, title, lines, 0);
}

/// [`boxed`], scrolled down `scroll` lines (no further than its last line).
fn scrolled(
    frame: &mut Frame<'_>,
    area: Rect,
    title: &str,
    lines: Vec<Line<'static>>,
    scroll: u16,
) {
    frame.render_widget(Clear, area);
    let last = u16::try_from(lines.len().saturating_sub(1)).unwrap_or(u16::MAX);
    let block = Block::default()
        .borders(Borders::ALL)
        .title(format!(" {title} · esc closes "));
    frame.render_widget(
        Paragraph::new(lines)
            .block(block)
            .wrap(Wrap { trim: false })
            .scroll((scroll.min(last), 0)),
        area,
    );
}

/// Every key of the current view, from the binding table.
pub fn help(frame: &mut Frame<'_>, area: Rect, state: &State, p: Palette) {
    let mut lines: Vec<Line<'static>> = keys::help(state.readonly)
        .map(|(k, h)| {
            Line::from(vec![
                Span::styled(format!("{k:>12}  "), p.strong()),
                Span::raw(h),
            ])
        })
        .collect();
    lines.push(Line::raw(""));
    lines.push(Line::raw(format!(
        "  {} view. Colours repeat what the text says: ✗ failed/crashed, ! STRANDED, … waiting.",
        state.view.title()
    )));
    boxed(frame, inset(area, 6, 1), "keys", lines);
}

/// A worker's or a turn's detail, scrolled as the operator scrolled it (`j`/`k`); replicas
/// named as the console names them.
pub fn detail(frame: &mut Frame<'_>, area: Rect, detail: &Detail, state: &State, p: Palette) {
    let area = inset(area, 2, 0);
    let (now, cluster, scroll) = (state.now, &state.cluster, state.detail_scroll);
    match detail {
        Detail::Loading(what) => boxed(frame, area, what, vec![Line::raw("loading…")]),
        Detail::Failed(e) => boxed(frame, area, "error", vec![Line::styled(e.clone(), p.bad())]),
        Detail::Worker(d) => scrolled(
            frame,
            area,
            &format!("worker {} · j/k scroll", d.worker.worker_id),
            worker_lines(d, now, cluster, p),
            scroll,
        ),
        Detail::Turn(d) => {
            let mut lines = stuck_block(d, state, p);
            lines.extend(turn_lines(d, cluster, p));
            scrolled(
                frame,
                area,
                &format!("turn {} · j/k scroll", d.turn.turn_id),
                lines,
                scroll,
            );
        }
    }
}

/// The turn detail's opening block, live from the console's model: how it ended, or its clocks
/// as countdowns, its worker's process truth, a reading in words, the stderr tail and the
/// last output the client got.
fn stuck_block(d: &TurnDetail, state: &State, p: Palette) -> Vec<Line<'static>> {
    let now = state.now;
    let Some(live) = state.model.turns.get(&d.turn.turn_id) else {
        return Vec::new();
    };
    // A turn the console met through its snapshot knows its stall timeout from the detail.
    let mut t = live.clone();
    t.stall_ms = t.stall_ms.or(d.turn.stall_ms);
    let t = &t;
    let mut out = Vec::new();
    if let Some(ended) = t.ended_at {
        let how = match (t.state, t.code) {
            (_, Some(code)) => format!("failed, {code}: {}", t.error.as_deref().unwrap_or("")),
            (state, None) => state.to_string(),
        };
        out.push(Line::styled(
            format!(
                "ENDED at {} ({} ago): {how}",
                clocks::clock(ended),
                span(now - ended)
            ),
            if t.code.is_some() { p.bad() } else { p.good() },
        ));
    } else if t.worker.is_none() {
        out.push(Line::raw("QUEUED: waiting for a worker".to_owned()));
    } else {
        let worker = t.worker.as_ref().and_then(|w| state.model.workers.get(w));
        let heartbeat = worker.and_then(|w| w.last_heartbeat_at);
        let stall = clocks::stall_at(t).map_or_else(
            || "stall clock unknown".into(),
            |at| format!("stall fires {}", clocks::countdown(at, now)),
        );
        let deadline = t.deadline_at.map_or_else(
            || "no deadline".into(),
            |at| format!("deadline {}", clocks::countdown(at, now)),
        );
        out.push(Line::raw(format!(
            "CLOCKS   {stall} · {deadline} · last heartbeat {} · last output {}",
            clocks::ago(heartbeat, now),
            clocks::ago(t.last_progress_at, now)
        )));
        let merged = process_of(worker, state);
        let process = merged.as_ref();
        out.push(Line::raw(match process {
            Some(s) => format!(
                "PROCESS  pid {} {} · {:.0} % CPU · RSS {} · {} threads · {} fds · {} children{}",
                worker.map_or(0, |w| w.pid),
                s.state,
                s.cpu_percent,
                bytes(s.rss_bytes),
                s.threads,
                s.fds.map_or_else(|| "?".into(), |n| n.to_string()),
                s.children.map_or_else(|| "?".into(), |n| n.to_string()),
                s.wchan
                    .as_deref()
                    .map_or_else(String::new, |w| format!(" · wchan {w}"))
            ),
            None => "PROCESS  not sampled (not on Linux, or its replica has not said)".into(),
        }));
        let signs = reading::Signs {
            process,
            heartbeat_at: heartbeat,
            output_at: t.last_progress_at,
            now,
        };
        out.push(Line::styled(
            format!("READING  {}", reading::reading(signs)),
            p.strong(),
        ));
    }
    if let Some(w) = &state.detail_worker {
        let tail: Vec<&String> = w.stderr_tail.iter().rev().take(5).collect();
        out.push(Line::raw(format!(
            "STDERR   (last {} lines of its worker)",
            tail.len()
        )));
        out.extend(tail.into_iter().rev().map(|l| Line::raw(format!("  {l}"))));
    }
    let said: String = d
        .timeline
        .iter()
        .filter_map(|e| match e.event() {
            Some(TimelineEvent::Session(SessionEvent::Output(o))) => Some(o.content),
            _ => None,
        })
        .collect();
    let n = said.chars().count();
    let last: String = said.chars().skip(n.saturating_sub(160)).collect();
    out.push(Line::raw(if n == 0 {
        "CLIENT   got no output".to_owned()
    } else {
        format!("CLIENT   got {n} characters, ending: {last:?}")
    }));
    out.push(Line::raw(""));
    out
}

/// A turn's worker's process truth: the stream's sample is live but light; the worker's detail
/// (reloaded every 2 s while the pane is open) adds its descriptors, children and kernel wait.
fn process_of(worker: Option<&Worker>, state: &State) -> Option<ProcessSample> {
    let whole = state
        .detail_worker
        .as_ref()
        .filter(|d| worker.is_some_and(|w| w.generation == d.worker.generation))
        .and_then(|d| d.worker.process.as_ref());
    match (worker.and_then(|w| w.process.as_ref()), whole) {
        (Some(live), Some(whole)) => Some(ProcessSample {
            fds: live.fds.or(whole.fds),
            children: live.children.or(whole.children),
            wchan: live.wchan.clone().or_else(|| whole.wchan.clone()),
            ..live.clone()
        }),
        (live, whole) => live.or(whole).cloned(),
    }
}

/// `12.3 MiB`.
fn bytes(n: u64) -> String {
    let mib = n / (1024 * 1024);
    let tenth = (n % (1024 * 1024)) * 10 / (1024 * 1024);
    format!("{mib}.{tenth} MiB")
}

fn worker_lines(d: &WorkerDetail, now: i64, cluster: &Cluster, p: Palette) -> Vec<Line<'static>> {
    let w = &d.worker;
    let mut out = vec![
        Line::raw(format!(
            "generation {}  pid {}  {}  agent {}  session {}  replica {}",
            w.generation,
            w.pid,
            worker_state(w.state),
            w.agent_id,
            w.session_id,
            replica_text(cluster, &w.replica_id)
        )),
        Line::raw(format!(
            "started {} ({} ago)  turns served {}",
            to_rfc3339(w.started_at),
            span(now - w.started_at),
            w.turns_served
        )),
        Line::raw(""),
        Line::styled("EXITS", p.strong()),
    ];
    out.extend(d.generations.iter().map(|g| exit_line(g, p)));
    out.push(Line::raw(""));
    out.push(Line::styled("RECENT TURNS", p.strong()));
    for t in &d.recent_turns {
        let code = t.code.map(|c| format!(" {c}")).unwrap_or_default();
        out.push(Line::raw(format!(
            "  {}  {}{code}  {}",
            t.turn_id,
            t.state,
            to_rfc3339(t.created_at)
        )));
    }
    out.push(Line::raw(""));
    out.push(Line::styled(
        format!("STDERR (last {} lines)", d.stderr_tail.len()),
        p.strong(),
    ));
    out.extend(d.stderr_tail.iter().map(|l| Line::raw(format!("  {l}"))));
    if !d.rejected_output.is_empty() {
        out.push(Line::raw(""));
        out.push(Line::styled("REJECTED OUTPUT", p.strong()));
        out.extend(rejected_lines(d));
    }
    out
}

/// One generation: how it exited (a crash stands out), or that it runs.
fn exit_line(g: &WorkerInfo, p: Palette) -> Line<'static> {
    match Exit::of(g) {
        Some(e) => {
            let style = if e.intentional { p.dim() } else { p.bad() };
            let kind = if e.intentional {
                "intentional"
            } else {
                "CRASH"
            };
            Line::styled(
                format!(
                    "  gen {}  exit {}  {kind}  {}  at {}",
                    g.generation,
                    e.describe(),
                    e.reason,
                    g.exited_at.map(to_rfc3339).unwrap_or_default()
                ),
                style,
            )
        }
        None => Line::raw(format!("  gen {}  running (pid {})", g.generation, g.pid)),
    }
}

fn rejected_lines(d: &WorkerDetail) -> Vec<Line<'static>> {
    d.rejected_output
        .iter()
        .map(|r| Line::raw(format!("  {} {}: {}", r.kind, r.reason, r.line)))
        .collect()
}

fn turn_lines(d: &TurnDetail, cluster: &Cluster, p: Palette) -> Vec<Line<'static>> {
    let t = &d.turn;
    let mut out = vec![
        Line::raw(format!(
            "session {}  agent {}  message {}",
            t.session_id, t.agent_id, t.message_id
        )),
        Line::raw(format!(
            "state {}{}  worker {} gen {}  replica {}",
            t.state,
            if t.stranded { "  ! STRANDED" } else { "" },
            t.worker_id.as_ref().map_or("-", |w| w.as_str()),
            t.worker_generation.map_or("-".into(), |g| g.to_string()),
            t.replica_id
                .as_ref()
                .map_or_else(|| "-".into(), |r| replica_text(cluster, r))
        )),
        Line::raw(format!(
            "created {}  dispatched {}  deadline {}",
            to_rfc3339(t.created_at),
            t.dispatched_at.map_or_else(|| "-".into(), to_rfc3339),
            t.deadline_at.map_or_else(|| "-".into(), to_rfc3339)
        )),
    ];
    if let Some(code) = &t.code {
        out.push(Line::styled(
            format!("failed: {code}: {}", t.error.as_deref().unwrap_or("")),
            p.bad(),
        ));
    }
    if let Some(content) = &t.content {
        out.push(Line::raw(format!("message: {content}")));
    }
    out.push(Line::raw(""));
    out.push(Line::styled("TIMELINE", p.strong()));
    let steps: Vec<_> = d.timeline.iter().map(|e| (e, e.event())).collect();
    let start = steps
        .first()
        .and_then(|(_, ev)| ev.as_ref()?.timestamp())
        .unwrap_or(0);
    for (e, event) in steps {
        let at = event
            .as_ref()
            .and_then(TimelineEvent::timestamp)
            .unwrap_or(start);
        let text = match &event {
            Some(TimelineEvent::Admin(a)) => summary(a),
            Some(TimelineEvent::Session(s)) => session_summary(s),
            None => e.data.to_string(),
        };
        out.push(Line::raw(format!(
            "  +{:>6}ms  {:<7} {:<16} {text}",
            at - start,
            e.source,
            e.kind
        )));
    }
    out
}

/// A replica by its label, with its id when the label is not the id, and `✗ LOST` when the
/// gateway lists it lost.
fn replica_text(cluster: &Cluster, id: &ReplicaId) -> String {
    let label = cluster.label(id);
    let lost = cluster
        .get(id)
        .is_some_and(|r| r.state == ReplicaState::Lost);
    let lost = if lost { " ✗ LOST" } else { "" };
    if label == id.as_str() {
        format!("{label}{lost}")
    } else {
        format!("{label} ({id}){lost}")
    }
}

fn session_summary(event: &SessionEvent) -> String {
    match event {
        SessionEvent::Output(d) => format!("{:?}", d.content),
        SessionEvent::Status(s) => s.status.state.clone(),
        SessionEvent::Error(f) | SessionEvent::AgentError(f) => format!("{}: {}", f.code, f.error),
        SessionEvent::Complete(c) => c.status.to_string(),
        SessionEvent::Closed(c) => c.reason.clone(),
        SessionEvent::Connected(_) | SessionEvent::Ping(_) => String::new(),
    }
}
