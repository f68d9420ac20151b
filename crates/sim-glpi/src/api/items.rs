//! Item CRUD: GET one / list / sub-items, POST (single, bulk, multipart), PUT/PATCH, DELETE.

use super::{Ctx, NO_RIGHT, Req, Resp, error, error_value, tickets};
use crate::params::{self, truthy};
use crate::row::{Out, Row, value_int};
use crate::schema;
use crate::search;
use crate::state::State;
use crate::text;
use crate::view::{self, ViewOpts};
use serde_json::{Map, Value};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Act {
    Read,
    Create,
    Update,
    Delete,
}

/// Coarse rights of the stock profiles.
pub(crate) fn can(st: &State, ctx: &Ctx, itemtype: &str, act: Act) -> bool {
    match ctx.profile_id {
        3 | 4 => true,
        1 => match itemtype {
            "Ticket" | "ITILFollowup" | "Document" | "Document_Item" => act != Act::Delete,
            "ITILSolution" | "TicketTask" | "Ticket_User" | "RequestType" | "ITILCategory"
            | "User" | "UserEmail" | "Entity" => act == Act::Read,
            _ => false,
        },
        2 | 8 => act == Act::Read && itemtype != "Profile",
        0 => false,
        _ => {
            let _ = st;
            match itemtype {
                "Profile" | "Config" | "Profile_User" => false,
                "Entity" => act == Act::Read,
                "PluginFieldsContainer" | "PluginFieldsField" => act == Act::Read,
                _ => true,
            }
        }
    }
}

/// Whether the session sees this row (active entities, Self-Service sees its own tickets).
pub(crate) fn visible(st: &State, ctx: &Ctx, itemtype: &str, row: &Row) -> bool {
    if itemtype == "Entity" {
        return ctx.active_entities.contains(&row.int("id"));
    }
    if schema::entity_assigned(itemtype) && row.has("entities_id") {
        let e = row.int("entities_id");
        let recursive_up = row.int("is_recursive") == 1
            && ctx
                .active_entities
                .iter()
                .any(|a| st.entity_ancestors(*a).contains(&e));
        if !ctx.active_entities.contains(&e) && !recursive_up {
            return false;
        }
    }
    if ctx.helpdesk && itemtype == "Ticket" {
        let id = row.int("id");
        return row.int("users_id_recipient") == ctx.user_id
            || st
                .ticket_actors(id)
                .iter()
                .any(|a| a.int("users_id") == ctx.user_id && a.int("type") == 1);
    }
    true
}

fn view_opts(req: &Req, st: &State, params: &Map<String, Value>) -> ViewOpts {
    ViewOpts {
        hateoas: params.get("get_hateoas").is_none_or(|v| truthy(Some(v))),
        expand_dropdowns: truthy(params.get("expand_dropdowns")),
        decode: !st.is_v11()
            && req
                .headers
                .get("x-glpi-sanitized-content")
                .is_some_and(|v| v.eq_ignore_ascii_case("false")),
        only_id: truthy(params.get("only_id")),
    }
}

fn resolve(st: &State, name: &str) -> Result<String, Resp> {
    schema::canonical(name, &st.plugin_types).ok_or_else(|| {
        error(
            st,
            400,
            "ERROR_RESOURCE_NOT_FOUND_NOR_COMMONDBTM",
            "resource not found or not an instance of CommonDBTM",
            true,
        )
    })
}

fn parse_id(s: &str) -> Option<i64> {
    s.parse().ok()
}

pub(super) fn dispatch(st: &mut State, ctx: &Ctx, req: &Req, params: &Map<String, Value>) -> Resp {
    let seg = &req.segments;
    let first = seg[0].as_str();
    if first.eq_ignore_ascii_case("search") || first.eq_ignore_ascii_case("listSearchOptions") {
        let Some(name) = seg.get(1) else {
            return error(st, 400, "ERROR_RESOURCE_MISSING", "resource missing", true);
        };
        let itemtype = match resolve(st, name) {
            Ok(t) => t,
            Err(r) => return r,
        };
        return if first.eq_ignore_ascii_case("search") {
            search::search(st, ctx, &itemtype, params)
        } else {
            search::list_options(st, &itemtype)
        };
    }
    let itemtype = match resolve(st, first) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let id = seg.get(1).and_then(|s| parse_id(s));
    let child = seg.get(2);
    match req.method.as_str() {
        "GET" => match (id, child) {
            (Some(id), Some(child)) => {
                let child = match schema::canonical(child, &st.plugin_types) {
                    Some(c) => c,
                    None => {
                        return error(
                            st,
                            400,
                            "ERROR_RESOURCE_NOT_FOUND_NOR_COMMONDBTM",
                            "resource not found or not an instance of CommonDBTM",
                            true,
                        );
                    }
                };
                get_sub_items(st, ctx, req, params, &itemtype, id, &child)
            }
            (Some(id), None) => get_item(st, ctx, req, params, &itemtype, id),
            _ => get_items(st, ctx, req, params, &itemtype),
        },
        "POST" => {
            let target = match child {
                Some(c) if id.is_some() => match schema::canonical(c, &st.plugin_types) {
                    Some(c) => c,
                    None => {
                        return error(
                            st,
                            400,
                            "ERROR_RESOURCE_NOT_FOUND_NOR_COMMONDBTM",
                            "resource not found or not an instance of CommonDBTM",
                            true,
                        );
                    }
                },
                _ => itemtype,
            };
            if let Some(upload) = &req.upload {
                return super::documents::post_multipart(st, ctx, &target, upload);
            }
            post_items(st, ctx, &target, params)
        }
        "PUT" | "PATCH" => put_items(st, ctx, &itemtype, id, params),
        "DELETE" => delete_items(st, ctx, &itemtype, id, params),
        _ => error(
            st,
            405,
            "ERROR_METHOD_NOT_ALLOWED",
            "Method not allowed",
            true,
        ),
    }
}

