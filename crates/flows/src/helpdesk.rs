//! The help-desk interface every flow writes to.
//!
//! GLPI and iTop both keep tickets, the people who ask for them, the
//! organisations those people belong to and a thread of replies. A flow talks
//! to that shape through [`Helpdesk`] and never to a vendor API, so any source
//! (intake API, messaging channel, Chatwoot) can feed either target.
//!
//! Ids are the target's own numeric ids. Texts handed in are plain text or
//! simple HTML; an adapter encodes them the way its system stores them and
//! decodes what it reads back, so flows never see `&lt;p&gt;`.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Where a ticket stands, in words every target can map to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TicketStatus {
    New,
    Assigned,
    Planned,
    Waiting,
    Solved,
    Closed,
}

impl TicketStatus {
    /// Open means someone still has to act: not solved, not closed.
    pub fn is_open(self) -> bool {
        !matches!(self, TicketStatus::Solved | TicketStatus::Closed)
    }

    /// The word shown to callers ("new", "assigned", ...).
    pub fn as_word(self) -> &'static str {
        match self {
            TicketStatus::New => "new",
            TicketStatus::Assigned => "assigned",
            TicketStatus::Planned => "planned",
            TicketStatus::Waiting => "waiting",
            TicketStatus::Solved => "solved",
            TicketStatus::Closed => "closed",
        }
    }

    /// GLPI's numeric status (1 new .. 6 closed).
    pub fn from_glpi(code: i64) -> Option<TicketStatus> {
        Some(match code {
            1 => TicketStatus::New,
            2 => TicketStatus::Assigned,
            3 => TicketStatus::Planned,
            4 => TicketStatus::Waiting,
            5 => TicketStatus::Solved,
            6 => TicketStatus::Closed,
            _ => return None,
        })
    }

    /// GLPI's numeric status for this state.
    pub fn to_glpi(self) -> i64 {
        match self {
            TicketStatus::New => 1,
            TicketStatus::Assigned => 2,
            TicketStatus::Planned => 3,
            TicketStatus::Waiting => 4,
            TicketStatus::Solved => 5,
            TicketStatus::Closed => 6,
        }
    }
}

/// Incident or request, the two ticket types GLPI knows (iTop: UserRequest
/// `request_type` incident / service_request).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TicketKind {
    #[default]
    Incident,
    Request,
}

/// An organisation (GLPI entity, iTop Organization).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Organisation {
    pub id: i64,
    pub name: String,
}

/// Whether a person can log in (GLPI User, iTop Person) or is only an
/// address-book entry (GLPI Contact).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PersonKind {
    #[default]
    User,
    Contact,
}

/// Someone known to the help desk.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    pub id: i64,
    pub kind: PersonKind,
    pub name: String,
    pub email: Option<String>,
    /// The organisation the person belongs to by default, when the target says.
    pub organisation: Option<i64>,
}

/// How to look a person up. Phones are E.164 (`+5511987654321`); adapters
/// match them against every phone field their system has.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PersonQuery {
    pub email: Option<String>,
    pub phone: Option<String>,
}

/// A person to create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewPerson {
    pub kind: PersonKind,
    pub name: String,
    pub email: Option<String>,
    /// E.164.
    pub phone: Option<String>,
    pub organisation: Option<i64>,
}

/// Who asked for the ticket. A ticket always has one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Requester {
    Person {
        id: i64,
        kind: PersonKind,
    },
    /// Not in the directory: GLPI keeps the address on the ticket
    /// (`_users_id_requester_notif`), iTop needs a person and the adapter
    /// refuses with [`HelpdeskError::Refused`].
    EmailOnly {
        email: String,
        name: Option<String>,
    },
}

/// A category and the kinds of ticket it takes (GLPI lets an ITIL category
/// be for incidents only, or requests only; since 10.0.17 it drops a category
/// that does not take the ticket's type, silently).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Category {
    pub id: i64,
    pub incidents: bool,
    pub requests: bool,
}

