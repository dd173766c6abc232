//! The Chat view: the agent picker, the replies as they stream, the input line.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Wrap};

use super::Palette;
use crate::console::cells::span;
use crate::console::chat::{Chat, Reply, ReplyEnd};
use crate::console::state::State;

/// Draws the Chat view into the table's area.
pub fn render(frame: &mut Frame<'_>, area: Rect, state: &State, p: Palette) {
    let chat = &state.chat;
    let [top, body, input] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(1),
        Constraint::Length(3),
    ])
    .areas(area);
    frame.render_widget(Paragraph::new(picker(chat, p)), top);
    let lines: Vec<Line<'static>> = chat
        .replies
        .iter()
        .flat_map(|r| reply_lines(r, state, p))
        .collect();
    // Show the newest replies (or as far back as the operator scrolled): skip what does not
    // fit.
    let fit = usize::from(body.height);
    let bottom = lines.len().saturating_sub(fit);
    let skip = bottom.saturating_sub(chat.scroll);
    let replies =
        Paragraph::new(lines.into_iter().skip(skip).collect::<Vec<_>>()).wrap(Wrap { trim: false });
    frame.render_widget(replies, body);
    let prompt = Paragraph::new(Line::raw(format!("› {}▏", chat.input)))
        .block(Block::default().borders(Borders::ALL).title(
        " message · enter sends · ←/→ agent · pgup/pgdn scroll · ctrl-n new session · esc leaves ",
    ));
    frame.render_widget(prompt, input);
}

/// The agent picker and the session in use.
fn picker(chat: &Chat, p: Palette) -> Line<'static> {
    let agent = chat.agent_name().unwrap_or("(no agents yet)");
    let session = chat.session.as_ref().map_or_else(
        || "a new session on the next message".into(),
        |s| format!("session {}", s.id),
    );
    Line::from(vec![
        Span::raw(" agent ◀ "),
        Span::styled(agent.to_owned(), p.strong()),
        Span::raw(format!(
            " ▶  ({} of {})  {session}",
            chat.agent + 1,
            chat.agents.len().max(1)
        )),
    ])
}

/// One message, its reply so far, and a status line: its turn, worker, last chunk, how it
/// ended.
fn reply_lines(r: &Reply, state: &State, p: Palette) -> Vec<Line<'static>> {
    let mut lines = vec![Line::styled(
        format!("you → {}: {}", r.agent, r.message),
        p.strong(),
    )];
    if !r.text.is_empty() {
        lines.push(Line::raw(r.text.clone()));
    }
    let worker = r
        .turn
        .as_ref()
        .and_then(|t| state.model.turns.get(t))
        .and_then(|t| t.worker.as_ref())
        .map_or_else(|| "-".to_owned(), ToString::to_string);
    let turn = r
        .turn
        .as_ref()
        .map_or_else(|| "sending…".to_owned(), |t| format!("turn {t}"));
    // A finished reply's clocks stop when it ended.
    let now = r.ended_at.unwrap_or(state.now);
    let chunk = match (r.last_chunk_at, r.ended_at) {
        (None, _) => "no chunk yet".to_owned(),
        (Some(_), Some(end)) => format!("took {}", span(end - r.sent_at)),
        (Some(t), None) => format!("last chunk {} ago", span(now - t)),
    };
    let (end, style) = match &r.end {
        None if r.last_chunk_at.is_some() => (
            format!("▸ streaming ({} so far)", span(now - r.sent_at)),
            p.warn(),
        ),
        None => (
            format!("… waiting ({} so far)", span(now - r.sent_at)),
            p.warn(),
        ),
        Some(ReplyEnd::Completed) => ("✓ completed".to_owned(), p.good()),
        Some(ReplyEnd::Failed { code, error }) => (format!("✗ {code}: {error}"), p.bad()),
        Some(ReplyEnd::NotSent(error)) => (format!("✗ not sent: {error}"), p.bad()),
    };
    lines.push(Line::from(vec![
        Span::styled(format!("  {turn} · worker {worker} · {chunk} · "), p.dim()),
        Span::styled(end, style),
    ]));
    lines.push(Line::raw(""));
    lines
}
