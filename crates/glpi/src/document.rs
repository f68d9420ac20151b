//! Documents (spec §7): multipart upload linked to a ticket or followup, download.

use bytes::Bytes;
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};
use sha1::Digest;

use crate::client::{Body, Call, FormPart, GlpiClient};
use crate::error::GlpiError;
use crate::items::{checked_itemtype, created_id};
use crate::lenient;

/// The item a document is attached to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemLink {
    pub itemtype: String,
    pub id: i64,
}

impl ItemLink {
    pub fn ticket(id: i64) -> ItemLink {
        ItemLink {
            itemtype: "Ticket".into(),
            id,
        }
    }
    pub fn followup(id: i64) -> ItemLink {
        ItemLink {
            itemtype: "ITILFollowup".into(),
            id,
        }
    }
}

/// A file to upload.
#[derive(Debug, Clone)]
pub struct Upload {
    pub file_name: String,
    pub mime: String,
    pub data: Bytes,
    /// Document name (GLPI replaces it by "Document: Ticket - ..." when linked).
    pub name: Option<String>,
    pub link: Option<ItemLink>,
    /// Entity of the document: give the linked ticket's. GLPI creates a document in the
    /// session's active entity otherwise, whatever the entity of the item it is linked to.
    pub entity_id: Option<i64>,
}

/// A downloaded file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownloadedFile {
    pub file_name: Option<String>,
    pub mime: Option<String>,
    pub data: Bytes,
}

/// A `Document_Item` row (document ↔ item link).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DocumentLink {
    #[serde(deserialize_with = "lenient::i64")]
    pub id: i64,
    #[serde(default, deserialize_with = "lenient::i64")]
    pub documents_id: i64,
    #[serde(default, deserialize_with = "lenient::string")]
    pub itemtype: String,
    #[serde(default, deserialize_with = "lenient::i64")]
    pub items_id: i64,
}

/// A document as stored.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Document {
    #[serde(deserialize_with = "lenient::i64")]
    pub id: i64,
    #[serde(default, deserialize_with = "lenient::string")]
    pub name: String,
    #[serde(default, deserialize_with = "lenient::string")]
    pub filename: String,
    #[serde(default, deserialize_with = "lenient::string")]
    pub mime: String,
    #[serde(default, deserialize_with = "lenient::string")]
    pub sha1sum: String,
}

/// Errors reported per file in `upload_result` (the document exists but has no file).
fn upload_errors(body: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(Value::Object(groups)) = body.get("upload_result") {
        for files in groups.values() {
            if let Value::Array(files) = files {
                for f in files {
                    if let Some(err) = f.get("error").and_then(Value::as_str) {
                        let name = f.get("display").and_then(Value::as_str).unwrap_or("file");
                        out.push(format!("{name}: {err}"));
                    }
                }
            }
        }
    }
    out
}

/// A linked upload of a file GLPI does not take (type not allowed) answers 400
/// `ERROR_GLPI_ADD` "File printer.log not found." — in the user's language. The message
/// names the file whatever the language, and a refusal for another cause (rights) does
/// not: that is what tells a refused file.
fn refused_file(error: GlpiError, file_name: &str) -> GlpiError {
    match error {
        GlpiError::AddFailed { message }
            if !file_name.is_empty() && message.contains(file_name) =>
        {
            GlpiError::UploadRejected { message }
        }
        other => other,
    }
}

