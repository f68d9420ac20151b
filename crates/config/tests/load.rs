#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use config::{LogFormat, SourceConfig, TargetConfig, load, load_str};
use secrecy::ExposeSecret;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

const GOOD: &str = r#"
[server]
listen = "127.0.0.1:9000"
log_format = "pretty"
request_timeout = "5s"

[store]
url = "sqlite://./x.db?mode=rwc"

[targets.main]
kind = "glpi"
url = "https://glpi.example.test/apirest.php"
app_token = "${GLPI_APP}"
user_token = "${GLPI_USER}"

[sources.web]
kind = "events"
target = "main"
api_keys = ["${WEB_KEY}", "${WEB_KEY_OLD}"]
ordering_key = "/ticket/id"
"#;

fn good_env() -> Vec<(String, String)> {
    env(&[
        ("GLPI_APP", "app-secret"),
        ("GLPI_USER", "user-secret"),
        ("WEB_KEY", "k1"),
        ("WEB_KEY_OLD", "k0"),
    ])
}

#[test]
fn missing_file_means_embedded_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let config = load(&dir.path().join("absent.toml"), false, env(&[])).unwrap();
    assert_eq!(config.server.listen.to_string(), "127.0.0.1:8080");
    assert!(config.store.url.starts_with("sqlite://./ticketbridge.db"));
    assert!(config.targets.is_empty() && config.sources.is_empty());
}

#[test]
fn missing_file_is_an_error_when_required() {
    let dir = tempfile::tempdir().unwrap();
    let err = load(&dir.path().join("absent.toml"), true, env(&[])).unwrap_err();
    assert!(err.to_string().contains("cannot read config file"), "{err}");
}

#[test]
fn file_values_and_references_are_resolved() {
    let config = load_str(GOOD, good_env()).unwrap();
    assert_eq!(config.server.listen.port(), 9000);
    assert_eq!(config.server.log_format, LogFormat::Pretty);
    assert_eq!(config.server.request_timeout, Duration::from_secs(5));
    let TargetConfig::Glpi(glpi) = &config.targets["main"] else {
        panic!("glpi expected")
    };
    assert_eq!(
        glpi.user_token.as_ref().unwrap().expose_secret(),
        "user-secret"
    );
    let SourceConfig::Events(web) = &config.sources["web"] else {
        panic!("events source expected")
    };
    let keys: Vec<&str> = web.api_keys.iter().map(|k| k.expose_secret()).collect();
    assert_eq!(keys, ["k1", "k0"]);
    assert_eq!(web.job_kind, "event.record");
}

#[test]
fn env_overrides_any_key() {
    let mut e = good_env();
    e.extend(env(&[
        ("TICKETBRIDGE_SERVER__LISTEN", "127.0.0.1:9100"),
        ("TICKETBRIDGE_ENGINE__CONCURRENCY", "7"),
        (
            "TICKETBRIDGE_TARGETS__MAIN__URL",
            "http://other.test/apirest.php",
        ),
        ("TICKETBRIDGE_CONFIG", "ignored.toml"),
        ("TICKETBRIDGE_TEST_POSTGRES_URL", "postgres://ignored"),
    ]));
    let config = load_str(GOOD, e).unwrap();
    assert_eq!(config.server.listen.port(), 9100);
    assert_eq!(config.engine.concurrency, 7);
    assert_eq!(config.targets["main"].url().host_str(), Some("other.test"));
}

#[test]
fn unset_references_are_all_listed_with_their_field() {
    let err = load_str(GOOD, env(&[("GLPI_APP", "a")])).unwrap_err();
    let lines: Vec<String> = err.0.iter().map(ToString::to_string).collect();
    assert!(
        lines.contains(
            &"targets.main.user_token: environment variable GLPI_USER is not set".to_owned()
        ),
        "{lines:?}"
    );
    assert!(
        lines.contains(
            &"sources.web.api_keys[0]: environment variable WEB_KEY is not set".to_owned()
        ),
        "{lines:?}"
    );
    assert!(
        lines.contains(
            &"sources.web.api_keys[1]: environment variable WEB_KEY_OLD is not set".to_owned()
        ),
        "{lines:?}"
    );
}

