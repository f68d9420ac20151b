//! Conversation status → ticket status: resolved → solved (with the
//! solution text), open again → in progress (GLPI 2), pending or snoozed →
//! waiting (GLPI 4). The status the ticket reflects is stored, so a webhook
//! repeating it (conversation_status_changed carries no diff, and the
//! bridge's own status changes echo back) writes nothing.

use chatwoot::{Conversation, ConversationStatus};
use config::sources::ClosedTicketPolicy;
use flows::helpdesk::{HelpdeskError, TicketStatus};

use crate::error::SyncResult;
use crate::source::SourceSync;

impl SourceSync {
    pub(crate) async fn on_conversation_status(
        &self,
        conversation: &Conversation,
    ) -> SyncResult<()> {
        let Some(status) = conversation.status else {
            return Ok(());
        };
        self.apply_status_as_of(conversation.id, status, conversation.updated_at_seconds())
            .await
    }

    pub(crate) async fn apply_status(
        &self,
        conversation_id: u64,
        status: ConversationStatus,
    ) -> SyncResult<()> {
        self.apply_status_as_of(conversation_id, status, None).await
    }

    /// [`SourceSync::apply_status`] for a status the conversation had at
    /// `as_of` (its `updated_at`): older than the newest one applied, it is
    /// a late delivery and changes nothing.
    async fn apply_status_as_of(
        &self,
        conversation_id: u64,
        status: ConversationStatus,
        as_of: Option<f64>,
    ) -> SyncResult<()> {
        let Some(link) = self.links.ticket(conversation_id).await? else {
            return Ok(());
        };
        let Some(ticket) = link.ticket() else {
            return Ok(());
        };
        if status == ConversationStatus::Unknown {
            return Ok(());
        }
        let newest = link.state.status_event_at;
        if let (Some(as_of), Some(newest)) = (as_of, newest)
            && as_of < newest
        {
            tracing::debug!(source = %self.name, conversation = conversation_id, ticket,
                status = status.as_str(), "a status older than the one applied; ignored");
            return Ok(());
        }
        let newer = as_of.filter(|at| newest.is_none_or(|n| *at > n));
        if link.state.conversation_status.as_deref() == Some(status.as_str()) {
            // Nothing to change; a newer time still guards against older
            // events still on their way.
            if let Some(at) = newer {
                let mut state = link.state.clone();
                state.status_event_at = Some(at);
                self.links
                    .put_ticket(conversation_id, Some(ticket), &state)
                    .await?;
            }
            return Ok(());
        }
        let Some(current) = self.helpdesk.ticket(ticket).await?.map(|t| t.status) else {
            // Purged in the target: nothing to mirror; the customer's next
            // message follows the closed-ticket policy.
            return Ok(());
        };
        let wanted = match status {
            ConversationStatus::Resolved if current.is_open() => Some(TicketStatus::Solved),
            ConversationStatus::Open => match current {
                TicketStatus::Solved | TicketStatus::Waiting => Some(TicketStatus::Assigned),
                TicketStatus::Closed
                    if self.settings.closed_ticket_policy == ClosedTicketPolicy::Reopen =>
                {
                    Some(TicketStatus::Assigned)
                }
                _ => None,
            },
            ConversationStatus::Pending | ConversationStatus::Snoozed
                if current.is_open() && current != TicketStatus::Waiting =>
            {
                Some(TicketStatus::Waiting)
            }
            _ => None,
        };
        let mut state = link.state.clone();
        state.ticket_status = Some(current);
        if let Some(wanted) = wanted {
            let note =
                (wanted == TicketStatus::Solved).then_some(self.settings.solution_text.as_str());
            if let Some(note) = note {
                // The poller must not post the bridge's own solution back.
                self.store
                    .remember_write(
                        &format!("target:{}", self.helpdesk.name()),
                        &format!("solution:{ticket}"),
                        &crate::text::fingerprint(note),
                    )
                    .await?;
            }
            match self.helpdesk.set_status(ticket, wanted, note).await {
                Ok(()) => {
                    state.ticket_status = Some(wanted);
                    // The ticket now follows the conversation: nothing of this
                    // change is left to mirror back (and a later solve in the
                    // target is a change again).
                    state.mirrored_ticket_status = Some(wanted);
                    tracing::info!(source = %self.name, conversation = conversation_id, ticket, status = wanted.as_word(), "ticket status changed");
                }
                // A closed ticket the help desk will not reopen (iTop): it
                // stays closed, and the customer's next message follows the
                // fallback of the reopen policy (a new ticket).
                Err(HelpdeskError::Refused { reason, .. }) if current == TicketStatus::Closed => {
                    tracing::info!(source = %self.name, conversation = conversation_id, ticket,
                        %reason, "the closed ticket cannot be reopened");
                }
                Err(error) => return Err(error.into()),
            }
        }
        state.conversation_status = Some(status.as_str().to_owned());
        if let Some(at) = newer {
            state.status_event_at = Some(at);
        }
        self.links
            .put_ticket(conversation_id, Some(ticket), &state)
            .await?;
        Ok(())
    }
}
