//! Tickets (spec §8): create with actors, read back, update, status, searches.

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::client::{Call, GlpiClient};
use crate::error::GlpiError;
use crate::items::created_id;
use crate::lenient;
use crate::search::{Order, SearchQuery, SearchRow, SearchType};

/// Most tickets [`GlpiClient::tickets_of_requester`] reads (pages of 200).
pub const REQUESTER_TICKET_ROWS: u64 = 2_000;

/// Ticket status codes (spec §8.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TicketStatus {
    New = 1,
    Assigned = 2,
    Planned = 3,
    Waiting = 4,
    Solved = 5,
    Closed = 6,
}

impl TicketStatus {
    pub fn code(self) -> i64 {
        self as i64
    }
    pub fn from_code(code: i64) -> Option<TicketStatus> {
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
}

/// Incident (1) or request (2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TicketType {
    Incident = 1,
    Request = 2,
}

/// A ticket actor on create: a GLPI user, or just an email address (no GLPI user).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// GLPI user id; 0 for an email-only actor.
    pub user_id: i64,
    /// Alternative email (the only address for an email-only actor).
    pub email: Option<String>,
    /// Whether GLPI notifies this actor.
    pub notify: bool,
}

impl Actor {
    /// An existing GLPI user, notified at their default address.
    pub fn user(user_id: i64) -> Actor {
        Actor {
            user_id,
            email: None,
            notify: true,
        }
    }
    /// Someone with no GLPI account: `_users_id_* = 0` + alternative email (spec §8.4).
    pub fn email(address: impl Into<String>) -> Actor {
        Actor {
            user_id: 0,
            email: Some(address.into()),
            notify: true,
        }
    }
}

/// Role of an actor on a ticket (`Ticket_User.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActorRole {
    Requester = 1,
    Assignee = 2,
    Observer = 3,
}

impl ActorRole {
    fn key(self) -> &'static str {
        match self {
            ActorRole::Requester => "requester",
            ActorRole::Assignee => "assign",
            ActorRole::Observer => "observer",
        }
    }
}

/// A ticket to create. Text is sent raw (GLPI encodes it itself).
#[derive(Debug, Clone, Default)]
pub struct NewTicket {
    pub name: String,
    /// HTML or plain text.
    pub content: String,
    /// None = the client's `default_entity`, else GLPI's active entity.
    pub entity_id: Option<i64>,
    pub ticket_type: Option<TicketType>,
    /// 1..5.
    pub urgency: Option<u8>,
    pub impact: Option<u8>,
    /// Only kept by GLPI if the user has CHANGEPRIORITY.
    pub priority: Option<u8>,
    pub category_id: Option<i64>,
    pub request_type_id: Option<i64>,
    pub requesters: Vec<Actor>,
    pub observers: Vec<Actor>,
    pub assignees: Vec<Actor>,
    pub assigned_groups: Vec<i64>,
    /// Any other input key (`_disablenotif`, `locations_id`, ...).
    pub extra: Map<String, Value>,
}

/// A ticket as GLPI stores it (text decoded).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Ticket {
    #[serde(deserialize_with = "lenient::i64")]
    pub id: i64,
    #[serde(default, deserialize_with = "lenient::i64")]
    pub entities_id: i64,
    #[serde(default, deserialize_with = "lenient::string")]
    pub name: String,
    #[serde(default, deserialize_with = "lenient::string")]
    pub content: String,
    #[serde(default, deserialize_with = "lenient::i64")]
    pub status: i64,
    #[serde(default, rename = "type", deserialize_with = "lenient::i64")]
    pub ticket_type: i64,
    #[serde(default, deserialize_with = "lenient::i64")]
    pub urgency: i64,
    #[serde(default, deserialize_with = "lenient::i64")]
    pub impact: i64,
    #[serde(default, deserialize_with = "lenient::i64")]
    pub priority: i64,
    #[serde(default, deserialize_with = "lenient::i64")]
    pub itilcategories_id: i64,
    #[serde(default, deserialize_with = "lenient::i64")]
    pub requesttypes_id: i64,
    #[serde(default, deserialize_with = "lenient::i64")]
    pub users_id_recipient: i64,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub date: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub date_mod: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub solvedate: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub closedate: Option<String>,
    #[serde(default, deserialize_with = "lenient::bool")]
    pub is_deleted: bool,
    /// Every other column.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Ticket {
    pub fn status(&self) -> Option<TicketStatus> {
        TicketStatus::from_code(self.status)
    }
}

