//! Typed snapshots of the simulator's state for tests, and inputs for seeding it.
//! Text fields are given as the user wrote them (GLPI 10's entity encoding removed).

use crate::row::Row;
use crate::state::State;
use serde_json::Value;

/// Role of a ticket actor (`Ticket_User.type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActorKind {
    Requester,
    Assigned,
    Observer,
}

impl ActorKind {
    pub(crate) fn from_type(t: i64) -> ActorKind {
        match t {
            2 => ActorKind::Assigned,
            3 => ActorKind::Observer,
            _ => ActorKind::Requester,
        }
    }
}

/// A `Ticket_User` row.
#[derive(Clone, Debug, PartialEq)]
pub struct SimActor {
    pub id: u64,
    /// 0 for an email-only actor.
    pub users_id: u64,
    pub kind: ActorKind,
    pub use_notification: bool,
    pub alternative_email: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SimTicket {
    pub id: u64,
    pub entities_id: u64,
    pub name: String,
    /// HTML content as sent by the client.
    pub content: String,
    pub status: u8,
    /// 1 incident, 2 request.
    pub ticket_type: u8,
    pub urgency: u8,
    pub impact: u8,
    pub priority: u8,
    pub itilcategories_id: u64,
    pub requesttypes_id: u64,
    pub users_id_recipient: u64,
    pub users_id_lastupdater: u64,
    pub date: String,
    pub date_mod: String,
    pub solvedate: Option<String>,
    pub closedate: Option<String>,
    pub is_deleted: bool,
    pub actors: Vec<SimActor>,
    /// The row exactly as stored (GLPI 10: entity-encoded text).
    pub raw: Value,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SimFollowup {
    pub id: u64,
    pub tickets_id: u64,
    pub users_id: u64,
    pub content: String,
    pub is_private: bool,
    pub requesttypes_id: u64,
    pub date: String,
    pub raw: Value,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SimSolution {
    pub id: u64,
    pub tickets_id: u64,
    pub users_id: u64,
    pub content: String,
    /// 2 waiting approval, 3 accepted, 4 refused.
    pub status: u8,
    pub raw: Value,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SimUser {
    pub id: u64,
    pub login: String,
    pub realname: Option<String>,
    pub firstname: Option<String>,
    pub phone: Option<String>,
    pub phone2: Option<String>,
    pub mobile: Option<String>,
    pub entities_id: u64,
    pub is_active: bool,
    pub is_deleted: bool,
    /// Default email first.
    pub emails: Vec<String>,
    pub raw: Value,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SimContact {
    pub id: u64,
    pub entities_id: u64,
    pub name: String,
    pub firstname: Option<String>,
    pub phone: Option<String>,
    pub phone2: Option<String>,
    pub mobile: Option<String>,
    pub email: Option<String>,
    pub raw: Value,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SimEntity {
    pub id: u64,
    pub name: String,
    pub completename: String,
    /// `None` for the root entity.
    pub parent: Option<u64>,
    /// Value of the Fields-plugin CNPJ field (`cnpjfield`), if the container exists and is set.
    pub cnpj: Option<String>,
    pub raw: Value,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SimDocument {
    pub id: u64,
    pub name: String,
    pub filename: Option<String>,
    pub mime: Option<String>,
    pub sha1sum: Option<String>,
    /// Stored bytes (`None` when the upload was refused).
    pub content: Option<Vec<u8>>,
    /// Items it is linked to: (itemtype, id).
    pub linked_to: Vec<(String, u64)>,
    pub raw: Value,
}

/// A user to seed with [`crate::RunningSim::add_user`].
#[derive(Clone, Debug, Default)]
pub struct NewUser {
    pub login: String,
    pub realname: Option<String>,
    pub firstname: Option<String>,
    /// The first one becomes the default email.
    pub emails: Vec<String>,
    pub phone: Option<String>,
    pub phone2: Option<String>,
    pub mobile: Option<String>,
    /// Default entity (the active entity its logins start in); also the entity of its
    /// profile unless `profile_entity` says otherwise.
    pub entities_id: u64,
    /// Password for Basic / login+password sessions.
    pub password: Option<String>,
    /// Profile id (1 Self-Service when `None`).
    pub profile: Option<u64>,
    /// Entity the profile is given on (`entities_id` when `None`).
    pub profile_entity: Option<u64>,
    /// Whether the profile also covers the sub-entities of its entity.
    pub profile_recursive: bool,
}

impl NewUser {
    pub fn new(login: &str) -> NewUser {
        NewUser {
            login: login.to_string(),
            ..NewUser::default()
        }
    }
}

/// A contact to seed with [`crate::RunningSim::add_contact`].
#[derive(Clone, Debug, Default)]
pub struct NewContact {
    pub name: String,
    pub firstname: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub mobile: Option<String>,
    pub entities_id: u64,
}

fn id(r: &Row, k: &str) -> u64 {
    u64::try_from(r.int(k)).unwrap_or(0)
}

fn small(r: &Row, k: &str) -> u8 {
    u8::try_from(r.int(k)).unwrap_or(0)
}

fn opt_text(st: &State, r: &Row, k: &str) -> Option<String> {
    r.opt_str(k).map(|s| st.plain_text(&s))
}

pub(crate) fn ticket(st: &State, r: &Row) -> SimTicket {
    let tid = r.int("id");
    SimTicket {
        id: id(r, "id"),
        entities_id: id(r, "entities_id"),
        name: st.plain_text(&r.str("name")),
        content: st.plain_text(&r.str("content")),
        status: small(r, "status"),
        ticket_type: small(r, "type"),
        urgency: small(r, "urgency"),
        impact: small(r, "impact"),
        priority: small(r, "priority"),
        itilcategories_id: id(r, "itilcategories_id"),
        requesttypes_id: id(r, "requesttypes_id"),
        users_id_recipient: id(r, "users_id_recipient"),
        users_id_lastupdater: id(r, "users_id_lastupdater"),
        date: r.str("date"),
        date_mod: r.str("date_mod"),
        solvedate: r.opt_str("solvedate"),
        closedate: r.opt_str("closedate"),
        is_deleted: r.int("is_deleted") == 1,
        actors: st
            .ticket_actors(tid)
            .iter()
            .map(|a| SimActor {
                id: id(a, "id"),
                users_id: id(a, "users_id"),
                kind: ActorKind::from_type(a.int("type")),
                use_notification: a.int("use_notification") == 1,
                alternative_email: st.plain_text(&a.str("alternative_email")),
            })
            .collect(),
        raw: r.to_value(),
    }
}

pub(crate) fn followup(st: &State, r: &Row) -> SimFollowup {
    SimFollowup {
        id: id(r, "id"),
        tickets_id: id(r, "items_id"),
        users_id: id(r, "users_id"),
        content: st.plain_text(&r.str("content")),
        is_private: r.int("is_private") == 1,
        requesttypes_id: id(r, "requesttypes_id"),
        date: r.str("date"),
        raw: r.to_value(),
    }
}

pub(crate) fn solution(st: &State, r: &Row) -> SimSolution {
    SimSolution {
        id: id(r, "id"),
        tickets_id: id(r, "items_id"),
        users_id: id(r, "users_id"),
        content: st.plain_text(&r.str("content")),
        status: small(r, "status"),
        raw: r.to_value(),
    }
}

pub(crate) fn user(st: &State, r: &Row) -> SimUser {
    let uid = r.int("id");
    let mut emails: Vec<&Row> = st
        .rows("UserEmail")
        .filter(|e| e.int("users_id") == uid)
        .collect();
    emails.sort_by_key(|e| (1 - e.int("is_default"), e.int("id")));
    SimUser {
        id: id(r, "id"),
        login: st.plain_text(&r.str("name")),
        realname: opt_text(st, r, "realname"),
        firstname: opt_text(st, r, "firstname"),
        phone: opt_text(st, r, "phone"),
        phone2: opt_text(st, r, "phone2"),
        mobile: opt_text(st, r, "mobile"),
        entities_id: id(r, "entities_id"),
        is_active: r.int("is_active") == 1,
        is_deleted: r.int("is_deleted") == 1,
        emails: emails
            .iter()
            .map(|e| st.plain_text(&e.str("email")))
            .collect(),
        raw: r.to_value(),
    }
}

pub(crate) fn contact(st: &State, r: &Row) -> SimContact {
    SimContact {
        id: id(r, "id"),
        entities_id: id(r, "entities_id"),
        name: st.plain_text(&r.str("name")),
        firstname: opt_text(st, r, "firstname"),
        phone: opt_text(st, r, "phone"),
        phone2: opt_text(st, r, "phone2"),
        mobile: opt_text(st, r, "mobile"),
        email: opt_text(st, r, "email"),
        raw: r.to_value(),
    }
}

pub(crate) fn entity(st: &State, r: &Row) -> SimEntity {
    let eid = r.int("id");
    let cnpj = crate::api::items::plugin_fields(st, "Entity")
        .into_iter()
        .filter(|(_, _, f)| f.str("name") == "cnpjfield")
        .find_map(|(_, generated, _)| {
            st.rows(&generated)
                .find(|x| x.int("items_id") == eid)
                .and_then(|x| x.opt_str("cnpjfield"))
        })
        .map(|s| st.plain_text(&s));
    SimEntity {
        id: id(r, "id"),
        name: st.plain_text(&r.str("name")),
        completename: r.str("completename"),
        parent: if eid == 0 {
            None
        } else {
            Some(id(r, "entities_id"))
        },
        cnpj,
        raw: r.to_value(),
    }
}

pub(crate) fn document(st: &State, r: &Row) -> SimDocument {
    let did = r.int("id");
    SimDocument {
        id: id(r, "id"),
        name: st.plain_text(&r.str("name")),
        filename: r.opt_str("filename"),
        mime: r.opt_str("mime"),
        sha1sum: r.opt_str("sha1sum"),
        content: st.files.get(&did).cloned(),
        linked_to: st
            .rows("Document_Item")
            .filter(|l| l.int("documents_id") == did)
            .map(|l| (l.str("itemtype"), id(l, "items_id")))
            .collect(),
        raw: r.to_value(),
    }
}
