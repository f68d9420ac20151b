//! Turning the attachments of a message into files: inline base64 decoded,
//! URLs fetched with a timeout and a size cap. Errors name a URL by its
//! origin only: a media URL's path and query often carry a signature.

use crate::message::AttachmentInput;
use base64::Engine as _;
use flows::helpdesk::Attachment;
use futures::StreamExt;

/// Why an attachment could not be read.
#[derive(Debug, thiserror::Error)]
pub enum AttachmentError {
    /// Network trouble or a 5xx/429 from the file's host: later may work.
    #[error("{filename}: cannot fetch {url}: {reason}")]
    Unreachable {
        filename: String,
        url: String,
        reason: String,
    },
    /// Gone, refused, too large or undecodable: retrying cannot help.
    #[error("{filename}: {reason}")]
    Unusable { filename: String, reason: String },
}

impl AttachmentError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, AttachmentError::Unreachable { .. })
    }
}

/// Reads one attachment.
pub async fn fetch(
    http: &reqwest::Client,
    input: &AttachmentInput,
    max_bytes: u64,
) -> Result<Attachment, AttachmentError> {
    let unusable = |reason: String| AttachmentError::Unusable {
        filename: input.filename.clone(),
        reason,
    };
    if let Some(data) = &input.data {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(data)
            .map_err(|e| unusable(format!("invalid base64: {e}")))?;
        if bytes.len() as u64 > max_bytes {
            return Err(unusable(format!("larger than {max_bytes} bytes")));
        }
        let mime = input
            .mime
            .clone()
            .unwrap_or_else(|| "application/octet-stream".to_owned());
        return Ok(Attachment {
            filename: with_extension(&input.filename, &mime),
            mime,
            bytes,
        });
    }
    let Some(url) = &input.url else {
        return Err(unusable("no url and no data".to_owned()));
    };
    let shown = origin(url);
    let unreachable = |reason: String| AttachmentError::Unreachable {
        filename: input.filename.clone(),
        url: shown.clone(),
        reason,
    };
    let response = http
        .get(url)
        .send()
        .await
        .map_err(|e| unreachable(e.without_url().to_string()))?;
    let status = response.status();
    if status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408 {
        return Err(unreachable(format!("HTTP {status}")));
    }
    if !status.is_success() {
        return Err(unusable(format!("fetching {shown} answered HTTP {status}")));
    }
    if response.content_length().is_some_and(|len| len > max_bytes) {
        return Err(unusable(format!("larger than {max_bytes} bytes")));
    }
    let mime = input.mime.clone().or_else(|| {
        response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_owned())
    });
    let mut bytes = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| unreachable(e.without_url().to_string()))?;
        if (bytes.len() + chunk.len()) as u64 > max_bytes {
            return Err(unusable(format!("larger than {max_bytes} bytes")));
        }
        bytes.extend_from_slice(&chunk);
    }
    let mime = mime.unwrap_or_else(|| "application/octet-stream".to_owned());
    Ok(Attachment {
        filename: with_extension(&input.filename, &mime),
        mime,
        bytes,
    })
}

/// `scheme://host[:port]` of `url`, or a placeholder when it does not parse.
pub fn origin(url: &str) -> String {
    url::Url::parse(url)
        .ok()
        .map(|u| u.origin().ascii_serialization())
        .filter(|o| o != "null")
        .unwrap_or_else(|| "an unreadable URL".to_owned())
}

/// `filename`, with an extension from `mime` when it has none: help desks
/// accept a document by its extension (GLPI refuses one whose extension is
/// not an allowed document type), and gateways often send `attachment` or a
/// media id as the name.
fn with_extension(filename: &str, mime: &str) -> String {
    let has_extension = std::path::Path::new(filename)
        .extension()
        .is_some_and(|e| !e.is_empty());
    if has_extension {
        return filename.to_owned();
    }
    let preferred = match mime {
        "image/jpeg" => Some("jpg"),
        "audio/ogg" => Some("ogg"),
        "text/plain" => Some("txt"),
        _ => None,
    };
    let extension = preferred
        .or_else(|| mime_guess::get_mime_extensions_str(mime).and_then(|all| all.first().copied()));
    match extension {
        Some(extension) => format!("{filename}.{extension}"),
        None => filename.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_without_an_extension_get_one_from_the_mime_type() {
        assert_eq!(with_extension("attachment", "image/jpeg"), "attachment.jpg");
        assert_eq!(
            with_extension("3EB0C767", "application/pdf"),
            "3EB0C767.pdf"
        );
        assert_eq!(with_extension("voice", "audio/ogg"), "voice.ogg");
        assert_eq!(with_extension("scan.png", "image/jpeg"), "scan.png");
        assert_eq!(
            with_extension("blob", "application/x-unknown-thing"),
            "blob"
        );
    }

    #[test]
    fn urls_are_shown_by_their_origin_only() {
        assert_eq!(
            origin("https://media.example.com:8443/f/1.jpg?X-Amz-Signature=abc"),
            "https://media.example.com:8443"
        );
        assert_eq!(origin("not a url"), "an unreadable URL");
    }
}
