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

use crossterm::event::KeyCode;

use super::{code, screen};
use crate::api::admin::{ProcessSample, ProcessState, TurnDetail, TurnInfo};
use crate::api::lifecycle::WorkerSampled;
use crate::console::msg::Effect;
use crate::console::state::{Detail, Mode};
use crate::ids::{TurnId, WorkerId};

fn ev(kind: &str, seq: i64, mut d: serde_json::Value) -> Msg {
    d["timestamp"] = json!(T0);
    Msg::Link(LinkMsg::Event(seq, admin(kind, d)))
}

/// `t-hung`'s detail as the gateway answers it (dispatched to `w-hang`).
fn hung_detail() -> Box<TurnDetail> {
    let data = json!({"turnId": "t-hung", "sessionId": "s-3", "agentId": "hang",
        "messageId": "m-t-hung", "state": "dispatched", "stranded": false,
        "workerId": "w-hang", "workerGeneration": 1, "replicaId": null,
        "createdAt": "2027-01-15T07:59:30Z", "dispatchedAt": "2027-01-15T07:59:30Z",
        "firstOutputAt": null, "lastProgressAt": "2027-01-15T07:59:30Z",
        "deadlineAt": "2027-01-15T08:00:30Z", "stallMs": 60000, "endedAt": null,
        "outcome": null, "code": null, "error": null});
    let turn: TurnInfo = serde_json::from_value(data).unwrap();
    Box::new(TurnDetail {
        success: true,
        turn,
        timeline: Vec::new(),
    })
}

fn sample(state: ProcessState, cpu: f64) -> Msg {
    Msg::Link(LinkMsg::Sampled(Box::new(WorkerSampled {
        worker_id: WorkerId("w-hang".into()),
        generation: 1,
        process: ProcessSample {
            sampled_at: T0,
            state,
            cpu_percent: cpu,
            rss_bytes: 12 << 20,
            threads: 3,
            fds: Some(8),
            children: Some(0),
            wchan: (state == ProcessState::Sleeping).then(|| "do_epoll_wait".into()),
        },
    })))
}

/// Opens `t-hung`'s detail from the Turns view (it sorts first: most stuck).
fn open_hung(s: &mut crate::console::state::State) -> Vec<Effect> {
    send(s, [key('2')]);
    s.prepare();
    let effects = send(s, [code(KeyCode::Enter)]);
    assert_eq!(effects, [Effect::LoadTurn(TurnId("t-hung".into()))]);
    send(s, [Msg::TurnDetail(Ok(hung_detail()))])
}

/// Item 1: the turn detail opens with its clocks as countdowns, its worker's process truth
/// and a reading in words; a stopped, a spinning and a sleeping worker read differently.
#[test]
fn the_turn_detail_says_why_it_is_stuck() {
    let mut s = fixture();
    let effects = open_hung(&mut s);
    assert_eq!(
        effects,
        [Effect::LoadWorker(WorkerId("w-hang".into()))],
        "its worker too"
    );
    let text = screen(&mut s, 200, 30);
    assert!(text.contains("deadline in 30s"), "{text}");
    assert!(text.contains("last heartbeat never"), "{text}");
    assert!(text.contains("PROCESS  not sampled"), "{text}");
    for (state, cpu, said) in [
        (ProcessState::Stopped, 0.0, "READING  stopped (SIGSTOP"),
        (
            ProcessState::Running,
            99.0,
            "READING  spinning at 99 % CPU with no output for 30s",
        ),
        (
            ProcessState::Sleeping,
            0.0,
            "sleeping in a network or pipe wait (do_epoll_wait)",
        ),
    ] {
        send(&mut s, [sample(state, cpu)]);
        let text = screen(&mut s, 200, 30);
        assert!(text.contains(said), "{state}: {text}");
        assert!(text.contains("RSS 12.0 MiB · 3 threads · 8 fds"), "{text}");
    }
}

