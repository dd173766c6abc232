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

/// Whether a column's own order puts the largest value first (ENDED AT: the latest first).
fn descending_by_default(view: View, column: usize) -> bool {
    matches!((view, column), (View::Turns | View::Stranded, 8))
}

/// The columns that hold ids, cut from their start when space is short.
fn id_columns(view: View) -> &'static [usize] {
    match view {
        View::Workers => &[0, 7],
        View::Turns | View::Stranded => &[0, 6],
        _ => &[],
    }
}

/// Columns sized to what they hold on screen (the header, with room for a sort mark, or the
/// widest visible cell), the last one taking the rest; when that does not fit `width`, the id
/// columns give way first, down to 10 columns each, cut from their start by [`tail`].
fn fitted(
    (view, sorted): (View, Option<usize>),
    width: u16,
    rows: &[(usize, Vec<String>, Option<&RowKey>)],
) -> Vec<Constraint> {
    let columns = view.columns();
    let mut w: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| c.chars().count() + if sorted == Some(i) { 2 } else { 0 })
        .collect();
    for (_, cells, _) in rows {
        for (i, cell) in cells.iter().enumerate().take(w.len()) {
            w[i] = w[i].max(cell.chars().count());
        }
    }
    // Gaps of one column between cells.
    let mut over = (w.iter().sum::<usize>() + w.len()).saturating_sub(usize::from(width));
    for &c in id_columns(view) {
        let give = over.min(w[c].saturating_sub(10));
        w[c] -= give;
        over -= give;
    }
    let last = w.len() - 1;
    w.iter()
        .enumerate()
        .map(|(i, n)| {
            let n = u16::try_from(*n).unwrap_or(u16::MAX);
            if i == last {
                Constraint::Min(n)
            } else {
                Constraint::Length(n)
            }
        })
        .collect()
}

/// `text` cut to `width` columns from its start (`…` and its end), when longer.
fn tail(text: &str, width: usize) -> String {
    let n = text.chars().count();
    if n <= width || width < 2 {
        return text.to_owned();
    }
    let keep: String = text.chars().skip(n - (width - 1)).collect();
    format!("…{keep}")
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
        // As k9s: ▲ the values grow down the column, ▼ they shrink.
        let descending = descending_by_default(state.view, i) != sort.reverse;
        let mark = match (sort.column == Some(i), descending) {
            (true, false) => " ▲",
            (true, true) => " ▼",
            _ => "",
        };
        Cell::from(format!("{c}{mark}"))
    }))
    .style(p.strong());
    let visible: Vec<(usize, Vec<String>, Option<&RowKey>)> = (offset..total.min(offset + height))
        .map(|i| match &state.frozen {
            Some(frozen) => (i, frozen[i].clone(), None),
            None => (i, state.cells(&state.rows[i]), Some(&state.rows[i])),
        })
        .collect();
    let widths = match state.view {
        View::Workers | View::Turns | View::Stranded => {
            fitted((state.view, sort.column), area.width, &visible)
        }
        _ => widths(state.view),
    };
    let id_widths: Vec<usize> = widths
        .iter()
        .enumerate()
        .map(|(c, w)| match w {
            Constraint::Length(w) if id_columns(state.view).contains(&c) => usize::from(*w),
            _ => usize::MAX,
        })
        .collect();
    let id_width = |c: usize| id_widths.get(c).copied().unwrap_or(usize::MAX);
    let rows = visible.into_iter().map(|(i, cells, key)| {
        let style = row_style(state, key, &cells, p);
        let cells = cells.into_iter().enumerate().filter(|(i, _)| shown(i));
        let row = Row::new(cells.map(|(c, text)| {
            // Ids share their front (a time prefix): cut them from the distinguishing end.
            let text = tail(&text, id_width(c));
            Cell::from(Text::raw(text))
        }))
        .style(style);
        if i == selected {
            row.style(style.patch(p.selected()))
        } else {
            row
        }
    });
    let widths = widths.into_iter().enumerate();
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
        None if state.view == View::Stranded => {
            "default order: open first, then the most recently resolved".to_owned()
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
    let rows = if state.filter.is_some() && state.frozen.is_none() {
        format!("{total} of {} rows", state.unfiltered)
    } else {
        format!("{total} rows")
    };
    format!(" {} · {rows} · {sorted_by}{follow} ", state.view.title())
}
