//! The statements behind [`crate::Store::accept_batch`] for the stores that do
//! not go through the SQLite writer thread (`group_commit.rs`):
//!
//! - PostgreSQL: one statement over `UNNEST` of array parameters per table, so a
//!   batch costs a handful of round trips whatever its size, the text is fixed
//!   (prepared once per connection) and there is no parameter limit to chunk for.
//! - In-memory SQLite (tests, the demo; one connection): row by row, with the
//!   same statements as the writer thread.

use crate::DEFAULT_MAX_ATTEMPTS;
use crate::StoreError;
use crate::jobs::{insert_job_postgres, insert_job_sqlite};
use crate::model::NewJob;
use std::collections::HashMap;

use sqlx::{PgConnection, SqliteConnection};

/// Insert one inbox row unless its (source, dedupe_key) is stored already.
pub(crate) const INSERT_INBOX: &str = "INSERT INTO inbox (source, dedupe_key, body, headers, \
     received_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (source, dedupe_key) DO NOTHING";
/// The stored row of an identity: (id, response).
pub(crate) const FIND_INBOX: &str =
    "SELECT id, response FROM inbox WHERE source = $1 AND dedupe_key = $2";

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

/// What became of one inbox row of a batch.
pub(crate) enum InboxFate {
    /// Inserted now with this id.
    New(i64),
    /// Already stored: its id and recorded response.
    Old(i64, Option<String>),
}

/// Store the rows whose (source, dedupe_key) is not stored yet; returns each row's
/// fate, in order. `rows` has no repeated identity. Row by row: only in-memory
/// stores (one connection, so nobody writes in between) come here.
pub(crate) async fn insert_inbox_sqlite(
    conn: &mut SqliteConnection,
    rows: &[InboxInsert<'_>],
    now: i64,
) -> Result<Vec<InboxFate>, StoreError> {
    let mut fates = Vec::with_capacity(rows.len());
    for row in rows {
        let done = sqlx::query(INSERT_INBOX)
            .bind(row.source)
            .bind(row.dedupe_key)
            .bind(row.body)
            .bind(row.headers.as_str())
            .bind(now)
            .execute(&mut *conn)
            .await?;
        if done.rows_affected() == 1 {
            fates.push(InboxFate::New(done.last_insert_rowid()));
        } else {
            let (id, response): (i64, Option<String>) = sqlx::query_as(FIND_INBOX)
                .bind(row.source)
                .bind(row.dedupe_key)
                .fetch_one(&mut *conn)
                .await?;
            fates.push(InboxFate::Old(id, response));
        }
    }
    Ok(fates)
}

/// [`insert_inbox_sqlite`] for PostgreSQL, in two statements: insert with `ON CONFLICT DO NOTHING`,
/// then look up the rows that were there. A conflicting row of a concurrent
/// transaction makes the insert wait for it; the lookup (a new snapshot under
/// READ COMMITTED) then sees it. Rows go in sorted by identity, not in
/// arrival order: two batches holding the same new deliveries in opposite
/// orders (two instances, a gateway's retries) would otherwise each wait for
/// the other's row, a deadlock PostgreSQL ends by refusing one batch.
pub(crate) async fn insert_inbox_postgres(
    conn: &mut PgConnection,
    rows: &[InboxInsert<'_>],
    now: i64,
) -> Result<Vec<InboxFate>, StoreError> {
    let sources: Vec<&str> = rows.iter().map(|r| r.source).collect();
    let keys: Vec<&str> = rows.iter().map(|r| r.dedupe_key).collect();
    let bodies: Vec<&[u8]> = rows.iter().map(|r| r.body).collect();
    let headers: Vec<&str> = rows.iter().map(|r| r.headers.as_str()).collect();
    let inserted: Vec<(i64, String, String)> = sqlx::query_as(
        "INSERT INTO inbox (source, dedupe_key, body, headers, received_at) \
         SELECT source, dedupe_key, body, headers, $5 \
         FROM UNNEST($1::text[], $2::text[], $3::bytea[], $4::text[]) \
              AS t(source, dedupe_key, body, headers) \
         ORDER BY source, dedupe_key \
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
    fates
}

/// The stored rows for these (source, dedupe_key) identities.
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

/// Insert `jobs` in order, one by one (with their debounce keys); returns their
/// ids in the same order. In-memory stores only, like [`insert_inbox_sqlite`].
pub(crate) async fn insert_jobs_in_order_sqlite(
    conn: &mut SqliteConnection,
    jobs: &[JobInsert<'_>],
    now: i64,
) -> Result<Vec<i64>, StoreError> {
    let mut ids = Vec::with_capacity(jobs.len());
    for job in jobs {
        ids.push(insert_job_sqlite(&mut *conn, job.job, Some(job.inbox_id), now).await?);
    }
    Ok(ids)
}

/// Insert jobs without a debounce key, in order; returns their ids in the same order.
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
/// Returns the job ids in the order given.
pub(crate) async fn insert_jobs_in_order_postgres(
    conn: &mut PgConnection,
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
            ids.extend(insert_jobs_postgres(&mut *conn, &rest[..plain], now).await?);
            rest = &rest[plain..];
        } else if let Some((first, others)) = rest.split_first() {
            ids.push(insert_job_postgres(&mut *conn, first.job, Some(first.inbox_id), now).await?);
            rest = others;
        }
    }
    Ok(ids)
}
