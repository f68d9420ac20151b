//! Help-desk HTML as plain text, for flows that show a reply somewhere HTML
//! means nothing: a chat message, a voice agent reading a ticket aloud.

/// Plain text of a help-desk HTML fragment: line breaks kept (`<br>`, the end
/// of a paragraph, division, list item or table row), other tags dropped,
/// entities decoded (named and numeric), trailing spaces and blank edges
/// trimmed.
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
    let decoded = html_escape::decode_html_entities(&text).replace('\u{a0}', " ");
    decoded
        .lines()
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join("\n")
        .trim()
        .to_owned()
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
        assert_eq!(html_to_text("<p>caf&#233;&nbsp;&eacute;</p>"), "café é");
        assert_eq!(html_to_text("plain text"), "plain text");
    }
}
