//! The real `ticketbridge` binary: kill -9 and SIGTERM lose nothing; `config
//! check` reports every problem.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use store::{JobFilter, JobStatus, Store};

const BIN: &str = env!("CARGO_BIN_EXE_ticketbridge");
const KEY: &str = "crash-test-key";

struct Service {
    child: Child,
    base: String,
}

impl Service {
    /// Starts `ticketbridge serve` and waits for its "listening" log line.
    fn start(config: &Path, record_delay_ms: u64) -> Service {
        let mut child = Command::new(BIN)
            .args(["--config", config.to_str().unwrap(), "serve"])
            .env("WEB_KEY", KEY)
            .env(
                "TICKETBRIDGE_TEST_RECORD_DELAY_MS",
                record_delay_ms.to_string(),
            )
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if std::env::var_os("TEST_LOG").is_some() {
                    eprintln!("{line}");
                }
                if let Ok(log) = serde_json::from_str::<Value>(&line)
                    && log["message"] == "HTTP server listening"
                {
                    let _ = tx.send(log["addr"].as_str().unwrap_or_default().to_owned());
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("ticketbridge did not report its address");
        Service {
            child,
            base: format!("http://{addr}"),
        }
    }

    fn kill_9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    fn terminate(mut self) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "ticketbridge did not stop after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn write_config(dir: &Path, store_url: &str) -> std::path::PathBuf {
    let path = dir.join("ticketbridge.toml");
    let text = format!(
        r#"
[server]
listen = "127.0.0.1:0"
log_format = "json"

[store]
url = "{store_url}"

[engine]
lease = "2s"
poll = "100ms"
backoff_base = "100ms"
concurrency = 4
shutdown_grace = "10s"

[targets.main]
kind = "glpi"
url = "http://127.0.0.1:9/apirest.php"
user_token = "unused"

[sources.web]
kind = "events"
target = "main"
api_keys = ["${{WEB_KEY}}"]
ordering_key = "/customer"
"#
    );
    std::fs::write(&path, text).unwrap();
    path
}

async fn post_events(base: &str, count: usize) -> Vec<i64> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut ids = Vec::new();
    for n in 0..count {
        let response = client
            .post(format!("{base}/api/v1/events/web"))
            .header("x-api-key", KEY)
            .header("content-type", "application/json")
            .header("idempotency-key", format!("event-{n}"))
            // Eight customers: eight ordering keys, several jobs each.
            .body(format!(r#"{{"customer":"c{}","n":{n}}}"#, n % 8))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
        let body: Value = response.json().await.unwrap();
        ids.push(body["inbox_id"].as_i64().unwrap());
    }
    ids
}

async fn audit_keys(store: &Store) -> Vec<String> {
    store
        .audit_entries(100_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|a| a.action == "event.record")
        .map(|a| a.object_key)
        .collect()
}

async fn wait_for_audit(store: &Store, at_least: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let keys = audit_keys(store).await;
        if keys.len() >= at_least {
            return keys;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {at_least} events recorded",
            keys.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn assert_each_event_recorded_once(keys: &[String], count: usize) {
    let distinct: HashSet<&String> = keys.iter().collect();
    assert_eq!(distinct.len(), count, "every accepted event recorded");
    assert_eq!(keys.len(), count, "no event recorded twice");
    for n in 0..count {
        assert!(
            distinct.contains(&format!("web:event-{n}")),
            "event-{n} missing"
        );
    }
}

async fn all_jobs_succeeded(store: &Store, count: usize) {
    let jobs = store
        .jobs(&JobFilter {
            limit: Some(100_000),
            ..JobFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(jobs.len(), count);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let jobs = store
            .jobs(&JobFilter {
                limit: Some(100_000),
                ..JobFilter::default()
            })
            .await
            .unwrap();
        if jobs.iter().all(|j| j.status == JobStatus::Succeeded) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "jobs not all succeeded: {jobs:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn crash_and_restart(store_url: &str) {
    const EVENTS: usize = 60;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), store_url);

    let first = Service::start(&config, 40);
    let ids = post_events(&first.base, EVENTS).await;
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), EVENTS);
    let observer = Store::connect(store_url).await.unwrap();
    // Kill once the engine is busy: some events recorded, others still queued.
    wait_for_audit(&observer, 1).await;
    first.kill_9();
    let recorded_before = audit_keys(&observer).await.len();
    println!("recorded before kill -9: {recorded_before} of {EVENTS}");

    let second = Service::start(&config, 0);
    let keys = wait_for_audit(&observer, EVENTS).await;
    all_jobs_succeeded(&observer, EVENTS).await;
    // Give a duplicate run the chance to show up before counting.
    let keys_after = audit_keys(&observer).await;
    assert_eq!(keys.len(), keys_after.len());
    assert_each_event_recorded_once(&keys_after, EVENTS);
    assert!(second.terminate().success());
}

#[tokio::test]
async fn kill_9_mid_run_loses_nothing_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("crash.db").display());
    crash_and_restart(&url).await;
}

