//! Issue 17, the console in an incident: one state-level or screen test per numbered item.

use serde_json::json;

use super::{T0, admin, fixture, key, send};
use crate::console::msg::{LinkMsg, Msg};
use crate::console::state::{RowKey, View};

/// Item 3: the selection is a row, not a row number: it stays on its worker while rows move.
#[test]
fn the_selection_stays_on_its_row_while_rows_move() {
    let mut s = fixture();
    assert_eq!(s.view, View::Workers);
    send(&mut s, [key('j'), key('j')]);
    s.prepare();
    let held = s.selected_row().cloned().unwrap();
    let before = s.rows.iter().position(|r| *r == held).unwrap();
    // Two newer workers appear: they sort above the held one.
    for (i, w) in ["w-new1", "w-new2"].into_iter().enumerate() {
        let spawned = json!({"workerId": w, "generation": 1, "pid": 200 + i, "agentId": "echo",
            "sessionId": format!("s-n{i}"), "timestamp": T0});
        let ready = json!({"workerId": w, "generation": 1, "timestamp": T0});
        send(
            &mut s,
            [
                Msg::Link(LinkMsg::Event(
                    100 + 2 * i as i64,
                    admin("worker.spawned", spawned),
                )),
                Msg::Link(LinkMsg::Event(
                    101 + 2 * i as i64,
                    admin("worker.ready", ready),
                )),
            ],
        );
    }
    s.prepare();
    let after = s.rows.iter().position(|r| *r == held).unwrap();
    assert_ne!(before, after, "the rows moved: {:?}", s.rows);
    assert_eq!(s.selected_row(), Some(&held));
    // A row that goes away leaves the selection where it was, in range.
    assert!(matches!(held, RowKey::Worker(_)));
}
