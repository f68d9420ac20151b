//! `kind = "itop"` source settings: defaults and per-field validation.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use config::SourceConfig;

const TARGETS: &str = r#"
[targets.ext]
kind = "itop"
url = "http://127.0.0.1:1/"
user = "rest"
password = "p"
[targets.int]
kind = "itop"
url = "http://127.0.0.1:2/"
token = "t"
"#;

#[test]
fn a_bridge_loads_with_defaults() {
    let toml = format!(
        "{TARGETS}\n[sources.b]\nkind = \"itop\"\ninternal_target = \"int\"\nexternal_target = \"ext\"\napi_keys = [\"k1\", \"k2\"]\n[sources.b.internal]\norg_id = 3\ncaller_id = 15\n"
    );
    let config = config::load_str(&toml, Vec::<(String, String)>::new()).unwrap();
    let Some(SourceConfig::Itop(s)) = config.sources.get("b") else {
        panic!("not an itop source");
    };
    assert_eq!(s.target, "int");
    assert_eq!(s.api_keys.len(), 2);
    assert_eq!(
        s.status_to_internal
            .get("escalated_ttr")
            .map(String::as_str),
        Some("assigned")
    );
    assert_eq!(s.reconcile_interval.as_secs(), 300);
    assert_eq!(s.ticket_class, "UserRequest");
}

#[test]
fn every_bad_field_is_reported_with_its_path() {
    let toml = format!(
        "{TARGETS}\n[sources.b]\nkind = \"itop\"\ntarget = \"int\"\nexternal_target = \"int\"\napi_keys = []\nreconcile_interval = \"1ms\"\nresolution_code = \" \"\n[sources.b.internal]\norg_id = 0\ncaller_id = 0\nteam_id = 0\n[sources.b.status_to_external]\nassigned = \"approved\"\nflying = \"new\"\n"
    );
    let errors = config::load_str(&toml, Vec::<(String, String)>::new()).unwrap_err();
    let text = errors.to_string();
    for path in [
        "sources.b.external_target",
        "sources.b.api_keys",
        "sources.b.reconcile_interval",
        "sources.b.resolution_code",
        "sources.b.internal.org_id",
        "sources.b.internal.caller_id",
        "sources.b.internal.team_id",
        "sources.b.status_to_external.assigned",
        "sources.b.status_to_external.flying",
    ] {
        assert!(text.contains(path), "{path} missing in {text}");
    }
}

/// Missing required fields do not hide the other problems of their source
/// (or of the other sources): one run lists them all, each once.
#[test]
fn missing_fields_are_reported_with_every_other_problem_at_once() {
    let toml = format!(
        "[server]\nrequest_timeout = \"5s\"\n{TARGETS}\n\
         [sources.b]\nkind = \"itop\"\ntarget = \"int\"\nexternal_target = \"int\"\n\
         reconcile_interval = \"1ms\"\n[sources.b.internal]\nteam_id = 0\n\
         [sources.web]\nkind = \"intake\"\ntarget = \"int\"\nwait = \"8s\"\n"
    );
    let errors = config::load_str(&toml, Vec::<(String, String)>::new()).unwrap_err();
    let paths: Vec<&str> = errors.0.iter().map(|p| p.path.as_str()).collect();
    for path in [
        "sources.b.api_keys",
        "sources.b.internal.org_id",
        "sources.b.internal.caller_id",
        "sources.b.internal.team_id",
        "sources.b.external_target",
        "sources.b.reconcile_interval",
        "sources.web.api_keys",
        "sources.web.wait",
    ] {
        assert_eq!(
            paths.iter().filter(|p| **p == path).count(),
            1,
            "{path} once in {paths:?}"
        );
    }
}