/// Fields to change on a ticket; None = unchanged.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TicketUpdate {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub urgency: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub impact: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none", rename = "itilcategories_id")]
    pub category_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none", rename = "requesttypes_id")]
    pub request_type_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none", rename = "entities_id")]
    pub entity_id: Option<i64>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A `Ticket_User` link row.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TicketUser {
    #[serde(deserialize_with = "lenient::i64")]
    pub id: i64,
    #[serde(default, deserialize_with = "lenient::i64")]
    pub tickets_id: i64,
    #[serde(default, deserialize_with = "lenient::i64")]
    pub users_id: i64,
    /// 1 requester, 2 assigned, 3 observer.
    #[serde(default, rename = "type", deserialize_with = "lenient::i64")]
    pub role: i64,
    #[serde(default, deserialize_with = "lenient::bool")]
    pub use_notification: bool,
    #[serde(default, deserialize_with = "lenient::string")]
    pub alternative_email: String,
}

/// A ticket row from a search (poller / marker lookups).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketSummary {
    pub id: i64,
    pub name: String,
    pub status: i64,
    /// `YYYY-MM-DD HH:MM:SS`, server time.
    pub date_mod: String,
    /// Entity complete name ("Root entity > ACME").
    pub entity: String,
}

impl TicketSummary {
    fn from_row(row: &SearchRow) -> Option<TicketSummary> {
        Some(TicketSummary {
            id: row.id()?,
            name: row.text(1).unwrap_or_default(),
            status: row.int(12).unwrap_or(0),
            date_mod: row.text(19).unwrap_or_default(),
            entity: row.text(80).unwrap_or_default(),
        })
    }
}

/// Ticket search option ids used here (stock GLPI, spec §5).
pub mod ticket_field {
    pub const NAME: u32 = 1;
    pub const ID: u32 = 2;
    pub const REQUESTER: u32 = 4;
    pub const STATUS: u32 = 12;
    pub const DATE_MOD: u32 = 19;
    pub const CONTENT: u32 = 21;
    pub const ENTITY: u32 = 80;
}

fn push_actors(input: &mut Map<String, Value>, role: ActorRole, actors: &[Actor]) {
    if actors.is_empty() {
        return;
    }
    let key = format!("_users_id_{}", role.key());
    let ids: Vec<Value> = actors.iter().map(|a| json!(a.user_id)).collect();
    let ids = if ids.len() == 1 {
        ids.into_iter().next().unwrap_or(Value::Null)
    } else {
        Value::Array(ids)
    };
    input.insert(key.clone(), ids);
    input.insert(
        format!("{key}_notif"),
        json!({
            "use_notification": actors.iter().map(|a| i64::from(a.notify)).collect::<Vec<_>>(),
            "alternative_email": actors.iter().map(|a| a.email.clone().unwrap_or_default()).collect::<Vec<_>>(),
        }),
    );
}

