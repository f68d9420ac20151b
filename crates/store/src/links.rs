//! Links: which target object a source object became. Upserted on
//! (kind, source_system, source_id, target_system).

use crate::model::{Link, LinkFilter, NewLink};
use crate::rows::{LinkRow, convert_all, to_json_text};
use crate::{Store, StoreError, now_ms};

/// Upsert of one link, returning it: `$1`…`$7` are its fields, `$8` now.
pub(crate) const PUT_LINK: &str = concat!(
    "INSERT INTO links (kind, source_system, source_id, target_system, target_id, state, \
     data, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) \
     ON CONFLICT (kind, source_system, source_id, target_system) DO UPDATE SET \
     target_id = excluded.target_id, state = excluded.state, data = excluded.data, \
     updated_at = excluded.updated_at RETURNING ",
    link_columns!()
);

impl Store {
    /// The link of a source object into `target_system`, if any.
    pub async fn link(
        &self,
        kind: &str,
        source_system: &str,
        source_id: &str,
        target_system: &str,
    ) -> Result<Option<Link>, StoreError> {
        let row: Option<LinkRow> = on_pool!(self, pool => sqlx::query_as(concat!(
            "SELECT ", link_columns!(), " FROM links \
             WHERE kind = $1 AND source_system = $2 AND source_id = $3 AND target_system = $4"))
            .bind(kind)
            .bind(source_system)
            .bind(source_id)
            .bind(target_system)
            .fetch_optional(pool)
            .await?);
        row.map(Link::try_from).transpose()
    }

    /// Every link pointing at a target object (reverse lookup), oldest first.
    pub async fn links_to(
        &self,
        kind: &str,
        target_system: &str,
        target_id: &str,
    ) -> Result<Vec<Link>, StoreError> {
        let rows: Vec<LinkRow> = on_pool!(self, pool => sqlx::query_as(concat!(
            "SELECT ", link_columns!(), " FROM links \
             WHERE target_system = $1 AND kind = $2 AND target_id = $3 ORDER BY id"))
            .bind(target_system)
            .bind(kind)
            .bind(target_id)
            .fetch_all(pool)
            .await?);
        convert_all(rows)
    }

    /// Create the link, or replace target_id/state/data of the existing one.
    /// On a SQLite file it is stored by the writer thread, in the group commit
    /// of whatever else is being written at the time.
    pub async fn put_link(&self, link: &NewLink) -> Result<Link, StoreError> {
        if let Some(group) = &self.group {
            return group.put_link(link).await;
        }
        let data = to_json_text("link data", &link.data)?;
        let now = now_ms();
        let row: LinkRow = on_pool!(self, pool => sqlx::query_as(PUT_LINK)
            .bind(&link.kind)
            .bind(&link.source_system)
            .bind(&link.source_id)
            .bind(&link.target_system)
            .bind(link.target_id.as_deref())
            .bind(link.state.as_str())
            .bind(&data)
            .bind(now)
            .fetch_one(pool)
            .await?);
        Link::try_from(row)
    }

    /// Links matching `filter`, newest first.
    pub async fn links(&self, filter: &LinkFilter) -> Result<Vec<Link>, StoreError> {
        let rows: Vec<LinkRow> = on_pool!(self, pool => sqlx::query_as(concat!(
            "SELECT ", link_columns!(), " FROM links \
             WHERE ($1 IS NULL OR kind = $1) AND ($2 IS NULL OR source_system = $2) \
               AND ($3 IS NULL OR target_system = $3) AND ($4 IS NULL OR state = $4) \
             ORDER BY id DESC LIMIT $5"))
            .bind(filter.kind.as_deref())
            .bind(filter.source_system.as_deref())
            .bind(filter.target_system.as_deref())
            .bind(filter.state.map(|s| s.as_str()))
            .bind(filter.limit.unwrap_or(100))
            .fetch_all(pool)
            .await?);
        convert_all(rows)
    }

    /// Remove a link.
    pub async fn delete_link(&self, id: i64) -> Result<(), StoreError> {
        let _turn = self.write_turn().await;
        on_pool!(self, pool => sqlx::query("DELETE FROM links WHERE id = $1")
            .bind(id)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(())
    }
}
