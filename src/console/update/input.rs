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
        Mode::Filter(input) => match edit(input, key.code) {
            Line::Entered(raw) => {
                state.mode = Mode::Normal;
                apply_filter(state, &raw);
            }
            Line::Dropped => state.mode = Mode::Normal,
            Line::Typing => {}
        },
        Mode::Command(input) => match edit(input, key.code) {
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
        Mode::Normal => {
            if let Some(b) = binding(state.view, key, state.readonly) {
                return act(state, b.action);
            }
        }
    }
    Vec::new()
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

/// A key on a line being typed (a filter, a command).
fn edit(input: &mut String, code: KeyCode) -> Line {
    match code {
        KeyCode::Enter => return Line::Entered(std::mem::take(input)),
        KeyCode::Esc => return Line::Dropped,
        KeyCode::Backspace => drop(input.pop()),
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

fn run_command(state: &mut State, cmd: &str) -> Vec<Effect> {
    let view = match cmd {
        "q" | "q!" | "quit" => return act(state, Action::Quit),
        "workers" | "w" => View::Workers,
        "turns" | "t" => View::Turns,
        "stranded" | "s" => View::Stranded,
        "events" | "e" => View::Events,
        "chat" | "c" => View::Chat,
        "replicas" | "r" => View::Replicas,
        other => {
            state.notice = Some((
                format!(
                    "unknown command `:{other}` (try :workers :turns :stranded :events :replicas :q)"
                ),
                true,
            ));
            return Vec::new();
        }
    };
    act(state, Action::Goto(view))
}
