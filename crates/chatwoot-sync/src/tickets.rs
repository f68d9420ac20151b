//! Conversation → ticket. The ticket is made from the conversation's
//! messages as the API lists them (never from `conversation_created.messages`,
//! which can be empty or wrong), once a customer message exists. Creation
//! is two-phase: a pending link with a marker, the ticket carrying the
//! marker, then the link; a retry finds the marker instead of creating a
//! second ticket. Ticket id and URL are mirrored into the conversation.

use chatwoot::{Conversation, ConversationStatus, NewMessage};
use flows::helpdesk::{NewTicket, Requester, TicketKind};
use serde_json::{Map, json};

use crate::contacts::ContactInfo;
use crate::error::{SyncError, SyncResult};
use crate::links::{TicketLink, TicketState};
use crate::messages::ChatMessage;
use crate::source::{SOURCE_ID_PREFIX, SourceSync};
use crate::title::{TitleValues, render_title};

impl SourceSync {
    /// The marker of generation `generation` of a conversation's ticket
    /// (ends with `/` so conversation 48 never matches 482).
    fn marker(&self, conversation_id: u64, generation: u32) -> String {
        format!(
            "ref ticketbridge/chatwoot/{}/{}/{}/{}/",
            self.name, self.settings.account_id, conversation_id, generation
        )
    }

    /// The conversation's ticket, created when it has none and a customer
    /// message exists; `None` while there is nothing to make it from. All
    /// messages not in the description are copied after creation.
    pub(crate) async fn ensure_ticket(
        &self,
        conversation_id: u64,
        known: Option<&Conversation>,
    ) -> SyncResult<Option<TicketLink>> {
        let existing = self.links.ticket(conversation_id).await?;
        if let Some(link) = &existing
            && link.linked
        {
            let link = self.finish_ticket(conversation_id, link.clone()).await?;
            return Ok(Some(link));
        }
        // An interrupted creation resumes with its own generation.
        let (generation, previous) = existing
            .map(|l| (l.state.generation, l.state.previous_tickets))
            .unwrap_or_default();
        let conversation = match known {
            Some(c) if c.contact().is_some() => c.clone(),
            _ => self.chatwoot.get_conversation(conversation_id).await?,
        };
        if !self.allows_inbox(conversation.inbox_id) {
            return Ok(None);
        }
        let messages = self.all_messages(conversation_id).await?;
        let mut firsts: Vec<&ChatMessage> = Vec::new();
        for message in messages
            .iter()
            .filter(|m| m.is_incoming() && m.is_copyable() && !m.private)
        {
            if firsts.len() >= self.settings.description_messages.max(1) as usize {
                break;
            }
            // A later generation starts from the first message not copied yet.
            if generation > 0
                && self
                    .links
                    .message(message.id)
                    .await?
                    .is_some_and(|(_, linked, _)| linked)
            {
                continue;
            }
            firsts.push(message);
        }
        if firsts.is_empty() {
            return Ok(None);
        }
        let link = self
            .create_ticket(&conversation, &firsts, generation, previous)
            .await?;
        let link = self.finish_ticket(conversation_id, link).await?;
        self.copy_backlog(&link, &messages).await?;
        self.follow_initial_status(&conversation).await?;
        Ok(Some(link))
    }

    /// A new ticket starts open, whatever the conversation's status: a
    /// conversation already resolved (or pending) when its ticket is made —
    /// Chatwoot builds webhook bodies when the job runs, so the first body
    /// the bridge sees can say so — has its status applied now.
    async fn follow_initial_status(&self, conversation: &Conversation) -> SyncResult<()> {
        match conversation.status {
            Some(status) if status != ConversationStatus::Open => {
                self.apply_status(conversation.id, status).await
            }
            _ => Ok(()),
        }
    }

