//! PHP-style parameters: `criteria[0][field]=5&forcedisplay[]=2` becomes nested JSON objects,
//! exactly as PHP's `parse_str` builds `$_GET` (numeric keys stay object keys).

use serde_json::{Map, Value};

pub(crate) fn parse_query(query: &str) -> Map<String, Value> {
    let mut root = Map::new();
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        insert(&mut root, &k, Value::String(v.into_owned()));
    }
    root
}

fn insert(root: &mut Map<String, Value>, key: &str, value: Value) {
    let (base, rest) = match key.find('[') {
        Some(i) => (&key[..i], &key[i..]),
        None => (key, ""),
    };
    if base.is_empty() {
        return;
    }
    let mut parts = Vec::new();
    let mut r = rest;
    while let Some(stripped) = r.strip_prefix('[') {
        match stripped.find(']') {
            Some(end) => {
                parts.push(stripped[..end].to_string());
                r = &stripped[end + 1..];
            }
            None => break,
        }
    }
    if parts.is_empty() {
        root.insert(base.to_string(), value);
        return;
    }
    let mut slot = root
        .entry(base.to_string())
        .or_insert_with(|| Value::Object(Map::new()));
    for (i, part) in parts.iter().enumerate() {
        if !slot.is_object() {
            *slot = Value::Object(Map::new());
        }
        let Value::Object(map) = slot else { return };
        let key = if part.is_empty() {
            map.len().to_string()
        } else {
            part.clone()
        };
        if i == parts.len() - 1 {
            map.insert(key, value);
            return;
        }
        slot = map.entry(key).or_insert_with(|| Value::Object(Map::new()));
    }
}

/// `{"0":a,"1":b}` or `[a,b]` or a scalar -> a list, ordered by numeric key.
pub(crate) fn as_list(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(a) => a.clone(),
        Value::Object(o) => {
            let mut items: Vec<(i64, Value)> = o
                .iter()
                .map(|(k, v)| (k.parse::<i64>().unwrap_or(i64::MAX), v.clone()))
                .collect();
            items.sort_by_key(|(k, _)| *k);
            items.into_iter().map(|(_, v)| v).collect()
        }
        Value::Null => Vec::new(),
        other => vec![other.clone()],
    }
}

/// PHP's truthiness of a request parameter (`"true"`, `1`, `true`).
pub(crate) fn truthy(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        Some(Value::String(s)) => !(s.is_empty() || s == "0" || s == "false"),
        _ => false,
    }
}
