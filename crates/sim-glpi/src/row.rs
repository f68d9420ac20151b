//! An ordered JSON object: GLPI answers with columns in table order, and the transcripts
//! are compared byte for byte, so rows keep insertion order.

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value;

#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Row(Vec<(String, Value)>);

impl Row {
    pub(crate) fn new() -> Row {
        Row(Vec::new())
    }

    pub(crate) fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub(crate) fn has(&self, key: &str) -> bool {
        self.0.iter().any(|(k, _)| k == key)
    }

    /// Replace the value of `key`, or append it.
    pub(crate) fn set(&mut self, key: &str, value: impl Into<Value>) {
        let value = value.into();
        match self.0.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => self.0.push((key.to_string(), value)),
        }
    }

    pub(crate) fn int(&self, key: &str) -> i64 {
        self.get(key).map(value_int).unwrap_or(0)
    }

    pub(crate) fn str(&self, key: &str) -> String {
        match self.get(key) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => String::new(),
            Some(v) => v.to_string(),
        }
    }

    pub(crate) fn opt_str(&self, key: &str) -> Option<String> {
        match self.get(key) {
            Some(Value::String(s)) => Some(s.clone()),
            _ => None,
        }
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &(String, Value)> {
        self.0.iter()
    }

    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = &mut (String, Value)> {
        self.0.iter_mut()
    }

    pub(crate) fn to_value(&self) -> Value {
        Value::Object(self.0.iter().cloned().collect())
    }
}

/// Integer view of a JSON value as PHP would coerce it (`"7"` -> 7, `true` -> 1).
pub(crate) fn value_int(v: &Value) -> i64 {
    match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .unwrap_or(0),
        Value::String(s) => s.trim().parse().unwrap_or(0),
        Value::Bool(b) => i64::from(*b),
        _ => 0,
    }
}

impl Serialize for Row {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// An ordered JSON value for response bodies (nested objects keep their order too).
#[derive(Clone, Debug)]
pub(crate) enum Out {
    Json(Value),
    Row(Row),
    Obj(Vec<(String, Out)>),
    Arr(Vec<Out>),
}

impl Serialize for Out {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Out::Json(v) => v.serialize(serializer),
            Out::Row(r) => r.serialize(serializer),
            Out::Obj(fields) => {
                let mut map = serializer.serialize_map(Some(fields.len()))?;
                for (k, v) in fields {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
            Out::Arr(items) => items.serialize(serializer),
        }
    }
}

impl Out {
    pub(crate) fn obj(fields: Vec<(&str, Out)>) -> Out {
        Out::Obj(
            fields
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        )
    }

    pub(crate) fn json(v: impl Into<Value>) -> Out {
        Out::Json(v.into())
    }

    /// Compact JSON with unescaped slashes and raw UTF-8, as GLPI sends it.
    pub(crate) fn to_body(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "null".to_string())
    }
}
