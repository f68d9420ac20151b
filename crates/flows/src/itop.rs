//! [`Helpdesk`] over an iTop server, through the `itop` client crate.
//!
//! Tickets are `UserRequest`s; callers are `Person`s (found by email, then by
//! phone or mobile phone); organisations are `Organization`s (by id, or by a
//! tax-id attribute, `code` by default). Followups are case-log entries:
//! public ones in `public_log`, private ones in `private_log`. The marker of a
//! created ticket is a last paragraph of its description, found again with
//! `description LIKE`.

use crate::files;
use crate::helpdesk::{
    Attachment, Category, Followup, Helpdesk, HelpdeskError, HelpdeskResult, NewFollowup,
    NewPerson, NewTicket, Organisation, Person, PersonKind, PersonQuery, Requester, Ticket,
    TicketStatus,
};
use crate::identity::{PhoneChoice, best_phone_match, choose_by_phone, tax_id_digits};
use async_trait::async_trait;
use itop::{
    CaseLog, CaseLogEntry, ItopClient, ItopError, Key, NewAttachment, NewLogEntry, NewUserRequest,
    Stimulus, UserRequest, oql_quote,
};

/// Comment iTop records with every write the adapter makes.
const COMMENT: &str = "ticketbridge";
/// A case-log entry has no id of its own: a followup's id is its ticket's
/// id times this span plus the entry's position in its log, counted from 1
/// (public log) or from [`PRIVATE_FOLLOWUP_BASE`] + 1 (private log). Ticket
/// 42's first public entry is 420000001, its first private one 421000001:
/// ids are unique across tickets, as the [`Helpdesk`] interface promises
/// (links and own-write records are keyed by followup id alone).
pub const FOLLOWUP_ID_SPAN: i64 = 10_000_000;
/// Offset of private-log positions within a ticket's span.
pub const PRIVATE_FOLLOWUP_BASE: i64 = 1_000_000;
const TICKET_FIELDS: &str = "id,ref,title,status,org_id,last_update";

/// Settings of an iTop target that the client itself does not carry.
#[derive(Clone, Debug)]
pub struct ItopTargetOptions {
    /// Organization attribute holding the tax id (compared digits-only).
    pub tax_id_field: String,
    /// Web root for ticket links. Default: the REST URL without
    /// `webservices/rest.php`.
    pub web_url: Option<String>,
    /// Organisation of persons created without one.
    pub default_org: Option<u64>,
    /// `impact` of created UserRequests: "1" department, "2" group, "3" a
    /// person (default). iTop's own default is "1", which makes a very
    /// high urgency a critical priority for one person's problem.
    pub impact: String,
}

/// Impact of a ticket that one person asks for.
pub const IMPACT_PERSON: &str = "3";

impl Default for ItopTargetOptions {
    fn default() -> Self {
        ItopTargetOptions {
            tax_id_field: "code".to_string(),
            web_url: None,
            default_org: None,
            impact: IMPACT_PERSON.to_string(),
        }
    }
}

/// An iTop target seen through the [`Helpdesk`] interface.
#[derive(Clone)]
pub struct ItopHelpdesk {
    name: String,
    client: ItopClient,
    options: ItopTargetOptions,
    web_root: String,
    /// The Person behind each account seen as a case-log author (None: the
    /// account has no contact, or cannot be read).
    persons: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<u64, Option<i64>>>>,
}

/// iTop state → the shared status words.
pub fn status_of(code: &str) -> TicketStatus {
    match code {
        "assigned" | "escalated_ttr" => TicketStatus::Assigned,
        "pending" => TicketStatus::Waiting,
        "resolved" => TicketStatus::Solved,
        "closed" => TicketStatus::Closed,
        _ => TicketStatus::New,
    }
}

/// Sorts an iTop failure into "try again later" and "no".
pub fn itop_error(target: &str, err: ItopError) -> HelpdeskError {
    if err.is_retryable() {
        HelpdeskError::Unavailable {
            target: target.to_string(),
            reason: err.to_string(),
            retry_after: None,
        }
    } else if is_target_side(&err) {
        HelpdeskError::Failed {
            target: target.to_string(),
            reason: err.to_string(),
        }
    } else {
        HelpdeskError::Refused {
            target: target.to_string(),
            reason: err.to_string(),
        }
    }
}

