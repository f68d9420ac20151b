//! The REST verbs (core/get, create, update, apply_stimulus, delete,
//! check_credentials) against the in-memory store.

use serde_json::{Map, Value};

use crate::clock;
use crate::lifecycle;
use crate::pj::Pj;
use crate::schema::{self, ClassDef};
use crate::store::{Db, Obj, OpError, value_text};
use crate::values::{self, Actor};

/// A change the webhook triggers may react to.
#[derive(Debug, Clone)]
pub enum Change {
    Created {
        class: &'static str,
        id: u64,
    },
    Updated {
        class: &'static str,
        id: u64,
        attrs: Vec<&'static str>,
        entered_state: Option<String>,
    },
    /// Emitted just before the object is removed (as iTop's delete trigger).
    Deleting {
        class: &'static str,
        id: u64,
    },
}

pub type Notify<'a> = &'a mut dyn FnMut(&Db, &Change);

fn param<'a>(p: &'a Map<String, Value>, name: &str) -> Result<&'a Value, OpError> {
    match p.get(name) {
        Some(v) if !v.is_null() => Ok(v),
        _ => Err(OpError::internal(format!("Missing parameter '{name}'"))),
    }
}

fn comment(p: &Map<String, Value>) -> Result<String, OpError> {
    param(p, "comment").map(value_text)
}

fn class_param(p: &Map<String, Value>) -> Result<&'static ClassDef, OpError> {
    let name = value_text(param(p, "class")?);
    schema::class(&name)
        .ok_or_else(|| OpError::internal(format!("class: '{name}' is not a valid class'")))
}

/// Parsed `output_fields`.
enum Output {
    /// `*`: all attributes of the requested class.
    All,
    /// `*+`: all attributes of each object's leaf class.
    AllLeaf,
    List(Vec<String>),
}

fn output_fields(def: &ClassDef, p: &Map<String, Value>) -> Result<Output, OpError> {
    let text = p
        .get("output_fields")
        .map(value_text)
        .unwrap_or_else(|| "*".into());
    let text = text.trim();
    match text {
        "*" | "" => Ok(Output::All),
        "*+" => Ok(Output::AllLeaf),
        list => {
            let codes: Vec<String> = list
                .split(',')
                .map(|c| c.trim().to_string())
                .filter(|c| !c.is_empty())
                .collect();
            for c in &codes {
                if c != "id" && def.attr(c).is_none() {
                    return Err(OpError::internal(format!(
                        "output_fields: invalid attribute code '{c}'"
                    )));
                }
            }
            Ok(Output::List(codes))
        }
    }
}

fn render(db: &Db, def: &ClassDef, obj: &Obj, out: &Output) -> Pj {
    let codes: Vec<String> = match out {
        Output::All => def.attrs.iter().map(|a| a.code.to_string()).collect(),
        Output::AllLeaf => obj
            .def()
            .map(|d| d.attrs.iter().map(|a| a.code.to_string()).collect())
            .unwrap_or_default(),
        Output::List(l) => l.clone(),
    };
    Pj::Obj(
        codes
            .into_iter()
            .map(|c| (c.clone(), db.field(obj, &c).unwrap_or(Pj::s(""))))
            .collect(),
    )
}

fn object_result(db: &Db, def: &ClassDef, obj: &Obj, message: &str, out: &Output) -> (String, Pj) {
    (
        format!("{}::{}", obj.class, obj.id),
        Pj::obj(vec![
            ("code", Pj::Int(0)),
            ("message", Pj::s(message)),
            ("class", Pj::s(obj.class)),
            ("key", Pj::s(obj.id.to_string())),
            ("fields", render(db, def, obj, out)),
        ]),
    )
}

fn reply(message: Pj, objects: Vec<(String, Pj)>) -> Pj {
    Pj::obj(vec![
        ("code", Pj::Int(0)),
        ("message", message),
        (
            "objects",
            if objects.is_empty() {
                Pj::Null
            } else {
                Pj::Obj(objects)
            },
        ),
    ])
}

