//! The inbox: every accepted inbound request, stored with its jobs in one transaction.

use std::collections::HashMap;

use crate::batch::{
    InboxFate, InboxInsert, JobInsert, insert_inbox_postgres, insert_inbox_sqlite,
    insert_jobs_in_order_postgres, insert_jobs_in_order_sqlite,
};
use crate::model::{Acceptance, InboxRecord, NewInbound, NewJob};
use crate::rows::{InboxRow, parse_json, to_json_text};
use crate::{Pool, Store, StoreError, now_ms};

/// Accept a batch inside an open transaction `$tx` with the backend's
/// statements: the inbox rows of the batch, then the jobs of the new rows (see
/// `batch.rs`), then commit. Compiled once per backend.
macro_rules! accept_in_transaction {
    ($tx:ident, $insert_inbox:ident, $insert_jobs:ident, $batch:expr, $now:expr) => {{
        let batch = $batch;
        // The first occurrence of each identity in the batch; later ones are duplicates of it.
        let mut first_of: HashMap<(&str, &str), usize> = HashMap::with_capacity(batch.len());
        let mut firsts = Vec::with_capacity(batch.len());
        let mut rows = Vec::with_capacity(batch.len());
        for (index, (inbound, _)) in batch.iter().enumerate() {
            let identity = (inbound.source.as_str(), inbound.dedupe_key.as_str());
            if first_of.contains_key(&identity) {
                continue;
            }
            first_of.insert(identity, index);
            firsts.push(index);
            rows.push(InboxInsert {
                source: identity.0,
                dedupe_key: identity.1,
                body: &inbound.body,
                headers: to_json_text("inbox headers", &inbound.headers)?,
            });
        }
        let row_fates = $insert_inbox(&mut $tx, &rows, $now).await?;
        if row_fates.len() != rows.len() {
            return Err(StoreError::decode(
                "inbox rows",
                "one outcome per row expected",
            ));
        }
        // Indexed like the batch, set at first occurrences.
        let mut fates: Vec<Option<InboxFate>> = batch.iter().map(|_| None).collect();
        for (index, fate) in firsts.into_iter().zip(row_fates) {
            if let Some(slot) = fates.get_mut(index) {
                *slot = Some(fate);
            }
        }
        let mut job_rows = Vec::new();
        for (index, (_, jobs)) in batch.iter().enumerate() {
            if let Some(Some(InboxFate::New(inbox_id))) = fates.get(index) {
                for job in jobs {
                    job_rows.push(JobInsert {
                        job,
                        payload: to_json_text("job payload", &job.payload)?,
                        inbox_id: *inbox_id,
                    });
                }
            }
        }
        let job_ids = $insert_jobs(&mut $tx, &job_rows, $now).await?;
        if job_ids.len() != job_rows.len() {
            return Err(StoreError::decode(
                "job ids",
                format!(
                    "{} jobs inserted, {} ids returned",
                    job_rows.len(),
                    job_ids.len()
                ),
            ));
        }
        let mut job_ids = job_ids.into_iter();

        let mut outcomes = Vec::with_capacity(batch.len());
        for (index, (inbound, jobs)) in batch.iter().enumerate() {
            let identity = (inbound.source.as_str(), inbound.dedupe_key.as_str());
            let first = first_of.get(&identity).copied().unwrap_or(index);
            let outcome = match fates.get(first).and_then(Option::as_ref) {
                Some(InboxFate::New(inbox_id)) if first == index => Acceptance::Accepted {
                    inbox_id: *inbox_id,
                    job_ids: job_ids.by_ref().take(jobs.len()).collect(),
                    claimed: Vec::new(),
                },
                // A repeat inside the batch: the first one has no response yet.
                Some(InboxFate::New(inbox_id)) => Acceptance::Duplicate {
                    inbox_id: *inbox_id,
                    response: None,
                },
                Some(InboxFate::Old(inbox_id, response)) => Acceptance::Duplicate {
                    inbox_id: *inbox_id,
                    response: response
                        .as_deref()
                        .map(|text| parse_json("inbox response", text))
                        .transpose()?,
                },
                None => {
                    return Err(StoreError::decode(
                        "inbox row",
                        format!(
                            "({}, {}) has no outcome",
                            inbound.source, inbound.dedupe_key
                        ),
                    ));
                }
            };
            outcomes.push(outcome);
        }
        // Last: an error above rolls everything back.
        $tx.commit().await?;
        outcomes
    }};
}

