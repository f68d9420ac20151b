//! Response bodies, object results and keys, parsed leniently (iTop sends ids
//! and numbers as strings).

use serde_json::{Map, Value};

use crate::error::ItopError;

/// How to designate objects: by id, by OQL, or by criteria (attribute → value).
#[derive(Debug, Clone, PartialEq)]
pub enum Key {
    Id(u64),
    Oql(String),
    Criteria(Map<String, Value>),
}

impl Key {
    /// Criteria from pairs, e.g. `Key::criteria([("email", "a@b.c")])`.
    pub fn criteria<K: Into<String>, V: Into<Value>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Key {
        Key::Criteria(
            pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }

    pub fn to_value(&self) -> Value {
        match self {
            Key::Id(id) => Value::from(*id),
            Key::Oql(q) => Value::String(q.clone()),
            Key::Criteria(m) => Value::Object(m.clone()),
        }
    }
}

impl From<u64> for Key {
    fn from(id: u64) -> Key {
        Key::Id(id)
    }
}

/// Quotes a string for an OQL literal (`'…'` with `\` escapes).
pub fn oql_quote(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// One object of a result (`objects["Class::id"]`).
#[derive(Debug, Clone, PartialEq)]
pub struct ItopObject {
    pub class: String,
    pub key: u64,
    pub code: i64,
    pub message: String,
    pub fields: Map<String, Value>,
}

/// Text of a JSON scalar, lenient about numbers sent as strings and vice versa.
pub fn lenient_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// An unsigned number from a string or number.
pub fn lenient_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

impl ItopObject {
    /// A field as text ("" if absent or null).
    pub fn text(&self, field: &str) -> String {
        self.fields
            .get(field)
            .and_then(lenient_text)
            .unwrap_or_default()
    }

    /// A field as text, None if absent, null or empty.
    pub fn opt_text(&self, field: &str) -> Option<String> {
        Some(self.text(field)).filter(|s| !s.is_empty())
    }

    /// A numeric field.
    pub fn number(&self, field: &str) -> Option<u64> {
        self.fields.get(field).and_then(lenient_u64)
    }

    /// An external key: None when empty ("0").
    pub fn ext_key(&self, field: &str) -> Option<u64> {
        self.number(field).filter(|id| *id != 0)
    }

    fn from_value(name: &str, v: &Value) -> Result<ItopObject, ItopError> {
        let obj = v.as_object().ok_or_else(|| {
            ItopError::InvalidResponse(format!("object {name} is not a JSON object"))
        })?;
        let (name_class, name_id) = name.split_once("::").unwrap_or((name, ""));
        let class = obj
            .get("class")
            .and_then(lenient_text)
            .unwrap_or_else(|| name_class.to_string());
        let key = obj
            .get("key")
            .and_then(lenient_u64)
            .or_else(|| name_id.parse().ok())
            .ok_or_else(|| ItopError::InvalidResponse(format!("object {name} has no key")))?;
        Ok(ItopObject {
            class,
            key,
            code: obj
                .get("code")
                .and_then(|c| lenient_text(c)?.parse().ok())
                .unwrap_or(0),
            message: obj
                .get("message")
                .and_then(lenient_text)
                .unwrap_or_default(),
            fields: obj
                .get("fields")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default(),
        })
    }
}

/// A parsed response body.
#[derive(Debug, Clone, PartialEq)]
pub struct RestResponse {
    pub code: i64,
    pub message: Option<String>,
    /// Objects, in the order iTop listed them.
    pub objects: Vec<ItopObject>,
    /// The whole body (for members such as `authorized` or `operations`).
    pub body: Value,
}

impl RestResponse {
    /// Parses a body; a non-zero code becomes the matching `ItopError`.
    pub fn parse(text: &str) -> Result<RestResponse, ItopError> {
        let mut de = serde_json::Deserializer::from_str(text);
        let ordered = ordered_object_names(text);
        let body: Value = serde::Deserialize::deserialize(&mut de)
            .map_err(|e| ItopError::InvalidResponse(format!("not JSON: {e}")))?;
        let map = body
            .as_object()
            .ok_or_else(|| ItopError::InvalidResponse("body is not a JSON object".into()))?;
        let code = map
            .get("code")
            .and_then(|c| lenient_text(c)?.parse::<i64>().ok())
            .ok_or_else(|| ItopError::InvalidResponse("no result code".into()))?;
        let message = map.get("message").and_then(lenient_text);
        if code != 0 {
            return Err(ItopError::from_code(code, message.unwrap_or_default()));
        }
        let mut objects = Vec::new();
        if let Some(Value::Object(objs)) = map.get("objects") {
            let mut names: Vec<&String> = objs.keys().collect();
            names.sort_by_key(|n| ordered.iter().position(|o| o == *n).unwrap_or(usize::MAX));
            for name in names {
                if let Some(v) = objs.get(name) {
                    objects.push(ItopObject::from_value(name, v)?);
                }
            }
        }
        Ok(RestResponse {
            code,
            message,
            objects,
            body,
        })
    }
}

/// Names of the members of the top-level `objects` in document order
/// (serde_json's map does not keep it; iTop's order is meaningful for `core/get`).
fn ordered_object_names(text: &str) -> Vec<String> {
    #[derive(serde::Deserialize)]
    struct Top {
        #[serde(default)]
        objects: Option<OrderedKeys>,
    }
    struct OrderedKeys(Vec<String>);
    impl<'de> serde::Deserialize<'de> for OrderedKeys {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> serde::de::Visitor<'de> for V {
                type Value = OrderedKeys;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("a map")
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(
                    self,
                    mut m: A,
                ) -> Result<OrderedKeys, A::Error> {
                    let mut keys = Vec::new();
                    while let Some((k, _)) = m.next_entry::<String, serde::de::IgnoredAny>()? {
                        keys.push(k);
                    }
                    Ok(OrderedKeys(keys))
                }
                fn visit_unit<E>(self) -> Result<OrderedKeys, E> {
                    Ok(OrderedKeys(Vec::new()))
                }
            }
            d.deserialize_any(V)
        }
    }
    serde_json::from_str::<Top>(text)
        .ok()
        .and_then(|t| t.objects)
        .map(|o| o.0)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_leniently_and_keeps_order() {
        let r = RestResponse::parse(r#"{"code":0,"message":"Found: 2","objects":{"UserRequest::2":{"code":0,"message":"","class":"UserRequest","key":"2","fields":{"id":"2","org_id":"3","team_id":"0"}},"UserRequest::1":{"code":0,"message":"","class":"UserRequest","key":1,"fields":{"id":1}}}}"#).unwrap();
        assert_eq!(
            r.objects.iter().map(|o| o.key).collect::<Vec<_>>(),
            vec![2, 1]
        );
        assert_eq!(r.objects[0].ext_key("org_id"), Some(3));
        assert_eq!(r.objects[0].ext_key("team_id"), None);
        assert_eq!(r.objects[1].text("id"), "1");
        let e =
            RestResponse::parse(r#"{"code":"1","message":"Error: Invalid login"}"#).unwrap_err();
        assert!(matches!(e, ItopError::Unauthorized { .. }));
        assert!(RestResponse::parse("<html>").unwrap_err().is_retryable());
        assert_eq!(oql_quote("O'Brien"), r"'O\'Brien'");
    }
}