#[tokio::test]
async fn kill_9_mid_run_loses_nothing_on_postgres() {
    let Some(url) = store::testing::fresh_postgres_url().await else {
        println!("{}", store::testing::POSTGRES_SKIPPED);
        return;
    };
    crash_and_restart(&url).await;
}

async fn sigterm_then_restart(store_url: &str) {
    const EVENTS: usize = 40;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), store_url);
    let service = Service::start(&config, 30);
    post_events(&service.base, EVENTS).await;
    let status = service.terminate();
    assert!(status.success(), "exit status {status:?}");

    let observer = Store::connect(store_url).await.unwrap();
    let jobs = observer
        .jobs(&JobFilter {
            limit: Some(1000),
            ..JobFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(jobs.len(), EVENTS, "every accepted event has its job");
    assert!(
        jobs.iter()
            .all(|j| matches!(j.status, JobStatus::Succeeded | JobStatus::Pending)),
        "in-flight jobs finished or were released: {jobs:?}"
    );
    let service = Service::start(&config, 0);
    let keys = wait_for_audit(&observer, EVENTS).await;
    all_jobs_succeeded(&observer, EVENTS).await;
    assert_each_event_recorded_once(&keys, EVENTS);
    assert!(service.terminate().success());
}

#[tokio::test]
async fn sigterm_exits_cleanly_and_loses_nothing_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("term.db").display());
    sigterm_then_restart(&url).await;
}

#[tokio::test]
async fn sigterm_exits_cleanly_and_loses_nothing_on_postgres() {
    let Some(url) = store::testing::fresh_postgres_url().await else {
        println!("{}", store::testing::POSTGRES_SKIPPED);
        return;
    };
    sigterm_then_restart(&url).await;
}

#[test]
fn config_check_lists_every_problem_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        r#"
[server]
listen = "nowhere"
[targets.main]
kind = "glpi"
url = "not a url"
user_token = "t"
[sources.web]
kind = "events"
target = "elsewhere"
api_keys = ["${TB_TEST_UNSET_KEY}"]
"#,
    )
    .unwrap();
    let output = Command::new(BIN)
        .args(["--config", path.to_str().unwrap(), "config", "check"])
        .env_remove("TB_TEST_UNSET_KEY")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines.contains(
            &"sources.web.api_keys[0]: environment variable TB_TEST_UNSET_KEY is not set"
        ),
        "{stdout}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("server.listen: ")),
        "{stdout}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("targets.main.url: ")),
        "{stdout}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("sources.web.target: unknown target")),
        "{stdout}"
    );
}

#[test]
fn config_check_accepts_a_good_file_and_redacts_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), "postgres://bridge:hunter2@127.0.0.1:1/tb");
    let output = Command::new(BIN)
        .args(["--config", path.to_str().unwrap(), "config", "check"])
        .env("WEB_KEY", "very-secret-key")
        .env("TICKETBRIDGE_SERVER__BODY_LIMIT", "4096")
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(stdout.starts_with("config ok\n"), "{stdout}");
    assert!(
        stdout.contains("body_limit=4096"),
        "env override applied: {stdout}"
    );
    assert!(
        !stdout.contains("hunter2") && !stdout.contains("very-secret-key"),
        "{stdout}"
    );
}