/// The `input` object for a ticket creation.
pub(crate) fn ticket_input(
    ticket: &NewTicket,
    default_entity: Option<i64>,
) -> Result<Value, GlpiError> {
    if ticket
        .requesters
        .iter()
        .chain(&ticket.observers)
        .chain(&ticket.assignees)
        .any(|a| a.user_id == 0 && a.email.as_deref().is_none_or(|e| !e.contains('@')))
    {
        return Err(GlpiError::InvalidInput(
            "an email-only actor needs a valid email address".into(),
        ));
    }
    let mut input = Map::new();
    input.insert("name".into(), json!(ticket.name));
    input.insert("content".into(), json!(ticket.content));
    if let Some(entity) = ticket.entity_id.or(default_entity) {
        input.insert("entities_id".into(), json!(entity));
    }
    if let Some(t) = ticket.ticket_type {
        input.insert("type".into(), json!(t as i64));
    }
    for (key, v) in [
        ("urgency", ticket.urgency),
        ("impact", ticket.impact),
        ("priority", ticket.priority),
    ] {
        if let Some(v) = v {
            input.insert(key.into(), json!(v));
        }
    }
    if let Some(c) = ticket.category_id {
        input.insert("itilcategories_id".into(), json!(c));
    }
    if let Some(r) = ticket.request_type_id {
        input.insert("requesttypes_id".into(), json!(r));
    }
    push_actors(&mut input, ActorRole::Requester, &ticket.requesters);
    push_actors(&mut input, ActorRole::Observer, &ticket.observers);
    push_actors(&mut input, ActorRole::Assignee, &ticket.assignees);
    match ticket.assigned_groups.as_slice() {
        [] => {}
        [one] => {
            input.insert("_groups_id_assign".into(), json!(one));
        }
        many => {
            input.insert("_groups_id_assign".into(), json!(many));
        }
    }
    for (k, v) in &ticket.extra {
        input.insert(k.clone(), v.clone());
    }
    Ok(Value::Object(input))
}

impl GlpiClient {
    /// Create a ticket and return it **as GLPI stored it** (rules, templates and the priority
    /// matrix may rewrite the input, spec §17 trap 13).
    pub async fn create_ticket(&self, ticket: &NewTicket) -> Result<Ticket, GlpiError> {
        let input = ticket_input(ticket, self.default_entity())?;
        let reply = self
            .call(Call::new(Method::POST, "Ticket").json(json!({ "input": input })))
            .await?;
        let (id, _) = created_id(&reply)?;
        match self.get_ticket(id).await {
            Ok(stored) => Ok(stored),
            // The ticket exists: a failed read-back must not look like a failed create
            // (the caller would submit it again). A ticket rule may have moved it to an
            // entity this session cannot read (403), or the answer was lost: return what
            // is known, the id and the input.
            Err(error) => {
                tracing::warn!(ticket = id, %error, "ticket created but not read back; returning it as sent");
                Ok(ticket_as_sent(id, ticket, self.default_entity()))
            }
        }
    }

    /// Create a ticket and return only its id: one request, no read-back. Use when the
    /// caller does not need GLPI's rewritten fields (bulk imports, benchmarks).
    pub async fn create_ticket_id(&self, ticket: &NewTicket) -> Result<i64, GlpiError> {
        let input = ticket_input(ticket, self.default_entity())?;
        let reply = self
            .call(Call::new(Method::POST, "Ticket").json(json!({ "input": input })))
            .await?;
        created_id(&reply).map(|(id, _)| id)
    }

    /// Read one ticket.
    pub async fn get_ticket(&self, id: i64) -> Result<Ticket, GlpiError> {
        self.get_item("Ticket", id).await
    }

    /// Change ticket fields.
    pub async fn update_ticket(&self, id: i64, update: &TicketUpdate) -> Result<(), GlpiError> {
        self.update_item("Ticket", id, update).await
    }

    /// Set the status directly (bypasses solution requirements, spec §10).
    pub async fn set_ticket_status(&self, id: i64, status: TicketStatus) -> Result<(), GlpiError> {
        self.update_item("Ticket", id, &json!({ "status": status.code() }))
            .await
    }

    /// The user actors of a ticket (`Ticket_User` rows, incl. email-only ones with user 0).
    pub async fn ticket_users(&self, ticket_id: i64) -> Result<Vec<TicketUser>, GlpiError> {
        self.list_sub_items("Ticket", ticket_id, "Ticket_User")
            .await
    }

