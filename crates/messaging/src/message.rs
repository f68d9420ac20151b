//! One customer message as a bot or gateway sends it, checked field by field.

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Longest conversation or message id accepted.
pub const MAX_ID_LEN: usize = 200;
/// Most attachments on one message.
pub const MAX_ATTACHMENTS: usize = 10;

/// A file sent with a message: fetched from `url` or given inline as base64 `data`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachmentInput {
    pub filename: String,
    pub mime: Option<String>,
    pub url: Option<String>,
    /// Standard base64.
    pub data: Option<String>,
}

/// A message accepted at the door, as buffered for its conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelMessage {
    /// The conversation's key: the caller's conversation id, a WhatsApp
    /// person JID as its number's digits (see [`conversation_key`]).
    pub conversation_id: String,
    /// The caller's message id (dedupe key within the source).
    pub message_id: String,
    /// E.164, normalised with the source's default country.
    pub phone: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub text: String,
    pub attachments: Vec<AttachmentInput>,
    /// As the caller gave it (RFC 3339), when it did.
    pub sent_at: Option<String>,
    /// Tax id (CNPJ...) the bot collected, if any.
    pub tax_id: Option<String>,
    /// When the bridge accepted it (unix ms).
    pub received_at: i64,
}

/// Why a request was refused at the door.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// Every invalid field, as `(path, message)`.
    Invalid(Vec<(String, String)>),
    /// An inline attachment is larger than the source allows.
    TooLarge(String),
}

impl Rejection {
    /// One line naming every invalid field.
    pub fn describe(&self) -> String {
        match self {
            Rejection::Invalid(fields) => fields
                .iter()
                .map(|(path, message)| format!("{path}: {message}"))
                .collect::<Vec<_>>()
                .join("; "),
            Rejection::TooLarge(message) => message.clone(),
        }
    }
}

/// What the door needs to know to check a message.
#[derive(Debug, Clone)]
pub struct MessageRules<'a> {
    pub default_country: Option<&'a str>,
    pub max_attachment_bytes: u64,
}

fn text_field(
    body: &Value,
    name: &str,
    required: bool,
    bad: &mut Vec<(String, String)>,
) -> Option<String> {
    match body.get(name) {
        None | Some(Value::Null) => {
            if required {
                bad.push((name.to_owned(), "is required".to_owned()));
            }
            None
        }
        Some(Value::String(s)) => Some(s.trim().to_owned()),
        Some(Value::Number(n)) if name.ends_with("_id") => Some(n.to_string()),
        Some(_) => {
            bad.push((name.to_owned(), "must be a string".to_owned()));
            None
        }
    }
}

fn id_field(body: &Value, name: &str, bad: &mut Vec<(String, String)>) -> String {
    let value = text_field(body, name, true, bad).unwrap_or_default();
    if body.get(name).is_some_and(|v| !v.is_null()) {
        if value.is_empty() {
            bad.push((name.to_owned(), "must not be empty".to_owned()));
        } else if value.len() > MAX_ID_LEN {
            bad.push((
                name.to_owned(),
                format!("must be at most {MAX_ID_LEN} characters"),
            ));
        }
    }
    value
}

/// The id a conversation is filed under (dedupe, ordering, state). A
/// WhatsApp person JID (`5511987654321@s.whatsapp.net`, `…@c.us`, with or
/// without a `:device` part) and a `+` number are the number's digits, the
/// way a bot names the chat by `{{phone}}` (Typebot's handoff): the three are
/// one conversation. Any other id is kept as given: groups (`…@g.us`),
/// WhatsApp's hidden-number ids (`…@lid`, never a phone number) and a bot's
/// own ids.
pub fn conversation_key(raw: &str) -> String {
    let raw = raw.trim();
    let digits = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
    if let Some((user, domain)) = raw.rsplit_once('@')
        && (domain.eq_ignore_ascii_case("s.whatsapp.net") || domain.eq_ignore_ascii_case("c.us"))
    {
        let user = user.split(':').next().unwrap_or(user);
        let number = user.strip_prefix('+').unwrap_or(user);
        if digits(number) {
            return number.to_owned();
        }
    }
    if let Some(number) = raw.strip_prefix('+')
        && digits(number)
    {
        return number.to_owned();
    }
    raw.to_owned()
}

/// `sent_at`: an RFC 3339 time, or unix seconds (Evolution's
/// `messageTimestamp`; milliseconds when the number is that large) as a
/// number or a text of digits; kept as RFC 3339.
fn sent_at_field(body: &Value, bad: &mut Vec<(String, String)>) -> Option<String> {
    let unix = |seconds: i64| {
        let seconds = if seconds >= 100_000_000_000 {
            seconds / 1000
        } else {
            seconds
        };
        time::OffsetDateTime::from_unix_timestamp(seconds)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
    };
    let parsed = match body.get("sent_at") {
        None | Some(Value::Null) => return None,
        Some(Value::Number(n)) => n.as_i64().and_then(unix),
        Some(Value::String(s)) if s.trim().is_empty() => return None,
        Some(Value::String(s)) => {
            let s = s.trim();
            if s.chars().all(|c| c.is_ascii_digit()) {
                s.parse::<i64>().ok().and_then(unix)
            } else {
                time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                    .is_ok()
                    .then(|| s.to_owned())
            }
        }
        Some(_) => None,
    };
    if parsed.is_none() {
        bad.push((
            "sent_at".to_owned(),
            "must be an RFC 3339 time such as 2026-03-01T12:00:00Z, or unix seconds".to_owned(),
        ));
    }
    parsed
}

