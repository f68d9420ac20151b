//! [`Helpdesk`] over a GLPI server, through the `glpi` client crate.

use crate::files;
use crate::helpdesk::{
    Attachment, Category, CreatedTicket, Followup, Helpdesk, HelpdeskError, HelpdeskResult,
    NewFollowup, NewPerson, NewTicket, Organisation, Person, PersonKind, PersonQuery, Requester,
    Ticket, TicketKind, TicketStatus,
};
use crate::identity::{PhoneChoice, best_phone_match, choose_by_phone, tax_id_digits};
use async_trait::async_trait;
use glpi::{FieldMatch, GlpiClient, GlpiError};

/// Settings of a GLPI target that the client itself does not carry.
#[derive(Clone, Debug, Default)]
pub struct GlpiTargetOptions {
    /// Search option id of the organisation tax-id field (a Fields-plugin
    /// custom field on Entity, e.g. 76666). `None`: tax ids are compared with
    /// the entity's registration number (search option 70 in GLPI 10).
    pub tax_id_search_option: Option<u32>,
    /// Web root for ticket links (`https://glpi.example.com`). Default: the
    /// API URL without its `apirest.php` / `api.php/v1` suffix.
    pub web_url: Option<String>,
    /// Request type set on tickets and followups the bridge creates
    /// (GLPI's RequestType id; 1 Helpdesk, 4 Direct, ...).
    pub request_type: Option<i64>,
    /// Profile given to users the bridge creates (GLPI: 1 Self-Service).
    pub new_user_profile: Option<i64>,
}

/// Tickets changed after the poll cursor's second read per poll.
const CHANGED_PAGE: u64 = 500;

/// GLPI entity search option holding the registration number.
const REGISTRATION_NUMBER_OPTION: u32 = 70;

/// A GLPI target seen through the [`Helpdesk`] interface.
#[derive(Clone)]
pub struct GlpiHelpdesk {
    name: String,
    client: GlpiClient,
    options: GlpiTargetOptions,
    web_root: String,
}

impl GlpiHelpdesk {
    pub fn new(name: impl Into<String>, client: GlpiClient, options: GlpiTargetOptions) -> Self {
        let web_root = options
            .web_url
            .clone()
            .unwrap_or_else(|| web_root_of(client.api_root()));
        GlpiHelpdesk {
            name: name.into(),
            client,
            options,
            web_root: web_root.trim_end_matches('/').to_string(),
        }
    }

    /// The client, for flows that need GLPI-only operations (documents,
    /// solutions by a given user).
    pub fn client(&self) -> &GlpiClient {
        &self.client
    }

    fn error(&self, err: GlpiError) -> HelpdeskError {
        glpi_error(&self.name, err)
    }

