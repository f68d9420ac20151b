//! Rendering stored rows as GLPI answers them: hateoas links, expanded dropdowns, decoding.

use crate::row::{Out, Row};
use crate::schema;
use crate::state::State;
use crate::text;
use serde_json::Value;

#[derive(Clone, Copy, Debug)]
pub(crate) struct ViewOpts {
    pub(crate) hateoas: bool,
    pub(crate) expand_dropdowns: bool,
    /// `X-GLPI-Sanitized-Content: false` (GLPI 10 only): decode entities.
    pub(crate) decode: bool,
    pub(crate) only_id: bool,
}

fn link(rel: &str, href: String) -> Out {
    Out::obj(vec![("rel", Out::json(rel)), ("href", Out::json(href))])
}

fn dropdown_name(st: &State, target: &str, id: i64) -> Option<String> {
    let row = st.get(target, id)?;
    Some(match target {
        "Entity" | "ITILCategory" => st.store_text(&row.str("completename")),
        _ => row.str("name"),
    })
}

pub(crate) fn render(st: &State, itemtype: &str, row: &Row, opts: ViewOpts) -> Out {
    if opts.only_id {
        let mut r = Row::new();
        r.set("id", row.int("id"));
        return Out::Row(r);
    }
    let api = st.api_url();
    let mut out = Row::new();
    let mut links = Vec::new();
    for (k, v) in row.iter() {
        let mut v = v.clone();
        if k == "items_id" {
            let target = row.str("itemtype");
            let id = crate::row::value_int(&v);
            if !target.is_empty() && id > 0 {
                links.push(link(&target, format!("{api}/{target}/{id}")));
            }
        } else if let Some(target) = schema::fk_target(k) {
            let id = crate::row::value_int(&v);
            if !v.is_null() && (id > 0 || (k == "entities_id" && itemtype != "User")) {
                links.push(link(target, format!("{api}/{target}/{id}")));
            }
            if (opts.expand_dropdowns && id > 0
                || opts.expand_dropdowns && k == "entities_id" && !v.is_null())
                && let Some(name) = dropdown_name(st, target, id)
            {
                v = Value::String(name);
            }
        }
        if opts.decode {
            v = text::map_strings(&v, &text::decode);
        }
        out.set(k, v);
    }
    let id = row.int("id");
    match itemtype {
        "Ticket" => {
            for child in schema::TICKET_CHILDREN {
                links.push(link(child, format!("{api}/Ticket/{id}/{child}/")));
            }
        }
        "Document" => links.push(link(
            "Document_Item",
            format!("{api}/Document/{id}/Document_Item/"),
        )),
        _ => {}
    }
    if !opts.hateoas {
        return Out::Row(out);
    }
    let mut fields: Vec<(String, Out)> = out
        .iter()
        .map(|(k, v)| (k.clone(), Out::Json(v.clone())))
        .collect();
    if !links.is_empty() {
        fields.push(("links".to_string(), Out::Arr(links)));
    }
    Out::Obj(fields)
}
