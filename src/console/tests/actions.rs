//! Console actions at state level: the dialog, its snapshot, its confirmation; read-only; chat.

use crossterm::event::KeyCode;
use serde_json::json;

use super::{T0, code, ctrl, fixture, key, screen, send, typed};
use crate::api::session::{Completion, Delta};
use crate::api::{Outcome, SessionEvent};
use crate::console::chat::ReplyEnd;
use crate::console::msg::{ChatMsg, ChatSession, Effect, LinkMsg, Msg, Target};
use crate::console::state::{Mode, RowKey, State, View};
use crate::ids::{MessageId, TurnId, WorkerId};

fn ev(kind: &str, seq: i64, mut d: serde_json::Value) -> Msg {
    d["timestamp"] = json!(T0);
    Msg::Link(LinkMsg::Event(seq, super::admin(kind, d)))
}

fn output(text: &str) -> SessionEvent {
    SessionEvent::Output(Delta {
        content: text.into(),
        message_id: MessageId("m-chat".into()),
        turn_id: TurnId("t-chat".into()),
        timestamp: T0,
    })
}

fn select_worker(s: &mut State, id: &str) {
    s.prepare();
    s.selected[0] = s
        .rows
        .iter()
        .position(|r| *r == RowKey::Worker(WorkerId(id.into())))
        .unwrap();
}

fn hang_target() -> Target {
    let turn = Some((
        TurnId("t-hung".into()),
        T0 - 30_000,
        crate::ids::SessionId("s-3".into()),
    ));
    Target::Kill {
        worker: WorkerId("w-hang".into()),
        generation: 1,
        pid: 103,
        turn,
    }
}

#[test]
fn the_dialog_acts_on_its_snapshot_after_a_resort() {
    let mut s = fixture();
    select_worker(&mut s, "w-hang");
    send(&mut s, [key('x')]);
    let Mode::Confirm(c) = &s.mode else {
        panic!("no dialog")
    };
    assert_eq!(c.target, hang_target());
    assert!(
        s.frozen.is_some(),
        "the table behind the dialog does not move"
    );
    // Meanwhile: a new busy worker sorts first (a dialog whose target ended says so and
    // turns its action off: `incident::a_dialog_follows_its_target`).
    send(
        &mut s,
        [ev(
            "worker.spawned",
            100,
            json!({"workerId": "w-new", "generation": 1, "pid": 200, "agentId": "echo", "sessionId": "s-9"}),
        )],
    );
    let effects = send(&mut s, [code(KeyCode::Tab), code(KeyCode::Enter)]);
    assert_eq!(
        effects,
        [Effect::Act {
            target: hang_target(),
            reason: "from the console".into()
        }],
        "generation 1, pid 103, as snapshotted"
    );
    assert!(
        s.frozen.is_none(),
        "closing the dialog thaws the table it froze"
    );
    send(
        &mut s,
        [Msg::ActionAnswer(Err(
            "the target changed, nothing was done (worker w-hang is now generation 2)".into(),
        ))],
    );
    let (text, error) = s.notice.clone().unwrap();
    assert!(
        error && text.starts_with("refused: the target changed"),
        "{text}"
    );
    assert!(s.pending.is_none());
}

#[test]
fn success_only_when_the_gateway_confirms() {
    let mut s = fixture();
    select_worker(&mut s, "w-hang");
    send(&mut s, [key('x')]);
    typed(&mut s, "stuck for 30s");
    let effects = send(&mut s, [code(KeyCode::Right), code(KeyCode::Enter)]);
    assert_eq!(
        effects,
        [Effect::Act {
            target: hang_target(),
            reason: "stuck for 30s".into()
        }]
    );
    send(&mut s, [Msg::ActionAnswer(Ok(()))]);
    assert!(
        s.notice
            .as_ref()
            .unwrap()
            .0
            .contains("waiting for the gateway"),
        "accepted is not done"
    );
    send(
        &mut s,
        [ev(
            "turn.failed",
            200,
            json!({"turnId": "t-hung", "sessionId": "s-hang", "code": "cancelled_by_operator", "error": "cancelled"}),
        )],
    );
    assert!(
        s.pending.is_some(),
        "the turn ending is not the worker's exit"
    );
    send(
        &mut s,
        [ev(
            "worker.exited",
            201,
            json!({"workerId": "w-hang", "generation": 1, "exitCode": null, "signal": "SIGKILL", "intentional": true, "reason": "operator_kill: stuck"}),
        )],
    );
    assert!(s.pending.is_none());
    let (text, error) = s.notice.clone().unwrap();
    assert!(
        !error && text.starts_with("killed w-hang generation 1 (SIGKILL)"),
        "{text}"
    );
}

#[test]
fn a_double_press_never_confirms_and_enter_defaults_to_cancel() {
    for (view, opener, target_row) in [('1', 'x', "w-slow"), ('2', 'c', "t-hung")] {
        let mut s = fixture();
        send(&mut s, [key(view)]);
        s.prepare();
        let i = s.rows.iter().position(|r| match r {
            RowKey::Worker(w) => w.as_str() == target_row,
            RowKey::Turn(t) => t.as_str() == target_row,
            RowKey::Event(_) | RowKey::Replica(_) => false,
        });
        s.selected[s.vi()] = i.unwrap();
        let effects = send(&mut s, [key(opener), key(opener), code(KeyCode::Enter)]);
        assert!(effects.is_empty(), "{view}: {effects:?}");
        assert!(matches!(s.mode, Mode::Normal));
        assert!(s.pending.is_none());
    }
}

