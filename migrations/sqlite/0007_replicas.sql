-- Replicas: each gateway process registers and renews a lease; workers name the replica
-- that runs them.
CREATE TABLE replicas (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    version TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL,
    lease_until INTEGER NOT NULL,
    stopping INTEGER NOT NULL DEFAULT 0,
    stopped_at INTEGER
);

ALTER TABLE workers ADD COLUMN replica_id TEXT;
CREATE INDEX workers_live_by_replica ON workers (replica_id) WHERE exited_at IS NULL;
