//! The confirmation dialog of an operator action: what will happen, the reason being typed,
//! and the two buttons.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};

use super::Palette;
use super::overlay::inset;
use crate::console::action::Confirm;
use crate::console::cells::span;
use crate::console::msg::Target;

/// The confirmation dialog: what will happen, the reason, and the two buttons (Cancel focused
/// by default).
pub fn render(frame: &mut Frame<'_>, area: Rect, c: &Confirm, now: i64, p: Palette) {
    let area = inset(area, 10, 2);
    let area = Rect {
        height: area.height.min(12),
        ..area
    };
    // Ages stop when the target ended: the dialog says how instead of counting on.
    let at = c.ended.as_ref().map_or(now, |(at, _)| *at);
    let mut lines: Vec<Line<'static>> = Vec::new();
    if let Some((_, how)) = &c.ended {
        lines.push(Line::styled(
            format!("Already over: {how}. Nothing to do."),
            p.warn(),
        ));
    }
    lines.extend(blast_radius(&c.target, at).into_iter().map(Line::raw));
    lines.push(Line::raw(""));
    lines.push(Line::raw(format!("reason: {}▏", c.reason)));
    lines.push(Line::raw(""));
    let (cancel, action) = if c.on_action {
        (p.dim(), p.bad().patch(p.selected()))
    } else {
        (p.selected(), p.dim())
    };
    let mark = |on: bool, label: &str| {
        if on {
            format!("> {label} <")
        } else {
            format!("  {label}  ")
        }
    };
    let verb = if c.ended.is_some() {
        format!("{} (off)", c.target.verb())
    } else {
        c.target.verb().to_owned()
    };
    let action = if c.ended.is_some() { p.dim() } else { action };
    lines.push(Line::from(vec![
        Span::styled(mark(!c.on_action, "Keep it"), cancel),
        Span::raw("    "),
        Span::styled(mark(c.on_action, &verb), action),
    ]));
    frame.render_widget(Clear, area);
    let block = Block::default()
        .borders(Borders::ALL)
        .title(format!(" {} ", c.target.title()));
    frame.render_widget(
        Paragraph::new(lines)
            .block(block)
            .wrap(Wrap { trim: false }),
        area,
    );
}

/// What will happen, in sentences: the blast radius.
fn blast_radius(target: &Target, now: i64) -> Vec<String> {
    match target {
        Target::Kill {
            worker,
            generation,
            pid,
            turn,
        } => {
            let mut v = vec![format!(
                "SIGKILL to worker {worker} generation {generation}, pid {pid} (and its process group)."
            )];
            v.push(match turn {
                Some((t, created, session)) => format!(
                    "Its in-flight turn {t} (age {}, session {session}) ends now with cancelled_by_operator.",
                    span(now - created)
                ),
                None => "It holds no turn: no client stream is affected.".into(),
            });
            v.push(
                "If the worker at this id is no longer this generation and pid, nothing is killed."
                    .into(),
            );
            v
        }
        Target::Cancel {
            turn,
            created_at,
            session,
            worker,
        } => vec![
            format!(
                "Turn {turn} (age {}, session {session}) ends now with cancelled_by_operator.",
                span(now - created_at)
            ),
            format!(
                "Its worker {} gets `cancel` and stays alive.",
                worker
                    .as_ref()
                    .map_or_else(|| "(none yet)".to_owned(), ToString::to_string)
            ),
        ],
    }
}