/// A non-retryable iTop failure that is about iTop or the bridge's access to
/// it (credentials, REST profile, API version, an unreadable or oversized
/// answer, settings), not about what was asked.
fn is_target_side(err: &ItopError) -> bool {
    matches!(
        err,
        ItopError::Unauthorized { .. }
            | ItopError::MissingVersion { .. }
            | ItopError::MissingJson { .. }
            | ItopError::InvalidJson { .. }
            | ItopError::MissingAuthUser { .. }
            | ItopError::MissingAuthPwd { .. }
            | ItopError::UnsupportedVersion { .. }
            | ItopError::UnknownOperation { .. }
            | ItopError::Http { .. }
            | ItopError::ResponseTooLarge { .. }
            | ItopError::InvalidResponse(_)
            | ItopError::Config(_)
    )
}

/// 1 (very low) .. 5 (very high) → iTop urgency 4 (low) .. 1 (critical).
fn itop_urgency(urgency: u8) -> &'static str {
    match urgency {
        5 => "1",
        4 => "2",
        3 => "3",
        _ => "4",
    }
}

/// First name written when a name is one word (or none): iTop refuses a
/// Person without a first name, and a dash reads as "not given" in its lists.
pub const NO_FIRST_NAME: &str = "-";
/// Last name written when there is no name at all.
pub const NO_LAST_NAME: &str = "Unknown";

/// `(first_name, name)` of a Person: split on the first space ("Maria da
/// Silva" → "Maria", "da Silva"); one word (a first name, an email, a phone
/// number standing in for a name) is the last name, iTop's `name`, which its
/// lists show and sort by, with [`NO_FIRST_NAME`] as first name.
pub fn person_names(full: &str) -> (String, String) {
    let full = full.trim();
    match full.split_once(char::is_whitespace) {
        Some((first, last)) => (first.to_string(), last.trim().to_string()),
        None if full.is_empty() => (NO_FIRST_NAME.to_string(), NO_LAST_NAME.to_string()),
        None => (NO_FIRST_NAME.to_string(), full.to_string()),
    }
}

fn to_i64(id: u64) -> i64 {
    i64::try_from(id).unwrap_or(i64::MAX)
}

fn to_u64(id: i64) -> Option<u64> {
    u64::try_from(id).ok().filter(|id| *id > 0)
}

/// Escapes text that is not already HTML.
fn as_html(content: &str) -> String {
    let looks_like_html =
        content.contains("</") || content.contains("<br") || content.contains("<p");
    if looks_like_html {
        content.to_string()
    } else {
        format!(
            "<p>{}</p>",
            html_escape::encode_text(content)
                .split('\n')
                .collect::<Vec<_>>()
                .join("<br>")
        )
    }
}

/// The id that versions before ticket-wide ids gave the entry at
/// `position` (1-based) of a log: the position itself, plus
/// [`PRIVATE_FOLLOWUP_BASE`] in the private log. Always below
/// [`FOLLOWUP_ID_SPAN`], so it never equals a current id.
pub fn legacy_followup_id(private: bool, position: i64) -> i64 {
    if private {
        PRIVATE_FOLLOWUP_BASE.saturating_add(position)
    } else {
        position
    }
}

/// The id of the entry at `position` (1-based) of ticket `ticket`'s log.
pub fn followup_id(ticket: i64, private: bool, position: i64) -> i64 {
    ticket
        .saturating_mul(FOLLOWUP_ID_SPAN)
        .saturating_add(legacy_followup_id(private, position))
}

fn entry_followup(ticket: i64, index: usize, entry: &CaseLogEntry, private: bool) -> Followup {
    let position = i64::try_from(index).unwrap_or(i64::MAX - 1) + 1;
    Followup {
        id: followup_id(ticket, private, position),
        legacy_id: Some(legacy_followup_id(private, position)),
        content: entry.message.clone(),
        private,
        author: entry.user_id.map(to_i64),
        created_at: entry.date.clone(),
    }
}