// ---------------------------------------------------------------------------- reads

fn get_item(
    st: &State,
    ctx: &Ctx,
    req: &Req,
    params: &Map<String, Value>,
    itemtype: &str,
    id: i64,
) -> Resp {
    let Some(row) = st.get(itemtype, id) else {
        return error(st, 404, "ERROR_ITEM_NOT_FOUND", "Item not found", false);
    };
    if !can(st, ctx, itemtype, Act::Read) || !visible(st, ctx, itemtype, row) {
        return error(st, 403, "ERROR_RIGHT_MISSING", NO_RIGHT, false);
    }
    let last_modified = if st.is_v11() {
        None
    } else {
        row.opt_str("date_mod")
            .and_then(|d| crate::clock::http_date(&d))
    };
    if itemtype == "Document" {
        let wants_file = params.get("alt").and_then(Value::as_str) == Some("media")
            || req
                .headers
                .get("accept")
                .is_some_and(|a| a.contains("application/octet-stream"));
        if wants_file {
            return super::documents::download(st, row, last_modified);
        }
    }
    let mut resp = Resp::json(
        200,
        &view::render(st, itemtype, row, view_opts(req, st, params)),
    );
    if let Some(lm) = last_modified {
        resp.headers.insert(0, ("Last-Modified".into(), lm));
    }
    resp
}

/// `range=a-b`; `None` when malformed.
pub(crate) fn parse_range(st: &State, params: &Map<String, Value>) -> Option<(usize, usize)> {
    match params.get("range").and_then(Value::as_str) {
        None => Some((0, st.list_limit - 1)),
        Some(r) => {
            let (a, b) = r.split_once('-')?;
            let a: usize = a.trim().parse().ok()?;
            let b: usize = b.trim().parse().ok()?;
            (a <= b).then_some((a, b))
        }
    }
}

pub(crate) fn page<T: Clone>(
    st: &State,
    params: &Map<String, Value>,
    rows: &[T],
) -> Result<(Vec<T>, usize, usize, usize), Resp> {
    let Some((start, end)) = parse_range(st, params) else {
        return Err(error(st, 400, "ERROR", "Range is not valid", true));
    };
    let total = rows.len();
    if start > total {
        return Err(error(
            st,
            400,
            "ERROR_RANGE_EXCEED_TOTAL",
            &format!("Provided range exceed total count of data: {total}"),
            true,
        ));
    }
    let end_incl = end.min(total.saturating_sub(1));
    let slice: Vec<T> = if total == 0 {
        Vec::new()
    } else {
        rows[start.min(total)..=end_incl.max(start).min(total - 1)].to_vec()
    };
    let slice = if start >= total { Vec::new() } else { slice };
    Ok((slice, start, end_incl, total))
}

fn list_response(
    st: &State,
    req: &Req,
    params: &Map<String, Value>,
    itemtype: &str,
    rows: Vec<Row>,
) -> Resp {
    let (slice, start, end, total) = match page(st, params, &rows) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let opts = view_opts(req, st, params);
    let out = Out::Arr(
        slice
            .iter()
            .map(|r| view::render(st, itemtype, r, opts))
            .collect(),
    );
    let status = if slice.len() < total { 206 } else { 200 };
    let mut resp = Resp::json(status, &out);
    let mut extra = vec![("Accept-Range".to_string(), format!("{itemtype} 1000"))];
    if total > 0 {
        extra.push((
            "Content-Range".to_string(),
            format!("{start}-{end}/{total}"),
        ));
    }
    extra.append(&mut resp.headers);
    resp.headers = extra;
    resp
}

fn filter_and_sort(
    st: &State,
    params: &Map<String, Value>,
    rows: Vec<Row>,
) -> Result<Vec<Row>, Resp> {
    let mut rows = rows;
    if let Some(Value::Object(search)) = params.get("searchText") {
        for (col, pattern) in search {
            let pattern = pattern.as_str().unwrap_or_default().to_string();
            if col == "all" {
                rows.retain(|r| {
                    search::like(&r.str("name"), &pattern)
                        || search::like(&r.str("comment"), &pattern)
                });
                continue;
            }
            if st.is_v11() && rows.first().is_some_and(|r| !r.has(col)) {
                return Err(error(
                    st,
                    400,
                    "ERROR_FIELD_NOT_FOUND",
                    &format!("Field not found: {col}"),
                    true,
                ));
            }
            // As the search engine: the pattern as it comes, against the stored text.
            rows.retain(|r| search::like(&r.str(col), &pattern));
        }
    }
    let sort = params
        .get("sort")
        .and_then(Value::as_str)
        .unwrap_or("id")
        .to_string();
    let desc = params
        .get("order")
        .and_then(Value::as_str)
        .is_some_and(|o| o.eq_ignore_ascii_case("DESC"));
    rows.sort_by(|a, b| {
        search::cmp_values(a.get(&sort), b.get(&sort)).then(a.int("id").cmp(&b.int("id")))
    });
    if desc {
        rows.reverse();
    }
    Ok(rows)
}

