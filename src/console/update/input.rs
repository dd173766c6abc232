//! A key, read by the mode it arrives in: a line being typed (filter, command), the dialog
//! (`action`'s), a pane, the Chat view's input (`chat`'s), or the binding table.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::navigation::{act, close_dialog};
use crate::console::action;
use crate::console::chat;
use crate::console::keys::{Action, binding};
use crate::console::msg::Effect;
use crate::console::state::{Filter, Mode, State, View};

/// What a key did to a line being typed.
enum Line {
    /// Still typing.
    Typing,
    /// Enter: the line as typed.
    Entered(String),
    /// Esc: dropped.
    Dropped,
}

/// Applies a key.
pub(super) fn on_key(state: &mut State, key: KeyEvent) -> Vec<Effect> {
    if key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL) {
        state.quit = true;
        return vec![Effect::Quit];
    }
    if matches!(state.mode, Mode::Detail(_)) && scroll(state, key.code) {
        return Vec::new();
    }
    match &mut state.mode {
        Mode::Filter(input) => match edit(input, key) {
            Line::Entered(raw) => {
                state.mode = Mode::Normal;
                apply_filter(state, &raw);
            }
            Line::Dropped => state.mode = Mode::Normal,
            Line::Typing => {}
        },
        Mode::Command(input) => match edit(input, key) {
            Line::Entered(cmd) => {
                state.mode = Mode::Normal;
                return run_command(state, cmd.trim());
            }
            Line::Dropped => state.mode = Mode::Normal,
            Line::Typing => {}
        },
        Mode::Confirm(c) => {
            let thaw = c.froze;
            if let Some(effects) = action::on_key(c, &mut state.pending, &mut state.notice, key) {
                close_dialog(state, thaw);
                return effects;
            }
        }
        Mode::Detail(_) => {
            let b = binding(state.view, key, false).map(|b| b.action);
            if let Some(a @ (Action::Kill | Action::CancelTurn)) = b {
                if state.readonly {
                    state.notice = Some((READONLY.into(), true));
                    return Vec::new();
                }
                return act(state, a);
            }
            close_pane(state, key);
        }
        Mode::Help => close_pane(state, key),
        Mode::Normal if state.view == View::Chat => match key.code {
            KeyCode::Tab => return act(state, Action::NextView),
            KeyCode::BackTab => return act(state, Action::PrevView),
            KeyCode::Esc => return act(state, Action::Goto(View::Workers)),
            _ => return chat::on_key(&mut state.chat, &mut state.notice, state.now, key),
        },
        // Esc clears the view's filter (k9s).
        Mode::Normal if key.code == KeyCode::Esc && state.filter.is_some() => {
            apply_filter(state, "");
        }
        Mode::Normal => {
            if let Some(b) = binding(state.view, key, state.readonly) {
                return act(state, b.action);
            }
        }
    }
    Vec::new()
}

/// `:sort COLUMN`: sorts by the column whose name starts with `COLUMN` (case aside; `-` before
/// it reverses; nothing: the default order), without cycling through the others.
fn sort_by(state: &mut State, column: &str) {
    let (reverse, name) = column
        .strip_prefix('-')
        .map_or((false, column), |c| (true, c.trim()));
    let vi = state.vi();
    if name.is_empty() {
        state.sorts[vi] = crate::console::state::Sort::default();
        state.rows_dirty = true;
        return;
    }
    let columns = state.view.columns();
    let upper = name.to_uppercase();
    // An exact name wins (`age` is AGE, not AGENT); else a unique prefix.
    let exact: Vec<usize> = (0..columns.len())
        .filter(|i| columns[*i] == upper)
        .collect();
    let found: Vec<usize> = if exact.is_empty() {
        (0..columns.len())
            .filter(|i| columns[*i].starts_with(&upper))
            .collect()
    } else {
        exact
    };
    match (state.view, found.as_slice()) {
        (View::Events | View::Chat, _) => {
            state.notice = Some(("this view keeps its own order".into(), false));
        }
        (_, [i]) => {
            state.sorts[vi] = crate::console::state::Sort {
                column: Some(*i),
                reverse,
            };
            state.rows_dirty = true;
        }
        _ => {
            state.notice = Some((
                format!(
                    "no single column starts with `{name}`: {}",
                    columns.join(", ")
                ),
                true,
            ));
        }
    }
}

