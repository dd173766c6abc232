//! The states a worker and a turn can be in, and the filters the admin lists take: one enum
//! each, so a state name is written once (here) and the compiler finds every reader.

wire_enum! {
    /// A worker generation's state (protocol.md §3).
    pub enum WorkerState {
        /// Spawned, not yet `ready`.
        Starting = "starting",
        /// Reported `ready`; has not had a turn yet.
        Ready = "ready",
        /// Holds a turn.
        Busy = "busy",
        /// Finished a turn; waiting for the next.
        Idle = "idle",
        /// The process ended.
        Exited = "exited",
    }
}

impl WorkerState {
    /// Whether the process is still running.
    pub fn is_live(self) -> bool {
        self != Self::Exited
    }
}

wire_enum! {
    /// A turn's state (protocol.md §3).
    pub enum TurnState {
        /// Accepted, not yet handed to a worker.
        Queued = "queued",
        /// Handed to a worker, nothing produced yet.
        Dispatched = "dispatched",
        /// The worker has produced output.
        Streaming = "streaming",
        /// Ended with `complete` `status: "completed"`.
        Completed = "completed",
        /// Ended with `error` and `complete` `status: "failed"`.
        Failed = "failed",
    }
}

wire_enum! {
    /// How a turn ended.
    pub enum Outcome {
        /// The worker completed it.
        Completed = "completed",
        /// It failed; the turn's code says why.
        Failed = "failed",
    }
}

impl From<Outcome> for TurnState {
    fn from(o: Outcome) -> Self {
        match o {
            Outcome::Completed => Self::Completed,
            Outcome::Failed => Self::Failed,
        }
    }
}

wire_enum! {
    /// Which workers `GET /admin/workers?state=` lists besides one state.
    pub enum WorkerSet {
        /// Every generation still running.
        Live = "live",
    }
}

wire_enum! {
    /// Which turns `GET /admin/turns?state=` lists besides one state.
    pub enum TurnSet {
        /// Turns still owed their terminal event.
        Open = "open",
        /// Open turns that are stranded now.
        Stranded = "stranded",
    }
}

/// A `?state=` filter of the workers list: one state or a set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkerFilter {
    /// Exactly this state.
    State(WorkerState),
    /// A named set.
    Set(WorkerSet),
}

/// A `?state=` filter of the turns list: one state or a set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TurnFilter {
    /// Exactly this state.
    State(TurnState),
    /// A named set.
    Set(TurnSet),
}

impl std::str::FromStr for WorkerFilter {
    type Err = super::UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse()
            .map(Self::State)
            .or_else(|_| s.parse().map(Self::Set))
    }
}

impl std::str::FromStr for TurnFilter {
    type Err = super::UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse()
            .map(Self::State)
            .or_else(|_| s.parse().map(Self::Set))
    }
}

wire_enum! {
    /// A replica as the admin API shows it.
    pub enum ReplicaState {
        /// Its lease holds: it takes turns and runs workers.
        Live = "live",
        /// Stopping gracefully: it takes no new turns.
        Stopping = "stopping",
        /// Its lease ran out without a clean stop (it died, hung or lost the database).
        Lost = "lost",
    }
}

wire_enum! {
    /// Why a worker line was not acted on.
    pub enum RejectionKind {
        /// Not a protocol line, or not one the worker may send now.
        Rejected = "rejected",
        /// About a turn that had already ended.
        Late = "late",
    }
}

wire_enum! {
    /// What an operator did.
    pub enum ActionKind {
        /// Killed a worker process.
        Kill = "kill",
        /// Cancelled a turn.
        Cancel = "cancel",
    }
}

wire_enum! {
    /// Why a worker process ended: the first word of `worker.exited`'s `reason` (an operator
    /// kill adds `: ` and the operator's reason).
    pub enum ExitReason {
        /// It exited 0 on its own.
        Exited = "exited",
        /// It exited non-zero or by a signal on its own.
        Crashed = "crashed",
        /// No `ready` within the startup timeout; stopped.
        StartupTimeout = "startup_timeout",
        /// Its turn ran past the deadline; stopped.
        TurnDeadlineExceeded = "turn_deadline_exceeded",
        /// Its turn made no progress; stopped.
        TurnStalled = "turn_stalled",
        /// Idle past the idle timeout; stopped.
        IdleReap = "idle_reap",
        /// It wrote an oversized line; killed.
        WorkerProtocolError = "worker_protocol_error",
        /// An operator killed it.
        OperatorKill = "operator_kill",
        /// Stopped to make room for a session that needed a worker.
        Evicted = "evicted",
        /// Its session was deleted.
        SessionDeleted = "session_deleted",
        /// The gateway stopped.
        GatewayShutdown = "gateway_shutdown",
        /// Found still running when its gateway restarted; killed.
        KilledAtRecovery = "killed_at_recovery",
        /// Found gone when its gateway restarted.
        GoneAtRecovery = "gone_at_recovery",
        /// Could not be checked when its gateway restarted (another host or boot).
        GatewayRestarted = "gateway_restarted",
        /// Its replica was lost; the replica that took its session over closed its row.
        ReplicaLost = "replica_lost",
    }
}

impl ExitReason {
    /// The reason a `worker.exited` `reason` starts with, if this version knows it.
    pub fn of(reason: &str) -> Option<Self> {
        reason.split(':').next()?.trim().parse().ok()
    }

    /// Whether the exit was recorded at a gateway's start-up for a worker of its previous run
    /// that nobody saw end (not a crash anyone saw).
    pub fn is_recovery(self) -> bool {
        matches!(self, Self::GoneAtRecovery | Self::GatewayRestarted)
    }
}
