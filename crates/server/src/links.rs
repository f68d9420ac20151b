//! Absolute links in answers: n8n's HTTP Request node, and most HTTP clients,
//! cannot follow a path without its scheme and host.

use axum::http::{HeaderMap, header};
use config::ServerConfig;

/// `path` (starting with `/`) as an absolute URL: under `server.public_url`
/// when set (a proxy in front, a path prefix), else under the request's own
/// `Host` with `X-Forwarded-Proto`'s scheme (`http` without it). A request
/// without a usable `Host` gets the path alone.
pub fn absolute(server: &ServerConfig, headers: &HeaderMap, path: &str) -> String {
    if let Some(base) = &server.public_url {
        return format!("{}{path}", base.as_str().trim_end_matches('/'));
    }
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| plausible_host(h));
    let Some(host) = host else {
        return path.to_owned();
    };
    let scheme = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map(str::trim)
        .filter(|p| p.eq_ignore_ascii_case("https"))
        .map_or("http", |_| "https");
    format!("{scheme}://{host}{path}")
}

/// A host name or address with an optional port, nothing else.
fn plausible_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']' | '_'))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn links_follow_the_public_url_else_the_request() {
        let mut server = ServerConfig::default();
        let path = "/api/v1/tickets/requests/42";
        assert_eq!(
            absolute(&server, &headers(&[("host", "127.0.0.1:8080")]), path),
            "http://127.0.0.1:8080/api/v1/tickets/requests/42"
        );
        assert_eq!(
            absolute(
                &server,
                &headers(&[
                    ("host", "bridge.example.com"),
                    ("x-forwarded-proto", "https")
                ]),
                path
            ),
            "https://bridge.example.com/api/v1/tickets/requests/42"
        );
        assert_eq!(
            absolute(&server, &headers(&[("host", "a b/c")]), path),
            path
        );
        assert_eq!(absolute(&server, &HeaderMap::new(), path), path);
        server.public_url = Some("https://help.example.com/bridge/".parse().unwrap());
        assert_eq!(
            absolute(&server, &headers(&[("host", "10.0.0.5")]), path),
            "https://help.example.com/bridge/api/v1/tickets/requests/42"
        );
    }
}