fn file_name_from_disposition(value: &str) -> Option<String> {
    // filename*=utf-8''name takes precedence over filename="name".
    for part in value.split(';').map(str::trim) {
        if let Some(rest) = part.strip_prefix("filename*=") {
            let encoded = rest.split("''").nth(1).unwrap_or(rest);
            if let Ok(decoded) = url::form_urlencoded::parse(format!("x={encoded}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .ok_or(())
            {
                return Some(decoded);
            }
        }
    }
    value
        .split(';')
        .map(str::trim)
        .find_map(|p| p.strip_prefix("filename="))
        .map(|v| v.trim_matches('"').to_owned())
}

impl GlpiClient {
    /// Upload a file as a GLPI document (`uploadManifest` + `filename[0]` part, accepted by
    /// 9.5, 10 and 11), optionally linked to an item. A file GLPI refused (type not allowed)
    /// is an error even when GLPI answered 201: the empty document is then purged.
    pub async fn upload_document(&self, upload: &Upload) -> Result<i64, GlpiError> {
        if upload.file_name.trim().is_empty() {
            return Err(GlpiError::InvalidInput(
                "a document needs a file name".into(),
            ));
        }
        let mut input = json!({
            "name": upload.name.clone().unwrap_or_else(|| upload.file_name.clone()),
            "_filename": [upload.file_name],
        });
        if let Some(entity) = upload.entity_id {
            input["entities_id"] = json!(entity);
        }
        if let Some(link) = &upload.link {
            checked_itemtype(&link.itemtype)?;
            input["itemtype"] = json!(link.itemtype);
            input["items_id"] = json!(link.id);
        }
        let manifest = json!({ "input": input }).to_string();
        let mut call = Call::new(Method::POST, "Document");
        call.body = Body::Multipart(vec![
            FormPart {
                name: "uploadManifest".into(),
                file_name: None,
                mime: Some("application/json".into()),
                data: Bytes::from(manifest),
            },
            FormPart {
                name: "filename[0]".into(),
                file_name: Some(upload.file_name.clone()),
                mime: Some(upload.mime.clone()),
                data: upload.data.clone(),
            },
        ]);
        let reply = self
            .call(call)
            .await
            .map_err(|e| refused_file(e, &upload.file_name))?;
        let (id, body) = created_id(&reply)?;
        let errors = upload_errors(&body);
        if !errors.is_empty() {
            if let Err(e) = self.delete_item("Document", id, true).await {
                tracing::warn!(document = id, error = %e, "could not purge a document without file");
            }
            return Err(GlpiError::UploadRejected {
                message: errors.join("; "),
            });
        }
        Ok(id)
    }

    /// Download a document's file (`?alt=media`).
    pub async fn download_document(&self, id: i64) -> Result<DownloadedFile, GlpiError> {
        let mut call = Call::get(format!("Document/{id}")).query("alt", "media");
        call.accept = Some("application/octet-stream");
        let reply = self.call(call).await?;
        let header = |name: reqwest::header::HeaderName| {
            reply
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        Ok(DownloadedFile {
            file_name: header(reqwest::header::CONTENT_DISPOSITION)
                .and_then(|d| file_name_from_disposition(&d)),
            mime: header(reqwest::header::CONTENT_TYPE),
            data: reply.body,
        })
    }

    /// Read a document's metadata.
    pub async fn get_document(&self, id: i64) -> Result<Document, GlpiError> {
        self.get_item("Document", id).await
    }

    /// Link an existing document to an item (`POST /Document_Item`).
    pub async fn link_document(&self, document_id: i64, link: &ItemLink) -> Result<i64, GlpiError> {
        checked_itemtype(&link.itemtype)?;
        self.create_item(
            "Document_Item",
            &json!({"documents_id": document_id, "itemtype": link.itemtype, "items_id": link.id}),
        )
        .await
    }

    /// The document holding this very file (same file name and SHA-1) among the newest
    /// ones linked to `item`, if any. After an upload whose answer was lost (a timeout, a
    /// dropped connection), GLPI may have created the document: look for it before
    /// uploading the file again, which would add a second copy.
    pub async fn find_linked_file(
        &self,
        item: &ItemLink,
        file_name: &str,
        data: &[u8],
    ) -> Result<Option<i64>, GlpiError> {
        /// Documents looked at, newest link first: the lost upload is among the last.
        const NEWEST: usize = 20;
        let sha1: String = sha1::Sha1::digest(data)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let mut links = self.document_links(item).await?;
        links.sort_unstable_by_key(|l| std::cmp::Reverse(l.id));
        for link in links.iter().take(NEWEST) {
            let document = match self.get_document(link.documents_id).await {
                Ok(document) => document,
                Err(GlpiError::NotFound { .. } | GlpiError::RightMissing { .. }) => continue,
                Err(error) => return Err(error),
            };
            if document.sha1sum.eq_ignore_ascii_case(&sha1) && document.filename == file_name {
                return Ok(Some(document.id));
            }
        }
        Ok(None)
    }

    /// Documents linked to an item (`GET /:itemtype/:id/Document_Item`).
    pub async fn document_links(&self, item: &ItemLink) -> Result<Vec<DocumentLink>, GlpiError> {
        self.list_sub_items(&item.itemtype, item.id, "Document_Item")
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_result_errors_from_transcript() {
        let body = json!({"id":2,"message":"Item successfully added: raw log 2","upload_result":{"filename":[{"name":"6b06b4d3cc0207.64186694printer.log","size":1,"type":"text/plain","error":"Filetype not allowed","prefix":"6b06b4d3cc0207.64186694","display":"printer.log"}]}});
        assert_eq!(
            upload_errors(&body),
            vec!["printer.log: Filetype not allowed"]
        );
        let ok = json!({"id":1,"upload_result":{"filename":[{"name":"x.txt","size":36}]}});
        assert!(upload_errors(&ok).is_empty());
    }

    #[test]
    fn a_refused_file_is_told_in_any_language() {
        let add = |m: &str| GlpiError::AddFailed { message: m.into() };
        for message in [
            "File printer.log not found.",
            "Fichier printer.log introuvable.",
            "Arquivo printer.log não encontrado.",
        ] {
            assert!(
                matches!(
                    refused_file(add(message), "printer.log"),
                    GlpiError::UploadRejected { .. }
                ),
                "{message}"
            );
        }
        assert!(matches!(
            refused_file(
                add("Vous n'avez pas les droits requis pour réaliser cette action."),
                "printer.log"
            ),
            GlpiError::AddFailed { .. }
        ));
        assert!(matches!(
            refused_file(GlpiError::Timeout, "printer.log"),
            GlpiError::Timeout
        ));
    }

    #[test]
    fn disposition_file_names() {
        assert_eq!(
            file_name_from_disposition(
                "attachment; filename=\"printer.txt\"; filename*=utf-8''printer.txt"
            )
            .as_deref(),
            Some("printer.txt")
        );
        assert_eq!(
            file_name_from_disposition("attachment; filename*=utf-8''rel%C3%B3gio.txt").as_deref(),
            Some("relógio.txt")
        );
        assert_eq!(
            file_name_from_disposition("attachment; filename=\"a.pdf\"").as_deref(),
            Some("a.pdf")
        );
    }
}