impl ItopHelpdesk {
    pub fn new(name: impl Into<String>, client: ItopClient, options: ItopTargetOptions) -> Self {
        let web_root = options.web_url.clone().unwrap_or_else(|| {
            let endpoint = client.config().endpoint().to_string();
            endpoint
                .trim_end_matches("/webservices/rest.php")
                .to_string()
        });
        ItopHelpdesk {
            name: name.into(),
            client,
            options,
            web_root: web_root.trim_end_matches('/').to_string(),
            persons: std::sync::Arc::default(),
        }
    }

    /// The Person of account `user_id`, read once. Followup authors are people
    /// (as a ticket's requester is), while a case log names its accounts; an
    /// account that cannot be read (no right on User) yields no author, so
    /// no reply is ever mistaken for the requester's.
    async fn person_of_user(&self, user_id: u64) -> HelpdeskResult<Option<i64>> {
        let known = self
            .persons
            .lock()
            .ok()
            .and_then(|persons| persons.get(&user_id).copied());
        if let Some(person) = known {
            return Ok(person);
        }
        let person = match self.client.person_of_user(user_id).await {
            Ok(person) => person.map(to_i64),
            Err(error) if error.is_retryable() => return Err(self.error(error)),
            Err(error) => {
                tracing::debug!(target_name = %self.name, user_id, %error,
                    "cannot read a case-log author's account; its entries get no author");
                None
            }
        };
        if let Ok(mut persons) = self.persons.lock() {
            persons.insert(user_id, person);
        }
        Ok(person)
    }

    /// The name a followup written on behalf of Person `author` is labelled
    /// with in the case log (iTop shows `user_login` as the entry's author);
    /// None without an author or when the Person cannot be read.
    async fn author_label(&self, author: Option<i64>) -> HelpdeskResult<Option<String>> {
        let Some(person) = author.and_then(to_u64) else {
            return Ok(None);
        };
        match self.client.person(person).await {
            Ok(found) => Ok(found
                .map(|p| Self::person_from(&p).name)
                .filter(|name| !name.trim().is_empty())),
            Err(error) if error.is_retryable() => Err(self.error(error)),
            Err(error) => {
                tracing::debug!(target_name = %self.name, person, %error,
                    "the author of a followup cannot be read; the entry gets no label");
                Ok(None)
            }
        }
    }

    /// The client, for iTop-only work (attachments, stimuli with fields).
    pub fn client(&self) -> &ItopClient {
        &self.client
    }

    fn error(&self, err: ItopError) -> HelpdeskError {
        itop_error(&self.name, err)
    }

    /// Attach `files` to ticket `id` (of organisation `org`), which exists
    /// already: a file that cannot be added is named in a private log entry
    /// instead of failing the write (see [`files`]).
    async fn attach(&self, id: u64, org: u64, attachments: &[Attachment]) {
        let missing = files::attach_each(attachments, |attachment| async move {
            self.client
                .create_attachment(
                    &NewAttachment {
                        item_class: "UserRequest".into(),
                        item_id: id,
                        item_org_id: org,
                        filename: attachment.filename.clone(),
                        mimetype: attachment.mime.clone(),
                        data: attachment.bytes.clone(),
                    },
                    COMMENT,
                )
                .await
                .map(|_| ())
                .map_err(|e| self.error(e))
        })
        .await;
        if let Some(note) = files::missing_files_note(&missing)
            && let Err(error) = self.add_followup(to_i64(id), &note).await
        {
            tracing::warn!(ticket = id, %error, "the note about files not attached was not added");
        }
    }

    fn refused(&self, reason: impl Into<String>) -> HelpdeskError {
        HelpdeskError::Refused {
            target: self.name.clone(),
            reason: reason.into(),
        }
    }

    fn ticket_from(&self, o: &itop::ItopObject) -> Ticket {
        Ticket {
            id: to_i64(o.key),
            reference: o.text("ref"),
            title: o.text("title"),
            status: status_of(&o.text("status")),
            organisation: o.ext_key("org_id").map(to_i64),
            updated_at: o.text("last_update"),
            url: self.ticket_url(to_i64(o.key)),
        }
    }