/// Item 4: an open turn detail reloads when its turn changes and, once the turn ended, says
/// how; it scrolls.
#[test]
fn an_open_turn_detail_follows_its_turn() {
    let mut s = fixture();
    open_hung(&mut s);
    let failed = json!({"turnId": "t-hung", "sessionId": "s-3", "code": "turn_stalled",
        "error": "the worker made no progress for 60s"});
    let effects = send(&mut s, [ev("turn.failed", 200, failed)]);
    assert!(
        effects.contains(&Effect::LoadTurn(TurnId("t-hung".into()))),
        "{effects:?}"
    );
    let text = screen(&mut s, 200, 30);
    assert!(text.contains("ENDED at 08:00:00"), "{text}");
    assert!(
        text.contains("failed, turn_stalled: the worker made no progress"),
        "{text}"
    );
    send(&mut s, [key('j'), key('j')]);
    assert_eq!(s.detail_scroll, 2);
    send(&mut s, [key('g')]);
    assert_eq!(s.detail_scroll, 0);
    assert!(
        matches!(s.mode, Mode::Detail(Detail::Turn(_))),
        "j/k/g scroll, not close"
    );
}

/// Item 4: a dialog follows its target: once the turn ended it says how, stops counting its
/// age, and its action is off (enter does nothing but say why).
#[test]
fn a_dialog_follows_its_target() {
    let mut s = fixture();
    send(&mut s, [key('2')]);
    s.prepare();
    send(&mut s, [key('c')]);
    assert!(matches!(s.mode, Mode::Confirm(_)));
    let done = json!({"turnId": "t-hung", "sessionId": "s-3"});
    send(&mut s, [ev("turn.completed", 200, done)]);
    let text = screen(&mut s, 120, 30);
    assert!(
        text.contains("Already over: the turn completed at 08:00:00"),
        "{text}"
    );
    assert!(
        text.contains("Keep it") && text.contains("Cancel turn (off)"),
        "{text}"
    );
    let effects = send(&mut s, [code(KeyCode::Tab), code(KeyCode::Enter)]);
    assert!(effects.is_empty(), "{effects:?}");
    assert!(
        s.notice
            .as_ref()
            .unwrap()
            .0
            .starts_with("nothing to cancel turn")
    );
    // Ages stop with the turn: a later tick changes nothing in the dialog.
    send(&mut s, [Msg::Tick(T0 + 60_000)]);
    let later = screen(&mut s, 120, 30);
    assert!(later.contains("(age 30s"), "{later}");
}

/// Items 2 and 7: the columns an SRE reads; an exited worker keeps its pid and says when; an
/// unasked exit 0 is not a crash; a slow turn says so in text.
#[test]
fn the_columns_an_sre_reads() {
    let mut s = fixture();
    let exited = json!({"workerId": "w-echo", "generation": 1, "exitCode": 0, "signal": null,
        "intentional": false, "reason": "exited"});
    send(
        &mut s,
        [
            ev("worker.exited", 200, exited),
            sample(ProcessState::Running, 97.0),
        ],
    );
    let text = screen(&mut s, 200, 30);
    assert!(
        text.contains("EXITED AT") && text.contains("CPU") && text.contains("PROC"),
        "{text}"
    );
    let echo = text.lines().find(|l| l.starts_with("w-echo")).unwrap();
    assert!(
        echo.contains("101") && echo.contains("0 exited unasked"),
        "{echo}"
    );
    assert!(!echo.contains("crashed"), "{echo}");
    let hang = text.lines().find(|l| l.starts_with("w-hang")).unwrap();
    assert!(
        hang.contains("97%") && hang.contains("12M") && hang.contains("running"),
        "{hang}"
    );
    send(&mut s, [key('2')]);
    let text = screen(&mut s, 200, 30);
    assert!(
        text.contains("LAST HB") && text.contains("ENDS IN"),
        "{text}"
    );
    let turn = text.lines().find(|l| l.starts_with("t-hung")).unwrap();
    assert!(
        turn.contains("30s slow") && turn.contains("deadline in 30s"),
        "{turn}"
    );
    assert!(text.contains("stuck 1"), "{text}");
}

