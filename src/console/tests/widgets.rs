//! Widget level: one region's render function drawn alone into a buffer of a fixed size, and
//! its cells' text and style checked (the colour that doubles a word, the focus of a button).

use crossterm::event::KeyCode;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::{Frame, Terminal, backend::TestBackend};
use serde_json::json;

use super::{T0, code, fixture, key, send};
use crate::console::msg::{LinkMsg, Msg};
use crate::console::render::{Palette, confirm, header, table};
use crate::console::state::{Mode, RowKey, State};
use crate::ids::WorkerId;

pub(super) const COLOR: Palette = Palette { color: true };
pub(super) const NO_COLOR: Palette = Palette { color: false };

/// Draws one region filling a `w`×`h` buffer.
pub(super) fn draw(w: u16, h: u16, region: impl FnOnce(&mut Frame<'_>, Rect)) -> Buffer {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| region(f, f.area())).unwrap();
    t.backend().buffer().clone()
}

/// Line `y` as text, without trailing blanks.
pub(super) fn line(buf: &Buffer, y: u16) -> String {
    (0..buf.area.width)
        .map(|x| buf[(x, y)].symbol())
        .collect::<String>()
        .trim_end()
        .to_owned()
}

/// The style of `text` where it first appears; every cell of it must share that style.
pub(super) fn style_of(buf: &Buffer, text: &str) -> Style {
    for y in 0..buf.area.height {
        // Byte offset of each cell's symbol in the line, to map a match back to cells.
        let mut s = String::new();
        let mut starts = Vec::new();
        for x in 0..buf.area.width {
            starts.push(s.len());
            s.push_str(buf[(x, y)].symbol());
        }
        let Some(at) = s.find(text) else { continue };
        let first = starts.iter().position(|b| *b == at).unwrap();
        let last = starts.iter().rposition(|b| *b < at + text.len()).unwrap();
        let style = buf[(first as u16, y)].style();
        for x in first..=last {
            assert_eq!(
                buf[(x as u16, y)].style(),
                style,
                "{text:?} is styled unevenly"
            );
        }
        return style;
    }
    panic!(
        "{text:?} is not drawn:\n{}",
        (0..buf.area.height)
            .map(|y| line(buf, y))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// Whether a cell's style is exactly this foreground (`None`: the terminal's own) and these
/// modifiers.
pub(super) fn is(style: Style, fg: Option<Color>, modifier: Modifier) -> bool {
    style.fg == Some(fg.unwrap_or(Color::Reset)) && style.add_modifier == modifier
}

#[test]
fn header_shows_the_stranded_count_in_red_only_when_there_is_one() {
    let mut s = fixture();
    let buf = draw(120, 2, |f, area| header::render(f, area, &s, COLOR));
    assert!(
        line(&buf, 1).starts_with("stranded 0  stuck 1"),
        "{}",
        line(&buf, 1)
    );
    assert!(is(style_of(&buf, "stranded 0"), None, Modifier::DIM));
    assert!(is(
        style_of(&buf, "● live"),
        Some(Color::Green),
        Modifier::empty()
    ));

    send(
        &mut s,
        [Msg::Link(LinkMsg::Event(
            100,
            super::admin(
                "turn.stranded",
                json!({"turnId": "t-hung", "sessionId": "s-3", "reason": "worker_crashed", "timestamp": T0}),
            ),
        ))],
    );
    s.prepare();
    let buf = draw(120, 2, |f, area| header::render(f, area, &s, COLOR));
    assert!(line(&buf, 1).starts_with("stranded 1"), "{}", line(&buf, 1));
    let red = style_of(&buf, "stranded 1");
    assert!(is(red, Some(Color::Red), Modifier::BOLD), "{red:?}");

    // Without colour the word still says it, in bold.
    let buf = draw(120, 2, |f, area| header::render(f, area, &s, NO_COLOR));
    assert!(is(style_of(&buf, "stranded 1"), None, Modifier::BOLD));
}

#[test]
fn an_exited_workers_row_is_dim_and_says_so() {
    let s = fixture();
    // The table's title line, its column header, then the rows.
    let buf = draw(150, 7, |f, area| table::render(f, area, &s, COLOR));
    let rows: Vec<String> = (2..7).map(|y| line(&buf, y)).collect();
    let crash = rows.iter().find(|r| r.starts_with("w-crash")).unwrap();
    assert!(
        crash.contains("✗ exited") && crash.contains("137 SIGKILL"),
        "{crash}"
    );
    assert!(is(style_of(&buf, "w-crash"), None, Modifier::DIM));
    let hang = style_of(&buf, "w-hang");
    assert!(
        !hang.add_modifier.contains(Modifier::DIM),
        "a live worker is not dimmed: {hang:?}"
    );
}

#[test]
fn the_confirm_dialog_focuses_cancel_until_the_operator_moves_to_kill() {
    let mut s = fixture();
    s.selected[0] = s
        .rows
        .iter()
        .position(|r| *r == RowKey::Worker(WorkerId("w-hang".into())))
        .unwrap();
    send(&mut s, [key('x')]);
    let dialog = |s: &State| {
        let Mode::Confirm(c) = &s.mode else {
            panic!("no dialog")
        };
        draw(100, 16, |f, area| confirm::render(f, area, c, s.now, COLOR))
    };
    let buf = dialog(&s);
    let text: String = (0..16).map(|y| line(&buf, y) + "\n").collect();
    assert!(text.contains(" Kill worker w-hang? "), "{text}");
    assert!(
        text.contains("SIGKILL to worker w-hang generation 1, pid 103"),
        "{text}"
    );
    assert!(
        text.contains("Its in-flight turn t-hung (age 30s"),
        "{text}"
    );
    assert!(is(style_of(&buf, "> Keep it <"), None, Modifier::REVERSED));
    assert!(is(style_of(&buf, "  Kill worker  "), None, Modifier::DIM));

    send(&mut s, [code(KeyCode::Tab)]);
    let buf = dialog(&s);
    assert!(is(style_of(&buf, "  Keep it  "), None, Modifier::DIM));
    let kill = style_of(&buf, "> Kill worker <");
    assert!(
        is(kill, Some(Color::Red), Modifier::BOLD | Modifier::REVERSED),
        "{kill:?}"
    );
}

#[test]
fn the_footer_shows_an_error_notice_in_red_instead_of_the_keys() {
    let mut s = fixture();
    let buf = draw(100, 1, |f, area| header::footer(f, area, &s, COLOR));
    assert!(line(&buf, 0).starts_with("tab views  enter details  x kill"));
    s.notice = Some(("refused: the target changed".into(), true));
    let buf = draw(100, 1, |f, area| header::footer(f, area, &s, COLOR));
    assert_eq!(line(&buf, 0), "refused: the target changed");
    assert!(is(
        style_of(&buf, "refused: the target changed"),
        Some(Color::Red),
        Modifier::BOLD
    ));
}

#[test]
fn the_tab_line_marks_the_current_view() {
    let mut s = fixture();
    send(&mut s, [key('3')]);
    let buf = draw(120, 1, |f, area| header::tabs(f, area, &s, COLOR));
    assert!(
        line(&buf, 0).contains(" 2 Turns  [3 Stranded (0 open)]  4 Events"),
        "{}",
        line(&buf, 0)
    );
    assert!(is(
        style_of(&buf, "[3 Stranded (0 open)]"),
        None,
        Modifier::REVERSED
    ));
    assert!(is(style_of(&buf, "2 Turns"), None, Modifier::empty()));
}