    async fn tickets_where(&self, oql: String) -> HelpdeskResult<Vec<Ticket>> {
        let found = self
            .client
            .get("UserRequest", Key::Oql(oql), TICKET_FIELDS)
            .await
            .map_err(|e| self.error(e))?;
        Ok(found.iter().map(|o| self.ticket_from(o)).collect())
    }

    fn person_from(p: &itop::Person) -> Person {
        let name = if p.friendly_name.trim().is_empty() {
            format!("{} {}", p.first_name, p.last_name)
                .trim()
                .to_string()
        } else {
            p.friendly_name.clone()
        };
        Person {
            id: to_i64(p.id),
            kind: PersonKind::User,
            name,
            email: Some(p.email.clone()).filter(|e| !e.is_empty()),
            organisation: p.org_id.map(to_i64),
        }
    }

    async fn stimulus(&self, id: u64, stimulus: Stimulus) -> HelpdeskResult<UserRequest> {
        self.client
            .apply_user_request_stimulus(id, &stimulus, COMMENT)
            .await
            .map_err(|e| self.error(e))
    }

    /// `ev_assign` keeping the ticket's team and agent when it has them.
    async fn assign(&self, current: &UserRequest) -> HelpdeskResult<UserRequest> {
        let stimulus = match (current.team_id, current.agent_id) {
            (Some(team_id), Some(agent_id)) => Stimulus::Assign { team_id, agent_id },
            _ => Stimulus::Other {
                code: "ev_assign".into(),
                fields: serde_json::Map::new(),
            },
        };
        self.stimulus(current.id, stimulus).await
    }
}

#[async_trait]
impl Helpdesk for ItopHelpdesk {
    fn name(&self) -> &str {
        &self.name
    }

