-- A client connecting without a cursor is owed the events of its session's open turns: found
-- through this index (a handful of entries), not by walking the session's whole log.
CREATE INDEX turns_open_session ON turns (session_id) WHERE ended_at IS NULL;