#[test]
fn an_explicit_missing_config_file_is_a_one_line_error() {
    let output = Command::new(BIN)
        .args(["--config", "/nonexistent/ticketbridge.toml", "jobs", "list"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.starts_with("error: cannot read config file /nonexistent/ticketbridge.toml"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    // Nothing to list: no hint to run `config check`.
    assert!(!stderr.contains("config check"), "{stderr}");
}

#[test]
fn store_commands_name_a_missing_or_unreachable_store_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    // No store in this directory: said so, and none is created.
    let output = Command::new(BIN)
        .args(["jobs", "list"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.starts_with("error: no store at ./ticketbridge.db"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "nothing created"
    );
    // A PostgreSQL that refuses: the reason, once, and the password hidden.
    let output = Command::new(BIN)
        .args(["links", "list"])
        .current_dir(dir.path())
        .env(
            "TICKETBRIDGE_STORE__URL",
            "postgres://u:hunter2@127.0.0.1:1/db",
        )
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert_eq!(stderr.matches("127.0.0.1:1").count(), 1, "{stderr}");
    assert!(stderr.contains("refused"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

/// The README's run command: the demo runs end to end and shows what it says.
#[test]
fn the_demo_runs_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(BIN)
        .arg("demo")
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for expected in [
        "Ticket #1 created",
        "HTTP 201 (Idempotent-Replayed: true)",
        "HTTP 400",
        "\"status\":\"created\"",
        "== Chatwoot ↔ GLPI",
        "conversation resolved in Chatwoot",
    ] {
        assert!(stdout.contains(expected), "{expected:?} missing:\n{stdout}");
    }
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "the demo leaves nothing behind"
    );
}

/// `serve` whose log reader went away (a closed pipe on stderr) still stops on
/// SIGTERM: a log line that cannot be written must not kill the task that
/// turns the signal into a shutdown.
#[test]
fn serve_stops_on_sigterm_after_its_log_reader_went_away() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(
        dir.path(),
        &store::testing::sqlite_url(&dir).replace("store.db", "closed-pipe.db"),
    );
    let mut child = Command::new(BIN)
        .args(["--config", path.to_str().unwrap(), "serve"])
        .env("WEB_KEY", KEY)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read up to the "listening" line, then close the pipe.
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(60);
    while let Some(Ok(line)) = lines.next() {
        if line.contains("HTTP server listening") {
            break;
        }
        assert!(Instant::now() < deadline, "ticketbridge never listened");
    }
    drop(lines);
    let service = Service {
        child,
        base: String::new(),
    };
    let status = service.terminate();
    assert!(status.success(), "{status:?}");
}

/// `ticketbridge` in `dir` with `args`, no TICKETBRIDGE_CONFIG unless given:
/// (exit code, stdout, stderr).
fn run_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .current_dir(dir)
        .env_remove("TICKETBRIDGE_CONFIG");
    for (name, value) in env {
        command.env(name, value);
    }
    let output = command.output().unwrap();
    (
        output.status.code(),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

/// The hint of an invalid configuration checks the same file: following it
/// lists the problem instead of checking the default file and saying "ok".
#[test]
fn the_hint_of_an_invalid_configuration_names_the_file_given() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("t1.toml"),
        r#"
[targets.glpi]
kind = "glpi"
url = "http://127.0.0.1:9/apirest.php"
login = "glpi"
password = "${TB_TEST_UNSET_PW}"
"#,
    )
    .unwrap();
    let (code, _, stderr) = run_in(dir.path(), &["-c", "t1.toml", "serve"], &[]);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("targets.glpi.password: environment variable TB_TEST_UNSET_PW is not set"),
        "{stderr}"
    );
    assert!(
        stderr.contains("(run `ticketbridge --config t1.toml config check` to list every problem)"),
        "{stderr}"
    );
    // The hint, followed, reports the problem.
    let (code, stdout, _) = run_in(dir.path(), &["--config", "t1.toml", "config", "check"], &[]);
    assert_eq!(code, Some(1), "{stdout}");
    assert!(stdout.contains("TB_TEST_UNSET_PW"), "{stdout}");
    // Named by TICKETBRIDGE_CONFIG: the hint names it too.
    let (code, _, stderr) = run_in(
        dir.path(),
        &["jobs", "list"],
        &[("TICKETBRIDGE_CONFIG", "t1.toml")],
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("`ticketbridge --config t1.toml config check`"),
        "{stderr}"
    );
}

/// A file named by --config or TICKETBRIDGE_CONFIG must exist, even when its
/// name is the default's; without either, `config check` says it used the
/// built-in defaults; an empty TICKETBRIDGE_CONFIG is named as the problem.
#[test]
fn a_config_file_named_explicitly_must_exist() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = run_in(
        dir.path(),
        &["--config", "./ticketbridge.toml", "config", "check"],
        &[],
    );
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(
        stdout.starts_with("cannot read config file ./ticketbridge.toml"),
        "{stdout}"
    );
    let (code, stdout, _) = run_in(
        dir.path(),
        &["config", "check"],
        &[("TICKETBRIDGE_CONFIG", "./ticketbridge.toml")],
    );
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.starts_with("cannot read config file ./ticketbridge.toml"),
        "{stdout}"
    );
    let (code, stdout, _) = run_in(dir.path(), &["config", "check"], &[]);
    assert_eq!(code, Some(0), "{stdout}");
    assert!(
        stdout.starts_with("config ok\nno ./ticketbridge.toml: built-in defaults\n"),
        "{stdout}"
    );
    let (code, stdout, stderr) = run_in(
        dir.path(),
        &["config", "check"],
        &[("TICKETBRIDGE_CONFIG", "")],
    );
    assert_eq!(code, Some(1), "{stdout}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error: TICKETBRIDGE_CONFIG is set but empty"),
        "{stderr}"
    );
    assert!(!stderr.contains("--config"), "{stderr}");
    // With the file there, nothing is said about defaults.
    std::fs::write(dir.path().join("ticketbridge.toml"), "").unwrap();
    let (code, stdout, _) = run_in(dir.path(), &["config", "check"], &[]);
    assert_eq!(code, Some(0), "{stdout}");
    assert!(!stdout.contains("built-in defaults"), "{stdout}");
}

