//! Connection settings for one GLPI instance.

use std::time::Duration;

use secrecy::SecretString;

/// How the user logs in (spec §2).
#[derive(Clone)]
pub enum Auth {
    /// `Authorization: user_token <token>` (the user's "API token"). Preferred.
    UserToken(SecretString),
    /// Login and password, sent in the JSON body of `POST initSession` (works even where the
    /// web server strips the `Authorization` header, spec §17 trap 12).
    Password {
        login: String,
        password: SecretString,
    },
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::UserToken(_) => f.write_str("UserToken(<redacted>)"),
            Auth::Password { login, .. } => f
                .debug_struct("Password")
                .field("login", login)
                .field("password", &"<redacted>")
                .finish(),
        }
    }
}

/// How GLPI returns text fields (spec §16).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TextEncoding {
    /// Decide at the first login, from the server: GLPI 11 (a base URL under `api.php/v1`,
    /// or `getFullSession` answering the session bare) returns raw HTML, older versions
    /// (the session wrapped in a `session` key) entity-encode.
    #[default]
    Auto,
    /// GLPI 9.5 / 10.0: strings come back HTML-entity-encoded; the client decodes them once.
    Encoded,
    /// GLPI 11: strings come back as stored; nothing is decoded.
    Raw,
}

/// Settings of one GLPI target.
#[derive(Clone, Debug)]
pub struct GlpiConfig {
    /// Base URL: `https://host/glpi`, `https://host/glpi/apirest.php` or
    /// `https://host/api.php/v1` (GLPI 11). `apirest.php` is appended when no API entry
    /// point is given.
    pub base_url: String,
    /// `App-Token` of the API client (Setup > General > API), if the client has one.
    pub app_token: Option<SecretString>,
    /// Credentials of the service user.
    pub auth: Auth,
    /// Whole-request timeout, for every call.
    pub timeout: Duration,
    /// TCP + TLS connect timeout.
    pub connect_timeout: Duration,
    /// Extra trusted CA certificate(s), PEM text (for a private PKI).
    pub ca_cert_pem: Option<String>,
    /// Accept any TLS certificate. Only for lab instances.
    pub accept_invalid_certs: bool,
    /// Entity used for tickets, users and contacts created without an explicit entity.
    pub default_entity: Option<i64>,
    /// How text fields are decoded.
    pub text_encoding: TextEncoding,
    /// Largest answer read, in bytes; a longer one fails the call with
    /// [`GlpiError::ResponseTooLarge`](crate::GlpiError::ResponseTooLarge)
    /// instead of being read into memory. See [`response_limit_for`].
    pub max_response_bytes: u64,
}

/// The least room: a document a technician attached in GLPI came through
/// GLPI's own upload limit, which no setting of ours knows, and is
/// downloaded raw. JSON answers (a search page of at most 1000 rows, a
/// ticket's whole timeline) stay far below it.
const JSON_ANSWERS: u64 = 64 * 1024 * 1024;

/// The answer limit for a GLPI target that takes attachments of at most
/// `largest_attachment` bytes: a document download is the file itself, raw,
/// so twice the largest file leaves room for one that reached GLPI another
/// way; never below the room the JSON answers need.
pub const fn response_limit_for(largest_attachment: u64) -> u64 {
    let files = largest_attachment.saturating_mul(2);
    if files > JSON_ANSWERS {
        files
    } else {
        JSON_ANSWERS
    }
}

/// The answer limit when nothing says otherwise: [`response_limit_for`] the
/// 10 MiB attachments the messaging and Chatwoot sources take by default.
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = response_limit_for(10 * 1024 * 1024);

impl GlpiConfig {
    /// A configuration with the usual defaults: 30 s timeout, 10 s connect timeout,
    /// automatic text decoding, no custom CA, [`DEFAULT_MAX_RESPONSE_BYTES`].
    pub fn new(base_url: impl Into<String>, auth: Auth) -> Self {
        GlpiConfig {
            base_url: base_url.into(),
            app_token: None,
            auth,
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            ca_cert_pem: None,
            accept_invalid_certs: false,
            default_entity: None,
            text_encoding: TextEncoding::Auto,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        }
    }

    /// Set the App-Token.
    pub fn with_app_token(mut self, token: SecretString) -> Self {
        self.app_token = Some(token);
        self
    }

    /// Set the default entity for created items.
    pub fn with_default_entity(mut self, entity_id: i64) -> Self {
        self.default_entity = Some(entity_id);
        self
    }

    /// Set the request timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

/// Normalise the base URL so that `join("Ticket/1")` lands on the API entry point.
pub(crate) fn api_root(base_url: &str) -> Result<url::Url, String> {
    let trimmed = base_url.trim().trim_end_matches('/');
    let with_entry = if trimmed.ends_with("apirest.php") || trimmed.ends_with("api.php/v1") {
        trimmed.to_owned()
    } else if trimmed.ends_with("api.php") {
        format!("{trimmed}/v1")
    } else {
        format!("{trimmed}/apirest.php")
    };
    let url = url::Url::parse(&format!("{with_entry}/")).map_err(|e| e.to_string())?;
    match url.scheme() {
        "http" | "https" => Ok(url),
        other => Err(format!("unsupported URL scheme {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_root_variants() {
        assert_eq!(
            api_root("http://h/glpi").unwrap().as_str(),
            "http://h/glpi/apirest.php/"
        );
        assert_eq!(
            api_root("http://h/glpi/apirest.php/").unwrap().as_str(),
            "http://h/glpi/apirest.php/"
        );
        assert_eq!(
            api_root("https://h/api.php/v1").unwrap().as_str(),
            "https://h/api.php/v1/"
        );
        assert_eq!(
            api_root("https://h/api.php").unwrap().as_str(),
            "https://h/api.php/v1/"
        );
        assert!(api_root("ftp://h").is_err());
        assert!(api_root("not a url").is_err());
    }

    #[test]
    fn debug_redacts_secrets() {
        let auth = Auth::Password {
            login: "bot".into(),
            password: SecretString::from("hunter2"),
        };
        let text = format!("{:?}", GlpiConfig::new("http://h", auth));
        assert!(!text.contains("hunter2"));
        assert!(text.contains("bot"));
    }
}
