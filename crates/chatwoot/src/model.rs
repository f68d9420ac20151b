//! Chatwoot objects as they appear in webhook bodies and API responses
//! (spec §3). Every type is lenient: unknown keys are ignored, keys that a
//! Chatwoot version may omit or send as `null` are optional or defaulted.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A JSON object (custom / additional attributes).
pub type Attributes = Map<String, Value>;

/// Treats `null` like a missing key and uses the type's default.
pub(crate) fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// `id` fields: numbers, but tolerate numeric strings.
pub(crate) fn flexible_id<'de, D>(deserializer: D) -> Result<u64, D::Error>
where
    D: Deserializer<'de>,
{
    match Value::deserialize(deserializer)? {
        Value::Number(n) => n
            .as_u64()
            .ok_or_else(|| serde::de::Error::custom("id is not a non-negative integer")),
        Value::String(s) => s
            .parse()
            .map_err(|_| serde::de::Error::custom("id string is not a number")),
        other => Err(serde::de::Error::custom(format!("unexpected id {other}"))),
    }
}

/// Conversation status (spec §3.1). Unknown values become `Unknown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConversationStatus {
    Open,
    Resolved,
    Pending,
    Snoozed,
    #[serde(other)]
    Unknown,
}

impl ConversationStatus {
    /// The wire name (`open`, `resolved`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Resolved => "resolved",
            Self::Pending => "pending",
            Self::Snoozed => "snoozed",
            Self::Unknown => "unknown",
        }
    }

    /// Parses a wire name; anything else is `Unknown`.
    pub fn parse(text: &str) -> Self {
        match text {
            "open" => Self::Open,
            "resolved" => Self::Resolved,
            "pending" => Self::Pending,
            "snoozed" => Self::Snoozed,
            _ => Self::Unknown,
        }
    }
}

/// `message_type` (spec §3.6): a string in top-level webhook bodies, an
/// integer in nested messages and API responses. Both are accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    Incoming,
    Outgoing,
    Activity,
    Template,
    Unknown,
}

impl MessageType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Incoming => "incoming",
            Self::Outgoing => "outgoing",
            Self::Activity => "activity",
            Self::Template => "template",
            Self::Unknown => "unknown",
        }
    }

    pub fn as_int(self) -> Option<u8> {
        match self {
            Self::Incoming => Some(0),
            Self::Outgoing => Some(1),
            Self::Activity => Some(2),
            Self::Template => Some(3),
            Self::Unknown => None,
        }
    }

    fn from_int(value: u64) -> Self {
        match value {
            0 => Self::Incoming,
            1 => Self::Outgoing,
            2 => Self::Activity,
            3 => Self::Template,
            _ => Self::Unknown,
        }
    }

    fn from_name(name: &str) -> Self {
        match name {
            "incoming" => Self::Incoming,
            "outgoing" => Self::Outgoing,
            "activity" => Self::Activity,
            "template" => Self::Template,
            other => other
                .parse::<u64>()
                .map(Self::from_int)
                .unwrap_or(Self::Unknown),
        }
    }
}

impl Serialize for MessageType {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for MessageType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(match Value::deserialize(deserializer)? {
            Value::Number(n) => n.as_u64().map(Self::from_int).unwrap_or(Self::Unknown),
            Value::String(s) => Self::from_name(&s),
            _ => Self::Unknown,
        })
    }
}

/// A time as Chatwoot sends it: epoch seconds (int or float) or an
/// ISO-8601 string, depending on the serializer (spec §3.2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Timestamp {
    Epoch(f64),
    Text(String),
}

impl Timestamp {
    /// Seconds since the Unix epoch, if the value can be read.
    pub fn unix_seconds(&self) -> Option<f64> {
        match self {
            Self::Epoch(seconds) => Some(*seconds),
            Self::Text(text) => OffsetDateTime::parse(text, &Rfc3339)
                .ok()
                .map(|t| t.unix_timestamp_nanos() as f64 / 1e9),
        }
    }
}

/// `{id, name}` account reference in message and contact bodies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountRef {
    #[serde(deserialize_with = "flexible_id")]
    pub id: u64,
    #[serde(default)]
    pub name: Option<String>,
}

/// `{id, name}` inbox reference (top-level message bodies, API contact inboxes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InboxRef {
    #[serde(deserialize_with = "flexible_id")]
    pub id: u64,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub channel_type: Option<String>,
}

