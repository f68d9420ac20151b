//! Turning the attachments of a message into files: inline base64 decoded,
//! URLs fetched with a timeout and a size cap. Errors name a URL by its
//! origin only: a media URL's path and query often carry a signature.

use std::net::{IpAddr, SocketAddr};

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

/// Reads one attachment. Unless `private_allowed`, a URL naming a
/// non-public address is refused (names are filtered by the client's
/// resolver, [`PublicAddressesOnly`]).
pub async fn fetch(
    http: &reqwest::Client,
    input: &AttachmentInput,
    max_bytes: u64,
    private_allowed: bool,
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
    if !private_allowed && names_private_address(url) {
        return Err(unusable(format!(
            "{shown} is not a public address (allow_private_attachment_hosts is off)"
        )));
    }
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

/// Whether `url` names an IP address that is not public (the resolver is
/// not asked for those).
fn names_private_address(url: &str) -> bool {
    match url::Url::parse(url)
        .ok()
        .and_then(|u| u.host().map(|h| h.to_owned()))
    {
        Some(url::Host::Ipv4(ip)) => !is_public(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => !is_public(IpAddr::V6(ip)),
        _ => false,
    }
}

/// Not loopback, private, link-local, shared (CGNAT), unspecified,
/// multicast, broadcast, reserved (240/4), benchmarking (198.18/15), IETF
/// protocol (192.0.0/24) or documentation space; an IPv6 address that
/// carries an IPv4 one (mapped, compatible, translated, NAT64 64:ff9b::/96,
/// 6to4) is judged by that IPv4 address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || a >= 240
                || (a == 100 && (64..128).contains(&b))
                || (a == 198 && (b == 18 || b == 19))
                || (a == 192 && b == 0 && c == 0))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let s = v6.segments();
            let low_v4 = || {
                let [.., a, b, c, d] = v6.octets();
                std::net::Ipv4Addr::new(a, b, c, d)
            };
            // ::a.b.c.d (IPv4-compatible, deprecated), ::ffff:0:a.b.c.d
            // (IPv4-translated) and 64:ff9b::a.b.c.d (NAT64) reach that IPv4
            // host.
            if (s[..6] == [0, 0, 0, 0, 0, 0] && !v6.is_loopback() && !v6.is_unspecified())
                || s[..6] == [0, 0, 0, 0, 0xffff, 0]
                || s[..6] == [0x64, 0xff9b, 0, 0, 0, 0]
            {
                return is_public(IpAddr::V4(low_v4()));
            }
            // 6to4: 2002:a.b.c.d::/48.
            if s[0] == 0x2002 {
                let [hi, lo] = [s[1].to_be_bytes(), s[2].to_be_bytes()];
                let v4 = std::net::Ipv4Addr::new(hi[0], hi[1], lo[0], lo[1]);
                return is_public(IpAddr::V4(v4));
            }
            let first = s[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                // Unique local fc00::/7, link-local fe80::/10, site-local
                // fec0::/10 (deprecated).
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || (first & 0xffc0) == 0xfec0
                // Local-use NAT64 64:ff9b:1::/48, documentation 2001:db8::/32.
                || (s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1)
                || (s[0] == 0x2001 && s[1] == 0x0db8))
        }
    }
}

