//! `ticketbridge check`: can every configured target be used as configured?
//!
//! GLPI targets go through `glpi::check::diagnose` (reachable, API enabled,
//! App-Token, user token, profile and entities, and the default entity,
//! category and request type the routed sources expect); iTop targets through
//! an authenticated `list_operations` call (plus `core/check_credentials` for
//! user/password logins). One line per check: `ok  what: detail` or
//! `FAIL what: detail — fix`. The exit status is 1 when any check failed.

use std::collections::BTreeSet;
use std::process::ExitCode;

use config::{Config, GlpiTarget, ItopTarget, SourceConfig, TargetConfig};
use flows::targets::{glpi_client_config, itop_client_config};
use glpi::check::{CheckLine, Expectations};
use secrecy::ExposeSecret;
use ticketbridge::say;

/// Runs every check and prints its lines; `FAILURE` when one failed.
pub async fn run(config: &Config) -> ExitCode {
    let mut failed = false;
    if config.targets.is_empty() {
        say!("no targets configured");
    }
    for (name, target) in &config.targets {
        say!("target {name} ({}, {})", target.kind(), target_url(target));
        let lines = match target {
            TargetConfig::Glpi(t) => check_glpi(config, name, t).await,
            TargetConfig::Itop(t) => check_itop(t).await,
        };
        for line in lines {
            failed |= !line.ok;
            say!("  {line}");
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// The target's address as it may be shown: a password or a query secret
/// (`?app_token=`, `?auth_token=`) in it is masked, as `config check` does.
fn target_url(target: &TargetConfig) -> String {
    match target {
        TargetConfig::Glpi(t) => config::redacted(&t.url),
        TargetConfig::Itop(t) => config::redacted(&t.url),
    }
}

async fn check_glpi(config: &Config, name: &str, target: &GlpiTarget) -> Vec<CheckLine> {
    let client_config = match glpi_client_config(target) {
        Ok(c) => c,
        Err(reason) => {
            return vec![failure(
                "configuration",
                reason,
                &format!("fix [targets.{name}]"),
            )];
        }
    };
    let mut lines: Vec<CheckLine> = Vec::new();
    for expect in glpi_expectations(config, name, target) {
        for line in glpi::check::diagnose(&client_config, &expect).await {
            // Several sources with different expectations repeat the shared checks.
            if !lines.contains(&line) {
                lines.push(line);
            }
        }
    }
    lines
}

/// What the sources routed to `name` rely on, target-wide settings first. One
/// set per distinct combination (usually one).
fn glpi_expectations(config: &Config, name: &str, target: &GlpiTarget) -> Vec<Expectations> {
    let mut sets: BTreeSet<(Option<i64>, Option<String>, Option<String>)> = BTreeSet::new();
    let target_set = (
        target.default_entity,
        None,
        target.request_type.map(|id| id.to_string()),
    );
    for source in config.sources.values().filter(|s| s.target() == name) {
        let (entity, category, request_type) = match source {
            SourceConfig::Intake(s) => (
                s.default_entity,
                s.default_category.clone(),
                s.request_type.map(|id| id.to_string()),
            ),
            SourceConfig::Messaging(s) => (s.entity, None, None),
            SourceConfig::Chatwoot(s) => (
                None,
                s.category.as_ref().map(|c| match c {
                    config::sources::CategorySetting::Id(id) => id.to_string(),
                    config::sources::CategorySetting::Name(name) => name.clone(),
                }),
                None,
            ),
            SourceConfig::Events(_) | SourceConfig::Itop(_) => (None, None, None),
        };
        sets.insert((
            entity.or(target_set.0),
            category,
            request_type.or_else(|| target_set.2.clone()),
        ));
    }
    if sets.is_empty() {
        sets.insert(target_set);
    }
    sets.into_iter()
        .map(|(entity_id, category, request_type)| Expectations {
            entity_id,
            category,
            request_type,
        })
        .collect()
}

async fn check_itop(target: &ItopTarget) -> Vec<CheckLine> {
    let client = match itop_client_config(target)
        .and_then(|c| itop::ItopClient::new(c).map_err(|e| e.to_string()))
    {
        Ok(client) => client,
        Err(reason) => {
            return vec![failure(
                "configuration",
                reason,
                "fix the iTop target settings",
            )];
        }
    };
    let mut lines = Vec::new();
    match client.list_operations().await {
        Ok(operations) => lines.push(success(
            "REST API answered",
            format!("{} operations available", operations.len()),
        )),
        Err(error) => {
            lines.push(itop_failure(&error));
            return lines;
        }
    }
    if let (None, Some(user), Some(password)) = (&target.token, &target.user, &target.password) {
        match client
            .check_credentials(user, password.expose_secret())
            .await
        {
            Ok(true) => lines.push(success("credentials accepted", format!("user {user}"))),
            Ok(false) => lines.push(failure(
                "credentials accepted",
                format!("iTop refused user {user}"),
                "check the user and password in the iTop target",
            )),
            Err(error) => lines.push(itop_failure(&error)),
        }
    }
    lines
}

fn itop_failure(error: &itop::ItopError) -> CheckLine {
    use itop::ItopError as E;
    let (what, fix) = match error {
        E::Timeout | E::Transport(_) => (
            "reachable",
            "check url (the iTop root or webservices/rest.php), DNS, firewall and TLS",
        ),
        E::Unauthorized { .. } | E::MissingAuthUser { .. } | E::MissingAuthPwd { .. } => (
            "credentials accepted",
            "check the user/password or token, and give the account the \
             \"REST Services User\" profile",
        ),
        E::UnsupportedVersion { .. } => (
            "API version",
            "this iTop is older than REST API 1.3: upgrade iTop",
        ),
        _ => (
            "REST API answered",
            "check that url points at the iTop root or webservices/rest.php",
        ),
    };
    failure(what, error.to_string(), fix)
}

fn success(what: &str, detail: String) -> CheckLine {
    CheckLine {
        ok: true,
        what: what.to_owned(),
        detail,
        fix: None,
    }
}

fn failure(what: &str, detail: String, fix: &str) -> CheckLine {
    CheckLine {
        ok: false,
        what: what.to_owned(),
        detail,
        fix: Some(fix.to_owned()),
    }
}