pub fn check_credentials(
    p: &Map<String, Value>,
    check: &dyn Fn(&str, &str) -> bool,
) -> Result<Pj, OpError> {
    let user = value_text(param(p, "user")?);
    let password = value_text(param(p, "password")?);
    Ok(Pj::obj(vec![
        ("code", Pj::Int(0)),
        ("message", Pj::Null),
        ("authorized", Pj::Bool(check(&user, &password))),
    ]))
}

pub fn get(db: &Db, p: &Map<String, Value>) -> Result<Pj, OpError> {
    let def = class_param(p)?;
    let key = param(p, "key")?;
    let out = output_fields(def, p)?;
    let limit = p
        .get("limit")
        .map(value_text)
        .and_then(|t| t.parse::<usize>().ok())
        .unwrap_or(0);
    let page = p
        .get("page")
        .map(value_text)
        .and_then(|t| t.parse::<i64>().ok())
        .unwrap_or(1);
    if page < 1 {
        return Err(OpError {
            code: 13,
            message: "Error: page must be greater than 0".into(),
            objects_null: false,
        });
    }
    let (ids, _) = db.select_key(def.name, key)?;
    let total = ids.len();
    let shown: Vec<u64> = if limit > 0 {
        let skip = usize::try_from(page - 1).unwrap_or(0).saturating_mul(limit);
        ids.into_iter().skip(skip).take(limit).collect()
    } else {
        ids
    };
    let objects = shown
        .iter()
        .filter_map(|id| db.get(def.name, *id))
        .map(|o| object_result(db, def, o, "", &out))
        .collect();
    Ok(reply(Pj::s(format!("Found: {total}")), objects))
}

fn ticket_prefix(class: &str) -> &'static str {
    match class {
        "Incident" => "I-",
        "Problem" => "P-",
        "Change" => "C-",
        _ => "R-",
    }
}

fn computed_on_write(obj: &mut Obj) {
    if obj.values.contains_key("priority") {
        let p = lifecycle::priority(&obj.text("impact"), &obj.text("urgency"));
        obj.values.insert("priority", Pj::s(p));
    }
}

pub fn create(
    db: &mut Db,
    actor: &Actor,
    p: &Map<String, Value>,
    notify: Notify<'_>,
) -> Result<Pj, OpError> {
    comment(p)?;
    let def = class_param(p)?;
    let fields = match param(p, "fields")? {
        Value::Object(m) => m.clone(),
        _ => return Err(OpError::internal("fields: expecting an object")),
    };
    let out = output_fields(def, p)?;
    if def.is_abstract {
        return Err(OpError::internal(format!(
            "class: '{}' is abstract",
            def.name
        )));
    }
    let obj = insert_object(db, def, &fields, actor)?;
    let result = object_result(db, def, &obj, "created", &out);
    notify(
        db,
        &Change::Created {
            class: def.name,
            id: obj.id,
        },
    );
    Ok(reply(Pj::Null, vec![result]))
}

/// Builds, checks and stores a new object (shared by REST create and seeding).
pub fn insert_object(
    db: &mut Db,
    def: &'static ClassDef,
    fields: &Map<String, Value>,
    actor: &Actor,
) -> Result<Obj, OpError> {
    let mut obj = Obj::new(def);
    values::apply_fields(db, def, &mut obj, fields, actor)?;
    computed_on_write(&mut obj);
    if def.is_ticket() {
        db.ref_counter += 1;
        if obj.text("ref").is_empty() {
            obj.values.insert(
                "ref",
                Pj::s(format!("{}{:06}", ticket_prefix(def.name), db.ref_counter)),
            );
        }
    }
    values::check_to_write(def, &obj, -1, &db.extra_enum_values)?;
    let now = clock::now_text();
    if def.is_ticket() {
        if obj.text("start_date").is_empty() {
            obj.values.insert("start_date", Pj::s(now.clone()));
        }
        obj.values.insert("last_update", Pj::s(now));
    } else if def.name == "Attachment" {
        obj.values.insert("creation_date", Pj::s(now));
        obj.values
            .insert("user_id", Pj::s(actor.user_id.to_string()));
        obj.values
            .insert("contact_id", Pj::s(actor.contact_id.to_string()));
    }
    if obj.id == 0 {
        obj.id = db.next_id(def.root);
    }
    db.insert(obj.clone());
    Ok(obj)
}

