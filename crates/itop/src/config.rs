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
}

impl ItopConfig {
    pub fn new(base_url: Url, auth: ItopAuth) -> ItopConfig {
        ItopConfig {
            base_url,
            auth,
            version: "1.3".into(),
            timeout: Duration::from_secs(30),
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
