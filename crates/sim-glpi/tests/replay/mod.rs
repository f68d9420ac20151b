//! Replays a recorded GLPI transcript against a fresh simulator and compares every answer.
//!
//! Transcript format (see the header of each fixture): `### purpose`, `# note` lines,
//! `>>> METHOD PATH`, request headers, blank line, body, `<<< STATUS Reason`, response headers,
//! blank line, body. Bodies are exact bytes unless the first line starts with `…[EXCERPT`
//! (a re-serialized subset: compared by shape, and values reported separately) or the body
//! ends with `…[trimmed N bytes]` (compared as a verbatim prefix).
//!
//! Normalisation applied to BOTH sides before comparing (volatile values):
//! - the recorded origin (`http://127.0.0.1:8081` / `:8084`) becomes the simulator's origin;
//! - placeholders (`<APP_TOKEN>`, `<SESSION_TOKEN*>`, …) become the simulator's values; a
//!   `{"session_token":"<SESSION_TOKEN_X>"}` answer binds `<SESSION_TOKEN_X>` to the token issued;
//! - datetimes `YYYY-MM-DD HH:MM:SS` become `<DATE>` (the simulator's clock starts at the
//!   recording time, so they mostly agree anyway);
//! - upload prefixes (`uniqid`: 14 hex + `.` + 8 digits) become `<UNIQID>`, `docfilename<digits>`
//!   ids become `docfilename<N>`, and a Document's `tag` becomes `<TAG>` (random in GLPI too).
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use base64::Engine;
use regex::Regex;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Exchange {
    pub title: String,
    pub method: String,
    pub path: String,
    pub req_headers: Vec<(String, String)>,
    pub req_body: Vec<u8>,
    pub status: u16,
    pub resp_headers: Vec<(String, String)>,
    pub body: Body,
    /// `# state check …: GET <path> -> 200, excerpt {…}` lines that follow this exchange.
    pub state_checks: Vec<(String, u16, String)>,
}

#[derive(Debug, Clone)]
pub enum Body {
    Exact(String),
    Trimmed(String),
    Excerpt(String),
}

fn multipart_body(lines: &[&str], boundary: &str) -> Vec<u8> {
    let delim = format!("--{boundary}");
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if line.starts_with(&delim) {
            out.extend_from_slice(line.as_bytes());
            out.extend_from_slice(b"\r\n");
            if line.ends_with("--") {
                break;
            }
            i += 1;
            while i < lines.len() && !lines[i].is_empty() {
                out.extend_from_slice(lines[i].as_bytes());
                out.extend_from_slice(b"\r\n");
                i += 1;
            }
            out.extend_from_slice(b"\r\n");
            i += 1;
            let mut content = Vec::new();
            while i < lines.len() && !lines[i].starts_with(&delim) {
                content.push(lines[i]);
                i += 1;
            }
            out.extend_from_slice(content.join("\n").as_bytes());
            out.extend_from_slice(b"\r\n");
        } else {
            i += 1;
        }
    }
    out
}

pub fn parse(text: &str) -> Vec<Exchange> {
    let lines: Vec<&str> = text.lines().collect();
    let state_re =
        Regex::new(r"^# state check.*?: GET (\S+) -> (\d+), excerpt (\{.*\})\s*$").unwrap();
    let mut out: Vec<Exchange> = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if let Some(c) = state_re.captures(line) {
            if let Some(last) = out.last_mut() {
                last.state_checks
                    .push((c[1].to_string(), c[2].parse().unwrap(), c[3].to_string()));
            }
            i += 1;
            continue;
        }
        let Some(title) = line.strip_prefix("### ") else {
            i += 1;
            continue;
        };
        i += 1;
        while i < lines.len() && !lines[i].starts_with(">>> ") {
            i += 1;
        }
        let (method, path) = lines[i][4..].split_once(' ').unwrap();
        i += 1;
        let mut req_headers = Vec::new();
        while !lines[i].is_empty() {
            let (k, v) = lines[i].split_once(": ").unwrap();
            req_headers.push((k.to_string(), v.to_string()));
            i += 1;
        }
        i += 1;
        let mut body_lines = Vec::new();
        while !lines[i].starts_with("<<< ") {
            body_lines.push(lines[i]);
            i += 1;
        }
        while body_lines.last().is_some_and(|l| l.is_empty()) {
            body_lines.pop();
        }
        let ct = req_headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
            .map(|(_, v)| v.clone());
        let req_body = match ct.as_deref().and_then(|c| c.split("boundary=").nth(1)) {
            Some(boundary) => multipart_body(&body_lines, boundary),
            None => body_lines.join("\n").into_bytes(),
        };
        let status: u16 = lines[i][4..7].parse().unwrap();
        i += 1;
        let mut resp_headers = Vec::new();
        while i < lines.len() && !lines[i].is_empty() {
            let (k, v) = lines[i].split_once(": ").unwrap();
            resp_headers.push((k.to_string(), v.to_string()));
            i += 1;
        }
        i += 1;
        let mut resp_lines = Vec::new();
        while i < lines.len() && !lines[i].starts_with("### ") && !lines[i].starts_with("# ") {
            resp_lines.push(lines[i]);
            i += 1;
        }
        while resp_lines.last().is_some_and(|l| l.is_empty()) {
            resp_lines.pop();
        }
        let body = if resp_lines
            .first()
            .is_some_and(|l| l.starts_with("…[EXCERPT"))
        {
            Body::Excerpt(resp_lines[1..].join("\n"))
        } else {
            let joined = resp_lines.join("\n");
            match joined.find("…[trimmed") {
                Some(pos) => Body::Trimmed(joined[..pos].to_string()),
                None => Body::Exact(joined),
            }
        };
        out.push(Exchange {
            title: title.to_string(),
            method: method.to_string(),
            path: path.to_string(),
            req_headers,
            req_body,
            status,
            resp_headers,
            body,
            state_checks: Vec::new(),
        });
    }
    out
}

