//! One configured intake source at run time: its settings, its target and
//! the caches that make a warm request cost one call to the target.

use std::sync::Arc;
use std::time::Duration;

use config::sources::{IntakeSource, UnknownTaxIdPolicy};
use flows::claims::PersonClaims;
use flows::helpdesk::{Category, Helpdesk, HelpdeskResult};
use flows::identity::{
    Caller, OrganisationChoice, OrganisationHint, OrganisationResolver, RequesterPolicy,
    ResolveError, ResolvedRequester, UnknownTaxId, resolve_requester,
};

use crate::request::{CategoryRef, Rules, ValidRequest};

/// A configured intake source, ready to serve.
pub struct Source {
    pub name: String,
    pub settings: IntakeSource,
    pub helpdesk: Arc<dyn Helpdesk>,
    organisations: OrganisationResolver,
    /// Who is creating which requester, across processes.
    claims: PersonClaims,
    requesters: moka::future::Cache<String, ResolvedRequester>,
    categories: moka::future::Cache<String, Option<Category>>,
}

/// What the request path learned about the organisation before accepting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Precheck {
    /// Nothing to check (no tax id, or the policy is `use_default`).
    NotNeeded,
    Found(i64),
    /// The tax id matched nothing and the policy is reject: answer 404.
    NotFound,
    /// The target did not answer in time: accept, the job decides.
    Unknown,
}

impl Source {
    pub fn new(
        name: &str,
        settings: IntakeSource,
        helpdesk: Arc<dyn Helpdesk>,
        claims: PersonClaims,
    ) -> Self {
        let ttl = settings.cache_ttl;
        Source {
            name: name.to_string(),
            organisations: OrganisationResolver::new(helpdesk.clone(), ttl),
            claims,
            requesters: moka::future::Cache::builder()
                .max_capacity(50_000)
                .time_to_live(ttl)
                .build(),
            categories: moka::future::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(ttl)
                .build(),
            settings,
            helpdesk,
        }
    }

    /// Validation limits from the settings.
    pub fn rules(&self) -> Rules {
        Rules {
            default_country: self.settings.default_country.clone(),
            max_attachment_bytes: self.settings.max_attachment_bytes,
            max_attachments: self.settings.max_attachments,
        }
    }

    fn policy(&self) -> UnknownTaxId {
        match self.settings.unknown_tax_id {
            UnknownTaxIdPolicy::Reject => UnknownTaxId::Reject,
            UnknownTaxIdPolicy::UseDefault => UnknownTaxId::UseDefault,
        }
    }

    /// On the request path, with the policy `reject`: is the tax id known?
    /// Uses the shared cache; gives up after `budget`.
    pub async fn precheck(&self, request: &ValidRequest, budget: Duration) -> Precheck {
        let Some(tax_id) = &request.tax_id else {
            return Precheck::NotNeeded;
        };
        if self.policy() != UnknownTaxId::Reject {
            return Precheck::NotNeeded;
        }
        match tokio::time::timeout(budget, self.organisations.by_tax_id(tax_id)).await {
            Ok(Ok(Some(org))) => Precheck::Found(org.id),
            Ok(Ok(None)) => Precheck::NotFound,
            Ok(Err(error)) => {
                tracing::warn!(source = %self.name, %error, "tax id check failed; accepting");
                Precheck::Unknown
            }
            Err(_) => Precheck::Unknown,
        }
    }

    /// The precheck when it needs neither the target nor the store: no tax
    /// id, the policy `use_default`, or a tax id the cache knows to exist.
    /// `None` otherwise (a cache miss, or a tax id known to match nothing,
    /// which a repeat of an accepted request must not be refused for).
    pub async fn precheck_cached(&self, request: &ValidRequest) -> Option<Precheck> {
        let Some(tax_id) = &request.tax_id else {
            return Some(Precheck::NotNeeded);
        };
        if self.policy() != UnknownTaxId::Reject {
            return Some(Precheck::NotNeeded);
        }
        match self.organisations.cached_by_tax_id(tax_id).await {
            Some(Some(org)) => Some(Precheck::Found(org.id)),
            _ => None,
        }
    }

