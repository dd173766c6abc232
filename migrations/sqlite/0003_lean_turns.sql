-- Fewer pages written per turn (`bench p3`: a commit dirtied ~1.2 pages per write, most of them
-- index leaves keyed by a random session or worker id, one per session in flight).

-- No query reads it.
DROP INDEX admin_events_worker;
-- Session filters use the (session_id, message_id) unique index.
DROP INDEX turns_session;
-- A worker's turns are found through its session (a worker serves one session).
DROP INDEX turns_worker;
-- Never read: a reply's text is in its `complete` event. It doubled the row a turn's last
-- update rewrites.
ALTER TABLE turns DROP COLUMN final_text;
