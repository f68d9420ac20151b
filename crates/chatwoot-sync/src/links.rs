//! What the flow keeps in the store: which ticket a conversation became,
//! which followup a message became (and back), which person a contact is.

use flows::helpdesk::{Followup, PersonKind, TicketStatus};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use store::{Link, LinkState, NewLink, Store};

use crate::error::SyncResult;

/// Conversation → ticket.
pub const TICKET: &str = "chatwoot.ticket";
/// Chatwoot message → followup (or the ticket description).
pub const MESSAGE: &str = "chatwoot.message";
/// Target followup → Chatwoot message (replies copied back).
pub const REPLY: &str = "chatwoot.reply";
/// A technician's solution posted to a conversation: solution id → message id
/// (read when the channel says it could not deliver the message).
pub const SOLUTION: &str = "chatwoot.solution";
/// Chatwoot contact → person.
pub const CONTACT: &str = "chatwoot.contact";

/// `target_id` of a message that became (part of) the ticket description.
pub const IN_DESCRIPTION: &str = "description";
/// `target_id` of a message deliberately not copied (closed-ticket policy).
pub const NOT_COPIED: &str = "skipped";

/// What the bridge knows about a conversation's ticket.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TicketState {
    /// Searchable reference written into the ticket (two-phase create).
    pub marker: String,
    /// 0 for the first ticket; +1 for each new ticket after a closed one.
    #[serde(default)]
    pub generation: u32,
    #[serde(default)]
    pub url: Option<String>,
    /// The last conversation status mirrored to the ticket (Chatwoot →
    /// target), stored once the ticket reflects it. `None` until the
    /// ticket's status was made to follow the conversation's.
    #[serde(default)]
    pub conversation_status: Option<String>,
    /// The ticket status last seen or set (informational only).
    #[serde(default)]
    pub ticket_status: Option<TicketStatus>,
    /// The last ticket status mirrored to the conversation (target →
    /// Chatwoot), stored only after the conversation was changed to match:
    /// the poller compares it with the ticket to see "became solved".
    #[serde(default)]
    pub mirrored_ticket_status: Option<TicketStatus>,
    /// The ticket's `updated_at` the poller last handled.
    #[serde(default)]
    pub seen_updated_at: Option<String>,
    /// The conversation's `updated_at` (epoch seconds) of the newest status
    /// event applied: Chatwoot's workers may deliver an older one later.
    #[serde(default)]
    pub status_event_at: Option<f64>,
    /// Ticket id and URL are in the conversation's custom attributes.
    #[serde(default)]
    pub mirrored: bool,
    /// The private note with the link was posted.
    #[serde(default)]
    pub link_note_posted: bool,
    /// Earlier tickets of this conversation (closed-ticket policy).
    #[serde(default)]
    pub previous_tickets: Vec<i64>,
}

/// A conversation's ticket link, decoded.
#[derive(Debug, Clone)]
pub struct TicketLink {
    pub ticket_id: Option<i64>,
    pub linked: bool,
    pub state: TicketState,
}

impl TicketLink {
    /// The ticket id when the ticket exists.
    pub fn ticket(&self) -> Option<i64> {
        if self.linked { self.ticket_id } else { None }
    }
}

/// Store access for one source and target.
#[derive(Clone)]
pub struct Links {
    pub store: Store,
    /// `chatwoot:<source>`.
    pub chatwoot: String,
    /// The target's name.
    pub target: String,
}

fn parse_id(link: &Link) -> Option<i64> {
    link.target_id.as_deref().and_then(|id| id.parse().ok())
}

impl Links {
    pub fn new(store: Store, source: &str, target: &str) -> Self {
        Self {
            store,
            chatwoot: format!("chatwoot:{source}"),
            target: target.to_owned(),
        }
    }

    pub async fn ticket(&self, conversation_id: u64) -> SyncResult<Option<TicketLink>> {
        let link = self
            .store
            .link(
                TICKET,
                &self.chatwoot,
                &conversation_id.to_string(),
                &self.target,
            )
            .await?;
        Ok(link.map(|link| TicketLink {
            ticket_id: parse_id(&link),
            linked: link.state == LinkState::Linked,
            state: serde_json::from_value(link.data.clone()).unwrap_or_default(),
        }))
    }

    pub async fn put_ticket(
        &self,
        conversation_id: u64,
        ticket_id: Option<i64>,
        state: &TicketState,
    ) -> SyncResult<()> {
        self.store
            .put_link(&NewLink {
                kind: TICKET.to_owned(),
                source_system: self.chatwoot.clone(),
                source_id: conversation_id.to_string(),
                target_system: self.target.clone(),
                target_id: ticket_id.map(|id| id.to_string()),
                state: if ticket_id.is_some() {
                    LinkState::Linked
                } else {
                    LinkState::Pending
                },
                data: serde_json::to_value(state).unwrap_or(Value::Null),
            })
            .await?;
        Ok(())
    }

    /// The conversation a ticket belongs to, for this source.
    pub async fn conversation_of(&self, ticket_id: i64) -> SyncResult<Option<u64>> {
        let links = self
            .store
            .links_to(TICKET, &self.target, &ticket_id.to_string())
            .await?;
        Ok(links
            .iter()
            .filter(|l| l.source_system == self.chatwoot && l.state == LinkState::Linked)
            .find_map(|l| l.source_id.parse().ok()))
    }

    /// The message link: `Some((target_id, linked))`.
    pub async fn message(
        &self,
        message_id: u64,
    ) -> SyncResult<Option<(Option<String>, bool, Value)>> {
        let link = self
            .store
            .link(
                MESSAGE,
                &self.chatwoot,
                &message_id.to_string(),
                &self.target,
            )
            .await?;
        Ok(link.map(|l| (l.target_id, l.state == LinkState::Linked, l.data)))
    }

