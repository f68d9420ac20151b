//! The in-memory GLPI: items by itemtype, sessions, credentials, stored files, counters.

use crate::clock::Clock;
use crate::config::{GlpiVersion, SimConfig, random_hex};
use crate::faults::Counters;
use crate::row::Row;
use crate::schema;
use crate::text;
use base64::Engine;
use rand::Rng;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};

/// One API session (what GLPI keeps in `$_SESSION`).
#[derive(Clone, Debug)]
pub(crate) struct Session {
    pub(crate) user_id: i64,
    pub(crate) profile_id: i64,
    pub(crate) active_entity: i64,
    /// `1` right after login, `true` after changeActiveEntities (as GLPI answers).
    pub(crate) recursive: Value,
    pub(crate) active_entities: Vec<i64>,
    pub(crate) calls: u64,
}

/// The item type whose rows are indexed by ticket.
const ACTOR_TYPE: &str = "Ticket_User";

pub(crate) struct State {
    pub(crate) mode: GlpiVersion,
    pub(crate) clock: Clock,
    /// `http://127.0.0.1:PORT`
    pub(crate) origin: String,
    pub(crate) app_token: String,
    pub(crate) list_limit: usize,
    pub(crate) session_id_length: usize,
    pub(crate) items: BTreeMap<String, BTreeMap<i64, Row>>,
    /// `Ticket_User` row ids by ticket, so a ticket's actors are found without
    /// scanning every actor row. Kept by `insert_row`/`remove_row`; `None` after
    /// an in-place edit of a `Ticket_User` row (rebuilt when next needed).
    actors_by_ticket: std::cell::RefCell<Option<HashMap<i64, Vec<i64>>>>,
    pub(crate) next_id: BTreeMap<String, i64>,
    pub(crate) sessions: HashMap<String, Session>,
    pub(crate) passwords: HashMap<i64, String>,
    pub(crate) api_tokens: HashMap<i64, String>,
    pub(crate) files: HashMap<i64, Vec<u8>>,
    pub(crate) plugin_types: Vec<String>,
    pub(crate) counters: Counters,
}

/// The Super-Admin profile row of a fresh install (rights as GLPI 11.0.8 reports them).
const SUPER_ADMIN_PROFILE: &str = r#"{"id":4,"name":"Super-Admin","interface":"central","is_default":0,"helpdesk_hardware":3,"helpdesk_item_type":["Computer","Monitor","NetworkEquipment","Peripheral","Phone","Printer","Software","DCRoom","Rack","Enclosure","Database"],"use_mentions":1,"ticket_status":[],"date_mod":null,"comment":"","problem_status":[],"create_ticket_on_login":0,"tickettemplates_id":0,"changetemplates_id":0,"problemtemplates_id":0,"change_status":null,"managed_domainrecordtypes":[-1],"date_creation":null,"2fa_enforced":0,"last_rights_update":null,"agent":19,"appliance":31,"backup":1045,"bookmark_public":23,"budget":127,"cable_management":31,"calendar":23,"cartridge":3967,"certificate":255,"change":132223,"changevalidation":1044,"cluster":31,"computer":4095,"config":3,"consumable":3967,"contact_enterprise":255,"contract":255,"dashboard":23,"database":31,"datacenter":31,"device":23,"devicesimcard_pinpuk":3,"document":255,"domain":31,"dropdown":23,"entity":3327,"externalevent":1055,"followup":64535,"form":31,"global_validation":0,"group":119,"infocom":23,"internet":159,"inventory":3073,"itilcategory":23,"itilfollowuptemplate":23,"itiltemplate":23,"itilvalidationtemplate":23,"knowbase":15383,"knowbasecategory":23,"license":255,"line":255,"lineoperator":119,"link":159,"location":23,"locked_field":6,"logs":1,"monitor":4095,"networking":4095,"notification":23,"oauth_client":31,"password_update":1,"pendingreason":31,"peripheral":4095,"personalization":3,"phone":4095,"planning":3073,"printer":4095,"problem":1151,"profile":23,"project":1151,"projecttask":1145,"queuednotification":31,"recurrentchange":31,"refusedequipment":19,"reminder_public":159,"reports":1,"reservation":1055,"rssfeed_public":159,"rule_asset":1047,"rule_change":1047,"rule_dictionnary_dropdown":23,"rule_dictionnary_printer":23,"rule_dictionnary_software":23,"rule_import":23,"rule_ldap":23,"rule_location":23,"rule_mailcollector":23,"rule_problem":1047,"rule_softwarecategories":23,"rule_ticket":1047,"search_config":3072,"show_group_hardware":1,"slm":279,"snmpcredential":31,"software":4095,"solutiontemplate":23,"state":23,"statistic":1,"system_logs":1,"task":64535,"taskcategory":23,"tasktemplate":23,"ticket":523295,"ticketcost":23,"ticketrecurrent":23,"ticketvalidation":15376,"transfer":23,"typedoc":23,"unmanaged":27,"user":15519}"#;

