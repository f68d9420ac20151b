-- The retention sweep deletes audit lines older than engine.keep_audit, oldest
-- first: an index on the time finds them without reading the whole table.
CREATE INDEX audit_at ON audit (at);