/// One PostgreSQL transaction storing `batch`.
async fn accept_postgres(
    pool: &sqlx::PgPool,
    batch: &[(NewInbound, Vec<NewJob>)],
    now: i64,
) -> Result<Vec<Acceptance>, StoreError> {
    let mut tx = pool.begin().await?;
    // Each debounce takes its key's lock as it comes; two batches meeting the
    // same keys in opposite orders would each hold one the other waits for.
    // Taken here first, in one order, the later per-job takes are re-entrant.
    let mut unique: Vec<&str> = batch
        .iter()
        .flat_map(|(_, jobs)| jobs.iter().filter_map(|j| j.unique_key.as_deref()))
        .collect();
    if unique.len() > 1 {
        unique.sort_unstable();
        unique.dedup();
        sqlx::query(
            "SELECT pg_advisory_xact_lock($1, hashtext(k)) \
             FROM UNNEST($2::text[]) WITH ORDINALITY AS t(k, n) ORDER BY n",
        )
        .bind(crate::jobs::UNIQUE_KEY_LOCK_NAMESPACE)
        .bind(&unique)
        .execute(&mut *tx)
        .await?;
    }
    Ok(accept_in_transaction!(
        tx,
        insert_inbox_postgres,
        insert_jobs_in_order_postgres,
        batch,
        now
    ))
}

impl Store {
    /// Store an inbound request and its jobs in one transaction: when this returns
    /// `Accepted`, both are durable. A repeat of (source, dedupe_key) stores and
    /// enqueues nothing and returns `Duplicate` with the first delivery's response.
    pub async fn accept(
        &self,
        inbound: NewInbound,
        jobs: Vec<NewJob>,
    ) -> Result<Acceptance, StoreError> {
        let mut outcomes = self.accept_batch(vec![(inbound, jobs)]).await?;
        outcomes
            .pop()
            .ok_or_else(|| StoreError::decode("acceptance", "accept_batch returned no outcome"))
    }

    /// [`Store::accept`] for many requests in one transaction (group commit): one
    /// outcome per item, in order. All or nothing: on error none is stored.
    pub async fn accept_batch(
        &self,
        batch: Vec<(NewInbound, Vec<NewJob>)>,
    ) -> Result<Vec<Acceptance>, StoreError> {
        let now = now_ms();
        let outcomes = match &self.pool {
            Pool::Postgres(pool) => accept_postgres(pool, &batch, now).await?,
            Pool::Sqlite(_) => return self.accept_sqlite(batch, now).await,
        };
        Ok(outcomes)
    }

    /// [`Store::accept_batch`], with one result per request: when the group's
    /// transaction fails, each request is stored on its own, so one that the
    /// database refuses (PostgreSQL text cannot hold a NUL character, for
    /// one) fails alone rather than with every request committed beside it.
    /// (SQLite files already do this on their writer thread.) The outer error
    /// means nothing was stored.
    pub async fn accept_batch_each(
        &self,
        batch: Vec<(NewInbound, Vec<NewJob>)>,
    ) -> Result<Vec<Result<Acceptance, StoreError>>, StoreError> {
        let now = now_ms();
        match &self.pool {
            Pool::Postgres(pool) => match accept_postgres(pool, &batch, now).await {
                Ok(outcomes) => Ok(outcomes.into_iter().map(Ok).collect()),
                Err(error) if batch.len() == 1 => Ok(vec![Err(error)]),
                Err(error) => {
                    tracing::debug!(%error, "group accept failed, storing each request alone");
                    let mut results = Vec::with_capacity(batch.len());
                    for item in batch.chunks(1) {
                        results.push(accept_postgres(pool, item, now).await.and_then(|mut one| {
                            one.pop().ok_or_else(|| {
                                StoreError::decode("acceptance", "no outcome for the request")
                            })
                        }));
                    }
                    Ok(results)
                }
            },
            Pool::Sqlite(_) => Ok(self
                .accept_sqlite(batch, now)
                .await?
                .into_iter()
                .map(Ok)
                .collect()),
        }
    }

    async fn accept_sqlite(
        &self,
        batch: Vec<(NewInbound, Vec<NewJob>)>,
        now: i64,
    ) -> Result<Vec<Acceptance>, StoreError> {
        let outcomes = match &self.pool {
            Pool::Sqlite(pool) => {
                if let Some(group) = &self.group {
                    return group.accept(batch).await;
                }
                // An in-memory store (one connection): IMMEDIATE takes the write
                // lock at once all the same.
                let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                accept_in_transaction!(
                    tx,
                    insert_inbox_sqlite,
                    insert_jobs_in_order_sqlite,
                    &batch,
                    now
                )
            }
            Pool::Postgres(pool) => accept_postgres(pool, &batch, now).await?,
        };
        Ok(outcomes)
    }

