-- Session ownership (replicas.md): the replica that runs a session's actor and worker, and the
-- epoch of its claim, which every write it makes for the session is fenced on. Turns get their
-- place in the session's order, given under the session row's lock. A replica's state is
-- judged once and kept: `lost` never comes back to `live`.
ALTER TABLE sessions ADD COLUMN owner TEXT;
ALTER TABLE sessions ADD COLUMN owner_epoch INTEGER NOT NULL DEFAULT 0;
CREATE INDEX sessions_owner ON sessions (owner) WHERE owner IS NOT NULL;

ALTER TABLE turns ADD COLUMN seq INTEGER;
UPDATE turns SET seq = (SELECT COUNT(*) FROM turns t2 WHERE t2.session_id = turns.session_id
    AND (t2.created_at < turns.created_at OR (t2.created_at = turns.created_at AND t2.id <= turns.id)));
-- The last place given in the session's order (kept when history is pruned).
ALTER TABLE sessions ADD COLUMN turn_seq INTEGER NOT NULL DEFAULT 0;
UPDATE sessions SET turn_seq = COALESCE((SELECT MAX(seq) FROM turns WHERE turns.session_id = sessions.id), 0);

ALTER TABLE replicas ADD COLUMN state TEXT NOT NULL DEFAULT 'live';
UPDATE replicas SET state = CASE WHEN stopped_at IS NOT NULL THEN 'stopped'
    WHEN stopping THEN 'stopping' ELSE 'live' END;