fn get_items(
    st: &State,
    ctx: &Ctx,
    req: &Req,
    params: &Map<String, Value>,
    itemtype: &str,
) -> Resp {
    if !can(st, ctx, itemtype, Act::Read) {
        return error(st, 403, "ERROR_RIGHT_MISSING", NO_RIGHT, false);
    }
    let deleted = truthy(params.get("is_deleted"));
    let rows: Vec<Row> = st
        .rows(itemtype)
        .filter(|r| !schema::has_trash(itemtype) || (r.int("is_deleted") == 1) == deleted)
        .filter(|r| itemtype == "Entity" || visible(st, ctx, itemtype, r))
        .cloned()
        .collect();
    match filter_and_sort(st, params, rows) {
        Ok(rows) => list_response(st, req, params, itemtype, rows),
        Err(r) => r,
    }
}

/// Children of a parent row (by the parent's foreign key, or itemtype/items_id).
pub(crate) fn children_of(st: &State, parent: &str, parent_id: i64, child: &str) -> Vec<Row> {
    let fk = schema::parent_fk(parent);
    st.rows(child)
        .filter(|r| {
            if r.has(&fk) {
                r.int(&fk) == parent_id
            } else if r.has("items_id") && r.has("itemtype") {
                r.str("itemtype") == parent && r.int("items_id") == parent_id
            } else {
                false
            }
        })
        .cloned()
        .collect()
}

fn get_sub_items(
    st: &State,
    ctx: &Ctx,
    req: &Req,
    params: &Map<String, Value>,
    parent: &str,
    id: i64,
    child: &str,
) -> Resp {
    let Some(prow) = st.get(parent, id) else {
        return error(st, 404, "ERROR_ITEM_NOT_FOUND", "Item not found", false);
    };
    if !can(st, ctx, parent, Act::Read) || !visible(st, ctx, parent, prow) {
        return error(st, 403, "ERROR_RIGHT_MISSING", NO_RIGHT, false);
    }
    let mut rows = children_of(st, parent, id, child);
    if ctx.helpdesk {
        rows.retain(|r| r.int("is_private") == 0 || r.int("users_id") == ctx.user_id);
    }
    match filter_and_sort(st, params, rows) {
        Ok(rows) => list_response(st, req, params, child, rows),
        Err(r) => r,
    }
}

// ---------------------------------------------------------------------------- writes

fn input_list(params: &Map<String, Value>) -> Option<(Vec<Map<String, Value>>, bool)> {
    match params.get("input")? {
        Value::Object(o) => {
            // PHP arrays: {"0":{..},"1":{..}} is a list of items.
            if !o.is_empty()
                && o.keys().all(|k| k.parse::<usize>().is_ok())
                && o.values().all(Value::is_object)
            {
                let list = params::as_list(&Value::Object(o.clone()));
                return Some((
                    list.into_iter()
                        .filter_map(|v| v.as_object().cloned())
                        .collect(),
                    true,
                ));
            }
            Some((vec![o.clone()], false))
        }
        Value::Array(a) => {
            if a.iter().all(Value::is_object) {
                Some((
                    a.iter().filter_map(|v| v.as_object().cloned()).collect(),
                    true,
                ))
            } else {
                None
            }
        }
        _ => None,
    }
}

fn bad_array(st: &State) -> Resp {
    error(
        st,
        400,
        "ERROR_BAD_ARRAY",
        "input parameter must be an array of objects",
        true,
    )
}

/// Sanitize input as the GLPI version does on write.
pub(crate) fn sanitize(st: &State, input: &Map<String, Value>) -> Map<String, Value> {
    if st.is_v11() {
        return input.clone();
    }
    input
        .iter()
        .map(|(k, v)| (k.clone(), text::map_strings(v, &text::encode)))
        .collect()
}

