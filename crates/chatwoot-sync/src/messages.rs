//! Messages → followups: customer messages become public followups from the
//! requester, agent replies followups by the agent's user (when one has
//! the agent's email), private notes private followups, attachments
//! documents on the followup. One link per message id, so nothing is
//! copied twice.

use chatwoot::{Attachment, ConversationStatus, Message, MessageEvent, MessageType, SenderKind};
use config::sources::ClosedTicketPolicy;
use flows::helpdesk::{HelpdeskError, NewFollowup, PersonKind, TicketStatus};
use serde_json::json;

use crate::error::{SyncError, SyncResult};
use crate::links::{IN_DESCRIPTION, TicketLink};
use crate::source::SourceSync;
use crate::text::fingerprint;

/// A Chatwoot message, from a webhook body or an API answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatMessage {
    pub id: u64,
    pub conversation_id: u64,
    pub content: String,
    pub message_type: MessageType,
    pub private: bool,
    pub content_type: Option<String>,
    pub sender_kind: Option<SenderKind>,
    pub sender_id: Option<u64>,
    pub sender_name: Option<String>,
    pub sender_email: Option<String>,
    pub source_id: Option<String>,
    pub attachments: Vec<Attachment>,
    /// Deleted in Chatwoot (`content_attributes.deleted`): its content is
    /// Chatwoot's "This message was deleted", not the customer's words.
    pub deleted: bool,
}

impl ChatMessage {
    pub fn from_event(event: &MessageEvent) -> Option<Self> {
        Some(Self {
            id: event.id,
            conversation_id: event.conversation_id()?,
            content: event.content.clone().unwrap_or_default(),
            message_type: event.message_type,
            private: event.private,
            content_type: event.content_type.clone(),
            sender_kind: event.sender_kind(),
            sender_id: event.sender.as_ref().map(|s| s.id),
            sender_name: event
                .sender
                .as_ref()
                .and_then(|s| s.available_name.clone().or_else(|| s.name.clone())),
            sender_email: event.sender.as_ref().and_then(|s| s.email.clone()),
            source_id: event.source_id.clone(),
            attachments: event.attachments.clone(),
            deleted: event.is_deleted(),
        })
    }

    pub fn from_api(message: &Message, conversation_id: u64) -> Self {
        let kind = match (&message.sender, message.sender_type.as_deref()) {
            (Some(sender), _) if sender.sender_type.is_some() => Some(sender.kind()),
            (_, Some("Contact")) => Some(SenderKind::Contact),
            (_, Some("User")) => Some(SenderKind::User),
            (_, Some("AgentBot")) => Some(SenderKind::AgentBot),
            (Some(sender), _) => Some(sender.kind()),
            (None, _) if message.message_type == MessageType::Incoming => Some(SenderKind::Contact),
            _ => None,
        };
        Self {
            id: message.id,
            conversation_id: message.conversation_id.unwrap_or(conversation_id),
            content: message.content.clone().unwrap_or_default(),
            message_type: message.message_type,
            private: message.private,
            content_type: message.content_type.clone(),
            sender_kind: kind,
            sender_id: message.sender.as_ref().map(|s| s.id).or(message.sender_id),
            sender_name: message
                .sender
                .as_ref()
                .and_then(|s| s.available_name.clone().or_else(|| s.name.clone())),
            sender_email: message.sender.as_ref().and_then(|s| s.email.clone()),
            source_id: message.source_id.clone(),
            attachments: message.attachments.clone(),
            deleted: message.content_attributes.get("deleted")
                == Some(&serde_json::Value::Bool(true)),
        }
    }

    pub fn is_incoming(&self) -> bool {
        self.message_type == MessageType::Incoming
    }

    /// Worth a followup: a customer message, an agent reply or a note with
    /// text or files (no activity, template or CSAT message, nothing
    /// deleted).
    pub fn is_copyable(&self) -> bool {
        !self.deleted
            && matches!(
                self.message_type,
                MessageType::Incoming | MessageType::Outgoing
            )
            && self.content_type.as_deref() != Some("input_csat")
            && (!self.content.trim().is_empty() || !self.attachments.is_empty())
    }
}

