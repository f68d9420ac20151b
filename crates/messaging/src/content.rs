//! The ticket text: every message of the burst in order, with its time, as
//! escaped HTML.

use crate::message::ChannelMessage;
use html_escape::encode_text;

/// `2026-03-01 12:00:05 UTC` for a message: the caller's `sent_at` when it
/// gave one, else when the bridge accepted it.
pub fn message_time(message: &ChannelMessage) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    let when = message
        .sent_at
        .as_deref()
        .and_then(|s| {
            time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
        })
        .or_else(|| {
            time::OffsetDateTime::from_unix_timestamp_nanos(
                i128::from(message.received_at) * 1_000_000,
            )
            .ok()
        });
    when.map(|t| t.to_offset(time::UtcOffset::UTC))
        .and_then(|t| t.format(&format).ok())
        .map(|t| format!("{t} UTC"))
        .unwrap_or_default()
}

fn lines_html(text: &str) -> String {
    encode_text(text)
        .split('\n')
        .collect::<Vec<_>>()
        .join("<br>")
}

fn attachment_names(message: &ChannelMessage) -> String {
    if message.attachments.is_empty() {
        return String::new();
    }
    let names: Vec<String> = message
        .attachments
        .iter()
        .map(|a| encode_text(&a.filename).into_owned())
        .collect();
    format!(" <i>[{}]</i>", names.join(", "))
}

/// One message as a paragraph: `[time] text [attachments]`.
pub fn message_html(message: &ChannelMessage) -> String {
    format!(
        "<p><b>[{}]</b> {}{}</p>",
        encode_text(&message_time(message)),
        lines_html(&message.text),
        attachment_names(message)
    )
}

/// The ticket content for a burst: who wrote, then every message in order.
pub fn ticket_html(messages: &[ChannelMessage], notes: &[String]) -> String {
    let mut out = String::new();
    if let Some(first) = messages.first() {
        let who = first.name.as_deref().unwrap_or(&first.phone);
        out.push_str(&format!(
            "<p>Messages from <b>{}</b> ({})</p>",
            encode_text(who),
            encode_text(&first.phone)
        ));
    }
    for message in messages {
        out.push_str(&message_html(message));
    }
    for note in notes {
        out.push_str(&format!("<p><i>{}</i></p>", encode_text(note)));
    }
    out
}

/// The ticket title: the first words of the first message.
pub fn ticket_title(messages: &[ChannelMessage]) -> String {
    let first = messages.iter().find(|m| !m.text.trim().is_empty());
    let who = messages
        .first()
        .map(|m| m.name.clone().unwrap_or_else(|| m.phone.clone()))
        .unwrap_or_default();
    match first {
        Some(m) => {
            let line = m.text.lines().next().unwrap_or("").trim();
            let mut title: String = line.chars().take(80).collect();
            if line.chars().count() > 80 {
                title.push('…');
            }
            title
        }
        None => format!("Message from {who}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(text: &str, at: i64) -> ChannelMessage {
        ChannelMessage {
            conversation_id: "c".into(),
            message_id: at.to_string(),
            phone: "+5511987654321".into(),
            name: Some("Ana <b>".into()),
            email: None,
            text: text.into(),
            attachments: Vec::new(),
            sent_at: None,
            tax_id: None,
            received_at: at,
        }
    }

    #[test]
    fn messages_are_escaped_and_in_order_with_their_time() {
        let html = ticket_html(&[message("a < b", 0), message("second\nline", 1_000)], &[]);
        assert!(html.contains("Ana &lt;b&gt;"));
        assert!(html.contains("[1970-01-01 00:00:00 UTC]</b> a &lt; b"));
        let first = html.find("a &lt; b").unwrap_or(usize::MAX);
        let second = html.find("second<br>line").unwrap_or(0);
        assert!(first < second);
    }

    #[test]
    fn title_is_the_first_line() {
        assert_eq!(ticket_title(&[message("Printer\nbroken", 0)]), "Printer");
    }
}
