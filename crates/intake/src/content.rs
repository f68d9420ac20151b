//! The ticket content: the description as the caller wrote it, then the
//! free-form fields as a readable table. Everything is HTML-escaped.

use html_escape::encode_text;

/// HTML for the ticket body.
pub fn render(description: &str, extra: &[(String, String)]) -> String {
    let mut html = String::new();
    for paragraph in description.split("\n\n") {
        let lines: Vec<String> = paragraph
            .lines()
            .map(|l| encode_text(l.trim_end()).into_owned())
            .collect();
        if lines.iter().all(|l| l.trim().is_empty()) {
            continue;
        }
        html.push_str("<p>");
        html.push_str(&lines.join("<br>"));
        html.push_str("</p>");
    }
    if !extra.is_empty() {
        html.push_str(
            "<table border=\"1\"><thead><tr><th>Field</th><th>Value</th></tr></thead><tbody>",
        );
        for (name, value) in extra {
            html.push_str("<tr><td>");
            html.push_str(&encode_text(name));
            html.push_str("</td><td>");
            html.push_str(&encode_text(value).replace('\n', "<br>"));
            html.push_str("</td></tr>");
        }
        html.push_str("</tbody></table>");
    }
    html
}

/// The answer's human message: `{id}` (the numeric id), `{ref}` (the
/// reference as people read it: `#7` on GLPI, `R-000004` on iTop) and
/// `{url}` replaced.
pub fn message(template: &str, id: i64, reference: &str, url: &str) -> String {
    template
        .replace("{id}", &id.to_string())
        .replace("{ref}", &flows::helpdesk::display_reference(reference))
        .replace("{url}", url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_fields_become_an_escaped_table() {
        let html = render(
            "Line <1>\nline 2\n\nSecond",
            &[("AnyDesk <id>".into(), "1 & 2".into())],
        );
        assert_eq!(
            html,
            "<p>Line &lt;1&gt;<br>line 2</p><p>Second</p><table border=\"1\"><thead><tr><th>Field</th>\
             <th>Value</th></tr></thead><tbody><tr><td>AnyDesk &lt;id&gt;</td><td>1 &amp; 2</td></tr>\
             </tbody></table>"
        );
    }

    #[test]
    fn messages_fill_the_template() {
        assert_eq!(
            message("Ticket #{id} created: {url}", 7, "7", "u"),
            "Ticket #7 created: u"
        );
        assert_eq!(
            message("Ticket {ref} created", 7, "7", "u"),
            "Ticket #7 created"
        );
        assert_eq!(
            message("Ticket {ref} created", 2, "R-000004", "u"),
            "Ticket R-000004 created"
        );
    }
}
