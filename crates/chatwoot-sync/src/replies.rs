//! Target → Chatwoot. The poller asks the target once per cycle for the
//! tickets changed since its cursor and, for each ticket linked to a
//! conversation of this source, enqueues a job in that conversation's order
//! which copies new public followups written by target users (not by the
//! bridge, not by the requester) as outgoing messages — or private notes
//! when configured or when the channel cannot reply — and resolves the
//! conversation when the ticket is solved or closed.

use chatwoot::{ConversationStatus, NewMessage, SenderKind};
use config::sources::RepliesAs;
use flows::helpdesk::{Followup, PersonKind, TicketStatus};
use serde_json::json;

use crate::error::{SyncError, SyncResult};
use crate::flow::Cycle;
use crate::jobs::ticket_changed_job;
use crate::messages::ChatMessage;
use crate::source::{SOURCE_ID_PREFIX, SourceSync};
use crate::text::{fingerprint, html_to_text};

impl SourceSync {
    /// One poll: the jobs to enqueue for linked tickets that changed, and
    /// where the cursor moves once they are stored. The cursor is not moved
    /// here: a cursor moved before its jobs were stored would skip, for good,
    /// the tickets of a job that then failed to be stored.
    pub(crate) async fn poll_once(&self) -> SyncResult<Cycle> {
        let name = self.cursor_name();
        let Some(cursor) = self.store.cursor(&name).await? else {
            // No ticket created yet: nothing to look at.
            return Ok(Cycle::default());
        };
        let changed = self.helpdesk.changed_since(&cursor).await?;
        let mut jobs = Vec::new();
        let newest = changed
            .iter()
            .map(|t| t.updated_at.clone())
            .chain([cursor.clone()])
            .max()
            .unwrap_or_else(|| cursor.clone());
        for ticket in &changed {
            let Some(conversation) = self.links.conversation_of(ticket.id).await? else {
                continue;
            };
            let link = self.links.ticket(conversation).await?;
            let seen = link.and_then(|l| l.state.seen_updated_at);
            // Times have one-second resolution: a ticket changed in the
            // newest second seen may change again within it, so it is only
            // skipped once a later second has been observed.
            if seen.as_deref() == Some(ticket.updated_at.as_str()) && ticket.updated_at < newest {
                continue;
            }
            jobs.push(ticket_changed_job(
                &self.name,
                self.target(),
                conversation,
                ticket.id,
                &newest,
            ));
        }
        let cursor = (newest != cursor).then_some((name, newest));
        Ok(Cycle { jobs, cursor })
    }