/// The flow's HTTP client (attachments, callbacks): no redirects, and no
/// proxy, even one named by `HTTP_PROXY`/`HTTPS_PROXY`/`ALL_PROXY`: a proxy
/// would resolve the host itself, past the resolver that keeps
/// `public_only` clients off private addresses. `public_only`: names resolve
/// to public addresses only.
pub fn http_client(
    public_only: bool,
    timeout: std::time::Duration,
) -> Result<reqwest::Client, reqwest::Error> {
    let builder = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(std::time::Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy();
    if public_only {
        builder
            .dns_resolver(std::sync::Arc::new(PublicAddressesOnly))
            .build()
    } else {
        builder.build()
    }
}

/// A resolver that keeps a name's public addresses only: a host name that
/// leads to a private address (an internal service, a cloud metadata
/// endpoint) is refused at connection time, whatever the name.
pub struct PublicAddressesOnly;

impl reqwest::dns::Resolve for PublicAddressesOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| is_public(a.ip()))
                .collect();
            if found.is_empty() {
                return Err(format!("{host} has no public address").into());
            }
            let addrs: reqwest::dns::Addrs = Box::new(found.into_iter());
            Ok(addrs)
        })
    }
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

    /// Run by [`proxies_from_the_environment_are_not_used`] in a process
    /// whose environment names a proxy: asks both clients for a name that
    /// only a proxy could look up.
    #[tokio::test]
    #[ignore = "run by proxies_from_the_environment_are_not_used"]
    async fn proxy_child() {
        for public_only in [true, false] {
            let client = http_client(public_only, std::time::Duration::from_secs(2)).unwrap();
            let _ = client
                .get("http://metadata.ticketbridge-test.invalid/latest")
                .send()
                .await;
        }
    }

    #[test]
    fn proxies_from_the_environment_are_not_used() {
        let proxy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", proxy.local_addr().unwrap());
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "attachments::tests::proxy_child", "--ignored"])
            .env("HTTP_PROXY", &url)
            .env("http_proxy", &url)
            .env("HTTPS_PROXY", &url)
            .env("ALL_PROXY", &url)
            .env_remove("NO_PROXY")
            .env_remove("no_proxy")
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
        proxy.set_nonblocking(true).unwrap();
        assert!(
            proxy.accept().is_err(),
            "a request went through the environment's proxy"
        );
    }

    #[test]
    fn only_public_addresses_are_public() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
            // Reserved, benchmarking and IETF protocol space.
            "240.0.0.1",
            "250.1.2.3",
            "198.18.0.1",
            "198.19.255.254",
            "192.0.0.8",
            // IPv6 forms of IPv4 addresses that are not public.
            "64:ff9b::a9fe:a9fe",
            "64:ff9b::7f00:1",
            "64:ff9b:1::a00:1",
            "::a00:1",
            "::ffff:0:a9fe:a9fe",
            "2002:a00:1::1",
            "2002:7f00:1::",
            "fec0::1",
            "2001:db8::1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in [
            "8.8.8.8",
            "200.160.2.3",
            "198.20.0.1",
            "192.0.1.1",
            "2001:4860:4860::8888",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
        assert!(names_private_address(
            "http://169.254.169.254/latest/meta-data"
        ));
        assert!(names_private_address("http://[::1]:8080/x"));
        assert!(!names_private_address("https://media.example.com/x.jpg"));
    }

    #[tokio::test]
    async fn a_private_address_is_not_fetched_unless_allowed() {
        let http = reqwest::Client::builder()
            .dns_resolver(std::sync::Arc::new(PublicAddressesOnly))
            .build()
            .unwrap();
        let input = |url: &str| AttachmentInput {
            filename: "f".into(),
            mime: None,
            url: Some(url.into()),
            data: None,
        };
        let refused = fetch(&http, &input("http://127.0.0.1:9/x"), 100, false)
            .await
            .unwrap_err();
        assert!(!refused.is_retryable(), "{refused}");
        assert!(
            refused.to_string().contains("not a public address"),
            "{refused}"
        );
        // A name that resolves to loopback only is refused by the resolver:
        // a server listening there is never connected to.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let connected = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let seen = connected.clone();
        let server = tokio::spawn(async move {
            if listener.accept().await.is_ok() {
                seen.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        });
        let by_name = fetch(
            &http,
            &input(&format!("http://localhost:{port}/x")),
            100,
            false,
        )
        .await
        .unwrap_err();
        assert!(
            by_name
                .to_string()
                .contains(&format!("http://localhost:{port}")),
            "{by_name}"
        );
        assert!(
            !connected.load(std::sync::atomic::Ordering::SeqCst),
            "no connection was made"
        );
        server.abort();
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
