//! Reconciliation. Chatwoot never retries a webhook, so a sweep lists the
//! conversations updated within the window (one request) and enqueues a
//! repair job per conversation, in that conversation's order. A repair
//! creates a missing ticket, copies messages that have no followup yet and
//! corrects status drift.

use store::NewJob;

use crate::error::SyncResult;
use crate::jobs::repair_job;
use crate::source::SourceSync;

impl SourceSync {
    /// One sweep: the repair jobs to enqueue.
    pub(crate) async fn sweep_once(&self) -> SyncResult<Vec<NewJob>> {
        let conversations = self
            .chatwoot
            .conversations_updated_within(self.settings.reconcile_window, None)
            .await?;
        Ok(conversations
            .iter()
            .filter(|c| self.allows_inbox(c.inbox_id))
            .map(|c| repair_job(&self.name, self.target(), c.id))
            .collect())
    }

    /// Repairs one conversation from what the API says now.
    pub(crate) async fn repair(&self, conversation_id: u64) -> SyncResult<()> {
        let conversation = self.chatwoot.get_conversation(conversation_id).await?;
        if !self.allows_inbox(conversation.inbox_id) {
            return Ok(());
        }
        let existing = self.links.ticket(conversation_id).await?;
        let Some(link) = existing.filter(|l| l.linked) else {
            // ensure_ticket copies the backlog itself.
            self.ensure_ticket(conversation_id, Some(&conversation))
                .await?;
            return Ok(());
        };
        let link = self.finish_ticket(conversation_id, link).await?;
        let messages = self.all_messages(conversation_id).await?;
        self.copy_backlog(&link, &messages).await?;
        self.on_conversation_status(&conversation).await
    }
}
