//! Connection settings.

use std::time::Duration;

use secrecy::SecretString;
use url::Url;

/// How the client authenticates.
#[derive(Debug, Clone)]
pub enum ItopAuth {
    /// HTTP Basic (`Authorization: Basic …`), allowed by default on iTop.
    Basic {
        user: String,
        password: SecretString,
    },
    /// Form fields `auth_user` / `auth_pwd` in the POST body.
    Form {
        user: String,
        password: SecretString,
    },
    /// `Auth-Token` header (authent-token extension).
    Token(SecretString),
}

/// Where and how to reach one iTop.
#[derive(Debug, Clone)]
pub struct ItopConfig {
    /// Full URL of `webservices/rest.php`, or the iTop root (the path is then appended).
    pub base_url: Url,
    pub auth: ItopAuth,
    /// API version sent with every call (default "1.3").
    pub version: String,
    /// Timeout of one HTTP exchange.
    pub timeout: Duration,
    /// Largest answer read, in bytes; a longer one fails the call with
    /// [`ItopError::ResponseTooLarge`](crate::ItopError::ResponseTooLarge)
    /// instead of being read into memory. See [`response_limit_for`].
    pub max_response_bytes: u64,
}

/// The least room: the iTop bridge reads attachments people attached in
/// iTop (one per answer, base64), and those files came through iTop's own
/// upload limit, which no setting of ours knows. Answers without
/// attachments stay far below it.
const JSON_ANSWERS: u64 = 256 * 1024 * 1024;

/// The answer limit for an iTop target that takes attachments of at most
/// `largest_attachment` bytes: an `Attachment` comes back inline, its file
/// base64-encoded (4/3 of its size), one per answer (attachments are listed
/// without contents and read one at a time); room for two of the largest,
/// the second to spare; never below the room the JSON answers need.
pub const fn response_limit_for(largest_attachment: u64) -> u64 {
    let files = largest_attachment
        .div_ceil(3)
        .saturating_mul(4)
        .saturating_mul(2);
    if files > JSON_ANSWERS {
        files
    } else {
        JSON_ANSWERS
    }
}

/// The answer limit when nothing says otherwise: [`response_limit_for`] the
/// 10 MiB attachments the messaging and Chatwoot sources take by default.
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = response_limit_for(10 * 1024 * 1024);

impl ItopConfig {
    pub fn new(base_url: Url, auth: ItopAuth) -> ItopConfig {
        ItopConfig {
            base_url,
            auth,
            version: "1.3".into(),
            timeout: Duration::from_secs(30),
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        }
    }

    /// The `rest.php` endpoint.
    pub fn endpoint(&self) -> Url {
        if self.base_url.path().ends_with("rest.php") {
            return self.base_url.clone();
        }
        let mut url = self.base_url.clone();
        let path = format!("{}/webservices/rest.php", url.path().trim_end_matches('/'));
        url.set_path(&path);
        url
    }
}