#[test]
fn check_reports_every_problem_at_once() {
    let text = r#"
bogus = 1
[server]
listen = "not an address"
colour = "red"
[engine]
max_attempts = "many"
concurrency = 0
[targets.main]
kind = "glpi"
url = "not a url"
user_token = "t"
[targets.ops]
kind = "itop"
url = "ftp://itop.test/"
token = "t"
extra = true
[targets.other]
kind = "jira"
[sources.web]
kind = "events"
target = "nowhere"
api_keys = []
ordering_key = "ticket"
[sources.hooks]
kind = "events"
api_keys = ["k"]
"#;
    let err = load_str(text, env(&[])).unwrap_err();
    let paths: Vec<&str> = err.0.iter().map(|p| p.path.as_str()).collect();
    for expected in [
        "bogus",
        "server.listen",
        "server.colour",
        "engine.max_attempts",
        "engine.concurrency",
        "targets.main.url",
        "targets.ops.url",
        "targets.ops.extra",
        "targets.other.kind",
        "sources.web.target",
        "sources.web.api_keys",
        "sources.web.ordering_key",
        "sources.hooks.target",
    ] {
        assert!(paths.contains(&expected), "missing {expected} in {err}");
    }
}

#[test]
fn invalid_toml_names_the_line() {
    let err = load_str("[server\nlisten = 1", env(&[])).unwrap_err();
    assert!(err.to_string().contains("line 1"), "{err}");
}

#[test]
fn summary_never_shows_secrets() {
    let config = load_str(
        &GOOD.replace(
            "sqlite://./x.db?mode=rwc",
            "postgres://bridge:pgsecret@db.test/tb",
        ),
        good_env(),
    )
    .unwrap();
    let summary = config.summary();
    for secret in ["app-secret", "user-secret", "k1", "k0", "pgsecret"] {
        assert!(!summary.contains(secret), "{secret} leaked: {summary}");
    }
    assert!(
        summary.contains("source web: kind=events target=main api_keys=2"),
        "{summary}"
    );
    assert!(
        summary.contains("postgres://bridge:***@db.test/tb"),
        "{summary}"
    );
}

#[test]
fn succeeded_jobs_are_kept_a_week_unless_configured() {
    let config = load_str(GOOD, good_env()).unwrap();
    assert_eq!(
        config.engine.keep_succeeded,
        std::time::Duration::from_secs(7 * 24 * 3600)
    );
    let text = format!("{GOOD}\n[engine]\nkeep_succeeded = \"30d\"\n");
    let config = load_str(&text, good_env()).unwrap();
    assert_eq!(
        config.engine.keep_succeeded,
        std::time::Duration::from_secs(30 * 24 * 3600)
    );
    assert!(config.summary().contains("keep_succeeded=30days"));
    let mut e = good_env();
    e.extend(env(&[("TICKETBRIDGE_ENGINE__KEEP_SUCCEEDED", "0s")]));
    let config = load_str(GOOD, e).unwrap();
    assert!(config.engine.keep_succeeded.is_zero());
    assert!(config.summary().contains("keep_succeeded=forever"));
    assert!(config.summary().contains("keep_request_bodies=30days"));

    let text = format!("{GOOD}\n[engine]\nkeep_succeeded = \"soon\"\n");
    let err = load_str(&text, good_env()).unwrap_err();
    assert!(
        err.0.iter().any(|p| p.path == "engine.keep_succeeded"),
        "{err}"
    );
}

/// A source that waits for its ticket must answer before the server's
/// request timeout cuts the request off.
#[test]
fn waits_must_end_before_the_request_timeout() {
    let text = r#"
[server]
request_timeout = "5s"

[targets.glpi]
kind = "glpi"
url = "http://glpi.example/apirest.php"
user_token = "t"

[sources.web]
kind = "intake"
target = "glpi"
api_keys = ["0123456789abcdef0123"]
wait = "8s"

[sources.bot]
kind = "messaging"
target = "glpi"
api_keys = ["fedcba9876543210fedc"]
handoff_wait = "4500ms"
"#;
    let err = load_str(text, Vec::new()).unwrap_err();
    let paths: Vec<&str> = err.0.iter().map(|p| p.path.as_str()).collect();
    assert!(paths.contains(&"sources.web.wait"), "{err}");
    assert!(paths.contains(&"sources.bot.handoff_wait"), "{err}");
    assert!(err.to_string().contains("request_timeout (5s)"), "{err}");
    let fixed = text
        .replace("wait = \"8s\"", "wait = \"4s\"")
        .replace("4500ms", "3s");
    load_str(&fixed, Vec::new()).unwrap();
}