    /// Records a message handled without a copy (it must not be taken later
    /// for one still to copy), against the conversation's `ticket`.
    pub async fn put_message_not_copied(&self, message_id: u64, ticket: i64) -> SyncResult<()> {
        self.put_message(
            message_id,
            Some(NOT_COPIED.into()),
            serde_json::json!({"ticket": ticket}),
        )
        .await
    }

    pub async fn put_message(
        &self,
        message_id: u64,
        target_id: Option<String>,
        data: Value,
    ) -> SyncResult<()> {
        let state = if target_id.is_some() {
            LinkState::Linked
        } else {
            LinkState::Pending
        };
        self.store
            .put_link(&NewLink {
                kind: MESSAGE.to_owned(),
                source_system: self.chatwoot.clone(),
                source_id: message_id.to_string(),
                target_system: self.target.clone(),
                target_id,
                state,
                data,
            })
            .await?;
        Ok(())
    }

    /// The reply link of a target followup: `Some((message_id, linked))`.
    pub async fn reply(&self, followup_id: i64) -> SyncResult<Option<(Option<u64>, bool)>> {
        Ok(self
            .reply_with_data(followup_id)
            .await?
            .map(|(message, linked, _)| (message, linked)))
    }

    /// The reply link of a target followup with its data
    /// (`{"conversation": …}`).
    pub async fn reply_with_data(
        &self,
        followup_id: i64,
    ) -> SyncResult<Option<(Option<u64>, bool, Value)>> {
        let link = self
            .store
            .link(
                REPLY,
                &self.target,
                &followup_id.to_string(),
                &self.chatwoot,
            )
            .await?;
        Ok(link.map(|l| {
            (
                l.target_id.as_deref().and_then(|id| id.parse().ok()),
                l.state == LinkState::Linked,
                l.data,
            )
        }))
    }

    /// The reply link of `followup` copied into `conversation`: the link
    /// under its id, or else one stored under its legacy id (see
    /// [`Followup::legacy_id`]) that names this conversation. A legacy id
    /// names an entry of some ticket only, so its link counts only for the
    /// conversation it recorded.
    pub async fn reply_of(
        &self,
        followup: &Followup,
        conversation: u64,
    ) -> SyncResult<Option<(Option<u64>, bool)>> {
        if let Some(found) = self.reply(followup.id).await? {
            return Ok(Some(found));
        }
        let Some(legacy) = followup.legacy_id else {
            return Ok(None);
        };
        Ok(self
            .reply_with_data(legacy)
            .await?
            .filter(|(_, _, data)| {
                data.get("conversation").and_then(Value::as_u64) == Some(conversation)
            })
            .map(|(message, linked, _)| (message, linked)))
    }

    /// Records that solution `solution_id` was posted as message `message_id`.
    pub async fn put_solution(
        &self,
        solution_id: i64,
        message_id: u64,
        conversation: u64,
    ) -> SyncResult<()> {
        self.store
            .put_link(&NewLink {
                kind: SOLUTION.to_owned(),
                source_system: self.target.clone(),
                source_id: solution_id.to_string(),
                target_system: self.chatwoot.clone(),
                target_id: Some(message_id.to_string()),
                state: LinkState::Linked,
                data: serde_json::json!({"conversation": conversation}),
            })
            .await?;
        Ok(())
    }

    /// Records that followup `followup_id` will not be copied (Chatwoot
    /// refused it for good): done, with no message behind it.
    pub async fn skip_reply(
        &self,
        followup_id: i64,
        conversation: u64,
        reason: &str,
    ) -> SyncResult<()> {
        self.store
            .put_link(&NewLink {
                kind: REPLY.to_owned(),
                source_system: self.target.clone(),
                source_id: followup_id.to_string(),
                target_system: self.chatwoot.clone(),
                target_id: None,
                state: LinkState::Linked,
                data: serde_json::json!({"conversation": conversation, "skipped": reason}),
            })
            .await?;
        Ok(())
    }

    pub async fn put_reply(
        &self,
        followup_id: i64,
        message_id: Option<u64>,
        data: Value,
    ) -> SyncResult<()> {
        self.store
            .put_link(&NewLink {
                kind: REPLY.to_owned(),
                source_system: self.target.clone(),
                source_id: followup_id.to_string(),
                target_system: self.chatwoot.clone(),
                target_id: message_id.map(|id| id.to_string()),
                state: if message_id.is_some() {
                    LinkState::Linked
                } else {
                    LinkState::Pending
                },
                data,
            })
            .await?;
        Ok(())
    }

    /// The person a contact is: `(id, kind)`.
    pub async fn contact(&self, contact_id: u64) -> SyncResult<Option<(i64, PersonKind)>> {
        let link = self
            .store
            .link(
                CONTACT,
                &self.chatwoot,
                &contact_id.to_string(),
                &self.target,
            )
            .await?;
        Ok(link.and_then(|l| {
            let id = parse_id(&l)?;
            let kind = serde_json::from_value(l.data.get("kind").cloned().unwrap_or(Value::Null))
                .unwrap_or_default();
            Some((id, kind))
        }))
    }

    pub async fn put_contact(
        &self,
        contact_id: u64,
        person: i64,
        kind: PersonKind,
    ) -> SyncResult<()> {
        self.store
            .put_link(&NewLink {
                kind: CONTACT.to_owned(),
                source_system: self.chatwoot.clone(),
                source_id: contact_id.to_string(),
                target_system: self.target.clone(),
                target_id: Some(person.to_string()),
                state: LinkState::Linked,
                data: serde_json::json!({ "kind": kind }),
            })
            .await?;
        Ok(())
    }
}