/// Who wrote a message (spec §3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SenderKind {
    Contact,
    User,
    AgentBot,
    CaptainAssistant,
    Other,
}

/// A message sender or conversation party. Contacts in top-level bodies
/// carry no `type` key; [`Sender::kind`] classifies by key presence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sender {
    #[serde(deserialize_with = "flexible_id")]
    pub id: u64,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub available_name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub phone_number: Option<String>,
    #[serde(default)]
    pub identifier: Option<String>,
    #[serde(default, rename = "type")]
    pub sender_type: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub custom_attributes: Attributes,
}

impl Sender {
    pub fn kind(&self) -> SenderKind {
        match self.sender_type.as_deref() {
            None | Some("contact") => SenderKind::Contact,
            Some("user") => SenderKind::User,
            Some("agent_bot") => SenderKind::AgentBot,
            Some("captain_assistant") => SenderKind::CaptainAssistant,
            Some(_) => SenderKind::Other,
        }
    }
}

/// Attachment (`Attachment#push_event_data`, spec §3.4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attachment {
    #[serde(deserialize_with = "flexible_id")]
    pub id: u64,
    #[serde(default)]
    pub message_id: Option<u64>,
    #[serde(default)]
    pub file_type: Option<String>,
    #[serde(default)]
    pub account_id: Option<u64>,
    #[serde(default)]
    pub extension: Option<String>,
    #[serde(default)]
    pub data_url: Option<String>,
    #[serde(default)]
    pub thumb_url: Option<String>,
    #[serde(default)]
    pub file_size: Option<u64>,
    #[serde(default)]
    pub fallback_title: Option<String>,
}

impl Attachment {
    /// File name from the last path segment of `data_url` (Chatwoot sends no
    /// file name field).
    pub fn file_name(&self) -> Option<String> {
        let url = self.data_url.as_deref()?;
        let path = url.split(['?', '#']).next()?;
        let name = percent_decode(path.rsplit('/').next()?);
        (!name.trim().is_empty()).then_some(name)
    }
}

/// `%XX` sequences decoded (ActiveStorage escapes the file name in the
/// URL: "nota%20fiscal.pdf" is "nota fiscal.pdf"); invalid UTF-8 is
/// replaced, a stray `%` kept.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(hi), Some(lo)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            )
        {
            out.push((hi * 16 + lo) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `contact_inbox` of a conversation (whole ContactInbox row).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContactInbox {
    #[serde(default)]
    pub id: Option<u64>,
    #[serde(default)]
    pub contact_id: Option<u64>,
    #[serde(default)]
    pub inbox_id: Option<u64>,
    #[serde(default)]
    pub source_id: Option<String>,
    /// Present in API contact responses (`contact_inboxes[].inbox`).
    #[serde(default)]
    pub inbox: Option<InboxRef>,
}

/// `meta` of a conversation.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ConversationMeta {
    #[serde(default)]
    pub sender: Option<Sender>,
    #[serde(default)]
    pub assignee: Option<Sender>,
    /// `User` or `AgentBot` (Chatwoot ≥ 4.x: `meta.assignee` is whichever is
    /// assigned, a bot included); absent in older versions.
    #[serde(default)]
    pub assignee_type: Option<String>,
    #[serde(default)]
    pub team: Option<Value>,
    /// The inbox's channel type in API answers (`_conversation` partial);
    /// webhook bodies carry it at the top level instead.
    #[serde(default)]
    pub channel: Option<String>,
}

/// A message in the nested / API format (`Message#push_event_data`,
/// `_message.json.jbuilder`): integer `message_type`, epoch `created_at`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    #[serde(deserialize_with = "flexible_id")]
    pub id: u64,
    #[serde(default)]
    pub content: Option<String>,
    #[serde(default)]
    pub account_id: Option<u64>,
    #[serde(default)]
    pub inbox_id: Option<u64>,
    #[serde(default)]
    pub conversation_id: Option<u64>,
    pub message_type: MessageType,
    #[serde(default)]
    pub created_at: Option<Timestamp>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub private: bool,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub source_id: Option<String>,
    #[serde(default)]
    pub content_type: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub content_attributes: Attributes,
    #[serde(default)]
    pub sender_type: Option<String>,
    #[serde(default)]
    pub sender_id: Option<u64>,
    #[serde(default)]
    pub sender: Option<Sender>,
    #[serde(default)]
    pub echo_id: Option<Value>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub attachments: Vec<Attachment>,
}