    /// A linked ticket changed: copy its new replies and its solved state.
    /// `settled_before`: see [`ticket_changed_job`].
    pub(crate) async fn on_ticket_changed(
        &self,
        conversation_id: u64,
        ticket_id: i64,
        settled_before: Option<&str>,
    ) -> SyncResult<()> {
        let Some(link) = self.links.ticket(conversation_id).await? else {
            return Ok(());
        };
        if link.ticket() != Some(ticket_id) {
            // The conversation moved on to a newer ticket.
            return Ok(());
        }
        let Some(ticket) = self.helpdesk.ticket(ticket_id).await? else {
            return Ok(());
        };
        let conversation = match self.chatwoot.get_conversation(conversation_id).await {
            Ok(c) => Some(c),
            Err(error) if error.is_retryable() => return Err(error.into()),
            Err(error) => {
                tracing::warn!(source = %self.name, conversation = conversation_id, %error, "conversation not readable; replies not copied");
                None
            }
        };
        let requester = match conversation.as_ref().and_then(|c| c.contact_id()) {
            Some(contact) => self
                .links
                .contact(contact)
                .await?
                .and_then(|(id, kind)| (kind == PersonKind::User).then_some(id)),
            None => None,
        };
        let followups = self.helpdesk.followups(ticket_id).await?;
        for followup in followups {
            if followup.private {
                continue;
            }
            let reply = self.links.reply_of(&followup, conversation_id).await?;
            if matches!(reply, Some((_, true))) {
                continue;
            }
            if self.links_message_followup(ticket_id, &followup).await? {
                continue;
            }
            if self
                .is_own_followup(ticket_id, followup.id, &followup.content)
                .await?
            {
                continue;
            }
            if requester.is_some() && followup.author == requester {
                continue;
            }
            let text = html_to_text(&followup.content);
            if conversation.is_none() {
                continue;
            }
            if text.is_empty() {
                // Only an image or a file: files are not copied to Chatwoot,
                // so the technician is told the customer has not seen it.
                let note = format!(
                    "Followup #{} has no text (only an image or a file) and was not posted to \
                     the Chatwoot conversation: files are not copied to Chatwoot. Send them \
                     to the customer another way.",
                    followup.id
                );
                self.private_note_once(
                    ticket_id,
                    &format!("textless:{ticket_id}:{}", followup.id),
                    note,
                )
                .await?;
                self.links
                    .skip_reply(followup.id, conversation_id, "no text")
                    .await?;
                continue;
            }
            let can_reply = conversation
                .as_ref()
                .and_then(|c| c.can_reply)
                .unwrap_or(true);
            let interrupted = matches!(reply, Some((_, false)));
            match self
                .post_reply(conversation_id, followup.id, interrupted, &text, can_reply)
                .await
            {
                Ok(()) => {}
                // Chatwoot refuses this one reply for good (too long, a
                // content it rejects): the technician is told on the ticket,
                // and the replies after it, the solution and the resolve
                // still go through.
                Err(error @ SyncError::Chatwoot(_)) if !error.is_retryable() => {
                    self.copy_refused(ticket_id, &format!("followup #{}", followup.id), &error)
                        .await?;
                    self.links
                        .skip_reply(followup.id, conversation_id, &error.to_string())
                        .await?;
                }
                Err(error) => return Err(error),
            }
        }
        // The technician's solution reaches the customer before the
        // conversation is resolved.
        if let Some(conversation) = &conversation {
            let can_reply = conversation.can_reply.unwrap_or(true);
            for solution in self.helpdesk.solutions(ticket_id).await? {
                self.post_solution(conversation_id, ticket_id, &solution, can_reply)
                    .await?;
            }
        }
        if conversation.is_none() {
            // Nothing is known of the conversation (refused or unreadable):
            // the state keeps what it says of it. Marked resolved here, a
            // sweep would take the still-open conversation for a reason to
            // reopen the technician's solved ticket.
            return Ok(());
        }
        let mut state = match self.links.ticket(conversation_id).await? {
            Some(l) => l.state,
            None => link.state,
        };
        // What the conversation last mirrored of the ticket (older records:
        // the status last seen). Only this job writes it, and only once the
        // conversation matches, so a failed toggle is tried again and a
        // message or status event in between cannot hide the change.
        let mirrored = state.mirrored_ticket_status.or(state.ticket_status);
        if !ticket.status.is_open() && mirrored.is_none_or(TicketStatus::is_open) {
            let status = conversation.as_ref().and_then(|c| c.status);
            if conversation.is_some() && status != Some(ConversationStatus::Resolved) {
                self.chatwoot
                    .toggle_status(conversation_id, ConversationStatus::Resolved, None)
                    .await?;
                tracing::info!(source = %self.name, conversation = conversation_id, ticket = ticket_id, "conversation resolved from the ticket");
            }
            // The ticket now reflects a resolved conversation: the status
            // webhooks echoing the toggle write nothing back.
            state.conversation_status = Some(ConversationStatus::Resolved.as_str().to_owned());
        }
        state.mirrored_ticket_status = Some(ticket.status);
        state.ticket_status = Some(ticket.status);
        // The poller skips a ticket whose change time it has seen handled,
        // which is only safe once that second is over: a reply written later
        // in the same second as this run would carry the same time.
        if settled_before.is_some_and(|settled| ticket.updated_at.as_str() < settled) {
            state.seen_updated_at = Some(ticket.updated_at.clone());
        }
        self.links
            .put_ticket(conversation_id, Some(ticket_id), &state)
            .await?;
        Ok(())
    }