const PROFILES: &[(i64, &str, &str)] = &[
    (1, "Self-Service", "helpdesk"),
    (2, "Observer", "central"),
    (3, "Admin", "central"),
    (4, "Super-Admin", "central"),
    (5, "Hotliner", "central"),
    (6, "Technician", "central"),
    (7, "Supervisor", "central"),
    (8, "Read-Only", "central"),
];

const REQUEST_TYPES: &[(i64, &str)] = &[
    (1, "Helpdesk"),
    (2, "E-Mail"),
    (3, "Phone"),
    (4, "Direct"),
    (5, "Written"),
    (6, "Other"),
];

/// Fresh-install users: (id, login, password, profile).
const USERS: &[(i64, &str, &str, i64)] = &[
    (2, "glpi", "", 4),
    (3, "post-only", "postonly", 1),
    (4, "tech", "tech", 6),
    (5, "normal", "normal", 2),
    (6, "glpi-system", "", 0),
];

impl State {
    /// The state of a clean GLPI install (ids as in the recorded transcripts).
    pub(crate) fn fresh(cfg: &SimConfig, clock: Clock, origin: String) -> State {
        let mut st = State {
            mode: cfg.mode,
            clock,
            origin,
            app_token: cfg.app_token.clone(),
            list_limit: cfg.list_limit.max(1),
            session_id_length: cfg.session_id_length.clamp(22, 256),
            items: BTreeMap::new(),
            actors_by_ticket: std::cell::RefCell::new(None),
            next_id: BTreeMap::new(),
            sessions: HashMap::new(),
            passwords: HashMap::new(),
            api_tokens: HashMap::new(),
            files: HashMap::new(),
            plugin_types: Vec::new(),
            counters: Counters::default(),
        };
        let now = st.clock.now();

        let mut root = schema::default_row("Entity", &now);
        root.set("id", 0);
        root.set("name", "Root entity");
        root.set("entities_id", Value::Null);
        root.set("completename", "Root entity");
        for (_, v) in root.iter_mut() {
            if *v == json!(-2) {
                *v = json!(0);
            }
        }
        root.set("autoclose_delay", -10);
        root.set("tickettype", 1);
        root.set("inquest_config", 1);
        root.set("calendars_id", 0);
        root.set("auto_assign_mode", -10);
        st.insert_row("Entity", 0, root);
        st.next_id.insert("Entity".into(), 1);

        for (id, name, interface) in PROFILES {
            let mut row = Row::new();
            if *id == 4 {
                if let Ok(Value::Object(map)) = serde_json::from_str::<Value>(SUPER_ADMIN_PROFILE) {
                    for (k, v) in map {
                        row.set(&k, v);
                    }
                }
            } else {
                row.set("id", *id);
                row.set("name", *name);
                row.set("interface", *interface);
                row.set("is_default", i64::from(*id == 1));
                row.set("date_mod", Value::Null);
                row.set("comment", "");
            }
            st.insert_row("Profile", *id, row);
        }
        st.next_id.insert("Profile".into(), 9);

        for (id, name) in REQUEST_TYPES {
            let mut row = schema::default_row("RequestType", &now);
            row.set("id", *id);
            row.set("name", *name);
            row.set("is_helpdesk_default", i64::from(*id == 1));
            row.set("is_followup_default", i64::from(*id == 1));
            row.set("is_mail_default", i64::from(*id == 2));
            row.set("is_mailfollowup_default", i64::from(*id == 2));
            st.insert_row("RequestType", *id, row);
        }
        st.next_id.insert("RequestType".into(), 7);

        let mut pu_id = 2;
        for (id, login, password, profile) in USERS {
            let mut row = schema::default_row("User", &now);
            row.set("id", *id);
            row.set("name", *login);
            if *id == 6 {
                row.set("is_active", 0);
            }
            st.insert_row("User", *id, row);
            let password = if *id == 2 {
                cfg.glpi_password.as_str()
            } else {
                password
            };
            if !password.is_empty() {
                st.passwords.insert(*id, password.to_string());
            }
            let token = match *id {
                2 => cfg.glpi_user_token.clone(),
                4 => cfg.tech_user_token.clone(),
                _ => random_hex(40),
            };
            st.api_tokens.insert(*id, token);
            if *profile > 0 {
                let mut pu = schema::default_row("Profile_User", &now);
                pu.set("id", pu_id);
                pu.set("users_id", *id);
                pu.set("profiles_id", *profile);
                pu.set("entities_id", 0);
                pu.set("is_recursive", 1);
                st.insert_row("Profile_User", pu_id, pu);
                pu_id += 1;
            }
        }
        st.next_id.insert("User".into(), 7);
        st.next_id.insert("Profile_User".into(), pu_id);
        st
    }

