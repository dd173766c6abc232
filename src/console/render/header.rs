//! The header (gateway, stream, counts, badges), the tab line and the footer.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Sparkline};

use super::Palette;
use crate::console::cells::span;
use crate::console::cluster::ReplicaCounts;
use crate::console::keys;
use crate::console::state::{Counts, Detail, Link, Mode, State, View};

/// The time of day to the minute: an idle console redraws once a minute
/// ([`State::counts_seconds`]).
fn clock(ms: i64) -> String {
    let m = ms.div_euclid(60_000);
    format!("{:02}:{:02} UTC", (m / 60) % 24, m % 60)
}

/// How long ago, to the minute.
fn ago(ms: i64) -> String {
    match ms.max(0) / 60_000 {
        0 => "<1m ago".into(),
        m @ 1..60 => format!("{m}m ago"),
        m => format!("{}h{:02}m ago", m / 60, m % 60),
    }
}

/// Two header lines: where and how fresh, then what is there.
pub fn render(frame: &mut Frame<'_>, area: Rect, state: &State, p: Palette) {
    frame.render_widget(
        Paragraph::new(vec![stream_line(state, p), counts_line(state, p)]),
        area,
    );
}

/// The gateway, the admin stream's state, the last event's age, the clock, the replicas.
fn stream_line(state: &State, p: Palette) -> Line<'static> {
    let c = &state.conn;
    let age = c.last_event_at.map_or_else(
        || "no events yet".into(),
        |t| format!("last event {}", ago(state.now - t)),
    );
    let (link, style) = match &c.link {
        Link::Live => ("● live".to_owned(), p.good()),
        Link::Connecting => ("… connecting".to_owned(), p.warn()),
        Link::Reconnecting(n) => (format!("↻ reconnecting {n}"), p.warn()),
        Link::Refused => ("✗ token refused (ctrl-r retries)".to_owned(), p.bad()),
    };
    let mut first = vec![
        Span::styled("turnwatch ", p.strong()),
        Span::raw(format!("{}  ", c.target)),
        Span::raw("admin stream "),
        Span::styled(link, style),
        Span::raw(format!("  {age}  ")),
        Span::raw(clock(state.now)),
    ];
    first.extend(replicas_span(state.counts.replicas.as_ref()));
    if let (Some(err), false) = (&c.error, c.link == Link::Live) {
        first.push(Span::styled(format!("  {err}"), p.bad()));
    }
    Line::from(first)
}

/// The replicas holding a lease (and stopping), once the gateway has listed them:
/// `  replicas: 2 live, 1 stopping`.
fn replicas_span(counts: Option<&ReplicaCounts>) -> Option<Span<'static>> {
    let c = counts?;
    let stopping = if c.stopping > 0 {
        format!(", {} stopping", c.stopping)
    } else {
        String::new()
    };
    Some(Span::raw(format!("  replicas: {} live{stopping}", c.live)))
}

/// The lost replicas, first on the counts line so that they show at 80 columns, in red and in
/// words (`✗ lost 1 replica`); nothing while none is lost.
fn lost_spans(counts: Option<&ReplicaCounts>, p: Palette) -> Vec<Span<'static>> {
    match counts.map_or(0, |c| c.lost) {
        0 => Vec::new(),
        n => vec![
            Span::styled(
                format!("✗ lost {n} replica{}", if n == 1 { "" } else { "s" }),
                p.bad(),
            ),
            Span::raw("   "),
        ],
    }
}

/// What matters most first, so that 80 columns keep it: lost replicas, the badges (read-only,
/// frozen, stale), the stranded and stuck counts; then in-flight and failed turns, then
/// workers by state.
fn counts_line(state: &State, p: Palette) -> Line<'static> {
    let Counts {
        workers,
        in_flight,
        failed,
        stranded,
        stuck,
        replicas,
    } = &state.counts;
    let (in_flight, failed, stranded, stuck) = (*in_flight, *failed, *stranded, *stuck);
    // Never reached: nothing is known, and zeros would say all is well. The error, whole.
    if state.conn.last_event_at.is_none() && state.is_stale() {
        let why = state.conn.error.as_deref().unwrap_or("connecting…");
        return Line::from(vec![
            Span::styled("counts unknown: ", p.bad()),
            Span::raw(why.to_owned()),
        ]);
    }
    let mut second = lost_spans(replicas.as_ref(), p);
    if state.readonly {
        second.push(Span::styled("[READ-ONLY] ", p.warn()));
    }
    if state.frozen.is_some() {
        second.push(Span::styled("[FROZEN: f thaws] ", p.warn()));
    }
    if let Some(since) = state.conn.stale_since.filter(|_| state.is_stale()) {
        second.push(Span::styled(
            format!("[STALE {}] ", span(state.now - since)),
            p.bad(),
        ));
    }
    let loud = |n: usize| if n > 0 { p.bad() } else { p.dim() };
    second.push(Span::styled(format!("stranded {stranded}"), loud(stranded)));
    second.push(Span::raw("  "));
    second.push(Span::styled(format!("stuck {stuck}"), loud(stuck)));
    let counts = workers
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ");
    // Failures as the gateway counts them (by code, its recent window), else since the
    // console started.
    let failed = match &state.model.failed_recently {
        Some((by_code, secs)) => {
            let total: i64 = by_code.values().sum();
            let mut top: Vec<(&crate::api::ErrorCode, &i64)> = by_code.iter().collect();
            top.sort_by(|a, b| b.1.cmp(a.1));
            let top: Vec<String> = top
                .iter()
                .take(2)
                .map(|(c, n)| format!("{n} {c}"))
                .collect();
            let top = if top.is_empty() {
                String::new()
            } else {
                format!(" ({})", top.join(", "))
            };
            format!("failed in {}m {total}{top}", secs / 60)
        }
        None => format!("failed {failed} since the console started"),
    };
    second.push(Span::raw(format!(
        "   turns: in flight {in_flight}, {failed}   workers: {}",
        if counts.is_empty() {
            "none".into()
        } else {
            counts
        }
    )));
    Line::from(second)
}

