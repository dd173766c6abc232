//! The wire format, pinned: every session and admin event's JSON as a snapshot, and every one
//! read back to the value it was written from.

use serde_json::json;
use std::fmt::Write as _;

use super::admin::{ListQuery, Snapshot};
use super::lifecycle::{
    AdminStreamEvent, OperatorAction, OutputRejected, TurnDispatched, TurnEnded, TurnProgress,
    TurnQueued, TurnStranded, WorkerExited, WorkerReady, WorkerSpawned,
};
use super::session::{Closed, Connected, Delta, Ping, Progress, StatusNote};
use super::state::{ActionKind, ExitReason, RejectionKind, TurnFilter, TurnSet, WorkerFilter};
use super::{AdminEvent, ErrorCode, SessionEvent, TurnEnding, WorkerState};
use crate::ids::{MessageId, SessionId, TurnId, WorkerId};

const AT: i64 = 1_800_000_000_000;

fn ids() -> (TurnId, MessageId, SessionId, WorkerId) {
    (
        TurnId("t-1".into()),
        MessageId("m-1".into()),
        SessionId("s-1".into()),
        WorkerId("w-1".into()),
    )
}

/// One of every session event, the terminal ones as `TurnEnding` writes them.
fn session_events() -> Vec<SessionEvent> {
    let (turn, message, session, _) = ids();
    let mut out = vec![
        SessionEvent::Connected(Connected {
            agent_id: session.clone(),
            session_id: session.clone(),
            timestamp: AT,
            resumed_from: None,
            last_event_id: Some(7),
            gap: true,
        }),
        SessionEvent::Output(Delta {
            content: "hello".into(),
            message_id: message.clone(),
            turn_id: turn.clone(),
            timestamp: AT,
        }),
        SessionEvent::Status(StatusNote {
            status: Progress {
                state: "thinking".into(),
                elapsed_seconds: 3,
            },
            message_id: message.clone(),
            turn_id: turn.clone(),
            timestamp: AT,
        }),
        SessionEvent::Closed(Closed {
            reason: "session deleted".into(),
        }),
        SessionEvent::Ping(Ping { timestamp: AT }),
    ];
    let crash =
        TurnEnding::failed(ErrorCode::WorkerCrashed, "the worker died").with_exit(None, Some(9));
    out.extend(crash.events(&turn, &message, AT));
    out.extend(TurnEnding::completed(Some("hello".into())).events(&turn, &message, AT));
    out
}

/// One of every admin event.
fn admin_events() -> Vec<AdminEvent> {
    let (turn, message, session, worker) = ids();
    let ended = TurnEnded {
        turn_id: turn.clone(),
        session_id: session.clone(),
        code: None,
        error: None,
        exit_code: None,
        signal: None,
        timestamp: AT,
    };
    vec![
        AdminEvent::WorkerSpawned(WorkerSpawned {
            worker_id: worker.clone(),
            generation: 2,
            pid: 4242,
            agent_id: "echo".into(),
            session_id: session.clone(),
            timestamp: AT,
        }),
        AdminEvent::WorkerReady(WorkerReady {
            worker_id: worker.clone(),
            generation: 2,
            timestamp: AT,
        }),
        AdminEvent::WorkerExited(WorkerExited {
            worker_id: worker.clone(),
            generation: 2,
            exit_code: None,
            signal: Some("SIGKILL".into()),
            intentional: true,
            reason: format!("{}: stuck", ExitReason::OperatorKill),
            timestamp: AT,
        }),
        AdminEvent::OutputRejected(OutputRejected {
            worker_id: worker.clone(),
            generation: 2,
            turn_id: Some(turn.clone()),
            kind: RejectionKind::Late,
            reason: "its turn had already ended".into(),
            timestamp: AT,
        }),
        AdminEvent::TurnQueued(TurnQueued {
            turn_id: turn.clone(),
            session_id: session.clone(),
            agent_id: "echo".into(),
            message_id: message,
            timestamp: AT,
        }),
        AdminEvent::TurnDispatched(TurnDispatched {
            turn_id: turn.clone(),
            worker_id: worker,
            generation: 2,
            deadline_at: AT + 600_000,
            timestamp: AT,
        }),
        AdminEvent::TurnProgress(TurnProgress {
            turn_id: turn.clone(),
            timestamp: AT,
        }),
        AdminEvent::TurnStranded(TurnStranded {
            turn_id: turn.clone(),
            session_id: session,
            reason: Some(ErrorCode::WorkerCrashed),
            timestamp: AT,
        }),
        AdminEvent::TurnCompleted(ended.clone()),
        AdminEvent::TurnFailed(TurnEnded {
            code: Some(ErrorCode::WorkerCrashed),
            error: Some("the worker process was killed by SIGKILL".into()),
            exit_code: Some(137),
            signal: Some("SIGKILL".into()),
            ..ended
        }),
        AdminEvent::OperatorAction(OperatorAction {
            action: ActionKind::Cancel,
            target: turn.to_string(),
            reason: "stuck".into(),
            token: "ops".into(),
            timestamp: AT,
        }),
    ]
}

