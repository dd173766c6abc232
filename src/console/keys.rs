//! Key bindings: one table for the tables' normal mode. The help overlay, the footer and the
//! README's key table are this table; nothing else maps keys (the Chat view's input line and
//! the dialogs take typed text, see `chat` and `action`).

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::state::View;

/// What a key does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Leave.
    Quit,
    /// Next view.
    NextView,
    /// Previous view.
    PrevView,
    /// A given view.
    Goto(View),
    /// Selection down.
    Down,
    /// Selection up (pauses follow in Events).
    Up,
    /// A page down.
    PageDown,
    /// A page up.
    PageUp,
    /// First row.
    Top,
    /// Last row (resumes follow in Events).
    Bottom,
    /// Drill down.
    Open,
    /// Type a filter.
    Filter,
    /// Type a command.
    Command,
    /// Show help.
    Help,
    /// Freeze or unfreeze the rows.
    Freeze,
    /// Sort by the next column.
    Sort,
    /// Reverse the sort.
    Reverse,
    /// Sort by a named column (`:sort NAME`).
    SortBy,
    /// Reconnect now.
    Reconnect,
    /// Turns view: include ended turns.
    ToggleEnded,
    /// Kill the selected worker (operators only).
    Kill,
    /// Cancel the selected turn (operators only).
    CancelTurn,
}

/// One binding.
pub struct Binding {
    /// The key.
    pub code: KeyCode,
    /// Its modifiers (exact).
    pub mods: KeyModifiers,
    /// What it does.
    pub action: Action,
    /// How help shows the key ("" for an alias listed with another).
    pub label: &'static str,
    /// What help says it does.
    pub help: &'static str,
}

impl Binding {
    /// An operator action: absent in read-only mode.
    pub fn is_action(&self) -> bool {
        matches!(self.action, Action::Kill | Action::CancelTurn)
    }
}

#[rustfmt::skip] // one binding a line reads as the table it is
const fn b(code: KeyCode, mods: KeyModifiers, action: Action, label: &'static str, help: &'static str) -> Binding {
    Binding { code, mods, action, label, help }
}

const N: KeyModifiers = KeyModifiers::NONE;
const C: KeyModifiers = KeyModifiers::CONTROL;
const S: KeyModifiers = KeyModifiers::SHIFT;