/// Item 10: `x`/`c` under read-only say why nothing happens, in a detail pane too.
#[test]
fn read_only_says_why_x_does_nothing() {
    let mut s = fixture();
    s.readonly = true;
    open_hung(&mut s);
    let effects = send(&mut s, [key('x')]);
    assert!(effects.is_empty());
    assert!(
        s.notice.as_ref().unwrap().0.starts_with("read-only"),
        "{:?}",
        s.notice
    );
}

/// Item 6: enter on an event opens the turn it is about (else its worker); Events do not
/// pretend to sort; a `worker.exited` line names its agent and an unasked exit 0 is no crash.
#[test]
fn events_open_what_they_are_about() {
    let mut s = fixture();
    let exited = json!({"workerId": "w-echo", "generation": 1, "exitCode": 0, "signal": null,
        "intentional": false, "reason": "exited"});
    send(&mut s, [ev("worker.exited", 200, exited), key('4')]);
    s.prepare();
    let last = s.model.events.back().unwrap();
    assert!(
        last.text.contains("unasked") && last.text.contains("agent echo"),
        "{}",
        last.text
    );
    assert!(!last.text.contains("CRASH"), "{}", last.text);
    let effects = send(&mut s, [code(KeyCode::Enter)]);
    assert_eq!(effects, [Effect::LoadWorker(WorkerId("w-echo".into()))]);
    send(&mut s, [code(KeyCode::Esc), key('k')]);
    s.prepare();
    let effects = send(&mut s, [code(KeyCode::Enter)]);
    assert!(
        matches!(effects.as_slice(), [Effect::LoadTurn(_)]),
        "{effects:?}"
    );
    send(&mut s, [code(KeyCode::Esc), key('s')]);
    assert!(
        s.notice
            .as_ref()
            .unwrap()
            .0
            .starts_with("Events keep the log's order")
    );
    assert_eq!(s.sorts[3].column, None);
}

/// Item 8: filters are smart-case and per view, esc clears, readline keys edit, the title
/// says "N of M rows", a bad regex reads in one line, `:` takes unique prefixes, and footer
/// messages expire.
#[test]
fn filter_and_commands_like_k9s() {
    let mut s = fixture();
    send(&mut s, [key('/')]);
    super::typed(&mut s, "HANG");
    send(&mut s, [super::ctrl('w')]);
    super::typed(&mut s, "nope ");
    send(&mut s, [super::ctrl('u')]);
    super::typed(&mut s, "hang");
    send(&mut s, [super::ctrl('a'), code(KeyCode::Enter)]);
    assert_eq!(
        s.filter.as_ref().unwrap().raw,
        "hang",
        "ctrl-u cleared, ctrl-a inserted nothing"
    );
    let text = screen(&mut s, 150, 20);
    assert!(text.contains("Workers · 1 of 4 rows"), "{text}");
    send(&mut s, [key('/')]);
    super::typed(&mut s, "W-HANG");
    send(&mut s, [code(KeyCode::Enter)]);
    s.prepare();
    assert_eq!(s.rows.len(), 0, "a capital makes it case-sensitive");
    send(&mut s, [key('/')]);
    send(&mut s, [super::ctrl('u')]);
    super::typed(&mut s, "echo");
    send(&mut s, [code(KeyCode::Enter)]);
    s.prepare();
    assert_eq!(s.rows.len(), 1, "smart-case: lower case matches any case");
    // Per view: the Turns view has none; back on Workers it is still there.
    send(&mut s, [key('2')]);
    assert!(s.filter.is_none());
    send(&mut s, [key('1')]);
    assert_eq!(s.filter.as_ref().unwrap().raw, "echo");
    send(&mut s, [code(KeyCode::Esc)]);
    assert!(s.filter.is_none(), "esc clears");
    send(&mut s, [key('/')]);
    super::typed(&mut s, "(");
    send(&mut s, [code(KeyCode::Enter)]);
    let (bad, _) = s.notice.clone().unwrap();
    assert!(
        bad.starts_with("bad filter `(`: ") && !bad.contains('\n'),
        "{bad}"
    );
    // Footer messages expire.
    send(&mut s, [Msg::Tick(T0 + 10_000)]);
    assert!(s.notice.is_none());
    // `:` unique prefixes.
    send(&mut s, [key(':')]);
    super::typed(&mut s, "tu");
    send(&mut s, [code(KeyCode::Enter)]);
    assert_eq!(s.view, View::Turns);
    send(&mut s, [key(':')]);
    super::typed(&mut s, "re");
    send(&mut s, [code(KeyCode::Enter)]);
    assert_eq!(s.view, View::Replicas);
    send(&mut s, [key(':')]);
    super::typed(&mut s, "st");
    send(&mut s, [code(KeyCode::Enter)]);
    assert_eq!(s.view, View::Stranded);
}

