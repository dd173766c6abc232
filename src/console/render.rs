//! Drawing: a pure function of [`State`].
//!
//! ```text
//! ┌──────────────────────────────────────────────────────────────────────┐
//! │ header: gateway, stream state + last-event age, clock, replicas live │
//! │ header: ✗ lost replicas, counts by state, stranded, badges           │
//! │ tabs: 1 Workers  2 Turns  …  6 Replicas               filter: /x/    │
//! │ table: only the visible rows of the current view                     │
//! │ …                                                                    │
//! │ footer: keys, or the filter/command being typed, or a notice         │
//! └──────────────────────────────────────────────────────────────────────┘
//! ```
//! Overlays (help, a worker's or turn's detail, an action's confirmation) draw over the table.

// `pub(super)`: the console's widget tests draw the regions one by one.
pub(super) mod chat;
pub(super) mod confirm;
pub(super) mod header;
pub(super) mod overlay;
pub(super) mod table;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Color, Modifier, Style};

use super::state::{Mode, State};

/// Styles, or none at all under `NO_COLOR`.
#[derive(Clone, Copy, Debug)]
pub struct Palette {
    /// Colours on.
    pub color: bool,
}

impl Palette {
    fn fg(self, c: Color) -> Style {
        if self.color {
            Style::default().fg(c)
        } else {
            Style::default()
        }
    }
    /// Failed, crashed, stranded.
    pub fn bad(self) -> Style {
        self.fg(Color::Red).add_modifier(Modifier::BOLD)
    }
    /// Slow, near a deadline, reconnecting.
    pub fn warn(self) -> Style {
        self.fg(Color::Yellow)
    }
    /// Healthy, live.
    pub fn good(self) -> Style {
        self.fg(Color::Green)
    }
    /// Ended, exited, stale.
    pub fn dim(self) -> Style {
        Style::default().add_modifier(Modifier::DIM)
    }
    /// Titles and the selected tab.
    pub fn strong(self) -> Style {
        Style::default().add_modifier(Modifier::BOLD)
    }
    /// The selected row.
    pub fn selected(self) -> Style {
        Style::default().add_modifier(Modifier::REVERSED)
    }
}

/// Draws the whole screen. Call [`State::prepare`] first.
pub fn render(frame: &mut Frame<'_>, state: &State, palette: Palette) {
    let [head, tabs, body, foot] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    header::render(frame, head, state, palette);
    header::tabs(frame, tabs, state, palette);
    if state.view == super::state::View::Chat {
        chat::render(frame, body, state, palette);
    } else {
        table::render(frame, body, state, palette);
    }
    header::footer(frame, foot, state, palette);
    match &state.mode {
        Mode::Help => overlay::help(frame, body, state, palette),
        Mode::Detail(d) => overlay::detail(frame, body, d, state, palette),
        Mode::Confirm(c) => confirm::render(frame, body, c, state.now, palette),
        _ => {}
    }
}

/// How many table rows fit in a terminal of `height` lines.
pub fn page_rows(height: u16) -> usize {
    usize::from(height.saturating_sub(2 + 1 + 1 + 1))
}
