//! The inbox: every accepted inbound request, stored with its jobs in one transaction.

use crate::jobs::{insert_job_postgres, insert_job_sqlite};
use crate::model::{Acceptance, InboxRecord, NewInbound, NewJob};
use crate::rows::{InboxRow, parse_json, to_json_text};
use crate::{Pool, Store, StoreError, now_ms};

const INSERT_INBOX: &str = "INSERT INTO inbox (source, dedupe_key, body, headers, received_at) \
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (source, dedupe_key) DO NOTHING RETURNING id";

const FIND_DUPLICATE: &str = "SELECT id, response FROM inbox WHERE source = $1 AND dedupe_key = $2";

/// Accept a batch inside an open transaction `$tx`, inserting jobs with `$insert_job`.
/// Compiled once per backend.
macro_rules! accept_in_transaction {
    ($tx:ident, $insert_job:ident, $batch:expr, $now:expr) => {{
        let mut outcomes = Vec::with_capacity($batch.len());
        for (inbound, jobs) in $batch {
            let headers = to_json_text("inbox headers", &inbound.headers)?;
            let inserted: Option<i64> = sqlx::query_scalar(INSERT_INBOX)
                .bind(&inbound.source)
                .bind(&inbound.dedupe_key)
                .bind(&inbound.body)
                .bind(&headers)
                .bind($now)
                .fetch_optional(&mut *$tx)
                .await?;
            match inserted {
                Some(inbox_id) => {
                    let mut job_ids = Vec::with_capacity(jobs.len());
                    for job in jobs {
                        job_ids.push($insert_job(&mut $tx, job, Some(inbox_id), $now).await?);
                    }
                    outcomes.push(Acceptance::Accepted { inbox_id, job_ids });
                }
                None => {
                    let (inbox_id, response): (i64, Option<String>) =
                        sqlx::query_as(FIND_DUPLICATE)
                            .bind(&inbound.source)
                            .bind(&inbound.dedupe_key)
                            .fetch_one(&mut *$tx)
                            .await?;
                    let response = response
                        .as_deref()
                        .map(|text| parse_json("inbox response", text))
                        .transpose()?;
                    outcomes.push(Acceptance::Duplicate { inbox_id, response });
                }
            }
        }
        $tx.commit().await?;
        outcomes
    }};
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
        let batch = &batch;
        let outcomes = match &self.pool {
            Pool::Sqlite(pool) => {
                let mut tx = pool.begin().await?;
                accept_in_transaction!(tx, insert_job_sqlite, batch, now)
            }
            Pool::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                accept_in_transaction!(tx, insert_job_postgres, batch, now)
            }
        };
        Ok(outcomes)
    }

    /// Record the answer given for an inbox row, so duplicates get the same answer.
    pub async fn set_inbox_response(
        &self,
        inbox_id: i64,
        response: &serde_json::Value,
    ) -> Result<(), StoreError> {
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
}
