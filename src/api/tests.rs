//! The wire format, pinned: every session and admin event's JSON as a snapshot, and every one
//! read back to the value it was written from.

use serde_json::json;
use std::fmt::Write as _;

use super::admin::{ListQuery, ReplicaInfo, Snapshot, TurnInfo, WorkerInfo};
use super::lifecycle::{
    AdminStreamEvent, OperatorAction, OutputRejected, TurnDispatched, TurnEnded, TurnProgress,
    TurnQueued, TurnStranded, WorkerExited, WorkerReady, WorkerSpawned,
};
use super::session::{Closed, Connected, Delta, Ping, Progress, StatusNote};
use super::state::{
    ActionKind, ExitReason, RejectionKind, ReplicaState, TurnFilter, TurnSet, WorkerFilter,
};
use super::{AdminEvent, ErrorCode, SessionEvent, TurnEnding, WorkerState};
use crate::ids::{MessageId, ReplicaId, SessionId, TurnId, WorkerId};

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
            replica_id: Some(crate::ids::ReplicaId("r-1".into())),
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
            stall_ms: Some(60_000),
            timestamp: AT,
            replica_id: Some(crate::ids::ReplicaId("r-1".into())),
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

/// The admin lists' rows as the gateway writes them: a replica, a worker it runs, a turn
/// dispatched to that worker (naming the replica) and one still queued (naming none).
fn admin_rows() -> (ReplicaInfo, WorkerInfo, TurnInfo, TurnInfo) {
    let (turn, message, session, worker) = ids();
    let replica = ReplicaId("r-1".into());
    let r = ReplicaInfo {
        replica_id: replica.clone(),
        name: "gw-a".into(),
        host: "host-a".into(),
        pid: 4000,
        version: "0.1.0".into(),
        started_at: AT,
        heartbeat_at: AT + 1_000,
        lease_until: AT + 6_000,
        state: ReplicaState::Live,
        workers: 1,
        sessions: 1,
    };
    let w = WorkerInfo {
        worker_id: worker.clone(),
        generation: 2,
        pid: 4242,
        agent_id: "echo".into(),
        session_id: session.clone(),
        state: WorkerState::Busy,
        started_at: AT,
        ready_at: Some(AT + 10),
        last_heartbeat_at: None,
        last_progress_at: Some(AT + 20),
        current_turn_id: Some(turn.clone()),
        turns_served: 1,
        exit_code: None,
        signal: None,
        exited_at: None,
        intentional: None,
        exit_reason: None,
        replica_id: replica.clone(),
        process: None,
    };
    let dispatched = TurnInfo {
        turn_id: turn,
        session_id: session,
        agent_id: "echo".into(),
        message_id: message,
        state: super::TurnState::Dispatched,
        stranded: false,
        worker_id: Some(worker),
        worker_generation: Some(2),
        replica_id: Some(replica),
        created_at: AT,
        dispatched_at: Some(AT + 10),
        first_output_at: None,
        last_progress_at: Some(AT + 10),
        deadline_at: Some(AT + 600_000),
        stall_ms: Some(60_000),
        ended_at: None,
        outcome: None,
        code: None,
        error: None,
        content: None,
    };
    let queued = TurnInfo {
        turn_id: TurnId("t-2".into()),
        message_id: MessageId("m-2".into()),
        state: super::TurnState::Queued,
        worker_id: None,
        worker_generation: None,
        replica_id: None,
        dispatched_at: None,
        last_progress_at: None,
        deadline_at: None,
        stall_ms: None,
        ..dispatched.clone()
    };
    (r, w, dispatched, queued)
}

#[test]
fn admin_rows_are_pinned_and_read_back() {
    let (r, w, dispatched, queued) = admin_rows();
    let mut pinned = String::new();
    let r_json = serde_json::to_string(&r).unwrap();
    assert_eq!(serde_json::from_str::<ReplicaInfo>(&r_json).unwrap(), r);
    let _ = writeln!(pinned, "replica: {r_json}");
    let w_json = serde_json::to_string(&w).unwrap();
    assert_eq!(serde_json::from_str::<WorkerInfo>(&w_json).unwrap(), w);
    let _ = writeln!(pinned, "worker: {w_json}");
    for t in [dispatched, queued] {
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(serde_json::from_str::<TurnInfo>(&json).unwrap(), t);
        let _ = writeln!(pinned, "turn: {json}");
    }
    insta::assert_snapshot!("admin_rows", pinned);
    // A gateway that predates `replicaId` on turns: read as not known.
    let mut old = serde_json::to_value(admin_rows().2).unwrap();
    old.as_object_mut().unwrap().remove("replicaId");
    let read: TurnInfo = serde_json::from_value(old).unwrap();
    assert_eq!(read.replica_id, None);
}

#[test]
fn a_process_sample_is_camel_case_with_an_rfc3339_time_and_reads_back() {
    use super::admin::{ProcessSample, ProcessState};
    use super::lifecycle::WorkerSampled;
    let sample = ProcessSample {
        sampled_at: AT,
        state: ProcessState::Stopped,
        cpu_percent: 0.0,
        rss_bytes: 4096,
        threads: 2,
        fds: None,
        children: Some(0),
        wchan: Some("do_signal_stop".into()),
    };
    let event = WorkerSampled {
        worker_id: WorkerId("w-1".into()),
        generation: 3,
        process: sample.clone(),
    };
    let data = serde_json::to_value(&event).unwrap();
    assert_eq!(
        data,
        json!({"workerId": "w-1", "generation": 3, "process": {
            "sampledAt": crate::clock::to_rfc3339(AT), "state": "stopped", "cpuPercent": 0.0,
            "rssBytes": 4096, "threads": 2, "fds": null, "children": 0,
            "wchan": "do_signal_stop"}})
    );
    let Ok(AdminStreamEvent::Sampled(back)) =
        AdminStreamEvent::parse(AdminStreamEvent::WORKER_SAMPLED, data.clone())
    else {
        panic!("worker.sampled reads back");
    };
    assert_eq!(*back, event);
    // Not a lifecycle event: the log's vocabulary does not know it.
    assert!(AdminEvent::parse(AdminStreamEvent::WORKER_SAMPLED, data).is_err());
    // A state a newer gateway adds reads as `other`.
    let mut newer = serde_json::to_value(&sample).unwrap();
    newer["state"] = json!("parked");
    let read: ProcessSample = serde_json::from_value(newer).unwrap();
    assert_eq!(read.state, ProcessState::Other);
}
