//! Writing attribute values from REST `fields`: strings, HTML, enums, external
//! keys, case logs (`add_item`, `items`, plain string) and blobs.

use serde_json::Value;

use crate::clock;
use crate::pj::Pj;
use crate::schema::{self, ClassDef, Kind};
use crate::store::{Db, Obj, OpError, value_text};

/// Who is making the REST call.
#[derive(Debug, Clone)]
pub struct Actor {
    pub login: String,
    pub user_id: u64,
    pub contact_id: u64,
    /// Friendly name of the user's contact, shown in case logs.
    pub display: String,
    pub admin: bool,
}

/// Plain text of an HTML fragment (tags removed, entities decoded).
pub fn html_to_text(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    let mut tag = String::new();
    for c in html.chars() {
        match (in_tag, c) {
            (false, '<') => {
                in_tag = true;
                tag.clear();
            }
            (true, '>') => {
                in_tag = false;
                let t = tag.to_lowercase();
                if t.starts_with("br") || t == "/p" || t == "/div" {
                    out.push('\n');
                }
            }
            (true, c) => tag.push(c),
            (false, c) => out.push(c),
        }
    }
    let decoded = html_escape::decode_html_entities(&out).to_string();
    decoded.trim_end_matches('\n').trim().to_string()
}

/// HTML of a plain-text entry: escaped, newlines as `<br/>`.
pub fn text_to_html(text: &str) -> String {
    html_escape::encode_text(text)
        .replace("\r\n", "\n")
        .replace('\n', "<br/>")
}

fn html_value(input: &str) -> String {
    let t = input.trim_start();
    if t.is_empty() || t.starts_with('<') {
        input.to_string()
    } else {
        format!("<p>{}</p>", text_to_html(input))
    }
}

fn log_entry(
    date: String,
    user_login: String,
    user_id: Pj,
    message: String,
    message_html: String,
) -> Pj {
    Pj::obj(vec![
        ("date", Pj::s(date)),
        ("user_login", Pj::s(user_login)),
        ("user_id", user_id),
        ("message", Pj::s(message)),
        ("message_html", Pj::s(message_html)),
    ])
}

fn entry_from_json(
    att: &str,
    item: &serde_json::Map<String, Value>,
    actor: &Actor,
) -> Result<Pj, OpError> {
    let message = match item.get("message") {
        Some(v) if !v.is_null() => value_text(v),
        _ => {
            return Err(OpError::internal(format!(
                "{att}: Missing mandatory entry: 'message'"
            )));
        }
    };
    let format = item
        .get("format")
        .map(value_text)
        .unwrap_or_else(|| "html".into());
    let (text, html) = if format == "text" {
        (message.clone(), text_to_html(&message))
    } else {
        (html_to_text(&message), message.clone())
    };
    let date = match item.get("date").map(value_text) {
        Some(d) if !d.is_empty() => clock::parse(&d)
            .map(clock::format)
            .ok_or_else(|| OpError::internal(format!("{att}: Invalid date '{d}'")))?,
        _ => clock::now_text(),
    };
    let (user_login, user_id) = match item.get("user_id") {
        Some(uid) if !uid.is_null() => {
            if !actor.admin {
                return Err(OpError {
                    code: 1,
                    message: "Error: Only administrators can set the user id".into(),
                    objects_null: false,
                });
            }
            let login = item.get("user_login").map(value_text).unwrap_or_default();
            let id = match uid {
                Value::Number(n) => Pj::Int(n.as_i64().unwrap_or(0)),
                other => Pj::s(value_text(other)),
            };
            (login, id)
        }
        _ => (actor.display.clone(), Pj::s(actor.user_id.to_string())),
    };
    Ok(log_entry(date, user_login, user_id, text, html))
}

fn apply_case_log(att: &str, current: &Pj, input: &Value, actor: &Actor) -> Result<Pj, OpError> {
    let mut entries = match current.get("entries") {
        Some(Pj::Arr(a)) => a.clone(),
        _ => Vec::new(),
    };
    match input {
        Value::String(s) => entries.push(log_entry(
            clock::now_text(),
            actor.display.clone(),
            Pj::s(actor.user_id.to_string()),
            html_to_text(s),
            html_value(s),
        )),
        Value::Object(m) if m.contains_key("add_item") => match m.get("add_item") {
            Some(Value::Object(item)) => entries.push(entry_from_json(att, item, actor)?),
            _ => {
                return Err(OpError::internal(format!(
                    "{att}: add_item must be an object"
                )));
            }
        },
        Value::Object(m) if m.contains_key("items") => {
            let mut fresh = Vec::new();
            if let Some(Value::Array(items)) = m.get("items") {
                for item in items {
                    if let Value::Object(item) = item {
                        fresh.push(entry_from_json(att, item, actor)?);
                    }
                }
            }
            entries = fresh;
        }
        Value::Null => {}
        _ => {
            return Err(OpError::internal(format!(
                "{att}: unsupported case log value"
            )));
        }
    }
    Ok(Pj::obj(vec![("entries", Pj::Arr(entries))]))
}