#[test]
fn the_metrics_token_is_a_secret_reference() {
    use secrecy::ExposeSecret;
    let text = GOOD.replacen(
        "[server]\n",
        "[server]\nmetrics_token = \"${METRICS}\"\n",
        1,
    );
    assert_ne!(text, GOOD);
    let mut e = good_env();
    e.extend(env(&[("METRICS", "scrape-0123456789")]));
    let config = load_str(&text, e).unwrap();
    assert_eq!(
        config
            .server
            .metrics_token
            .as_ref()
            .map(|t| t.expose_secret().to_owned()),
        Some("scrape-0123456789".to_owned())
    );
    assert!(config.summary().contains("metrics_token=set"));
    assert!(!config.summary().contains("scrape-0123456789"));
    let err = load_str(&text, good_env()).unwrap_err();
    assert!(err.to_string().contains("METRICS"), "{err}");
}

/// No secret is printed: not in the summary `config check` shows (passwords
/// and tokens inside URLs included), not in the messages about bad fields.
#[test]
fn secrets_never_reach_the_summary_or_the_problems() {
    let text = r#"
[store]
url = "postgres://bridge@db.example/tb?password=QuerySecret1&sslmode=require"

[targets.glpi]
kind = "glpi"
url = "https://glpi.example.test/apirest.php"
user_token = "t"

[sources.chat]
kind = "chatwoot"
target = "glpi"
url = "https://user:UrlSecret2@chat.example.com/"
api_access_token = "x"
account_id = 1
url_token = "UrlTokenSecret3abcdef"

[sources.bot]
kind = "messaging"
target = "glpi"
api_keys = ["k"]
callback_url = "https://bot.example.com/cb?token=CallbackSecret4"
callback_secret = "whsec_MDEyMzQ1Njc4OWFiY2RlZmdoaWo="
"#;
    let config = load_str(text, env(&[])).unwrap();
    let summary = config.summary();
    for secret in [
        "QuerySecret1",
        "UrlSecret2",
        "UrlTokenSecret3",
        "CallbackSecret4",
    ] {
        assert!(!summary.contains(secret), "{secret} in {summary}");
    }
    assert!(summary.contains("sslmode=require"), "{summary}");

    // A password or key of the wrong type: the problem names the field and
    // the type, never the value.
    let bad = r#"
[targets.glpi]
kind = "glpi"
url = "https://glpi.example.test/apirest.php"
login = "bridge"
password = 735291846
"#;
    let err = load_str(bad, env(&[])).unwrap_err().to_string();
    assert!(err.contains("targets.glpi.password"), "{err}");
    assert!(!err.contains("735291846"), "{err}");

    // Digits set through the environment are a key, not a number.
    let mut e = good_env();
    e.extend(env(&[(
        "TICKETBRIDGE_SOURCES__WEB__API_KEYS",
        "[987654321, k2]",
    )]));
    let config = load_str(GOOD, e).unwrap();
    let config::SourceConfig::Events(web) = &config.sources["web"] else {
        panic!("not an events source");
    };
    let keys: Vec<&str> = web.api_keys.iter().map(|k| k.expose_secret()).collect();
    assert_eq!(keys, ["987654321", "k2"]);
}

#[test]
fn wrong_types_are_named_in_plain_words() {
    let text = r#"
[server]
listen = 8080
[engine]
concurrency = -1
max_attempts = "many"
[targets.main]
kind = "glpi"
url = "https://glpi.example.test/apirest.php"
app_token = "a"
user_token = 123456
timeout = 5
[sources.web]
kind = "events"
target = "main"
api_keys = ["k"]
"#;
    let err = load_str(text, env(&[])).unwrap_err();
    let message = |path: &str| {
        err.0
            .iter()
            .find(|p| p.path == path)
            .map(|p| p.message.clone())
            .unwrap_or_else(|| panic!("no problem at {path} in {err}"))
    };
    assert_eq!(
        message("server.listen"),
        r#"expected an address and port such as "127.0.0.1:8080", found 8080"#
    );
    assert_eq!(
        message("engine.concurrency"),
        "expected a whole number (0 or more), found -1"
    );
    assert_eq!(
        message("engine.max_attempts"),
        r#"expected a whole number (0 or more), found "many""#
    );
    assert_eq!(
        message("targets.main.timeout"),
        r#"expected a duration such as "30s", "5m" or "1h 30m", found 5 (give it a unit, in quotes: "5s")"#
    );
    // A secret's value is never quoted, even in plain words.
    let token = message("targets.main.user_token");
    assert!(!token.contains("123456"), "{token}");
    assert!(
        token.starts_with("expected a string, found a number"),
        "{token}"
    );
    // No Rust type names anywhere.
    for problem in &err.0 {
        for jargon in ["usize", "u32", "i64", "signed int", "sequence"] {
            assert!(!problem.message.contains(jargon), "{problem}");
        }
    }
}

