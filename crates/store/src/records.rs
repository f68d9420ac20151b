//! Small tables: own-write markers (loop prevention), audit, poll cursors,
//! namespaced key/value state and claims on kv keys.

use crate::model::{AuditEntry, NewAudit};
use crate::rows::{AuditRow, convert_all, parse_json, to_json_text};
use crate::{Store, StoreError, now_ms};
use serde_json::{Value, json};
use std::time::Duration;

/// Take a kv key as a claim: insert it, or take it over when its holder's
/// lease has run out (`$4` is now) or `$5` already holds it. The upsert's
/// condition reads the row it conflicts with: SQLite under its write lock,
/// PostgreSQL under the row's lock (a concurrent insert of the same key waits
/// for the first to commit, then re-checks it).
const CLAIM_KEY_SQLITE: &str = "INSERT INTO kv (namespace, key, value, updated_at) \
     VALUES ($1, $2, $3, $4) \
     ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value, \
     updated_at = excluded.updated_at \
     WHERE json_extract(kv.value, '$.until') <= $4 \
     OR json_extract(kv.value, '$.owner') = $5";
const CLAIM_KEY_POSTGRES: &str = "INSERT INTO kv (namespace, key, value, updated_at) \
     VALUES ($1, $2, $3, $4) \
     ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value, \
     updated_at = excluded.updated_at \
     WHERE (kv.value::jsonb ->> 'until')::bigint <= $4 \
     OR kv.value::jsonb ->> 'owner' = $5";
/// Give a claim back, only when `$3` holds it.
const RELEASE_KEY_SQLITE: &str = "DELETE FROM kv WHERE namespace = $1 AND key = $2 \
     AND json_extract(value, '$.owner') = $3";
const RELEASE_KEY_POSTGRES: &str = "DELETE FROM kv WHERE namespace = $1 AND key = $2 \
     AND value::jsonb ->> 'owner' = $3";

impl Store {
    /// Remember that the bridge itself wrote `fingerprint` (content hash, author…)
    /// to `object_key` in `system`, so the echo of that write can be recognised.
    pub async fn remember_write(
        &self,
        system: &str,
        object_key: &str,
        fingerprint: &str,
    ) -> Result<(), StoreError> {
        let _turn = self.write_turn().await;
        on_pool!(self, pool => sqlx::query(
            "INSERT INTO own_writes (system, object_key, fingerprint, created_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (system, object_key, fingerprint) DO NOTHING")
            .bind(system)
            .bind(object_key)
            .bind(fingerprint)
            .bind(now_ms())
            .execute(pool)
            .await?
            .rows_affected());
        Ok(())
    }

    /// Whether this exact write was made by the bridge.
    pub async fn is_own_write(
        &self,
        system: &str,
        object_key: &str,
        fingerprint: &str,
    ) -> Result<bool, StoreError> {
        let found: i64 = on_pool!(self, pool => sqlx::query_scalar(
            "SELECT COUNT(*) FROM own_writes \
             WHERE system = $1 AND object_key = $2 AND fingerprint = $3")
            .bind(system)
            .bind(object_key)
            .bind(fingerprint)
            .fetch_one(pool)
            .await?);
        Ok(found > 0)
    }

