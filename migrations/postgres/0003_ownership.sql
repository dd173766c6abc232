-- Session ownership (see SQLite's 0008_ownership.sql): owner and epoch on the session, each
-- turn's place in its session's order, and a replica state judged once by the database clock.
ALTER TABLE sessions ADD COLUMN owner TEXT COLLATE "C";
ALTER TABLE sessions ADD COLUMN owner_epoch BIGINT NOT NULL DEFAULT 0;
CREATE INDEX sessions_owner ON sessions (owner) WHERE owner IS NOT NULL;

ALTER TABLE turns ADD COLUMN seq BIGINT;
UPDATE turns SET seq = o.n FROM (
    SELECT id, row_number() OVER (PARTITION BY session_id ORDER BY created_at, id) AS n FROM turns
) o WHERE o.id = turns.id;
-- The last place given in the session's order (kept when history is pruned).
ALTER TABLE sessions ADD COLUMN turn_seq BIGINT NOT NULL DEFAULT 0;
UPDATE sessions SET turn_seq = COALESCE((SELECT MAX(seq) FROM turns WHERE turns.session_id = sessions.id), 0);

ALTER TABLE replicas ADD COLUMN state TEXT COLLATE "C" NOT NULL DEFAULT 'live';
UPDATE replicas SET state = CASE WHEN stopped_at IS NOT NULL THEN 'stopped'
    WHEN stopping THEN 'stopping' ELSE 'live' END;