/// An events source's job kind this binary has no handler for is refused by
/// `config check` (and so at start), naming the kinds it handles: otherwise
/// every event became a dead letter.
#[test]
fn an_unknown_event_job_kind_is_a_configuration_problem() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), "sqlite::memory:");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replace(
            "ordering_key = \"/customer\"",
            "ordering_key = \"/customer\"\njob_kind = \"event.recrod\"",
        ),
    )
    .unwrap();
    let (code, stdout, _) = run_in(
        dir.path(),
        &["--config", path.to_str().unwrap(), "config", "check"],
        &[("WEB_KEY", KEY)],
    );
    assert_eq!(code, Some(1), "{stdout}");
    assert_eq!(
        stdout,
        "sources.web.job_kind: no handler for job kind \"event.recrod\": expected one of event.record (or leave job_kind out)\n"
    );
}

/// A misspelt override is not ignored: `config check` names it and its
/// spelling, and a problem in an overridden value names its variable.
#[test]
fn config_check_reports_misspelt_and_faulty_overrides() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stdout, _) = run_in(
        dir.path(),
        &["config", "check"],
        &[("TICKETBRIDGE_SERVER_LISTEN", "0.0.0.0:9000")],
    );
    assert_eq!(code, Some(1), "{stdout}");
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(
        stdout.starts_with(
            "TICKETBRIDGE_SERVER_LISTEN: sets nothing: did you mean TICKETBRIDGE_SERVER__LISTEN? "
        ),
        "{stdout}"
    );
    let (code, stdout, _) = run_in(
        dir.path(),
        &["config", "check"],
        &[("TICKETBRIDGE_SERVER__LISTEN", "nowhere")],
    );
    assert_eq!(code, Some(1), "{stdout}");
    assert_eq!(
        stdout,
        "server.listen: expected an address and port such as \"127.0.0.1:8080\" (from TICKETBRIDGE_SERVER__LISTEN)\n"
    );
}

