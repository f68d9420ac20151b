//! Text helpers: HTML from the target to plain text (shared with the other
//! flows), and the content fingerprints used to recognise the bridge's own writes.

use sha2::{Digest, Sha256};

pub use flows::text::html_to_text;

/// A fingerprint of a text that survives the target's HTML round trip:
/// tags dropped, whitespace collapsed.
pub fn fingerprint(text: &str) -> String {
    // Without the zero-width spaces the connector adds to keep Chatwoot's
    // Liquid from reading braces: what was sent and what is stored compare.
    let plain = html_to_text(text).replace(chatwoot::ZERO_WIDTH_SPACE, "");
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
    fn fingerprints_ignore_markup_and_spacing() {
        assert_eq!(fingerprint("a\nb  c"), fingerprint("<p>a<br>b c</p>"));
        assert_ne!(fingerprint("a b"), fingerprint("a c"));
        assert_eq!(
            fingerprint("use {{x}} {%y%}"),
            fingerprint(&chatwoot::inert_liquid("use {{x}} {%y%}"))
        );
    }
}