impl Category {
    /// A category that takes every kind of ticket.
    pub fn any_kind(id: i64) -> Self {
        Category {
            id,
            incidents: true,
            requests: true,
        }
    }

    pub fn takes(&self, kind: TicketKind) -> bool {
        match kind {
            TicketKind::Incident => self.incidents,
            TicketKind::Request => self.requests,
        }
    }
}

/// A file to attach.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attachment {
    pub filename: String,
    pub mime: String,
    pub bytes: Vec<u8>,
}

/// A ticket to create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewTicket {
    pub organisation: Option<i64>,
    pub title: String,
    /// Simple HTML (paragraphs, line breaks, tables) or plain text.
    pub content: String,
    pub requester: Requester,
    pub category: Option<i64>,
    /// 1 (very low) .. 5 (very high).
    pub urgency: Option<u8>,
    pub kind: TicketKind,
    pub request_type: Option<i64>,
    pub assignee: Option<i64>,
    /// A reference the bridge writes into the ticket so a retry after a crash
    /// finds the ticket instead of creating a second one. Adapters store it
    /// where [`Helpdesk::find_ticket_by_marker`] can search it.
    pub marker: String,
    pub attachments: Vec<Attachment>,
}

/// A reply or note on a ticket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Followup {
    /// Unique across the target's tickets.
    pub id: i64,
    /// The id an earlier version gave this followup when it differs (iTop
    /// numbered case-log entries per ticket, so such an id names an entry
    /// of some ticket only): links stored then are found with it, together
    /// with the ticket or conversation they recorded.
    #[serde(default)]
    pub legacy_id: Option<i64>,
    /// Decoded text (HTML entities already resolved).
    pub content: String,
    pub private: bool,
    pub author: Option<i64>,
    /// As the target reports it (`YYYY-MM-DD HH:MM:SS` for GLPI and iTop).
    pub created_at: String,
}

/// A reply or note to add.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewFollowup {
    pub content: String,
    pub private: bool,
    /// Written on behalf of this person when the target allows it.
    pub author: Option<i64>,
    pub attachments: Vec<Attachment>,
}

/// A ticket as the target stores it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    /// The target's numeric id (what the APIs and links use).
    pub id: i64,
    /// What the help desk's users call the ticket: GLPI its id ("7"), iTop
    /// its `ref` ("R-000004", which differs from the id). Shown to people
    /// through [`display_reference`].
    #[serde(default)]
    pub reference: String,
    pub title: String,
    pub status: TicketStatus,
    pub organisation: Option<i64>,
    /// As the target reports it (`YYYY-MM-DD HH:MM:SS`).
    pub updated_at: String,
    pub url: String,
}

/// Sorts `tickets` newest first: the last changed, then the highest id. Both
/// targets write `updated_at` as `YYYY-MM-DD HH:MM:SS`, which sorts as text.
/// For lists merged from several searches (a person's tickets and an email
/// address's), each sorted on its own.
pub fn sort_newest_first(tickets: &mut [Ticket]) {
    tickets.sort_by(|a, b| {
        b.updated_at
            .cmp(&a.updated_at)
            .then_with(|| b.id.cmp(&a.id))
    });
}

/// A ticket just created: its id and its reference (see [`Ticket::reference`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreatedTicket {
    pub id: i64,
    pub reference: String,
}

/// A reference as people read it: a bare number gets a `#` ("#7", as GLPI
/// tickets are named), anything else is kept ("R-000004").
pub fn display_reference(reference: &str) -> String {
    if !reference.is_empty() && reference.chars().all(|c| c.is_ascii_digit()) {
        format!("#{reference}")
    } else {
        reference.to_string()
    }
}

