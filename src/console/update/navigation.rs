//! What a bound key does: switch views, move the selection, sort, filter, freeze, drill down,
//! reconnect, and open an operator action's dialog on what is focused (the dialog's own keys
//! are `action`'s).

use crate::console::action::{self, Confirm};
use crate::console::keys::Action;
use crate::console::model::Note;
use crate::console::msg::{Effect, Target};
use crate::console::state::{Detail, Mode, RowKey, State, View};

/// Shows `view`: each view keeps its own filter; a frozen table thaws, and says so.
fn set_view(state: &mut State, view: View) {
    if state.view != view {
        let old = state.vi();
        state.filters[old] = state.filter.take();
        state.view = view;
        state.filter = state.filters[state.vi()].take();
        if state.frozen.take().is_some() {
            state.notice = Some(("unfrozen: a freeze holds one view's rows".into(), false));
        }
        state.rows_dirty = true;
    }
}

/// Does what a bound key means.
pub(super) fn act(state: &mut State, action: Action) -> Vec<Effect> {
    match action {
        Action::Quit => {
            state.quit = true;
            return vec![Effect::Quit];
        }
        Action::NextView => set_view(state, state.view.step(true)),
        Action::PrevView => set_view(state, state.view.step(false)),
        Action::Goto(v) => set_view(state, v),
        Action::Down
        | Action::Up
        | Action::PageDown
        | Action::PageUp
        | Action::Top
        | Action::Bottom => move_selection(state, action),
        Action::Open => return open(state),
        Action::Filter => {
            state.mode = Mode::Filter(
                state
                    .filter
                    .as_ref()
                    .map(|f| f.raw.clone())
                    .unwrap_or_default(),
            )
        }
        Action::Command => state.mode = Mode::Command(String::new()),
        Action::SortBy => state.mode = Mode::Command("sort ".into()),
        Action::Help => state.mode = Mode::Help,
        Action::Freeze => freeze(state),
        Action::Sort | Action::Reverse if state.view == View::Events => {
            state.notice = Some((
                "Events keep the log's order (oldest first, following the tail)".into(),
                false,
            ));
        }
        Action::Sort => next_sort(state),
        Action::Reverse => {
            state.sorts[state.vi()].reverse ^= true;
            state.rows_dirty = true;
        }
        Action::Kill => open_kill(state),
        Action::CancelTurn => open_cancel(state),
        Action::ToggleEnded => {
            state.show_ended ^= true;
            state.rows_dirty = true;
        }
        Action::Reconnect => {
            state
                .model
                .note(state.now, Note::Console, "reconnecting (ctrl-r)".into());
            return vec![Effect::Reconnect { fresh: false }];
        }
    }
    Vec::new()
}

/// Moves the selection; in the Events view, moving up pauses following the tail and going to
/// the bottom resumes it.
fn move_selection(state: &mut State, action: Action) {
    let vi = state.vi();
    let len = state.frozen.as_ref().map_or(state.rows.len(), Vec::len);
    let last = len.saturating_sub(1);
    let sel = &mut state.selected[vi];
    let events = state.view == View::Events;
    match action {
        Action::Down => *sel = (*sel + 1).min(last),
        Action::Up => {
            *sel = sel.saturating_sub(1);
            state.follow &= !events;
        }
        Action::PageDown => *sel = (*sel + state.page.max(1)).min(last),
        Action::PageUp => {
            *sel = sel.saturating_sub(state.page.max(1));
            state.follow &= !events;
        }
        Action::Top => {
            *sel = 0;
            state.follow &= !events;
        }
        Action::Bottom => {
            *sel = last;
            state.follow |= events;
        }
        _ => {}
    }
}

/// Sorts by the next column, and after the last one by the view's default order.
fn next_sort(state: &mut State) {
    let n = state.view.columns().len();
    let s = &mut state.sorts[state.vi()];
    s.column = match s.column {
        None => Some(0),
        Some(c) if c + 1 < n => Some(c + 1),
        Some(_) => None,
    };
    state.rows_dirty = true;
}

/// Drills down into the selected worker or turn: its detail pane, loading.
fn open(state: &mut State) -> Vec<Effect> {
    let effect = match state.selected_row() {
        Some(RowKey::Worker(id)) => Effect::LoadWorker(id.clone()),
        Some(RowKey::Turn(id)) => Effect::LoadTurn(id.clone()),
        // An event opens the turn it is about, else its worker.
        Some(RowKey::Event(i)) => {
            let line = state.model.events.get(*i);
            match (
                line.and_then(|e| e.turn.clone()),
                line.and_then(|e| e.worker.clone()),
            ) {
                (Some(turn), _) => Effect::LoadTurn(turn),
                (None, Some(worker)) => Effect::LoadWorker(worker),
                (None, None) => {
                    state.notice = Some(("this line names no turn or worker".into(), false));
                    return Vec::new();
                }
            }
        }
        _ => return Vec::new(),
    };
    let what = match &effect {
        Effect::LoadWorker(id) => format!("worker {id}"),
        Effect::LoadTurn(id) => format!("turn {id}"),
        _ => String::new(),
    };
    state.mode = Mode::Detail(Detail::Loading(what));
    state.detail_scroll = 0;
    state.detail_worker = None;
    vec![effect]
}

/// Freezes the current rows, or thaws them.
fn freeze(state: &mut State) {
    if state.frozen.take().is_some() {
        state.rows_dirty = true;
        return;
    }
    state.freeze_rows();
}

/// Opens the kill dialog for the selected worker (or the worker of the turn in the detail).
fn open_kill(state: &mut State) {
    let worker = match (&state.mode, state.selected_row()) {
        (Mode::Detail(Detail::Worker(d)), _) => Some(d.worker.worker_id.clone()),
        (Mode::Detail(Detail::Turn(d)), _) => d.turn.worker_id.clone(),
        (Mode::Normal, Some(RowKey::Worker(w))) => Some(w.clone()),
        (Mode::Normal, Some(RowKey::Turn(t))) => {
            state.model.turns.get(t).and_then(|t| t.worker.clone())
        }
        _ => None,
    };
    let target = worker.and_then(|w| action::kill_target(&state.model, &w));
    open_dialog(state, target, "nothing to kill here: pick a live worker");
}

/// Opens the cancel dialog for the selected turn (or the turn in the detail).
fn open_cancel(state: &mut State) {
    let turn = match (&state.mode, state.selected_row()) {
        (Mode::Detail(Detail::Turn(d)), _) => Some(d.turn.turn_id.clone()),
        (Mode::Normal, Some(RowKey::Turn(t))) => Some(t.clone()),
        _ => None,
    };
    let target = turn.and_then(|t| action::cancel_target(&state.model, &t));
    open_dialog(
        state,
        target,
        "nothing to cancel here: pick a turn in flight",
    );
}

/// Opens the dialog on `target`, or says there is `nothing` to act on.
fn open_dialog(state: &mut State, target: Option<Target>, nothing: &str) {
    let Some(target) = target else {
        state.notice = Some((nothing.to_owned(), true));
        return;
    };
    // While the dialog is open the table behind it does not move.
    let froze = state.frozen.is_none();
    if froze {
        state.freeze_rows();
    }
    state.mode = Mode::Confirm(Box::new(Confirm::new(target, froze)));
}

/// Closes the dialog, thawing the table if opening it froze it.
pub(super) fn close_dialog(state: &mut State, thaw: bool) {
    state.mode = Mode::Normal;
    if thaw {
        state.frozen = None;
        state.rows_dirty = true;
    }
}
