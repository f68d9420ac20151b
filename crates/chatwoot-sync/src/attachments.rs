//! Attachments: downloaded from `data_url` and handed to the target as
//! documents of the followup. What cannot be copied is named in the
//! followup instead: a file never holds its message back.
//!
//! `data_url` comes from the webhook body, so it is fetched only from
//! Chatwoot's own host (the configured `url`) or from `attachment_hosts`
//! (the storage ActiveStorage redirects to), and every redirect hop is
//! checked against the same rule: the bridge never fetches an address
//! someone else chose (SSRF). A download that fails for a reason that may
//! pass (connection, 5xx, timeout) is tried a few times within the job;
//! after that the message is written without the file.

use std::sync::Arc;
use std::time::Duration;

use chatwoot::Attachment;
use config::sources::AttachmentHost;
use flows::helpdesk::Attachment as File;
use url::Url;

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

/// Attempts per file within one job, and the pause before each retry.
const ATTEMPTS: u32 = 3;
const RETRY_PAUSE: Duration = Duration::from_millis(500);

/// The hosts attachments may be fetched from.
#[derive(Debug, Clone)]
pub(crate) struct AllowedHosts {
    chatwoot: Option<(String, u16)>,
    extra: Vec<AttachmentHost>,
}

impl AllowedHosts {
    /// Chatwoot's own host and port, and the configured extra hosts (an
    /// entry that does not read is left out; `config check` reports it).
    pub(crate) fn new(chatwoot: &Url, extra: &[String]) -> Self {
        Self {
            chatwoot: host_of(chatwoot).zip(chatwoot.port_or_known_default()),
            extra: extra
                .iter()
                .filter_map(|e| AttachmentHost::parse(e).ok())
                .collect(),
        }
    }

    pub(crate) fn allows(&self, url: &Url) -> bool {
        if !matches!(url.scheme(), "http" | "https") {
            return false;
        }
        let (Some(host), Some(port)) = (host_of(url), url.port_or_known_default()) else {
            return false;
        };
        if self
            .chatwoot
            .as_ref()
            .is_some_and(|(h, p)| *h == host && *p == port)
        {
            return true;
        }
        let default_port = if url.scheme() == "https" { 443 } else { 80 };
        self.extra.iter().any(|entry| {
            let name = host == entry.host
                || (entry.subdomains && host.ends_with(&format!(".{}", entry.host)));
            name && entry.port.unwrap_or(default_port) == port
        })
    }
}

/// Lowercase host, IPv6 without brackets.
fn host_of(url: &Url) -> Option<String> {
    match url.host()? {
        url::Host::Domain(d) => Some(d.to_ascii_lowercase()),
        url::Host::Ipv4(ip) => Some(ip.to_string()),
        url::Host::Ipv6(ip) => Some(ip.to_string()),
    }
}

/// The attachment HTTP client: redirects followed only to allowed hosts
/// (five at most), a connect and a per-read timeout rather than one for the
/// whole body (a large file on a slow link is not a failure).
pub(crate) fn download_client(
    allowed: Arc<AllowedHosts>,
    timeout: Duration,
) -> SyncResult<reqwest::Client> {
    let policy = reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() >= 5 {
            attempt.error("too many redirects")
        } else if allowed.allows(attempt.url()) {
            attempt.follow()
        } else {
            attempt.error(NOT_ALLOWED)
        }
    });
    reqwest::Client::builder()
        .connect_timeout(timeout)
        .read_timeout(timeout)
        .redirect(policy)
        .build()
        .map_err(|e| SyncError::Invalid(format!("attachment HTTP client: {e}")))
}

const NOT_ALLOWED: &str = "redirected to a host that is not allowed";

/// Why one try did not bring the file.
enum Failure {
    /// Trying again cannot help (gone, too large, host not allowed).
    Final(String),
    /// It may work on another try (network, 5xx, 429, timeout).
    Passing(String),
}