/// A failure talking to a help desk, saying whether trying again can help.
#[derive(Debug, thiserror::Error)]
pub enum HelpdeskError {
    /// Network trouble, a 5xx, a lock, an expired session that could not be
    /// renewed: the same call may succeed later.
    #[error("{target} is unavailable: {reason}")]
    Unavailable {
        target: String,
        reason: String,
        retry_after: Option<Duration>,
    },
    /// The target understood and said no (bad field, missing right, unknown
    /// category): retrying the same call cannot help.
    #[error("{target} refused: {reason}")]
    Refused { target: String, reason: String },
    /// The target failed for reasons of its own, not because of what was
    /// asked: credentials or API access refused (a rotated token, an IP not
    /// allowed, the API disabled), an answer that cannot be read (a proxy's
    /// error page, an answer over the size limit), a setting that cannot
    /// work. Retrying at once cannot help; the same call may succeed once an
    /// operator has fixed the target or the bridge's settings.
    #[error("{target} failed: {reason}")]
    Failed { target: String, reason: String },
    /// The object asked for does not exist (or is not visible).
    #[error("{target}: {what} not found")]
    NotFound { target: String, what: String },
}

impl HelpdeskError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, HelpdeskError::Unavailable { .. })
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            HelpdeskError::Unavailable { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// How long a background job waits after the target failed for reasons of
/// its own ([`HelpdeskError::Failed`]) before it tries again.
pub const TARGET_FAILED_RETRY: Duration = Duration::from_secs(300);

impl From<HelpdeskError> for engine::JobError {
    /// A job's view: the target's own failure (a rotated token, a proxy page)
    /// waits [`TARGET_FAILED_RETRY`] and tries again within the job's attempt
    /// limit, so background work queued meanwhile survives until an operator
    /// has fixed the target or the settings. (Intake answers its waiting
    /// caller at once instead: see its own mapping.)
    fn from(err: HelpdeskError) -> Self {
        let reason = err.to_string();
        match err {
            HelpdeskError::Unavailable { retry_after, .. } => engine::JobError::Transient {
                reason,
                retry_after,
            },
            HelpdeskError::Failed { .. } => engine::JobError::Transient {
                reason,
                retry_after: Some(TARGET_FAILED_RETRY),
            },
            HelpdeskError::Refused { .. } | HelpdeskError::NotFound { .. } => {
                engine::JobError::Permanent { reason }
            }
        }
    }
}

pub type HelpdeskResult<T> = Result<T, HelpdeskError>;

/// Most tickets [`Helpdesk::tickets_of_email`] returns (each one is read).
pub const EMAIL_TICKETS_MAX: usize = 50;

/// What GLPI and iTop both offer to the flows.
#[async_trait]
pub trait Helpdesk: Send + Sync + 'static {
    /// The configured target name (for logs, links and audit rows).
    fn name(&self) -> &str;

    /// The system kind: `"glpi"` or `"itop"`.
    fn system(&self) -> &'static str;

    /// The longest one call to the target may take before it fails (its
    /// client's request timeout): what a claim held across a call must outlive.
    fn call_timeout(&self) -> Duration {
        Duration::from_secs(30)
    }

    /// A link a person can open to see the ticket.
    fn ticket_url(&self, id: i64) -> String;

    /// The organisation whose tax-id field (CNPJ, ...) holds these digits.
    /// `digits` is already normalised to digits only; adapters compare the
    /// stored value digits-only too.
    async fn find_organisation_by_tax_id(
        &self,
        digits: &str,
    ) -> HelpdeskResult<Option<Organisation>>;

    async fn organisation(&self, id: i64) -> HelpdeskResult<Option<Organisation>>;

    /// A person by email first, then by phone (every phone field).
    async fn find_person(&self, query: &PersonQuery) -> HelpdeskResult<Option<Person>>;

    async fn create_person(&self, person: &NewPerson) -> HelpdeskResult<Person>;

    /// The category with this name (GLPI: complete name "Parent > Child" or
    /// own name; iTop: a service), with the kinds of ticket it takes. Of
    /// several with the name, one that takes every kind comes first.
    async fn find_category(&self, name: &str) -> HelpdeskResult<Option<Category>>;

    /// Creates the ticket and returns it as the target stored it (rules may
    /// have rewritten fields).
    async fn create_ticket(&self, ticket: &NewTicket) -> HelpdeskResult<Ticket>;

    /// Creates the ticket and returns only its id and reference, in as few
    /// requests as the target allows (GLPI: one, no read-back). For
    /// high-volume callers that only need those and the URL.
    async fn create_ticket_id(&self, ticket: &NewTicket) -> HelpdeskResult<CreatedTicket> {
        self.create_ticket(ticket).await.map(|t| CreatedTicket {
            id: t.id,
            reference: t.reference,
        })
    }

    /// The reference of ticket `id` when it follows from the id alone
    /// (GLPI: the id itself); None when only the target knows it (iTop).
    fn reference_of_id(&self, _id: i64) -> Option<String> {
        None
    }

    /// The ticket carrying this marker, if a previous attempt created it.
    async fn find_ticket_by_marker(&self, marker: &str) -> HelpdeskResult<Option<Ticket>>;

    /// The ticket, or `None` when it does not exist, is deleted, or the
    /// account cannot see it (a GLPI ticket moved to an entity out of its
    /// reach answers 403).
    async fn ticket(&self, id: i64) -> HelpdeskResult<Option<Ticket>>;

    /// Tickets where this person is a requester, newest first.
    async fn tickets_of(&self, person: &Person, open_only: bool) -> HelpdeskResult<Vec<Ticket>>;

    /// Tickets whose requester is this address with no record behind it
    /// (GLPI's email-only requesters), newest first, at most
    /// [`EMAIL_TICKETS_MAX`]. Targets without such requesters have none.
    async fn tickets_of_email(
        &self,
        _email: &str,
        _open_only: bool,
    ) -> HelpdeskResult<Vec<Ticket>> {
        Ok(Vec::new())
    }

    /// Adds a reply or note; returns its id.
    async fn add_followup(&self, ticket: i64, followup: &NewFollowup) -> HelpdeskResult<i64>;

    /// Replies and notes of a ticket, oldest first.
    async fn followups(&self, ticket: i64) -> HelpdeskResult<Vec<Followup>>;

    /// The solutions written on a ticket (GLPI's ITILSolution), oldest
    /// first, as public followups with their author. Targets that keep the
    /// solution elsewhere have none.
    async fn solutions(&self, _ticket: i64) -> HelpdeskResult<Vec<Followup>> {
        Ok(Vec::new())
    }

    /// Moves the ticket to `status`; `note` is the solution text when solving.
    async fn set_status(
        &self,
        ticket: i64,
        status: TicketStatus,
        note: Option<&str>,
    ) -> HelpdeskResult<()>;

    /// Tickets changed at or after `since` (target time format), in one
    /// request, oldest change first.
    async fn changed_since(&self, since: &str) -> HelpdeskResult<Vec<Ticket>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticket(id: i64, updated_at: &str) -> Ticket {
        Ticket {
            id,
            reference: id.to_string(),
            title: String::new(),
            status: TicketStatus::New,
            organisation: None,
            updated_at: updated_at.to_owned(),
            url: String::new(),
        }
    }

    #[test]
    fn merged_lists_sort_by_last_change_then_id() {
        let mut tickets = vec![
            ticket(3, "2026-01-02 10:00:00"),
            ticket(9, "2025-12-31 23:59:59"),
            ticket(1, "2026-01-02 10:00:01"),
            ticket(7, "2026-01-02 10:00:00"),
            ticket(5, ""),
        ];
        sort_newest_first(&mut tickets);
        let ids: Vec<i64> = tickets.iter().map(|t| t.id).collect();
        assert_eq!(ids, [1, 7, 3, 9, 5]);
    }
}
