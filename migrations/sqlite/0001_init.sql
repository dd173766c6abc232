-- Sessions, turns, the per-session event log, worker generations, rejected worker output.
CREATE TABLE sessions (
    id             TEXT PRIMARY KEY,
    agent_id       TEXT NOT NULL,
    thread         TEXT,
    token          TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    last_activity  INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    deleted_at     INTEGER,
    last_seq       INTEGER NOT NULL DEFAULT 0,
    pruned_through INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX sessions_thread ON sessions (agent_id, thread) WHERE thread IS NOT NULL AND deleted_at IS NULL;

CREATE TABLE turns (
    id                TEXT PRIMARY KEY,
    session_id        TEXT NOT NULL REFERENCES sessions (id),
    agent_id          TEXT NOT NULL,
    message_id        TEXT NOT NULL,
    content           TEXT NOT NULL,
    state             TEXT NOT NULL,
    worker_id         TEXT,
    worker_generation INTEGER,
    created_at        INTEGER NOT NULL,
    dispatched_at     INTEGER,
    first_output_at   INTEGER,
    last_progress_at  INTEGER,
    deadline_at       INTEGER,
    ended_at          INTEGER,
    outcome           TEXT,
    code              TEXT,
    error             TEXT,
    final_text        TEXT,
    exit_code         INTEGER,
    signal            INTEGER,
    events_pruned     INTEGER NOT NULL DEFAULT 0,
    UNIQUE (session_id, message_id)
);
CREATE INDEX turns_open ON turns (created_at) WHERE ended_at IS NULL;
CREATE INDEX turns_prunable ON turns (ended_at) WHERE ended_at IS NOT NULL AND events_pruned = 0;
CREATE INDEX turns_session ON turns (session_id, created_at);

CREATE TABLE events (
    session_id TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    turn_id    TEXT,
    kind       TEXT NOT NULL,
    data       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (session_id, seq)
) WITHOUT ROWID;
CREATE INDEX events_turn ON events (turn_id);

CREATE TABLE workers (
    worker_id         TEXT NOT NULL,
    generation        INTEGER NOT NULL,
    pid               INTEGER,
    agent_id          TEXT NOT NULL,
    session_id        TEXT NOT NULL,
    state             TEXT NOT NULL,
    started_at        INTEGER NOT NULL,
    ready_at          INTEGER,
    last_heartbeat_at INTEGER,
    last_progress_at  INTEGER,
    current_turn_id   TEXT,
    turns_served      INTEGER NOT NULL DEFAULT 0,
    exit_code         INTEGER,
    signal            INTEGER,
    exited_at         INTEGER,
    intentional       INTEGER,
    exit_reason       TEXT,
    stderr_tail       TEXT,
    PRIMARY KEY (worker_id, generation)
);
CREATE INDEX workers_live ON workers (worker_id) WHERE exited_at IS NULL;

CREATE TABLE worker_output (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    worker_id  TEXT NOT NULL,
    generation INTEGER NOT NULL,
    turn_id    TEXT,
    kind       TEXT NOT NULL,
    reason     TEXT NOT NULL,
    line       TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX worker_output_worker ON worker_output (worker_id, generation);
