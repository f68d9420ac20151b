//! Conformance replay: every exchange recorded from a real GLPI 10.0.12 (and GLPI 11.0.8 in
//! legacy-API mode) is replayed in order against a fresh simulator in the recorded initial
//! state, and the answers are compared (see `replay/mod.rs` for the rules).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod replay;

use sim_glpi::{GlpiSim, GlpiVersion, SimConfig};
use std::collections::HashMap;

const GLPI10: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/fixtures/glpi/real-transcripts.txt"
));
const GLPI11: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/fixtures/glpi11/real-transcripts-v1.txt"
));

struct Report {
    matched: usize,
    total: usize,
    checks_ok: usize,
    checks_total: usize,
}

async fn replay(
    label: &str,
    transcript: &str,
    mode: GlpiVersion,
    recorded_origin: &str,
    clock: &str,
) -> Report {
    let exchanges = replay::parse(transcript);
    let config = SimConfig {
        clock_start: Some(clock.to_string()),
        glpi_password: "glpi-secret".into(),
        ..SimConfig::with_mode(mode)
    };
    let sim = GlpiSim::start(config).await.unwrap();
    let mut sub = replay::Subst {
        recorded_origin: recorded_origin.to_string(),
        origin: sim.origin(),
        app_token: sim.app_token(),
        user_token: sim.user_token("glpi").unwrap(),
        tech_user_token: sim.user_token("tech").unwrap(),
        glpi_password: "glpi-secret".into(),
        requester_password: "Requester-Pass-1".into(),
        sessions: HashMap::new(),
    };
    let client = replay::client();
    let mut matched = 0;
    let mut mismatches = Vec::new();
    let mut notes = Vec::new();
    let (mut checks_ok, mut checks_total) = (0, 0);
    for (n, ex) in exchanges.iter().enumerate() {
        let outcome = replay::run(&client, &mut sub, ex).await;
        if outcome.problems.is_empty() {
            matched += 1;
        } else {
            mismatches.push(format!(
                "  #{} {} {} — {}\n    {}",
                n + 1,
                ex.method,
                ex.path,
                outcome.title,
                outcome.problems.join("\n    ")
            ));
        }
        for v in outcome.value_notes {
            notes.push(format!("  #{} {}: {v}", n + 1, outcome.title));
        }
        for (path, status, excerpt) in &ex.state_checks {
            checks_total += 1;
            let session = sub
                .sessions
                .get("<SESSION_TOKEN>")
                .cloned()
                .unwrap_or_default();
            let problems = replay::state_check(
                &client,
                &sub,
                &sim.app_token(),
                &session,
                path,
                *status,
                excerpt,
            )
            .await;
            if problems.is_empty() {
                checks_ok += 1;
            } else {
                mismatches.push(format!(
                    "  state check after #{} GET {path}\n    {}",
                    n + 1,
                    problems.join("\n    ")
                ));
            }
        }
    }
    println!(
        "{label} conformance: {matched}/{} exchanges match; state checks {checks_ok}/{checks_total}",
        exchanges.len()
    );
    if !mismatches.is_empty() {
        println!("{label} mismatches:\n{}", mismatches.join("\n"));
    }
    if !notes.is_empty() {
        println!(
            "{label} excerpt values that differ (shape matches):\n{}",
            notes.join("\n")
        );
    }
    sim.shutdown().await;
    Report {
        matched,
        total: exchanges.len(),
        checks_ok,
        checks_total,
    }
}

#[tokio::test]
async fn glpi10_transcript_replays() {
    let r = replay(
        "glpi10",
        GLPI10,
        GlpiVersion::V10,
        "http://127.0.0.1:8081",
        "2026-11-25 10:13:37",
    )
    .await;
    assert!(r.total >= 90, "parsed only {} exchanges", r.total);
    assert!(
        r.matched >= r.total,
        "glpi10 conformance {}/{} below threshold",
        r.matched,
        r.total
    );
    assert_eq!(r.checks_ok, r.checks_total, "state checks");
}

#[tokio::test]
async fn glpi11_transcript_replays() {
    let r = replay(
        "glpi11",
        GLPI11,
        GlpiVersion::V11,
        "http://127.0.0.1:8084",
        "2026-11-25 11:06:11",
    )
    .await;
    assert!(r.total >= 35, "parsed only {} exchanges", r.total);
    assert!(
        r.matched >= r.total,
        "glpi11 conformance {}/{} below threshold",
        r.matched,
        r.total
    );
    assert_eq!(r.checks_ok, r.checks_total, "state checks");
}