#[test]
fn a_target_with_a_bad_url_is_reported_once_and_still_named_by_its_sources() {
    let text = r#"
[targets.main]
kind = "glpi"
url = "glpi.example.test/apirest.php?user=admin&password=hunter2"
app_token = "a"
user_token = "u"
[sources.web]
kind = "events"
target = "main"
api_keys = ["k"]
"#;
    let err = load_str(text, env(&[])).unwrap_err();
    assert_eq!(err.0.len(), 1, "{err}");
    assert_eq!(err.0[0].path, "targets.main.url");
    assert_eq!(
        err.0[0].message,
        r#"expected an absolute URL such as "https://host.example.com/path" (relative URL without a base)"#
    );
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

#[test]
fn a_source_naming_a_target_that_could_not_be_read_says_so() {
    let text = r#"
[targets.main]
url = "https://glpi.example.test/apirest.php"
[sources.web]
kind = "events"
target = "main"
api_keys = ["k"]
"#;
    let err = load_str(text, env(&[])).unwrap_err();
    let target = err
        .0
        .iter()
        .find(|p| p.path == "sources.web.target")
        .map(|p| p.message.as_str());
    assert_eq!(
        target,
        Some(r#"target "main" could not be read (see the problems under targets.main)"#),
        "{err}"
    );
    assert!(err.0.iter().any(|p| p.path == "targets.main.kind"), "{err}");
}

#[test]
fn a_key_given_to_two_intake_sources_or_an_empty_metrics_token_is_refused() {
    let text = r#"
[server]
metrics_token = ""
[targets.main]
kind = "glpi"
url = "https://glpi.example.test/apirest.php"
app_token = "a"
user_token = "u"
[sources.form]
kind = "intake"
target = "main"
api_keys = ["form-key-0123456789", "shared-key-0123456789"]
[sources.voice]
kind = "intake"
target = "main"
api_keys = ["shared-key-0123456789"]
[sources.hooks]
kind = "events"
target = "main"
api_keys = ["shared-key-0123456789"]
"#;
    let err = load_str(text, env(&[])).unwrap_err();
    let paths: Vec<&str> = err.0.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(
        paths,
        ["server.metrics_token", "sources.voice.api_keys[0]"],
        "{err}"
    );
    assert!(
        err.0[1].message.contains("sources.form.api_keys[1]"),
        "{err}"
    );
    assert!(!err.to_string().contains("shared-key"), "{err}");
}

#[test]
fn invalid_toml_is_located_without_quoting_the_line() {
    let text = "[targets.main]\nkind = \"glpi\"\napp_token = \"s3cr3t-value\n";
    let err = load_str(text, env(&[])).unwrap_err();
    let message = err.to_string();
    assert!(message.contains("line 3, column 26"), "{message}");
    assert!(!message.contains("s3cr3t"), "{message}");
    assert_eq!(message.lines().count(), 1, "{message}");
}

#[test]
fn targets_take_an_answer_limit_and_know_their_largest_attachment() {
    let text = r#"
[targets.glpi]
kind = "glpi"
url = "https://glpi.example.test/apirest.php"
user_token = "t"
max_response_bytes = 50000000

[targets.itop]
kind = "itop"
url = "https://itop.example.test/"
token = "t"

[targets.quiet]
kind = "itop"
url = "https://itop2.example.test/"
token = "t"

[sources.bot]
kind = "messaging"
target = "glpi"
api_keys = ["k"]
max_attachment_bytes = 3000000

[sources.chat]
kind = "chatwoot"
target = "glpi"
url = "https://chat.example.com/"
api_access_token = "x"
account_id = 1
url_token = "UrlTokenSecret3abcdef"
attachment_max_bytes = 4000000

[sources.web]
kind = "events"
target = "quiet"
api_keys = ["k2"]
"#;
    let config = load_str(text, env(&[])).unwrap();
    let TargetConfig::Glpi(glpi) = &config.targets["glpi"] else {
        panic!("not a GLPI target");
    };
    assert_eq!(glpi.max_response_bytes, Some(50_000_000));
    let TargetConfig::Itop(itop) = &config.targets["itop"] else {
        panic!("not an iTop target");
    };
    assert_eq!(itop.max_response_bytes, None);
    // The larger of the two sources writing to the target.
    assert_eq!(config.largest_attachment_bytes("glpi"), Some(4_000_000));
    // No source with attachments writes there.
    assert_eq!(config.largest_attachment_bytes("quiet"), None);
    assert_eq!(config.largest_attachment_bytes("itop"), None);

    let zero = text.replace("max_response_bytes = 50000000", "max_response_bytes = 0");
    let err = load_str(&zero, env(&[])).unwrap_err();
    assert!(
        err.0
            .iter()
            .any(|p| p.path == "targets.glpi.max_response_bytes"
                && p.message == "must be greater than 0"),
        "{err}"
    );
}

#[test]
fn an_event_job_kind_without_a_handler_is_refused_when_handlers_are_given() {
    let text = GOOD.replace(
        "ordering_key = \"/ticket/id\"",
        "ordering_key = \"/ticket/id\"\njob_kind = \"event.recrod\"",
    );
    let handlers = config::Handlers {
        event_job_kinds: &["event.record"],
    };
    let err = config::load_str_with(&text, good_env(), handlers).unwrap_err();
    assert_eq!(
        err.lines(),
        "sources.web.job_kind: no handler for job kind \"event.recrod\": expected one of event.record (or leave job_kind out)"
    );
    assert!(config::load_str_with(GOOD, good_env(), handlers).is_ok());
    // Without handlers (a library user registering its own), any kind goes.
    assert!(load_str(&text, good_env()).is_ok());
}

#[test]
fn a_misspelt_override_is_reported_with_its_spelling() {
    let mut e = good_env();
    e.extend(env(&[
        ("TICKETBRIDGE_SERVER_LISTEN", "0.0.0.0:9000"),
        ("TICKETBRIDGE_TARGET__MAIN__URL", "http://other.test/"),
        ("TICKETBRIDGE_LISTEN", "0.0.0.0:9000"),
        // Not settings: never reported.
        ("TICKETBRIDGE_CONFIG", "x.toml"),
        ("TICKETBRIDGE_TEST_ANYTHING", "1"),
    ]));
    let err = load_str(GOOD, e).unwrap_err();
    let rule = "overrides are spelt TICKETBRIDGE_<SECTION>__<KEY> with two underscores between parts, sections server, store, engine, targets, sources; TICKETBRIDGE_CONFIG names the file";
    assert_eq!(
        err.0.iter().map(ToString::to_string).collect::<Vec<_>>(),
        [
            format!("TICKETBRIDGE_LISTEN: sets nothing ({rule})"),
            format!(
                "TICKETBRIDGE_SERVER_LISTEN: sets nothing: did you mean TICKETBRIDGE_SERVER__LISTEN? ({rule})"
            ),
            format!(
                "TICKETBRIDGE_TARGET__MAIN__URL: sets nothing: did you mean TICKETBRIDGE_TARGETS__MAIN__URL? ({rule})"
            ),
        ]
    );
}

#[test]
fn a_problem_with_an_overridden_value_names_its_variable() {
    let mut e = good_env();
    e.extend(env(&[
        ("TICKETBRIDGE_SERVER__BOGUS", "1"),
        ("TICKETBRIDGE_ENGINE__CONCURRENCY", "many"),
    ]));
    let err = load_str(GOOD, e).unwrap_err();
    let lines: Vec<String> = err.0.iter().map(ToString::to_string).collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].starts_with("server.bogus: unknown field, expected one of ")
            && lines[0].ends_with(" (from TICKETBRIDGE_SERVER__BOGUS)"),
        "{lines:?}"
    );
    assert_eq!(
        lines[1],
        "engine.concurrency: expected a whole number (0 or more), found \"many\" (from TICKETBRIDGE_ENGINE__CONCURRENCY)"
    );
}

