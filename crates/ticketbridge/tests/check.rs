//! `ticketbridge check` through the real binary against the GLPI simulator.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sim::glpi::{GlpiSim, RunningSim, SimConfig};
use std::process::Output;
use tokio::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_ticketbridge");

struct World {
    sim: RunningSim,
    dir: tempfile::TempDir,
}

async fn world() -> World {
    let sim = GlpiSim::start(SimConfig::default()).await.unwrap();
    let entity = sim.add_entity("Acme", 0, None);
    sim.add_category("Printers");
    let toml = format!(
        r#"
[targets.helpdesk]
kind = "glpi"
url = "{url}"
app_token = "${{CHECK_APP}}"
user_token = "${{CHECK_USER}}"
timeout = "5s"

[sources.web]
kind = "intake"
target = "helpdesk"
api_keys = ["k"]
default_entity = {entity}
default_category = "Printers"
request_type = 1
"#,
        url = sim.base_url()
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ticketbridge.toml"), toml).unwrap();
    World { sim, dir }
}

async fn check(world: &World, app_token: &str) -> (Output, Vec<String>) {
    let output = Command::new(BIN)
        .arg("check")
        .arg("--config")
        .arg(world.dir.path().join("ticketbridge.toml"))
        .env("CHECK_APP", app_token)
        .env("CHECK_USER", world.sim.user_token("glpi").unwrap())
        .env_remove("TICKETBRIDGE_CONFIG")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let lines = stdout.lines().map(str::to_owned).collect();
    (output, lines)
}

fn failures(lines: &[String]) -> Vec<&String> {
    lines
        .iter()
        .filter(|l| l.trim_start().starts_with("FAIL"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_target_passes_every_check() {
    let world = world().await;
    let (output, lines) = check(&world, &world.sim.app_token()).await;
    assert!(output.status.success(), "{lines:#?}\n{output:?}");
    assert!(failures(&lines).is_empty(), "{lines:#?}");
    assert!(
        lines.iter().any(|l| l.starts_with("target helpdesk (glpi")),
        "{lines:#?}"
    );
    let ok = |what: &str| {
        lines
            .iter()
            .any(|l| l.trim_start().starts_with(&format!("ok   {what}")))
    };
    for what in ["reachable", "App-Token accepted"] {
        assert!(ok(what), "no ok line for {what}: {lines:#?}");
    }
    // The source's expectations were checked too.
    assert!(
        lines.iter().any(|l| l.contains("Printers")),
        "category not checked: {lines:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_app_token_is_one_failure_with_its_fix() {
    let world = world().await;
    let (output, lines) = check(&world, "0000000000000000000000000000000000000000").await;
    assert_eq!(output.status.code(), Some(1), "{lines:#?}");
    let failed = failures(&lines);
    assert_eq!(failed.len(), 1, "{lines:#?}");
    assert!(failed[0].contains("App-Token accepted"), "{failed:?}");
    assert!(
        failed[0]
            .contains("— App-Token refused: the API client's IP range does not include this host"),
        "{failed:?}"
    );
}

/// A password or a query secret in a target's URL is masked in what
/// `check` prints, as `config check` masks it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_in_the_target_url_is_not_printed() {
    let world = world().await;
    let url = world
        .sim
        .base_url()
        .replacen("http://", "http://bridge:pw-not-shown@", 1);
    let output = Command::new(BIN)
        .arg("check")
        .arg("--config")
        .arg(world.dir.path().join("ticketbridge.toml"))
        .env("CHECK_APP", world.sim.app_token())
        .env("CHECK_USER", world.sim.user_token("glpi").unwrap())
        .env(
            "TICKETBRIDGE_TARGETS__HELPDESK__URL",
            format!("{url}?app_token=token-not-shown"),
        )
        .env_remove("TICKETBRIDGE_CONFIG")
        .output()
        .await
        .unwrap();
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        printed.contains("target helpdesk (glpi, http://bridge:***@"),
        "{printed}"
    );
    assert!(!printed.contains("pw-not-shown"), "{printed}");
    assert!(!printed.contains("token-not-shown"), "{printed}");
}
