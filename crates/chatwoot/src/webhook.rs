//! Account-webhook bodies (spec §2, §3.7) parsed into [`Event`].

mod changes;

pub use changes::{AttributeChange, ChangedAttributes, is_noise_only_update};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::{
    AccountRef, Attachment, Attributes, Contact, Conversation, InboxRef, MessageType, Sender,
    SenderKind, Timestamp, flexible_id, null_as_default,
};

/// Why a webhook body could not be parsed. Never retryable: the same bytes
/// will fail the same way.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    #[error("webhook body is not JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    #[error("webhook body has no string `event` field")]
    MissingEvent,
    #[error("`{event}` body does not have the expected shape: {source}")]
    Shape {
        event: String,
        #[source]
        source: serde_json::Error,
    },
}

impl PayloadError {
    pub fn is_retryable(&self) -> bool {
        false
    }
}

/// conversation_created / conversation_updated / conversation_status_changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversationEvent {
    #[serde(flatten)]
    pub conversation: Conversation,
    /// Present on conversation_updated; `null` on conversation_status_changed
    /// (spec §3.5) — compare `status` with stored state there.
    #[serde(default, deserialize_with = "null_as_default")]
    pub changed_attributes: ChangedAttributes,
}

/// message_created / message_updated (`Message#webhook_data`, spec §3.2):
/// string `message_type`, ISO `created_at`, the full conversation object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageEvent {
    #[serde(deserialize_with = "flexible_id")]
    pub id: u64,
    #[serde(default)]
    pub content: Option<String>,
    pub message_type: MessageType,
    #[serde(default)]
    pub content_type: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub content_attributes: Attributes,
    #[serde(default, deserialize_with = "null_as_default")]
    pub additional_attributes: Attributes,
    #[serde(default, deserialize_with = "null_as_default")]
    pub private: bool,
    #[serde(default)]
    pub source_id: Option<String>,
    #[serde(default)]
    pub created_at: Option<Timestamp>,
    /// `null` for templates / CSAT; contacts carry no `type` key.
    #[serde(default)]
    pub sender: Option<Sender>,
    #[serde(default)]
    pub account: Option<AccountRef>,
    #[serde(default)]
    pub inbox: Option<InboxRef>,
    #[serde(default)]
    pub conversation: Option<Conversation>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub attachments: Vec<Attachment>,
}

impl MessageEvent {
    pub fn conversation_id(&self) -> Option<u64> {
        self.conversation.as_ref().map(|c| c.id)
    }

    pub fn inbox_id(&self) -> Option<u64> {
        self.inbox
            .as_ref()
            .map(|i| i.id)
            .or_else(|| self.conversation.as_ref().and_then(|c| c.inbox_id))
    }

    pub fn account_id(&self) -> Option<u64> {
        self.account.as_ref().map(|a| a.id).or_else(|| {
            self.conversation
                .as_ref()
                .and_then(Conversation::account_id)
        })
    }

    /// Who wrote it. Incoming messages are always from the contact, even
    /// when the sender object is missing.
    pub fn sender_kind(&self) -> Option<SenderKind> {
        match (&self.sender, self.message_type) {
            (Some(sender), MessageType::Incoming) if sender.sender_type.is_none() => {
                Some(SenderKind::Contact)
            }
            (Some(sender), _) => Some(sender.kind()),
            (None, MessageType::Incoming) => Some(SenderKind::Contact),
            (None, _) => None,
        }
    }

    /// The customer of the conversation (`conversation.meta.sender`), or
    /// the sender itself for incoming messages.
    pub fn contact(&self) -> Option<&Sender> {
        self.conversation
            .as_ref()
            .and_then(Conversation::contact)
            .or_else(|| {
                (self.message_type == MessageType::Incoming)
                    .then_some(self.sender.as_ref())
                    .flatten()
            })
    }

    /// A private note (`private: true`, spec §3.7).
    pub fn is_private_note(&self) -> bool {
        self.private
    }

    /// Deleted message (message_updated with `content_attributes.deleted`).
    pub fn is_deleted(&self) -> bool {
        self.content_attributes.get("deleted") == Some(&Value::Bool(true))
    }
}

/// contact_created / contact_updated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContactEvent {
    #[serde(flatten)]
    pub contact: Contact,
    /// Empty on contact_created.
    #[serde(default, deserialize_with = "null_as_default")]
    pub changed_attributes: ChangedAttributes,
}

/// A parsed account-webhook body, chosen by its `event` field.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    ConversationCreated(ConversationEvent),
    ConversationUpdated(ConversationEvent),
    ConversationStatusChanged(ConversationEvent),
    MessageCreated(MessageEvent),
    MessageUpdated(MessageEvent),
    ContactCreated(ContactEvent),
    ContactUpdated(ContactEvent),
    /// Any other event name (webwidget_triggered, typing, inbox_*, …):
    /// acknowledge and ignore.
    Other(String),
}

impl Event {
    /// Parses a raw webhook body.
    pub fn from_slice(body: &[u8]) -> Result<Self, PayloadError> {
        let value: Value = serde_json::from_slice(body).map_err(PayloadError::NotJson)?;
        Self::from_value(value)
    }

