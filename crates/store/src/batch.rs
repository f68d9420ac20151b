//! Multi-row statements behind [`crate::Store::accept_batch`]: a batch costs a
//! handful of statements (round trips) whatever its size, not two per request.
//!
//! - SQLite: one lookup and one `INSERT ... VALUES (..),(..)` per chunk of rows,
//!   chunked under SQLite's limit of 32,766 bound parameters. The text depends on the row
//!   count, so these statements are not kept in the per-connection statement cache
//!   (they would push out the small fixed statements the engine reuses).
//! - PostgreSQL: one statement over `UNNEST` of array parameters, so its text is
//!   fixed (prepared once per connection) and there is no parameter limit to chunk for.

use crate::DEFAULT_MAX_ATTEMPTS;
use crate::StoreError;
use crate::jobs::{insert_job_postgres, insert_job_sqlite};
use crate::model::{Acceptance, NewInbound, NewJob};
use crate::rows::to_json_text;
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

/// Rows of the single-round-trip path: one inbox row and the jobs that go with it.
const ONE_TRIP_JOB_PARAMETERS_PER_ROW: usize = 10;

/// A whole batch on a SQLite file store in ONE round trip to sqlx's SQLite worker
/// thread: `BEGIN IMMEDIATE; INSERT inbox …; SELECT …; INSERT jobs …; SELECT …;
/// COMMIT` sent as one multi-statement query. On a busy machine each round trip
/// waits for two thread wake-ups, and the single writer waits for all of them, so
/// this is what makes group commit pay off. Jobs find their inbox row by its
/// (source, dedupe_key); the inbox insert has no conflict clause, so a row that
/// exists already fails the statement.
///
/// Returns `None` (after rolling back) when the batch has a job with a debounce
/// key (which needs the per-job path), when a row existed already, or on any
/// error: the caller then takes the general path, which reports real errors.
pub(crate) async fn accept_in_one_trip_sqlite(
    pool: &sqlx::SqlitePool,
    batch: &[(NewInbound, Vec<NewJob>)],
    now: i64,
) -> Result<Option<Vec<Acceptance>>, StoreError> {
    if batch
        .iter()
        .any(|(_, jobs)| jobs.iter().any(|j| j.unique_key.is_some()))
    {
        return Ok(None);
    }
    // First occurrence of each identity; later ones answer as its duplicates.
    let mut first_of: HashMap<(&str, &str), usize> = HashMap::with_capacity(batch.len());
    let mut rows = Vec::with_capacity(batch.len());
    let mut jobs = Vec::with_capacity(batch.len());
    for (index, (inbound, inbound_jobs)) in batch.iter().enumerate() {
        let identity = (inbound.source.as_str(), inbound.dedupe_key.as_str());
        if first_of.contains_key(&identity) {
            continue;
        }
        first_of.insert(identity, index);
        rows.push(InboxInsert {
            source: identity.0,
            dedupe_key: identity.1,
            body: &inbound.body,
            headers: to_json_text("inbox headers", &inbound.headers)?,
        });
        for job in inbound_jobs {
            jobs.push((identity, job, to_json_text("job payload", &job.payload)?));
        }
    }

    let mut sql = QueryBuilder::<Sqlite>::new("BEGIN IMMEDIATE; ");
    let inbox_chunks = rows.chunks(rows_per_statement(INBOX_PARAMETERS_PER_ROW));
    for chunk in inbox_chunks.clone() {
        sql.push("INSERT INTO inbox (source, dedupe_key, body, headers, received_at) ");
        sql.push_values(chunk, |mut values, row| {
            values
                .push_bind(row.source)
                .push_bind(row.dedupe_key)
                .push_bind(row.body)
                .push_bind(row.headers.as_str())
                .push_bind(now);
        });
        sql.push("; SELECT last_insert_rowid(), changes(); ");
    }
    let job_chunks = jobs.chunks(rows_per_statement(ONE_TRIP_JOB_PARAMETERS_PER_ROW));
    for chunk in job_chunks.clone() {
        sql.push(
            "INSERT INTO jobs (queue, kind, ordering_key, payload, status, attempts, \
             max_attempts, run_at, unique_key, inbox_id, created_at, updated_at) ",
        );
        sql.push_values(chunk, |mut values, ((source, key), job, payload)| {
            values
                .push_bind(job.queue.as_str())
                .push_bind(job.kind.as_str())
                .push_bind(job.ordering_key.as_str())
                .push_bind(payload.as_str())
                .push_unseparated(", 'pending', 0")
                .push_bind(job.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS))
                .push_bind(job.run_at.unwrap_or(now))
                .push("NULL")
                .push("(SELECT id FROM inbox WHERE source = ")
                .push_bind_unseparated(*source)
                .push_unseparated(" AND dedupe_key = ")
                .push_bind_unseparated(*key)
                .push_unseparated(")")
                .push_bind(now)
                .push_bind(now);
        });
        sql.push("; SELECT last_insert_rowid(), changes(); ");
    }
    sql.push("COMMIT");

    let mut conn = pool.acquire().await?;
    let counts: Vec<(i64, i64)> = match sql
        .build_query_as()
        .persistent(false)
        .fetch_all(&mut *conn)
        .await
    {
        Ok(counts) => counts,
        Err(error) => {
            tracing::debug!(%error, "one-trip accept rolled back, taking the general path");
            // The transaction may still be open (the worker stops at the failing
            // statement); "no transaction is active" is fine too.
            let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
            return Ok(None);
        }
    };
    // Committed: from here on, anything unexpected is an error, never a retry.
    let expected: Vec<usize> = inbox_chunks
        .map(<[_]>::len)
        .chain(job_chunks.map(<[_]>::len))
        .collect();
    if counts.len() != expected.len()
        || counts
            .iter()
            .zip(&expected)
            .any(|((_, changed), len)| *changed != *len as i64)
    {
        return Err(StoreError::decode(
            "batch counts",
            format!("expected {expected:?} rows per statement, got {counts:?}"),
        ));
    }
    let ids = |(last, changed): &(i64, i64)| (last - changed + 1)..=*last;
    let (inbox_counts, job_counts) = counts.split_at(
        rows.len()
            .div_ceil(rows_per_statement(INBOX_PARAMETERS_PER_ROW).max(1)),
    );
    let mut inbox_ids = inbox_counts.iter().flat_map(ids);
    let mut job_ids = job_counts.iter().flat_map(ids);

    let mut new_ids: Vec<Option<i64>> = vec![None; batch.len()];
    let mut outcomes = Vec::with_capacity(batch.len());
    for (index, (inbound, inbound_jobs)) in batch.iter().enumerate() {
        let identity = (inbound.source.as_str(), inbound.dedupe_key.as_str());
        let first = first_of.get(&identity).copied().unwrap_or(index);
        let outcome =
            if first == index {
                let inbox_id = inbox_ids
                    .next()
                    .ok_or_else(|| StoreError::decode("inbox ids", "fewer ids than rows"))?;
                new_ids[index] = Some(inbox_id);
                let ids: Vec<i64> = job_ids.by_ref().take(inbound_jobs.len()).collect();
                if ids.len() != inbound_jobs.len() {
                    return Err(StoreError::decode("job ids", "fewer ids than jobs"));
                }
                Acceptance::Accepted {
                    inbox_id,
                    job_ids: ids,
                }
            } else {
                Acceptance::Duplicate {
                    inbox_id: new_ids.get(first).copied().flatten().ok_or_else(|| {
                        StoreError::decode("inbox ids", "repeat before its first")
                    })?,
                    response: None,
                }
            };
        outcomes.push(outcome);
    }
    Ok(Some(outcomes))
}