impl SourceSync {
    /// Every message of a conversation, oldest first (pages of 100).
    pub(crate) async fn all_messages(&self, conversation_id: u64) -> SyncResult<Vec<ChatMessage>> {
        let mut all = Vec::new();
        let mut after = 0;
        loop {
            let page = self
                .chatwoot
                .list_messages(conversation_id, Some(after))
                .await?;
            let count = page.len();
            let Some(last) = page.last().map(|m| m.id) else {
                break;
            };
            all.extend(
                page.iter()
                    .map(|m| ChatMessage::from_api(m, conversation_id)),
            );
            if count < 100 || last <= after {
                break;
            }
            after = last;
        }
        Ok(all)
    }

    /// message_created.
    pub(crate) async fn on_message_created(&self, event: &MessageEvent) -> SyncResult<()> {
        let message = ChatMessage::from_event(event)
            .ok_or_else(|| SyncError::Invalid("message_created without a conversation".into()))?;
        if let (Some(SenderKind::User), Some(id), Some(email)) = (
            message.sender_kind,
            message.sender_id,
            message.sender_email.as_deref(),
        ) {
            self.learn_agent(id, email).await?;
        }
        if !message.is_copyable() {
            return Ok(());
        }
        if self.is_own_message(&message).await? {
            tracing::debug!(source = %self.name, message = message.id, "echo of the bridge's own message dropped");
            return Ok(());
        }
        match self.links.ticket(message.conversation_id).await? {
            Some(link) if link.linked => self.copy_message(&message, &link).await,
            // No ticket yet: create it from the conversation's messages (the
            // first customer message, whatever order webhooks arrive in);
            // creation copies every message not in the description.
            _ => {
                self.ensure_ticket(message.conversation_id, event.conversation.as_ref())
                    .await?;
                Ok(())
            }
        }
    }

    /// message_updated: only a deletion or a failed delivery matters (a
    /// private note says so).
    pub(crate) async fn on_message_updated(&self, event: &MessageEvent) -> SyncResult<()> {
        let failure = event
            .content_attributes
            .get("external_error")
            .and_then(serde_json::Value::as_str)
            .map(str::trim)
            .filter(|e| !e.is_empty());
        if let Some(failure) = failure {
            return self.on_delivery_failed(event, failure).await;
        }
        if !event.is_deleted() {
            return Ok(());
        }
        let Some((Some(target_id), true, data)) = self.links.message(event.id).await? else {
            return Ok(());
        };
        let Ok(followup) = target_id.parse::<i64>() else {
            return Ok(());
        };
        let Some(ticket) = data.get("ticket").and_then(serde_json::Value::as_i64) else {
            return Ok(());
        };
        let note =
            format!("The Chatwoot message copied in followup #{followup} was deleted in Chatwoot.");
        self.private_note_once(ticket, &format!("deleted:{}", event.id), note)
            .await?;
        Ok(())
    }

    /// Adds `note` to `ticket` as a private followup of the bridge, unless a
    /// note was added under `marker` already. Returns whether it was added.
    pub(crate) async fn private_note_once(
        &self,
        ticket: i64,
        marker: &str,
        note: String,
    ) -> SyncResult<bool> {
        if self
            .store
            .kv_get(&self.links.chatwoot, marker)
            .await?
            .is_some()
        {
            return Ok(false);
        }
        self.remember_followup_text(ticket, &note).await?;
        let id = self
            .helpdesk
            .add_followup(
                ticket,
                &NewFollowup {
                    content: note.clone(),
                    private: true,
                    author: None,
                    attachments: Vec::new(),
                },
            )
            .await?;
        self.remember_followup(id).await?;
        self.forget_followup_text(ticket, &note).await?;
        self.store
            .kv_put(&self.links.chatwoot, marker, &json!({"followup": id}))
            .await?;
        Ok(true)
    }