    /// Record the answer given for an inbox row, so duplicates get the same answer.
    pub async fn set_inbox_response(
        &self,
        inbox_id: i64,
        response: &serde_json::Value,
    ) -> Result<(), StoreError> {
        let _turn = self.write_turn().await;
        let text = to_json_text("inbox response", response)?;
        on_pool!(self, pool => sqlx::query("UPDATE inbox SET response = $1 WHERE id = $2")
            .bind(&text)
            .bind(inbox_id)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(())
    }

    /// One inbox row by id.
    pub async fn inbox(&self, id: i64) -> Result<Option<InboxRecord>, StoreError> {
        let row: Option<InboxRow> = on_pool!(self, pool => sqlx::query_as(
            concat!("SELECT ", inbox_columns!(), " FROM inbox WHERE id = $1"))
            .bind(id)
            .fetch_optional(pool)
            .await?);
        row.map(InboxRecord::try_from).transpose()
    }

    /// One inbox row by its dedupe identity.
    pub async fn inbox_by_dedupe(
        &self,
        source: &str,
        dedupe_key: &str,
    ) -> Result<Option<InboxRecord>, StoreError> {
        let row: Option<InboxRow> = on_pool!(self, pool => sqlx::query_as(
            concat!("SELECT ", inbox_columns!(), " FROM inbox WHERE source = $1 AND dedupe_key = $2"))
            .bind(source)
            .bind(dedupe_key)
            .fetch_optional(pool)
            .await?);
        row.map(InboxRecord::try_from).transpose()
    }

    /// Where a body-retention sweep from `from_id` for requests received before
    /// `at` (unix ms) ends: the id of the first row from `from_id` on received at
    /// or after `at`, else one past the last row (so that requests arriving
    /// during the sweep are never in it). Reads in id order from `from_id` and
    /// stops at the first match.
    pub async fn inbox_retention_end(&self, from_id: i64, at: i64) -> Result<i64, StoreError> {
        let end: i64 = on_pool!(self, pool => sqlx::query_scalar(
            "SELECT COALESCE((SELECT id FROM inbox WHERE id >= $1 AND received_at >= $2 \
             ORDER BY id LIMIT 1), (SELECT COALESCE(MAX(id), 0) + 1 FROM inbox))")
            .bind(from_id)
            .bind(at)
            .fetch_one(pool)
            .await?);
        Ok(end)
    }

    /// Body retention: of the (at most `limit`) inbox rows from `from_id` up to
    /// below `below_id`, empty the raw body of every one whose jobs are all
    /// finished well (none pending, running or dead: those may still read it,
    /// a dead letter once replayed). The row itself stays, so its dedupe key
    /// still answers repeats. Returns (bodies emptied, last id looked at), or
    /// `None` when there was no row in the range.
    pub async fn clear_finished_bodies(
        &self,
        from_id: i64,
        below_id: i64,
        limit: i64,
    ) -> Result<Option<(u64, i64)>, StoreError> {
        let last: Option<i64> = on_pool!(self, pool => sqlx::query_scalar(
            "SELECT MAX(id) FROM (SELECT id FROM inbox WHERE id >= $1 AND id < $2 \
             ORDER BY id LIMIT $3) AS batch")
            .bind(from_id)
            .bind(below_id)
            .bind(limit)
            .fetch_one(pool)
            .await?);
        let Some(last) = last else {
            return Ok(None);
        };
        let _turn = self.write_turn().await;
        let cleared = on_pool!(self, pool => sqlx::query(CLEAR_FINISHED_BODIES)
            .bind(Vec::<u8>::new())
            .bind(from_id)
            .bind(last)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(Some((cleared, last)))
    }
}

/// Empty the bodies of inbox rows `$2..=$3` that still have one and that no
/// unfinished or dead job refers to. The few jobs in those states come from
/// `jobs_status`; no index on `jobs.inbox_id` is needed.
const CLEAR_FINISHED_BODIES: &str = "UPDATE inbox SET body = $1 \
     WHERE id >= $2 AND id <= $3 AND length(body) > 0 \
     AND id NOT IN (SELECT inbox_id FROM jobs \
     WHERE status IN ('pending', 'running', 'dead') AND inbox_id IS NOT NULL)";