    /// Tickets whose requester is `email` without an account (`Ticket_User`
    /// rows of user 0 with that `alternative_email`, what an email-only
    /// requester is), newest first. GLPI's `searchText` matches a substring,
    /// so the address is compared exactly on the rows.
    pub async fn tickets_of_email_requester(&self, email: &str) -> Result<Vec<i64>, GlpiError> {
        let email = email.trim();
        if email.len() < 3 || !email.contains('@') {
            return Err(GlpiError::InvalidInput(format!("not an email: {email:?}")));
        }
        let rows: Vec<TicketUser> = self
            .list_items_matching("Ticket_User", "alternative_email", email)
            .await?;
        let mut ids: Vec<i64> = rows
            .into_iter()
            .filter(|r| {
                r.role == 1
                    && r.users_id == 0
                    && r.alternative_email.trim().eq_ignore_ascii_case(email)
            })
            .map(|r| r.tickets_id)
            .collect();
        ids.sort_unstable_by(|a, b| b.cmp(a));
        ids.dedup();
        Ok(ids)
    }

    /// Add one actor to an existing ticket (`POST /Ticket_User`).
    pub async fn add_ticket_actor(
        &self,
        ticket_id: i64,
        role: ActorRole,
        actor: &Actor,
    ) -> Result<i64, GlpiError> {
        self.create_item(
            "Ticket_User",
            &json!({
                "tickets_id": ticket_id,
                "users_id": actor.user_id,
                "type": role as i64,
                "use_notification": i64::from(actor.notify),
                "alternative_email": actor.email.clone().unwrap_or_default(),
            }),
        )
        .await
    }

    /// Tickets whose description contains `text` (e.g. the bridge's reference marker).
    pub async fn find_tickets_by_content(
        &self,
        text: &str,
    ) -> Result<Vec<TicketSummary>, GlpiError> {
        if text.trim().is_empty() {
            return Err(GlpiError::InvalidInput("empty search text".into()));
        }
        let query = SearchQuery::new("Ticket")
            .and(ticket_field::CONTENT, SearchType::Contains, text)
            .display(&[
                ticket_field::NAME,
                ticket_field::STATUS,
                ticket_field::DATE_MOD,
                ticket_field::ENTITY,
            ])
            .range(0, 49);
        let page = self.search(&query).await?;
        Ok(page
            .rows
            .iter()
            .filter_map(TicketSummary::from_row)
            .collect())
    }

    /// Tickets where `user_id` is a requester, most recently changed first
    /// (at most [`REQUESTER_TICKET_ROWS`]).
    pub async fn tickets_of_requester(
        &self,
        user_id: i64,
        open_only: bool,
    ) -> Result<Vec<TicketSummary>, GlpiError> {
        let mut query = SearchQuery::new("Ticket").and(
            ticket_field::REQUESTER,
            SearchType::Equals,
            user_id.to_string(),
        );
        if open_only {
            query = query.and(ticket_field::STATUS, SearchType::Equals, "notold");
        }
        let query = query
            .display(&[
                ticket_field::NAME,
                ticket_field::STATUS,
                ticket_field::DATE_MOD,
                ticket_field::ENTITY,
            ])
            .sort(ticket_field::DATE_MOD, Order::Desc);
        // Page after page while GLPI says more remain (206).
        let rows = self.search_rows(&query, REQUESTER_TICKET_ROWS).await?;
        Ok(rows.iter().filter_map(TicketSummary::from_row).collect())
    }