/// The tab line, with the filter in force.
pub fn tabs(frame: &mut Frame<'_>, area: Rect, state: &State, p: Palette) {
    let mut spans = Vec::new();
    for (i, v) in View::ALL.iter().enumerate() {
        let label = format!(" {} {} ", i + 1, v.title());
        let label = if *v == View::Stranded {
            format!("{label}({} open) ", state.counts.stranded)
        } else {
            label
        };
        spans.push(if *v == state.view {
            Span::styled(format!("[{}]", label.trim()), p.selected())
        } else {
            Span::raw(label)
        });
        spans.push(Span::raw(" "));
    }
    if let Some(f) = &state.filter {
        spans.push(Span::styled(format!("  filter /{}/", f.raw), p.warn()));
    }
    let used = u16::try_from(Line::from(spans.clone()).width()).unwrap_or(u16::MAX);
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
    pulse(frame, area, used, state, p);
}

/// The pulse, right-aligned on the tab line where it fits: `turns/s ▁▂▅ 2.1  failed/min ▁▁▇ 3`.
fn pulse(frame: &mut Frame<'_>, area: Rect, used: u16, state: &State, p: Palette) {
    const SPARK: u16 = 20;
    let rate = format!(" turns/s {:.1} ", state.pulse.turns_per_second());
    let failed_n = state.pulse.failed_last_minutes();
    let failed = format!(" failed/2min {failed_n} ");
    let (rate_w, failed_w) = (
        u16::try_from(rate.len()).unwrap_or(0),
        u16::try_from(failed.len()).unwrap_or(0),
    );
    let width = rate_w + failed_w + 2 * SPARK;
    if area.width < used + width + 2 {
        return;
    }
    let failed_style = if failed_n > 0 { p.bad() } else { p.dim() };
    let secs: Vec<u64> = state.pulse.per_second.iter().copied().collect();
    let secs = &secs[secs.len().saturating_sub(usize::from(SPARK))..];
    let mins: Vec<u64> = state.pulse.failed_per_minute.iter().copied().collect();
    // Left to right: the rate, its sparkline, the failures, theirs.
    let mut x = area.x + area.width - width;
    let mut cell = |w: u16| {
        let r = Rect {
            x,
            y: area.y,
            width: w,
            height: 1,
        };
        x += w;
        r
    };
    frame.render_widget(Paragraph::new(Span::styled(rate, p.dim())), cell(rate_w));
    frame.render_widget(Sparkline::default().data(secs).style(p.good()), cell(SPARK));
    frame.render_widget(
        Paragraph::new(Span::styled(failed, failed_style)),
        cell(failed_w),
    );
    frame.render_widget(
        Sparkline::default().data(&mins).style(failed_style),
        cell(SPARK),
    );
}

/// The footer: what is being typed, or a notice, or the main keys.
pub fn footer(frame: &mut Frame<'_>, area: Rect, state: &State, p: Palette) {
    let line = match &state.mode {
        Mode::Filter(s) => Line::from(vec![
            Span::styled("/", p.strong()),
            Span::raw(format!("{s}▏  (enter apply, esc cancel, !re inverts)")),
        ]),
        Mode::Command(s) => Line::from(vec![
            Span::styled(":", p.strong()),
            Span::raw(format!("{s}▏  (enter run, esc cancel)")),
        ]),
        Mode::Help => Line::from(Span::styled("esc close", p.dim())),
        Mode::Detail(d) => {
            // What works in this pane: scrolling, and the actions on what it shows.
            let acts = match d {
                _ if state.readonly => "",
                Detail::Turn(_) => "  x kill its worker  c cancel it",
                Detail::Worker(_) => "  x kill it",
                Detail::Loading(_) | Detail::Failed(_) => "",
            };
            Line::from(Span::styled(
                format!("esc close  j/k pgup/pgdn scroll{acts}"),
                p.dim(),
            ))
        }
        Mode::Confirm(_) => Line::from(Span::styled(
            "tab/←/→ move focus  enter choose  esc cancel  (type a reason)",
            p.dim(),
        )),
        Mode::Normal if state.view == View::Chat && state.notice.is_none() => {
            Line::from(Span::styled(
                "type a message  enter send  ←/→ agent  ctrl-n new session  tab views  esc leave  ctrl-c quit",
                p.dim(),
            ))
        }
        Mode::Normal => match &state.notice {
            Some((text, true)) => Line::from(Span::styled(text.clone(), p.bad())),
            Some((text, false)) => Line::from(Span::raw(text.clone())),
            None => {
                let text = keys::FOOTER
                    .iter()
                    .filter(|(_, _, action)| !(state.readonly && *action))
                    .filter(|(k, _, _)| keys::offered(state.view, k))
                    .map(|(k, w, _)| format!("{k} {w}"))
                    .collect::<Vec<_>>()
                    .join("  ");
                Line::from(Span::styled(text, p.dim()))
            }
        },
    };
    frame.render_widget(Paragraph::new(line), area);
}
