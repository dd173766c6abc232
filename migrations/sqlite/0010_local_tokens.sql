-- Local tokens: what `POST /api/local-init` gives a loopback client (the `lobu` CLI) in
-- loopback-trust mode (no [[tokens]]), accepted for creating sessions while that mode lasts.
-- In the database so that every replica accepts what one minted.
CREATE TABLE local_tokens (
    token TEXT PRIMARY KEY,
    client TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