fn post_items(st: &mut State, ctx: &Ctx, itemtype: &str, params: &Map<String, Value>) -> Resp {
    let Some((inputs, bulk)) = input_list(params) else {
        return bad_array(st);
    };
    let mut results = Vec::new();
    let mut ok_ids = Vec::new();
    let mut failed = 0;
    for input in &inputs {
        let input = sanitize(st, input);
        match create(st, ctx, itemtype, &input) {
            Ok((id, message)) => {
                ok_ids.push(id);
                results.push((Value::from(id), message));
            }
            Err(message) => {
                failed += 1;
                results.push((Value::Bool(false), message));
            }
        }
    }
    let api = st.api_url();
    if !bulk {
        let Some((id, message)) = results.into_iter().next() else {
            return bad_array(st);
        };
        if failed > 0 {
            return error_value(400, "ERROR_GLPI_ADD", Value::String(message));
        }
        let id_num = value_int(&id);
        let body = Out::obj(vec![("id", Out::Json(id)), ("message", Out::json(message))]);
        return Resp::json(201, &body)
            .header("location", format!("{api}/{itemtype}/{id_num}"))
            .moved_location_first();
    }
    let list: Vec<Out> = results
        .into_iter()
        .map(|(id, m)| Out::obj(vec![("id", Out::Json(id)), ("message", Out::json(m))]))
        .collect();
    if failed == 0 {
        let link = ok_ids
            .iter()
            .map(|id| format!("{api}/{itemtype}/{id}"))
            .collect::<Vec<_>>()
            .join(",");
        Resp::json(201, &Out::Arr(list))
            .header("link", link)
            .moved_location_first()
    } else if failed < inputs.len() {
        Resp::json(
            207,
            &Out::Arr(vec![Out::json("ERROR_GLPI_PARTIAL_ADD"), Out::Arr(list)]),
        )
    } else {
        Resp::json(
            400,
            &Out::Arr(vec![Out::json("ERROR_GLPI_ADD"), Out::Arr(list)]),
        )
    }
}

impl Resp {
    /// Put the last header (location/link) before Content-Type, as GLPI orders them.
    fn moved_location_first(mut self) -> Resp {
        if let Some(h) = self.headers.pop() {
            self.headers.insert(0, h);
        }
        self
    }
}

fn put_items(
    st: &mut State,
    ctx: &Ctx,
    itemtype: &str,
    url_id: Option<i64>,
    params: &Map<String, Value>,
) -> Resp {
    let Some((inputs, bulk)) = input_list(params) else {
        return bad_array(st);
    };
    let mut results = Vec::new();
    let mut failed = 0;
    let mut single_err = Value::Null;
    for input in &inputs {
        let mut input = sanitize(st, input);
        if let Some(id) = url_id {
            input.entry("id".to_string()).or_insert(Value::from(id));
        }
        let id = input.get("id").map(value_int).unwrap_or(0);
        if st.get(itemtype, id).is_none() {
            failed += 1;
            continue;
        }
        match update(st, ctx, itemtype, id, &input) {
            Ok(()) => results.push(Out::obj(vec![
                (&id.to_string(), Out::json(true)),
                ("message", Out::json("")),
            ])),
            Err(msg) => {
                failed += 1;
                single_err = msg.clone();
                results.push(Out::obj(vec![
                    (&id.to_string(), Out::json(false)),
                    ("message", Out::Json(msg)),
                ]));
            }
        }
    }
    if failed == 0 {
        Resp::json(200, &Out::Arr(results))
    } else if !bulk {
        error_value(400, "ERROR_GLPI_UPDATE", single_err)
    } else if failed < inputs.len() {
        Resp::json(
            207,
            &Out::Arr(vec![
                Out::json("ERROR_GLPI_PARTIAL_UPDATE"),
                Out::Arr(results),
            ]),
        )
    } else {
        Resp::json(
            400,
            &Out::Arr(vec![Out::json("ERROR_GLPI_UPDATE"), Out::Arr(results)]),
        )
    }
}

fn delete_items(
    st: &mut State,
    ctx: &Ctx,
    itemtype: &str,
    url_id: Option<i64>,
    params: &Map<String, Value>,
) -> Resp {
    let purge = truthy(params.get("force_purge"));
    let (ids, bulk): (Vec<i64>, bool) = match url_id {
        Some(id) => (vec![id], false),
        None => match input_list(params) {
            Some((list, bulk)) => (
                list.iter()
                    .map(|i| i.get("id").map(value_int).unwrap_or(0))
                    .collect(),
                bulk,
            ),
            None => return bad_array(st),
        },
    };
    let mut results = Vec::new();
    let mut failed = 0;
    let mut single_err = String::new();
    for id in &ids {
        match delete(st, ctx, itemtype, *id, purge) {
            Ok(()) => results.push(Out::obj(vec![
                (&id.to_string(), Out::json(true)),
                ("message", Out::json("")),
            ])),
            Err(msg) => {
                failed += 1;
                single_err = msg.clone();
                results.push(Out::obj(vec![
                    (&id.to_string(), Out::json(false)),
                    ("message", Out::json(msg)),
                ]));
            }
        }
    }
    if failed == 0 {
        Resp::json(200, &Out::Arr(results))
    } else if !bulk {
        error_value(400, "ERROR_GLPI_DELETE", Value::String(single_err))
    } else if failed < ids.len() {
        Resp::json(
            207,
            &Out::Arr(vec![
                Out::json("ERROR_GLPI_PARTIAL_DELETE"),
                Out::Arr(results),
            ]),
        )
    } else {
        Resp::json(
            400,
            &Out::Arr(vec![Out::json("ERROR_GLPI_DELETE"), Out::Arr(results)]),
        )
    }
}

// ---------------------------------------------------------------------------- per itemtype