#[test]
fn a_string_field_takes_a_numeric_override_as_text() {
    let text = GOOD.replace("user_token = \"${GLPI_USER}\"\n", "");
    let mut e = good_env();
    e.extend(env(&[
        ("TICKETBRIDGE_TARGETS__MAIN__LOGIN", "20231"),
        ("TICKETBRIDGE_TARGETS__MAIN__PASSWORD", "123456"),
        ("TICKETBRIDGE_ENGINE__CONCURRENCY", "3"),
    ]));
    let config = load_str(&text, e).unwrap();
    let TargetConfig::Glpi(glpi) = &config.targets["main"] else {
        panic!("glpi expected")
    };
    assert_eq!(glpi.login.as_deref(), Some("20231"));
    assert_eq!(glpi.password.as_ref().unwrap().expose_secret(), "123456");
    assert_eq!(config.engine.concurrency, 3, "numbers stay numbers");
}

#[test]
fn a_credential_of_the_wrong_type_is_reported_once() {
    let text = r#"
[targets.glpi]
kind = "glpi"
url = "https://glpi.example.test/apirest.php"
login = 20231
password = "pw"

[targets.itop]
kind = "itop"
url = "https://itop.example.test/"
user = 7
password = "pw"
"#;
    let err = load_str(text, env(&[])).unwrap_err();
    assert_eq!(
        err.lines(),
        "targets.glpi.login: expected a string, found 20231 (quote it to make it a string)\n\
         targets.itop.user: expected a string, found 7 (quote it to make it a string)"
    );
    // Credentials that are really missing are still reported.
    let text =
        "[targets.glpi]\nkind = \"glpi\"\nurl = \"https://g.test/\"\nlogin = \"me\"\ntimeout = 5\n";
    let lines = load_str(text, env(&[])).unwrap_err().lines();
    assert!(
        lines.contains("targets.glpi: needs user_token, or login and password"),
        "{lines}"
    );
    assert!(
        lines.contains("targets.glpi: login and password go together"),
        "{lines}"
    );
}

