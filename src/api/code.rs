//! Every machine code the gateway gives: why a turn failed (protocol.md §4) and why a request
//! was refused. The gateway's errors and the client's refusal handling share this enum.

wire_enum! {
    /// A machine code: a turn's failure (`error` events, `turn.failed`) or an HTTP refusal.
    pub enum ErrorCode {
        /// The worker reported the error.
        AgentError = "agent_error",
        /// The worker exited non-zero or by a signal mid-turn.
        WorkerCrashed = "worker_crashed",
        /// The worker exited 0 mid-turn.
        WorkerExited = "worker_exited",
        /// The worker command could not start.
        WorkerSpawnFailed = "worker_spawn_failed",
        /// No `ready` within the startup timeout.
        WorkerStartupTimeout = "worker_startup_timeout",
        /// No progress within the stall timeout.
        TurnStalled = "turn_stalled",
        /// The hard per-turn limit ran out.
        TurnDeadlineExceeded = "turn_deadline_exceeded",
        /// The worker broke the protocol (an oversized line).
        WorkerProtocolError = "worker_protocol_error",
        /// An operator killed the worker or cancelled the turn.
        CancelledByOperator = "cancelled_by_operator",
        /// The session was deleted with the turn in flight (and, as a refusal, it is gone).
        SessionDeleted = "session_deleted",
        /// No worker capacity within the queue timeout.
        QueueTimeout = "queue_timeout",
        /// The gateway stopped gracefully with the turn in flight.
        GatewayShutdown = "gateway_shutdown",
        /// The gateway died with the turn in flight; failed at its restart.
        GatewayRestarted = "gateway_restarted",
        /// The owning replica's lease expired.
        ReplicaLost = "replica_lost",
        /// The database could not record the turn's events (503 as a refusal).
        StoreUnavailable = "store_unavailable",
        /// A request the API cannot take (400).
        InvalidRequest = "invalid_request",
        /// A request field turnwatch does not honour, named in the body's `field` (400).
        UnsupportedField = "unsupported_field",
        /// A cursor this log never gave out (400).
        InvalidCursor = "invalid_cursor",
        /// No such route (404).
        NotFound = "not_found",
        /// The route does not take that method (405).
        MethodNotAllowed = "method_not_allowed",
        /// The body is over the limit (413).
        PayloadTooLarge = "payload_too_large",
        /// No or a wrong bearer token (401).
        Unauthorized = "unauthorized",
        /// The session's token has expired (401).
        TokenExpired = "token_expired",
        /// A stream ticket that is unknown, used, expired or for another stream (401).
        InvalidTicket = "invalid_ticket",
        /// The token may not do this (403).
        Forbidden = "forbidden",
        /// The request's `Host` is not one the gateway serves (403).
        HostNotAllowed = "host_not_allowed",
        /// The request's `Origin` is not allowed (403).
        OriginNotAllowed = "origin_not_allowed",
        /// No such session (404).
        SessionNotFound = "session_not_found",
        /// No such turn (404).
        TurnNotFound = "turn_not_found",
        /// No such worker (404).
        WorkerNotFound = "worker_not_found",
        /// No such agent in the configuration (400).
        UnknownAgent = "unknown_agent",
        /// The worker is no longer the process the operator saw (409).
        TargetChanged = "target_changed",
        /// The turn has already ended (409).
        AlreadyEnded = "already_ended",
        /// The gateway is stopping (503).
        ShuttingDown = "shutting_down",
        /// The gateway holds as many connections as it may (503).
        TooManyConnections = "too_many_connections",
        /// Something broke inside the gateway (500; the log says what).
        InternalError = "internal_error",
        /// A code this version does not know, read from a newer gateway (never written).
        #[serde(other)]
        Other = "other",
    }
}

impl ErrorCode {
    /// Whether a turn ending with this code was stranded first: its worker gone, or one of its
    /// clocks run out. (Cancels, deletes and shutdowns are decisions, not strandings.)
    pub fn strands(self) -> bool {
        matches!(
            self,
            Self::WorkerCrashed
                | Self::WorkerExited
                | Self::WorkerStartupTimeout
                | Self::TurnStalled
                | Self::TurnDeadlineExceeded
                | Self::WorkerProtocolError
                | Self::QueueTimeout
                | Self::GatewayRestarted
                | Self::ReplicaLost
        )
    }
}
