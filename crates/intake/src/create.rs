//! The `intake.create_ticket` job.

use std::sync::Arc;

use async_trait::async_trait;
use engine::{Handler, JobError};
use flows::claims::ClaimError;
use flows::helpdesk::{HelpdeskError, NewTicket};
use flows::identity::{OrganisationChoice, ResolveError};
use serde_json::json;
use sha2::{Digest, Sha256};
use store::{Job, LinkState, NewLink};

use crate::outcome::{FailureCode, RequestOutcome};
use crate::request::{Rejection, validate};
use crate::{HandedRequest, Intake, LINK_KIND, Source, content};

/// Creates the ticket of one accepted request. Idempotent: a repeat after
/// success does nothing, a repeat after a crash finds the ticket by marker.
pub struct CreateTicket {
    intake: Arc<Intake>,
}

impl CreateTicket {
    pub fn handler(intake: Arc<Intake>) -> Arc<dyn Handler> {
        Arc::new(CreateTicket { intake })
    }
}

/// The searchable reference written into the ticket: fixed length, derived
/// from the source and the request's dedupe key (Idempotency-Key or body hash).
pub fn marker(source: &str, dedupe_key: &str) -> String {
    let digest = Sha256::digest(format!("{source}\n{dedupe_key}").as_bytes());
    format!("ticketbridge-ref intake-{}", &hex::encode(digest)[..24])
}

/// A failure that ends the request.
struct Failure {
    code: FailureCode,
    reason: String,
}

fn failed(code: FailureCode, reason: impl Into<String>) -> Failure {
    Failure {
        code,
        reason: reason.into(),
    }
}

/// What went wrong inside one attempt.
enum Trouble {
    /// Ends the request (recorded as failed, job dead-lettered).
    Final(Failure),
    /// Worth another attempt.
    Retry(JobError),
}

impl From<HelpdeskError> for Trouble {
    fn from(error: HelpdeskError) -> Self {
        match error {
            HelpdeskError::Unavailable { .. } => Trouble::Retry(error.into()),
            // Credentials, access, an unreadable answer: the target's fault, not
            // the request's. Final for this attempt (an operator must act), and
            // the caller's resend starts the request again.
            HelpdeskError::Failed { .. } => {
                Trouble::Final(failed(FailureCode::TargetError, error.to_string()))
            }
            HelpdeskError::Refused { .. } | HelpdeskError::NotFound { .. } => {
                Trouble::Final(failed(FailureCode::Refused, error.to_string()))
            }
        }
    }
}

impl From<ResolveError> for Trouble {
    fn from(error: ResolveError) -> Self {
        match error {
            ResolveError::Helpdesk(error) => error.into(),
            // Someone else is creating the requester: the retry, in a second
            // or two, finds the person. The caller keeps waiting meanwhile.
            ResolveError::Claim(ClaimError::Busy) => Trouble::Retry(ClaimError::Busy.into()),
            ResolveError::Claim(ClaimError::Store(error)) => error.into(),
        }
    }
}

impl From<store::StoreError> for Trouble {
    fn from(error: store::StoreError) -> Self {
        Trouble::Retry(JobError::transient(error.to_string()))
    }
}

#[async_trait]
impl Handler for CreateTicket {
    async fn handle(&self, job: &Job) -> Result<(), JobError> {
        let Some(inbox_id) = job.inbox_id else {
            return Err(JobError::permanent("intake job without its request"));
        };
        let name = job
            .payload
            .get("source")
            .and_then(|s| s.as_str())
            .unwrap_or_default();
        let Some(source) = self.intake.source(name).cloned() else {
            return Err(JobError::permanent(format!(
                "intake source {name:?} is no longer configured"
            )));
        };
        let entity_hint = job.payload.get("entity").and_then(|e| e.as_i64());
        match self.attempt(&source, job, inbox_id, entity_hint).await {
            Ok(()) => Ok(()),
            Err(Trouble::Final(failure)) => {
                self.fail(&source, inbox_id, &failure).await?;
                Err(JobError::permanent(format!(
                    "{}: {}",
                    failure.code.as_str(),
                    failure.reason
                )))
            }
            Err(Trouble::Retry(error)) => {
                if job.attempts >= job.max_attempts {
                    let failure = failed(FailureCode::TargetUnavailable, error.reason());
                    self.fail(&source, inbox_id, &failure).await?;
                }
                Err(error)
            }
        }
    }
}

impl CreateTicket {
    async fn fail(
        &self,
        source: &Source,
        inbox_id: i64,
        failure: &Failure,
    ) -> Result<(), JobError> {
        tracing::warn!(source = %source.name, request = inbox_id, code = failure.code.as_str(),
            reason = %failure.reason, "intake request failed");
        let outcome = RequestOutcome::Failed {
            source: source.name.clone(),
            code: failure.code,
            reason: failure.reason.clone(),
        };
        self.intake
            .record_failure(inbox_id, &outcome)
            .await
            .map_err(|e| JobError::transient(e.to_string()))
    }

    /// The ticket exists and its `linked` link is stored: that link is the
    /// outcome; wake whoever waits for it.
    fn created(&self, source: &Source, inbox_id: i64, ticket_id: i64, reference: &str) {
        self.intake
            .wake(inbox_id, source.created(ticket_id, reference));
    }