fn blob_value(input: &Value) -> Pj {
    match input {
        Value::Object(m) => Pj::obj(vec![
            (
                "data",
                m.get("data")
                    .map(|v| Pj::s(value_text(v)))
                    .unwrap_or(Pj::Null),
            ),
            (
                "mimetype",
                Pj::s(m.get("mimetype").map(value_text).unwrap_or_default()),
            ),
            (
                "filename",
                Pj::s(m.get("filename").map(value_text).unwrap_or_default()),
            ),
            (
                "downloads_count",
                Pj::Int(
                    m.get("downloads_count")
                        .and_then(Value::as_i64)
                        .unwrap_or(0),
                ),
            ),
        ]),
        _ => Pj::Null,
    }
}

/// Applies REST `fields` to `obj`; returns the codes of attributes whose value changed.
pub fn apply_fields(
    db: &Db,
    def: &'static ClassDef,
    obj: &mut Obj,
    fields: &serde_json::Map<String, Value>,
    actor: &Actor,
) -> Result<Vec<&'static str>, OpError> {
    let mut changed = Vec::new();
    for (code, input) in fields {
        if code == "finalclass" {
            continue;
        }
        let Some(attr) = def.attr(code) else {
            return Err(OpError::internal(format!(
                "{code}: invalid attribute code for class {}",
                def.name
            )));
        };
        let value = match attr.kind {
            Kind::Str | Kind::Date | Kind::Enum(_) => Pj::s(value_text(input)),
            Kind::Html => Pj::s(html_value(&value_text(input))),
            Kind::Int => Pj::Int(
                input
                    .as_i64()
                    .or_else(|| value_text(input).parse().ok())
                    .unwrap_or(0),
            ),
            Kind::ExtKey(target) => Pj::s(db.resolve_ext_key(code, target, input)?.to_string()),
            Kind::CaseLog => {
                let current = obj.values.get(attr.code).cloned().unwrap_or(Pj::Null);
                apply_case_log(code, &current, input, actor)?
            }
            Kind::Blob => blob_value(input),
            Kind::LinkSet => Pj::Arr(vec![]),
            _ => return Err(OpError::internal(format!("{code}: attribute is read-only"))),
        };
        if obj.values.get(attr.code) != Some(&value) {
            changed.push(attr.code);
        }
        obj.values.insert(attr.code, value);
    }
    Ok(changed)
}

/// iTop's DoCheckToWrite subset: NOT NULL attributes and enum values.
/// `extra` lists the codes a customised data model adds to an enumeration.
pub fn check_to_write(
    def: &ClassDef,
    obj: &Obj,
    id_for_message: i64,
    extra: &[(String, String)],
) -> Result<(), OpError> {
    let mut issues = Vec::new();
    for attr in def.attrs {
        let text = obj.text(attr.code);
        let empty = match attr.kind {
            Kind::ExtKey(_) => text == "0" || text.is_empty(),
            _ => text.is_empty(),
        };
        if def.not_null.contains(&attr.code) && empty {
            issues.push(format!(
                "Unexpected value for attribute '{}' ({}) : Null not allowed",
                schema::label(attr.code),
                attr.code
            ));
        } else if let Kind::Enum(allowed) = attr.kind
            && !text.is_empty()
            && !allowed.contains(&text.as_str())
            && !extra.iter().any(|(a, v)| a == attr.code && *v == text)
        {
            issues.push(format!(
                "Unexpected value for attribute '{}' ({}) : Value not allowed [{}]",
                schema::label(attr.code),
                attr.code,
                text
            ));
        }
    }
    match issues.first() {
        None => Ok(()),
        Some(first) => {
            let list = issues
                .iter()
                .enumerate()
                .map(|(i, s)| format!("{i}=>{s}"))
                .collect::<Vec<_>>()
                .join(", ");
            Err(OpError::internal(format!(
                "{first}: issues = {{{list}}}, class = {}, id = {id_for_message}",
                def.name
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_and_text() {
        assert_eq!(
            html_to_text("<p>Nota <b>interna</b> do agente</p>"),
            "Nota interna do agente"
        );
        assert_eq!(text_to_html("a\nb"), "a<br/>b");
        assert_eq!(
            html_value("Driver reinstalado."),
            "<p>Driver reinstalado.</p>"
        );
        assert_eq!(html_value("<p>Feito</p>"), "<p>Feito</p>");
    }
}