/// Item 9: the chat starts on the gateway's default agent, says "streaming" while chunks
/// arrive, stops counting once a reply ended, and scrolls back.
#[test]
fn chat_defaults_streams_and_stops_counting() {
    use crate::api::session::{Completion, Delta};
    use crate::api::{Outcome, SessionEvent};
    use crate::console::msg::{ChatMsg, ChatSession};
    use crate::ids::MessageId;
    let mut s = fixture();
    send(
        &mut s,
        [Msg::Overview(Ok(Box::new(crate::api::admin::Overview {
            agents: vec!["crash-abort".into(), "echo".into(), "slow".into()],
            default_agent: Some("slow".into()),
            ..Default::default()
        })))],
    );
    assert_eq!(
        s.chat.agent_name(),
        Some("slow"),
        "not the first alphabetically"
    );
    send(&mut s, [key('5')]);
    super::typed(&mut s, "hi");
    send(&mut s, [code(KeyCode::Enter)]);
    let session = ChatSession {
        agent: "slow".into(),
        id: "s-chat".into(),
        token: "tok".into(),
    };
    let output = |text: &str| {
        Msg::Chat(ChatMsg::Event(SessionEvent::Output(Delta {
            content: text.into(),
            message_id: MessageId("m-chat".into()),
            turn_id: TurnId("t-chat".into()),
            timestamp: T0,
        })))
    };
    send(
        &mut s,
        [
            Msg::Chat(ChatMsg::Session(session)),
            Msg::Chat(ChatMsg::Queued(1, TurnId("t-chat".into()))),
            output("hel"),
        ],
    );
    assert!(screen(&mut s, 150, 20).contains("▸ streaming"));
    send(
        &mut s,
        [Msg::Chat(ChatMsg::Event(SessionEvent::Complete(
            Completion {
                status: Outcome::Completed,
                message_id: MessageId("m-chat".into()),
                processed_message_ids: vec![MessageId("m-chat".into())],
                final_text: None,
                turn_id: TurnId("t-chat".into()),
                timestamp: T0,
            },
        )))],
    );
    let done = screen(&mut s, 150, 20);
    assert!(
        done.contains("took 0s") && done.contains("✓ completed"),
        "{done}"
    );
    send(&mut s, [Msg::Tick(T0 + 90_000)]);
    assert!(
        screen(&mut s, 150, 20).contains("took 0s"),
        "a finished reply stops counting"
    );
    send(&mut s, [code(KeyCode::PageUp)]);
    assert_eq!(s.chat.scroll, 10);
}

