//! One configured messaging source, ready to use: its settings, its target
//! and the caches and signer that go with them.

use crate::callback::CallbackSigner;
use crate::error::MessagingError;
use config::sources::{MessagingSource, OpenOn};
use flows::helpdesk::{Helpdesk, TicketStatus};
use flows::identity::{OrganisationResolver, ResolvedRequester};
use std::sync::Arc;
use std::time::Duration;

/// How long organisation lookups by tax id are cached.
const ORGANISATION_TTL: Duration = Duration::from_secs(300);
/// How long the person found (or created) for a phone/email is reused
/// without asking the target again.
const REQUESTER_TTL: Duration = Duration::from_secs(300);

/// A messaging source with everything its jobs need.
pub struct Channel {
    pub name: String,
    pub settings: MessagingSource,
    pub helpdesk: Arc<dyn Helpdesk>,
    pub organisations: OrganisationResolver,
    pub signer: Option<CallbackSigner>,
    statuses: moka::future::Cache<i64, TicketStatus>,
    requesters: moka::future::Cache<String, ResolvedRequester>,
}

impl Channel {
    pub fn new(
        name: &str,
        settings: MessagingSource,
        helpdesk: Arc<dyn Helpdesk>,
    ) -> Result<Channel, MessagingError> {
        let signer = match &settings.callback_secret {
            Some(secret) => {
                Some(
                    CallbackSigner::new(secret).ok_or_else(|| MessagingError::BadSecret {
                        source_name: name.to_owned(),
                    })?,
                )
            }
            None => None,
        };
        let statuses = moka::future::Cache::builder()
            .max_capacity(100_000)
            .time_to_live(settings.status_ttl.max(Duration::from_millis(1)))
            .build();
        let requesters = moka::future::Cache::builder()
            .max_capacity(100_000)
            .time_to_live(REQUESTER_TTL)
            .build();
        Ok(Channel {
            name: name.to_owned(),
            requesters,
            organisations: OrganisationResolver::new(helpdesk.clone(), ORGANISATION_TTL),
            helpdesk,
            settings,
            signer,
            statuses,
        })
    }

    pub fn target(&self) -> &str {
        &self.settings.target
    }

    pub fn opens_on_first_message(&self) -> bool {
        self.settings.open_on == OpenOn::FirstMessage
    }

    /// The status of a ticket: from the short cache, else from the target.
    /// `None` when the ticket is gone.
    pub async fn ticket_status(&self, id: i64) -> Result<Option<TicketStatus>, MessagingError> {
        if let Some(status) = self.statuses.get(&id).await {
            return Ok(Some(status));
        }
        let status = self.helpdesk.ticket(id).await?.map(|t| t.status);
        if let Some(status) = status {
            self.statuses.insert(id, status).await;
        }
        Ok(status)
    }

    /// The cached status only (no network call), for the request path.
    pub async fn cached_status(&self, id: i64) -> Option<TicketStatus> {
        self.statuses.get(&id).await
    }

    /// Remembers a status just learnt (a ticket just created is open).
    pub async fn remember_status(&self, id: i64, status: TicketStatus) {
        self.statuses.insert(id, status).await;
    }

    /// The requester resolved recently for this caller key, if any.
    pub async fn cached_requester(&self, key: &str) -> Option<ResolvedRequester> {
        self.requesters.get(key).await
    }

    /// Remembers the person resolved for a caller key (only people with a
    /// record: email-only requesters are not cached).
    pub async fn remember_requester(&self, key: String, resolved: &ResolvedRequester) {
        if resolved.person.is_some() {
            let reused = ResolvedRequester {
                created: false,
                ..resolved.clone()
            };
            self.requesters.insert(key, reused).await;
        }
    }
}