impl SourceSync {
    /// The files to attach, and a line for each one that was not copied.
    /// Never fails: a file that cannot be fetched is named instead.
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
                // A shared contact (vCard) has no file: its name is named.
                if let Some(title) = attachment.fallback_title.as_deref() {
                    let kind = attachment.file_type.as_deref().unwrap_or("attachment");
                    notes.push(format!("[{kind}: {title}]"));
                }
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
            match self.fetch(url, cap).await {
                Ok((bytes, mime)) => files.push(File {
                    mime: mime.unwrap_or_else(|| mime_of(&name).to_owned()),
                    filename: name,
                    bytes,
                }),
                Err(reason) => {
                    tracing::info!(source = %self.name, attachment = attachment.id, %reason, "attachment not copied");
                    notes.push(format!("[{name} could not be copied ({reason})]"));
                }
            }
        }
        Ok((files, notes))
    }

    /// Up to [`ATTEMPTS`] tries of one file; the reason of the last failure.
    async fn fetch(&self, url: &str, cap: u64) -> Result<(Vec<u8>, Option<String>), String> {
        let parsed = Url::parse(url).map_err(|_| "not a valid address".to_owned())?;
        if !self.allowed_hosts.allows(&parsed) {
            return Err("its host is not Chatwoot's or one of attachment_hosts".to_owned());
        }
        let mut attempt = 1;
        loop {
            match self.download(parsed.clone(), cap).await {
                Ok(file) => return Ok(file),
                Err(Failure::Final(reason)) => return Err(reason),
                Err(Failure::Passing(reason)) if attempt >= ATTEMPTS => return Err(reason),
                Err(Failure::Passing(reason)) => {
                    tracing::debug!(source = %self.name, attempt, %reason, "attachment download failed; trying again");
                    tokio::time::sleep(RETRY_PAUSE * attempt).await;
                    attempt += 1;
                }
            }
        }
    }

    /// One try: the body and its content type.
    async fn download(&self, url: Url, cap: u64) -> Result<(Vec<u8>, Option<String>), Failure> {
        let failed = |e: reqwest::Error| {
            if e.is_redirect() {
                let text = std::error::Error::source(&e)
                    .map(ToString::to_string)
                    .unwrap_or_default();
                if text.contains(NOT_ALLOWED) {
                    return Failure::Final(NOT_ALLOWED.to_owned());
                }
                return Failure::Final("too many redirects".to_owned());
            }
            let kind = if e.is_timeout() {
                "timed out"
            } else if e.is_connect() {
                "connection failed"
            } else {
                "transfer failed"
            };
            Failure::Passing(kind.to_owned())
        };
        let mut response = self.http.get(url).send().await.map_err(failed)?;
        let status = response.status();
        if status.is_server_error() || status.as_u16() == 429 {
            return Err(Failure::Passing(format!("HTTP {}", status.as_u16())));
        }
        if !status.is_success() {
            return Err(Failure::Final(format!("HTTP {}", status.as_u16())));
        }
        let too_large = || Failure::Final(format!("larger than {cap} bytes"));
        if response.content_length().is_some_and(|len| len > cap) {
            return Err(too_large());
        }
        let mime = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<mime::Mime>().ok())
            .map(|m| m.essence_str().to_owned())
            .filter(|m| m != "application/octet-stream");
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(failed)? {
            if (bytes.len() + chunk.len()) as u64 > cap {
                return Err(too_large());
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok((bytes, mime))
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
    use super::*;

    #[test]
    fn mime_from_extension() {
        assert_eq!(super::mime_of("IMG-1.JPG"), "image/jpeg");
        assert_eq!(super::mime_of("noext"), "application/octet-stream");
    }

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn only_chatwoot_and_listed_hosts() {
        let allowed = AllowedHosts::new(
            &url("https://chat.example.com"),
            &["*.s3.amazonaws.com".to_owned(), "minio.lan:9000".to_owned()],
        );
        for good in [
            "https://chat.example.com/rails/active_storage/blobs/redirect/x/a.png",
            "https://CHAT.example.com:443/a.png",
            "https://bucket.s3.amazonaws.com/a.png",
            "http://minio.lan:9000/bucket/a.png",
        ] {
            assert!(allowed.allows(&url(good)), "{good}");
        }
        for bad in [
            "http://169.254.169.254/latest/meta-data/",
            "http://chat.example.com/a.png",
            "https://chat.example.com:8443/a.png",
            "https://chat.example.com.evil.test/a.png",
            "https://s3.amazonaws.com.evil.test/a.png",
            "http://minio.lan/bucket/a.png",
            "ftp://chat.example.com/a.png",
            "http://127.0.0.1:9000/a.png",
        ] {
            assert!(!allowed.allows(&url(bad)), "{bad}");
        }
    }
}