#[test]
fn values_of_the_wrong_shape_are_described_in_plain_words() {
    let text = r#"
[server]
log_format = "text"

[targets.glpi]
kind = "glpi"
url = "http://127.0.0.1:9/apirest.php"
user_token = "t"

[sources.wa]
kind = "messaging"
target = "glpi"
api_keys = ["k"]
merge_window = true
max_wait = "soon"

[sources.cw]
kind = "chatwoot"
target = "glpi"
category = true
"#;
    let err = load_str(text, env(&[])).unwrap_err();
    let lines: Vec<String> = err.0.iter().map(ToString::to_string).collect();
    for expected in [
        "server.log_format: expected one of: json, pretty, found \"text\"",
        "sources.wa.merge_window: expected a number of milliseconds or a duration such as \"15s\", found true",
        "sources.wa.max_wait: expected a number of milliseconds or a duration such as \"15s\", found \"soon\"",
        "sources.cw.category: expected a category id or name, found true",
    ] {
        assert!(
            lines.iter().any(|l| l == expected),
            "{expected}\n{lines:#?}"
        );
    }
    assert!(!lines.iter().any(|l| l.contains("variant")), "{lines:#?}");
}

#[test]
fn a_ticketbridge_variable_named_by_a_reference_is_not_a_misspelt_override() {
    let text = GOOD.replace(
        "request_timeout = \"5s\"",
        "request_timeout = \"5s\"\nmetrics_token = \"${TICKETBRIDGE_METRICS_TOKEN}\"",
    );
    let mut e = good_env();
    e.extend(env(&[("TICKETBRIDGE_METRICS_TOKEN", "m-secret")]));
    let config = load_str(&text, e).unwrap();
    assert_eq!(
        config.server.metrics_token.unwrap().expose_secret(),
        "m-secret"
    );
}

#[test]
fn a_target_defined_only_by_variables_says_so() {
    let e = env(&[("TICKETBRIDGE_TARGETS__MAIN__URL", "http://glpi.test/")]);
    let err = load_str("", e).unwrap_err();
    assert_eq!(
        err.lines(),
        "targets.main.kind: missing (required), one of glpi, itop (targets.main is defined only by TICKETBRIDGE_TARGETS__MAIN__URL)"
    );
}
