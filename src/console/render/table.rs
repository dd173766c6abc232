//! The current view as a table: only the rows that fit are built.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::Style;
use ratatui::text::Text;
use ratatui::widgets::{Block, Borders, Cell, Row, Table};

use super::Palette;
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
            c(8),
            c(36),
            Constraint::Min(16),
        ],
        View::Turns | View::Stranded => {
            vec![c(36), c(24), c(14), c(8), c(11), c(10), Constraint::Min(18)]
        }
        View::Events => vec![c(7), c(13), c(22), Constraint::Min(30)],
        View::Chat => Vec::new(),
    }
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
    let header = Row::new(state.view.columns().iter().enumerate().map(|(i, c)| {
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
        let row = Row::new(cells.into_iter().map(|c| Cell::from(Text::raw(c)))).style(style);
        if i == selected {
            row.style(style.patch(p.selected()))
        } else {
            row
        }
    });
    let table = Table::new(rows, widths(state.view)).header(header).block(
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
        None => "default order: most stuck first".to_owned(),
        Some(c) => format!(
            "sorted by {}{}",
            state.view.columns()[c],
            if sort.reverse { ", reversed" } else { "" }
        ),
    };
    let follow = if state.view == View::Events {
        if state.follow {
            " · following"
        } else {
            " · follow paused (G resumes)"
        }
    } else {
        ""
    };
    format!(
        " {} · {total} rows · {sorted_by}{follow} ",
        state.view.title()
    )
}
