-- Since when a replica has renewed its lease without a gap (a missed renewal starts it anew).
-- Only a replica that has been renewing for a whole lease, and renewed lately, may judge the
-- others' leases: after a store outage nobody could renew, and the first one back must not
-- find all the others lost.
ALTER TABLE replicas ADD COLUMN up_since BIGINT NOT NULL DEFAULT 0;