/// Values substituted for placeholders.
pub struct Subst {
    pub recorded_origin: String,
    pub origin: String,
    pub app_token: String,
    pub user_token: String,
    pub tech_user_token: String,
    pub glpi_password: String,
    pub requester_password: String,
    pub sessions: HashMap<String, String>,
}

impl Subst {
    pub fn apply(&self, s: &str) -> String {
        let b64 = Regex::new(r"<BASE64 ([^:>]+):([^>]+)>").unwrap();
        let s = b64
            .replace_all(s, |c: &regex::Captures| {
                let pwd = match &c[2] {
                    "GLPI_PASSWORD" => self.glpi_password.clone(),
                    "REQUESTER_PASSWORD" => self.requester_password.clone(),
                    other => other.to_string(),
                };
                base64::engine::general_purpose::STANDARD.encode(format!("{}:{pwd}", &c[1]))
            })
            .to_string();
        let mut s = s
            .replace("<APP_TOKEN>", &self.app_token)
            .replace("<TECH_USER_TOKEN>", &self.tech_user_token)
            .replace("<USER_TOKEN>", &self.user_token)
            .replace("<GLPI_PASSWORD>", &self.glpi_password)
            .replace("<REQUESTER_PASSWORD>", &self.requester_password)
            .replace(&self.recorded_origin, &self.origin);
        let mut names: Vec<&String> = self.sessions.keys().collect();
        names.sort_by_key(|n| std::cmp::Reverse(n.len()));
        for name in names {
            s = s.replace(name.as_str(), &self.sessions[name]);
        }
        s
    }
}

