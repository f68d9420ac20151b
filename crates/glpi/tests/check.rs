#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `check` diagnostics against the simulator.

mod common;

use glpi::check::{Expectations, diagnose};
use secrecy::SecretString;
use sim_glpi::GlpiVersion;

use common::{config_for, sim};

both_modes!(healthy_target_all_ok, each_problem_is_one_failed_line);

async fn healthy_target_all_ok(mode: GlpiVersion) {
    let sim = sim(mode).await;
    let acme = sim.add_entity("ACME Ltda", 0, None) as i64;
    sim.add_category("Atendimento");
    let chat = sim.add_request_type("Chatwoot");
    let expect = Expectations {
        entity_id: Some(acme),
        category: Some("Atendimento".into()),
        request_type: Some(chat.to_string()),
    };
    let lines = diagnose(&config_for(&sim, "glpi"), &expect).await;
    for l in &lines {
        assert!(l.ok, "{l}");
    }
    let text: Vec<String> = lines.iter().map(ToString::to_string).collect();
    assert!(
        text.iter()
            .any(|l| l.contains("profile") && l.contains("Super-Admin")),
        "{text:?}"
    );
    assert!(
        text.iter()
            .any(|l| l.contains("default entity") && l.contains("ACME Ltda")),
        "{text:?}"
    );
    assert_eq!(sim.sessions_active(), 0, "check closes its session");
}

async fn each_problem_is_one_failed_line(mode: GlpiVersion) {
    let sim = sim(mode).await;
    let mut wrong_app = config_for(&sim, "glpi");
    wrong_app.app_token = Some(SecretString::from("nope".to_owned()));
    let lines = diagnose(&wrong_app, &Expectations::default()).await;
    let failed: Vec<_> = lines.iter().filter(|l| !l.ok).collect();
    assert_eq!(failed.len(), 1);
    assert!(
        failed[0]
            .to_string()
            .contains("App-Token refused: the API client's IP range does not include this host")
    );

    let mut bad_user = config_for(&sim, "glpi");
    bad_user.auth = glpi::Auth::UserToken(SecretString::from("bad".to_owned()));
    let lines = diagnose(&bad_user, &Expectations::default()).await;
    assert!(
        lines
            .iter()
            .any(|l| !l.ok && l.what == "user token accepted"),
        "{lines:?}"
    );

    let mut unreachable = config_for(&sim, "glpi");
    unreachable.base_url = "http://127.0.0.1:1".into();
    let lines = diagnose(&unreachable, &Expectations::default()).await;
    assert_eq!(lines.len(), 1);
    assert!(!lines[0].ok && lines[0].what == "reachable");

    // Reachable but not a GLPI API (wrong path).
    let mut wrong_path = config_for(&sim, "glpi");
    wrong_path.base_url = format!("{}/not-glpi/apirest.php", sim.origin());
    let lines = diagnose(&wrong_path, &Expectations::default()).await;
    assert!(lines[0].ok && lines[0].what == "reachable", "{lines:?}");
    assert!(!lines[1].ok && lines[1].what == "API enabled", "{lines:?}");

    let expect = Expectations {
        entity_id: Some(4242),
        category: Some("Missing category".into()),
        request_type: Some("Carrier pigeon".into()),
    };
    let lines = diagnose(&config_for(&sim, "glpi"), &expect).await;
    let failed: Vec<String> = lines
        .iter()
        .filter(|l| !l.ok)
        .map(|l| l.what.clone())
        .collect();
    assert_eq!(
        failed,
        vec!["default entity", "category", "request type"],
        "{lines:?}"
    );
    assert!(lines.iter().filter(|l| !l.ok).all(|l| l.fix.is_some()));
}