    pub(crate) fn is_v11(&self) -> bool {
        self.mode == GlpiVersion::V11
    }

    /// Base of Location/link/hateoas URLs.
    pub(crate) fn api_url(&self) -> String {
        match self.mode {
            GlpiVersion::V10 => format!("{}/apirest.php", self.origin),
            GlpiVersion::V11 => format!("{}/api.php/v1", self.origin),
        }
    }

    /// Text as GLPI stores it: entity-encoded in 10, raw in 11.
    pub(crate) fn store_text(&self, s: &str) -> String {
        match self.mode {
            GlpiVersion::V10 => text::encode(s),
            GlpiVersion::V11 => s.to_string(),
        }
    }

    /// Text as the user typed it (decoded from storage).
    pub(crate) fn plain_text(&self, s: &str) -> String {
        match self.mode {
            GlpiVersion::V10 => text::decode(s),
            GlpiVersion::V11 => s.to_string(),
        }
    }

    pub(crate) fn rows(&self, itemtype: &str) -> impl Iterator<Item = &Row> {
        self.items
            .get(itemtype)
            .into_iter()
            .flat_map(|t| t.values())
    }

    pub(crate) fn get(&self, itemtype: &str, id: i64) -> Option<&Row> {
        self.items.get(itemtype)?.get(&id)
    }

    pub(crate) fn get_mut(&mut self, itemtype: &str, id: i64) -> Option<&mut Row> {
        if itemtype == ACTOR_TYPE {
            // The caller may change `tickets_id`.
            *self.actors_by_ticket.get_mut() = None;
        }
        self.items.get_mut(itemtype)?.get_mut(&id)
    }

    pub(crate) fn insert_row(&mut self, itemtype: &str, id: i64, row: Row) {
        if itemtype == ACTOR_TYPE {
            let ticket = row.int("tickets_id");
            let replaced = self
                .items
                .get(ACTOR_TYPE)
                .and_then(|rows| rows.get(&id))
                .map(|old| old.int("tickets_id"));
            if let Some(index) = self.actors_by_ticket.get_mut() {
                if let Some(old) = replaced
                    && let Some(ids) = index.get_mut(&old)
                {
                    ids.retain(|r| *r != id);
                }
                index.entry(ticket).or_default().push(id);
            }
        }
        self.items
            .entry(itemtype.to_string())
            .or_default()
            .insert(id, row);
    }