/// "Item successfully added: …" as each itemtype words it.
pub(crate) fn add_message(st: &State, itemtype: &str, row: &Row) -> String {
    let id = row.int("id");
    let name = match itemtype {
        "ITILFollowup" | "TicketTask" | "Ticket_User" | "Document_Item" | "UserEmail"
        | "Profile_User" => return String::new(),
        "ITILSolution" => id.to_string(),
        "User" => {
            let full = format!("{} {}", row.str("realname"), row.str("firstname"))
                .trim()
                .to_string();
            if full.is_empty() {
                row.str("name")
            } else {
                full
            }
        }
        "Contact" => format!("{} {}", row.str("name"), row.str("firstname"))
            .trim()
            .to_string(),
        "PluginFieldsContainer" => row.str("label"),
        "Ticket" => {
            let name = row.str("name");
            if st.is_v11() {
                if name.is_empty() {
                    return format!("Item successfully added: Ticket - ID {id}");
                }
                return format!("Item successfully added: {}", text::html_escape(&name));
            }
            format!("{name} ({id})")
        }
        _ => row.str("name"),
    };
    if name.is_empty() {
        return String::new();
    }
    if st.is_v11() {
        return format!("Item successfully added: {}", text::html_escape(&name));
    }
    format!("Item successfully added: {name}")
}

/// Create one item from sanitized input: (id, message) or the failure message.
pub(crate) fn create(
    st: &mut State,
    ctx: &Ctx,
    itemtype: &str,
    input: &Map<String, Value>,
) -> Result<(i64, String), String> {
    if !can(st, ctx, itemtype, Act::Create) {
        return Err(NO_RIGHT.to_string());
    }
    let id = match itemtype {
        "Ticket" => tickets::create_ticket(st, ctx, input)?,
        "ITILFollowup" => tickets::create_followup(st, ctx, input)?,
        "ITILSolution" => tickets::create_solution(st, ctx, input)?,
        "TicketTask" => tickets::create_task(st, ctx, input)?,
        "Ticket_User" => tickets::create_ticket_user(st, ctx, input)?,
        "User" => create_user(st, ctx, input)?,
        "UserEmail" => create_user_email(st, input)?,
        "Entity" => create_entity(st, ctx, input)?,
        "ITILCategory" => create_category(st, ctx, input)?,
        "PluginFieldsContainer" => create_fields_container(st, input)?,
        "PluginFieldsField" => create_fields_field(st, input)?,
        "Document" => super::documents::create_document(st, ctx, input, None)?.0,
        _ => create_generic(st, ctx, itemtype, input)?,
    };
    let row = st.get(itemtype, id).cloned().unwrap_or_default();
    Ok((id, add_message(st, itemtype, &row)))
}

pub(crate) fn create_generic(
    st: &mut State,
    ctx: &Ctx,
    itemtype: &str,
    input: &Map<String, Value>,
) -> Result<i64, String> {
    let now = st.clock.now();
    let mut row = schema::default_row(itemtype, &now);
    if row.has("entities_id") && itemtype != "User" {
        let e = input
            .get("entities_id")
            .map(value_int)
            .unwrap_or(ctx.active_entity);
        if schema::entity_assigned(itemtype) && !ctx.active_entities.contains(&e) {
            return Err(NO_RIGHT.to_string());
        }
        row.set("entities_id", e);
    }
    for (k, v) in input {
        if k != "id" && schema::is_column(itemtype, k) {
            row.set(k, v.clone());
        }
    }
    if row.has("users_id") && row.int("users_id") == 0 && matches!(itemtype, "Document_Item") {
        row.set("users_id", ctx.user_id);
    }
    let id = st.alloc_id(itemtype);
    row.set("id", id);
    st.insert_row(itemtype, id, row);
    Ok(id)
}

/// GLPI's `Auth::isValidLogin`: letters, digits, `'`, `@`, `.`, `-`, `_` and
/// spaces, or an email address (PHP's `FILTER_VALIDATE_EMAIL`, approximated).
fn is_valid_login(login: &str) -> bool {
    let plain = !login.is_empty()
        && login
            .chars()
            .all(|c| c.is_alphanumeric() || "'@.-_ ".contains(c));
    let email = login.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty()
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !login.chars().any(char::is_whitespace)
            && !domain.contains('@')
    });
    plain || email
}

