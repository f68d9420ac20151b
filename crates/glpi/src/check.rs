//! `ticketbridge check` for a GLPI target: each step is one line, ok or failed, and a failed
//! line says the likely fix.

use crate::client::GlpiClient;
use crate::config::GlpiConfig;
use crate::error::GlpiError;

/// What the configuration expects to exist on the target.
#[derive(Debug, Clone, Default)]
pub struct Expectations {
    /// Default entity id.
    pub entity_id: Option<i64>,
    /// ITIL category: a name ("Parent > Child") or a numeric id.
    pub category: Option<String>,
    /// Request type: a name or a numeric id.
    pub request_type: Option<String>,
}

/// One diagnostic line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckLine {
    pub ok: bool,
    /// What was checked ("App-Token accepted").
    pub what: String,
    /// What was found.
    pub detail: String,
    /// For failures: the likely fix, one line.
    pub fix: Option<String>,
}

impl CheckLine {
    fn ok(what: &str, detail: impl Into<String>) -> CheckLine {
        CheckLine {
            ok: true,
            what: what.into(),
            detail: detail.into(),
            fix: None,
        }
    }
    fn fail(what: &str, detail: impl Into<String>, fix: impl Into<String>) -> CheckLine {
        CheckLine {
            ok: false,
            what: what.into(),
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

impl std::fmt::Display for CheckLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mark = if self.ok { "ok  " } else { "FAIL" };
        write!(f, "{mark} {}: {}", self.what, self.detail)?;
        if let Some(fix) = &self.fix {
            write!(f, " — {fix}")?;
        }
        Ok(())
    }
}

/// Classify a failed login into the lines up to the step that failed.
fn login_failure(err: &GlpiError, lines: &mut Vec<CheckLine>) {
    use GlpiError as E;
    let reached = |lines: &mut Vec<CheckLine>| {
        lines.push(CheckLine::ok("reachable", "GLPI answered over HTTP"));
    };
    match err {
        E::Timeout | E::Connect(_) | E::Transport(_) => lines.push(CheckLine::fail(
            "reachable",
            err.to_string(),
            "check the target's url, DNS, firewall and the server's TLS certificate",
        )),
        E::Config(_) | E::InvalidInput(_) => lines.push(CheckLine::fail(
            "configuration",
            err.to_string(),
            "fix the GLPI target settings",
        )),
        E::InvalidResponse { status, .. } | E::NotApiAnswer { status, .. } => {
            reached(lines);
            lines.push(CheckLine::fail(
                "API enabled",
                format!("HTTP {status} is not a GLPI API answer"),
                "point base_url at the GLPI root or its apirest.php; check the web server passes PATH_INFO",
            ));
        }
        E::Server { status, .. } => {
            reached(lines);
            lines.push(CheckLine::fail(
                "API enabled",
                format!("HTTP {status} from the server"),
                "GLPI or its proxy is failing; see the web server and GLPI logs",
            ));
        }
        E::Generic { message, .. } => {
            reached(lines);
            lines.push(CheckLine::fail(
                "API enabled",
                message.clone(),
                "enable the REST API in Setup > General > API",
            ));
        }
        E::NotAllowedIp { .. } => {
            reached(lines);
            lines.push(CheckLine::ok("API enabled", "the API answered"));
            lines.push(CheckLine::fail(
                "App-Token accepted",
                "no active API client covers this host's IP",
                "add or widen an API client IP range in Setup > General > API for this host",
            ));
        }
        E::WrongAppToken { .. } => {
            reached(lines);
            lines.push(CheckLine::ok("API enabled", "the API answered"));
            lines.push(CheckLine::fail(
                "App-Token accepted",
                "App-Token refused",
                "App-Token refused: the API client's IP range does not include this host, or the token is wrong",
            ));
        }
        E::AppTokenMissing { .. } => {
            reached(lines);
            lines.push(CheckLine::ok("API enabled", "the API answered"));
            lines.push(CheckLine::fail(
                "App-Token accepted",
                "GLPI requires an App-Token and none is configured",
                "set app_token to the API client's application token",
            ));
        }
        E::UserTokenRejected { .. } => {
            reached(lines);
            lines.push(CheckLine::ok("API enabled", "the API answered"));
            lines.push(CheckLine::ok("App-Token accepted", "yes"));
            lines.push(CheckLine::fail(
                "user token accepted",
                "user_token refused",
                "regenerate the API token in the user's preferences (Remote access keys) and check enable_api_login_external_token",
            ));
        }
        E::LoginRejected { message } => {
            reached(lines);
            lines.push(CheckLine::ok("API enabled", "the API answered"));
            lines.push(CheckLine::ok("App-Token accepted", "yes"));
            lines.push(CheckLine::fail(
                "user token accepted",
                format!("login refused: {message}"),
                "check the login and password, and that the user is active",
            ));
        }
        E::CredentialsLoginDisabled { .. } => {
            reached(lines);
            lines.push(CheckLine::ok("API enabled", "the API answered"));
            lines.push(CheckLine::ok("App-Token accepted", "yes"));
            lines.push(CheckLine::fail(
                "user token accepted",
                "login/password is disabled on the API",
                "use a user_token, or enable 'login with credentials' in Setup > General > API",
            ));
        }
        E::LoginParametersMissing { .. } => {
            reached(lines);
            lines.push(CheckLine::ok("API enabled", "the API answered"));
            lines.push(CheckLine::ok("App-Token accepted", "yes"));
            lines.push(CheckLine::fail(
                "user token accepted",
                "GLPI received no credentials",
                "the web server strips the Authorization header: pass it to PHP (CGIPassAuth On / fastcgi_param HTTP_AUTHORIZATION)",
            ));
        }
        other => {
            reached(lines);
            lines.push(CheckLine::fail(
                "login",
                other.to_string(),
                "see the GLPI API error code in docs/glpi.md",
            ));
        }
    }
}

fn lookup_failure(what: &str, err: &GlpiError) -> CheckLine {
    match err {
        GlpiError::NotFound { .. } => CheckLine::fail(
            what,
            "does not exist",
            "create it in GLPI or fix the configured id/name",
        ),
        GlpiError::RightMissing { .. } => CheckLine::fail(
            what,
            "exists but is not visible to the token user",
            "give the token user's profile rights on it (or a recursive profile on a parent entity)",
        ),
        other => CheckLine::fail(what, other.to_string(), "see the GLPI logs"),
    }
}

/// Run every check against the target described by `config`. Never panics, never returns
/// early with an error: each problem is a failed line. The session opened is closed at the end.
pub async fn diagnose(config: &GlpiConfig, expect: &Expectations) -> Vec<CheckLine> {
    let mut lines = Vec::new();
    let client = match GlpiClient::new(config.clone()) {
        Ok(c) => c,
        Err(e) => {
            lines.push(CheckLine::fail(
                "configuration",
                e.to_string(),
                "fix the GLPI target settings",
            ));
            return lines;
        }
    };
    if let Err(e) = client.login().await {
        login_failure(&e, &mut lines);
        return lines;
    }
    lines.push(CheckLine::ok("reachable", client.api_root().to_owned()));
    lines.push(CheckLine::ok("API enabled", "initSession answered"));
    lines.push(CheckLine::ok(
        "App-Token accepted",
        if config.app_token.is_some() {
            "yes"
        } else {
            "none needed"
        },
    ));
    lines.push(CheckLine::ok("user token accepted", "session opened"));

    match client.active_profile().await {
        Ok((id, name)) => {
            let all = client
                .my_profiles()
                .await
                .map(|ps| {
                    ps.iter()
                        .map(|p| {
                            let ents: Vec<String> = p
                                .entities
                                .iter()
                                .map(|e| {
                                    format!(
                                        "{}{}",
                                        e.name,
                                        if e.is_recursive { " (+sub)" } else { "" }
                                    )
                                })
                                .collect();
                            format!("{} on [{}]", p.name, ents.join(", "))
                        })
                        .collect::<Vec<_>>()
                        .join("; ")
                })
                .unwrap_or_default();
            lines.push(CheckLine::ok(
                "profile",
                format!("active {name} (id {id}); all: {all}"),
            ));
        }
        Err(e) => lines.push(CheckLine::fail(
            "profile",
            e.to_string(),
            "check the token user has a profile",
        )),
    }
    match client.my_entities(true).await {
        Ok(ents) => {
            let names: Vec<String> = ents
                .iter()
                .map(|e| format!("{} ({})", e.name, e.id))
                .collect();
            lines.push(CheckLine::ok("entities", names.join(", ")));
        }
        Err(e) => lines.push(CheckLine::fail(
            "entities",
            e.to_string(),
            "give the token user an entity",
        )),
    }

    if let Some(entity_id) = expect.entity_id {
        let what = "default entity";
        match client.get_entity(entity_id).await {
            Ok(e) => lines.push(CheckLine::ok(
                what,
                format!("{} (id {})", e.completename, e.id),
            )),
            Err(e) => lines.push(lookup_failure(what, &e)),
        }
    }
    if let Some(category) = &expect.category {
        lines.push(dropdown_line(&client, "category", "ITILCategory", category).await);
    }
    if let Some(request_type) = &expect.request_type {
        lines.push(dropdown_line(&client, "request type", "RequestType", request_type).await);
    }
    if let Err(e) = client.close().await {
        tracing::debug!(error = %e, "killSession failed after check");
    }
    lines
}

async fn dropdown_line(client: &GlpiClient, what: &str, itemtype: &str, wanted: &str) -> CheckLine {
    if let Ok(id) = wanted.trim().parse::<i64>() {
        return match client
            .get_item::<crate::dropdown::DropdownItem>(itemtype, id)
            .await
        {
            Ok(item) => CheckLine::ok(what, format!("{} (id {})", item.name, item.id)),
            Err(e) => lookup_failure(what, &e),
        };
    }
    match client.find_dropdown(itemtype, wanted).await {
        Ok(Some(id)) => CheckLine::ok(what, format!("{wanted} (id {id})")),
        Ok(None) => CheckLine::fail(
            what,
            format!("{wanted:?} not found"),
            format!(
                "create the {itemtype} {wanted:?} in GLPI (visible in the token user's entities) or fix the name"
            ),
        ),
        Err(e) => lookup_failure(what, &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_app_token_line_names_the_ip_range() {
        let mut lines = Vec::new();
        login_failure(
            &GlpiError::WrongAppToken {
                message: String::new(),
            },
            &mut lines,
        );
        let last = lines.last().unwrap();
        assert!(!last.ok);
        assert!(
            last.to_string()
                .contains("IP range does not include this host")
        );
        assert!(lines[0].ok);
    }

    #[test]
    fn every_login_failure_ends_with_one_failed_line_and_a_fix() {
        let m = || String::from("x");
        let errors = [
            GlpiError::Timeout,
            GlpiError::InvalidResponse {
                status: 404,
                detail: m(),
            },
            GlpiError::Server {
                status: 502,
                retry_after: None,
            },
            GlpiError::Generic {
                status: 400,
                message: "API disabled".into(),
            },
            GlpiError::NotAllowedIp { message: m() },
            GlpiError::WrongAppToken { message: m() },
            GlpiError::AppTokenMissing { message: m() },
            GlpiError::UserTokenRejected { message: m() },
            GlpiError::LoginRejected { message: m() },
            GlpiError::CredentialsLoginDisabled { message: m() },
            GlpiError::LoginParametersMissing { message: m() },
            GlpiError::Other {
                status: 418,
                code: "ERROR_X".into(),
                message: m(),
            },
        ];
        for err in errors {
            let mut lines = Vec::new();
            login_failure(&err, &mut lines);
            let failed: Vec<_> = lines.iter().filter(|l| !l.ok).collect();
            assert_eq!(failed.len(), 1, "{err:?}: {lines:?}");
            assert!(std::ptr::eq(failed[0], lines.last().unwrap()), "{err:?}");
            assert!(failed[0].fix.as_deref().is_some_and(|f| !f.is_empty()));
        }
        let mut lines = Vec::new();
        login_failure(
            &GlpiError::Generic {
                status: 400,
                message: "API disabled".into(),
            },
            &mut lines,
        );
        assert!(
            lines
                .last()
                .unwrap()
                .to_string()
                .contains("enable the REST API")
        );
    }

    #[test]
    fn unreachable_is_first_line() {
        let mut lines = Vec::new();
        login_failure(&GlpiError::Connect("refused".into()), &mut lines);
        assert_eq!(lines.len(), 1);
        assert!(!lines[0].ok);
        assert_eq!(lines[0].what, "reachable");
    }
}
