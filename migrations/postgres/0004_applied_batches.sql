-- Each committed batch leaves its token here, in the same transaction. When the reply to a
-- COMMIT is lost (the connection broke), the gateway cannot tell whether the batch committed;
-- it asks this table before trying again, so a batch is never applied twice (a delta twice in
-- a reply). Pruned with the event log.
CREATE TABLE applied_batches (
    token TEXT COLLATE "C" PRIMARY KEY,
    at    BIGINT NOT NULL
);
CREATE INDEX applied_batches_at ON applied_batches (at);