    /// Organisation of the ticket under the source's rules.
    pub async fn organisation(&self, request: &ValidRequest) -> HelpdeskResult<OrganisationChoice> {
        let hint = OrganisationHint {
            tax_id: request.tax_id.clone(),
            id: request.entity_id,
        };
        self.organisations
            .choose(&hint, self.settings.default_entity, self.policy())
            .await
    }

    /// The requester, cached by email and phone. A requester another job is
    /// creating at this moment is a retryable error (`Claim(Busy)`): the
    /// retry finds the person that job made.
    pub async fn requester(
        &self,
        request: &ValidRequest,
        organisation: Option<i64>,
    ) -> Result<Option<ResolvedRequester>, ResolveError> {
        let key = format!(
            "{}|{}",
            request.email.as_deref().unwrap_or(""),
            request.phone.as_deref().unwrap_or("")
        );
        if let Some(hit) = self.requesters.get(&key).await {
            return Ok(Some(hit));
        }
        let caller = Caller {
            name: request.name.clone(),
            email: request.email.clone(),
            phone: request.phone.clone(),
        };
        let policy = RequesterPolicy {
            create_missing: self.settings.create_requesters,
            contact_when_phone_only: false,
        };
        let resolved = resolve_requester(
            self.helpdesk.as_ref(),
            &self.claims,
            &caller,
            organisation,
            policy,
        )
        .await?;
        if let Some(found) = &resolved {
            let mut found = found.clone();
            found.created = false;
            self.requesters.insert(key, found).await;
        }
        Ok(resolved)
    }

    /// The category: an id as given (taken to fit any ticket), a name looked
    /// up (cached, misses too).
    pub async fn category(&self, category: &CategoryRef) -> HelpdeskResult<Option<Category>> {
        match category {
            CategoryRef::Id(id) => Ok(Some(Category::any_kind(*id))),
            CategoryRef::Name(name) => {
                let key = name.to_lowercase();
                if let Some(hit) = self.categories.get(&key).await {
                    return Ok(hit);
                }
                let found = self.helpdesk.find_category(name).await?;
                self.categories.insert(key, found).await;
                Ok(found)
            }
        }
    }

    /// The outcome of a request whose ticket is `ticket_id`, called
    /// `reference` by the help desk's users.
    pub fn created(&self, ticket_id: i64, reference: &str) -> crate::RequestOutcome {
        let url = self.helpdesk.ticket_url(ticket_id);
        crate::RequestOutcome::Created {
            source: self.name.clone(),
            ticket_id,
            ticket_ref: reference.to_string(),
            message: crate::content::message(
                &self.settings.message_template,
                ticket_id,
                reference,
                &url,
            ),
            url,
        }
    }

    /// The reference of ticket `id` as stored in a link's data (`ref`),
    /// else as the id gives it (GLPI), else as the target says (an iTop
    /// ticket linked by an earlier version); the id when nothing answers.
    pub async fn reference(&self, id: i64, link_data: &serde_json::Value) -> String {
        if let Some(stored) = link_data
            .get("ref")
            .and_then(serde_json::Value::as_str)
            .filter(|r| !r.is_empty())
        {
            return stored.to_string();
        }
        if let Some(known) = self.helpdesk.reference_of_id(id) {
            return known;
        }
        match self.helpdesk.ticket(id).await {
            Ok(Some(ticket)) if !ticket.reference.is_empty() => ticket.reference,
            _ => id.to_string(),
        }
    }

    /// The default category when the request has none.
    pub fn default_category(&self) -> Option<CategoryRef> {
        self.settings
            .default_category
            .as_deref()
            .map(|c| match c.trim().parse::<i64>() {
                Ok(id) if id > 0 => CategoryRef::Id(id),
                _ => CategoryRef::Name(c.trim().to_string()),
            })
    }
}
