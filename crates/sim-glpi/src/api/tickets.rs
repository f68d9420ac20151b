//! Ticket semantics: actors on create, the 1–6 status lifecycle, followups (reopen, close),
//! solutions and tasks.

use super::items::{Act, can, create_generic, visible};
use super::{Ctx, NO_RIGHT};
use crate::params;
use crate::row::value_int;
use crate::schema;
use crate::state::State;
use serde_json::{Map, Value};

/// GLPI's default priority matrix (urgency x impact).
pub(crate) fn priority(urgency: i64, impact: i64) -> i64 {
    const M: [[i64; 5]; 5] = [
        // impact 1..5
        [1, 1, 2, 2, 3], // urgency 1
        [1, 2, 2, 3, 4], // urgency 2
        [2, 2, 3, 4, 5], // urgency 3
        [2, 3, 4, 4, 5], // urgency 4
        [3, 4, 5, 5, 5], // urgency 5
    ];
    let u = (urgency.clamp(1, 5) - 1) as usize;
    let i = (impact.clamp(1, 5) - 1) as usize;
    M[u][i]
}

fn scale(v: Option<&Value>) -> i64 {
    let n = v.map(value_int).unwrap_or(3);
    if (1..=5).contains(&n) { n } else { 3 }
}

fn valid_email(e: &str) -> bool {
    let Some((local, domain)) = e.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !e.contains(' ')
}

/// One actor to add: (users_id, type, use_notification, alternative_email).
type ActorInput = (i64, i64, i64, String);

fn actors_from_input(input: &Map<String, Value>) -> Result<Vec<ActorInput>, String> {
    let mut out = Vec::new();
    for (role, ty) in [("requester", 1), ("assign", 2), ("observer", 3)] {
        if let Some(users) = input.get(&format!("_users_id_{role}")) {
            let ids: Vec<i64> = params::as_list(users).iter().map(value_int).collect();
            let notif = input.get(&format!("_users_id_{role}_notif"));
            let notif_flags: Vec<Value> = notif
                .and_then(|n| n.get("use_notification"))
                .map(params::as_list)
                .unwrap_or_default();
            let emails: Vec<Value> = notif
                .and_then(|n| n.get("alternative_email"))
                .map(params::as_list)
                .unwrap_or_default();
            for (i, uid) in ids.iter().enumerate() {
                let email = emails
                    .get(i)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                let use_notif = notif_flags.get(i).map(value_int).unwrap_or(1);
                if *uid == 0 && email.is_empty() {
                    continue;
                }
                if !email.is_empty() && !valid_email(&email) {
                    return Err(format!("Invalid email address {email}"));
                }
                if out
                    .iter()
                    .any(|(u, t, _, e): &ActorInput| *u == *uid && *t == ty && *e == email)
                {
                    continue;
                }
                out.push((*uid, ty, use_notif, email));
            }
        }
        if let Some(Value::Array(list)) = input.get("_actors").and_then(|a| a.get(role)) {
            for a in list {
                if a.get("itemtype").and_then(Value::as_str) != Some("User") {
                    continue;
                }
                let uid = a.get("items_id").map(value_int).unwrap_or(0);
                let email = a
                    .get("alternative_email")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                if uid == 0 && email.is_empty() {
                    continue;
                }
                out.push((
                    uid,
                    ty,
                    a.get("use_notification").map(value_int).unwrap_or(1),
                    email,
                ));
            }
        }
        // Update-time form: _itil_requester = {"_type":"user","users_id":7,...}
        if let Some(Value::Object(o)) = input.get(&format!("_itil_{role}"))
            && o.get("_type").and_then(Value::as_str) == Some("user")
        {
            let uid = o.get("users_id").map(value_int).unwrap_or(0);
            let email = o
                .get("alternative_email")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            if uid > 0 || !email.is_empty() {
                out.push((
                    uid,
                    ty,
                    o.get("use_notification").map(value_int).unwrap_or(1),
                    email,
                ));
            }
        }
    }
    Ok(out)
}

fn add_actors(st: &mut State, ticket: i64, actors: Vec<ActorInput>) -> bool {
    let mut assigned = false;
    for (uid, ty, notif, email) in actors {
        let exists = st.ticket_actors(ticket).iter().any(|a| {
            a.int("users_id") == uid
                && a.int("type") == ty
                && (uid > 0 || a.str("alternative_email") == email)
        });
        if exists {
            continue;
        }
        st.create_row(
            "Ticket_User",
            &[
                ("tickets_id", Value::from(ticket)),
                ("users_id", Value::from(uid)),
                ("type", Value::from(ty)),
                ("use_notification", Value::from(notif)),
                ("alternative_email", Value::from(email)),
            ],
        );
        assigned |= ty == 2;
    }
    assigned
}

