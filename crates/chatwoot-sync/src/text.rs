//! Text helpers: HTML from the target to plain text, and the content
//! fingerprints used to recognise the bridge's own writes.

use sha2::{Digest, Sha256};

/// Plain text of a help-desk HTML fragment (line breaks kept, tags dropped,
/// the common entities decoded).
pub fn html_to_text(html: &str) -> String {
    let mut text = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        text.push_str(&rest[..start]);
        let Some(end) = rest[start..].find('>') else {
            text.push_str(&rest[start..]);
            rest = "";
            break;
        };
        let tag = rest[start + 1..start + end].trim().to_ascii_lowercase();
        let name = tag
            .trim_start_matches('/')
            .split(|c: char| c.is_whitespace() || c == '/')
            .next()
            .unwrap_or("");
        if name == "br" || (tag.starts_with('/') && matches!(name, "p" | "div" | "li" | "tr")) {
            text.push('\n');
        }
        rest = &rest[start + end + 1..];
    }
    text.push_str(rest);
    let decoded = text
        .replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#039;", "'")
        .replace("&amp;", "&");
    decoded
        .lines()
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join("\n")
        .trim()
        .to_owned()
}

/// A fingerprint of a text that survives the target's HTML round trip:
/// tags dropped, whitespace collapsed.
pub fn fingerprint(text: &str) -> String {
    let plain = html_to_text(text);
    let normal = plain.split_whitespace().collect::<Vec<_>>().join(" ");
    format!(
        "sha256:{}",
        hex::encode(&Sha256::digest(normal.as_bytes())[..16])
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_becomes_text() {
        assert_eq!(
            html_to_text("<p>Olá &amp; bem-vindo</p><p>linha<br>dois</p>"),
            "Olá & bem-vindo\nlinha\ndois"
        );
        assert_eq!(html_to_text("a &lt; b"), "a < b");
    }

    #[test]
    fn fingerprints_ignore_markup_and_spacing() {
        assert_eq!(fingerprint("a\nb  c"), fingerprint("<p>a<br>b c</p>"));
        assert_ne!(fingerprint("a b"), fingerprint("a c"));
    }
}
