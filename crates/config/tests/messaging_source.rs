#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `kind = "messaging"` sources: defaults, duration forms, and every bad field reported.

use config::SourceConfig;
use config::sources::OpenOn;
use std::time::Duration;

const TARGET: &str = r#"
[targets.glpi]
kind = "glpi"
url = "http://127.0.0.1:9/apirest.php"
user_token = "t"
"#;

#[test]
fn defaults_and_duration_forms() {
    let text = format!(
        "{TARGET}\n[sources.whats]\nkind = \"messaging\"\ntarget = \"glpi\"\napi_keys = [\"k\"]\n\
         merge_window = 800\nmax_wait = \"3s\"\nopen_on = \"handoff\"\n"
    );
    let config = config::load_str(&text, Vec::new()).unwrap();
    let SourceConfig::Messaging(s) = &config.sources["whats"] else {
        panic!("not a messaging source");
    };
    assert_eq!(s.merge_window, Duration::from_millis(800));
    assert_eq!(s.max_wait, Duration::from_secs(3));
    assert_eq!(s.open_on, OpenOn::Handoff);
    assert!(s.followups);
    assert!(s.create_requesters);
    assert!(!s.entity_from_requester);
    assert!(!config.summary().contains("whsec_"));
}

#[test]
fn every_bad_field_is_reported_with_its_path() {
    let text = format!(
        "{TARGET}\n[sources.whats]\nkind = \"messaging\"\ntarget = \"glpi\"\n\
         merge_window = 0\nmax_wait = 0\ndefault_country = \"Brazil\"\nentity = -1\n\
         tax_id = \"none\"\ncallback_url = \"ftp://x\"\ncallback_secret = \"whsec_x\"\n\
         max_attachment_bytes = 0\n"
    );
    let errors = config::load_str(&text, Vec::new()).unwrap_err();
    let paths: Vec<&str> = errors.0.iter().map(|p| p.path.as_str()).collect();
    for field in [
        "api_keys",
        "merge_window",
        "default_country",
        "entity",
        "tax_id",
        "callback_url",
        "callback_secret",
        "max_attachment_bytes",
    ] {
        let path = format!("sources.whats.{field}");
        assert!(
            paths.contains(&path.as_str()),
            "{path} missing in {paths:?}"
        );
    }
}

#[test]
fn secret_without_url_is_reported() {
    let text = format!(
        "{TARGET}\n[sources.whats]\nkind = \"messaging\"\ntarget = \"glpi\"\napi_keys = [\"k\"]\n\
         callback_secret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"\n"
    );
    let errors = config::load_str(&text, Vec::new()).unwrap_err();
    assert!(
        errors
            .0
            .iter()
            .any(|p| p.path == "sources.whats.callback_url")
    );
}

#[test]
fn a_country_must_be_one_phone_numbers_know() {
    for (country, ok) in [
        ("BR", true),
        ("pt", true),
        ("XX", false),
        ("ZZ", false),
        ("Brazil", false),
    ] {
        let text = format!(
            "{TARGET}\n[sources.whats]\nkind = \"messaging\"\ntarget = \"glpi\"\napi_keys = [\"k\"]\n\
             default_country = \"{country}\"\n"
        );
        let result = config::load_str(&text, Vec::new());
        assert_eq!(result.is_ok(), ok, "{country}: {:?}", result.err());
        if let Err(errors) = result {
            assert_eq!(errors.0[0].path, "sources.whats.default_country");
        }
    }
}