    /// Tickets changed at or after `since` (`YYYY-MM-DD HH:MM:SS`, GLPI server time), oldest
    /// change first: **every** ticket changed in the second `since` itself, plus at most
    /// `limit` tickets changed later. `partial` says more remain: call again from the newest
    /// `date_mod` returned (its second is then read whole).
    ///
    /// GLPI stamps every row one request writes with the same second (a massive action,
    /// the autoclose cron), so one second can hold more rows than a page: a cursor made of
    /// the newest `date_mod` seen would otherwise get the same first page forever. One
    /// request when the first page is not full of the second `since`.
    pub async fn tickets_changed_since(
        &self,
        since: &str,
        limit: u64,
    ) -> Result<(Vec<TicketSummary>, bool), GlpiError> {
        let since = parse_datetime(since)?;
        let limit = limit.max(1);
        let (rows, partial) = self
            .changed_page(&format_datetime(since - SECOND)?, limit)
            .await?;
        let since_text = format_datetime(since)?;
        if !partial || rows.iter().any(|r| r.date_mod > since_text) {
            // The page reaches past `since`: whatever it cut is of its newest second,
            // which the next call (from that second) reads whole.
            return Ok((rows, partial));
        }
        // A full page of the second `since` alone: read that second page after page,
        // then what follows it.
        let mut all = self.tickets_changed_in_second(since).await?;
        let (later, partial) = self.changed_page(&since_text, limit).await?;
        for row in later {
            if !all.iter().any(|r| r.id == row.id) {
                all.push(row);
            }
        }
        Ok((all, partial))
    }

    /// One page of tickets whose `date_mod` is strictly after `after`, oldest first.
    async fn changed_page(
        &self,
        after: &str,
        limit: u64,
    ) -> Result<(Vec<TicketSummary>, bool), GlpiError> {
        let query = SearchQuery::new("Ticket")
            .and(ticket_field::DATE_MOD, SearchType::MoreThan, after)
            .display(&summary_fields())
            .sort(ticket_field::DATE_MOD, Order::Asc)
            .range(0, limit - 1);
        let page = self.search(&query).await?;
        let rows = page
            .rows
            .iter()
            .filter_map(TicketSummary::from_row)
            .collect();
        Ok((rows, page.partial))
    }

    /// Every ticket whose `date_mod` is the second `at`, by id, page after page. A ticket
    /// changed again while the pages are read leaves the second and shifts the rows after
    /// it one place back (one would be skipped): when the total moves, the second is read
    /// again (at most three times) and the rows of every read are kept.
    async fn tickets_changed_in_second(
        &self,
        at: time::PrimitiveDateTime,
    ) -> Result<Vec<TicketSummary>, GlpiError> {
        const PAGE: u64 = 200;
        /// More than any one request of GLPI writes in practice; a bound, not a page.
        const MAX_ROWS: u64 = 100_000;
        let query = SearchQuery::new("Ticket")
            .and(
                ticket_field::DATE_MOD,
                SearchType::MoreThan,
                format_datetime(at - SECOND)?,
            )
            .and(
                ticket_field::DATE_MOD,
                SearchType::LessThan,
                format_datetime(at + SECOND)?,
            )
            .display(&summary_fields())
            .sort(ticket_field::ID, Order::Asc);
        let mut all: Vec<TicketSummary> = Vec::new();
        for _attempt in 0..3 {
            let mut start = 0;
            let mut first_total = None;
            let mut steady = true;
            while start < MAX_ROWS {
                let page = self
                    .search(&query.clone().range(start, start + PAGE - 1))
                    .await?;
                if *first_total.get_or_insert(page.total) != page.total {
                    steady = false;
                }
                let got = page.rows.len() as u64;
                for row in page.rows.iter().filter_map(TicketSummary::from_row) {
                    if !all.iter().any(|r| r.id == row.id) {
                        all.push(row);
                    }
                }
                if !page.partial || got == 0 {
                    break;
                }
                start += got;
            }
            if steady {
                break;
            }
        }
        Ok(all)
    }
}

const SECOND: time::Duration = time::Duration::seconds(1);

fn summary_fields() -> [u32; 4] {
    [
        ticket_field::NAME,
        ticket_field::STATUS,
        ticket_field::DATE_MOD,
        ticket_field::ENTITY,
    ]
}

