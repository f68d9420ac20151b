//! Request and response bodies of the API calls (spec §4.2).

use serde::{Deserialize, Serialize};

use crate::model::{Attributes, Contact, Conversation, ConversationStatus, MessageType};

/// `POST /conversations/{id}/messages` body.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewMessage {
    pub content: String,
    /// `outgoing` (replies, notes) or `incoming` (API inboxes only).
    pub message_type: MessageType,
    pub private: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// Only `items`, `in_reply_to`, `automation_rule_id` survive (spec §4.2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_attributes: Option<Attributes>,
    /// Provenance marker. Set it only on private notes: on a public
    /// outgoing message it stops Chatwoot from sending it to the channel.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub echo_id: Option<String>,
}

/// Chatwoot renders every outgoing message (notes too) as a Liquid template
/// before storing it (`Liquidable`): a `{{ … }}` or `{% … %}` written by a
/// technician would reach the customer rendered, or blank. A zero-width
/// space after the brace keeps both from being read as delimiters; the text
/// looks the same. Compare stored contents with it removed.
pub fn inert_liquid(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '{' && matches!(chars.peek(), Some('{' | '%')) {
            out.push(ZERO_WIDTH_SPACE);
        }
    }
    out
}

/// Inserted by [`inert_liquid`].
pub const ZERO_WIDTH_SPACE: char = '\u{200B}';

impl NewMessage {
    /// A public reply to the customer. The text arrives as written: see
    /// [`inert_liquid`].
    pub fn outgoing(content: impl Into<String>) -> Self {
        Self {
            content: inert_liquid(&content.into()),
            message_type: MessageType::Outgoing,
            private: false,
            content_type: None,
            content_attributes: None,
            source_id: None,
            echo_id: None,
        }
    }

    /// A private note for agents.
    pub fn private_note(content: impl Into<String>) -> Self {
        Self {
            private: true,
            ..Self::outgoing(content)
        }
    }

    pub fn with_source_id(mut self, source_id: impl Into<String>) -> Self {
        self.source_id = Some(source_id.into());
        self
    }

    pub fn with_content_attributes(mut self, attributes: Attributes) -> Self {
        self.content_attributes = Some(attributes);
        self
    }
}

/// `PATCH /contacts/{id}` body; `None` fields are not sent.
/// `custom_attributes` / `additional_attributes` are shallow-merged by Chatwoot.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ContactUpdate {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identifier: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_attributes: Option<Attributes>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub additional_attributes: Option<Attributes>,
}

/// Filter for `GET /conversations` (spec §4.2).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConversationQuery {
    /// `None` means `all`.
    pub status: Option<ConversationStatus>,
    /// `updated_within=<seconds>`: Chatwoot then returns every match on
    /// one page (no pagination).
    pub updated_within: Option<std::time::Duration>,
    pub inbox_id: Option<u64>,
    /// 1-based page (25 per page) when `updated_within` is not given.
    pub page: Option<u32>,
}

impl ConversationQuery {
    pub(crate) fn to_pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs = vec![(
            "status",
            self.status
                .map(|s| s.as_str().to_owned())
                .unwrap_or_else(|| "all".to_owned()),
        )];
        if let Some(within) = self.updated_within {
            pairs.push(("updated_within", within.as_secs().to_string()));
        }
        if let Some(inbox) = self.inbox_id {
            pairs.push(("inbox_id", inbox.to_string()));
        }
        if let Some(page) = self.page {
            pairs.push(("page", page.to_string()));
        }
        pairs
    }
}

/// `GET /conversations` answer: `{"data":{"meta":{…},"payload":[…]}}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ConversationPage {
    #[serde(default)]
    pub meta: serde_json::Value,
    #[serde(default)]
    pub payload: Vec<Conversation>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ConversationListEnvelope {
    pub data: ConversationPage,
}

/// `GET /contacts/search` answer (`api/contact_search_response.json`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ContactSearchPage {
    #[serde(default)]
    pub meta: SearchMeta,
    #[serde(default)]
    pub payload: Vec<Contact>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct SearchMeta {
    #[serde(default)]
    pub count: u64,
    #[serde(default)]
    pub current_page: Option<serde_json::Value>,
}

/// `{"payload": …}` wrapper of contact and message-list answers.
#[derive(Debug, Deserialize)]
pub(crate) struct Payload<T> {
    pub payload: T,
}

/// `POST /conversations/{id}/toggle_status` answer payload
/// (`api/toggle_status_response.json`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct StatusChange {
    #[serde(default)]
    pub success: bool,
    pub conversation_id: u64,
    pub current_status: ConversationStatus,
    #[serde(default)]
    pub snoozed_until: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct CustomAttributesBody {
    #[serde(default)]
    pub custom_attributes: Attributes,
}