fn fields_param(p: &Map<String, Value>) -> Result<Map<String, Value>, OpError> {
    match param(p, "fields")? {
        Value::Object(m) => Ok(m.clone()),
        Value::Array(a) if a.is_empty() => Ok(Map::new()),
        _ => Err(OpError::internal("fields: expecting an object")),
    }
}

pub fn update(
    db: &mut Db,
    actor: &Actor,
    p: &Map<String, Value>,
    notify: Notify<'_>,
) -> Result<Pj, OpError> {
    comment(p)?;
    let def = class_param(p)?;
    let key = param(p, "key")?;
    let fields = fields_param(p)?;
    let out = output_fields(def, p)?;
    let id = db.select_one(def.name, key)?;
    let mut obj = db
        .get(def.name, id)
        .cloned()
        .ok_or_else(|| OpError::internal(format!("Invalid object {}::{id}", def.name)))?;
    let leaf = obj.def().unwrap_or(def);
    let changed = values::apply_fields(db, leaf, &mut obj, &fields, actor)?;
    computed_on_write(&mut obj);
    values::check_to_write(
        leaf,
        &obj,
        i64::try_from(id).unwrap_or(-1),
        &db.extra_enum_values,
    )?;
    if leaf.is_ticket() && !changed.is_empty() {
        obj.values.insert("last_update", Pj::s(clock::now_text()));
    }
    db.insert(obj.clone());
    let result = object_result(db, def, &obj, "updated", &out);
    if !changed.is_empty() {
        notify(
            db,
            &Change::Updated {
                class: obj.class,
                id,
                attrs: changed,
                entered_state: None,
            },
        );
    }
    Ok(reply(Pj::Null, vec![result]))
}

pub fn apply_stimulus(
    db: &mut Db,
    actor: &Actor,
    p: &Map<String, Value>,
    notify: Notify<'_>,
) -> Result<Pj, OpError> {
    comment(p)?;
    let def = class_param(p)?;
    let key = param(p, "key")?;
    let stimulus = value_text(param(p, "stimulus")?);
    let fields = fields_param(p)?;
    let out = output_fields(def, p)?;
    let id = db.select_one(def.name, key)?;
    let mut obj = db
        .get(def.name, id)
        .cloned()
        .ok_or_else(|| OpError::internal(format!("Invalid object {}::{id}", def.name)))?;
    let leaf = obj.def().unwrap_or(def);
    let mut changed = values::apply_fields(db, leaf, &mut obj, &fields, actor)?;
    let state = obj.text("status");
    let Some(target) = lifecycle::transition(obj.class, &state, &stimulus) else {
        return Err(OpError::refused(format!(
            "Invalid stimulus: '{stimulus}' on the object {} in state '{state}'",
            db.friendly_name(&obj)
        )));
    };
    let missing: Vec<&str> = lifecycle::mandatory(target)
        .iter()
        .copied()
        .filter(|a| obj.values.get(a).is_some_and(|v| v.text().is_empty()))
        .collect();
    if !missing.is_empty() {
        return Err(OpError::refused(format!(
            "Missing mandatory attribute(s) for applying the stimulus: {}.",
            missing.join(", ")
        )));
    }
    let now = clock::now_text();
    match stimulus.as_str() {
        "ev_assign" | "ev_reassign" => {
            obj.values.insert("assignment_date", Pj::s(now.clone()));
        }
        "ev_pending" => {
            obj.values.insert("last_pending_date", Pj::s(now.clone()));
        }
        "ev_close" => {
            obj.values.insert("close_date", Pj::s(now.clone()));
        }
        _ => {}
    }
    if target == "resolved" && state != "resolved" {
        obj.values.insert("resolution_date", Pj::s(now.clone()));
        let spent = match (clock::parse(&obj.text("start_date")), clock::parse(&now)) {
            (Some(a), Some(b)) => (b - a).whole_seconds().max(0),
            _ => 0,
        };
        obj.values.insert("time_spent", Pj::s(spent.to_string()));
    }
    obj.values.insert("status", Pj::s(target));
    if state != target {
        changed.push("status");
    }
    computed_on_write(&mut obj);
    // DBUpdate checks the values (DoCheckToWrite): a field given with the
    // stimulus outside its enumeration fails the whole call, nothing saved,
    // with the exception's "Error: …" message and no `objects`.
    values::check_to_write(
        leaf,
        &obj,
        i64::try_from(id).unwrap_or(-1),
        &db.extra_enum_values,
    )?;
    obj.values.insert("last_update", Pj::s(now));
    db.insert(obj.clone());
    let result = object_result(db, def, &obj, "updated", &out);
    notify(
        db,
        &Change::Updated {
            class: obj.class,
            id,
            attrs: changed,
            entered_state: Some(target.to_string()),
        },
    );
    Ok(reply(Pj::Null, vec![result]))
}