#[test]
fn every_session_event_is_pinned_and_reads_back() {
    let mut pinned = String::new();
    for e in session_events() {
        let data = e.to_data();
        let _ = write!(pinned, "event: {}\ndata: {data}\n\n", e.kind());
        let back = SessionEvent::parse(e.kind().as_str(), serde_json::from_str(&data).unwrap());
        assert_eq!(back.unwrap(), e, "{data}");
    }
    insta::assert_snapshot!("session_events", pinned);
}

#[test]
fn every_admin_event_is_pinned_and_reads_back() {
    let events = admin_events();
    let names: Vec<&str> = events.iter().map(AdminEvent::kind).collect();
    assert_eq!(
        names,
        AdminEvent::NAMES,
        "one of each, in the table's order"
    );
    let mut pinned = String::new();
    for e in events {
        let data = e.to_data();
        let _ = write!(pinned, "event: {}\ndata: {data}\n\n", e.kind());
        let back = AdminEvent::parse(e.kind(), serde_json::from_str(&data).unwrap());
        assert_eq!(back.unwrap(), e, "{data}");
    }
    insta::assert_snapshot!("admin_events", pinned);
}

#[test]
fn the_admin_stream_reads_snapshots_pings_and_events() {
    let snap = Snapshot {
        gap: true,
        resumed_from: Some(()),
        ..Snapshot::default()
    };
    let data = serde_json::to_value(&snap).unwrap();
    assert_eq!(
        data,
        json!({"workers": [], "turns": [], "gap": true, "resumedFrom": null})
    );
    assert!(matches!(
        AdminStreamEvent::parse("snapshot", data),
        Ok(AdminStreamEvent::Snapshot(s)) if s.gap
    ));
    let plain = serde_json::to_value(Snapshot::default()).unwrap();
    assert_eq!(
        plain,
        json!({"workers": [], "turns": []}),
        "no gap, no resumedFrom"
    );
    assert!(matches!(
        AdminStreamEvent::parse("ping", json!({"timestamp": AT})),
        Ok(AdminStreamEvent::Ping(_))
    ));
    assert!(AdminStreamEvent::parse("worker.teleported", json!({})).is_err());
    // A known name with the wrong payload is an error, never a default.
    assert!(AdminEvent::parse("turn.queued", json!({"turnId": "t-1"})).is_err());
}

#[test]
fn names_read_back_and_unknown_ones_are_refused() {
    for s in WorkerState::ALL {
        assert_eq!(s.as_str().parse::<WorkerState>(), Ok(*s));
    }
    for c in ErrorCode::ALL {
        assert_eq!(serde_json::to_value(c).unwrap(), json!(c.as_str()));
    }
    assert_eq!(
        "live".parse::<WorkerFilter>(),
        Ok(WorkerFilter::Set(super::state::WorkerSet::Live))
    );
    assert_eq!(
        "stranded".parse::<TurnFilter>(),
        Ok(TurnFilter::Set(TurnSet::Stranded))
    );
    assert!("sleeping".parse::<WorkerFilter>().is_err());
    assert_eq!(
        ExitReason::of("operator_kill: it hung"),
        Some(ExitReason::OperatorKill)
    );
    assert_eq!(ExitReason::of("whatever"), None);
    let q = ListQuery::of(TurnSet::Open, 10);
    assert_eq!(
        serde_json::to_value(q).unwrap(),
        json!({"state": "open", "limit": 10})
    );
}
