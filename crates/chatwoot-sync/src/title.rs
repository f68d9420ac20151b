//! Ticket titles from the configured template (`{message:50}` by default).

/// Values the placeholders stand for.
#[derive(Debug, Clone, Default)]
pub struct TitleValues<'a> {
    pub message: &'a str,
    pub contact: &'a str,
    pub conversation: u64,
    pub inbox: &'a str,
}

/// Longest title GLPI keeps comfortably.
const MAX_TITLE: usize = 250;

/// Fills `{name}` / `{name:N}` placeholders; unknown ones stay as written
/// (the configuration check refuses them). Whitespace runs become one
/// space; an empty result becomes "Chatwoot conversation #N".
pub fn render_title(template: &str, values: &TitleValues<'_>) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            rest = "";
            break;
        };
        let inner = &after[..end];
        let (name, width) = match inner.split_once(':') {
            Some((name, width)) => (name, width.parse::<usize>().ok()),
            None => (inner, None),
        };
        let conversation = values.conversation.to_string();
        let value = match name {
            "message" => Some(values.message),
            "contact" => Some(values.contact),
            "conversation" => Some(conversation.as_str()),
            "inbox" => Some(values.inbox),
            _ => None,
        };
        match value {
            Some(value) => {
                let flat = one_line(value);
                match width {
                    Some(width) => out.push_str(&truncate(&flat, width)),
                    None => out.push_str(&flat),
                }
            }
            None => {
                out.push('{');
                out.push_str(inner);
                out.push('}');
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    let title = truncate(one_line(&out).trim(), MAX_TITLE);
    if title.is_empty() {
        format!("Chatwoot conversation #{}", values.conversation)
    } else {
        title
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn truncate(text: &str, chars: usize) -> String {
    text.chars()
        .take(chars)
        .collect::<String>()
        .trim_end()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> TitleValues<'static> {
        TitleValues {
            message: "Minha impressora\nnão imprime desde ontem à tarde, já reiniciei tudo e nada",
            contact: "Maria Souza",
            conversation: 482,
            inbox: "WhatsApp",
        }
    }

    #[test]
    fn default_template_keeps_fifty_characters_on_one_line() {
        let title = render_title("{message:50}", &values());
        assert_eq!(title, "Minha impressora não imprime desde ontem à tarde,");
        assert!(title.chars().count() <= 50);
    }

    #[test]
    fn placeholders_and_fallback() {
        assert_eq!(
            render_title("[{inbox}] {contact} #{conversation}", &values()),
            "[WhatsApp] Maria Souza #482"
        );
        let empty = TitleValues {
            message: "  ",
            conversation: 9,
            ..TitleValues::default()
        };
        assert_eq!(
            render_title("{message}", &empty),
            "Chatwoot conversation #9"
        );
    }
}
