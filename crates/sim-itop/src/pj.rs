//! Ordered JSON values encoded the way PHP's `json_encode` does by default
//! (compact, `/` escaped as `\/`, non-ASCII as `\uXXXX`), as iTop answers.

use serde_json::Value;

/// An ordered JSON value (object members keep insertion order).
#[derive(Debug, Clone, PartialEq)]
pub enum Pj {
    Null,
    Bool(bool),
    Int(i64),
    Str(String),
    Arr(Vec<Pj>),
    Obj(Vec<(String, Pj)>),
}

impl Pj {
    pub fn s(v: impl Into<String>) -> Pj {
        Pj::Str(v.into())
    }

    pub fn obj(members: Vec<(&str, Pj)>) -> Pj {
        Pj::Obj(
            members
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        )
    }

    /// String form as iTop compares values (numbers as decimal text).
    pub fn text(&self) -> String {
        match self {
            Pj::Null => String::new(),
            Pj::Bool(b) => {
                if *b {
                    "1".into()
                } else {
                    "0".into()
                }
            }
            Pj::Int(i) => i.to_string(),
            Pj::Str(s) => s.clone(),
            Pj::Arr(_) | Pj::Obj(_) => String::new(),
        }
    }

    pub fn get(&self, key: &str) -> Option<&Pj> {
        match self {
            Pj::Obj(m) => m.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn to_value(&self) -> Value {
        match self {
            Pj::Null => Value::Null,
            Pj::Bool(b) => Value::Bool(*b),
            Pj::Int(i) => Value::from(*i),
            Pj::Str(s) => Value::String(s.clone()),
            Pj::Arr(a) => Value::Array(a.iter().map(Pj::to_value).collect()),
            Pj::Obj(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), v.to_value())).collect()),
        }
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut String) {
        match self {
            Pj::Null => out.push_str("null"),
            Pj::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Pj::Int(i) => out.push_str(&i.to_string()),
            Pj::Str(s) => write_str(s, out),
            Pj::Arr(a) => {
                out.push('[');
                for (i, v) in a.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    v.write(out);
                }
                out.push(']');
            }
            Pj::Obj(m) => {
                out.push('{');
                for (i, (k, v)) in m.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_str(k, out);
                    out.push(':');
                    v.write(out);
                }
                out.push('}');
            }
        }
    }
}

fn write_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '/' => out.push_str("\\/"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_php() {
        let v = Pj::obj(vec![("a", Pj::s("Olá </p> — x")), ("n", Pj::Null)]);
        assert_eq!(v.encode(), r#"{"a":"Ol\u00e1 <\/p> \u2014 x","n":null}"#);
    }
}
