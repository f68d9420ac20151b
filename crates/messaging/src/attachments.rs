//! Turning the attachments of a message into files: inline base64 decoded,
//! URLs fetched with a timeout and a size cap.

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
        return Ok(Attachment {
            filename: input.filename.clone(),
            mime: input
                .mime
                .clone()
                .unwrap_or_else(|| "application/octet-stream".to_owned()),
            bytes,
        });
    }
    let Some(url) = &input.url else {
        return Err(unusable("no url and no data".to_owned()));
    };
    let unreachable = |reason: String| AttachmentError::Unreachable {
        filename: input.filename.clone(),
        url: url.clone(),
        reason,
    };
    let response = http
        .get(url)
        .send()
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let status = response.status();
    if status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408 {
        return Err(unreachable(format!("HTTP {status}")));
    }
    if !status.is_success() {
        return Err(unusable(format!("fetching {url} answered HTTP {status}")));
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
        let chunk = chunk.map_err(|e| unreachable(e.to_string()))?;
        if (bytes.len() + chunk.len()) as u64 > max_bytes {
            return Err(unusable(format!("larger than {max_bytes} bytes")));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(Attachment {
        filename: input.filename.clone(),
        mime: mime.unwrap_or_else(|| "application/octet-stream".to_owned()),
        bytes,
    })
}