/// The normal-mode table, in the order help lists it.
#[rustfmt::skip]
pub const NORMAL: &[Binding] = &[
    b(KeyCode::Tab, N, Action::NextView, "tab", "next view"),
    b(KeyCode::BackTab, S, Action::PrevView, "shift-tab", "previous view"),
    b(KeyCode::BackTab, N, Action::PrevView, "", ""),
    b(KeyCode::Char('1'), N, Action::Goto(View::Workers), "1", "Workers"),
    b(KeyCode::Char('2'), N, Action::Goto(View::Turns), "2", "Turns in flight"),
    b(KeyCode::Char('3'), N, Action::Goto(View::Stranded), "3", "Stranded turns"),
    b(KeyCode::Char('4'), N, Action::Goto(View::Events), "4", "Events (admin log)"),
    b(KeyCode::Char('5'), N, Action::Goto(View::Chat), "5", "Chat: ←/→ agent, type, enter sends, ctrl-n new session, esc leaves"),
    b(KeyCode::Char('6'), N, Action::Goto(View::Replicas), "6", "Replicas: the gateways sharing the store (✗ LOST ones first)"),
    b(KeyCode::Down, N, Action::Down, "↓ j", "down"),
    b(KeyCode::Char('j'), N, Action::Down, "", ""),
    b(KeyCode::Up, N, Action::Up, "↑ k", "up (Events: pauses follow)"),
    b(KeyCode::Char('k'), N, Action::Up, "", ""),
    b(KeyCode::PageDown, N, Action::PageDown, "pgdn ctrl-d", "page down"),
    b(KeyCode::Char('d'), C, Action::PageDown, "", ""),
    b(KeyCode::PageUp, N, Action::PageUp, "pgup ctrl-u", "page up"),
    b(KeyCode::Char('u'), C, Action::PageUp, "", ""),
    b(KeyCode::Char('g'), N, Action::Top, "g home", "first row"),
    b(KeyCode::Home, N, Action::Top, "", ""),
    b(KeyCode::Char('G'), S, Action::Bottom, "G end", "last row (Events: resume follow)"),
    b(KeyCode::Char('G'), N, Action::Bottom, "", ""),
    b(KeyCode::End, N, Action::Bottom, "", ""),
    b(KeyCode::Enter, N, Action::Open, "enter", "details: a worker's stderr, exits, turns; a turn's timeline"),
    b(KeyCode::Char('/'), N, Action::Filter, "/", "filter rows (regex; !regex inverts; empty clears)"),
    b(KeyCode::Char(':'), N, Action::Command, ":", "command: :workers :turns :stranded :events :chat :replicas :q"),
    b(KeyCode::Char(':'), S, Action::Command, "", ""),
    b(KeyCode::Char('s'), N, Action::Sort, "s", "sort by the next column (marked ▼); default: most stuck first"),
    b(KeyCode::Char('S'), S, Action::Reverse, "S", "reverse the sort"),
    b(KeyCode::Char('o'), N, Action::SortBy, "o", "sort by a column you name (:sort age, :sort -age reverses)"),
    b(KeyCode::Char('S'), N, Action::Reverse, "", ""),
    b(KeyCode::Char('a'), N, Action::ToggleEnded, "a", "Turns: also show ended turns (in flight only by default)"),
    b(KeyCode::Char('f'), N, Action::Freeze, "f", "freeze / unfreeze the rows (data keeps arriving)"),
    b(KeyCode::Char('x'), N, Action::Kill, "x ctrl-k", "kill the selected worker (or the selected turn's worker), after confirming"),
    b(KeyCode::Char('k'), C, Action::Kill, "", ""),
    b(KeyCode::Char('c'), N, Action::CancelTurn, "c", "cancel the selected turn, after confirming"),
    b(KeyCode::Char('r'), C, Action::Reconnect, "ctrl-r", "reconnect now"),
    b(KeyCode::Char('?'), N, Action::Help, "?", "this help"),
    b(KeyCode::Char('?'), S, Action::Help, "", ""),
    b(KeyCode::Char('q'), N, Action::Quit, "q ctrl-c", "quit"),
];

/// The footer's reminder of the main keys, and whether each is an action.
pub const FOOTER: &[(&str, &str, bool)] = &[
    // Only the keys that do something in a view are offered there (`offered`).
    ("tab", "views", false),
    ("enter", "details", false),
    ("x", "kill", true),
    ("c", "cancel", true),
    ("/", "filter", false),
    (":", "command", false),
    ("f", "freeze", false),
    ("?", "help", false),
    ("q", "quit", false),
];

/// Whether a footer key does something in `view`: `enter` opens rows of every table but
/// Replicas', `x` a worker (Workers, or a turn's worker), `c` a turn.
pub fn offered(view: View, key: &str) -> bool {
    match key {
        "enter" => !matches!(view, View::Replicas),
        "x" => matches!(view, View::Workers | View::Turns | View::Stranded),
        "c" => matches!(view, View::Turns | View::Stranded),
        _ => true,
    }
}

/// The binding for a key in a view, if any; actions are absent when read-only.
pub fn binding(_view: View, key: KeyEvent, readonly: bool) -> Option<&'static Binding> {
    NORMAL
        .iter()
        .find(|b| b.code == key.code && b.mods == key.modifiers && !(readonly && b.is_action()))
}

/// The help lines: one per labelled binding; actions are absent when read-only.
pub fn help(readonly: bool) -> impl Iterator<Item = (&'static str, &'static str)> {
    NORMAL
        .iter()
        .filter(move |b| !(b.label.is_empty() || readonly && b.is_action()))
        .map(|b| (b.label, b.help))
}