    pub(crate) fn remove_row(&mut self, itemtype: &str, id: i64) -> Option<Row> {
        let removed = self.items.get_mut(itemtype)?.remove(&id);
        if itemtype == ACTOR_TYPE
            && let (Some(row), Some(index)) = (&removed, self.actors_by_ticket.get_mut())
            && let Some(ids) = index.get_mut(&row.int("tickets_id"))
        {
            ids.retain(|r| *r != id);
        }
        removed
    }

    pub(crate) fn alloc_id(&mut self, itemtype: &str) -> i64 {
        let next = self.next_id.entry(itemtype.to_string()).or_insert(1);
        let id = *next;
        *next += 1;
        id
    }

    /// Insert a new row of `itemtype` with defaults, then `fields`; returns its id.
    pub(crate) fn create_row(&mut self, itemtype: &str, fields: &[(&str, Value)]) -> i64 {
        let now = self.clock.now();
        let id = self.alloc_id(itemtype);
        let mut row = schema::default_row(itemtype, &now);
        row.set("id", id);
        for (k, v) in fields {
            row.set(k, v.clone());
        }
        self.insert_row(itemtype, id, row);
        id
    }

    // ------------------------------------------------------------------ entities

    pub(crate) fn entity_completename(&self, id: i64) -> String {
        self.get("Entity", id)
            .map(|r| r.str("completename"))
            .unwrap_or_default()
    }

    /// The entity and all its descendants, ascending ids.
    pub(crate) fn entity_subtree(&self, id: i64) -> Vec<i64> {
        let mut out = vec![id];
        let mut i = 0;
        while i < out.len() {
            let parent = out[i];
            for row in self.rows("Entity") {
                let rid = row.int("id");
                if rid != 0 && row.int("entities_id") == parent && !out.contains(&rid) {
                    out.push(rid);
                }
            }
            i += 1;
        }
        out.sort_unstable();
        out
    }

    pub(crate) fn entity_ancestors(&self, id: i64) -> Vec<i64> {
        let mut out = Vec::new();
        let mut cur = id;
        while cur != 0 {
            let Some(row) = self.get("Entity", cur) else {
                break;
            };
            cur = row.int("entities_id");
            out.push(cur);
        }
        out.reverse();
        out
    }

    /// Create an entity under `parent` with GLPI's computed columns.
    pub(crate) fn add_entity_row(
        &mut self,
        name_stored: &str,
        parent: i64,
        extra: Vec<(String, Value)>,
    ) -> i64 {
        let parent_complete = self.entity_completename(parent);
        let parent_level = self
            .get("Entity", parent)
            .map(|r| r.int("level"))
            .unwrap_or(1);
        let raw_name = self.plain_text(name_stored);
        let id = self.alloc_id("Entity");
        let now = self.clock.now();
        let mut row = schema::default_row("Entity", &now);
        row.set("id", id);
        row.set("name", name_stored);
        row.set("entities_id", parent);
        row.set("completename", format!("{parent_complete} > {raw_name}"));
        row.set("level", parent_level + 1);
        row.set("sons_cache", format!("{{\"{id}\":{id}}}"));
        let mut anc = self.entity_ancestors(parent);
        anc.push(parent);
        row.set(
            "ancestors_cache",
            serde_json::to_string(&anc).unwrap_or_default(),
        );
        for (k, v) in extra {
            if schema::is_column("Entity", &k) && k != "id" {
                row.set(&k, v);
            }
        }
        self.insert_row("Entity", id, row);
        id
    }

    // ------------------------------------------------------------------ sessions

