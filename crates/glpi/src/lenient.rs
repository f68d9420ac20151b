//! Lenient deserialisers: GLPI returns ids and integers as numbers or numeric strings
//! (search cells, GLPI 9.5), booleans as 0/1, and sometimes `null` or `false` for "none".

use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// Integer from a number, a numeric string, a bool; `null`/`""`/other → 0.
pub fn int_from_value(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        Value::Bool(b) => Some(i64::from(*b)),
        _ => None,
    }
}

pub fn i64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let v = Value::deserialize(d)?;
    Ok(int_from_value(&v).unwrap_or(0))
}

pub fn opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    let v = Value::deserialize(d)?;
    Ok(int_from_value(&v))
}

pub fn bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    let v = Value::deserialize(d)?;
    Ok(match v {
        Value::Bool(b) => b,
        other => int_from_value(&other).unwrap_or(0) != 0,
    })
}

/// Optional boolean: `true`/`false`, `1`/`0` (as numbers or strings); null → None.
pub fn opt_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    let v = Value::deserialize(d)?;
    Ok(match v {
        Value::Bool(b) => Some(b),
        other => int_from_value(&other).map(|n| n != 0),
    })
}

/// String from a string, a number (rendered) or null (empty).
pub fn string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let v = Value::deserialize(d)?;
    Ok(match v {
        Value::String(s) => s,
        Value::Null => String::new(),
        other => other.to_string(),
    })
}

/// Optional string: null or empty → None.
pub fn opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let v = Value::deserialize(d)?;
    Ok(match v {
        Value::String(s) if !s.is_empty() => Some(s),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Deserialize)]
    struct Row {
        #[serde(deserialize_with = "i64")]
        id: i64,
        #[serde(deserialize_with = "bool")]
        flag: bool,
        #[serde(deserialize_with = "opt_string", default)]
        date: Option<String>,
    }

    #[test]
    fn accepts_strings_and_numbers() {
        let r: Row = serde_json::from_value(json!({"id":"7","flag":1,"date":null})).unwrap();
        assert_eq!((r.id, r.flag, r.date), (7, true, None));
        let r: Row =
            serde_json::from_value(json!({"id":7,"flag":"0","date":"2026-01-01 00:00:00"}))
                .unwrap();
        assert_eq!((r.id, r.flag), (7, false));
        assert_eq!(r.date.as_deref(), Some("2026-01-01 00:00:00"));
    }
}