    /// Posts `text` to the conversation as an outgoing reply, or as a private
    /// note carrying `marker` when replies go as notes, the channel cannot
    /// reply, or Chatwoot refuses the reply for that reason.
    async fn post_to_conversation(
        &self,
        conversation_id: u64,
        text: &str,
        marker: String,
        can_reply: bool,
    ) -> SyncResult<chatwoot::Message> {
        let as_note = self.settings.glpi_replies_as == RepliesAs::PrivateNote || !can_reply;
        let message = if as_note {
            NewMessage::private_note(text).with_source_id(marker.clone())
        } else {
            NewMessage::outgoing(text)
        };
        match self
            .chatwoot
            .create_message(conversation_id, &message)
            .await
        {
            Ok(posted) => Ok(posted),
            Err(error) if error.is_channel_cannot_reply() => {
                let note = NewMessage::private_note(text).with_source_id(marker);
                Ok(self.chatwoot.create_message(conversation_id, &note).await?)
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Posts a solution written in the target to the conversation, once
    /// (a record per solution), as a reply the customer sees (a private note
    /// when replies go as notes or the channel cannot reply). The bridge's
    /// own solution (`solution_text`, written when the conversation was
    /// resolved) is not posted.
    async fn post_solution(
        &self,
        conversation_id: u64,
        ticket_id: i64,
        solution: &Followup,
        can_reply: bool,
    ) -> SyncResult<()> {
        let ns = &self.links.chatwoot;
        let key = format!("solution:{}:{}", self.links.target, solution.id);
        let record = self.store.kv_get(ns, &key).await?;
        let done = |field: &str| {
            record
                .as_ref()
                .and_then(|r| r.get(field))
                .is_some_and(|v| !v.is_null())
        };
        if done("message") || done("skipped") {
            return Ok(());
        }
        let text = html_to_text(&solution.content);
        if text.is_empty() || self.is_own_solution(ticket_id, &text).await? {
            self.store
                .kv_put(ns, &key, &json!({"skipped": "own or empty"}))
                .await?;
            return Ok(());
        }
        // An earlier attempt may have posted it before the crash: adopt it.
        if done("pending")
            && let Some(posted) = self.unclaimed_copy(conversation_id, &text).await?
        {
            self.remember_message(posted.id).await?;
            // Known by its id now; the text kept for an echo that came before
            // the id would otherwise take an agent's later message with the
            // same words for the bridge's own.
            self.forget_message_text(conversation_id, &text).await?;
            self.store
                .kv_put(ns, &key, &json!({"message": posted.id}))
                .await?;
            self.links
                .put_solution(solution.id, posted.id, conversation_id)
                .await?;
            return Ok(());
        }
        self.store
            .kv_put(ns, &key, &json!({"pending": true}))
            .await?;
        self.remember_message_text(conversation_id, &text).await?;
        let marker = format!("{SOURCE_ID_PREFIX}solution:{ticket_id}:{}", solution.id);
        let posted = match self
            .post_to_conversation(conversation_id, &text, marker, can_reply)
            .await
        {
            Ok(posted) => posted,
            // Refused for good: said on the ticket, and the resolve goes on.
            Err(error @ SyncError::Chatwoot(_)) if !error.is_retryable() => {
                self.copy_refused(ticket_id, &format!("solution #{}", solution.id), &error)
                    .await?;
                self.forget_message_text(conversation_id, &text).await?;
                self.store
                    .kv_put(ns, &key, &json!({"skipped": error.to_string()}))
                    .await?;
                return Ok(());
            }
            Err(error) => return Err(error),
        };
        self.remember_message(posted.id).await?;
        self.forget_message_text(conversation_id, &text).await?;
        self.store
            .kv_put(ns, &key, &json!({"message": posted.id}))
            .await?;
        self.links
            .put_solution(solution.id, posted.id, conversation_id)
            .await?;
        tracing::debug!(source = %self.name, conversation = conversation_id, ticket = ticket_id, message = posted.id, "solution copied to Chatwoot");
        Ok(())
    }

    /// Chatwoot refused to take `what` (a followup or solution of
    /// `ticket_id`) for good: a private note on the ticket says so, once.
    async fn copy_refused(&self, ticket_id: i64, what: &str, error: &SyncError) -> SyncResult<()> {
        tracing::warn!(source = %self.name, ticket = ticket_id, %what, %error,
            "Chatwoot refused the copy; the ticket gets a note and later replies go on");
        let note = format!(
            "The {what} of this ticket did not reach the customer: Chatwoot refused it ({error}). \
             Tell the customer another way, or write it again in a form Chatwoot takes."
        );
        self.private_note_once(ticket_id, &format!("refused:{ticket_id}:{what}"), note)
            .await?;
        Ok(())
    }

    /// Whether a solution is the bridge's: the one it wrote when the
    /// conversation was resolved (its marker, taken once) or the configured
    /// `solution_text`.
    async fn is_own_solution(&self, ticket_id: i64, text: &str) -> SyncResult<bool> {
        let wanted = fingerprint(text);
        if self
            .store
            .forget_write(
                &format!("target:{}", self.helpdesk.name()),
                &format!("solution:{ticket_id}"),
                &wanted,
            )
            .await?
        {
            return Ok(true);
        }
        Ok(wanted == fingerprint(&self.settings.solution_text))
    }

    /// Whether a followup is one the bridge wrote for a Chatwoot message
    /// (found through the reverse of the message links; a link stored under
    /// the followup's legacy id counts when it names this ticket).
    pub(crate) async fn links_message_followup(
        &self,
        ticket: i64,
        followup: &Followup,
    ) -> SyncResult<bool> {
        let links = self
            .store
            .links_to(
                crate::links::MESSAGE,
                &self.links.target,
                &followup.id.to_string(),
            )
            .await?;
        if links.iter().any(|l| l.source_system == self.links.chatwoot) {
            return Ok(true);
        }
        let Some(legacy) = followup.legacy_id else {
            return Ok(false);
        };
        let links = self
            .store
            .links_to(
                crate::links::MESSAGE,
                &self.links.target,
                &legacy.to_string(),
            )
            .await?;
        Ok(links.iter().any(|l| {
            l.source_system == self.links.chatwoot
                && l.data.get("ticket").and_then(serde_json::Value::as_i64) == Some(ticket)
        }))
    }

    /// The newest agent-side message of the conversation with `text` that no
    /// other reply or copied message accounts for: what an interrupted attempt
    /// posted. The bridge posts with a User token, so its messages carry that
    /// user as sender, like an agent's; an agent's message with the very same
    /// text, not yet copied to the ticket, would be taken too, and the customer
    /// has read that text then.
    async fn unclaimed_copy(
        &self,
        conversation_id: u64,
        text: &str,
    ) -> SyncResult<Option<ChatMessage>> {
        let wanted = fingerprint(text);
        let mut candidates: Vec<ChatMessage> = self
            .all_messages(conversation_id)
            .await?
            .into_iter()
            .filter(|m| {
                !m.is_incoming()
                    && m.sender_kind != Some(SenderKind::Contact)
                    && fingerprint(&m.content) == wanted
            })
            .collect();
        candidates.sort_by_key(|m| std::cmp::Reverse(m.id));
        for message in candidates {
            let posted_before = self.is_remembered_message(message.id).await?;
            if !posted_before && self.links.message(message.id).await?.is_none() {
                return Ok(Some(message));
            }
        }
        Ok(None)
    }

    async fn post_reply(
        &self,
        conversation_id: u64,
        followup: i64,
        interrupted: bool,
        text: &str,
        can_reply: bool,
    ) -> SyncResult<()> {
        // An earlier attempt may have posted it before the crash: adopt it.
        if interrupted {
            let posted = self.unclaimed_copy(conversation_id, text).await?;
            if let Some(posted) = posted {
                self.remember_message(posted.id).await?;
                // As after a post: known by its id, the text is forgotten.
                self.forget_message_text(conversation_id, text).await?;
                self.links
                    .put_reply(
                        followup,
                        Some(posted.id),
                        json!({"conversation": conversation_id}),
                    )
                    .await?;
                return Ok(());
            }
        }
        self.links
            .put_reply(followup, None, json!({"conversation": conversation_id}))
            .await?;
        self.remember_message_text(conversation_id, text).await?;
        let marker = format!("{SOURCE_ID_PREFIX}followup:{followup}");
        let posted = self
            .post_to_conversation(conversation_id, text, marker, can_reply)
            .await?;
        self.remember_message(posted.id).await?;
        self.forget_message_text(conversation_id, text).await?;
        self.links
            .put_reply(
                followup,
                Some(posted.id),
                json!({"conversation": conversation_id}),
            )
            .await?;
        tracing::debug!(source = %self.name, conversation = conversation_id, followup, message = posted.id, "reply copied to Chatwoot");
        Ok(())
    }
}
