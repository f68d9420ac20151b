//! In-memory object store: objects by (root class, id), rendering of stored and
//! computed attributes, key resolution (id, OQL, criteria) as iTop does it.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use crate::oql;
use crate::pj::Pj;
use crate::schema::{self, ClassDef, Kind};

#[derive(Debug, Clone)]
pub struct Obj {
    pub class: &'static str,
    pub id: u64,
    pub values: BTreeMap<&'static str, Pj>,
}

impl Obj {
    /// A new object of `class` with every stored attribute at its default.
    pub fn new(def: &'static ClassDef) -> Obj {
        let mut values = BTreeMap::new();
        for a in def.attrs.iter().filter(|a| a.kind.is_stored()) {
            let v = match a.kind {
                Kind::ExtKey(_) => Pj::s("0"),
                Kind::CaseLog => Pj::obj(vec![("entries", Pj::Arr(vec![]))]),
                Kind::LinkSet => Pj::Arr(vec![]),
                Kind::Int => Pj::Int(0),
                Kind::Blob => Pj::Null,
                _ => Pj::s(a.default),
            };
            values.insert(a.code, v);
        }
        Obj {
            class: def.name,
            id: 0,
            values,
        }
    }

    pub fn text(&self, code: &str) -> String {
        self.values.get(code).map(Pj::text).unwrap_or_default()
    }

    pub fn def(&self) -> Option<&'static ClassDef> {
        schema::class(self.class)
    }
}

/// A failed operation: code, message, and whether iTop adds `"objects":null`
/// (stimulus refusals) instead of prefixing the message with "Error: ".
#[derive(Debug, Clone, PartialEq)]
pub struct OpError {
    pub code: i64,
    pub message: String,
    pub objects_null: bool,
}

impl OpError {
    pub fn internal(message: impl Into<String>) -> OpError {
        OpError {
            code: 100,
            message: format!("Error: {}", message.into()),
            objects_null: false,
        }
    }

    pub fn refused(message: impl Into<String>) -> OpError {
        OpError {
            code: 100,
            message: message.into(),
            objects_null: true,
        }
    }
}

#[derive(Debug, Default, Clone)]
pub struct Db {
    objs: BTreeMap<(&'static str, u64), Obj>,
    next_id: HashMap<&'static str, u64>,
    pub ref_counter: u64,
    /// Enumeration codes the data model adds (attribute code, value).
    pub extra_enum_values: Vec<(String, String)>,
}

/// How a key was given, for error messages.
pub enum KeyForm {
    Id(u64),
    Oql(String),
    Criteria(String),
}

impl Db {
    pub fn get(&self, class: &str, id: u64) -> Option<&Obj> {
        let def = schema::class(class)?;
        self.objs
            .get(&(def.root, id))
            .filter(|o| schema::is_a(o.class, class))
    }

    pub fn next_id(&mut self, root: &'static str) -> u64 {
        let entry = self.next_id.entry(root).or_insert(1);
        let id = *entry;
        *entry += 1;
        id
    }

    /// Makes ids of `root` continue after `id` (for seeding fixed ids).
    pub fn reserve_id(&mut self, root: &'static str, id: u64) {
        let entry = self.next_id.entry(root).or_insert(1);
        if *entry <= id {
            *entry = id + 1;
        }
    }

    pub fn insert(&mut self, obj: Obj) {
        if let Some(def) = obj.def() {
            self.reserve_id(def.root, obj.id);
            self.objs.insert((def.root, obj.id), obj);
        }
    }

    /// Every stored object, to change in place (test hooks).
    pub fn objects_mut(&mut self) -> impl Iterator<Item = &mut Obj> {
        self.objs.values_mut()
    }

    pub fn remove(&mut self, class: &str, id: u64) -> Option<Obj> {
        let def = schema::class(class)?;
        self.objs.remove(&(def.root, id))
    }

    pub fn friendly_name(&self, obj: &Obj) -> String {
        match obj.class {
            "UserRequest" | "Incident" | "Problem" | "Change" => obj.text("ref"),
            "Person" => {
                let first = obj.text("first_name");
                let last = obj.text("name");
                if first.is_empty() {
                    last
                } else {
                    format!("{first} {last}")
                }
            }
            "Attachment" => format!("{} {}", obj.text("item_class"), obj.text("temp_id")),
            "UserLocal" => obj.text("login"),
            _ => obj.text("name"),
        }
    }