/// The `Deleting` notifications of a `core/delete`, given while every object
/// it names is still there: a real iTop fires its "on object deletion"
/// triggers (and sends their webhooks, synchronously by default) before it
/// removes the object, so a receiver reading it back still finds it. A
/// request `delete` would refuse notifies nothing.
pub fn deleting(db: &Db, p: &Map<String, Value>, notify: Notify<'_>) {
    let simulate = p
        .get("simulate")
        .is_some_and(|v| matches!(v, Value::Bool(true)) || value_text(v) == "1");
    if simulate || comment(p).is_err() {
        return;
    }
    let (Ok(def), Ok(key)) = (class_param(p), param(p, "key")) else {
        return;
    };
    let Ok((ids, _)) = db.select_key(def.name, key) else {
        return;
    };
    for id in ids {
        if let Some(obj) = db.get(def.name, id) {
            notify(
                db,
                &Change::Deleting {
                    class: obj.class,
                    id: obj.id,
                },
            );
        }
    }
}

/// `core/delete`. Its webhooks come from [`deleting`], before the removal;
/// `notify` hears the same `Deleting` changes again as they happen.
pub fn delete(db: &mut Db, p: &Map<String, Value>, notify: Notify<'_>) -> Result<Pj, OpError> {
    comment(p)?;
    let def = class_param(p)?;
    let key = param(p, "key")?;
    let simulate = p
        .get("simulate")
        .is_some_and(|v| matches!(v, Value::Bool(true)) || value_text(v) == "1");
    let (ids, _) = db.select_key(def.name, key)?;
    let mut objects = Vec::new();
    for id in &ids {
        let Some(obj) = db.get(def.name, *id).cloned() else {
            continue;
        };
        objects.push((
            format!("{}::{}", obj.class, obj.id),
            Pj::obj(vec![
                ("code", Pj::Int(0)),
                ("message", Pj::s("")),
                ("class", Pj::s(obj.class)),
                ("key", Pj::s(obj.id.to_string())),
                (
                    "fields",
                    Pj::obj(vec![
                        ("id", Pj::s(obj.id.to_string())),
                        ("friendlyname", Pj::s(db.friendly_name(&obj))),
                    ]),
                ),
            ]),
        ));
        if simulate {
            continue;
        }
        notify(
            db,
            &Change::Deleting {
                class: obj.class,
                id: obj.id,
            },
        );
        db.remove(obj.class, obj.id);
        if obj.def().is_some_and(|d| d.is_ticket()) {
            let id_text = obj.id.to_string();
            let orphans = db.select("Attachment", &|a| {
                a.text("item_class") == obj.class && a.text("item_id") == id_text
            });
            for a in orphans {
                db.remove("Attachment", a);
            }
        }
    }
    let prefix = if simulate { "SIMULATING: " } else { "" };
    Ok(reply(
        Pj::s(format!("{prefix}Deleted: {}", objects.len())),
        objects,
    ))
}