/// Item 11: the pulse: turns per second and failures over the last minutes, in text beside
/// their sparklines, on a wide screen; item 10: a refused token stops the reconnects and says so.
#[test]
fn the_pulse_and_a_refused_token() {
    let mut s = fixture();
    for i in 0..4 {
        let done = json!({"turnId": format!("t-p{i}"), "sessionId": "s-1"});
        send(&mut s, [ev("turn.completed", 300 + i, done)]);
    }
    let failed =
        json!({"turnId": "t-pf", "sessionId": "s-1", "code": "worker_crashed", "error": "x"});
    send(&mut s, [ev("turn.failed", 310, failed)]);
    let text = screen(&mut s, 200, 20);
    // The fixture's own story ended two turns (one failed) in the same second.
    assert!(
        text.contains("turns/s 0.7") && text.contains("failed/2min 2"),
        "{text}"
    );
    let narrow = screen(&mut s, 80, 20);
    assert!(
        !narrow.contains("turns/s"),
        "no room at 80 columns: {narrow}"
    );
    send(
        &mut s,
        [Msg::Link(LinkMsg::Refused(
            "missing bearer token (HTTP 401)".into(),
        ))],
    );
    let text = screen(&mut s, 200, 20);
    assert!(text.contains("✗ token refused (ctrl-r retries)"), "{text}");
}

/// Item 5 (and the done-when's snapshots): every view at 80×24 and 200×60, and the turn
/// detail for each reading.
#[test]
fn every_view_and_reading_at_80x24_and_200x60() {
    let mut s = fixture();
    for (i, name) in ["workers", "turns", "stranded", "events", "chat", "replicas"]
        .into_iter()
        .enumerate()
    {
        let digit = char::from(b'1' + u8::try_from(i).unwrap());
        send(&mut s, [key(digit)]);
        insta::assert_snapshot!(format!("incident_{name}_80x24"), screen(&mut s, 80, 24));
        insta::assert_snapshot!(format!("incident_{name}_200x60"), screen(&mut s, 200, 60));
    }
    send(&mut s, [code(KeyCode::Esc), key('1')]);
    let mut s = fixture();
    open_hung(&mut s);
    let readings = [
        ("silent", None),
        ("stopped", Some((ProcessState::Stopped, 0.0))),
        ("spinning", Some((ProcessState::Running, 99.0))),
        ("blocked", Some((ProcessState::DiskWait, 0.0))),
        ("sleeping", Some((ProcessState::Sleeping, 0.0))),
    ];
    for (name, truth) in readings {
        if let Some((state, cpu)) = truth {
            send(&mut s, [sample(state, cpu)]);
        }
        insta::assert_snapshot!(
            format!("incident_detail_{name}_80x24"),
            screen(&mut s, 80, 24)
        );
        insta::assert_snapshot!(
            format!("incident_detail_{name}_200x60"),
            screen(&mut s, 200, 60)
        );
    }
    // Heartbeat-only: heartbeats arrive (the workers list says so), output does not.
    let mut s = fixture();
    if let Some(w) = s.model.workers.get_mut(&WorkerId("w-hang".into())) {
        w.last_heartbeat_at = Some(T0 - 200);
    }
    open_hung(&mut s);
    send(&mut s, [sample(ProcessState::Sleeping, 0.0)]);
    let text = screen(&mut s, 200, 60);
    assert!(
        text.contains("READING  alive, heartbeating, 0 % CPU, sleeping"),
        "{text}"
    );
    assert!(text.contains("no output for 30s"), "{text}");
    insta::assert_snapshot!("incident_detail_heartbeat_only_200x60", text);
}