/// Why `x` and `c` do nothing under a read-only token.
pub(super) const READONLY: &str =
    "read-only: this token may not kill or cancel (attach with an operator token to act)";

/// Scrolls the detail pane: `j`/`k` and the arrows a line, page up/down a screen, `g`/`G` the
/// ends (the pane clamps what is past its end). Whether the key scrolled.
fn scroll(state: &mut State, code: KeyCode) -> bool {
    let page = u16::try_from(state.page.max(1)).unwrap_or(u16::MAX);
    let s = &mut state.detail_scroll;
    *s = match code {
        KeyCode::Char('j') | KeyCode::Down => s.saturating_add(1),
        KeyCode::Char('k') | KeyCode::Up => s.saturating_sub(1),
        KeyCode::PageDown => s.saturating_add(page),
        KeyCode::PageUp => s.saturating_sub(page),
        KeyCode::Char('g') | KeyCode::Home => 0,
        KeyCode::Char('G') | KeyCode::End => u16::MAX,
        _ => return false,
    };
    true
}

/// A key on a line being typed (a filter, a command), with the readline keys a shell user's
/// fingers know: `ctrl-u` clears, `ctrl-w` deletes a word; other control keys insert nothing.
fn edit(input: &mut String, key: KeyEvent) -> Line {
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    match key.code {
        KeyCode::Enter => return Line::Entered(std::mem::take(input)),
        KeyCode::Esc => return Line::Dropped,
        KeyCode::Backspace => drop(input.pop()),
        KeyCode::Char('u') if ctrl => input.clear(),
        KeyCode::Char('w') if ctrl => {
            let kept = input.trim_end().len();
            let start = input[..kept]
                .rfind(char::is_whitespace)
                .map_or(0, |i| i + 1);
            input.truncate(start);
        }
        KeyCode::Char(_) if ctrl => {}
        KeyCode::Char(c) => input.push(c),
        _ => {}
    }
    Line::Typing
}

/// Help and detail panes close on esc, `q`, `?` or backspace.
fn close_pane(state: &mut State, key: KeyEvent) {
    if matches!(
        key.code,
        KeyCode::Esc | KeyCode::Char('q' | '?') | KeyCode::Backspace
    ) {
        state.mode = Mode::Normal;
    }
}

fn apply_filter(state: &mut State, raw: &str) {
    if raw.is_empty() {
        state.filter = None;
        state.notice = Some(("filter cleared".into(), false));
    } else {
        match Filter::parse(raw) {
            Ok(f) => {
                state.filter = Some(f);
                state.notice = None;
            }
            Err(e) => state.notice = Some((e, true)),
        }
    }
    state.rows_dirty = true;
}

/// The `:` commands; a unique prefix of one runs it (`:tu`, `:rep`), as in k9s.
const COMMANDS: [(&str, Option<View>); 7] = [
    ("workers", Some(View::Workers)),
    ("turns", Some(View::Turns)),
    ("stranded", Some(View::Stranded)),
    ("events", Some(View::Events)),
    ("chat", Some(View::Chat)),
    ("replicas", Some(View::Replicas)),
    ("quit", None),
];

fn run_command(state: &mut State, cmd: &str) -> Vec<Effect> {
    if let Some(column) = cmd.strip_prefix("sort").map(str::trim) {
        sort_by(state, column);
        return Vec::new();
    }
    let found: Vec<_> = match cmd {
        // The one-letter forms stay: `:q` quits, `:s` is Stranded, `:t` Turns.
        "q" | "q!" => vec![COMMANDS[6]],
        "s" => vec![COMMANDS[2]],
        "t" => vec![COMMANDS[1]],
        _ if cmd.is_empty() => Vec::new(),
        _ => COMMANDS
            .iter()
            .copied()
            .filter(|(n, _)| n.starts_with(cmd))
            .collect(),
    };
    match found.as_slice() {
        [(_, Some(view))] => act(state, Action::Goto(*view)),
        [(_, None)] => act(state, Action::Quit),
        [] => {
            state.notice = Some((
                format!(
                    "unknown command `:{cmd}` (try :workers :turns :stranded :events :chat :replicas :q)"
                ),
                true,
            ));
            Vec::new()
        }
        many => {
            let names: Vec<String> = many.iter().map(|(n, _)| format!(":{n}")).collect();
            state.notice = Some((format!("`:{cmd}` could be {}", names.join(" or ")), true));
            Vec::new()
        }
    }
}