    fn target(&self, obj: &Obj, key_attr: &str) -> Option<&Obj> {
        let def = obj.def()?;
        let Kind::ExtKey(target) = def.attr(key_attr)?.kind else {
            return None;
        };
        let id: u64 = obj.text(key_attr).parse().ok()?;
        self.get(target, id)
    }

    /// Value of attribute `code` of `obj` as iTop renders it; None if the
    /// attribute does not exist on the object's class.
    pub fn field(&self, obj: &Obj, code: &str) -> Option<Pj> {
        if code == "id" {
            return Some(Pj::s(obj.id.to_string()));
        }
        let attr = obj.def()?.attr(code)?;
        Some(match attr.kind {
            Kind::ExtField(key, remote) => Pj::s(
                self.target(obj, key)
                    .map(|t| t.text(remote))
                    .unwrap_or_default(),
            ),
            Kind::FriendlyNameOf(key) => Pj::s(
                self.target(obj, key)
                    .map(|t| self.friendly_name(t))
                    .unwrap_or_default(),
            ),
            Kind::Empty => Pj::s(""),
            Kind::Null => Pj::Null,
            Kind::FinalClass => Pj::s(obj.class),
            Kind::FriendlyName => Pj::s(self.friendly_name(obj)),
            Kind::OperationalStatus => Pj::s(match obj.text("status").as_str() {
                "resolved" => "resolved",
                "closed" => "closed",
                _ => "ongoing",
            }),
            _ => obj.values.get(code).cloned().unwrap_or(Pj::s("")),
        })
    }

    pub fn field_text(&self, obj: &Obj, code: &str) -> String {
        self.field(obj, code).map(|p| p.text()).unwrap_or_default()
    }

    /// Ids of objects of `class` (or subclasses) matching `pred`, in iTop's
    /// default order (tickets: ref descending; others: id ascending).
    pub fn select(&self, class: &str, pred: &dyn Fn(&Obj) -> bool) -> Vec<u64> {
        let mut hits: Vec<&Obj> = self
            .objs
            .values()
            .filter(|o| schema::is_a(o.class, class) && pred(o))
            .collect();
        if schema::class(class).is_some_and(|c| c.is_ticket()) {
            hits.sort_by(|a, b| b.text("ref").cmp(&a.text("ref")).then(b.id.cmp(&a.id)));
        }
        hits.into_iter().map(|o| o.id).collect()
    }

    pub fn select_oql(&self, class: &str, text: &str) -> Result<Vec<u64>, OpError> {
        let q = oql::parse(text).map_err(|e| {
            OpError::internal(format!("Query failed to execute: {e} (query: {text})"))
        })?;
        let qdef = schema::class(&q.class).ok_or_else(|| {
            OpError::internal(format!(
                "Query failed to execute: unknown class '{}'",
                q.class
            ))
        })?;
        if let Some(f) = &q.filter {
            for field in f.fields() {
                if field != "id" && qdef.attr(field).is_none() {
                    return Err(OpError::internal(format!(
                        "Query failed to execute: unknown attribute '{field}' of class '{}'",
                        q.class
                    )));
                }
            }
        }
        let ids = self.select(&q.class, &|o| match &q.filter {
            Some(f) => f.eval(&|name| self.field_text(o, name)),
            None => true,
        });
        Ok(ids
            .into_iter()
            .filter(|id| self.get(class, *id).is_some())
            .collect())
    }

