//! Raw rows as both backends return them (JSON kept as text), and their conversion
//! into the public records.

use crate::StoreError;
use crate::model::{AuditEntry, InboxRecord, Job, Link};
use serde_json::Value;

/// Column lists, as macros so SQL can be assembled with `concat!` at compile time.
macro_rules! job_columns {
    () => {
        "id, queue, kind, ordering_key, payload, status, attempts, max_attempts, run_at, \
         locked_by, locked_until, last_error, unique_key, inbox_id, created_at, updated_at, \
         finished_at"
    };
}

macro_rules! link_columns {
    () => {
        "id, kind, source_system, source_id, target_system, target_id, state, data, \
         created_at, updated_at"
    };
}

macro_rules! inbox_columns {
    () => {
        "id, source, dedupe_key, body, headers, received_at, response"
    };
}

macro_rules! audit_columns {
    () => {
        "id, job_id, system, action, object_key, detail, at"
    };
}

pub(crate) fn parse_json(what: &'static str, text: &str) -> Result<Value, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::decode(what, e))
}

pub(crate) fn to_json_text(what: &'static str, value: &Value) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::encode(what, e))
}

#[derive(sqlx::FromRow)]
pub(crate) struct JobRow {
    id: i64,
    queue: String,
    kind: String,
    ordering_key: String,
    payload: String,
    status: String,
    attempts: i32,
    max_attempts: i32,
    run_at: i64,
    locked_by: Option<String>,
    locked_until: Option<i64>,
    last_error: Option<String>,
    unique_key: Option<String>,
    inbox_id: Option<i64>,
    created_at: i64,
    updated_at: i64,
    finished_at: Option<i64>,
}

impl JobRow {
    /// A row of `job_columns!()` read by rusqlite (the SQLite writer thread).
    pub(crate) fn from_rusqlite(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(JobRow {
            id: row.get(0)?,
            queue: row.get(1)?,
            kind: row.get(2)?,
            ordering_key: row.get(3)?,
            payload: row.get(4)?,
            status: row.get(5)?,
            attempts: row.get(6)?,
            max_attempts: row.get(7)?,
            run_at: row.get(8)?,
            locked_by: row.get(9)?,
            locked_until: row.get(10)?,
            last_error: row.get(11)?,
            unique_key: row.get(12)?,
            inbox_id: row.get(13)?,
            created_at: row.get(14)?,
            updated_at: row.get(15)?,
            finished_at: row.get(16)?,
        })
    }
}

impl TryFrom<JobRow> for Job {
    type Error = StoreError;
    fn try_from(row: JobRow) -> Result<Self, StoreError> {
        Ok(Job {
            id: row.id,
            payload: parse_json("job payload", &row.payload)?,
            status: row
                .status
                .parse()
                .map_err(|e| StoreError::decode("job status", e))?,
            queue: row.queue,
            kind: row.kind,
            ordering_key: row.ordering_key,
            attempts: row.attempts,
            max_attempts: row.max_attempts,
            run_at: row.run_at,
            locked_by: row.locked_by,
            locked_until: row.locked_until,
            last_error: row.last_error,
            unique_key: row.unique_key,
            inbox_id: row.inbox_id,
            created_at: row.created_at,
            updated_at: row.updated_at,
            finished_at: row.finished_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct LinkRow {
    id: i64,
    kind: String,
    source_system: String,
    source_id: String,
    target_system: String,
    target_id: Option<String>,
    state: String,
    data: String,
    created_at: i64,
    updated_at: i64,
}

impl LinkRow {
    /// A row of `link_columns!()` read by rusqlite (the SQLite writer thread).
    pub(crate) fn from_rusqlite(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(LinkRow {
            id: row.get(0)?,
            kind: row.get(1)?,
            source_system: row.get(2)?,
            source_id: row.get(3)?,
            target_system: row.get(4)?,
            target_id: row.get(5)?,
            state: row.get(6)?,
            data: row.get(7)?,
            created_at: row.get(8)?,
            updated_at: row.get(9)?,
        })
    }
}

impl TryFrom<LinkRow> for Link {
    type Error = StoreError;
    fn try_from(row: LinkRow) -> Result<Self, StoreError> {
        Ok(Link {
            id: row.id,
            state: row
                .state
                .parse()
                .map_err(|e| StoreError::decode("link state", e))?,
            data: parse_json("link data", &row.data)?,
            kind: row.kind,
            source_system: row.source_system,
            source_id: row.source_id,
            target_system: row.target_system,
            target_id: row.target_id,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct InboxRow {
    id: i64,
    source: String,
    dedupe_key: String,
    body: Vec<u8>,
    headers: String,
    received_at: i64,
    response: Option<String>,
}

impl TryFrom<InboxRow> for InboxRecord {
    type Error = StoreError;
    fn try_from(row: InboxRow) -> Result<Self, StoreError> {
        Ok(InboxRecord {
            id: row.id,
            headers: parse_json("inbox headers", &row.headers)?,
            response: row
                .response
                .as_deref()
                .map(|text| parse_json("inbox response", text))
                .transpose()?,
            source: row.source,
            dedupe_key: row.dedupe_key,
            body: row.body,
            received_at: row.received_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct AuditRow {
    id: i64,
    job_id: Option<i64>,
    system: String,
    action: String,
    object_key: String,
    detail: String,
    at: i64,
}

impl TryFrom<AuditRow> for AuditEntry {
    type Error = StoreError;
    fn try_from(row: AuditRow) -> Result<Self, StoreError> {
        Ok(AuditEntry {
            id: row.id,
            detail: parse_json("audit detail", &row.detail)?,
            job_id: row.job_id,
            system: row.system,
            action: row.action,
            object_key: row.object_key,
            at: row.at,
        })
    }
}

/// Convert a list of rows, failing on the first that does not decode.
pub(crate) fn convert_all<R, T>(rows: Vec<R>) -> Result<Vec<T>, StoreError>
where
    T: TryFrom<R, Error = StoreError>,
{
    rows.into_iter().map(T::try_from).collect()
}