/// Decoded size of a base64 text, without decoding it.
fn decoded_len(data: &str) -> u64 {
    let trimmed = data.trim_end_matches('=');
    (trimmed.len() as u64).saturating_mul(3) / 4
}

impl ChannelMessage {
    /// Reads and checks a request body; lists every invalid field at once.
    pub fn parse(
        body: &Value,
        rules: &MessageRules<'_>,
        received_at: i64,
    ) -> Result<ChannelMessage, Rejection> {
        let mut bad = Vec::new();
        if !body.is_object() {
            return Err(Rejection::Invalid(vec![(
                String::new(),
                "the body must be a JSON object".to_owned(),
            )]));
        }
        let conversation_id = id_field(body, "conversation_id", &mut bad);
        let message_id = id_field(body, "message_id", &mut bad);
        // n8n and some gateways send the number as a JSON number.
        let raw_phone = match body.get("phone") {
            Some(Value::Number(n)) if n.is_u64() => Some(n.to_string()),
            _ => text_field(body, "phone", true, &mut bad),
        };
        let phone = match raw_phone.as_deref() {
            Some(raw) => match flows::identity::normalize_phone(raw, rules.default_country) {
                Ok(e164) => e164,
                Err(e) => {
                    bad.push(("phone".to_owned(), e.to_string()));
                    String::new()
                }
            },
            None => String::new(),
        };
        let name = text_field(body, "name", false, &mut bad).filter(|n| !n.is_empty());
        let email = text_field(body, "email", false, &mut bad).filter(|e| !e.is_empty());
        if let Some(email) = &email {
            let ok = email
                .split_once('@')
                .is_some_and(|(user, host)| !user.is_empty() && host.contains('.'));
            if !ok {
                bad.push(("email".to_owned(), "is not an email address".to_owned()));
            }
        }
        let text = text_field(body, "text", false, &mut bad).unwrap_or_default();
        let sent_at = sent_at_field(body, &mut bad);
        let tax_id = text_field(body, "tax_id", false, &mut bad).filter(|s| !s.is_empty());
        let mut too_large = None;
        let mut attachments = Vec::new();
        match body.get("attachments") {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) => {
                if items.len() > MAX_ATTACHMENTS {
                    bad.push((
                        "attachments".to_owned(),
                        format!("at most {MAX_ATTACHMENTS} attachments per message"),
                    ));
                }
                for (i, item) in items.iter().enumerate() {
                    let path = format!("attachments[{i}]");
                    match parse_attachment(item, &path, rules, &mut bad) {
                        Ok(Some(a)) => attachments.push(a),
                        Ok(None) => {}
                        Err(message) => too_large = Some(message),
                    }
                }
            }
            Some(_) => bad.push(("attachments".to_owned(), "must be an array".to_owned())),
        }
        if text.is_empty() && attachments.is_empty() && bad.is_empty() {
            bad.push((
                "text".to_owned(),
                "is required when there is no attachment".to_owned(),
            ));
        }
        if !bad.is_empty() {
            return Err(Rejection::Invalid(bad));
        }
        if let Some(message) = too_large {
            return Err(Rejection::TooLarge(message));
        }
        Ok(ChannelMessage {
            conversation_id: conversation_key(&conversation_id),
            message_id,
            phone,
            name,
            email,
            text,
            attachments,
            sent_at,
            tax_id,
            received_at,
        })
    }
}