#[test]
fn cancel_a_turn_and_hear_it_confirmed() {
    let mut s = fixture();
    send(&mut s, [key('2')]);
    s.prepare();
    let effects = send(&mut s, [key('c'), code(KeyCode::Tab), code(KeyCode::Enter)]);
    let [
        Effect::Act {
            target: Target::Cancel { turn, worker, .. },
            ..
        },
    ] = effects.as_slice()
    else {
        panic!("{effects:?}")
    };
    assert_eq!(
        (turn.as_str(), worker.as_ref().map(WorkerId::as_str)),
        ("t-hung", Some("w-hang"))
    );
    send(
        &mut s,
        [
            Msg::ActionAnswer(Ok(())),
            ev(
                "turn.failed",
                300,
                json!({"turnId": "t-hung", "sessionId": "s-hang", "code": "cancelled_by_operator", "error": "cancelled"}),
            ),
        ],
    );
    assert!(
        s.notice.as_ref().unwrap().0.starts_with("cancelled t-hung"),
        "{:?}",
        s.notice
    );
}

#[test]
fn read_only_has_no_action_keys() {
    let mut s = fixture();
    send(
        &mut s,
        [Msg::Overview(Ok(Box::new(crate::api::admin::Overview {
            caller: crate::api::admin::Caller {
                name: "viewer".into(),
                role: crate::api::admin::CallerRole::Readonly,
            },
            ..Default::default()
        })))],
    );
    assert!(s.readonly, "a read-only token makes the console read-only");
    select_worker(&mut s, "w-hang");
    send(&mut s, [key('x'), ctrl('k'), key('c')]);
    assert!(matches!(s.mode, Mode::Normal), "no dialog");
    let screen_text = screen(&mut s, 150, 24);
    assert!(screen_text.contains("[READ-ONLY]"));
    assert!(
        !screen_text.contains("kill") && !screen_text.contains("cancel"),
        "{screen_text}"
    );
    send(&mut s, [key('?')]);
    let help = screen(&mut s, 150, 50);
    assert!(!help.contains("kill the selected worker"), "{help}");
}

/// The fixture in the Chat view, `echo` chosen among the gateway's agents.
fn chat_with_echo() -> State {
    let mut s = fixture();
    send(
        &mut s,
        [Msg::Overview(Ok(Box::new(crate::api::admin::Overview {
            agents: vec!["crash".into(), "echo".into()],
            default_agent: None,
            ..Default::default()
        })))],
    );
    send(&mut s, [key('5')]);
    assert_eq!(s.view, View::Chat);
    send(&mut s, [code(KeyCode::Right)]);
    s
}

/// The chat machinery's reports: a session, the message queued as `t-chat`, two chunks and
/// the completion.
fn chat_replies(session: &ChatSession) -> Vec<Msg> {
    vec![
        Msg::Chat(ChatMsg::Session(session.clone())),
        Msg::Chat(ChatMsg::Queued(1, TurnId("t-chat".into()))),
        Msg::Chat(ChatMsg::Event(output("hello "))),
        Msg::Chat(ChatMsg::Event(output("q"))),
        Msg::Chat(ChatMsg::Event(SessionEvent::Complete(Completion {
            status: Outcome::Completed,
            message_id: MessageId("m-chat".into()),
            processed_message_ids: vec![MessageId("m-chat".into())],
            final_text: None,
            turn_id: TurnId("t-chat".into()),
            timestamp: T0,
        }))),
    ]
}

#[test]
fn chat_sends_through_the_agent_api_and_shows_how_it_ended() {
    let mut s = chat_with_echo();
    typed(&mut s, "hello q");
    let effects = send(&mut s, [code(KeyCode::Enter)]);
    assert_eq!(
        effects,
        [Effect::ChatSend {
            agent: "echo".into(),
            session: None,
            content: "hello q".into(),
            local: 1
        }],
        "typing `q` does not quit"
    );
    let session = ChatSession {
        agent: "echo".into(),
        id: "s-chat".into(),
        token: "tok".into(),
    };
    send(&mut s, chat_replies(&session));
    let r = &s.chat.replies[0];
    assert_eq!(
        (r.text.as_str(), r.end.clone()),
        ("hello q", Some(ReplyEnd::Completed))
    );
    assert_eq!(s.chat.session, Some(session.clone()));
    typed(&mut s, "again");
    let effects = send(&mut s, [code(KeyCode::Enter)]);
    assert_eq!(
        effects,
        [Effect::ChatSend {
            agent: "echo".into(),
            session: Some(session),
            content: "again".into(),
            local: 2
        }],
        "the session is kept"
    );
    send(&mut s, [code(KeyCode::Left)]);
    assert!(s.chat.session.is_none(), "another agent, another session");
    insta::assert_snapshot!("chat", screen(&mut s, 110, 16));
}

#[test]
fn esc_leaves_the_chat_for_the_workers_rows() {
    let mut s = fixture();
    send(&mut s, [key('5')]);
    s.prepare();
    assert!(s.rows.is_empty(), "the Chat view has no rows");
    send(&mut s, [code(KeyCode::Esc)]);
    s.prepare();
    assert_eq!(s.view, View::Workers);
    assert_eq!(s.rows.len(), 4, "the Workers rows are rebuilt at once");
}

#[test]
fn dialog_snapshot() {
    let mut s = fixture();
    select_worker(&mut s, "w-hang");
    send(&mut s, [key('x')]);
    typed(&mut s, "wedged");
    insta::assert_snapshot!("kill_dialog", screen(&mut s, 120, 20));
}