    fn system(&self) -> &'static str {
        "itop"
    }

    fn call_timeout(&self) -> std::time::Duration {
        self.client.config().timeout
    }

    fn ticket_url(&self, id: i64) -> String {
        format!(
            "{}/pages/UI.php?operation=details&class=UserRequest&id={id}",
            self.web_root
        )
    }

    async fn find_organisation_by_tax_id(
        &self,
        digits: &str,
    ) -> HelpdeskResult<Option<Organisation>> {
        let digits = tax_id_digits(digits);
        if digits.is_empty() {
            return Ok(None);
        }
        let field = &self.options.tax_id_field;
        let all = self
            .client
            .get(
                "Organization",
                Key::Oql(format!("SELECT Organization WHERE {field} != ''")),
                &format!("id,name,{field}"),
            )
            .await
            .map_err(|e| self.error(e))?;
        Ok(all
            .iter()
            .filter(|o| tax_id_digits(&o.text(field)) == digits)
            .min_by_key(|o| o.key)
            .map(|o| Organisation {
                id: to_i64(o.key),
                name: o.text("name"),
            }))
    }

    async fn organisation(&self, id: i64) -> HelpdeskResult<Option<Organisation>> {
        let Some(id) = to_u64(id) else {
            return Ok(None);
        };
        let org = self
            .client
            .organization(id)
            .await
            .map_err(|e| self.error(e))?;
        Ok(org.map(|o| Organisation {
            id: to_i64(o.id),
            name: o.name,
        }))
    }

    async fn find_person(&self, query: &PersonQuery) -> HelpdeskResult<Option<Person>> {
        if let Some(email) = query.email.as_deref().filter(|e| e.contains('@')) {
            let found = self
                .client
                .find_persons_by_email(email)
                .await
                .map_err(|e| self.error(e))?;
            // By id already: the oldest active Person with the address.
            if let Some(p) = found.iter().find(|p| p.active) {
                return Ok(Some(Self::person_from(p)));
            }
        }
        if let Some(phone) = query.phone.as_deref().filter(|p| !p.trim().is_empty()) {
            // iTop keeps numbers as typed: search on the last digits, compare all.
            let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
            if digits.len() >= 4 {
                let tail = &digits[digits.len() - 4..];
                let found = self
                    .client
                    .find_persons_by_phone(tail)
                    .await
                    .map_err(|e| self.error(e))?;
                let matching = |p: &&itop::Person| {
                    best_phone_match([p.phone.as_str(), p.mobile_phone.as_str()], phone)
                        .map(|m| (to_i64(p.id), m))
                };
                let inactive = found
                    .iter()
                    .filter(|p| !p.active)
                    .filter(|p| matching(p).is_some())
                    .count();
                let ranked = found
                    .iter()
                    .filter(|p| p.active)
                    .filter_map(|p| matching(&p));
                match choose_by_phone(ranked) {
                    PhoneChoice::One(id) => {
                        if let Some(p) = found.iter().find(|p| to_i64(p.id) == id) {
                            return Ok(Some(Self::person_from(p)));
                        }
                    }
                    PhoneChoice::Ambiguous(ids) => {
                        tracing::warn!(target_name = %self.name, persons = ?ids,
                            "several iTop persons have this phone only in part (no area or country code): none is chosen");
                    }
                    PhoneChoice::None if inactive > 0 => {
                        tracing::info!(target_name = %self.name, inactive,
                            "only inactive iTop persons have this phone: none is chosen");
                    }
                    PhoneChoice::None => {}
                }
            }
        }
        Ok(None)
    }

    async fn create_person(&self, person: &NewPerson) -> HelpdeskResult<Person> {
        let org_id = person
            .organisation
            .and_then(to_u64)
            .or(self.options.default_org)
            .ok_or_else(|| self.refused("an iTop Person needs an organisation"))?;
        let (first, last) = person_names(&person.name);
        let created = self
            .client
            .create_person(
                &itop::NewPerson {
                    first_name: first,
                    last_name: last,
                    org_id,
                    email: person.email.clone(),
                    phone: person.phone.clone(),
                    mobile_phone: None,
                },
                COMMENT,
            )
            .await
            .map_err(|e| self.error(e))?;
        Ok(Self::person_from(&created))
    }

    /// iTop has services rather than categories: the `Service` with this name.
    async fn find_category(&self, name: &str) -> HelpdeskResult<Option<Category>> {
        let found = self
            .client
            .get("Service", Key::criteria([("name", name)]), "id,name")
            .await
            .map_err(|e| self.error(e))?;
        Ok(found
            .iter()
            .map(|o| o.key)
            .min()
            .map(|id| Category::any_kind(to_i64(id))))
    }

    async fn create_ticket(&self, ticket: &NewTicket) -> HelpdeskResult<Ticket> {
        let caller = match &ticket.requester {
            Requester::Person { id, .. } => {
                to_u64(*id).ok_or_else(|| self.refused("invalid caller id"))?
            }
            Requester::EmailOnly { email, .. } => {
                return Err(self.refused(format!(
                    "iTop needs a Person as caller; {email} is not in the directory"
                )));
            }
        };
        let org = match ticket.organisation.and_then(to_u64) {
            Some(org) => org,
            None => self
                .client
                .person(caller)
                .await
                .map_err(|e| self.error(e))?
                .and_then(|p| p.org_id)
                .or(self.options.default_org)
                .ok_or_else(|| self.refused("no organisation for the ticket"))?,
        };
        let mut new = NewUserRequest::new(
            Key::Id(org),
            ticket.title.clone(),
            format!(
                "{}<p>{}</p>",
                as_html(&ticket.content),
                html_escape::encode_text(&ticket.marker)
            ),
        );
        new.caller = Some(Key::Id(caller));
        new.urgency = ticket.urgency.map(|u| itop_urgency(u).to_string());
        new.impact = Some(self.options.impact.clone());
        new.service = ticket.category.and_then(to_u64).map(Key::Id);
        new.agent = ticket.assignee.and_then(to_u64).map(Key::Id);
        let created = self
            .client
            .create_user_request(&new, COMMENT)
            .await
            .map_err(|e| self.error(e))?;
        self.attach(created.id, org, &ticket.attachments).await;
        Ok(Ticket {
            id: to_i64(created.id),
            reference: created.reference.clone(),
            title: created.title.clone(),
            status: status_of(&created.status),
            organisation: created.org_id.map(to_i64),
            updated_at: created.last_update.clone(),
            url: self.ticket_url(to_i64(created.id)),
        })
    }

    async fn find_ticket_by_marker(&self, marker: &str) -> HelpdeskResult<Option<Ticket>> {
        if marker.trim().is_empty() {
            return Ok(None);
        }
        let pattern = format!("%{}%", html_escape::encode_text(marker));
        let found = self
            .tickets_where(format!(
                "SELECT UserRequest WHERE description LIKE {}",
                oql_quote(&pattern)
            ))
            .await?;
        Ok(found.into_iter().min_by_key(|t| t.id))
    }

    async fn ticket(&self, id: i64) -> HelpdeskResult<Option<Ticket>> {
        let Some(id) = to_u64(id) else {
            return Ok(None);
        };
        let found = self
            .client
            .get_one("UserRequest", id, TICKET_FIELDS)
            .await
            .map_err(|e| self.error(e))?;
        Ok(found.map(|o| self.ticket_from(&o)))
    }

    async fn tickets_of(&self, person: &Person, open_only: bool) -> HelpdeskResult<Vec<Ticket>> {
        let mut oql = format!("SELECT UserRequest WHERE caller_id = {}", person.id);
        if open_only {
            oql.push_str(" AND status NOT IN ('resolved', 'closed')");
        }
        let mut found = self.tickets_where(oql).await?;
        found.sort_by_key(|t| std::cmp::Reverse(t.id));
        Ok(found)
    }

    async fn add_followup(&self, ticket: i64, followup: &NewFollowup) -> HelpdeskResult<i64> {
        let id = to_u64(ticket).ok_or_else(|| self.refused("invalid ticket id"))?;
        let log = if followup.private {
            CaseLog::Private
        } else {
            CaseLog::Public
        };
        let entry = NewLogEntry::html(as_html(&followup.content));
        let written = match self.author_label(followup.author).await? {
            Some(name) => {
                let labelled = entry.clone().by(name);
                match self
                    .client
                    .append_case_log_entry("UserRequest", id, log, &labelled, COMMENT)
                    .await
                {
                    // Only an Administrator account may label entries: the
                    // entry is then the REST account's, as without an author.
                    Err(ItopError::Unauthorized { message })
                        if message.contains("administrator") =>
                    {
                        tracing::debug!(target_name = %self.name, %message,
                            "the REST account cannot label case-log entries; written as itself");
                        self.client
                            .append_case_log_entry("UserRequest", id, log, &entry, COMMENT)
                            .await
                    }
                    other => other,
                }
            }
            None => {
                self.client
                    .append_case_log_entry("UserRequest", id, log, &entry, COMMENT)
                    .await
            }
        };
        // The new entry's position, from the update's own answer.
        let position = i64::try_from(written.map_err(|e| self.error(e))?.len()).unwrap_or(0);
        if !followup.attachments.is_empty() {
            let org = self
                .client
                .user_request(id)
                .await
                .map_err(|e| self.error(e))?
                .and_then(|t| t.org_id)
                .unwrap_or(0);
            self.attach(id, org, &followup.attachments).await;
        }
        Ok(followup_id(ticket, followup.private, position))
    }

    /// Ids follow the entries' positions in their log (see
    /// [`FOLLOWUP_ID_SPAN`]); the result is sorted by date (then id).
    async fn followups(&self, ticket: i64) -> HelpdeskResult<Vec<Followup>> {
        let Some(id) = to_u64(ticket) else {
            return Ok(Vec::new());
        };
        let Some(request) = self
            .client
            .user_request(id)
            .await
            .map_err(|e| self.error(e))?
        else {
            return Err(HelpdeskError::NotFound {
                target: self.name.clone(),
                what: format!("UserRequest {id}"),
            });
        };
        let mut all: Vec<Followup> = request
            .public_log
            .iter()
            .enumerate()
            .map(|(i, e)| entry_followup(ticket, i, e, false))
            .chain(
                request
                    .private_log
                    .iter()
                    .enumerate()
                    .map(|(i, e)| entry_followup(ticket, i, e, true)),
            )
            .collect();
        for followup in &mut all {
            if let Some(account) = followup.author.and_then(to_u64) {
                followup.author = self.person_of_user(account).await?;
            }
        }
        all.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        Ok(all)
    }

    /// Walks the lifecycle with the stimuli and the fields each needs:
    /// assigned ← new/pending (`ev_assign`) or resolved (`ev_reopen`);
    /// waiting = pending (`ev_pending`, reason = `note`); solved = resolved
    /// (`ev_resolve`, solution = `note`); closed (`ev_close`, from resolved).
    async fn set_status(
        &self,
        ticket: i64,
        status: TicketStatus,
        note: Option<&str>,
    ) -> HelpdeskResult<()> {
        let id = to_u64(ticket).ok_or_else(|| self.refused("invalid ticket id"))?;
        let mut current = self
            .client
            .user_request(id)
            .await
            .map_err(|e| self.error(e))?
            .ok_or_else(|| HelpdeskError::NotFound {
                target: self.name.clone(),
                what: format!("UserRequest {id}"),
            })?;
        // Each step moves closer; a bound guards against a surprising model.
        for _ in 0..4 {
            let now = status_of(&current.status);
            let target_reached = match status {
                TicketStatus::Planned => now == TicketStatus::Assigned,
                other => now == other,
            };
            if target_reached {
                return Ok(());
            }
            current = match (current.status.as_str(), status) {
                ("closed", _) => {
                    return Err(self.refused("a closed iTop ticket cannot change state"));
                }
                ("rejected", _) => self.stimulus(id, Stimulus::Reopen).await?,
                (_, TicketStatus::New) => {
                    return Err(self.refused(format!(
                        "iTop cannot move a ticket from {} back to new",
                        current.status
                    )));
                }
                ("resolved", TicketStatus::Closed) => {
                    self.stimulus(
                        id,
                        Stimulus::Close {
                            user_satisfaction: None,
                            user_comment: note.map(str::to_string),
                        },
                    )
                    .await?
                }
                ("resolved", _) => self.stimulus(id, Stimulus::Reopen).await?,
                ("assigned" | "escalated_ttr", TicketStatus::Waiting) => {
                    self.stimulus(
                        id,
                        Stimulus::Pending {
                            reason: note.unwrap_or("Waiting").to_string(),
                        },
                    )
                    .await?
                }
                ("assigned" | "escalated_ttr", TicketStatus::Solved | TicketStatus::Closed) => {
                    self.stimulus(
                        id,
                        Stimulus::Resolve {
                            solution: note.unwrap_or("Solved").to_string(),
                            resolution_code: None,
                            service_id: None,
                        },
                    )
                    .await?
                }
                ("waiting_for_approval", _) => {
                    return Err(self.refused("the ticket waits for approval"));
                }
                // new, escalated_tto, approved, pending: assign first.
                _ => self.assign(&current).await?,
            };
        }
        Err(self.refused(format!(
            "could not bring the ticket to {}",
            status.as_word()
        )))
    }

    async fn changed_since(&self, since: &str) -> HelpdeskResult<Vec<Ticket>> {
        let mut found = self
            .tickets_where(format!(
                "SELECT UserRequest WHERE last_update >= {}",
                oql_quote(since)
            ))
            .await?;
        found.sort_by(|a, b| a.updated_at.cmp(&b.updated_at).then(a.id.cmp(&b.id)));
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_map_to_status_words() {
        assert_eq!(status_of("new"), TicketStatus::New);
        assert_eq!(status_of("escalated_tto"), TicketStatus::New);
        assert_eq!(status_of("assigned"), TicketStatus::Assigned);
        assert_eq!(status_of("pending"), TicketStatus::Waiting);
        assert_eq!(status_of("resolved"), TicketStatus::Solved);
        assert_eq!(status_of("closed"), TicketStatus::Closed);
    }

    #[test]
    fn urgency_is_inverted() {
        assert_eq!(itop_urgency(5), "1");
        assert_eq!(itop_urgency(1), "4");
    }
}