    async fn user_person(&self, id: i64, emails: &[String]) -> HelpdeskResult<Person> {
        let user = self.client.get_user(id).await.map_err(|e| self.error(e))?;
        let full = [user.firstname.trim(), user.realname.trim()]
            .iter()
            .filter(|p| !p.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join(" ");
        Ok(Person {
            id,
            kind: PersonKind::User,
            name: if full.is_empty() { user.name } else { full },
            email: emails.first().cloned(),
            // A user without a default entity has no organisation (not the root).
            organisation: user.entities_id,
        })
    }

    /// The GLPI ticket input for a [`NewTicket`] (marker appended to the content).
    async fn ticket_input(&self, ticket: &NewTicket) -> HelpdeskResult<glpi::NewTicket> {
        let mut requesters = Vec::new();
        let mut about_contact = String::new();
        match &ticket.requester {
            Requester::Person {
                id,
                kind: PersonKind::User,
            } => requesters.push(glpi::Actor::user(*id)),
            Requester::Person {
                id,
                kind: PersonKind::Contact,
            } => {
                // GLPI takes users, groups, suppliers and email addresses as
                // requesters, never a contact: the contact's email (when it has
                // one) is the requester, and the contact is named in the content.
                let (line, email) = self.contact_line(*id).await?;
                requesters.extend(email.map(|e| glpi::Actor::email(&e)));
                about_contact = format!("<p>{}</p>", html_escape::encode_text(&line));
            }
            Requester::EmailOnly { email, .. } => requesters.push(glpi::Actor::email(email)),
        }
        let content = format!(
            "{about_contact}{}<p><small>{}</small></p>",
            as_html(&ticket.content),
            html_escape::encode_text(&ticket.marker)
        );
        Ok(glpi::NewTicket {
            name: ticket.title.clone(),
            content,
            entity_id: ticket.organisation,
            ticket_type: Some(match ticket.kind {
                TicketKind::Incident => glpi::TicketType::Incident,
                TicketKind::Request => glpi::TicketType::Request,
            }),
            urgency: ticket.urgency,
            category_id: ticket.category,
            request_type_id: ticket.request_type.or(self.options.request_type),
            requesters,
            assignees: ticket.assignee.map(glpi::Actor::user).into_iter().collect(),
            ..Default::default()
        })
    }

    /// "Requester: name (phone, email), GLPI contact #id", and the contact's email.
    async fn contact_line(&self, id: i64) -> HelpdeskResult<(String, Option<String>)> {
        let contact = match self.client.get_contact(id).await {
            Ok(contact) => contact,
            Err(glpi::GlpiError::NotFound { .. }) => {
                return Ok((format!("Requester: GLPI contact #{id}"), None));
            }
            Err(e) => return Err(self.error(e)),
        };
        let name = [contact.firstname.trim(), contact.name.trim()]
            .iter()
            .filter(|p| !p.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join(" ");
        let email = Some(contact.email.trim().to_string()).filter(|e| !e.is_empty());
        let reach: Vec<&str> = [&contact.mobile, &contact.phone, &contact.phone2]
            .into_iter()
            .map(|p| p.trim())
            .filter(|p| !p.is_empty())
            .chain(email.as_deref())
            .collect();
        let mut line = format!("Requester: {name}");
        if !reach.is_empty() {
            line.push_str(&format!(" ({})", reach.join(", ")));
        }
        line.push_str(&format!(", GLPI contact #{id}"));
        Ok((line, email))
    }

    /// Uploads the ticket's attachments as documents linked to it.
    /// Add `attachments` to `link` (the ticket `ticket_id` or one of its
    /// followups), which exists already: a file that cannot be added is named
    /// in a private followup instead of failing the write (see [`files`]).
    async fn upload_attachments(
        &self,
        ticket_id: i64,
        entity: Option<i64>,
        attachments: &[Attachment],
        link: glpi::ItemLink,
    ) {
        if attachments.is_empty() {
            return;
        }
        // A document goes to the session's active entity unless told: give it
        // the ticket's, where the ticket's technicians see it.
        let entity = match entity {
            Some(entity) => Some(entity),
            None => match self.client.get_ticket(ticket_id).await {
                Ok(ticket) => Some(ticket.entities_id),
                Err(error) => {
                    tracing::debug!(ticket = ticket_id, %error, "ticket entity unknown; documents go to the active entity");
                    None
                }
            },
        };
        let missing = files::attach_each_once(
            attachments,
            |attachment| {
                let link = link.clone();
                async move {
                    self.client
                        .upload_document(&glpi::Upload {
                            file_name: attachment.filename.clone(),
                            mime: attachment.mime.clone(),
                            data: attachment.bytes.clone().into(),
                            name: Some(attachment.filename.clone()),
                            link: Some(link),
                            entity_id: entity,
                        })
                        .await
                        .map(|_| ())
                        .map_err(|e| self.error(e))
                }
            },
            |attachment| {
                // Each POST /Document creates a document and its link: one whose
                // answer was lost may be on the item already.
                let link = link.clone();
                async move {
                    self.client
                        .find_linked_file(&link, &attachment.filename, &attachment.bytes)
                        .await
                        .map(|found| found.is_some())
                        .map_err(|e| self.error(e))
                }
            },
        )
        .await;
        if let Some(note) = files::missing_files_note(&missing)
            && let Err(error) = self.add_followup(ticket_id, &note).await
        {
            tracing::warn!(ticket = ticket_id, %error, "the note about files not attached was not added");
        }
    }
}

/// `http://host/glpi/apirest.php` → `http://host/glpi`.
fn web_root_of(api_root: &str) -> String {
    let trimmed = api_root.trim_end_matches('/');
    // `/api`: the rewrite GLPI's documentation gives for its legacy API
    // (`api/(.*)$ → apirest.php/$1`).
    for suffix in ["/apirest.php", "/api.php/v1", "/api.php", "/api"] {
        if let Some(root) = trimmed.strip_suffix(suffix) {
            return root.to_string();
        }
    }
    trimmed.to_string()
}

/// Sorts a GLPI failure into "try again later" and "no".
pub fn glpi_error(target: &str, err: GlpiError) -> HelpdeskError {
    if err.is_retryable() {
        return HelpdeskError::Unavailable {
            target: target.to_string(),
            retry_after: err.retry_after(),
            reason: err.to_string(),
        };
    }
    match err {
        GlpiError::NotFound { message } => HelpdeskError::NotFound {
            target: target.to_string(),
            what: message,
        },
        other if is_target_side(&other) => HelpdeskError::Failed {
            target: target.to_string(),
            reason: other.to_string(),
        },
        other => HelpdeskError::Refused {
            target: target.to_string(),
            reason: other.to_string(),
        },
    }
}

/// A non-retryable GLPI failure that is about GLPI or the bridge's access to
/// it (credentials, API client, rights of the API user, an unreadable or
/// oversized answer, settings), not about what was asked: the same request
/// may succeed once an operator has fixed it.
fn is_target_side(err: &GlpiError) -> bool {
    match err {
        GlpiError::Config(_)
        | GlpiError::InvalidResponse { .. }
        | GlpiError::ResponseTooLarge { .. }
        | GlpiError::Generic { .. }
        | GlpiError::NotAllowedIp { .. }
        | GlpiError::AppTokenMissing { .. }
        | GlpiError::WrongAppToken { .. }
        | GlpiError::LoginParametersMissing { .. }
        | GlpiError::CredentialsLoginDisabled { .. }
        | GlpiError::UserTokenRejected { .. }
        | GlpiError::LoginRejected { .. }
        | GlpiError::SessionMissing { .. }
        | GlpiError::RightMissing { .. }
        | GlpiError::MethodNotAllowed { .. }
        | GlpiError::UnknownItemtype { .. }
        | GlpiError::Sql { .. }
        | GlpiError::SwitchRefused { .. } => true,
        GlpiError::Other { status, .. } => matches!(status, 401 | 403 | 405 | 407),
        _ => false,
    }
}

fn status_of(code: i64) -> TicketStatus {
    TicketStatus::from_glpi(code).unwrap_or(TicketStatus::New)
}

/// Escapes text that is not already HTML, so GLPI shows it as written.
fn as_html(content: &str) -> String {
    let looks_like_html =
        content.contains("</") || content.contains("<br") || content.contains("<p");
    if looks_like_html {
        content.to_string()
    } else {
        html_escape::encode_text(content)
            .split('\n')
            .collect::<Vec<_>>()
            .join("<br>")
    }
}

#[async_trait]
impl Helpdesk for GlpiHelpdesk {
    fn name(&self) -> &str {
        &self.name
    }

    fn system(&self) -> &'static str {
        "glpi"
    }

    fn call_timeout(&self) -> std::time::Duration {
        self.client.timeout()
    }

    fn ticket_url(&self, id: i64) -> String {
        format!("{}/front/ticket.form.php?id={id}", self.web_root)
    }

    async fn find_organisation_by_tax_id(
        &self,
        digits: &str,
    ) -> HelpdeskResult<Option<Organisation>> {
        let digits = tax_id_digits(digits);
        if digits.is_empty() {
            return Ok(None);
        }
        let option = self
            .options
            .tax_id_search_option
            .unwrap_or(REGISTRATION_NUMBER_OPTION);
        let hits = self
            .client
            .find_entities_by_field(option, &digits, FieldMatch::Digits)
            .await
            .map_err(|e| self.error(e))?;
        Ok(hits.into_iter().next().map(|hit| Organisation {
            id: hit.id,
            name: hit.completename,
        }))
    }

    async fn organisation(&self, id: i64) -> HelpdeskResult<Option<Organisation>> {
        match self.client.get_entity(id).await {
            Ok(entity) => Ok(Some(Organisation {
                id: entity.id,
                name: if entity.completename.is_empty() {
                    entity.name
                } else {
                    entity.completename
                },
            })),
            Err(GlpiError::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.error(e)),
        }
    }

    async fn find_person(&self, query: &PersonQuery) -> HelpdeskResult<Option<Person>> {
        if let Some(email) = query.email.as_deref().filter(|e| e.contains('@')) {
            let users = self
                .client
                .find_users_by_email(email)
                .await
                .map_err(|e| self.error(e))?;
            if let Some(hit) = users
                .into_iter()
                .filter(|u| u.is_active)
                .min_by_key(|u| u.id)
            {
                return self.user_person(hit.id, &hit.emails).await.map(Some);
            }
            let contacts = self
                .client
                .find_contacts_by_email(email)
                .await
                .map_err(|e| self.error(e))?;
            if let Some(hit) = contacts.into_iter().min_by_key(|c| c.id) {
                return Ok(Some(contact_person(&hit)));
            }
        }
        if let Some(phone) = query.phone.as_deref().filter(|p| !p.trim().is_empty()) {
            let users = self
                .client
                .find_users_by_phone(phone)
                .await
                .map_err(|e| self.error(e))?;
            let inactive = users.iter().filter(|u| !u.is_active).count();
            let ranked = users.iter().filter(|u| u.is_active).filter_map(|u| {
                Some((
                    u.id,
                    best_phone_match(
                        [&u.phone, &u.phone2, &u.mobile]
                            .into_iter()
                            .filter_map(Option::as_deref),
                        phone,
                    )?,
                ))
            });
            match choose_by_phone(ranked) {
                PhoneChoice::One(id) => {
                    let emails = users
                        .iter()
                        .find(|u| u.id == id)
                        .map(|u| u.emails.clone())
                        .unwrap_or_default();
                    return self.user_person(id, &emails).await.map(Some);
                }
                PhoneChoice::Ambiguous(ids) => {
                    tracing::warn!(target_name = %self.name, users = ?ids,
                        "several GLPI users have this phone only in part (no area or country code): none is chosen");
                    return Ok(None);
                }
                PhoneChoice::None if inactive > 0 => {
                    tracing::info!(target_name = %self.name, inactive,
                        "only disabled GLPI users have this phone: none is chosen");
                }
                PhoneChoice::None => {}
            }
            let contacts = self
                .client
                .find_contacts_by_phone(phone)
                .await
                .map_err(|e| self.error(e))?;
            let ranked = contacts.iter().filter_map(|c| {
                Some((
                    c.id,
                    best_phone_match(
                        [&c.phone, &c.phone2, &c.mobile]
                            .into_iter()
                            .filter_map(Option::as_deref),
                        phone,
                    )?,
                ))
            });
            match choose_by_phone(ranked) {
                PhoneChoice::One(id) => {
                    if let Some(hit) = contacts.iter().find(|c| c.id == id) {
                        return Ok(Some(contact_person(hit)));
                    }
                }
                PhoneChoice::Ambiguous(ids) => {
                    tracing::warn!(target_name = %self.name, contacts = ?ids,
                        "several GLPI contacts have this phone only in part (no area or country code): none is chosen");
                }
                PhoneChoice::None => {}
            }
        }
        Ok(None)
    }

    async fn create_person(&self, person: &NewPerson) -> HelpdeskResult<Person> {
        let (firstname, realname) = split_name(&person.name);
        match person.kind {
            PersonKind::User => {
                let base = new_user_login(person);
                let mut disabled = Vec::new();
                for login in user_logins(&base) {
                    let created = self
                        .client
                        .create_user(&glpi::NewUser {
                            login: login.clone(),
                            realname: realname.clone(),
                            firstname: firstname.clone(),
                            mobile: person.phone.clone(),
                            emails: person.email.iter().cloned().collect(),
                            profile_id: self.options.new_user_profile,
                            entity_id: person.organisation,
                            ..Default::default()
                        })
                        .await;
                    let id = match created {
                        Ok(id) => id,
                        // The login is taken: an account without this email or
                        // phone (SSO, LDAP, made by hand), or one a concurrent
                        // request made a moment ago, or a disabled one. GLPI's
                        // answer is translated, so the login is looked up
                        // rather than the message read.
                        Err(error) if !error.is_retryable() => {
                            match self
                                .client
                                .find_user_by_login(&login)
                                .await
                                .map_err(|e| self.error(e))?
                            {
                                Some(existing) if existing.is_active => existing.id,
                                // Disabled users are never requesters: a new
                                // account under the next login.
                                Some(existing) => {
                                    tracing::info!(target_name = %self.name, %login,
                                        user = existing.id,
                                        "this login belongs to a disabled GLPI user: the requester gets an account of its own under another login");
                                    disabled.push(login);
                                    continue;
                                }
                                None => return Err(self.error(error)),
                            }
                        }
                        Err(error) => return Err(self.error(error)),
                    };
                    return Ok(Person {
                        id,
                        kind: PersonKind::User,
                        name: person.name.clone(),
                        email: person.email.clone(),
                        organisation: person.organisation,
                    });
                }
                // GLPI's state, not the request, is at fault, and only an
                // administrator can mend it: a job waits and tries again
                // (messages are kept), an intake caller gets `target_error`.
                Err(HelpdeskError::Failed {
                    target: self.name.clone(),
                    reason: format!(
                        "no GLPI account can be made for the requester: the logins {} belong to disabled users (enable one of them, or rename it)",
                        disabled.join(", ")
                    ),
                })
            }
            PersonKind::Contact => {
                let id = self
                    .client
                    .create_contact(&glpi::NewContact {
                        name: realname.unwrap_or_else(|| person.name.clone()),
                        firstname,
                        email: person.email.clone(),
                        mobile: person.phone.clone(),
                        entity_id: person.organisation,
                        ..Default::default()
                    })
                    .await
                    .map_err(|e| self.error(e))?;
                Ok(Person {
                    id,
                    kind: PersonKind::Contact,
                    name: person.name.clone(),
                    email: person.email.clone(),
                    organisation: person.organisation,
                })
            }
        }
    }

    async fn find_category(&self, name: &str) -> HelpdeskResult<Option<Category>> {
        let found = self
            .client
            .find_categories(name)
            .await
            .map_err(|e| self.error(e))?;
        let category = |c: &glpi::Category| Category {
            id: c.id,
            incidents: c.incidents,
            requests: c.requests,
        };
        Ok(found
            .iter()
            .find(|c| c.incidents && c.requests)
            .or_else(|| found.first())
            .map(category))
    }

    async fn create_ticket(&self, ticket: &NewTicket) -> HelpdeskResult<Ticket> {
        let input = self.ticket_input(ticket).await?;
        let created = self
            .client
            .create_ticket(&input)
            .await
            .map_err(|e| self.error(e))?;
        self.upload_attachments(
            created.id,
            Some(created.entities_id),
            &ticket.attachments,
            glpi::ItemLink::ticket(created.id),
        )
        .await;
        Ok(Ticket {
            id: created.id,
            reference: created.id.to_string(),
            title: created.name.clone(),
            status: status_of(created.status),
            organisation: Some(created.entities_id),
            updated_at: created.date_mod.clone().unwrap_or_default(),
            url: self.ticket_url(created.id),
        })
    }

    fn reference_of_id(&self, id: i64) -> Option<String> {
        Some(id.to_string())
    }

    async fn create_ticket_id(&self, ticket: &NewTicket) -> HelpdeskResult<CreatedTicket> {
        let input = self.ticket_input(ticket).await?;
        let id = self
            .client
            .create_ticket_id(&input)
            .await
            .map_err(|e| self.error(e))?;
        self.upload_attachments(id, None, &ticket.attachments, glpi::ItemLink::ticket(id))
            .await;
        Ok(CreatedTicket {
            id,
            reference: id.to_string(),
        })
    }

    async fn find_ticket_by_marker(&self, marker: &str) -> HelpdeskResult<Option<Ticket>> {
        let hits = self
            .client
            .find_tickets_by_content(marker)
            .await
            .map_err(|e| self.error(e))?;
        match hits.into_iter().min_by_key(|t| t.id) {
            Some(hit) => self.ticket(hit.id).await,
            None => Ok(None),
        }
    }

    async fn ticket(&self, id: i64) -> HelpdeskResult<Option<Ticket>> {
        match self.client.get_ticket(id).await {
            Ok(t) if t.is_deleted => Ok(None),
            Ok(t) => Ok(Some(Ticket {
                id: t.id,
                reference: t.id.to_string(),
                title: t.name.clone(),
                status: status_of(t.status),
                organisation: Some(t.entities_id),
                updated_at: t.date_mod.clone().unwrap_or_default(),
                url: self.ticket_url(t.id),
            })),
            Err(GlpiError::NotFound { .. }) => Ok(None),
            // GLPI answers 403 for a ticket moved to an entity the account
            // cannot see (and for no read right at all): to the bridge it is
            // gone, as the trait says of an object that is not visible.
            Err(GlpiError::RightMissing { message }) => {
                tracing::info!(target_name = %self.name, ticket = id, %message,
                    "the ticket cannot be read with the bridge's account: taken as gone");
                Ok(None)
            }
            Err(e) => Err(self.error(e)),
        }
    }

    async fn tickets_of(&self, person: &Person, open_only: bool) -> HelpdeskResult<Vec<Ticket>> {
        if person.kind != PersonKind::User {
            return Ok(Vec::new());
        }
        let rows = self
            .client
            .tickets_of_requester(person.id, open_only)
            .await
            .map_err(|e| self.error(e))?;
        Ok(rows
            .into_iter()
            .map(|row| Ticket {
                id: row.id,
                reference: row.id.to_string(),
                title: row.name,
                status: status_of(row.status),
                organisation: None,
                updated_at: row.date_mod,
                url: self.ticket_url(row.id),
            })
            .filter(|t| !open_only || t.status.is_open())
            .collect())
    }

    async fn tickets_of_email(&self, email: &str, open_only: bool) -> HelpdeskResult<Vec<Ticket>> {
        let ids = self
            .client
            .tickets_of_email_requester(email)
            .await
            .map_err(|e| self.error(e))?;
        let mut tickets = Vec::new();
        for id in ids.into_iter().take(crate::helpdesk::EMAIL_TICKETS_MAX) {
            if let Some(ticket) = self.ticket(id).await?
                && (!open_only || ticket.status.is_open())
            {
                tickets.push(ticket);
            }
        }
        Ok(tickets)
    }

    async fn add_followup(&self, ticket: i64, followup: &NewFollowup) -> HelpdeskResult<i64> {
        let id = self
            .client
            .add_followup(&glpi::NewFollowup {
                ticket_id: ticket,
                content: as_html(&followup.content),
                is_private: followup.private,
                request_type_id: self.options.request_type,
                author_id: followup.author,
                no_reopen: false,
            })
            .await
            .map_err(|e| self.error(e))?;
        if !followup.attachments.is_empty() {
            self.upload_attachments(
                ticket,
                None,
                &followup.attachments,
                glpi::ItemLink::followup(id),
            )
            .await;
        }
        Ok(id)
    }

    async fn followups(&self, ticket: i64) -> HelpdeskResult<Vec<Followup>> {
        let mut rows = self
            .client
            .followups(ticket)
            .await
            .map_err(|e| self.error(e))?;
        rows.sort_by_key(|f| f.id);
        Ok(rows
            .into_iter()
            .map(|f| Followup {
                id: f.id,
                legacy_id: None,
                content: f.content,
                private: f.is_private,
                author: Some(f.users_id).filter(|id| *id > 0),
                created_at: f.date,
            })
            .collect())
    }

    async fn solutions(&self, ticket: i64) -> HelpdeskResult<Vec<Followup>> {
        let mut rows = self
            .client
            .solutions(ticket)
            .await
            .map_err(|e| self.error(e))?;
        rows.sort_by_key(|s| s.id);
        Ok(rows
            .into_iter()
            .map(|s| Followup {
                id: s.id,
                content: s.content,
                private: false,
                author: Some(s.users_id).filter(|id| *id > 0),
                created_at: s.date_creation,
                legacy_id: None,
            })
            .collect())
    }

    async fn set_status(
        &self,
        ticket: i64,
        status: TicketStatus,
        note: Option<&str>,
    ) -> HelpdeskResult<()> {
        if status == TicketStatus::Solved {
            // GLPI solves through a solution; the solution sets the status.
            let content = note.unwrap_or("Solved").to_string();
            self.client
                .add_solution(&glpi::NewSolution {
                    ticket_id: ticket,
                    content: as_html(&content),
                    solution_type_id: None,
                })
                .await
                .map_err(|e| self.error(e))?;
            return Ok(());
        }
        let code = match status {
            TicketStatus::New => glpi::TicketStatus::New,
            TicketStatus::Assigned => glpi::TicketStatus::Assigned,
            TicketStatus::Planned => glpi::TicketStatus::Planned,
            TicketStatus::Waiting => glpi::TicketStatus::Waiting,
            TicketStatus::Solved => glpi::TicketStatus::Solved,
            TicketStatus::Closed => glpi::TicketStatus::Closed,
        };
        self.client
            .set_ticket_status(ticket, code)
            .await
            .map_err(|e| self.error(e))
    }

    async fn changed_since(&self, since: &str) -> HelpdeskResult<Vec<Ticket>> {
        // Every ticket of the second `since` comes back (however many one GLPI
        // request stamped with it), plus up to a page of later ones: when the
        // page is cut, the caller's next cursor is its newest second, which is
        // then read whole. So `partial` needs no handling here.
        let (rows, _partial) = self
            .client
            .tickets_changed_since(since, CHANGED_PAGE)
            .await
            .map_err(|e| self.error(e))?;
        Ok(rows
            .into_iter()
            .map(|row| Ticket {
                id: row.id,
                reference: row.id.to_string(),
                title: row.name,
                status: status_of(row.status),
                organisation: None,
                updated_at: row.date_mod,
                url: self.ticket_url(row.id),
            })
            .collect())
    }
}

fn contact_person(hit: &glpi::ContactHit) -> Person {
    let name = [hit.firstname.as_deref().unwrap_or(""), hit.name.as_str()]
        .iter()
        .filter(|p| !p.trim().is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(" ");
    Person {
        id: hit.id,
        kind: PersonKind::Contact,
        name,
        email: hit.email.clone(),
        organisation: None,
    }
}

/// The login of a user created for `person`: GLPI refuses any login but
/// letters, digits, `'`, `@`, `.`, `-`, `_` and spaces, or an email address
/// (`Auth::isValidLogin`), so a phone loses its `+` and separators and a name
/// its other characters.
fn new_user_login(person: &NewPerson) -> String {
    if let Some(email) = person.email.as_deref().filter(|e| !e.trim().is_empty()) {
        return email.trim().to_string();
    }
    if let Some(phone) = &person.phone {
        let digits = glpi::digits_only(phone);
        if !digits.is_empty() {
            return digits;
        }
    }
    let name: String = person
        .name
        .chars()
        .filter(|c| c.is_alphanumeric() || "'@.-_ ".contains(*c))
        .collect();
    let name = name.split_whitespace().collect::<Vec<_>>().join(" ");
    if name.is_empty() {
        "requester".to_string()
    } else {
        name
    }
}

/// How many logins a new user is tried under (`base`, then `base-2` …) when
/// the ones before belong to disabled users.
const USER_LOGINS: u32 = 10;

/// The logins a new user is tried under, in order: `base`, then `base-2`,
/// `base-3`, … up to [`USER_LOGINS`]. The suffix goes at the end, so an
/// address login never turns into another real address (`ana-2@…` could be
/// someone's), and the suffixed ones keep only the characters a plain login
/// may have: `ana+ti@acme.com.br-2` is neither a valid address nor a valid
/// plain login for GLPI, `anati@acme.com.br-2` is.
fn user_logins(base: &str) -> impl Iterator<Item = String> {
    let plain: String = base
        .chars()
        .filter(|c| c.is_alphanumeric() || "'@.-_ ".contains(*c))
        .collect();
    std::iter::once(base.to_string()).chain((2..=USER_LOGINS).map(move |n| format!("{plain}-{n}")))
}

/// "Maria da Silva" → (Some("Maria"), Some("da Silva")).
fn split_name(full: &str) -> (Option<String>, Option<String>) {
    let full = full.trim();
    match full.split_once(' ') {
        Some((first, rest)) => (Some(first.to_string()), Some(rest.trim().to_string())),
        None if full.is_empty() => (None, None),
        None => (None, Some(full.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_login_held_by_a_disabled_user_is_followed_by_suffixed_ones() {
        let logins: Vec<String> = user_logins("ana@acme.com.br").collect();
        assert_eq!(logins.len(), USER_LOGINS as usize);
        assert_eq!(
            logins[..3],
            ["ana@acme.com.br", "ana@acme.com.br-2", "ana@acme.com.br-3"]
        );
        assert_eq!(
            logins.last().map(String::as_str),
            Some("ana@acme.com.br-10")
        );
        // Characters only an address may have are left out of the others.
        let logins: Vec<String> = user_logins("ana+ti@acme.com.br").take(2).collect();
        assert_eq!(logins, ["ana+ti@acme.com.br", "anati@acme.com.br-2"]);
        let logins: Vec<String> = user_logins("5531988776655").take(2).collect();
        assert_eq!(logins, ["5531988776655", "5531988776655-2"]);
    }

    #[test]
    fn web_root_drops_the_api_suffix() {
        assert_eq!(
            web_root_of("http://h/glpi/apirest.php"),
            "http://h/glpi".to_string()
        );
        assert_eq!(web_root_of("http://h/api.php/v1/"), "http://h".to_string());
        assert_eq!(
            web_root_of("https://h/glpi/api/"),
            "https://h/glpi".to_string()
        );
    }

    #[test]
    fn plain_text_is_escaped_and_keeps_its_lines() {
        assert_eq!(as_html("a < b\nc"), "a &lt; b<br>c");
        assert_eq!(as_html("<p>x</p>"), "<p>x</p>");
    }

    #[test]
    fn new_users_get_a_login_glpi_accepts() {
        let person = |name: &str, email: Option<&str>, phone: Option<&str>| NewPerson {
            kind: PersonKind::User,
            name: name.into(),
            email: email.map(Into::into),
            phone: phone.map(Into::into),
            organisation: None,
        };
        let login = |p: &NewPerson| new_user_login(p);
        assert_eq!(
            login(&person(
                "Maria",
                Some("maria+x@acme.com.br"),
                Some("+5511987654321")
            )),
            "maria+x@acme.com.br"
        );
        assert_eq!(
            login(&person("Maria", None, Some("+55 (11) 98765-4321"))),
            "5511987654321"
        );
        assert_eq!(
            login(&person("  Zé <da> Silva! ", None, None)),
            "Zé da Silva"
        );
        assert_eq!(login(&person("<>", None, None)), "requester");
    }

    #[test]
    fn names_split_into_first_and_last() {
        assert_eq!(
            split_name("Maria da Silva"),
            (Some("Maria".into()), Some("da Silva".into()))
        );
        assert_eq!(split_name("Zé"), (None, Some("Zé".into())));
    }
}
