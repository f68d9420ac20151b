-- The ordering rule only ever asks about unfinished jobs of a key, so only
-- those are indexed: the index stays as small as the backlog, instead of
-- taking one more random leaf for every job ever stored. Queries that use it
-- repeat the index's condition (`status IN ('pending', 'running')`), which is
-- how the planner knows it may.
DROP INDEX jobs_ordering;
CREATE INDEX jobs_ordering ON jobs (ordering_key, id) WHERE status IN ('pending', 'running');
