//! Multi-row statements behind [`crate::Store::accept_batch`]: a batch costs a
//! handful of statements (round trips) whatever its size, not two per request.
//!
//! - SQLite (in-memory stores; file stores go through `group_commit.rs`): one
//!   lookup and one `INSERT ... VALUES (..),(..)` per chunk of rows,
//!   chunked under SQLite's limit of 32,766 bound parameters. The text depends on the row
//!   count, so these statements are not kept in the per-connection statement cache
//!   (they would push out the small fixed statements the engine reuses).
//! - PostgreSQL: one statement over `UNNEST` of array parameters, so its text is
//!   fixed (prepared once per connection) and there is no parameter limit to chunk for.

use crate::DEFAULT_MAX_ATTEMPTS;
use crate::StoreError;
use crate::jobs::{insert_job_postgres, insert_job_sqlite};
use crate::model::NewJob;
use std::collections::HashMap;

use sqlx::{PgConnection, QueryBuilder, Sqlite, SqliteConnection};

/// SQLite's default bound-parameter limit (SQLITE_MAX_VARIABLE_NUMBER since 3.32).
const SQLITE_MAX_PARAMETERS: usize = 32_766;
const INBOX_PARAMETERS_PER_ROW: usize = 5;
const JOB_PARAMETERS_PER_ROW: usize = 9;

/// An inbox row to insert, JSON already encoded.
pub(crate) struct InboxInsert<'a> {
    pub source: &'a str,
    pub dedupe_key: &'a str,
    pub body: &'a [u8],
    pub headers: String,
}

/// A job to insert for an accepted inbox row, payload already encoded.
pub(crate) struct JobInsert<'a> {
    pub job: &'a NewJob,
    pub payload: String,
    pub inbox_id: i64,
}

/// An inbox row that was there before: (id, source, dedupe_key, response).
pub(crate) type ExistingInbox = (i64, String, String, Option<String>);

fn rows_per_statement(parameters_per_row: usize) -> usize {
    (SQLITE_MAX_PARAMETERS / parameters_per_row).max(1)
}

/// What became of one inbox row of a batch.
pub(crate) enum InboxFate {
    /// Inserted now with this id.
    New(i64),
    /// Already stored: its id and recorded response.
    Old(i64, Option<String>),
}