static DATE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}").unwrap());
static UNIQ: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"[0-9a-f]{14}\.\d{8}").unwrap());
static DOCID: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"docfilename\d+").unwrap());
static TAG: LazyLock<Regex> = LazyLock::new(|| Regex::new(r#""tag":"[^"]*""#).unwrap());

pub fn normalise(s: &str) -> String {
    let s = DATE.replace_all(s, "<DATE>");
    let s = UNIQ.replace_all(&s, "<UNIQID>");
    let s = DOCID.replace_all(&s, "docfilename<N>");
    TAG.replace_all(&s, "\"tag\":\"<TAG>\"").to_string()
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Shape check: every expected key exists with the same JSON type (recursively), arrays have
/// the same length. Returns the differences.
pub fn shape_diff(path: &str, exp: &Value, act: &Value, out: &mut Vec<String>) {
    if kind(exp) != kind(act) {
        out.push(format!("{path}: expected {} got {}", kind(exp), kind(act)));
        return;
    }
    match (exp, act) {
        (Value::Object(e), Value::Object(a)) => {
            for (k, ev) in e {
                match a.get(k) {
                    Some(av) => shape_diff(&format!("{path}.{k}"), ev, av, out),
                    None => out.push(format!("{path}.{k}: missing")),
                }
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            if e.len() != a.len() {
                out.push(format!(
                    "{path}: expected {} elements got {}",
                    e.len(),
                    a.len()
                ));
            }
            for (i, (ev, av)) in e.iter().zip(a).enumerate() {
                shape_diff(&format!("{path}[{i}]"), ev, av, out);
            }
        }
        _ => {}
    }
}

/// Value check on the excerpt's leaves (after normalisation).
pub fn value_diff(path: &str, exp: &Value, act: &Value, out: &mut Vec<String>) {
    match (exp, act) {
        (Value::Object(e), Value::Object(a)) => {
            for (k, ev) in e {
                if let Some(av) = a.get(k) {
                    value_diff(&format!("{path}.{k}"), ev, av, out);
                }
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            for (i, (ev, av)) in e.iter().zip(a).enumerate() {
                value_diff(&format!("{path}[{i}]"), ev, av, out);
            }
        }
        (e, a) => {
            let (es, as_) = (normalise(&e.to_string()), normalise(&a.to_string()));
            if es != as_ {
                out.push(format!("{path}: expected {es} got {as_}"));
            }
        }
    }
}

pub struct Outcome {
    pub title: String,
    pub problems: Vec<String>,
    /// Excerpt values that differ (reported, not counted as a mismatch).
    pub value_notes: Vec<String>,
}

const CHECKED_HEADERS: &[&str] = &[
    "content-type",
    "content-range",
    "accept-range",
    "location",
    "link",
    "content-disposition",
];
const MUST_BE_ABSENT: &[&str] = &["content-range", "accept-range", "location", "link"];

pub async fn run(client: &reqwest::Client, sub: &mut Subst, ex: &Exchange) -> Outcome {
    let mut problems = Vec::new();
    let mut value_notes = Vec::new();
    let url = format!("{}{}", sub.origin, sub.apply(&ex.path));
    let method = reqwest::Method::from_bytes(ex.method.as_bytes()).unwrap();
    let mut rb = client.request(method, &url);
    for (k, v) in &ex.req_headers {
        rb = rb.header(k.as_str(), sub.apply(v));
    }
    if !ex.req_body.is_empty() {
        let body = match String::from_utf8(ex.req_body.clone()) {
            Ok(s) => sub.apply(&s).into_bytes(),
            Err(_) => ex.req_body.clone(),
        };
        rb = rb.body(body);
    }
    let resp = match rb.send().await {
        Ok(r) => r,
        Err(e) => {
            return Outcome {
                title: ex.title.clone(),
                problems: vec![format!("transport error: {e}")],
                value_notes,
            };
        }
    };
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap_or_default();
    if status != ex.status {
        problems.push(format!("status: expected {} got {status}", ex.status));
    }
    for name in CHECKED_HEADERS {
        let expected = ex
            .resp_headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| sub.apply(v));
        let actual = headers
            .get(*name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        match (expected, actual) {
            (Some(e), Some(a)) if e != a => {
                problems.push(format!("header {name}: expected {e:?} got {a:?}"))
            }
            (Some(e), None) => problems.push(format!("header {name}: expected {e:?}, missing")),
            (None, Some(a)) if MUST_BE_ABSENT.contains(name) => {
                problems.push(format!("header {name}: unexpected {a:?}"))
            }
            _ => {}
        }
    }
    // Session tokens issued: bind the placeholder.
    if let Body::Exact(b) = &ex.body {
        let re = Regex::new(r#"^\{"session_token":"(<SESSION_TOKEN[A-Z0-9_]*>)"\}$"#).unwrap();
        if let Some(c) = re.captures(b) {
            let token = serde_json::from_str::<Value>(&text).ok().and_then(|v| {
                v.get("session_token")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            });
            match token {
                Some(t) => {
                    sub.sessions.insert(c[1].to_string(), t);
                }
                None => problems.push(format!("no session_token in {text:?}")),
            }
        }
    }
    match &ex.body {
        Body::Exact(b) => {
            // The transcript format cannot show trailing newlines (file downloads end with one).
            let e = normalise(&sub.apply(b));
            let a = normalise(text.trim_end_matches('\n'));
            if e != a {
                problems.push(format!("body:\n      expected {e}\n      got      {a}"));
            }
        }
        Body::Trimmed(prefix) => {
            let e = normalise(&sub.apply(prefix));
            let a = normalise(&text);
            if !a.starts_with(&e) {
                let common = e.chars().zip(a.chars()).take_while(|(x, y)| x == y).count();
                let at: String = a.chars().skip(common.saturating_sub(20)).take(80).collect();
                let want: String = e.chars().skip(common.saturating_sub(20)).take(80).collect();
                problems.push(format!("body prefix differs at char {common}:\n      expected …{want}\n      got      …{at}"));
            }
        }
        Body::Excerpt(json) => {
            let exp: Value = match serde_json::from_str(&sub.apply(json)) {
                Ok(v) => v,
                Err(e) => {
                    problems.push(format!("unparsable excerpt: {e}"));
                    Value::Null
                }
            };
            match serde_json::from_str::<Value>(&text) {
                Ok(act) => {
                    shape_diff("$", &exp, &act, &mut problems);
                    value_diff("$", &exp, &act, &mut value_notes);
                }
                Err(_) if ex.status >= 200 => problems.push(format!("body is not JSON: {text:?}")),
                Err(_) => {}
            }
        }
    }
    Outcome {
        title: ex.title.clone(),
        problems,
        value_notes,
    }
}

/// Run a `# state check` (an unrecorded GET whose excerpt values were copied verbatim).
pub async fn state_check(
    client: &reqwest::Client,
    sub: &Subst,
    app_token: &str,
    session: &str,
    path: &str,
    status: u16,
    excerpt: &str,
) -> Vec<String> {
    let resp = client
        .get(format!("{}{path}", sub.origin))
        .header("App-Token", app_token)
        .header("Session-Token", session)
        .send()
        .await;
    let Ok(resp) = resp else {
        return vec!["transport error".into()];
    };
    let mut problems = Vec::new();
    if resp.status().as_u16() != status {
        problems.push(format!("status {}", resp.status()));
    }
    let act: Value = resp.json().await.unwrap_or(Value::Null);
    let exp: Value = serde_json::from_str(excerpt).unwrap_or(Value::Null);
    shape_diff("$", &exp, &act, &mut problems);
    value_diff("$", &exp, &act, &mut problems);
    problems
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}