/// Items 6 and 7: the footer offers only what works where you are; sort marks read as in k9s
/// (▲ growing down the column); the Stranded subtitle says its real order.
#[test]
fn the_footer_and_the_marks_say_what_is_true() {
    let mut s = fixture();
    let footer = |s: &mut crate::console::state::State| {
        screen(s, 150, 20).lines().last().unwrap_or("").to_owned()
    };
    assert!(footer(&mut s).contains("x kill") && !footer(&mut s).contains("c cancel"));
    send(&mut s, [key('4')]);
    let events = footer(&mut s);
    assert!(
        !events.contains("x kill") && !events.contains("c cancel"),
        "{events}"
    );
    send(&mut s, [key('6')]);
    assert!(
        !footer(&mut s).contains("enter"),
        "Replicas rows open nothing"
    );
    let mut s = fixture();
    open_hung(&mut s);
    let pane = footer(&mut s);
    assert!(
        pane.contains("j/k") && pane.contains("c cancel it"),
        "{pane}"
    );
    let mut s = fixture();
    send(&mut s, [key('2'), key('s'), key('s'), key('s'), key('s')]);
    let text = screen(&mut s, 200, 20);
    assert!(text.contains("AGE ▲"), "ages grow down the column: {text}");
    send(&mut s, [key('S')]);
    assert!(screen(&mut s, 200, 20).contains("AGE ▼"));
    send(&mut s, [key('3')]);
    let text = screen(&mut s, 200, 20);
    assert!(
        text.contains("open first, then the most recently resolved"),
        "{text}"
    );
}

/// Items 7 and 8: a sort by a named column without cycling (`o`, `:sort age`, `:sort -age`);
/// a worker found gone at a gateway's start is not called a crash in Events.
#[test]
fn sort_by_name_and_an_unseen_exit() {
    let mut s = fixture();
    send(&mut s, [key('2'), key('o')]);
    assert!(matches!(&s.mode, Mode::Command(c) if c == "sort "));
    super::typed(&mut s, "age");
    send(&mut s, [code(KeyCode::Enter)]);
    assert_eq!((s.sorts[1].column, s.sorts[1].reverse), (Some(3), false));
    send(&mut s, [key(':')]);
    super::typed(&mut s, "sort -no");
    send(&mut s, [code(KeyCode::Enter)]);
    assert_eq!((s.sorts[1].column, s.sorts[1].reverse), (Some(4), true));
    send(&mut s, [key(':')]);
    super::typed(&mut s, "sort");
    send(&mut s, [code(KeyCode::Enter)]);
    assert_eq!(s.sorts[1].column, None, "no column: the default order");
    let gone = json!({"workerId": "w-echo", "generation": 1, "exitCode": null, "signal": null,
        "intentional": false, "reason": "gone_at_recovery"});
    send(&mut s, [ev("worker.exited", 400, gone)]);
    let last = s.model.events.back().unwrap();
    assert!(
        last.text.contains("unseen (gateway restarted)") && !last.text.contains("CRASH"),
        "{}",
        last.text
    );
}

/// The README's key table lists every key of the binding table the console runs on.
#[test]
fn the_readme_lists_every_key() {
    let readme = include_str!("../../../README.md");
    let start = readme.find("## The console").unwrap();
    let end = readme[start..]
        .find("\n## ")
        .map_or(readme.len(), |e| start + e);
    let section = &readme[start..end];
    for (label, _) in crate::console::keys::help(false) {
        for key in label.split_whitespace() {
            assert!(
                section.contains(&format!("`{key}`")),
                "the README does not list `{key}` ({label})"
            );
        }
    }
}

/// Item 7: the header's failure counts are the gateway's, by code over its recent window.
#[test]
fn the_header_counts_the_gateways_recent_failures() {
    use crate::api::ErrorCode;
    use crate::console::msg::ReplicaPoll;
    let mut s = fixture();
    let text = screen(&mut s, 200, 10);
    assert!(
        text.contains("failed 1 since the console started"),
        "{text}"
    );
    let by_code = [(ErrorCode::WorkerCrashed, 3), (ErrorCode::TurnStalled, 1)]
        .into_iter()
        .collect();
    let poll = ReplicaPoll {
        replicas: s.cluster.replicas.clone(),
        workers: None,
        failed_recently: Some((by_code, 900)),
    };
    send(&mut s, [Msg::Replicas(Ok(Box::new(poll)))]);
    let text = screen(&mut s, 200, 10);
    assert!(
        text.contains("failed in 15m 4 (3 worker_crashed, 1 turn_stalled)"),
        "{text}"
    );
}
