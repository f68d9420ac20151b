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
        // A comment is one unit: a `>` inside it does not end it.
        if rest[start..].starts_with("<!--") {
            rest = match rest[start + 4..].find("-->") {
                Some(end) => &rest[start + 4 + end + 3..],
                None => "",
            };
            continue;
        }
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
        // What these hold is not text a reader sees (an email's CSS, scripts,
        // its head and title): skipped up to the closing tag.
        if !tag.starts_with('/')
            && !tag.ends_with('/')
            && matches!(name, "style" | "script" | "head" | "title")
        {
            rest = skip_past_closing(rest, name);
        }
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

/// `rest` after the closing tag `</name…>` (ASCII case ignored); empty when
/// there is none.
fn skip_past_closing<'a>(rest: &'a str, name: &str) -> &'a str {
    let closing = format!("</{name}");
    let lower = rest.to_ascii_lowercase();
    let Some(at) = lower.find(&closing) else {
        return "";
    };
    match rest[at..].find('>') {
        Some(end) => &rest[at + end + 1..],
        None => "",
    }
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

    #[test]
    fn what_a_reader_does_not_see_is_dropped() {
        assert_eq!(
            html_to_text("<style><!-- p{x:1} --></style><p>Oi</p>"),
            "Oi"
        );
        assert_eq!(
            html_to_text(
                "<html><head><title>Re: ticket</title><STYLE type=\"text/css\">p {margin:0}</Style></head>\
                 <body><!-- a > b --><p>Trocamos o toner</p><script>alert(1)</script></body></html>"
            ),
            "Trocamos o toner"
        );
        assert_eq!(html_to_text("antes <!-- sem fim"), "antes");
        assert_eq!(html_to_text("a <style>b"), "a");
    }
}