pub(crate) fn create_ticket(
    st: &mut State,
    ctx: &Ctx,
    input: &Map<String, Value>,
) -> Result<i64, String> {
    let entity = input
        .get("entities_id")
        .map(value_int)
        .unwrap_or(ctx.active_entity);
    if st.get("Entity", entity).is_none() || !ctx.active_entities.contains(&entity) {
        return Err(NO_RIGHT.to_string());
    }
    let actors = actors_from_input(input)?;
    let now = st.clock.now();
    let mut row = schema::default_row("Ticket", &now);
    for (k, v) in input {
        if k != "id" && schema::is_column("Ticket", k) {
            row.set(k, v.clone());
        }
    }
    row.set("entities_id", entity);
    let urgency = scale(input.get("urgency"));
    let impact = scale(input.get("impact"));
    row.set("urgency", urgency);
    row.set("impact", impact);
    let keep_priority = input.contains_key("priority") && matches!(ctx.profile_id, 3 | 4);
    if !keep_priority {
        row.set("priority", priority(urgency, impact));
    }
    if !input.contains_key("requesttypes_id") {
        let default = st
            .rows("RequestType")
            .find(|r| r.int("is_helpdesk_default") == 1)
            .map(|r| r.int("id"))
            .unwrap_or(1);
        row.set("requesttypes_id", default);
    }
    if !input.contains_key("type") {
        row.set("type", 1);
    }
    row.set("users_id_recipient", ctx.user_id);
    row.set("users_id_lastupdater", ctx.user_id);
    let status = row.int("status");
    if !(1..=6).contains(&status) {
        row.set("status", 1);
    }
    let date = row.str("date");
    if status >= 5 {
        row.set("solvedate", date.clone());
    }
    if status == 6 {
        row.set("closedate", date);
    }
    row.set("date_mod", now.clone());
    row.set("date_creation", now);
    let id = st.alloc_id("Ticket");
    row.set("id", id);
    st.insert_row("Ticket", id, row);
    if add_actors(st, id, actors)
        && let Some(t) = st.get_mut("Ticket", id)
        && t.int("status") == 1
    {
        t.set("status", 2);
    }
    Ok(id)
}

fn entity_autoclose(st: &State, entity: i64) -> i64 {
    let mut cur = entity;
    loop {
        let v = st
            .get("Entity", cur)
            .map(|e| e.int("autoclose_delay"))
            .unwrap_or(-10);
        if v != -2 || cur == 0 {
            return v;
        }
        cur = st
            .get("Entity", cur)
            .map(|e| e.int("entities_id"))
            .unwrap_or(0);
    }
}

/// Side effects of a status change, as CommonITILObject applies them.
pub(crate) fn change_status(st: &mut State, ticket: i64, new: i64, user: i64) {
    let now = st.clock.now();
    let Some(t) = st.get("Ticket", ticket) else {
        return;
    };
    let old = t.int("status");
    let reopening = (old == 5 || old == 6) && new < 5;
    if let Some(t) = st.get_mut("Ticket", ticket) {
        t.set("status", new);
        match new {
            4 => t.set("begin_waiting_date", now.clone()),
            5 => {
                if t.get("solvedate").is_none_or(Value::is_null) {
                    t.set("solvedate", now.clone());
                }
                t.set("begin_waiting_date", now.clone());
            }
            6 => {
                if t.get("solvedate").is_none_or(Value::is_null) {
                    t.set("solvedate", now.clone());
                }
                t.set("closedate", now.clone());
            }
            _ => {
                t.set("begin_waiting_date", Value::Null);
            }
        }
        if new < 5 {
            t.set("solvedate", Value::Null);
            t.set("closedate", Value::Null);
        }
    }
    if reopening {
        // The last solution waiting for approval is refused.
        let last = st
            .rows("ITILSolution")
            .filter(|s| {
                s.str("itemtype") == "Ticket" && s.int("items_id") == ticket && s.int("status") == 2
            })
            .map(|s| s.int("id"))
            .max();
        if let Some(sid) = last
            && let Some(s) = st.get_mut("ITILSolution", sid)
        {
            s.set("status", 4);
            s.set("date_approval", now);
            s.set("users_id_approval", user);
        }
    }
}