    /// One attempt. On a job's first run nothing can have been created yet, so
    /// the only store write is the `linked` link after the ticket exists; any
    /// later run first looks for what an earlier one did: the link, else a
    /// ticket carrying the request's marker (an earlier run may have created it
    /// and died before the link was stored).
    async fn attempt(
        &self,
        source: &Source,
        job: &Job,
        inbox_id: i64,
        entity_hint: Option<i64>,
    ) -> Result<(), Trouble> {
        let first_run = job.is_first_run();
        let store = self.intake.store();
        // Accepted by this process: the route handed the request over.
        let inbox = match self.intake.handed(&job.ordering_key) {
            Some(handed) => handed,
            None => match store.inbox(inbox_id).await? {
                Some(inbox) => HandedRequest {
                    dedupe_key: inbox.dedupe_key,
                    body: inbox.body,
                },
                None => {
                    return Err(Trouble::Final(failed(
                        FailureCode::InvalidRequest,
                        "the stored request is gone",
                    )));
                }
            },
        };
        let request = validate(&inbox.body, &source.rules()).map_err(|rejection| {
            let detail = match &rejection {
                Rejection::Invalid(f) | Rejection::TooLarge(f) => f
                    .iter()
                    .map(|f| format!("{}: {}", f.field, f.message))
                    .collect::<Vec<_>>()
                    .join("; "),
            };
            Trouble::Final(failed(FailureCode::InvalidRequest, detail))
        })?;

        let source_system = format!("intake:{}", source.name);
        let target = source.settings.target.clone();
        let source_id = inbox_id.to_string();
        let marker = marker(&source.name, &inbox.dedupe_key);
        if !first_run {
            let linked = store
                .link(LINK_KIND, &source_system, &source_id, &target)
                .await?
                .filter(|link| link.state == LinkState::Linked)
                .and_then(|link| {
                    let id = link.target_id.and_then(|t| t.parse::<i64>().ok())?;
                    Some((id, link.data))
                });
            let ticket = match linked {
                Some((ticket_id, data)) => {
                    Some((ticket_id, source.reference(ticket_id, &data).await))
                }
                None => {
                    let found = source.helpdesk.find_ticket_by_marker(&marker).await?;
                    if let Some(ticket) = &found {
                        self.link(
                            &source_system,
                            &source_id,
                            &target,
                            ticket.id,
                            &ticket.reference,
                        )
                        .await?;
                    }
                    found.map(|ticket| (ticket.id, ticket.reference))
                }
            };
            if let Some((ticket_id, reference)) = ticket {
                self.created(source, inbox_id, ticket_id, &reference);
                return Ok(());
            }
        }

        let organisation = match entity_hint {
            Some(id) => Some(id),
            None => match source.organisation(&request).await? {
                OrganisationChoice::Found(id) => Some(id),
                OrganisationChoice::TargetDefault => None,
                OrganisationChoice::TaxIdNotFound(tax_id) => {
                    return Err(Trouble::Final(failed(
                        FailureCode::EntityNotFound,
                        format!("no organisation has the tax id {tax_id}"),
                    )));
                }
            },
        };
        let Some(requester) = source.requester(&request, organisation).await? else {
            return Err(Trouble::Final(failed(
                FailureCode::RequesterUnknown,
                "the phone matches nobody, the request has no email and creating requesters is off",
            )));
        };
        let category = match request
            .category
            .clone()
            .or_else(|| source.default_category())
        {
            None => None,
            Some(wanted) => match source.category(&wanted).await? {
                Some(found) if found.takes(request.kind) => Some(found.id),
                Some(_) => {
                    // GLPI would keep the ticket and drop the category (10.0.17
                    // and later) or keep a category the form would not offer:
                    // either way not what the caller asked for.
                    return Err(Trouble::Final(failed(
                        FailureCode::CategoryNotFound,
                        format!(
                            "the category {wanted:?} does not take {}s",
                            match request.kind {
                                flows::helpdesk::TicketKind::Incident => "incident",
                                flows::helpdesk::TicketKind::Request => "request",
                            }
                        ),
                    )));
                }
                None => {
                    return Err(Trouble::Final(failed(
                        FailureCode::CategoryNotFound,
                        format!("no category is named {wanted:?}"),
                    )));
                }
            },
        };

        let ticket = NewTicket {
            organisation,
            title: request.title.clone(),
            content: content::render(&request.description, &request.extra),
            requester: requester.requester,
            category,
            urgency: request.urgency,
            kind: request.kind,
            request_type: source.settings.request_type,
            assignee: None,
            marker,
            attachments: request.attachments,
        };
        let created = source.helpdesk.create_ticket_id(&ticket).await?;
        // The caller may have its answer now: the ticket exists. Should the link
        // not be stored (a crash, a store error), the next run finds the ticket
        // by its marker and links that same ticket. Nothing more goes to the
        // target, so the next request's job may have the slot.
        self.created(source, inbox_id, created.id, &created.reference);
        engine::release_slot();
        self.link(
            &source_system,
            &source_id,
            &target,
            created.id,
            &created.reference,
        )
        .await?;
        Ok(())
    }

    /// Store the request ↔ ticket link: the request's outcome from now on.
    async fn link(
        &self,
        source_system: &str,
        source_id: &str,
        target: &str,
        ticket_id: i64,
        reference: &str,
    ) -> Result<(), Trouble> {
        self.intake
            .store()
            .put_link(&NewLink {
                kind: LINK_KIND.to_string(),
                source_system: source_system.to_string(),
                source_id: source_id.to_string(),
                target_system: target.to_string(),
                target_id: Some(ticket_id.to_string()),
                state: LinkState::Linked,
                data: json!({"ref": reference}),
            })
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_fixed_length_and_distinct() {
        let a = marker("web", "key-1");
        let b = marker("web", "key-12");
        assert_eq!(a.len(), b.len());
        assert_ne!(a, b);
        assert!(!b.contains(&a));
        assert_eq!(a, marker("web", "key-1"));
    }
}