fn create_user(st: &mut State, ctx: &Ctx, input: &Map<String, Value>) -> Result<i64, String> {
    let name = input
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if !is_valid_login(&name) {
        // `User::prepareInputForAdd` refuses what `Auth::isValidLogin` refuses.
        return Err("The login is not valid. Unable to add the user.".to_string());
    }
    if st
        .rows("User")
        .any(|u| u.str("name").eq_ignore_ascii_case(&name))
    {
        return Err("Unable to add. The user already exists.".to_string());
    }
    let now = st.clock.now();
    let mut row = schema::default_row("User", &now);
    for (k, v) in input {
        if k != "id"
            && k != "password"
            && k != "password2"
            && k != "api_token"
            && schema::is_column("User", k)
        {
            row.set(k, v.clone());
        }
    }
    let password = input
        .get("password")
        .and_then(Value::as_str)
        .map(|p| st.plain_text(p));
    let password2 = input
        .get("password2")
        .and_then(Value::as_str)
        .map(|p| st.plain_text(p));
    if password.is_some() {
        row.set("password_last_update", now.clone());
    }
    let id = st.alloc_id("User");
    row.set("id", id);
    st.insert_row("User", id, row);
    if let (Some(p), Some(p2)) = (password, password2)
        && p == p2
    {
        st.passwords.insert(id, p);
    }
    st.api_tokens.insert(id, crate::config::random_hex(40));
    apply_user_emails(st, id, input);
    // Profile assignment (`User::post_addItem`): on `_entities_id`, else on the
    // session's active entity; the default profile (Self-Service) when none is given.
    let profile = input
        .get("_profiles_id")
        .map(value_int)
        .filter(|p| *p > 0)
        .unwrap_or(1);
    let entity = input
        .get("_entities_id")
        .map(value_int)
        .unwrap_or(ctx.active_entity);
    let recursive = input.get("_is_recursive").map(value_int).unwrap_or(0);
    st.create_row(
        "Profile_User",
        &[
            ("users_id", Value::from(id)),
            ("profiles_id", Value::from(profile)),
            ("entities_id", Value::from(entity)),
            ("is_recursive", Value::from(recursive)),
            (
                "is_dynamic",
                Value::from(i64::from(input.get("_profiles_id").is_none())),
            ),
        ],
    );
    Ok(id)
}

/// `_useremails` (key = existing UserEmail id to update/delete, anything else = new) and
/// `_default_email`.
pub(crate) fn apply_user_emails(st: &mut State, user_id: i64, input: &Map<String, Value>) {
    let Some(emails) = input.get("_useremails") else {
        return;
    };
    let default_key = input.get("_default_email").map(|v| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    });
    let entries: Vec<(String, String)> = match emails {
        Value::Object(o) => o
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
            .collect(),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .map(|(i, v)| (i.to_string(), v.as_str().unwrap_or_default().to_string()))
            .collect(),
        _ => Vec::new(),
    };
    let has_default = st
        .rows("UserEmail")
        .any(|r| r.int("users_id") == user_id && r.int("is_default") == 1);
    let mut first_new = !has_default && default_key.is_none();
    for (key, email) in entries {
        let existing = key.parse::<i64>().ok().filter(|id| {
            st.get("UserEmail", *id)
                .is_some_and(|r| r.int("users_id") == user_id)
        });
        let is_default = default_key.as_deref() == Some(key.as_str());
        match existing {
            Some(eid) if email.is_empty() => {
                st.remove_row("UserEmail", eid);
            }
            Some(eid) => {
                if let Some(r) = st.get_mut("UserEmail", eid) {
                    r.set("email", email);
                }
            }
            None if email.is_empty() => {}
            None => {
                let def = is_default || first_new;
                first_new = false;
                if def {
                    for r in st.items.entry("UserEmail".into()).or_default().values_mut() {
                        if r.int("users_id") == user_id {
                            r.set("is_default", 0);
                        }
                    }
                }
                st.create_row(
                    "UserEmail",
                    &[
                        ("users_id", Value::from(user_id)),
                        ("is_default", Value::from(i64::from(def))),
                        ("email", Value::from(email)),
                    ],
                );
            }
        }
    }
}

fn create_user_email(st: &mut State, input: &Map<String, Value>) -> Result<i64, String> {
    let user = input.get("users_id").map(value_int).unwrap_or(0);
    if st.get("User", user).is_none() {
        return Err(NO_RIGHT.to_string());
    }
    let email = input
        .get("email")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let def = input.get("is_default").map(value_int).unwrap_or(0) == 1;
    if def {
        for r in st.items.entry("UserEmail".into()).or_default().values_mut() {
            if r.int("users_id") == user {
                r.set("is_default", 0);
            }
        }
    }
    Ok(st.create_row(
        "UserEmail",
        &[
            ("users_id", Value::from(user)),
            ("is_default", Value::from(i64::from(def))),
            ("email", Value::from(email)),
        ],
    ))
}