    /// Parses an already decoded body.
    pub fn from_value(value: Value) -> Result<Self, PayloadError> {
        let name = value
            .get("event")
            .and_then(Value::as_str)
            .ok_or(PayloadError::MissingEvent)?
            .to_owned();
        fn typed<T: serde::de::DeserializeOwned>(
            name: &str,
            value: Value,
        ) -> Result<T, PayloadError> {
            serde_json::from_value(value).map_err(|source| PayloadError::Shape {
                event: name.to_owned(),
                source,
            })
        }
        Ok(match name.as_str() {
            "conversation_created" => Self::ConversationCreated(typed(&name, value)?),
            "conversation_updated" => Self::ConversationUpdated(typed(&name, value)?),
            "conversation_status_changed" => Self::ConversationStatusChanged(typed(&name, value)?),
            "message_created" => Self::MessageCreated(typed(&name, value)?),
            "message_updated" => Self::MessageUpdated(typed(&name, value)?),
            "contact_created" => Self::ContactCreated(typed(&name, value)?),
            "contact_updated" => Self::ContactUpdated(typed(&name, value)?),
            _ => Self::Other(name),
        })
    }

    /// The `event` name as sent.
    pub fn name(&self) -> &str {
        match self {
            Self::ConversationCreated(_) => "conversation_created",
            Self::ConversationUpdated(_) => "conversation_updated",
            Self::ConversationStatusChanged(_) => "conversation_status_changed",
            Self::MessageCreated(_) => "message_created",
            Self::MessageUpdated(_) => "message_updated",
            Self::ContactCreated(_) => "contact_created",
            Self::ContactUpdated(_) => "contact_updated",
            Self::Other(name) => name,
        }
    }

    /// Conversation display id, for conversation and message events.
    pub fn conversation_id(&self) -> Option<u64> {
        match self {
            Self::ConversationCreated(e)
            | Self::ConversationUpdated(e)
            | Self::ConversationStatusChanged(e) => Some(e.conversation.id),
            Self::MessageCreated(e) | Self::MessageUpdated(e) => e.conversation_id(),
            _ => None,
        }
    }

    /// Inbox id, for conversation and message events.
    pub fn inbox_id(&self) -> Option<u64> {
        match self {
            Self::ConversationCreated(e)
            | Self::ConversationUpdated(e)
            | Self::ConversationStatusChanged(e) => e.conversation.inbox_id,
            Self::MessageCreated(e) | Self::MessageUpdated(e) => e.inbox_id(),
            _ => None,
        }
    }

    /// Account id when the body carries one (route by URL otherwise).
    pub fn account_id(&self) -> Option<u64> {
        match self {
            Self::ConversationCreated(e)
            | Self::ConversationUpdated(e)
            | Self::ConversationStatusChanged(e) => e.conversation.account_id(),
            Self::MessageCreated(e) | Self::MessageUpdated(e) => e.account_id(),
            Self::ContactCreated(e) | Self::ContactUpdated(e) => {
                e.contact.account.as_ref().map(|a| a.id)
            }
            Self::Other(_) => None,
        }
    }

    /// The contact involved: `meta.sender` of a conversation, the
    /// conversation's contact for a message, the contact of contact_*.
    pub fn contact(&self) -> Option<ContactRef> {
        match self {
            Self::ConversationCreated(e)
            | Self::ConversationUpdated(e)
            | Self::ConversationStatusChanged(e) => e.conversation.contact().map(ContactRef::from),
            Self::MessageCreated(e) | Self::MessageUpdated(e) => e.contact().map(ContactRef::from),
            Self::ContactCreated(e) | Self::ContactUpdated(e) => Some(ContactRef::from(&e.contact)),
            Self::Other(_) => None,
        }
    }

    /// The diff of conversation_updated / contact_updated (empty otherwise).
    pub fn changed_attributes(&self) -> Option<&ChangedAttributes> {
        match self {
            Self::ConversationCreated(e)
            | Self::ConversationUpdated(e)
            | Self::ConversationStatusChanged(e) => Some(&e.changed_attributes),
            Self::ContactCreated(e) | Self::ContactUpdated(e) => Some(&e.changed_attributes),
            _ => None,
        }
    }
}

/// The identifying fields of a contact, whichever body it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactRef {
    pub id: u64,
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone_number: Option<String>,
    pub identifier: Option<String>,
}

impl From<&Sender> for ContactRef {
    fn from(s: &Sender) -> Self {
        Self {
            id: s.id,
            name: s.name.clone(),
            email: s.email.clone(),
            phone_number: s.phone_number.clone(),
            identifier: s.identifier.clone(),
        }
    }
}

impl From<&Contact> for ContactRef {
    fn from(c: &Contact) -> Self {
        Self {
            id: c.id,
            name: c.name.clone(),
            email: c.email.clone(),
            phone_number: c.phone_number.clone(),
            identifier: c.identifier.clone(),
        }
    }
}
