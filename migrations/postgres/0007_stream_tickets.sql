-- Stream tickets: what a browser's EventSource puts in a stream URL instead of a bearer token
-- (it cannot send headers). Short-lived, single use (redeeming deletes the row), and in the
-- database so that any replica can redeem a ticket another one issued. `session_id` NULL: the
-- admin stream.
CREATE TABLE stream_tickets (
    ticket TEXT PRIMARY KEY,
    session_id TEXT,
    holder TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX stream_tickets_expiry ON stream_tickets (expires_at);
