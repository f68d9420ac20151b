//! Checks that need more than one field (or more than a type) to decide.

use std::time::Duration;

use secrecy::ExposeSecret;
use url::Url;

use crate::load::{Handlers, Problem, within};
use crate::model::{Config, SourceConfig, TargetConfig};

pub(crate) fn validate(
    config: &Config,
    unreadable_targets: &[String],
    handlers: Handlers<'_>,
    reported: &[String],
) -> Vec<Problem> {
    // Whether a field of `prefix` named in `fields` was already reported (a
    // wrong type, say): the checks of the whole entry that ran without it
    // would only add misleading problems.
    let already_reported = |prefix: &str, fields: &[&str]| {
        fields.iter().any(|field| {
            let path = format!("{prefix}.{field}");
            reported.iter().any(|done| within(done, &path))
        })
    };
    let mut problems = Vec::new();
    let mut problem = |path: String, message: String| problems.push(Problem { path, message });

    let server = &config.server;
    if server.body_limit == 0 {
        problem("server.body_limit".into(), "must be greater than 0".into());
    }
    if server.request_timeout == Duration::ZERO {
        problem(
            "server.request_timeout".into(),
            "must be greater than 0".into(),
        );
    }

    if server.header_timeout == Duration::ZERO {
        problem(
            "server.header_timeout".into(),
            "must be greater than 0".into(),
        );
    }
    if server.max_connections == 0 {
        problem(
            "server.max_connections".into(),
            "must be greater than 0".into(),
        );
    }

    if let Some(token) = &server.metrics_token
        && token.expose_secret().trim().is_empty()
    {
        problem(
            "server.metrics_token".into(),
            "must not be empty (an empty token would let any request in); remove it to leave /metrics open".into(),
        );
    }

    if let Some(url) = &server.public_url {
        check_http_url("server.public_url", url, &mut problem);
    }

    let url = config.store.url.as_str();
    if !(url.starts_with("sqlite:")
        || url.starts_with("postgres://")
        || url.starts_with("postgresql://"))
    {
        problem(
            "store.url".into(),
            "must start with sqlite: or postgres:// (e.g. sqlite://./ticketbridge.db?mode=rwc)"
                .into(),
        );
    }

    let engine = &config.engine;
    for (name, value) in [
        ("lease", engine.lease),
        ("poll", engine.poll),
        ("backoff_base", engine.backoff_base),
        ("shutdown_grace", engine.shutdown_grace),
    ] {
        if value == Duration::ZERO {
            problem(format!("engine.{name}"), "must be greater than 0".into());
        }
    }
    if engine.backoff_max < engine.backoff_base {
        problem(
            "engine.backoff_max".into(),
            "must not be shorter than engine.backoff_base".into(),
        );
    }
    if engine.max_attempts == 0 {
        problem("engine.max_attempts".into(), "must be at least 1".into());
    }
    if engine.concurrency == 0 {
        problem("engine.concurrency".into(), "must be at least 1".into());
    }

    for (name, target) in &config.targets {
        let prefix = format!("targets.{name}");
        if !valid_name(name) {
            problem(
                prefix.clone(),
                "name must use only a-z, 0-9, '_' and '-'".into(),
            );
        }
        check_http_url(&format!("{prefix}.url"), target.url(), &mut problem);
        match target {
            TargetConfig::Glpi(t) => {
                let login = t.login.is_some() && t.password.is_some();
                if t.user_token.is_none()
                    && !login
                    && !already_reported(&prefix, &["user_token", "login", "password"])
                {
                    problem(
                        prefix.clone(),
                        "needs user_token, or login and password".into(),
                    );
                }
                if t.login.is_some() != t.password.is_some()
                    && !already_reported(&prefix, &["login", "password"])
                {
                    problem(prefix.clone(), "login and password go together".into());
                }
                if t.timeout == Duration::ZERO {
                    problem(format!("{prefix}.timeout"), "must be greater than 0".into());
                }
                if t.max_response_bytes == Some(0) {
                    problem(
                        format!("{prefix}.max_response_bytes"),
                        "must be greater than 0".into(),
                    );
                }
            }
            TargetConfig::Itop(t) => {
                if t.token.is_none()
                    && !(t.user.is_some() && t.password.is_some())
                    && !already_reported(&prefix, &["token", "user", "password"])
                {
                    problem(prefix.clone(), "needs token, or user and password".into());
                }
                if t.impact.is_some_and(|i| !(1..=3).contains(&i)) {
                    problem(
                        format!("{prefix}.impact"),
                        "must be 1 (a department), 2 (a group) or 3 (a person)".into(),
                    );
                }
                if t.timeout == Duration::ZERO {
                    problem(format!("{prefix}.timeout"), "must be greater than 0".into());
                }
                if t.max_response_bytes == Some(0) {
                    problem(
                        format!("{prefix}.max_response_bytes"),
                        "must be greater than 0".into(),
                    );
                }
            }
        }
    }

    for (name, source) in &config.sources {
        let prefix = format!("sources.{name}");
        if !valid_name(name) {
            problem(
                prefix.clone(),
                "name must use only a-z, 0-9, '_' and '-' (it appears in URLs)".into(),
            );
        }
        let target = source.target();
        if unreadable_targets.iter().any(|name| name == target) {
            problem(
                format!("{prefix}.target"),
                format!(
                    "target \"{target}\" could not be read (see the problems under targets.{target})"
                ),
            );
        } else if !config.targets.contains_key(target) {
            let known: Vec<&str> = config.targets.keys().map(String::as_str).collect();
            let known = if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            };
            problem(
                format!("{prefix}.target"),
                format!("unknown target \"{target}\" (defined targets: {known})"),
            );
        }
        match source {
            SourceConfig::Events(s) => {
                if s.api_keys.is_empty() {
                    problem(
                        format!("{prefix}.api_keys"),
                        "at least one key is required".into(),
                    );
                }
                for (i, key) in s.api_keys.iter().enumerate() {
                    if key.expose_secret().trim().is_empty() {
                        problem(
                            format!("{prefix}.api_keys[{i}]"),
                            "must not be empty".into(),
                        );
                    }
                }
                let known = handlers.event_job_kinds;
                if s.job_kind.trim().is_empty() {
                    problem(format!("{prefix}.job_kind"), "must not be empty".into());
                } else if !known.is_empty() && !known.contains(&s.job_kind.as_str()) {
                    // Every event would become a dead letter ("no handler").
                    problem(
                        format!("{prefix}.job_kind"),
                        format!(
                            "no handler for job kind \"{}\": expected one of {} (or leave job_kind out)",
                            s.job_kind,
                            known.join(", ")
                        ),
                    );
                }
                if let Some(pointer) = &s.ordering_key
                    && !pointer.starts_with('/')
                {
                    {
                        problem(
                            format!("{prefix}.ordering_key"),
                            "must be a JSON pointer starting with '/' (e.g. /ticket/id)".into(),
                        );
                    }
                }
            }
            SourceConfig::Intake(s) => {
                s.validate(&prefix, &mut problem);
                answer_before_timeout(&format!("{prefix}.wait"), s.wait, server, &mut problem);
            }
            SourceConfig::Messaging(s) => {
                s.validate(&prefix, &mut problem);
                answer_before_timeout(
                    &format!("{prefix}.handoff_wait"),
                    s.handoff_wait,
                    server,
                    &mut problem,
                );
            }
            SourceConfig::Chatwoot(s) => s.validate(&prefix, &mut problem),
            SourceConfig::Itop(s) => s.validate(&prefix, &mut problem),
        }
    }
    keys_identify_their_source(config, &mut problem);
    new_people_have_an_organisation(config, &mut problem);
    problems
}