    /// Chatwoot accepted a reply of the bridge but the channel refused it
    /// (WhatsApp's 24-hour window, a blocked number, a provider error): it
    /// says so later, in `content_attributes.external_error`. The ticket gets
    /// a private followup naming the reply that did not reach the customer,
    /// once.
    async fn on_delivery_failed(&self, event: &MessageEvent, failure: &str) -> SyncResult<()> {
        // Which of the bridge's copies the message is: a followup's reply or
        // a solution.
        let mut copied = None;
        for (kind, what) in [
            (crate::links::REPLY, "the reply of followup"),
            (crate::links::SOLUTION, "the solution"),
        ] {
            let links = self
                .store
                .links_to(kind, &self.links.chatwoot, &event.id.to_string())
                .await?;
            if let Some(link) = links.iter().find(|l| l.source_system == self.links.target) {
                copied = Some(format!("{what} #{}", link.source_id));
                break;
            }
        }
        let Some(copied) = copied else {
            return Ok(()); // not one of the bridge's copies
        };
        let Some(conversation) = event.conversation_id() else {
            return Ok(());
        };
        let Some(ticket) = self
            .links
            .ticket(conversation)
            .await?
            .and_then(|link| link.ticket())
        else {
            return Ok(());
        };
        let note = format!("Chatwoot could not deliver {copied} to the customer: {failure}");
        if self
            .private_note_once(ticket, &format!("failed:{}", event.id), note)
            .await?
        {
            tracing::info!(source = %self.name, conversation, ticket, message = event.id,
                "a reply was not delivered; the ticket says so");
        }
        Ok(())
    }

    /// Copies every message of the conversation that has no link yet
    /// (ticket creation, repair after a lost webhook).
    pub(crate) async fn copy_backlog(
        &self,
        link: &TicketLink,
        messages: &[ChatMessage],
    ) -> SyncResult<()> {
        for message in messages {
            if !message.is_copyable() || self.is_own_message(message).await? {
                continue;
            }
            if matches!(self.links.message(message.id).await?, Some((_, true, _))) {
                continue;
            }
            // A closed-ticket policy may replace the ticket: re-read the link.
            let current = match self.links.ticket(message.conversation_id).await? {
                Some(current) if current.linked => current,
                _ => link.clone(),
            };
            self.copy_message(message, &current).await?;
        }
        Ok(())
    }