    fn criteria_text(crit: &serde_json::Map<String, Value>) -> String {
        crit.iter()
            .map(|(k, v)| {
                let t = value_text(v);
                format!("{k}: {t} ({t})")
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    pub fn select_criteria(
        &self,
        class: &str,
        crit: &serde_json::Map<String, Value>,
    ) -> Result<Vec<u64>, OpError> {
        let mut class = class.to_string();
        let mut wanted: Vec<(String, String)> = Vec::new();
        for (k, v) in crit {
            if k == "finalclass" {
                class = value_text(v);
                continue;
            }
            let def = schema::class(&class).ok_or_else(|| {
                OpError::internal(format!("class: '{class}' is not a valid class'"))
            })?;
            let attr = def.attr(k);
            if k != "id" && attr.is_none() {
                return Err(OpError::internal(format!(
                    "Unknown attribute {k} from class {class}"
                )));
            }
            let text = match (attr.map(|a| a.kind), v) {
                (Some(Kind::ExtKey(target)), Value::Object(_))
                | (Some(Kind::ExtKey(target)), Value::String(_)) => {
                    self.resolve_ext_key(k, target, v)?.to_string()
                }
                _ => value_text(v),
            };
            wanted.push((k.clone(), text));
        }
        Ok(self.select(&class, &|o| {
            wanted
                .iter()
                .all(|(k, v)| oql::equal(&self.field_text(o, k), v))
        }))
    }

    /// Objects designated by a REST `key` (id, OQL or criteria).
    pub fn select_key(&self, class: &str, key: &Value) -> Result<(Vec<u64>, KeyForm), OpError> {
        match key {
            Value::Number(n) => {
                let id = n.as_u64().unwrap_or(0);
                Ok((
                    self.get(class, id).map(|o| vec![o.id]).unwrap_or_default(),
                    KeyForm::Id(id),
                ))
            }
            Value::String(s) if !s.is_empty() && s.chars().all(|c| c.is_ascii_digit()) => {
                let id = s.parse().unwrap_or(0);
                Ok((
                    self.get(class, id).map(|o| vec![o.id]).unwrap_or_default(),
                    KeyForm::Id(id),
                ))
            }
            Value::String(s) => Ok((self.select_oql(class, s)?, KeyForm::Oql(s.clone()))),
            Value::Object(m) => Ok((
                self.select_criteria(class, m)?,
                KeyForm::Criteria(Self::criteria_text(m)),
            )),
            _ => Err(OpError::internal("Wrong format for key")),
        }
    }

    /// Exactly one object designated by `key`.
    pub fn select_one(&self, class: &str, key: &Value) -> Result<u64, OpError> {
        let (ids, form) = self.select_key(class, key)?;
        match (ids.as_slice(), form) {
            ([id], _) => Ok(*id),
            ([], KeyForm::Id(id)) => {
                Err(OpError::internal(format!("Invalid object {class}::{id}")))
            }
            ([], KeyForm::Oql(q)) => {
                Err(OpError::internal(format!("No item found for query: {q}")))
            }
            ([], KeyForm::Criteria(c)) => Err(OpError::internal(format!(
                "No item found with criteria: {c}"
            ))),
            (many, KeyForm::Oql(q)) => Err(OpError::internal(format!(
                "Several items found ({}) for query: {q}",
                many.len()
            ))),
            (many, _) => Err(OpError::internal(format!(
                "Several items found ({}) with criteria: {key}",
                many.len()
            ))),
        }
    }

    /// Resolves an external-key value given in `fields` (0/null = empty).
    pub fn resolve_ext_key(&self, att: &str, target: &str, value: &Value) -> Result<u64, OpError> {
        let prefix = |e: OpError| {
            OpError::internal(format!(
                "{att}: {}",
                e.message.trim_start_matches("Error: ")
            ))
        };
        let (ids, form) = match value {
            Value::Null => return Ok(0),
            Value::Number(n) if n.as_u64() == Some(0) => return Ok(0),
            Value::String(s) if s.is_empty() || s == "0" => return Ok(0),
            _ => self.select_key(target, value).map_err(prefix)?,
        };
        match (ids.as_slice(), form) {
            ([id], _) => Ok(*id),
            ([], KeyForm::Id(id)) => Err(OpError::internal(format!(
                "{att}: Invalid object {target}::{id}"
            ))),
            ([], KeyForm::Oql(q)) => Err(OpError::internal(format!(
                "{att}: No item found for query: {q}"
            ))),
            ([], KeyForm::Criteria(c)) => Err(OpError::internal(format!(
                "{att}: No item found with criteria: {c}"
            ))),
            (many, KeyForm::Oql(q)) => Err(OpError::internal(format!(
                "{att}: Several items found ({}) for query: {q}",
                many.len()
            ))),
            (many, KeyForm::Criteria(c)) => Err(OpError::internal(format!(
                "{att}: Several items found ({}) with criteria: {c}",
                many.len()
            ))),
            (many, KeyForm::Id(id)) => Err(OpError::internal(format!(
                "{att}: Several items found ({}) for id {id}",
                many.len()
            ))),
        }
    }
}

/// Text of a JSON scalar as PHP would cast it.
pub fn value_text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::Bool(b) => {
            if *b {
                "1".into()
            } else {
                String::new()
            }
        }
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