pub(crate) fn update_ticket(
    st: &mut State,
    ctx: &Ctx,
    id: i64,
    input: &Map<String, Value>,
) -> Result<(), Value> {
    let Some(row) = st.get("Ticket", id).cloned() else {
        return Err(Value::Null);
    };
    let old_status = row.int("status");
    let mut input = input.clone();
    input.remove("id");
    if old_status == 6 || ctx.helpdesk {
        input.retain(|k, _| matches!(k.as_str(), "status" | "entities_id" | "itilcategories_id"));
        if input.is_empty() {
            return Err(Value::from(""));
        }
    }
    let actors = actors_from_input(&input).map_err(Value::from)?;
    for (k, v) in &input {
        if schema::is_column("Ticket", k)
            && !matches!(
                k.as_str(),
                "status" | "date_mod" | "users_id_lastupdater" | "users_id_recipient"
            )
            && let Some(t) = st.get_mut("Ticket", id)
        {
            t.set(k, v.clone());
        }
    }
    if (input.contains_key("urgency") || input.contains_key("impact"))
        && let Some(t) = st.get_mut("Ticket", id)
    {
        let u = scale(t.get("urgency"));
        let i = scale(t.get("impact"));
        t.set("urgency", u);
        t.set("impact", i);
        if !(input.contains_key("priority") && matches!(ctx.profile_id, 3 | 4)) {
            t.set("priority", priority(u, i));
        }
    }
    let assigned = add_actors(st, id, actors);
    if let Some(s) = input.get("status").map(value_int) {
        if (1..=6).contains(&s) && s != old_status {
            change_status(st, id, s, ctx.user_id);
        }
    } else if assigned && old_status == 1 {
        change_status(st, id, 2, ctx.user_id);
    }
    st.touch_ticket(id, ctx.user_id);
    Ok(())
}

/// The ITIL parent of a followup/solution input, checked like GLPI does (missing or
/// invisible parent = "permission").
fn parent_ticket(st: &State, ctx: &Ctx, input: &Map<String, Value>) -> Result<i64, String> {
    let itemtype = input
        .get("itemtype")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let items_id = input.get("items_id").map(value_int).unwrap_or(0);
    if itemtype != "Ticket" || items_id <= 0 {
        return Err(NO_RIGHT.to_string());
    }
    let Some(t) = st.get("Ticket", items_id) else {
        return Err(NO_RIGHT.to_string());
    };
    if !can(st, ctx, "Ticket", Act::Read) || !visible(st, ctx, "Ticket", t) {
        return Err(NO_RIGHT.to_string());
    }
    Ok(items_id)
}

pub(crate) fn create_followup(
    st: &mut State,
    ctx: &Ctx,
    input: &Map<String, Value>,
) -> Result<i64, String> {
    let ticket = parent_ticket(st, ctx, input)?;
    let add_close = params::truthy(input.get("add_close"));
    let add_reopen = params::truthy(input.get("add_reopen"));
    let content = input
        .get("content")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if content.is_empty() && !add_close && !add_reopen {
        return Err("You can't add a followup without description".to_string());
    }
    let status = st
        .get("Ticket", ticket)
        .map(|t| t.int("status"))
        .unwrap_or(1);
    if status == 6 && ctx.helpdesk {
        return Err(NO_RIGHT.to_string());
    }
    let author = input
        .get("users_id")
        .map(value_int)
        .filter(|u| *u > 0)
        .unwrap_or(ctx.user_id);
    let id = st.create_row(
        "ITILFollowup",
        &[
            ("itemtype", Value::from("Ticket")),
            ("items_id", Value::from(ticket)),
            ("users_id", Value::from(author)),
            ("content", Value::from(content)),
            (
                "is_private",
                Value::from(input.get("is_private").map(value_int).unwrap_or(0)),
            ),
            (
                "requesttypes_id",
                Value::from(input.get("requesttypes_id").map(value_int).unwrap_or(0)),
            ),
        ],
    );
    if let Some(d) = input.get("date").and_then(Value::as_str)
        && let Some(r) = st.get_mut("ITILFollowup", id)
    {
        r.set("date", d);
    }
    followup_effects(st, ctx, ticket, status, input, add_close, add_reopen);
    Ok(id)
}