/// A port in use: one line naming the address, the reason once and the fix,
/// for `serve` (before any store is created) and the simulators.
#[test]
fn a_port_in_use_is_one_line_naming_the_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("t.toml"),
        format!("[server]\nlisten = \"127.0.0.1:{port}\"\n[store]\nurl = \"sqlite://./tb.db\"\n"),
    )
    .unwrap();
    let port_text = port.to_string();
    let runs: [(&str, Vec<&str>, &str); 4] = [
        (
            "serve",
            vec!["-c", "t.toml", "serve"],
            "change server.listen",
        ),
        (
            "sim glpi",
            vec!["sim", "glpi", "--port", &port_text],
            "choose another --port",
        ),
        (
            "sim itop",
            vec!["sim", "itop", "--port", &port_text],
            "choose another --port",
        ),
        (
            "sim chatwoot",
            vec!["sim", "chatwoot", "--port", &port_text],
            "choose another --port",
        ),
    ];
    for (what, args, fix) in runs {
        let (code, _, stderr) = run_in(dir.path(), &args, &[("RUST_LOG", "off")]);
        assert_eq!(code, Some(1), "{what}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{what}: {stderr}");
        assert!(
            stderr.starts_with(&format!("error: cannot listen on 127.0.0.1:{port}: ")),
            "{what}: {stderr}"
        );
        assert_eq!(stderr.matches("(os error").count(), 1, "{what}: {stderr}");
        assert!(stderr.contains(fix), "{what}: {stderr}");
    }
    assert!(
        !dir.path().join("tb.db").exists(),
        "serve created its store before finding the port taken"
    );
    drop(taken);
}

/// Standard output already closed by its reader (`… | true`): the command
/// still exits with its own status, so a failed check is not a success.
#[test]
fn a_closed_standard_output_keeps_the_exit_status() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.toml"),
        "[server]\nlisten = \"nowhere\"\n",
    )
    .unwrap();
    let status_with_closed_stdout = |args: &[&str]| {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        Command::new(BIN)
            .args(args)
            .current_dir(dir.path())
            .env_remove("TICKETBRIDGE_CONFIG")
            .stdout(writer)
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .code()
    };
    assert_eq!(
        status_with_closed_stdout(&["-c", "bad.toml", "config", "check"]),
        Some(1)
    );
    assert_eq!(status_with_closed_stdout(&["config", "check"]), Some(0));
    assert_eq!(status_with_closed_stdout(&["version"]), Some(0));
}

/// The test knob that slows `event.record` jobs is never silent: `serve`
/// warns in its log before it listens.
#[test]
fn serve_warns_when_the_record_delay_test_knob_is_set() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(
        dir.path(),
        &store::testing::sqlite_url(&dir).replace("store.db", "knob.db"),
    );
    let mut child = Command::new(BIN)
        .args(["--config", path.to_str().unwrap(), "serve"])
        .env("WEB_KEY", KEY)
        .env("TICKETBRIDGE_TEST_RECORD_DELAY_MS", "25")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut warned = false;
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let Ok(line) = line else { break };
        let Ok(log) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        if log["level"] == "WARN"
            && log["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("TICKETBRIDGE_TEST_RECORD_DELAY_MS is set"))
        {
            assert_eq!(log["delay_ms"], 25, "{line}");
            warned = true;
        }
        if log["message"] == "HTTP server listening" {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(warned, "no warning before listening");
}