/// A conversation (`Conversations::EventDataPresenter#push_data`, spec §3.1,
/// and the API `_conversation` partial). `id` is the display id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conversation {
    #[serde(deserialize_with = "flexible_id")]
    pub id: u64,
    #[serde(default)]
    pub account_id: Option<u64>,
    #[serde(default)]
    pub inbox_id: Option<u64>,
    #[serde(default)]
    pub channel: Option<String>,
    #[serde(default)]
    pub status: Option<ConversationStatus>,
    #[serde(default)]
    pub priority: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub custom_attributes: Attributes,
    #[serde(default, deserialize_with = "null_as_default")]
    pub additional_attributes: Attributes,
    #[serde(default, deserialize_with = "null_as_default")]
    pub labels: Vec<String>,
    #[serde(default)]
    pub can_reply: Option<bool>,
    #[serde(default)]
    pub contact_inbox: Option<ContactInbox>,
    /// At most the latest public message; may be empty or stale (spec §1.2):
    /// never build ticket text from it.
    #[serde(default, deserialize_with = "null_as_default")]
    pub messages: Vec<Message>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub meta: ConversationMeta,
    #[serde(default)]
    pub account: Option<AccountRef>,
    #[serde(default)]
    pub created_at: Option<Timestamp>,
    /// Float epoch seconds: the best ordering key (spec §1.2).
    #[serde(default)]
    pub updated_at: Option<Timestamp>,
    #[serde(default)]
    pub last_activity_at: Option<Timestamp>,
    #[serde(default)]
    pub snoozed_until: Option<Timestamp>,
}

impl Conversation {
    /// The customer (`meta.sender`).
    pub fn contact(&self) -> Option<&Sender> {
        self.meta.sender.as_ref()
    }

    /// The inbox's channel type (`Channel::Whatsapp`): top-level `channel` in
    /// webhook bodies, `meta.channel` in API answers.
    pub fn channel(&self) -> Option<&str> {
        self.channel
            .as_deref()
            .or(self.meta.channel.as_deref())
            .filter(|c| !c.is_empty())
    }

    /// The assigned human agent (`meta.assignee`). A bot assignee is none:
    /// bot and user ids are counted apart, so bot 1 is not agent 1. Newer
    /// Chatwoot says which in `meta.assignee_type`; webhook bodies also type
    /// the assignee itself (`agent_bot`), API answers do not.
    pub fn assignee(&self) -> Option<&Sender> {
        let assignee = self.meta.assignee.as_ref()?;
        let human = match self.meta.assignee_type.as_deref() {
            Some(kind) => kind.eq_ignore_ascii_case("user"),
            None => !matches!(
                assignee.kind(),
                SenderKind::AgentBot | SenderKind::CaptainAssistant
            ),
        };
        human.then_some(assignee)
    }

    /// Contact id from `meta.sender` or `contact_inbox.contact_id`.
    pub fn contact_id(&self) -> Option<u64> {
        self.meta
            .sender
            .as_ref()
            .map(|s| s.id)
            .or_else(|| self.contact_inbox.as_ref().and_then(|ci| ci.contact_id))
    }

    /// Account id: `account_id` (API), `account.id` (newer webhooks) or
    /// `messages[0].account_id` (spec §3.1: v4.7 conversation bodies carry none).
    pub fn account_id(&self) -> Option<u64> {
        self.account_id
            .or_else(|| self.account.as_ref().map(|a| a.id))
            .or_else(|| self.messages.iter().find_map(|m| m.account_id))
    }

    /// `updated_at` as epoch seconds.
    pub fn updated_at_seconds(&self) -> Option<f64> {
        self.updated_at.as_ref().and_then(Timestamp::unix_seconds)
    }
}

