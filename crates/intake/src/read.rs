//! Reads for bots and voice agents: a requester's tickets, one ticket.

use flows::helpdesk::PersonQuery;
use flows::identity::normalize_phone;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::request::valid_email;
use crate::{IntakeError, Source};

/// Whose tickets to list.
#[derive(Debug, Clone, Default)]
pub struct RequesterLookup {
    pub email: Option<String>,
    pub phone: Option<String>,
}

/// A ticket in a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TicketSummary {
    pub id: i64,
    /// What the help desk's users call it: GLPI the id, iTop the `ref`
    /// (`R-000004`).
    pub reference: String,
    pub title: String,
    /// new, assigned, planned, waiting, solved or closed.
    pub status: String,
    /// As the target reports it (`YYYY-MM-DD HH:MM:SS`).
    pub updated_at: String,
    pub url: String,
}

/// One ticket with its last public reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TicketDetail {
    pub id: i64,
    /// What the help desk's users call it: GLPI the id, iTop the `ref`
    /// (`R-000004`).
    pub reference: String,
    pub title: String,
    pub status: String,
    pub updated_at: String,
    pub url: String,
    /// The newest public followup (text), if any.
    pub last_public_followup: Option<FollowupView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FollowupView {
    /// The reply as plain text (line breaks kept, markup dropped).
    pub content: String,
    pub created_at: String,
}

/// Why a lookup could not run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct LookupError {
    pub field: &'static str,
    pub message: String,
}

impl RequesterLookup {
    /// Checks and normalises (phone to E.164 in the source's default country);
    /// every problem at once.
    pub fn normalised(&self, source: &Source) -> Result<PersonQuery, Vec<LookupError>> {
        let email = self
            .email
            .as_deref()
            .map(str::trim)
            .filter(|e| !e.is_empty());
        let phone = self
            .phone
            .as_deref()
            .map(str::trim)
            .filter(|p| !p.is_empty());
        if email.is_none() && phone.is_none() {
            return Err(vec![LookupError {
                field: "requester_phone",
                message: "give requester_phone or requester_email".into(),
            }]);
        }
        let mut problems = Vec::new();
        let email = match email {
            Some(e) if valid_email(e) => Some(e.to_lowercase()),
            Some(_) => {
                problems.push(LookupError {
                    field: "requester_email",
                    message: "is not a valid email address".into(),
                });
                None
            }
            None => None,
        };
        let phone = match phone {
            Some(p) => match normalize_phone(p, Some(&source.settings.default_country)) {
                Ok(phone) => Some(phone),
                Err(e) => {
                    problems.push(LookupError {
                        field: "requester_phone",
                        message: e.to_string(),
                    });
                    None
                }
            },
            None => None,
        };
        if problems.is_empty() {
            Ok(PersonQuery { email, phone })
        } else {
            Err(problems)
        }
    }
}

impl Source {
    /// The tickets of the person found by email, else phone, and those whose
    /// requester is the email address alone (GLPI's email-only requesters:
    /// `create_requesters = false`, a contact), newest (last changed) first;
    /// empty when nothing matches.
    pub async fn tickets_of(
        &self,
        query: &PersonQuery,
        open_only: bool,
    ) -> Result<Vec<TicketSummary>, IntakeError> {
        let person = self.helpdesk.find_person(query).await?;
        let mut tickets = match &person {
            Some(person) => self.helpdesk.tickets_of(person, open_only).await?,
            None => Vec::new(),
        };
        let email = query.email.clone().or_else(|| person.and_then(|p| p.email));
        if let Some(email) = email {
            for ticket in self.helpdesk.tickets_of_email(&email, open_only).await? {
                if !tickets.iter().any(|t| t.id == ticket.id) {
                    tickets.push(ticket);
                }
            }
        }
        flows::helpdesk::sort_newest_first(&mut tickets);
        Ok(tickets
            .into_iter()
            .map(|t| TicketSummary {
                id: t.id,
                reference: t.reference,
                title: t.title,
                status: t.status.as_word().to_string(),
                updated_at: t.updated_at,
                url: t.url,
            })
            .collect())
    }

    /// One ticket with its last public followup; `None` when it does not exist.
    pub async fn ticket(&self, id: i64) -> Result<Option<TicketDetail>, IntakeError> {
        let Some(ticket) = self.helpdesk.ticket(id).await? else {
            return Ok(None);
        };
        let followups = self.helpdesk.followups(id).await?;
        let last = followups
            .into_iter()
            .filter(|f| !f.private)
            .max_by_key(|f| f.id)
            .map(|f| FollowupView {
                // Plain text: a voice agent reads it aloud, a bot shows it.
                content: flows::text::html_to_text(&f.content),
                created_at: f.created_at,
            });
        Ok(Some(TicketDetail {
            id: ticket.id,
            reference: ticket.reference,
            title: ticket.title,
            status: ticket.status.as_word().to_string(),
            updated_at: ticket.updated_at,
            url: ticket.url,
            last_public_followup: last,
        }))
    }
}