/// Store the rows whose (source, dedupe_key) is not stored yet; returns each row's
/// fate, in order. `rows` has no repeated identity. The caller's transaction must
/// have been opened with `BEGIN IMMEDIATE`, so nobody writes between the lookup and
/// the insert.
///
/// The lookup returns only the rows already there (usually none) and the insert
/// returns no rows: sqlx hands SQLite result rows over one by one through a channel
/// between threads, which costs more than the insert itself. Under the write lock
/// one INSERT assigns consecutive ids in VALUES order, so the new ids are the
/// `rows_affected` ids ending at `last_insert_rowid`.
pub(crate) async fn insert_inbox_sqlite(
    conn: &mut SqliteConnection,
    rows: &[InboxInsert<'_>],
    now: i64,
) -> Result<Option<Vec<InboxFate>>, StoreError> {
    let mut fates = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(rows_per_statement(INBOX_PARAMETERS_PER_ROW)) {
        let identities: Vec<(&str, &str)> =
            chunk.iter().map(|r| (r.source, r.dedupe_key)).collect();
        let mut existing: HashMap<(&str, &str), (i64, Option<String>)> = HashMap::new();
        let found = find_inbox_sqlite(&mut *conn, &identities).await?;
        for (id, source, key, response) in found {
            if let Some(identity) = identities
                .iter()
                .find(|(s, k)| *s == source.as_str() && *k == key.as_str())
            {
                existing.insert(*identity, (id, response));
            }
        }
        let fresh: Vec<&InboxInsert<'_>> = chunk
            .iter()
            .filter(|r| !existing.contains_key(&(r.source, r.dedupe_key)))
            .collect();
        let mut new_ids = 0..0;
        if !fresh.is_empty() {
            let mut sql = QueryBuilder::<Sqlite>::new(
                "INSERT INTO inbox (source, dedupe_key, body, headers, received_at) ",
            );
            sql.push_values(&fresh, |mut values, row| {
                values
                    .push_bind(row.source)
                    .push_bind(row.dedupe_key)
                    .push_bind(row.body)
                    .push_bind(row.headers.as_str())
                    .push_bind(now);
            });
            let done = sql.build().persistent(false).execute(&mut *conn).await?;
            let inserted = i64::try_from(done.rows_affected()).unwrap_or(i64::MAX);
            if inserted != fresh.len() as i64 {
                return Err(StoreError::decode(
                    "inbox ids",
                    format!("{} rows to insert, {inserted} inserted", fresh.len()),
                ));
            }
            let last = done.last_insert_rowid();
            new_ids = last - inserted + 1..last + 1;
        }
        for row in chunk {
            match existing.remove(&(row.source, row.dedupe_key)) {
                Some((id, response)) => fates.push(InboxFate::Old(id, response)),
                None => match new_ids.next() {
                    Some(id) => fates.push(InboxFate::New(id)),
                    None => {
                        return Err(StoreError::decode("inbox ids", "fewer ids than rows"));
                    }
                },
            }
        }
    }
    Ok(Some(fates))
}

/// The usual case of [`insert_inbox_sqlite`] in one statement: insert every row,
/// skipping those already stored. When none was skipped their ids are the
/// consecutive ids ending at `last_insert_rowid` and the fates are returned; when
/// some were skipped it returns `None`: the caller rolls back and goes again with
/// [`insert_inbox_sqlite`] (which rows were skipped cannot be told from here).
pub(crate) async fn insert_new_inbox_sqlite(
    conn: &mut SqliteConnection,
    rows: &[InboxInsert<'_>],
    now: i64,
) -> Result<Option<Vec<InboxFate>>, StoreError> {
    let mut fates = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(rows_per_statement(INBOX_PARAMETERS_PER_ROW)) {
        let mut sql = QueryBuilder::<Sqlite>::new(
            "INSERT INTO inbox (source, dedupe_key, body, headers, received_at) ",
        );
        sql.push_values(chunk, |mut values, row| {
            values
                .push_bind(row.source)
                .push_bind(row.dedupe_key)
                .push_bind(row.body)
                .push_bind(row.headers.as_str())
                .push_bind(now);
        });
        sql.push(" ON CONFLICT (source, dedupe_key) DO NOTHING");
        let done = sql.build().persistent(false).execute(&mut *conn).await?;
        let inserted = i64::try_from(done.rows_affected()).unwrap_or(i64::MAX);
        if inserted != chunk.len() as i64 {
            return Ok(None);
        }
        let last = done.last_insert_rowid();
        fates.extend((last - inserted + 1..=last).map(InboxFate::New));
    }
    Ok(Some(fates))
}

/// [`insert_inbox_sqlite`] for PostgreSQL: insert with `ON CONFLICT DO NOTHING`,
/// then look up the rows that were there. A conflicting row of a concurrent
/// transaction makes the insert wait for it; the lookup (a new snapshot under
/// READ COMMITTED) then sees it.
pub(crate) async fn insert_inbox_postgres(
    conn: &mut PgConnection,
    rows: &[InboxInsert<'_>],
    now: i64,
) -> Result<Option<Vec<InboxFate>>, StoreError> {
    let sources: Vec<&str> = rows.iter().map(|r| r.source).collect();
    let keys: Vec<&str> = rows.iter().map(|r| r.dedupe_key).collect();
    let bodies: Vec<&[u8]> = rows.iter().map(|r| r.body).collect();
    let headers: Vec<&str> = rows.iter().map(|r| r.headers.as_str()).collect();
    let inserted: Vec<(i64, String, String)> = sqlx::query_as(
        "INSERT INTO inbox (source, dedupe_key, body, headers, received_at) \
         SELECT source, dedupe_key, body, headers, $5 \
         FROM UNNEST($1::text[], $2::text[], $3::bytea[], $4::text[]) \
              WITH ORDINALITY AS t(source, dedupe_key, body, headers, n) \
         ORDER BY n \
         ON CONFLICT (source, dedupe_key) DO NOTHING RETURNING id, source, dedupe_key",
    )
    .bind(&sources)
    .bind(&keys)
    .bind(&bodies)
    .bind(&headers)
    .bind(now)
    .fetch_all(&mut *conn)
    .await?;
    let mut new: HashMap<(&str, &str), i64> = HashMap::with_capacity(inserted.len());
    for (id, source, key) in &inserted {
        new.insert((source.as_str(), key.as_str()), *id);
    }
    let missing: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r.source, r.dedupe_key))
        .filter(|identity| !new.contains_key(identity))
        .collect();
    let mut existing: HashMap<(&str, &str), (i64, Option<String>)> = HashMap::new();
    let found = if missing.is_empty() {
        Vec::new()
    } else {
        find_inbox_postgres(&mut *conn, &missing).await?
    };
    for (id, source, key, response) in found {
        if let Some(identity) = missing
            .iter()
            .find(|(s, k)| *s == source.as_str() && *k == key.as_str())
        {
            existing.insert(*identity, (id, response));
        }
    }
    let fates: Result<Vec<InboxFate>, StoreError> = rows
        .iter()
        .map(|r| {
            let identity = (r.source, r.dedupe_key);
            if let Some(id) = new.get(&identity) {
                Ok(InboxFate::New(*id))
            } else if let Some((id, response)) = existing.remove(&identity) {
                Ok(InboxFate::Old(id, response))
            } else {
                // Not expected (see above); rolled back, so a retry may succeed.
                Err(StoreError::decode(
                    "inbox row",
                    format!(
                        "({}, {}) was neither inserted nor found",
                        r.source, r.dedupe_key
                    ),
                ))
            }
        })
        .collect();
    fates.map(Some)
}

/// The stored rows for these (source, dedupe_key) identities.
async fn find_inbox_sqlite(
    conn: &mut SqliteConnection,
    identities: &[(&str, &str)],
) -> Result<Vec<ExistingInbox>, StoreError> {
    let mut sql = QueryBuilder::<Sqlite>::new(
        "SELECT id, source, dedupe_key, response FROM inbox WHERE (source, dedupe_key) IN (",
    );
    sql.push_values(identities, |mut values, (source, key)| {
        values.push_bind(*source).push_bind(*key);
    });
    sql.push(")");
    let found = sql
        .build_query_as()
        .persistent(false)
        .fetch_all(&mut *conn)
        .await?;
    Ok(found)
}

/// [`find_inbox_sqlite`] for PostgreSQL.
async fn find_inbox_postgres(
    conn: &mut PgConnection,
    identities: &[(&str, &str)],
) -> Result<Vec<ExistingInbox>, StoreError> {
    let sources: Vec<&str> = identities.iter().map(|(s, _)| *s).collect();
    let keys: Vec<&str> = identities.iter().map(|(_, k)| *k).collect();
    let found = sqlx::query_as(
        "SELECT id, source, dedupe_key, response FROM inbox \
         WHERE (source, dedupe_key) IN (SELECT * FROM UNNEST($1::text[], $2::text[]))",
    )
    .bind(&sources)
    .bind(&keys)
    .fetch_all(&mut *conn)
    .await?;
    Ok(found)
}

/// Insert jobs without a debounce key, in order; returns their ids in the same order.
/// Rows get consecutive ids in VALUES order (the statement holds the write lock), so
/// they are the `rows_affected` ids ending at `last_insert_rowid`.
pub(crate) async fn insert_jobs_sqlite(
    conn: &mut SqliteConnection,
    jobs: &[JobInsert<'_>],
    now: i64,
) -> Result<Vec<i64>, StoreError> {
    let mut ids = Vec::with_capacity(jobs.len());
    for chunk in jobs.chunks(rows_per_statement(JOB_PARAMETERS_PER_ROW)) {
        let mut sql = QueryBuilder::<Sqlite>::new(
            "INSERT INTO jobs (queue, kind, ordering_key, payload, status, attempts, \
             max_attempts, run_at, unique_key, inbox_id, created_at, updated_at) ",
        );
        sql.push_values(chunk, |mut values, row| {
            values
                .push_bind(row.job.queue.as_str())
                .push_bind(row.job.kind.as_str())
                .push_bind(row.job.ordering_key.as_str())
                .push_bind(row.payload.as_str())
                .push_unseparated(", 'pending', 0")
                .push_bind(row.job.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS))
                .push_bind(row.job.run_at.unwrap_or(now))
                .push("NULL")
                .push_bind(row.inbox_id)
                .push_bind(now)
                .push_bind(now);
        });
        let done = sql.build().persistent(false).execute(&mut *conn).await?;
        let inserted = i64::try_from(done.rows_affected()).unwrap_or(i64::MAX);
        if inserted != chunk.len() as i64 {
            return Err(StoreError::decode(
                "job ids",
                format!("{} jobs to insert, {inserted} inserted", chunk.len()),
            ));
        }
        let last = done.last_insert_rowid();
        ids.extend(last - inserted + 1..=last);
    }
    Ok(ids)
}

/// [`insert_jobs_sqlite`] for PostgreSQL.
pub(crate) async fn insert_jobs_postgres(
    conn: &mut PgConnection,
    jobs: &[JobInsert<'_>],
    now: i64,
) -> Result<Vec<i64>, StoreError> {
    let queues: Vec<&str> = jobs.iter().map(|j| j.job.queue.as_str()).collect();
    let kinds: Vec<&str> = jobs.iter().map(|j| j.job.kind.as_str()).collect();
    let ordering_keys: Vec<&str> = jobs.iter().map(|j| j.job.ordering_key.as_str()).collect();
    let payloads: Vec<&str> = jobs.iter().map(|j| j.payload.as_str()).collect();
    let max_attempts: Vec<i32> = jobs
        .iter()
        .map(|j| j.job.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS))
        .collect();
    let run_at: Vec<i64> = jobs.iter().map(|j| j.job.run_at.unwrap_or(now)).collect();
    let inbox_ids: Vec<i64> = jobs.iter().map(|j| j.inbox_id).collect();
    let mut ids: Vec<i64> = sqlx::query_scalar(
        "INSERT INTO jobs (queue, kind, ordering_key, payload, status, attempts, \
         max_attempts, run_at, unique_key, inbox_id, created_at, updated_at) \
         SELECT queue, kind, ordering_key, payload, 'pending', 0, max_attempts, run_at, NULL, \
                inbox_id, $8, $8 \
         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::int4[], $6::int8[], \
                     $7::int8[]) \
              WITH ORDINALITY AS t(queue, kind, ordering_key, payload, max_attempts, run_at, \
                                   inbox_id, n) \
         ORDER BY n RETURNING id",
    )
    .bind(&queues)
    .bind(&kinds)
    .bind(&ordering_keys)
    .bind(&payloads)
    .bind(&max_attempts)
    .bind(&run_at)
    .bind(&inbox_ids)
    .bind(now)
    .fetch_all(&mut *conn)
    .await?;
    // Identities are drawn row by row as the insert consumes the ordered SELECT,
    // so sorting the returned ids restores the order given.
    ids.sort_unstable();
    Ok(ids)
}

/// Insert `jobs` in order: runs of plain jobs as one multi-row statement each,
/// jobs with a debounce key one by one (they may update a pending job instead).
/// Returns the job ids in the order given. Compiled once per backend.
macro_rules! insert_jobs_in_order {
    ($name:ident, $conn:ty, $many:ident, $one:ident) => {
        pub(crate) async fn $name(
            conn: &mut $conn,
            jobs: &[JobInsert<'_>],
            now: i64,
        ) -> Result<Vec<i64>, StoreError> {
            let mut ids = Vec::with_capacity(jobs.len());
            let mut rest = jobs;
            while !rest.is_empty() {
                let plain = rest
                    .iter()
                    .position(|j| j.job.unique_key.is_some())
                    .unwrap_or(rest.len());
                if plain > 0 {
                    ids.extend($many(&mut *conn, &rest[..plain], now).await?);
                    rest = &rest[plain..];
                } else if let Some((first, others)) = rest.split_first() {
                    ids.push($one(&mut *conn, first.job, Some(first.inbox_id), now).await?);
                    rest = others;
                }
            }
            Ok(ids)
        }
    };
}

insert_jobs_in_order!(
    insert_jobs_in_order_sqlite,
    SqliteConnection,
    insert_jobs_sqlite,
    insert_job_sqlite
);
insert_jobs_in_order!(
    insert_jobs_in_order_postgres,
    PgConnection,
    insert_jobs_postgres,
    insert_job_postgres
);
