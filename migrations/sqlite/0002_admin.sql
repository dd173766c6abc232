-- The admin lifecycle log, the clocks that define a stranded turn, and the indexes the admin
-- lists answer from.
CREATE TABLE admin_events (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    kind       TEXT NOT NULL,
    turn_id    TEXT,
    worker_id  TEXT,
    data       TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX admin_events_turn ON admin_events (turn_id) WHERE turn_id IS NOT NULL;
CREATE INDEX admin_events_worker ON admin_events (worker_id) WHERE worker_id IS NOT NULL;

-- Set when the turn starts waiting for worker capacity: past it, the turn is stranded.
ALTER TABLE turns ADD COLUMN queue_deadline_at INTEGER;
-- The agent's stall timeout, set at dispatch: progress older than this strands the turn.
ALTER TABLE turns ADD COLUMN stall_ms INTEGER;

CREATE INDEX turns_state ON turns (state, created_at);
CREATE INDEX turns_agent ON turns (agent_id, created_at);
CREATE INDEX turns_worker ON turns (worker_id, created_at);
CREATE INDEX turns_created ON turns (created_at, id);
CREATE INDEX workers_started ON workers (started_at, worker_id, generation);
CREATE INDEX workers_session ON workers (session_id);
CREATE INDEX workers_state ON workers (state);
