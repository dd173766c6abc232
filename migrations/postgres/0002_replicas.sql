-- Replicas: each gateway process registers and renews a lease; workers name the replica
-- that runs them (see SQLite's 0007_replicas.sql).
CREATE TABLE replicas (
    id           TEXT COLLATE "C" PRIMARY KEY,
    name         TEXT NOT NULL,
    host         TEXT NOT NULL,
    pid          BIGINT NOT NULL,
    version      TEXT NOT NULL,
    started_at   BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL,
    lease_until  BIGINT NOT NULL,
    stopping     BOOLEAN NOT NULL DEFAULT false,
    stopped_at   BIGINT
);

ALTER TABLE workers ADD COLUMN replica_id TEXT COLLATE "C";
CREATE INDEX workers_live_by_replica ON workers (replica_id) WHERE exited_at IS NULL;