    /// Creates (or, after a crash, finds) the ticket of one generation.
    async fn create_ticket(
        &self,
        conversation: &Conversation,
        description: &[&ChatMessage],
        generation: u32,
        previous: Vec<i64>,
    ) -> SyncResult<TicketLink> {
        let conversation_id = conversation.id;
        let marker = self.marker(conversation_id, generation);
        let mut state = TicketState {
            marker: marker.clone(),
            generation,
            previous_tickets: previous.clone(),
            // The ticket is created open: it reflects an open conversation
            // only (see `follow_initial_status`).
            conversation_status: (conversation.status == Some(ConversationStatus::Open))
                .then(|| ConversationStatus::Open.as_str().to_owned()),
            ..TicketState::default()
        };
        let pending = self.links.ticket(conversation_id).await?;
        let found = match &pending {
            Some(link) if !link.linked && link.state.marker == marker => {
                self.helpdesk.find_ticket_by_marker(&marker).await?
            }
            _ => None,
        };
        let ticket = match found {
            Some(ticket) => ticket,
            None => {
                let new_ticket = self
                    .new_ticket(conversation, description, &marker, &previous)
                    .await?;
                self.links.put_ticket(conversation_id, None, &state).await?;
                self.helpdesk.create_ticket(&new_ticket).await?
            }
        };
        state.url = Some(ticket.url.clone());
        state.ticket_status = Some(ticket.status);
        state.mirrored_ticket_status = Some(ticket.status);
        self.links
            .put_ticket(conversation_id, Some(ticket.id), &state)
            .await?;
        self.mark_in_description(ticket.id, description).await?;
        self.start_cursor(ticket.id, &ticket.updated_at).await?;
        tracing::info!(source = %self.name, conversation = conversation_id, ticket = ticket.id, "ticket created");
        Ok(TicketLink {
            ticket_id: Some(ticket.id),
            linked: true,
            state,
        })
    }

    async fn new_ticket(
        &self,
        conversation: &Conversation,
        description: &[&ChatMessage],
        marker: &str,
        previous: &[i64],
    ) -> SyncResult<NewTicket> {
        let contact = match conversation.contact() {
            Some(sender) => ContactInfo::from(sender),
            None => {
                let id = conversation
                    .contact_id()
                    .ok_or_else(|| SyncError::Invalid("conversation without a contact".into()))?;
                ContactInfo::from(&self.chatwoot.get_contact(id).await?)
            }
        };
        let person = self.ensure_person(&contact).await?;
        let first = description
            .first()
            .map(|m| m.content.as_str())
            .unwrap_or("");
        let contact_name = contact
            .name
            .clone()
            .or(contact.email.clone())
            .or(contact.phone.clone())
            .unwrap_or_default();
        let inbox = conversation
            .channel()
            .map(|c| c.trim_start_matches("Channel::").to_owned())
            .or_else(|| conversation.inbox_id.map(|i| i.to_string()))
            .unwrap_or_default();
        let title = render_title(
            &self.settings.title_template,
            &TitleValues {
                message: first,
                contact: &contact_name,
                conversation: conversation.id,
                inbox: &inbox,
            },
        );
        let mut content = description
            .iter()
            .map(|m| m.content.trim().to_owned())
            .filter(|c| !c.is_empty())
            .collect::<Vec<_>>()
            .join("\n\n");
        let mut files = Vec::new();
        for message in description {
            let (attached, notes) = self.download_attachments(&message.attachments).await?;
            files.extend(attached);
            for note in notes {
                content.push_str(&format!("\n{note}"));
            }
        }
        if let Some(old) = previous.last() {
            let old = self.ticket_reference(*old).await?;
            content.push_str(&format!("\n\n(Follows ticket {old}, which is closed.)"));
        }
        content.push_str(&format!(
            "\n\nChatwoot conversation #{}: {}",
            conversation.id,
            self.conversation_url(conversation.id)
        ));
        let assignee = match conversation.assignee() {
            Some(agent) => self.agent_user(agent.id, agent.email.as_deref()).await?,
            None => None,
        };
        Ok(NewTicket {
            organisation: self.settings.entity,
            title,
            content,
            requester: Requester::Person {
                id: person.id,
                kind: person.kind,
            },
            category: self.category().await?,
            urgency: None,
            kind: TicketKind::Incident,
            request_type: None,
            assignee,
            marker: marker.to_owned(),
            attachments: files,
        })
    }