    pub(crate) fn new_session_token(&self) -> String {
        let mut rng = rand::thread_rng();
        match self.mode {
            GlpiVersion::V10 => (0..self.session_id_length)
                .map(|_| char::from_digit(rng.gen_range(0..32), 32).unwrap_or('0'))
                .collect(),
            GlpiVersion::V11 => {
                let bytes: Vec<u8> = (0..105).map(|_| rng.r#gen::<u8>()).collect();
                base64::engine::general_purpose::STANDARD_NO_PAD.encode(bytes)
            }
        }
    }

    /// Whether a token has the shape this GLPI issues (11 answers 400 for anything else).
    pub(crate) fn token_well_formed(&self, token: &str) -> bool {
        match self.mode {
            GlpiVersion::V10 => true,
            GlpiVersion::V11 => {
                token.len() >= 100
                    && token.chars().all(|c| {
                        c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=' | '-' | '_')
                    })
            }
        }
    }

    pub(crate) fn open_session(&mut self, user_id: i64) -> String {
        let pu = self
            .rows("Profile_User")
            .filter(|r| r.int("users_id") == user_id)
            .min_by_key(|r| (1 - r.int("is_default_profile"), r.int("id")))
            .cloned();
        let profile_id = pu.map(|r| r.int("profiles_id")).unwrap_or(0);
        let (active_entity, active_entities, recursive) = self.login_entities(user_id, profile_id);
        let token = self.new_session_token();
        self.sessions.insert(
            token.clone(),
            Session {
                user_id,
                profile_id,
                active_entity,
                recursive,
                active_entities,
                calls: 0,
            },
        );
        self.counters.sessions_opened += 1;
        token
    }

    /// The active entities a login gives (`Session::changeProfile`): the user's default
    /// entity (`glpi_users.entities_id`) with its profile's recursion when the profile is on
    /// that very entity, else the default entity and its sub-entities when a recursive
    /// profile entity covers it, else "all" the profile's entities (the active entity is
    /// then the first of them).
    pub(crate) fn login_entities(&self, user_id: i64, profile_id: i64) -> (i64, Vec<i64>, Value) {
        let default = self
            .get("User", user_id)
            .map(|u| u.int("entities_id"))
            .unwrap_or(0);
        let entities = self.profile_entities_of(user_id, profile_id);
        if let Some((id, recursive)) = entities.iter().find(|(id, _)| *id == default)
            && let Some((active, list)) =
                self.changed_active_entities(user_id, profile_id, Some(*id), *recursive)
        {
            return (active, list, Value::from(i64::from(*recursive)));
        }
        if let Some((active, list)) =
            self.changed_active_entities(user_id, profile_id, Some(default), true)
        {
            return (active, list, Value::Bool(true));
        }
        match self.changed_active_entities(user_id, profile_id, None, false) {
            Some((active, list)) => (active, list, Value::Bool(false)),
            None => (0, Vec::new(), Value::Bool(false)),
        }
    }

    /// The entities of a user's profile as GLPI loads them at login
    /// (`Session::initEntityProfiles`): ordered by complete name, a recursive row winning
    /// over a plain one on the same entity.
    pub(crate) fn profile_entities_of(&self, user_id: i64, profile_id: i64) -> Vec<(i64, bool)> {
        let mut rows: Vec<(String, i64, bool)> = self
            .rows("Profile_User")
            .filter(|r| r.int("users_id") == user_id && r.int("profiles_id") == profile_id)
            .map(|r| {
                let e = r.int("entities_id");
                (self.entity_completename(e), e, r.int("is_recursive") == 1)
            })
            .collect();
        rows.sort();
        let mut out: Vec<(i64, bool)> = Vec::new();
        for (_, e, recursive) in rows {
            match out.iter_mut().find(|(id, _)| *id == e) {
                Some(entry) if recursive => entry.1 = true,
                Some(_) => {}
                None => out.push((e, recursive)),
            }
        }
        out
    }

    /// `Session::changeActiveEntities($ID, $is_recursive)` for a user's profile: the new
    /// active entity and active entity list, or None when GLPI answers `false`. `None` is
    /// "all": every profile entity (with its sub-entities when recursive), the first one
    /// active.
    pub(crate) fn changed_active_entities(
        &self,
        user_id: i64,
        profile_id: i64,
        entity: Option<i64>,
        recursive: bool,
    ) -> Option<(i64, Vec<i64>)> {
        let entities = self.profile_entities_of(user_id, profile_id);
        let mut list: Vec<i64> = Vec::new();
        let push = |id: i64, list: &mut Vec<i64>| {
            if !list.contains(&id) {
                list.push(id);
            }
        };
        match entity {
            None => {
                for (id, rec) in &entities {
                    push(*id, &mut list);
                    if *rec {
                        for sub in self.entity_subtree(*id) {
                            push(sub, &mut list);
                        }
                    }
                }
            }
            Some(id) => {
                self.get("Entity", id)?;
                let ancestors = self.entity_ancestors(id);
                let ok = entities.iter().any(|(e, rec)| {
                    (*e == id || (id != 0 && ancestors.contains(e))) && (!recursive || *rec)
                });
                if !ok {
                    return None;
                }
                push(id, &mut list);
                if recursive {
                    for sub in self.entity_subtree(id) {
                        push(sub, &mut list);
                    }
                }
            }
        }
        let active = *list.first()?;
        Some((active, list))
    }

    pub(crate) fn user_by_login(&self, login: &str) -> Option<&Row> {
        self.rows("User")
            .find(|r| r.str("name").eq_ignore_ascii_case(&self.store_text(login)))
    }

    pub(crate) fn user_by_api_token(&self, token: &str) -> Option<i64> {
        self.api_tokens
            .iter()
            .find(|(_, t)| t.as_str() == token)
            .map(|(id, _)| *id)
            .filter(|id| {
                self.get("User", *id)
                    .is_some_and(|u| u.int("is_active") == 1 && u.int("is_deleted") == 0)
            })
    }

    pub(crate) fn check_password(&self, login: &str, password: &str) -> Option<i64> {
        let user = self.user_by_login(login)?;
        let id = user.int("id");
        (user.int("is_active") == 1 && self.passwords.get(&id).is_some_and(|p| p == password))
            .then_some(id)
    }

    /// Interface of a profile: `helpdesk` (Self-Service) or `central`.
    pub(crate) fn profile_is_helpdesk(&self, profile_id: i64) -> bool {
        self.get("Profile", profile_id)
            .is_some_and(|p| p.str("interface") == "helpdesk")
    }

    pub(crate) fn login_name(&self, user_id: i64) -> String {
        self.get("User", user_id)
            .map(|u| u.str("name"))
            .unwrap_or_default()
    }

    /// The ticket's actors: its `Ticket_User` rows (users_id, type,
    /// alternative_email), in id order.
    pub(crate) fn ticket_actors(&self, ticket: i64) -> Vec<Row> {
        let mut cached = self.actors_by_ticket.borrow_mut();
        let index = cached.get_or_insert_with(|| {
            let mut index: HashMap<i64, Vec<i64>> = HashMap::new();
            for (id, row) in self.items.get(ACTOR_TYPE).into_iter().flatten() {
                index.entry(row.int("tickets_id")).or_default().push(*id);
            }
            index
        });
        let mut ids = index.get(&ticket).cloned().unwrap_or_default();
        drop(cached);
        ids.sort_unstable();
        let rows = self.items.get(ACTOR_TYPE);
        ids.iter()
            .filter_map(|id| rows.and_then(|rows| rows.get(id)))
            .filter(|r| r.int("tickets_id") == ticket)
            .cloned()
            .collect()
    }

    pub(crate) fn touch_ticket(&mut self, ticket: i64, user: i64) {
        let now = self.clock.now();
        if let Some(t) = self.get_mut("Ticket", ticket) {
            t.set("date_mod", now);
            t.set("users_id_lastupdater", user);
        }
    }
}