/// An iTop Person cannot exist without an organisation: a source that makes
/// people in an iTop target must be able to name one, or every new person
/// (and the message or conversation waiting for it) is refused.
fn new_people_have_an_organisation(config: &Config, problem: &mut impl FnMut(String, String)) {
    for (name, source) in &config.sources {
        let Some(TargetConfig::Itop(target)) = config.targets.get(source.target()) else {
            continue;
        };
        if target.default_org.is_some() {
            continue;
        }
        let (field, names_one) = match source {
            SourceConfig::Messaging(s) if s.create_requesters => (
                "create_requesters",
                s.entity.is_some() || s.tax_id.is_some(),
            ),
            SourceConfig::Chatwoot(s) => ("entity", s.entity.is_some()),
            _ => continue,
        };
        if !names_one {
            let how = match source {
                SourceConfig::Messaging(_) => {
                    "set entity or tax_id here, default_org on the target, or create_requesters = false"
                }
                _ => "set entity (an organization id) here, or default_org on the target",
            };
            problem(
                format!("sources.{name}.{field}"),
                format!(
                    "people this source creates in iTop target \"{}\" need an organization, and none is configured: {how}",
                    source.target()
                ),
            );
        }
    }
}

/// The intake API and the iTop webhooks find a request's source by its key
/// (their routes do not name it): a key given to two sources of one kind
/// would silently act as the first of them.
fn keys_identify_their_source(config: &Config, problem: &mut impl FnMut(String, String)) {
    let mut seen: Vec<(&str, String, &str)> = Vec::new();
    for (name, source) in &config.sources {
        let (kind, keys) = match source {
            SourceConfig::Intake(s) => ("intake", &s.api_keys),
            SourceConfig::Itop(s) => ("itop", &s.api_keys),
            _ => continue,
        };
        for (i, key) in keys.iter().enumerate() {
            let key = key.expose_secret();
            if key.trim().is_empty() {
                continue;
            }
            let path = format!("sources.{name}.api_keys[{i}]");
            match seen
                .iter()
                .find(|(k, _, other)| *k == kind && *other == key)
            {
                Some((_, first, _)) => problem(
                    path,
                    format!(
                        "the same key as {first}: a key tells which {kind} source a request is for, so give each source keys of its own"
                    ),
                ),
                None => seen.push((kind, path, key)),
            }
        }
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

fn check_http_url(path: &str, url: &Url, problem: &mut impl FnMut(String, String)) {
    if !matches!(url.scheme(), "http" | "https") {
        problem(
            path.to_owned(),
            format!("must be an http or https URL, got scheme {}", url.scheme()),
        );
    }
}

/// A route that waits `wait` for an outcome must answer (201, or 202 with the
/// request's id) before the server's `request_timeout` cuts it off with a 408
/// that names no request: a second of margin for the rest of the request.
fn answer_before_timeout(
    path: &str,
    wait: Duration,
    server: &crate::model::ServerConfig,
    problem: &mut impl FnMut(String, String),
) {
    if wait + Duration::from_secs(1) > server.request_timeout {
        problem(
            path.to_string(),
            format!(
                "must be at least 1s shorter than server.request_timeout ({}), so the answer comes before the server's timeout",
                humantime_serde::re::humantime::format_duration(server.request_timeout)
            ),
        );
    }
}
