//! Attachments: `Attachment` objects with base64 `contents`, linked by
//! (`item_class`, `item_id`).

use base64::Engine;
use serde_json::{Value, json};

use crate::client::ItopClient;
use crate::error::ItopError;
use crate::response::{ItopObject, lenient_text, oql_quote};

const FIELDS: &str = "id,item_class,item_id,item_org_id,creation_date,contents";
/// Everything but the (base64) contents: a listing stays small whatever the files weigh.
const LIST_FIELDS: &str = "id,item_class,item_id,item_org_id,creation_date";

/// An attachment with its contents decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct Attachment {
    pub id: u64,
    pub item_class: String,
    pub item_id: u64,
    pub item_org_id: u64,
    pub creation_date: String,
    pub filename: String,
    pub mimetype: String,
    pub data: Vec<u8>,
}

/// An attachment to create.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAttachment {
    pub item_class: String,
    pub item_id: u64,
    /// The host ticket's organisation (so org-filtered users see it).
    pub item_org_id: u64,
    pub filename: String,
    pub mimetype: String,
    pub data: Vec<u8>,
}

fn contents(filename: &str, mimetype: &str, data: &[u8]) -> Value {
    json!({
        "data": base64::engine::general_purpose::STANDARD.encode(data),
        "filename": filename,
        "mimetype": mimetype,
        "downloads_count": 0,
    })
}

impl Attachment {
    pub fn from_object(o: &ItopObject) -> Result<Attachment, ItopError> {
        let c = o.fields.get("contents");
        let text = |k: &str| {
            c.and_then(|c| c.get(k))
                .and_then(lenient_text)
                .unwrap_or_default()
        };
        let data = base64::engine::general_purpose::STANDARD
            .decode(text("data").as_bytes())
            .map_err(|e| {
                ItopError::InvalidResponse(format!(
                    "attachment {} contents are not base64: {e}",
                    o.key
                ))
            })?;
        Ok(Attachment {
            id: o.key,
            item_class: o.text("item_class"),
            item_id: o.number("item_id").unwrap_or(0),
            item_org_id: o.number("item_org_id").unwrap_or(0),
            creation_date: o.text("creation_date"),
            filename: text("filename"),
            mimetype: text("mimetype"),
            data,
        })
    }
}

impl ItopClient {
    /// Creates an attachment; returns its id.
    pub async fn create_attachment(
        &self,
        new: &NewAttachment,
        comment: &str,
    ) -> Result<u64, ItopError> {
        let fields = json!({
            "item_class": new.item_class,
            "item_id": new.item_id,
            "item_org_id": new.item_org_id,
            "contents": contents(&new.filename, &new.mimetype, &new.data),
        });
        Ok(self.create("Attachment", fields, comment, "id").await?.key)
    }

    /// Ids of the attachments of one object, ascending, without reading
    /// their contents (read each with [`attachment`](Self::attachment), so
    /// that no answer holds more than one file).
    pub async fn attachment_ids_of(
        &self,
        item_class: &str,
        item_id: u64,
    ) -> Result<Vec<u64>, ItopError> {
        let oql = format!(
            "SELECT Attachment WHERE item_class = {} AND item_id = {item_id}",
            oql_quote(item_class)
        );
        let mut ids: Vec<u64> = self
            .get("Attachment", crate::Key::Oql(oql), LIST_FIELDS)
            .await?
            .iter()
            .map(|o| o.key)
            .collect();
        ids.sort_unstable();
        Ok(ids)
    }

    /// One attachment with contents (the only file in its answer); None if
    /// it does not exist.
    pub async fn attachment(&self, id: u64) -> Result<Option<Attachment>, ItopError> {
        self.get_one("Attachment", id, FIELDS)
            .await?
            .as_ref()
            .map(Attachment::from_object)
            .transpose()
    }

    /// Replaces an attachment's contents.
    pub async fn update_attachment(
        &self,
        id: u64,
        filename: &str,
        mimetype: &str,
        data: &[u8],
        comment: &str,
    ) -> Result<(), ItopError> {
        self.update(
            "Attachment",
            id,
            json!({ "contents": contents(filename, mimetype, data) }),
            comment,
            "id",
        )
        .await
        .map(|_| ())
    }

    /// Deletes an attachment; false if it was already gone.
    pub async fn delete_attachment(&self, id: u64, comment: &str) -> Result<bool, ItopError> {
        Ok(!self.delete("Attachment", id, comment).await?.is_empty())
    }
}