fn followup_effects(
    st: &mut State,
    ctx: &Ctx,
    ticket: i64,
    status: i64,
    input: &Map<String, Value>,
    add_close: bool,
    add_reopen: bool,
) {
    let actors = st.ticket_actors(ticket);
    let is_requester = actors
        .iter()
        .any(|a| a.int("users_id") == ctx.user_id && a.int("type") == 1);
    let is_assigned = actors
        .iter()
        .any(|a| a.int("users_id") == ctx.user_id && a.int("type") == 2);
    let has_assignee = actors.iter().any(|a| a.int("type") == 2);
    let no_reopen = params::truthy(input.get("_no_reopen"));
    let reopen_to = if has_assignee { 2 } else { 1 };
    if add_close && status == 5 {
        let now = st.clock.now();
        if let Some(t) = st.get_mut("Ticket", ticket) {
            t.set("status", 6);
            t.set("closedate", now.clone());
        }
        let last = st
            .rows("ITILSolution")
            .filter(|s| {
                s.str("itemtype") == "Ticket" && s.int("items_id") == ticket && s.int("status") == 2
            })
            .map(|s| s.int("id"))
            .max();
        if let Some(sid) = last
            && let Some(s) = st.get_mut("ITILSolution", sid)
        {
            s.set("status", 3);
            s.set("date_approval", now);
            s.set("users_id_approval", ctx.user_id);
        }
    } else if add_reopen && (status == 5 || status == 6) {
        change_status(st, ticket, reopen_to, ctx.user_id);
    } else if let Some(p) = input.get("pending").map(value_int) {
        if p == 1 && status != 4 {
            change_status(st, ticket, 4, ctx.user_id);
        }
    } else if !no_reopen && is_requester && !is_assigned && matches!(status, 4 | 5) {
        change_status(st, ticket, reopen_to, ctx.user_id);
    } else if let Some(s) = input.get("_status").map(value_int)
        && (1..=6).contains(&s)
        && s != status
    {
        change_status(st, ticket, s, ctx.user_id);
    }
    st.touch_ticket(ticket, ctx.user_id);
}

pub(crate) fn create_solution(
    st: &mut State,
    ctx: &Ctx,
    input: &Map<String, Value>,
) -> Result<i64, String> {
    let ticket = parent_ticket(st, ctx, input)?;
    if ctx.helpdesk {
        return Err(NO_RIGHT.to_string());
    }
    let (status, entity) = st
        .get("Ticket", ticket)
        .map(|t| (t.int("status"), t.int("entities_id")))
        .unwrap_or((1, 0));
    if status == 5 || status == 6 {
        return Err(
            "The item is already solved, did anyone pushed a solution before you?".to_string(),
        );
    }
    let close_now = entity_autoclose(st, entity) == 0;
    let id = st.create_row(
        "ITILSolution",
        &[
            ("itemtype", Value::from("Ticket")),
            ("items_id", Value::from(ticket)),
            (
                "solutiontypes_id",
                Value::from(input.get("solutiontypes_id").map(value_int).unwrap_or(0)),
            ),
            (
                "content",
                input.get("content").cloned().unwrap_or(Value::from("")),
            ),
            ("users_id", Value::from(ctx.user_id)),
            ("status", Value::from(if close_now { 3 } else { 2 })),
        ],
    );
    change_status(st, ticket, 5, ctx.user_id);
    if close_now {
        change_status(st, ticket, 6, ctx.user_id);
    }
    st.touch_ticket(ticket, ctx.user_id);
    Ok(id)
}

pub(crate) fn create_task(
    st: &mut State,
    ctx: &Ctx,
    input: &Map<String, Value>,
) -> Result<i64, String> {
    let ticket = input.get("tickets_id").map(value_int).unwrap_or(0);
    let Some(t) = st.get("Ticket", ticket) else {
        return Err(NO_RIGHT.to_string());
    };
    if !visible(st, ctx, "Ticket", t) {
        return Err(NO_RIGHT.to_string());
    }
    let mut input = input.clone();
    input
        .entry("users_id".to_string())
        .or_insert(Value::from(ctx.user_id));
    let id = create_generic(st, ctx, "TicketTask", &input)?;
    st.touch_ticket(ticket, ctx.user_id);
    Ok(id)
}

pub(crate) fn create_ticket_user(
    st: &mut State,
    ctx: &Ctx,
    input: &Map<String, Value>,
) -> Result<i64, String> {
    let ticket = input.get("tickets_id").map(value_int).unwrap_or(0);
    if st.get("Ticket", ticket).is_none() {
        return Err(NO_RIGHT.to_string());
    }
    let ty = input.get("type").map(value_int).unwrap_or(1);
    let id = create_generic(st, ctx, "Ticket_User", input)?;
    if ty == 2
        && st
            .get("Ticket", ticket)
            .is_some_and(|t| t.int("status") == 1)
    {
        change_status(st, ticket, 2, ctx.user_id);
    }
    st.touch_ticket(ticket, ctx.user_id);
    Ok(id)
}
