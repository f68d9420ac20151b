//! Conformance replay: every exchange of the transcript recorded from a real
//! iTop 3.2.0 (tests/fixtures/itop/real-transcripts.txt) is replayed in order
//! against a fresh simulator in the recorded initial state, and the answers are
//! compared: result code, message and objects.
//!
//! Normalisation (docs/simulators.md, iTop section): date-time values
//! (`YYYY-MM-DD HH:MM:SS`) become `<DATE>` on both sides unless the recorded
//! request itself contains that date (then they must match exactly);
//! `time_spent` (seconds, wall-clock dependent) becomes `<N>`. Ids and refs are
//! compared exactly. Bodies marked `…[EXCERPT` are compared as a subset (only
//! the members the excerpt shows).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use base64::Engine;
use serde_json::Value;
use sim_itop::{ItopSim, ItopSimConfig};

const TRANSCRIPT: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/fixtures/itop/real-transcripts.txt"
));

/// Exchanges that deliberately differ, with the reason (also in docs/simulators.md).
const EXCEPTIONS: &[(&str, &str)] = &[];

#[derive(Debug)]
struct Exchange {
    purpose: String,
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body_lines: Vec<String>,
    response: String,
    excerpt: bool,
}

fn parse(text: &str) -> Vec<Exchange> {
    let mut out = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let Some(purpose) = lines[i].strip_prefix("### ") else {
            i += 1;
            continue;
        };
        i += 1;
        while i < lines.len() && !lines[i].starts_with(">>> ") {
            i += 1;
        }
        let (method, path) = lines[i].trim_start_matches(">>> ").split_once(' ').unwrap();
        i += 1;
        let mut headers = Vec::new();
        while !lines[i].is_empty() {
            let (k, v) = lines[i].split_once(": ").unwrap();
            headers.push((k.to_string(), v.to_string()));
            i += 1;
        }
        i += 1;
        let mut body_lines = Vec::new();
        while !lines[i].starts_with("<<< ") {
            if !lines[i].is_empty() && !lines[i].starts_with("[exact wire body") {
                body_lines.push(lines[i].to_string());
            }
            i += 1;
        }
        i += 1;
        while !lines[i].is_empty() {
            i += 1;
        }
        i += 1;
        let mut response = String::new();
        let mut excerpt = false;
        while i < lines.len() && !lines[i].starts_with("### ") && !lines[i].starts_with("# ===") {
            let l = lines[i];
            if l.starts_with("…[EXCERPT") {
                excerpt = true;
            } else if !l.is_empty() {
                response.push_str(l);
            }
            i += 1;
        }
        out.push(Exchange {
            purpose: purpose.to_string(),
            method: method.to_string(),
            path: path.to_string(),
            headers,
            body_lines,
            response,
            excerpt,
        });
    }
    out
}

fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 19
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b' ',
            13 | 16 => *c == b':',
            _ => c.is_ascii_digit(),
        })
}

fn normalise(v: &mut Value, request: &str, key: Option<&str>) {
    match v {
        Value::String(s) if key == Some("time_spent") && !s.is_empty() => *s = "<N>".into(),
        Value::String(s) if is_date(s) && !request.contains(s.as_str()) => *s = "<DATE>".into(),
        Value::Array(a) => a.iter_mut().for_each(|x| normalise(x, request, None)),
        Value::Object(m) => m
            .iter_mut()
            .for_each(|(k, x)| normalise(x, request, Some(k))),
        _ => {}
    }
}

/// Whether `actual` contains everything `expected` shows (for excerpts).
fn subset(expected: &Value, actual: &Value) -> bool {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => e
            .iter()
            .all(|(k, v)| a.get(k).is_some_and(|x| subset(v, x))),
        _ => expected == actual,
    }
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[tokio::test]
async fn replay_real_transcript() {
    let sim = ItopSim::start(ItopSimConfig::default()).await.unwrap();
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .unwrap();
    let password = sim.rest_password();
    let exchanges = parse(TRANSCRIPT);
    assert!(
        exchanges.len() >= 50,
        "parsed only {} exchanges",
        exchanges.len()
    );
    let mut matched = 0;
    let mut mismatches = Vec::new();
    for ex in &exchanges {
        let url = format!("{}{}", sim.root_url(), ex.path);
        let mut req = if ex.method == "GET" {
            http.get(&url)
        } else {
            http.post(&url)
        };
        let mut content_type = String::new();
        for (k, v) in &ex.headers {
            let v = v
                .replace(
                    "<BASE64 rest:REST_PASSWORD>",
                    &b64(&format!("rest:{password}")),
                )
                .replace("<BASE64 rest:wrong>", &b64("rest:wrong"))
                .replace(
                    "<BASE64 admin:ADMIN_PASSWORD>",
                    &b64(&format!("admin:{}", sim_itop::ADMIN_PASSWORD)),
                );
            if k.eq_ignore_ascii_case("content-type") {
                content_type = v.clone();
            }
            req = req.header(k.as_str(), v);
        }
        let raw_request = ex
            .body_lines
            .join("\n")
            .replace("<REST_PASSWORD>", &password);
        let body = if content_type.starts_with("application/x-www-form-urlencoded") {
            let fields: Vec<(String, String)> = ex
                .body_lines
                .iter()
                .map(|l| {
                    let (k, v) = l.split_once('=').unwrap();
                    (k.to_string(), v.replace("<REST_PASSWORD>", &password))
                })
                .collect();
            serde_urlencoded::to_string(&fields).unwrap()
        } else {
            raw_request.clone()
        };
        let resp = req.body(body).send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let mut actual: Value = serde_json::from_str(&text).unwrap_or(Value::String(text.clone()));
        let mut expected: Value = serde_json::from_str(&ex.response).unwrap();
        normalise(&mut actual, &raw_request, None);
        normalise(&mut expected, &raw_request, None);
        let ok = status == 200
            && if ex.excerpt {
                subset(&expected, &actual)
            } else {
                expected == actual
            };
        if ok {
            matched += 1;
        } else if !EXCEPTIONS.iter().any(|(p, _)| *p == ex.purpose) {
            mismatches.push(format!(
                "- {}\n    expected: {expected}\n    actual:   {actual}",
                ex.purpose
            ));
        }
    }
    println!(
        "itop conformance: {matched}/{} exchanges match",
        exchanges.len()
    );
    for m in &mismatches {
        println!("{m}");
    }
    assert!(
        mismatches.is_empty(),
        "{} unexpected mismatches:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
    assert_eq!(matched + EXCEPTIONS.len(), exchanges.len());
    sim.shutdown().await;
}