/// A contact (`Contact#webhook_data` in contact_* bodies, and API contact
/// responses which add `contact_inboxes`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contact {
    #[serde(deserialize_with = "flexible_id")]
    pub id: u64,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub phone_number: Option<String>,
    #[serde(default)]
    pub identifier: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub blocked: bool,
    #[serde(default, deserialize_with = "null_as_default")]
    pub custom_attributes: Attributes,
    #[serde(default, deserialize_with = "null_as_default")]
    pub additional_attributes: Attributes,
    #[serde(default)]
    pub account: Option<AccountRef>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub contact_inboxes: Vec<ContactInbox>,
    #[serde(default)]
    pub last_activity_at: Option<Timestamp>,
    #[serde(default)]
    pub created_at: Option<Timestamp>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn message_type_accepts_int_and_string() {
        let parsed: Vec<MessageType> = serde_json::from_str(
            r#"[0, 1, 2, 3, "incoming", "outgoing", "activity", "template", "9", 7]"#,
        )
        .unwrap();
        assert_eq!(
            parsed,
            vec![
                MessageType::Incoming,
                MessageType::Outgoing,
                MessageType::Activity,
                MessageType::Template,
                MessageType::Incoming,
                MessageType::Outgoing,
                MessageType::Activity,
                MessageType::Template,
                MessageType::Unknown,
                MessageType::Unknown,
            ]
        );
    }

    #[test]
    fn timestamps_in_both_formats() {
        let iso = Timestamp::Text("2026-03-10T13:45:12.345Z".into());
        let secs = iso.unix_seconds().unwrap();
        assert!((secs - 1_773_150_312.345).abs() < 1e-3, "{secs}");
        assert_eq!(Timestamp::Epoch(1.5).unix_seconds(), Some(1.5));
        assert_eq!(Timestamp::Text("yesterday".into()).unix_seconds(), None);
    }

    #[test]
    fn a_bot_assignee_is_no_agent() {
        let conversation = |meta: Value| -> Conversation {
            serde_json::from_value(json!({"id": 5, "meta": meta})).unwrap()
        };
        // Webhook body: the bot is typed, and newer versions name the kind.
        let bot = conversation(json!({
            "assignee": {"id": 1, "name": "Triage bot", "type": "agent_bot"},
            "assignee_type": "AgentBot"
        }));
        assert_eq!(bot.assignee(), None);
        let old_bot = conversation(json!({"assignee": {"id": 1, "type": "agent_bot"}}));
        assert_eq!(old_bot.assignee(), None);
        // API answer: the agent partial has no `type`.
        let api_bot = conversation(json!({
            "assignee": {"id": 1, "name": "Triage bot"},
            "assignee_type": "AgentBot"
        }));
        assert_eq!(api_bot.assignee(), None);
        let agent = conversation(json!({
            "assignee": {"id": 7, "name": "Carlos"},
            "assignee_type": "User"
        }));
        assert_eq!(agent.assignee().map(|a| a.id), Some(7));
        let older_agent = conversation(json!({"assignee": {"id": 7, "type": "user"}}));
        assert_eq!(older_agent.assignee().map(|a| a.id), Some(7));
    }

    #[test]
    fn channel_from_the_body_or_the_api_meta() {
        let webhook: Conversation =
            serde_json::from_value(json!({"id": 5, "channel": "Channel::Whatsapp"})).unwrap();
        let api: Conversation =
            serde_json::from_value(json!({"id": 5, "meta": {"channel": "Channel::Api"}})).unwrap();
        assert_eq!(webhook.channel(), Some("Channel::Whatsapp"));
        assert_eq!(api.channel(), Some("Channel::Api"));
    }

    #[test]
    fn sender_kind_by_type_key() {
        let contact: Sender = serde_json::from_str(r#"{"id": 1, "name": "M"}"#).unwrap();
        let bot: Sender = serde_json::from_str(r#"{"id": 2, "type": "agent_bot"}"#).unwrap();
        let user: Sender = serde_json::from_str(r#"{"id": "7", "type": "user"}"#).unwrap();
        assert_eq!(contact.kind(), SenderKind::Contact);
        assert_eq!(bot.kind(), SenderKind::AgentBot);
        assert_eq!(user.kind(), SenderKind::User);
        assert_eq!(user.id, 7);
    }

    #[test]
    fn attachment_file_name_from_url() {
        let a: Attachment = serde_json::from_str(
            r#"{"id": 1, "data_url": "https://x/rails/active_storage/blobs/redirect/abc/IMG-1.jpg?disposition=x"}"#,
        )
        .unwrap();
        assert_eq!(a.file_name().as_deref(), Some("IMG-1.jpg"));
        let a: Attachment = serde_json::from_str(
            r#"{"id": 2, "data_url": "https://x/rails/active_storage/blobs/redirect/abc/nota%20fiscal%C3%A7%zz.pdf"}"#,
        )
        .unwrap();
        assert_eq!(a.file_name().as_deref(), Some("nota fiscalç%zz.pdf"));
    }
}