    /// Copies one message into the conversation's ticket, unless done
    /// already; customer messages on a closed ticket follow the policy.
    pub(crate) async fn copy_message(
        &self,
        message: &ChatMessage,
        link: &TicketLink,
    ) -> SyncResult<()> {
        let Some(ticket) = link.ticket() else {
            return Ok(());
        };
        let existing = self.links.message(message.id).await?;
        if matches!(existing, Some((_, true, _))) {
            return Ok(());
        }
        let status = if message.is_incoming() {
            self.ticket_status(link).await?
        } else {
            None
        };
        if message.is_incoming()
            && matches!(status, Some(TicketStatus::Solved | TicketStatus::Waiting))
        {
            // The customer writes on a solved ticket (solved in the target
            // while the conversation stayed open, or not yet mirrored), or on
            // one a technician set pending to wait for this answer: as GLPI
            // does when the requester writes, the ticket is reopened. (The
            // bridge writes as its own account, for which GLPI does not.)
            // The poller then sees an open ticket and leaves the
            // conversation open.
            match self
                .helpdesk
                .set_status(ticket, TicketStatus::Assigned, None)
                .await
            {
                Ok(()) => {
                    tracing::info!(source = %self.name, conversation = message.conversation_id,
                        ticket, "the customer wrote on the solved or pending ticket; reopened");
                    self.reopened(message.conversation_id, ticket).await?;
                }
                Err(HelpdeskError::Refused { reason, .. }) => {
                    tracing::info!(source = %self.name, conversation = message.conversation_id,
                        ticket, %reason, "the ticket cannot be reopened; the message is added to it");
                }
                Err(error) => return Err(error.into()),
            }
        }
        // A ticket purged in the target is treated like a closed one.
        let gone = message.is_incoming() && status.is_none();
        if message.is_incoming() && (status == Some(TicketStatus::Closed) || gone) {
            match self.settings.closed_ticket_policy {
                ClosedTicketPolicy::NewTicket => {
                    return self.replace_closed_ticket(message, link).await;
                }
                ClosedTicketPolicy::Reopen if gone => {
                    return self.replace_closed_ticket(message, link).await;
                }
                ClosedTicketPolicy::Reopen => {
                    match self
                        .helpdesk
                        .set_status(ticket, TicketStatus::Assigned, None)
                        .await
                    {
                        Ok(()) => {}
                        // Some help desks never reopen a closed ticket (in
                        // iTop closed is final): a new ticket takes the
                        // message rather than losing it.
                        Err(HelpdeskError::Refused { reason, .. }) => {
                            tracing::info!(source = %self.name, conversation = message.conversation_id,
                                ticket, %reason, "the closed ticket cannot be reopened; a new ticket takes over");
                            return self.replace_closed_ticket(message, link).await;
                        }
                        Err(error) => return Err(error.into()),
                    }
                    self.reopened(message.conversation_id, ticket).await?;
                }
                ClosedTicketPolicy::Ignore => {
                    self.links
                        .put_message_not_copied(message.id, ticket)
                        .await?;
                    return Ok(());
                }
            }
        }
        if !self.settings.sync_messages {
            // Handled, though not copied: a later sweep must not take it for
            // a message still to copy (and make a ticket of it).
            self.links
                .put_message_not_copied(message.id, ticket)
                .await?;
            return Ok(());
        }
        self.write_followup(message, ticket, existing.map(|(_, _, data)| data))
            .await
    }

    async fn write_followup(
        &self,
        message: &ChatMessage,
        ticket: i64,
        pending: Option<serde_json::Value>,
    ) -> SyncResult<()> {
        let (author, prefix) = self.followup_author(message).await?;
        let (attachments, notes) = self.download_attachments(&message.attachments).await?;
        let mut content = message.content.trim().to_owned();
        if let Some(prefix) = prefix {
            content = format!("{prefix}: {content}");
        }
        for note in notes {
            content.push_str(&format!("\n{note}"));
        }
        if content.trim().is_empty() {
            content = "(attachment)".to_owned();
        }
        // A previous attempt may have written it before the crash: adopt it.
        if let Some(data) = pending
            && data.get("ticket").and_then(serde_json::Value::as_i64) == Some(ticket)
        {
            let wanted = fingerprint(&content);
            for followup in self.helpdesk.followups(ticket).await? {
                // The bridge's (by the marker left before the write, or by
                // its id when the poller took that marker already) and no
                // other message's copy.
                if fingerprint(&followup.content) == wanted
                    && !self.links_message_followup(ticket, &followup).await?
                    && self
                        .is_own_followup(ticket, followup.id, &followup.content)
                        .await?
                {
                    self.links
                        .put_message(
                            message.id,
                            Some(followup.id.to_string()),
                            json!({"ticket": ticket}),
                        )
                        .await?;
                    return Ok(());
                }
            }
        }
        self.links
            .put_message(message.id, None, json!({"ticket": ticket}))
            .await?;
        self.remember_followup_text(ticket, &content).await?;
        let added = self
            .helpdesk
            .add_followup(
                ticket,
                &NewFollowup {
                    content: content.clone(),
                    private: message.private,
                    author,
                    attachments,
                },
            )
            .await;
        let id = match added {
            Ok(id) => id,
            // An agent's message on a ticket purged in the target has nowhere
            // to go (a customer's starts a new ticket, see `copy_message`).
            Err(error)
                if !error.is_retryable() && self.helpdesk.ticket(ticket).await?.is_none() =>
            {
                tracing::info!(source = %self.name, message = message.id, ticket, %error,
                    "the ticket is gone from the target; the message is not copied");
                self.forget_followup_text(ticket, &content).await?;
                self.links
                    .put_message_not_copied(message.id, ticket)
                    .await?;
                return Ok(());
            }
            Err(error) => return Err(error.into()),
        };
        self.remember_followup(id).await?;
        self.forget_followup_text(ticket, &content).await?;
        self.links
            .put_message(message.id, Some(id.to_string()), json!({"ticket": ticket}))
            .await?;
        tracing::debug!(source = %self.name, message = message.id, ticket, followup = id, "message copied");
        Ok(())
    }