const DATETIME: &[time::format_description::BorrowedFormatItem<'static>] =
    time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");

fn parse_datetime(text: &str) -> Result<time::PrimitiveDateTime, GlpiError> {
    time::PrimitiveDateTime::parse(text.trim(), DATETIME)
        .map_err(|_| GlpiError::InvalidInput(format!("date {text:?} is not YYYY-MM-DD HH:MM:SS")))
}

fn format_datetime(at: time::PrimitiveDateTime) -> Result<String, GlpiError> {
    at.format(DATETIME)
        .map_err(|e| GlpiError::InvalidInput(e.to_string()))
}

/// A created ticket as it was sent, for when GLPI does not let it be read back.
fn ticket_as_sent(id: i64, ticket: &NewTicket, default_entity: Option<i64>) -> Ticket {
    Ticket {
        id,
        entities_id: ticket.entity_id.or(default_entity).unwrap_or(0),
        name: ticket.name.clone(),
        content: ticket.content.clone(),
        status: TicketStatus::New.code(),
        ticket_type: ticket.ticket_type.map_or(0, |t| t as i64),
        urgency: ticket.urgency.map_or(0, i64::from),
        impact: ticket.impact.map_or(0, i64::from),
        priority: ticket.priority.map_or(0, i64::from),
        itilcategories_id: ticket.category_id.unwrap_or(0),
        requesttypes_id: ticket.request_type_id.unwrap_or(0),
        users_id_recipient: 0,
        date: None,
        date_mod: None,
        solvedate: None,
        closedate: None,
        is_deleted: false,
        extra: Map::new(),
    }
}

/// GLPI's `morethan` is strict; step back one second so `since` itself is included.
#[cfg(test)]
fn one_second_before(since: &str) -> Result<String, GlpiError> {
    format_datetime(parse_datetime(since)? - SECOND)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_only_requester_input_matches_transcript() {
        let t = NewTicket {
            name: "Pedido via e-mail".into(),
            content: "<p>x</p>".into(),
            entity_id: Some(1),
            requesters: vec![Actor::email("cliente.sem.conta@example.org")],
            ..Default::default()
        };
        let input = ticket_input(&t, None).unwrap();
        assert_eq!(input["_users_id_requester"], json!(0));
        assert_eq!(
            input["_users_id_requester_notif"],
            json!({"use_notification":[1],"alternative_email":["cliente.sem.conta@example.org"]})
        );
        assert_eq!(input["entities_id"], json!(1));
    }

    #[test]
    fn several_actors_become_aligned_arrays() {
        let t = NewTicket {
            requesters: vec![Actor::user(7), Actor::email("a@b.c")],
            observers: vec![Actor::user(4)],
            ..Default::default()
        };
        let input = ticket_input(&t, Some(3)).unwrap();
        assert_eq!(input["_users_id_requester"], json!([7, 0]));
        assert_eq!(
            input["_users_id_requester_notif"]["alternative_email"],
            json!(["", "a@b.c"])
        );
        assert_eq!(input["_users_id_observer"], json!(4));
        assert_eq!(input["entities_id"], json!(3));
    }

    #[test]
    fn email_only_actor_needs_an_address() {
        let t = NewTicket {
            requesters: vec![Actor {
                user_id: 0,
                email: None,
                notify: true,
            }],
            ..Default::default()
        };
        assert!(matches!(
            ticket_input(&t, None),
            Err(GlpiError::InvalidInput(_))
        ));
    }

    #[test]
    fn since_is_inclusive() {
        assert_eq!(
            one_second_before("2026-11-25 10:13:38").unwrap(),
            "2026-11-25 10:13:37"
        );
        assert_eq!(
            one_second_before("2026-01-01 00:00:00").unwrap(),
            "2025-12-31 23:59:59"
        );
        assert!(one_second_before("yesterday").is_err());
    }
}
