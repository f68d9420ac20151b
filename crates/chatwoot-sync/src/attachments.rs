//! Attachments: downloaded from `data_url` (redirects followed, with the
//! source's timeout and size cap) and handed to the target as documents of
//! the followup. What cannot be copied is named in the followup instead.

use chatwoot::Attachment;
use flows::helpdesk::Attachment as File;

use crate::error::{SyncError, SyncResult};
use crate::source::SourceSync;

/// File types whose `data_url` is a file (not a map link or a vCard).
const FILE_TYPES: [&str; 7] = [
    "image",
    "audio",
    "video",
    "file",
    "ig_reel",
    "share",
    "story_mention",
];

impl SourceSync {
    /// The files to attach, and a line for each one that was not copied.
    pub(crate) async fn download_attachments(
        &self,
        attachments: &[Attachment],
    ) -> SyncResult<(Vec<File>, Vec<String>)> {
        let mut files = Vec::new();
        let mut notes = Vec::new();
        for attachment in attachments {
            let name = attachment
                .file_name()
                .unwrap_or_else(|| format!("attachment-{}", attachment.id));
            let Some(url) = attachment.data_url.as_deref().filter(|u| !u.is_empty()) else {
                continue;
            };
            let is_file = attachment
                .file_type
                .as_deref()
                .is_none_or(|t| FILE_TYPES.contains(&t));
            if !is_file {
                let title = attachment.fallback_title.clone().unwrap_or(name);
                notes.push(format!("[{title}: {url}]"));
                continue;
            }
            let cap = self.settings.attachment_max_bytes;
            if attachment.file_size.is_some_and(|size| size > cap) {
                notes.push(format!("[{name} not copied: larger than {cap} bytes]"));
                continue;
            }
            match self.download(url, cap).await? {
                Some((bytes, mime)) => files.push(File {
                    mime: mime.unwrap_or_else(|| mime_of(&name).to_owned()),
                    filename: name,
                    bytes,
                }),
                None => notes.push(format!("[{name} could not be copied: {url}]")),
            }
        }
        Ok((files, notes))
    }

    /// The body and content type; `None` when the file is gone or too
    /// large (permanent); an error when trying later may work.
    async fn download(&self, url: &str, cap: u64) -> SyncResult<Option<(Vec<u8>, Option<String>)>> {
        let retry = |e: reqwest::Error| SyncError::Download(e.without_url().to_string());
        let mut response = self.http.get(url).send().await.map_err(retry)?;
        let status = response.status();
        if status.is_server_error() || status.as_u16() == 429 {
            return Err(SyncError::Download(format!("HTTP {status}")));
        }
        if !status.is_success() {
            return Ok(None);
        }
        if response.content_length().is_some_and(|len| len > cap) {
            return Ok(None);
        }
        let mime = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<mime::Mime>().ok())
            .map(|m| m.essence_str().to_owned())
            .filter(|m| m != "application/octet-stream");
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(retry)? {
            if (bytes.len() + chunk.len()) as u64 > cap {
                return Ok(None);
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(Some((bytes, mime)))
    }
}

/// A content type from the file extension.
fn mime_of(name: &str) -> &'static str {
    let ext = name.rsplit('.').next().unwrap_or("").to_ascii_lowercase();
    match ext.as_str() {
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "pdf" => "application/pdf",
        "txt" => "text/plain",
        "ogg" | "oga" => "audio/ogg",
        "mp3" => "audio/mpeg",
        "mp4" => "video/mp4",
        "doc" => "application/msword",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn mime_from_extension() {
        assert_eq!(super::mime_of("IMG-1.JPG"), "image/jpeg");
        assert_eq!(super::mime_of("noext"), "application/octet-stream");
    }
}
