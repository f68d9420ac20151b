-- Audit lines that must be written at most once carry a dedupe key: the unique
-- index makes "record it unless already recorded" one atomic statement.
ALTER TABLE audit ADD COLUMN dedupe_key TEXT;
CREATE UNIQUE INDEX audit_dedupe ON audit (dedupe_key) WHERE dedupe_key IS NOT NULL;
