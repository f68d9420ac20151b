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

/// The conversation's last ticket, when the next one replaces it: the new
/// ticket names it, so the help desk sees the two belong together.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviousTicket {
    pub id: i64,
    /// Why it takes no more messages: `solved`, `closed`, or `gone` (deleted,
    /// or moved where the bridge's account cannot read it).
    pub why: String,
}

/// One conversation's durable state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationState {
    /// Number of the next ticket of this conversation; part of its marker.
    pub generation: u64,
    /// The latest ticket, while the bridge believes it open.
    pub ticket: Option<TicketRef>,
    /// Messages not yet in the help desk, in arrival order: with `ticket`
    /// (and followups on), the followups waiting to be added; else the
    /// burst(s) waiting to become a ticket.
    pub buffer: Vec<ChannelMessage>,
    /// The ticket the next one follows, when it stopped taking messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<PreviousTicket>,
    /// When (unix ms) the handoff whose job is taking the buffered messages
    /// to the help desk was accepted: the messages received up to then are
    /// the help desk's, never a bot's stale session, even when that job gives
    /// up (they wait for the next message or a retry of the job).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handoff_at: Option<i64>,
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

    /// Whether a handoff covers buffered messages (see
    /// [`ConversationState::handoff_at`]).
    pub fn handed_off(&self) -> bool {
        self.handoff_at
            .is_some_and(|at| self.buffer.iter().any(|m| m.received_at <= at))
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
    let mut stored = store
        .kv_get(KV_NAMESPACE, &key(source, conversation))
        .await?;
    if stored.is_none()
        && !conversation.is_empty()
        && conversation.chars().all(|c| c.is_ascii_digit())
    {
        // Kept under the WhatsApp JID before conversations were keyed by
        // the number: the conversation goes on where it was.
        for legacy in ["s.whatsapp.net", "c.us"] {
            let legacy = format!("{conversation}@{legacy}");
            stored = store.kv_get(KV_NAMESPACE, &key(source, &legacy)).await?;
            if stored.is_some() {
                break;
            }
        }
    }
    match stored {
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