fn create_entity(st: &mut State, ctx: &Ctx, input: &Map<String, Value>) -> Result<i64, String> {
    let name = input
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if name.is_empty() {
        return Err("You must provide a name".to_string());
    }
    let parent = input
        .get("entities_id")
        .map(value_int)
        .unwrap_or(ctx.active_entity);
    if st.get("Entity", parent).is_none() || !ctx.active_entities.contains(&parent) {
        return Err(NO_RIGHT.to_string());
    }
    if st
        .rows("Entity")
        .any(|e| e.int("id") != 0 && e.int("entities_id") == parent && e.str("name") == name)
    {
        return Err("Unable to add. The entity already exists.".to_string());
    }
    let extra: Vec<(String, Value)> = input
        .iter()
        .filter(|(k, _)| {
            !matches!(
                k.as_str(),
                "name" | "entities_id" | "completename" | "level"
            )
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Ok(st.add_entity_row(&name, parent, extra))
}

fn create_category(st: &mut State, ctx: &Ctx, input: &Map<String, Value>) -> Result<i64, String> {
    let id = create_generic(st, ctx, "ITILCategory", input)?;
    let parent = input.get("itilcategories_id").map(value_int).unwrap_or(0);
    let (prefix, level) = match st.get("ITILCategory", parent) {
        Some(p) => (format!("{} > ", p.str("completename")), p.int("level") + 1),
        None => (String::new(), 1),
    };
    let name = st
        .get("ITILCategory", id)
        .map(|r| st.plain_text(&r.str("name")))
        .unwrap_or_default();
    if let Some(r) = st.get_mut("ITILCategory", id) {
        r.set("completename", format!("{prefix}{name}"));
        r.set("level", level);
    }
    Ok(id)
}

/// The Fields plugin's system name: lower-case alphanumerics, a trailing `s` dropped.
fn fields_system_name(label: &str) -> String {
    let mut s: String = label
        .to_lowercase()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    if s.ends_with('s') {
        s.pop();
    }
    s
}

fn create_fields_container(st: &mut State, input: &Map<String, Value>) -> Result<i64, String> {
    let label = st.plain_text(
        input
            .get("label")
            .and_then(Value::as_str)
            .unwrap_or_default(),
    );
    let name = fields_system_name(&label);
    let itemtypes: Vec<String> = params::as_list(input.get("itemtypes").unwrap_or(&Value::Null))
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    let id = st.create_row(
        "PluginFieldsContainer",
        &[
            ("name", Value::from(name.clone())),
            ("label", Value::from(st.store_text(&label))),
            (
                "itemtypes",
                Value::from(serde_json::to_string(&itemtypes).unwrap_or_default()),
            ),
            (
                "type",
                input.get("type").cloned().unwrap_or(Value::from("tab")),
            ),
            (
                "entities_id",
                Value::from(input.get("entities_id").map(value_int).unwrap_or(0)),
            ),
            (
                "is_recursive",
                Value::from(input.get("is_recursive").map(value_int).unwrap_or(0)),
            ),
            (
                "is_active",
                Value::from(input.get("is_active").map(value_int).unwrap_or(1)),
            ),
        ],
    );
    for it in itemtypes {
        let generated = format!("PluginFields{it}{name}");
        if !st.plugin_types.contains(&generated) {
            st.plugin_types.push(generated);
        }
    }
    Ok(id)
}

fn create_fields_field(st: &mut State, input: &Map<String, Value>) -> Result<i64, String> {
    let container = input
        .get("plugin_fields_containers_id")
        .map(value_int)
        .unwrap_or(0);
    if st.get("PluginFieldsContainer", container).is_none() {
        return Err(NO_RIGHT.to_string());
    }
    let label = st.plain_text(
        input
            .get("label")
            .and_then(Value::as_str)
            .unwrap_or_default(),
    );
    let name = format!(
        "{}field",
        label
            .to_lowercase()
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect::<String>()
    );
    let ranking = st
        .rows("PluginFieldsField")
        .filter(|f| f.int("plugin_fields_containers_id") == container)
        .count()
        + 1;
    Ok(st.create_row(
        "PluginFieldsField",
        &[
            ("name", Value::from(name)),
            ("label", Value::from(st.store_text(&label))),
            (
                "type",
                input.get("type").cloned().unwrap_or(Value::from("text")),
            ),
            ("plugin_fields_containers_id", Value::from(container)),
            ("ranking", Value::from(ranking)),
            (
                "is_active",
                Value::from(input.get("is_active").map(value_int).unwrap_or(1)),
            ),
        ],
    ))
}

/// Active Fields-plugin fields of an itemtype: (container row, generated itemtype, field name).
pub(crate) fn plugin_fields(st: &State, itemtype: &str) -> Vec<(Row, String, Row)> {
    let mut out = Vec::new();
    for c in st.rows("PluginFieldsContainer") {
        if c.int("is_active") != 1 || !c.str("itemtypes").contains(&format!("\"{itemtype}\"")) {
            continue;
        }
        let generated = format!("PluginFields{itemtype}{}", c.str("name"));
        for f in st.rows("PluginFieldsField") {
            if f.int("plugin_fields_containers_id") == c.int("id") && f.int("is_active") == 1 {
                out.push((c.clone(), generated.clone(), f.clone()));
            }
        }
    }
    out
}

/// Store Fields-plugin values present in an update input.
fn apply_plugin_fields(st: &mut State, itemtype: &str, id: i64, input: &Map<String, Value>) {
    let c_id = input.get("c_id").map(value_int);
    let entity = st
        .get(itemtype, id)
        .map(|r| {
            if itemtype == "Entity" {
                r.int("id")
            } else {
                r.int("entities_id")
            }
        })
        .unwrap_or(0);
    for (container, generated, field) in plugin_fields(st, itemtype) {
        let fname = field.str("name");
        let Some(value) = input.get(&fname) else {
            continue;
        };
        if c_id.is_some_and(|c| c != container.int("id")) {
            continue;
        }
        let existing = st
            .rows(&generated)
            .find(|r| r.int("items_id") == id && r.str("itemtype") == itemtype)
            .map(|r| r.int("id"));
        match existing {
            Some(rid) => {
                if let Some(r) = st.get_mut(&generated, rid) {
                    r.set(&fname, value.clone());
                }
            }
            None => {
                let rid = st.alloc_id(&generated);
                let mut row = Row::new();
                row.set("id", rid);
                row.set("items_id", id);
                row.set("itemtype", itemtype);
                row.set("plugin_fields_containers_id", container.int("id"));
                row.set("entities_id", entity);
                for (_, _, f) in plugin_fields(st, itemtype)
                    .iter()
                    .filter(|(c, _, _)| c.int("id") == container.int("id"))
                {
                    row.set(&f.str("name"), Value::Null);
                }
                row.set(&fname, value.clone());
                st.insert_row(&generated, rid, row);
            }
        }
    }
}

/// Update one existing item; `Err(message)` as GLPI reports it.
pub(crate) fn update(
    st: &mut State,
    ctx: &Ctx,
    itemtype: &str,
    id: i64,
    input: &Map<String, Value>,
) -> Result<(), Value> {
    let Some(row) = st.get(itemtype, id).cloned() else {
        return Err(Value::Null);
    };
    if !can(st, ctx, itemtype, Act::Update) || !visible(st, ctx, itemtype, &row) {
        return Err(Value::from(NO_RIGHT));
    }
    if itemtype == "Ticket" {
        return tickets::update_ticket(st, ctx, id, input);
    }
    if itemtype == "Entity" || itemtype == "Contact" || itemtype == "User" {
        apply_plugin_fields(st, itemtype, id, input);
    }
    if itemtype == "User" {
        apply_user_emails(st, id, input);
        if let (Some(p), Some(p2)) = (
            input.get("password").and_then(Value::as_str),
            input.get("password2").and_then(Value::as_str),
        ) && p == p2
        {
            let p = st.plain_text(p);
            st.passwords.insert(id, p);
        }
    }
    let now = st.clock.now();
    let rename = itemtype == "Entity" && input.contains_key("name");
    if let Some(r) = st.get_mut(itemtype, id) {
        for (k, v) in input {
            if k != "id"
                && schema::is_column(itemtype, k)
                && !matches!(k.as_str(), "password" | "completename")
            {
                r.set(k, v.clone());
            }
        }
        if r.has("date_mod") {
            r.set("date_mod", now);
        }
    }
    if rename && id != 0 {
        let parent = row.int("entities_id");
        let parent_complete = st.entity_completename(parent);
        let name = input
            .get("name")
            .and_then(Value::as_str)
            .map(|n| st.plain_text(n))
            .unwrap_or_default();
        if let Some(r) = st.get_mut("Entity", id) {
            r.set("completename", format!("{parent_complete} > {name}"));
        }
    }
    Ok(())
}

/// Trash or purge one item.
pub(crate) fn delete(
    st: &mut State,
    ctx: &Ctx,
    itemtype: &str,
    id: i64,
    purge: bool,
) -> Result<(), String> {
    let Some(row) = st.get(itemtype, id).cloned() else {
        return Err("Item not found".to_string());
    };
    if !can(st, ctx, itemtype, Act::Delete) || !visible(st, ctx, itemtype, &row) {
        return Err(NO_RIGHT.to_string());
    }
    if itemtype == "Entity"
        && (id == 0
            || st
                .rows("Entity")
                .any(|e| e.int("id") != 0 && e.int("entities_id") == id))
    {
        return Err("You cannot delete an entity which contains sub-entities.".to_string());
    }
    if schema::has_trash(itemtype) && !purge {
        let now = st.clock.now();
        if let Some(r) = st.get_mut(itemtype, id) {
            r.set("is_deleted", 1);
            r.set("date_mod", now);
        }
        return Ok(());
    }
    st.remove_row(itemtype, id);
    // Cascade to the rows that only exist for this item.
    let children: Vec<(&str, Vec<i64>)> = match itemtype {
        "Ticket" => [
            "Ticket_User",
            "ITILFollowup",
            "ITILSolution",
            "TicketTask",
            "Document_Item",
        ]
        .iter()
        .map(|c| {
            (
                *c,
                children_of(st, "Ticket", id, c)
                    .iter()
                    .map(|r| r.int("id"))
                    .collect(),
            )
        })
        .collect(),
        "User" => ["UserEmail", "Profile_User"]
            .iter()
            .map(|c| {
                (
                    *c,
                    children_of(st, "User", id, c)
                        .iter()
                        .map(|r| r.int("id"))
                        .collect(),
                )
            })
            .collect(),
        "Document" => {
            st.files.remove(&id);
            vec![(
                "Document_Item",
                children_of(st, "Document", id, "Document_Item")
                    .iter()
                    .map(|r| r.int("id"))
                    .collect(),
            )]
        }
        _ => Vec::new(),
    };
    for (child, ids) in children {
        for cid in ids {
            st.remove_row(child, cid);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::is_valid_login;

    #[test]
    fn logins_are_checked_as_glpi_checks_them() {
        for good in [
            "maria",
            "maria.silva",
            "Zé da Silva",
            "o'neil",
            "5511987654321",
        ] {
            assert!(is_valid_login(good), "{good}");
        }
        assert!(
            is_valid_login("maria+x@acme.com.br"),
            "an email may hold a +"
        );
        for bad in ["", "+5511987654321", "Maria (Acme)", "a/b", "maria+x"] {
            assert!(!is_valid_login(bad), "{bad}");
        }
    }
}
