//! The current view as a table: only the rows that fit are built.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::Style;
use ratatui::text::Text;
use ratatui::widgets::{Block, Borders, Cell, Row, Table};

use super::Palette;
use crate::api::state::ReplicaState;
use crate::api::{TurnState, WorkerState};
use crate::console::model::Exit;
use crate::console::model::Tone;
use crate::console::state::{RowKey, State, View};

fn widths(view: View) -> Vec<Constraint> {
    let c = Constraint::Length;
    match view {
        View::Workers => vec![
            c(20),
            c(4),
            c(8),
            c(11),
            c(14),
            c(12),
            c(8),
            c(36),
            Constraint::Min(16),
        ],
        View::Turns | View::Stranded => {
            vec![c(36), c(24), c(14), c(8), c(11), c(10), Constraint::Min(18)]
        }
        View::Events => vec![c(7), c(13), c(22), Constraint::Min(30)],
        View::Chat => Vec::new(),
        View::Replicas => vec![
            c(14),
            c(10),
            c(14),
            c(7),
            c(8),
            c(10),
            c(7),
            c(8),
            c(10),
            Constraint::Min(14),
        ],
    }
}

/// Below this width the Replicas view leaves out HOST, PID and VERSION, so that the rest (the
/// state, the counts, the heartbeat and the lease) fits in 80 columns.
const NARROW_REPLICAS: u16 = 110;

/// Whether column `i` of the view is drawn at `width`.
fn is_shown(view: View, width: u16, i: usize) -> bool {
    !(view == View::Replicas && width < NARROW_REPLICAS && (2..=4).contains(&i))
}

/// The style a row's content asks for (colour always doubles a word in the cells).
fn row_style(state: &State, key: Option<&RowKey>, cells: &[String], p: Palette) -> Style {
    let style = match key {
        Some(RowKey::Worker(id)) => match state.model.workers.get(id) {
            Some(w) if w.state == WorkerState::Exited => p.dim(),
            Some(w) if w.last_exit.as_ref().is_some_and(Exit::is_crash) => p.warn(),
            _ => Style::default(),
        },
        Some(RowKey::Turn(id)) => match state.model.turns.get(id) {
            Some(t) if t.stranded || t.state == TurnState::Failed => p.bad(),
            Some(t) if !t.is_open() => p.dim(),
            Some(t)
                if cells[5] == "PASSED"
                    || t.last_progress_at.is_some_and(|at| state.now - at > 10_000) =>
            {
                p.warn()
            }
            _ => Style::default(),
        },
        Some(RowKey::Event(i)) => match state.model.events.get(*i).map(|e| e.tone) {
            Some(Tone::Bad) => p.bad(),
            Some(Tone::Warn) => p.warn(),
            _ => Style::default(),
        },
        Some(RowKey::Replica(id)) => match state.cluster.get(id).map(|r| r.state) {
            Some(ReplicaState::Lost) => p.bad(),
            Some(ReplicaState::Stopping) => p.warn(),
            _ => Style::default(),
        },
        _ => Style::default(),
    };
    if state.is_stale() {
        style.patch(p.dim())
    } else {
        style
    }
}

/// Draws the table of the current view.
pub fn render(frame: &mut Frame<'_>, area: Rect, state: &State, p: Palette) {
    let height = usize::from(area.height.saturating_sub(2)); // header row + border
    let vi = state.vi();
    let selected = state.selected[vi];
    let total = state.frozen.as_ref().map_or(state.rows.len(), Vec::len);
    let offset = if selected < height {
        0
    } else {
        selected + 1 - height
    };
    let sort = state.sorts[vi];
    let shown = |i: &usize| is_shown(state.view, area.width, *i);
    let columns = state.view.columns().iter().enumerate();
    let header = Row::new(columns.filter(|(i, _)| shown(i)).map(|(i, c)| {
        let mark = match (sort.column == Some(i), sort.reverse) {
            (true, false) => " ▼",
            (true, true) => " ▲",
            _ => "",
        };
        Cell::from(format!("{c}{mark}"))
    }))
    .style(p.strong());
    let rows = (offset..total.min(offset + height)).map(|i| {
        let (cells, key) = match &state.frozen {
            Some(frozen) => (frozen[i].clone(), None),
            None => (state.cells(&state.rows[i]), Some(&state.rows[i])),
        };
        let style = row_style(state, key, &cells, p);
        let cells = cells.into_iter().enumerate().filter(|(i, _)| shown(i));
        let row = Row::new(cells.map(|(_, c)| Cell::from(Text::raw(c)))).style(style);
        if i == selected {
            row.style(style.patch(p.selected()))
        } else {
            row
        }
    });
    let widths = widths(state.view).into_iter().enumerate();
    let widths: Vec<Constraint> = widths.filter(|(i, _)| shown(i)).map(|(_, w)| w).collect();
    let table = Table::new(rows, widths).header(header).block(
        Block::default()
            .borders(Borders::TOP)
            .title(title(state, total)),
    );
    frame.render_widget(table, area);
}

/// The table's title: the view, its row count, its order, and whether Events follows the tail.
fn title(state: &State, total: usize) -> String {
    let sort = state.sorts[state.vi()];
    let sorted_by = match sort.column {
        None if state.view == View::Events => "oldest first".to_owned(),
        None if state.view == View::Workers => "default order: busy first, newest first".to_owned(),
        None if state.view == View::Replicas => {
            "default order: lost first, then by name".to_owned()
        }
        None => "default order: most stuck first".to_owned(),
        Some(c) => format!(
            "sorted by {}{}",
            state.view.columns()[c],
            if sort.reverse { ", reversed" } else { "" }
        ),
    };
    let follow = match state.view {
        View::Events if state.follow => " · following".to_owned(),
        View::Events => " · follow paused (G resumes)".to_owned(),
        View::Replicas => match (&state.cluster.error, state.cluster.as_of) {
            (Some(e), _) => format!(" · not listed: {e}"),
            (None, None) => " · asking the gateway…".to_owned(),
            (None, Some(_)) => String::new(),
        },
        _ => String::new(),
    };
    format!(
        " {} · {total} rows · {sorted_by}{follow} ",
        state.view.title()
    )
}
