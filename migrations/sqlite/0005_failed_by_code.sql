-- The overview's (and `/metrics`') failed-turn counts by code read this index, not every turn.
-- Partial: a turn that completes adds nothing to it.
CREATE INDEX turns_code ON turns (code) WHERE code IS NOT NULL;
