-- The PostgreSQL schema: the SQLite schema as its migrations 0001-0006 leave it, in one step,
-- plus the admin log's sequence counter. Times are epoch milliseconds. Text that is compared or
-- ordered (ids, names, states) is COLLATE "C": byte order, as SQLite compares, so pagination
-- cursors and orderings agree between the backends.

CREATE TABLE sessions (
    id             TEXT COLLATE "C" PRIMARY KEY,
    agent_id       TEXT COLLATE "C" NOT NULL,
    thread         TEXT COLLATE "C",
    token          TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    last_activity  BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    deleted_at     BIGINT,
    -- The session's last event sequence number; updated in the transaction that appends, so
    -- the row's lock orders the session's writers and a number is never given twice.
    last_seq       BIGINT NOT NULL DEFAULT 0,
    pruned_through BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX sessions_thread ON sessions (agent_id, thread) WHERE thread IS NOT NULL AND deleted_at IS NULL;

CREATE TABLE turns (
    id                TEXT COLLATE "C" PRIMARY KEY,
    session_id        TEXT COLLATE "C" NOT NULL REFERENCES sessions (id),
    agent_id          TEXT COLLATE "C" NOT NULL,
    message_id        TEXT COLLATE "C" NOT NULL,
    content           TEXT NOT NULL,
    state             TEXT COLLATE "C" NOT NULL,
    worker_id         TEXT COLLATE "C",
    worker_generation BIGINT,
    created_at        BIGINT NOT NULL,
    dispatched_at     BIGINT,
    first_output_at   BIGINT,
    last_progress_at  BIGINT,
    deadline_at       BIGINT,
    ended_at          BIGINT,
    outcome           TEXT COLLATE "C",
    code              TEXT COLLATE "C",
    error             TEXT,
    exit_code         INTEGER,
    signal            INTEGER,
    events_pruned     BOOLEAN NOT NULL DEFAULT false,
    -- Past it, a turn waiting for worker capacity is stranded.
    queue_deadline_at BIGINT,
    -- The agent's stall timeout, set at dispatch: progress older than this strands the turn.
    stall_ms          BIGINT,
    UNIQUE (session_id, message_id)
);
CREATE INDEX turns_open ON turns (created_at) WHERE ended_at IS NULL;
CREATE INDEX turns_open_session ON turns (session_id) WHERE ended_at IS NULL;
CREATE INDEX turns_prunable ON turns (ended_at) WHERE ended_at IS NOT NULL AND NOT events_pruned;
CREATE INDEX turns_state ON turns (state, created_at);
CREATE INDEX turns_agent ON turns (agent_id, created_at);
CREATE INDEX turns_created ON turns (created_at, id);
CREATE INDEX turns_code ON turns (code) WHERE code IS NOT NULL;

CREATE TABLE events (
    session_id TEXT COLLATE "C" NOT NULL,
    seq        BIGINT NOT NULL,
    turn_id    TEXT COLLATE "C",
    kind       TEXT COLLATE "C" NOT NULL,
    data       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (session_id, seq)
);
CREATE INDEX events_turn ON events (turn_id);

CREATE TABLE workers (
    worker_id         TEXT COLLATE "C" NOT NULL,
    generation        BIGINT NOT NULL,
    pid               BIGINT,
    agent_id          TEXT COLLATE "C" NOT NULL,
    session_id        TEXT COLLATE "C" NOT NULL,
    state             TEXT COLLATE "C" NOT NULL,
    started_at        BIGINT NOT NULL,
    ready_at          BIGINT,
    last_heartbeat_at BIGINT,
    last_progress_at  BIGINT,
    current_turn_id   TEXT COLLATE "C",
    turns_served      BIGINT NOT NULL DEFAULT 0,
    exit_code         INTEGER,
    signal            INTEGER,
    exited_at         BIGINT,
    intentional       BOOLEAN,
    exit_reason       TEXT,
    stderr_tail       TEXT,
    -- Where and when the process started (see SQLite's 0006_worker_origin.sql).
    host              TEXT,
    boot_id           TEXT,
    start_ticks       BIGINT,
    PRIMARY KEY (worker_id, generation)
);
CREATE INDEX workers_live ON workers (worker_id) WHERE exited_at IS NULL;
CREATE INDEX workers_started ON workers (started_at, worker_id, generation);
CREATE INDEX workers_session ON workers (session_id);
CREATE INDEX workers_state ON workers (state);

CREATE TABLE worker_output (
    id         BIGSERIAL PRIMARY KEY,
    worker_id  TEXT COLLATE "C" NOT NULL,
    generation BIGINT NOT NULL,
    turn_id    TEXT COLLATE "C",
    kind       TEXT COLLATE "C" NOT NULL,
    reason     TEXT NOT NULL,
    line       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX worker_output_worker ON worker_output (worker_id, generation);

-- The admin lifecycle log. Its sequence numbers come from `admin_seq`, not a sequence: they
-- are taken at the end of the writing transaction under the counter row's lock, so they are
-- handed out in commit order (a reader that has seen N never later finds a committed N - 1).
CREATE TABLE admin_events (
    seq        BIGINT PRIMARY KEY,
    kind       TEXT COLLATE "C" NOT NULL,
    turn_id    TEXT COLLATE "C",
    worker_id  TEXT COLLATE "C",
    data       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX admin_events_turn ON admin_events (turn_id) WHERE turn_id IS NOT NULL;

-- One row: the last admin sequence number ever given (kept when retention prunes the log).
CREATE TABLE admin_seq (
    one  BOOLEAN PRIMARY KEY DEFAULT true CHECK (one),
    last BIGINT NOT NULL
);
INSERT INTO admin_seq (one, last) VALUES (true, 0);
