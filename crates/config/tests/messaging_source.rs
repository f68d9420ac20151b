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
    // Room for one 10 MiB file in base64 and 1 MiB more.
    assert_eq!(s.body_limit(1024 * 1024), 13_981_014 + 1024 * 1024);
    // Never less than the server's limit; an explicit one is taken as it is.
    assert_eq!(s.body_limit(64 * 1024 * 1024), 64 * 1024 * 1024);
}

#[test]
fn an_explicit_body_limit_is_kept() {
    let text = format!(
        "{TARGET}\n[sources.whats]\nkind = \"messaging\"\ntarget = \"glpi\"\napi_keys = [\"k\"]\n\
         body_limit = 4096\n"
    );
    let config = config::load_str(&text, Vec::new()).unwrap();
    let SourceConfig::Messaging(s) = &config.sources["whats"] else {
        panic!("not a messaging source");
    };
    assert_eq!(s.body_limit(1024 * 1024), 4096);
    assert!(config.summary().contains("body_limit=4096"));
}

#[test]
fn every_bad_field_is_reported_with_its_path() {
    let text = format!(
        "{TARGET}\n[sources.whats]\nkind = \"messaging\"\ntarget = \"glpi\"\n\
         merge_window = 0\nmax_wait = 0\ndefault_country = \"Brazil\"\nentity = -1\n\
         tax_id = \"none\"\ncallback_url = \"ftp://x\"\ncallback_secret = \"whsec_x\"\n\
         max_attachment_bytes = 0\nbody_limit = 0\n"
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
        "body_limit",
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

/// An iTop Person needs an organisation: a source that would create people
/// in an iTop target without being able to name one is refused, with the
/// ways out; naming one anywhere (source or target), or not creating
/// people, passes. GLPI users need none.
#[test]
fn sources_creating_itop_people_must_name_an_organisation() {
    let itop = |extra: &str| {
        format!(
            "[targets.itop]\nkind = \"itop\"\nurl = \"http://127.0.0.1:9/\"\nuser = \"u\"\npassword = \"p\"\n{extra}\n"
        )
    };
    let messaging = |extra: &str| {
        format!(
            "\n[sources.whats]\nkind = \"messaging\"\ntarget = \"itop\"\napi_keys = [\"k\"]\n{extra}\n"
        )
    };
    let chatwoot = |extra: &str| {
        format!(
            "\n[sources.cw]\nkind = \"chatwoot\"\ntarget = \"itop\"\nurl = \"http://127.0.0.1:9\"\n\
             api_access_token = \"t\"\naccount_id = 1\nurl_token = \"secret-token-of-32-characters-xx\"\n{extra}\n"
        )
    };
    let errors =
        config::load_str(&(itop("") + &messaging("") + &chatwoot("")), Vec::new()).unwrap_err();
    let found: Vec<(&str, &str)> = errors
        .0
        .iter()
        .map(|p| (p.path.as_str(), p.message.as_str()))
        .collect();
    let messaging_problem = found
        .iter()
        .find(|(path, _)| *path == "sources.whats.create_requesters")
        .unwrap_or_else(|| panic!("no messaging problem in {found:?}"));
    assert!(
        messaging_problem.1.contains("default_org"),
        "{messaging_problem:?}"
    );
    assert!(
        found.iter().any(|(path, _)| *path == "sources.cw.entity"),
        "{found:?}"
    );

    for fine in [
        itop("default_org = 3") + &messaging("") + &chatwoot(""),
        itop("") + &messaging("entity = 3") + &chatwoot("entity = 3"),
        itop("") + &messaging("tax_id = \"11.222.333/0001-81\"\ncreate_requesters = false"),
        itop("") + &messaging("create_requesters = false"),
    ] {
        if let Err(errors) = config::load_str(&fine, Vec::new()) {
            panic!("{fine}\n{:?}", errors.0);
        }
    }
    let glpi = format!(
        "{TARGET}\n[sources.whats]\nkind = \"messaging\"\ntarget = \"glpi\"\napi_keys = [\"k\"]\n"
    );
    config::load_str(&glpi, Vec::new()).unwrap();
}