    /// The conversation in Chatwoot's web app.
    fn conversation_url(&self, conversation_id: u64) -> String {
        format!(
            "{}/app/accounts/{}/conversations/{}",
            self.settings.url.as_str().trim_end_matches('/'),
            self.settings.account_id,
            conversation_id
        )
    }

    /// The poll cursor starts at the first ticket the bridge creates (the
    /// target's own clock and format).
    async fn start_cursor(&self, ticket: i64, updated_at: &str) -> SyncResult<()> {
        let name = self.cursor_name();
        if self.store.cursor(&name).await?.is_some() {
            return Ok(());
        }
        let updated_at = if updated_at.is_empty() {
            self.helpdesk
                .ticket(ticket)
                .await?
                .map(|t| t.updated_at)
                .unwrap_or_default()
        } else {
            updated_at.to_owned()
        };
        if !updated_at.is_empty() {
            self.store.set_cursor(&name, &updated_at).await?;
        }
        Ok(())
    }

    pub(crate) fn cursor_name(&self) -> String {
        format!("{}:poll", self.links.chatwoot)
    }

    /// Mirrors ticket id and URL into the conversation's custom attributes
    /// (read-modify-write: Chatwoot replaces the whole hash) and posts the
    /// optional private note with the link, each once.
    pub(crate) async fn finish_ticket(
        &self,
        conversation_id: u64,
        mut link: TicketLink,
    ) -> SyncResult<TicketLink> {
        let Some(ticket) = link.ticket() else {
            return Ok(link);
        };
        let url = link
            .state
            .url
            .clone()
            .unwrap_or_else(|| self.helpdesk.ticket_url(ticket));
        let mut changed = false;
        if !link.state.mirrored {
            let mut patch = Map::new();
            patch.insert("glpi_ticket_id".into(), json!(ticket));
            patch.insert("glpi_ticket_url".into(), json!(url));
            self.chatwoot
                .merge_conversation_custom_attributes(conversation_id, &patch)
                .await?;
            link.state.mirrored = true;
            changed = true;
        }
        if self.settings.private_note_with_link && !link.state.link_note_posted {
            let reference = self.ticket_reference(ticket).await?;
            let text = format!("Ticket {reference} in {}: {url}", self.helpdesk.name());
            self.remember_message_text(conversation_id, &text).await?;
            let note = NewMessage::private_note(text.clone())
                .with_source_id(format!("{SOURCE_ID_PREFIX}ticket:{ticket}"));
            let posted = self.chatwoot.create_message(conversation_id, &note).await?;
            self.remember_message(posted.id).await?;
            self.forget_message_text(conversation_id, &text).await?;
            link.state.link_note_posted = true;
            changed = true;
        }
        if changed {
            self.links
                .put_ticket(conversation_id, Some(ticket), &link.state)
                .await?;
        }
        Ok(link)
    }

    /// Closed-ticket policy "new ticket": a new ticket made from this
    /// message, linked to the old one, takes over the conversation.
    pub(crate) async fn replace_closed_ticket(
        &self,
        message: &ChatMessage,
        link: &TicketLink,
    ) -> SyncResult<()> {
        let conversation = self
            .chatwoot
            .get_conversation(message.conversation_id)
            .await?;
        let mut previous = link.state.previous_tickets.clone();
        if let Some(old) = link.ticket() {
            previous.push(old);
        }
        let generation = link.state.generation + 1;
        // Phase one for the new generation (keeps the old ticket id in data).
        let new_link = self
            .create_ticket(&conversation, &[message], generation, previous)
            .await?;
        self.finish_ticket(message.conversation_id, new_link)
            .await?;
        self.follow_initial_status(&conversation).await
    }
}