    /// Take one own-write marker away: true when it was there. A content
    /// marker taken by the echo it was made for cannot hide a later, real
    /// write of the same text.
    pub async fn forget_write(
        &self,
        system: &str,
        object_key: &str,
        fingerprint: &str,
    ) -> Result<bool, StoreError> {
        let _turn = self.write_turn().await;
        let done = on_pool!(self, pool => sqlx::query(
            "DELETE FROM own_writes WHERE system = $1 AND object_key = $2 AND fingerprint = $3")
            .bind(system)
            .bind(object_key)
            .bind(fingerprint)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(done > 0)
    }

    /// Forget the own-write markers whose fingerprint starts with
    /// `fingerprint_prefix`, recorded before `before` (unix ms): for markers
    /// that only matter for a while (an echo comes back within seconds).
    /// Returns how many.
    pub async fn forget_writes_starting_before(
        &self,
        fingerprint_prefix: &str,
        before: i64,
    ) -> Result<u64, StoreError> {
        let pattern = format!(
            "{}%",
            fingerprint_prefix
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        );
        let _turn = self.write_turn().await;
        let done = on_pool!(self, pool => sqlx::query(
            "DELETE FROM own_writes WHERE created_at < $1 AND fingerprint LIKE $2 ESCAPE '\\'")
            .bind(before)
            .bind(&pattern)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(done)
    }

    /// Forget own-write markers recorded before `before` (unix ms). Returns how many.
    pub async fn forget_writes_before(&self, before: i64) -> Result<u64, StoreError> {
        let _turn = self.write_turn().await;
        let done = on_pool!(self, pool => sqlx::query("DELETE FROM own_writes WHERE created_at < $1")
            .bind(before)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(done)
    }

    /// Append an audit line.
    pub async fn audit(&self, entry: &NewAudit) -> Result<(), StoreError> {
        self.insert_audit(entry, None).await.map(|_| ())
    }

    /// Append an audit line unless one with `dedupe_key` was recorded before, in one
    /// statement: a job that runs again after a crash cannot record twice. True
    /// when the line was written now.
    pub async fn audit_once(&self, dedupe_key: &str, entry: &NewAudit) -> Result<bool, StoreError> {
        self.insert_audit(entry, Some(dedupe_key)).await
    }

    /// One audit line; a line without a dedupe key never conflicts (the unique
    /// index covers non-null keys only).
    async fn insert_audit(
        &self,
        entry: &NewAudit,
        dedupe_key: Option<&str>,
    ) -> Result<bool, StoreError> {
        let _turn = self.write_turn().await;
        let detail = to_json_text("audit detail", &entry.detail)?;
        let written = on_pool!(self, pool => sqlx::query(
            "INSERT INTO audit (job_id, system, action, object_key, detail, at, dedupe_key) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (dedupe_key) WHERE dedupe_key IS NOT NULL DO NOTHING")
            .bind(entry.job_id)
            .bind(&entry.system)
            .bind(&entry.action)
            .bind(&entry.object_key)
            .bind(&detail)
            .bind(now_ms())
            .bind(dedupe_key)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(written == 1)
    }

    /// Delete up to `limit` audit lines written before `before` (unix ms),
    /// oldest first; returns how many went.
    pub async fn purge_audit(&self, before: i64, limit: i64) -> Result<u64, StoreError> {
        let _turn = self.write_turn().await;
        let done = on_pool!(self, pool => sqlx::query(
            "DELETE FROM audit WHERE id IN \
             (SELECT id FROM audit WHERE at < $1 ORDER BY at LIMIT $2)")
            .bind(before)
            .bind(limit)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(done)
    }

    /// The latest `limit` audit lines, newest first.
    pub async fn audit_entries(&self, limit: i64) -> Result<Vec<AuditEntry>, StoreError> {
        let rows: Vec<AuditRow> = on_pool!(self, pool => sqlx::query_as(concat!(
            "SELECT ", audit_columns!(), " FROM audit ORDER BY id DESC LIMIT $1"))
            .bind(limit)
            .fetch_all(pool)
            .await?);
        convert_all(rows)
    }

    /// A poll position by name.
    pub async fn cursor(&self, name: &str) -> Result<Option<String>, StoreError> {
        let value: Option<String> = on_pool!(self, pool => sqlx::query_scalar(
            "SELECT value FROM cursors WHERE name = $1")
            .bind(name)
            .fetch_optional(pool)
            .await?);
        Ok(value)
    }

    /// Set a poll position.
    pub async fn set_cursor(&self, name: &str, value: &str) -> Result<(), StoreError> {
        let _turn = self.write_turn().await;
        on_pool!(self, pool => sqlx::query(
            "INSERT INTO cursors (name, value, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at")
            .bind(name)
            .bind(value)
            .bind(now_ms())
            .execute(pool)
            .await?
            .rows_affected());
        Ok(())
    }

    /// A value of namespaced durable state.
    pub async fn kv_get(&self, ns: &str, key: &str) -> Result<Option<Value>, StoreError> {
        let text: Option<String> = on_pool!(self, pool => sqlx::query_scalar(
            "SELECT value FROM kv WHERE namespace = $1 AND key = $2")
            .bind(ns)
            .bind(key)
            .fetch_optional(pool)
            .await?);
        text.as_deref()
            .map(|t| parse_json("kv value", t))
            .transpose()
    }

    /// Set a value of namespaced durable state.
    pub async fn kv_put(&self, ns: &str, key: &str, value: &Value) -> Result<(), StoreError> {
        let _turn = self.write_turn().await;
        let text = to_json_text("kv value", value)?;
        on_pool!(self, pool => sqlx::query(
            "INSERT INTO kv (namespace, key, value, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value, \
             updated_at = excluded.updated_at")
            .bind(ns)
            .bind(key)
            .bind(&text)
            .bind(now_ms())
            .execute(pool)
            .await?
            .rows_affected());
        Ok(())
    }

    /// Remove a value of namespaced durable state.
    pub async fn kv_delete(&self, ns: &str, key: &str) -> Result<(), StoreError> {
        let _turn = self.write_turn().await;
        on_pool!(self, pool => sqlx::query("DELETE FROM kv WHERE namespace = $1 AND key = $2")
            .bind(ns)
            .bind(key)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(())
    }

    /// All keys and values of a namespace, by key.
    pub async fn kv_list(&self, ns: &str) -> Result<Vec<(String, Value)>, StoreError> {
        let rows: Vec<(String, String)> = on_pool!(self, pool => sqlx::query_as(
            "SELECT key, value FROM kv WHERE namespace = $1 ORDER BY key")
            .bind(ns)
            .fetch_all(pool)
            .await?);
        rows.into_iter()
            .map(|(key, text)| Ok((key, parse_json("kv value", &text)?)))
            .collect()
    }

    /// Claims `key` of namespace `ns` for `owner` until `lease` from now, in one
    /// statement: true when the key was free, its holder's lease had run out, or
    /// `owner` already held it (which extends the lease); false while another
    /// owner holds it. Every process sharing the store sees the same answer, so
    /// at most one owner holds a key at any time; leases are timed by the same
    /// clock as job leases (PostgreSQL's, shared by every instance). The claim is a kv row
    /// (`{"owner": …, "until": unix ms}`): keep claims in namespaces of their own.
    pub async fn claim_key(
        &self,
        ns: &str,
        key: &str,
        owner: &str,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        let now = self.lease_clock().await?;
        let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX / 4);
        let until = now.saturating_add(lease_ms);
        let text = to_json_text("claim", &json!({"owner": owner, "until": until}))?;
        let _turn = self.write_turn().await;
        let sql = match &self.pool {
            crate::Pool::Sqlite(_) => CLAIM_KEY_SQLITE,
            crate::Pool::Postgres(_) => CLAIM_KEY_POSTGRES,
        };
        let claimed = on_pool!(self, pool => sqlx::query(sql)
            .bind(ns)
            .bind(key)
            .bind(&text)
            .bind(now)
            .bind(owner)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(claimed == 1)
    }

    /// Gives a claim back: true when `owner` held it (a claim taken over after
    /// its lease ran out belongs to its new owner and stays).
    pub async fn release_key(&self, ns: &str, key: &str, owner: &str) -> Result<bool, StoreError> {
        let _turn = self.write_turn().await;
        let sql = match &self.pool {
            crate::Pool::Sqlite(_) => RELEASE_KEY_SQLITE,
            crate::Pool::Postgres(_) => RELEASE_KEY_POSTGRES,
        };
        let released = on_pool!(self, pool => sqlx::query(sql)
            .bind(ns)
            .bind(key)
            .bind(owner)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(released == 1)
    }
}