fn parse_attachment(
    item: &Value,
    path: &str,
    rules: &MessageRules<'_>,
    bad: &mut Vec<(String, String)>,
) -> Result<Option<AttachmentInput>, String> {
    if !item.is_object() {
        bad.push((path.to_owned(), "must be an object".to_owned()));
        return Ok(None);
    }
    let mut local = Vec::new();
    let url = text_field(item, "url", false, &mut local).filter(|s| !s.is_empty());
    let data = text_field(item, "data", false, &mut local).filter(|s| !s.is_empty());
    let mime = text_field(item, "mime", false, &mut local).filter(|s| !s.is_empty());
    let filename = text_field(item, "filename", false, &mut local).filter(|s| !s.is_empty());
    for (field, message) in local {
        bad.push((format!("{path}.{field}"), message));
    }
    match (&url, &data) {
        (None, None) | (Some(_), Some(_)) => {
            bad.push((
                path.to_owned(),
                "give exactly one of url or data".to_owned(),
            ));
            return Ok(None);
        }
        (Some(u), None) => {
            let ok = url::Url::parse(u).is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
            if !ok {
                bad.push((
                    format!("{path}.url"),
                    "must be an http or https URL".to_owned(),
                ));
                return Ok(None);
            }
        }
        (None, Some(d)) => {
            if decoded_len(d) > rules.max_attachment_bytes {
                return Err(format!(
                    "{path} is larger than {} bytes",
                    rules.max_attachment_bytes
                ));
            }
            if base64::engine::general_purpose::STANDARD.decode(d).is_err() {
                bad.push((format!("{path}.data"), "must be standard base64".to_owned()));
                return Ok(None);
            }
        }
    }
    let filename = filename.unwrap_or_else(|| {
        url.as_deref()
            .and_then(|u| url::Url::parse(u).ok())
            .and_then(|u| {
                u.path_segments()
                    .and_then(|mut s| s.next_back().map(str::to_owned))
            })
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "attachment".to_owned())
    });
    Ok(Some(AttachmentInput {
        filename,
        mime,
        url,
        data,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rules() -> MessageRules<'static> {
        MessageRules {
            default_country: Some("BR"),
            max_attachment_bytes: 16,
        }
    }

    #[test]
    fn a_good_message_is_read_and_its_phone_normalised() {
        let body = json!({"conversation_id": "c1", "message_id": 7, "phone": "(11) 98765-4321",
            "name": "Ana", "text": "hello", "sent_at": "2026-03-01T12:00:00Z"});
        let m = ChannelMessage::parse(&body, &rules(), 1).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(m.phone, "+5511987654321");
        assert_eq!(m.message_id, "7");
    }

    #[test]
    fn a_persons_whatsapp_ids_and_number_are_one_conversation() {
        for raw in [
            "5511987654321@s.whatsapp.net",
            "5511987654321@c.us",
            "5511987654321:12@s.whatsapp.net",
            "+5511987654321",
            "5511987654321",
        ] {
            assert_eq!(conversation_key(raw), "5511987654321", "{raw}");
        }
        for other in [
            "120363041234567890@g.us",
            "123456789012345@lid",
            "conv-a",
            "ticket+5",
        ] {
            assert_eq!(conversation_key(other), other);
        }
        let body = json!({"conversation_id": "5511987654321@c.us", "message_id": "m",
            "phone": "5511987654321@c.us", "text": "oi"});
        let m = ChannelMessage::parse(&body, &rules(), 1).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(m.conversation_id, "5511987654321");
    }

    #[test]
    fn numbers_are_read_where_callers_send_them() {
        // Evolution's `messageTimestamp` (unix seconds) and n8n's numeric phone.
        let body = json!({"conversation_id": "c", "message_id": "m", "phone": 5511987654321_u64,
            "text": "oi", "sent_at": 1772366405});
        let m = ChannelMessage::parse(&body, &rules(), 1).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(m.phone, "+5511987654321");
        assert_eq!(m.sent_at.as_deref(), Some("2026-03-01T12:00:05Z"));
        for sent in [json!("1772366405"), json!(1772366405000_i64)] {
            let body = json!({"conversation_id": "c", "message_id": "m", "phone": "11987654321",
                "text": "oi", "sent_at": sent});
            let m = ChannelMessage::parse(&body, &rules(), 1).unwrap_or_else(|e| panic!("{e:?}"));
            assert_eq!(m.sent_at.as_deref(), Some("2026-03-01T12:00:05Z"), "{sent}");
        }
        let body = json!({"conversation_id": "c", "message_id": "m", "phone": "11987654321",
            "text": "oi", "sent_at": true});
        assert!(ChannelMessage::parse(&body, &rules(), 1).is_err());
    }

    #[test]
    fn every_bad_field_is_listed() {
        let body = json!({"phone": "12", "email": "nope", "sent_at": "yesterday",
            "attachments": [{"url": "ftp://x"}, {}]});
        let Err(Rejection::Invalid(bad)) = ChannelMessage::parse(&body, &rules(), 1) else {
            panic!("accepted");
        };
        let paths: Vec<&str> = bad.iter().map(|(p, _)| p.as_str()).collect();
        for p in [
            "conversation_id",
            "message_id",
            "phone",
            "email",
            "sent_at",
            "attachments[0].url",
            "attachments[1]",
        ] {
            assert!(paths.contains(&p), "{p} missing from {paths:?}");
        }
    }

    #[test]
    fn inline_attachments_over_the_cap_are_too_large() {
        let body = json!({"conversation_id": "c", "message_id": "m", "phone": "+5511987654321",
            "text": "x", "attachments": [{"filename": "a.bin", "data": "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB"}]});
        assert!(matches!(
            ChannelMessage::parse(&body, &rules(), 1),
            Err(Rejection::TooLarge(_))
        ));
    }
}
