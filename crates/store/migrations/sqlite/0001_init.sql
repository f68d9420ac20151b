-- ticketbridge store, SQLite. All timestamps are i64 unix milliseconds.
CREATE TABLE inbox (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    source      TEXT    NOT NULL,
    dedupe_key  TEXT    NOT NULL,
    body        BLOB    NOT NULL,
    headers     TEXT    NOT NULL,
    received_at INTEGER NOT NULL,
    response    TEXT,
    UNIQUE (source, dedupe_key)
);

CREATE TABLE jobs (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    queue        TEXT    NOT NULL,
    kind         TEXT    NOT NULL,
    ordering_key TEXT    NOT NULL,
    payload      TEXT    NOT NULL,
    status       TEXT    NOT NULL CHECK (status IN ('pending', 'running', 'succeeded', 'dead')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    run_at       INTEGER NOT NULL,
    locked_by    TEXT,
    locked_until INTEGER,
    last_error   TEXT,
    unique_key   TEXT,
    inbox_id     INTEGER REFERENCES inbox (id) ON DELETE SET NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    finished_at  INTEGER
);
CREATE INDEX jobs_claim ON jobs (queue, status, run_at);
CREATE INDEX jobs_ordering ON jobs (ordering_key, id);
CREATE INDEX jobs_status ON jobs (status, locked_until);
CREATE INDEX jobs_unique ON jobs (unique_key) WHERE unique_key IS NOT NULL;

CREATE TABLE links (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    kind          TEXT    NOT NULL,
    source_system TEXT    NOT NULL,
    source_id     TEXT    NOT NULL,
    target_system TEXT    NOT NULL,
    target_id     TEXT,
    state         TEXT    NOT NULL CHECK (state IN ('pending', 'linked')),
    data          TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    UNIQUE (kind, source_system, source_id, target_system)
);
CREATE INDEX links_target ON links (target_system, kind, target_id);

CREATE TABLE own_writes (
    system      TEXT    NOT NULL,
    object_key  TEXT    NOT NULL,
    fingerprint TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    UNIQUE (system, object_key, fingerprint)
);
CREATE INDEX own_writes_created ON own_writes (created_at);

CREATE TABLE audit (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id     INTEGER,
    system     TEXT    NOT NULL,
    action     TEXT    NOT NULL,
    object_key TEXT    NOT NULL,
    detail     TEXT    NOT NULL,
    at         INTEGER NOT NULL
);

CREATE TABLE cursors (
    name       TEXT PRIMARY KEY,
    value      TEXT    NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE kv (
    namespace  TEXT    NOT NULL,
    key        TEXT    NOT NULL,
    value      TEXT    NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (namespace, key)
);