    /// The bridge reopened the ticket for a customer message. Chatwoot
    /// reopens a resolved conversation when the customer writes, so the
    /// ticket reflects an open conversation (the status event that follows
    /// writes nothing, and cannot undo a solve made in the meantime), and
    /// the open ticket is what the conversation mirrors (a later solve in
    /// the target is seen as a change).
    async fn reopened(&self, conversation_id: u64, ticket: i64) -> SyncResult<()> {
        let Some(link) = self.links.ticket(conversation_id).await? else {
            return Ok(());
        };
        let mut state = link.state;
        state.conversation_status = Some(ConversationStatus::Open.as_str().to_owned());
        state.ticket_status = Some(TicketStatus::Assigned);
        state.mirrored_ticket_status = Some(TicketStatus::Assigned);
        self.links
            .put_ticket(conversation_id, Some(ticket), &state)
            .await
    }

    /// Who the followup is written as, and a name prefix when nobody in
    /// the target stands for the writer.
    async fn followup_author(
        &self,
        message: &ChatMessage,
    ) -> SyncResult<(Option<i64>, Option<String>)> {
        if message.is_incoming() {
            let contact = match message.sender_id {
                Some(id) => self.links.contact(id).await?,
                None => None,
            };
            return Ok((
                contact.and_then(|(id, kind)| (kind == PersonKind::User).then_some(id)),
                None,
            ));
        }
        let name = message
            .sender_name
            .clone()
            .unwrap_or_else(|| "Chatwoot".to_owned());
        if message.sender_kind == Some(SenderKind::User)
            && let Some(agent) = message.sender_id
            && let Some(user) = self
                .agent_user(agent, message.sender_email.as_deref())
                .await?
        {
            return Ok((Some(user), None));
        }
        Ok((None, Some(format!("{name} (Chatwoot)"))))
    }

    /// The ticket's status as the target says now (a technician may have
    /// closed it since the last poll); `None` when the ticket is gone. Only
    /// read: what the poller mirrored to Chatwoot is its own record.
    pub(crate) async fn ticket_status(
        &self,
        link: &TicketLink,
    ) -> SyncResult<Option<TicketStatus>> {
        let Some(ticket) = link.ticket() else {
            return Ok(None);
        };
        Ok(self.helpdesk.ticket(ticket).await?.map(|t| t.status))
    }

    /// Marks the messages a ticket description was made of.
    pub(crate) async fn mark_in_description(
        &self,
        ticket: i64,
        messages: &[&ChatMessage],
    ) -> SyncResult<()> {
        for message in messages {
            self.links
                .put_message(
                    message.id,
                    Some(IN_DESCRIPTION.into()),
                    json!({"ticket": ticket}),
                )
                .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::ChatMessage;
    use serde_json::json;

    fn listed(attributes: serde_json::Value) -> ChatMessage {
        let message: chatwoot::Message = serde_json::from_value(json!({
            "id": 90400, "content": "This message was deleted", "message_type": 0,
            "private": false, "content_type": "text", "content_attributes": attributes,
            "sender_type": "Contact", "sender_id": 1201, "created_at": 1_764_000_000
        }))
        .unwrap();
        ChatMessage::from_api(&message, 482)
    }

    /// The sweep lists a deleted message with Chatwoot's placeholder text:
    /// it is not the customer's words and is not copied.
    #[test]
    fn deleted_messages_are_not_copied() {
        assert!(!listed(json!({"deleted": true})).is_copyable());
        assert!(listed(json!({})).is_copyable());
    }
}
