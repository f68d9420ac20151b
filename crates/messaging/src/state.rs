//! What the bridge remembers about one conversation, in the store's kv table:
//! the pending burst and the ticket it became. Only jobs of the
//! conversation's ordering key write it, so they never race.

use crate::error::MessagingError;
use crate::message::ChannelMessage;
use serde::{Deserialize, Serialize};
use store::Store;

/// kv namespace of conversation states.
pub const KV_NAMESPACE: &str = "messaging.conversation";

/// The ticket a conversation currently writes to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketRef {
    pub id: i64,
    /// What the help desk's users call it: GLPI the id, iTop the `ref`
    /// (`R-000004`). Empty in states stored by earlier versions.
    #[serde(default)]
    pub reference: String,
    pub url: String,
    /// Which burst of the conversation created it (0, 1, ...).
    pub generation: u64,
}

/// One conversation's durable state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationState {
    /// Number of the next ticket of this conversation; part of its marker.
    pub generation: u64,
    /// The latest ticket, while the bridge believes it open.
    pub ticket: Option<TicketRef>,
    /// Messages waiting for the merge window to close, in arrival order.
    pub buffer: Vec<ChannelMessage>,
}

impl ConversationState {
    /// When the first buffered message arrived (unix ms).
    pub fn first_at(&self) -> Option<i64> {
        self.buffer.iter().map(|m| m.received_at).min()
    }

    /// When the last buffered message arrived (unix ms).
    pub fn last_at(&self) -> Option<i64> {
        self.buffer.iter().map(|m| m.received_at).max()
    }

    pub fn has_message(&self, message_id: &str) -> bool {
        self.buffer.iter().any(|m| m.message_id == message_id)
    }
}

/// The kv key of a conversation.
pub fn key(source: &str, conversation: &str) -> String {
    format!("{source}/{conversation}")
}

pub async fn load(
    store: &Store,
    source: &str,
    conversation: &str,
) -> Result<ConversationState, MessagingError> {
    match store
        .kv_get(KV_NAMESPACE, &key(source, conversation))
        .await?
    {
        None => Ok(ConversationState::default()),
        Some(value) => serde_json::from_value(value).map_err(|e| MessagingError::Corrupt {
            what: "conversation state",
            reason: e.to_string(),
        }),
    }
}

pub async fn save(
    store: &Store,
    source: &str,
    conversation: &str,
    state: &ConversationState,
) -> Result<(), MessagingError> {
    let value = serde_json::to_value(state).map_err(|e| MessagingError::Corrupt {
        what: "conversation state",
        reason: e.to_string(),
    })?;
    store
        .kv_put(KV_NAMESPACE, &key(source, conversation), &value)
        .await?;
    Ok(())
}
