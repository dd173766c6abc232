-- Operator actions posted to one replica for a worker or turn another replica owns: kept here
-- until the owner takes them (woken by NOTIFY, or by its scan should the notification be
-- lost), so a 202 is never an action silently dropped.
CREATE TABLE forwarded_actions (
    id         BIGSERIAL PRIMARY KEY,
    replica_id TEXT COLLATE "C" NOT NULL,
    payload    TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX forwarded_actions_replica ON forwarded_actions (replica_id, id);
