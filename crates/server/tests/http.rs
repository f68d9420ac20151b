//! The HTTP server over real loopback HTTP with a real store.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use config::{Config, EventsSource, SourceConfig};
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::{Value, json};
use server::{AppState, Application, Dependencies, Wake};
use store::{JobFilter, Store};
use tokio_util::sync::CancellationToken;

const BODY_LIMIT: usize = 2048;

struct TestApp {
    base: String,
    store: Store,
    client: reqwest::Client,
    _shutdown: tokio_util::sync::DropGuard,
}

fn test_config() -> Config {
    let mut config = Config::default();
    config.server.listen = ([127, 0, 0, 1], 0).into();
    config.server.body_limit = BODY_LIMIT;
    config.server.bench_noop = true;
    config.sources.insert(
        "web".to_owned(),
        SourceConfig::Events(EventsSource {
            target: "main".to_owned(),
            api_keys: vec![SecretString::from("key-new"), SecretString::from("key-old")],
            job_kind: "event.record".to_owned(),
            ordering_key: Some("/ticket/id".to_owned()),
        }),
    );
    config
}

fn extra_routes(_state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/test/panic", get(panicking))
        .route("/test/extra", get(|| async { "extra ok" }))
}

async fn panicking() -> &'static str {
    panic!("secret internals")
}

async fn spawn_app(store: Store, config: Config) -> TestApp {
    let deps = Dependencies::new(store.clone(), Wake::none()).with_source(extra_routes);
    let app = Application::build(config, deps).await.unwrap();
    let base = format!("http://{}", app.local_addr());
    let token = CancellationToken::new();
    tokio::spawn(app.run_until(token.clone().cancelled_owned()));
    TestApp {
        base,
        store,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap(),
        _shutdown: token.drop_guard(),
    }
}

impl TestApp {
    async fn post_event(
        &self,
        key: Option<&str>,
        body: &str,
        extra: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        let mut request = self
            .client
            .post(format!("{}/api/v1/events/web", self.base))
            .header("content-type", "application/json")
            .body(body.to_owned());
        if let Some(key) = key {
            request = request.header("x-api-key", key);
        }
        for (name, value) in extra {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap())
    }

    async fn job_count(&self) -> usize {
        self.store
            .jobs(&JobFilter {
                limit: Some(10_000),
                ..JobFilter::default()
            })
            .await
            .unwrap()
            .len()
    }
}

fn assert_error(body: &Value, code: &str) {
    let error = body
        .get("error")
        .unwrap_or_else(|| panic!("no error object in {body}"));
    assert_eq!(error["code"], code, "{body}");
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert_eq!(
        body.as_object().unwrap().len(),
        1,
        "only `error` at top level: {body}"
    );
}

async fn check_accept_and_dedupe(store: Store) {
    let app = spawn_app(store, test_config()).await;
    let body = r#"{"ticket":{"id":42,"title":"printer jammed"}}"#;
    let (status, first) = app.post_event(Some("key-new"), body, &[]).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{first}");
    assert_eq!(first["accepted"], true);
    assert_eq!(first["duplicate"], false);
    let inbox_id = first["inbox_id"].as_i64().unwrap();

    // Same body again (dedupe by body hash): same inbox id, nothing enqueued.
    let (status, again) = app.post_event(Some("key-new"), body, &[]).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(again["inbox_id"].as_i64(), Some(inbox_id));
    assert_eq!(again["duplicate"], true);
    assert_eq!(app.job_count().await, 1);

    let jobs = app.store.jobs(&JobFilter::default()).await.unwrap();
    assert_eq!(jobs[0].kind, "event.record");
    assert_eq!(jobs[0].queue, "main");
    assert_eq!(jobs[0].ordering_key, "web:42");
    assert_eq!(
        jobs[0].payload["event"]["ticket"]["title"],
        "printer jammed"
    );
    let inbox = app.store.inbox(inbox_id).await.unwrap().unwrap();
    assert_eq!(inbox.body, body.as_bytes());
    assert_eq!(inbox.source, "web");

    // Idempotency-Key wins over the body: a different body with the same key is a repeat.
    let (_, keyed) = app
        .post_event(
            Some("key-new"),
            r#"{"a":1}"#,
            &[("idempotency-key", "delivery-7")],
        )
        .await;
    let (_, repeat) = app
        .post_event(
            Some("key-old"),
            r#"{"a":2}"#,
            &[("idempotency-key", "delivery-7")],
        )
        .await;
    assert_eq!(keyed["duplicate"], false);
    assert_eq!(repeat["duplicate"], true);
    assert_eq!(repeat["inbox_id"], keyed["inbox_id"]);
    assert_eq!(app.job_count().await, 2);
    let inbox = app
        .store
        .inbox(keyed["inbox_id"].as_i64().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(inbox.dedupe_key, "delivery-7");
    assert_eq!(inbox.headers["idempotency-key"], "delivery-7");

    // No value at the ordering pointer: each event gets a key of its own, later
    // events a greater one (time-ordered, so the index takes it at its end).
    let (_, unordered) = app.post_event(Some("key-new"), r#"{"b":1}"#, &[]).await;
    assert_eq!(unordered["duplicate"], false);
    let jobs = app.store.jobs(&JobFilter::default()).await.unwrap();
    let keys: Vec<&str> = jobs.iter().map(|j| j.ordering_key.as_str()).collect();
    assert_eq!(keys.len(), 3, "{keys:?}");
    // Newest first: the event without a pointer value, then the keyed one.
    assert!(keys[0].starts_with("web:event:"), "{keys:?}");
    assert!(keys[1].starts_with("web:event:"), "{keys:?}");
    assert!(keys[0] > keys[1], "keys grow with time: {keys:?}");
    assert_eq!(keys[2], "web:42");
}

#[tokio::test]
async fn accepts_and_dedupes_on_sqlite() {
    let (store, _dir) = store::testing::fresh_sqlite().await;
    check_accept_and_dedupe(store).await;
}

#[tokio::test]
async fn accepts_and_dedupes_on_postgres() {
    let Some(store) = store::testing::fresh_postgres().await else {
        return;
    };
    check_accept_and_dedupe(store).await;
}

/// An ordering value with a control character (PostgreSQL text cannot hold
/// NUL) is a 400 naming it, and the events sent beside it are stored.
async fn check_unstorable_ordering_values(store: Store) {
    let app = spawn_app(store, test_config()).await;
    let bad = r#"{"ticket":{"id":"a\u0000b","title":"x"}}"#;
    // Longer than an ordering value may be (PostgreSQL's index entries
    // hold about 2.7 kB; values are kept well below).
    let long = format!(
        r#"{{"ticket":{{"id":"{}","title":"x"}}}}"#,
        "x".repeat(1_000)
    );
    let bodies: Vec<(usize, String)> = (0..8)
        .map(|i| match i {
            3 => (i, bad.to_owned()),
            5 => (i, long.clone()),
            _ => (i, format!(r#"{{"ticket":{{"id":{i},"title":"t{i}"}}}}"#)),
        })
        .collect();
    // Sent at once, so the writer commits them in groups.
    let answers = futures::future::join_all(bodies.iter().map(|(i, body)| {
        let app = &app;
        async move { (*i, app.post_event(Some("key-new"), body, &[]).await) }
    }))
    .await;
    for (i, (status, body)) in answers {
        if i == 3 || i == 5 {
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
            assert_error(&body, "bad_request");
        } else {
            assert_eq!(status, StatusCode::ACCEPTED, "{i}: {body}");
        }
    }
    assert_eq!(app.job_count().await, 6);
}

#[tokio::test]
async fn unstorable_ordering_values_are_refused_on_sqlite() {
    let (store, _dir) = store::testing::fresh_sqlite().await;
    check_unstorable_ordering_values(store).await;
}

#[tokio::test]
async fn unstorable_ordering_values_are_refused_on_postgres() {
    let Some(store) = store::testing::fresh_postgres().await else {
        return;
    };
    check_unstorable_ordering_values(store).await;
}

async fn check_concurrent_accepts(store: Store) {
    let app = spawn_app(store, test_config()).await;
    let mut tasks = Vec::new();
    for n in 0..60 {
        let client = app.client.clone();
        let url = format!("{}/api/v1/events/web", app.base);
        tasks.push(tokio::spawn(async move {
            // Every event sent twice at once: one accepted, one duplicate.
            let body = format!(r#"{{"n":{}}}"#, n / 2);
            let response = client
                .post(url)
                .header("content-type", "application/json")
                .header("authorization", "Bearer key-old")
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::ACCEPTED);
            response.json::<Value>().await.unwrap()
        }));
    }
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    let accepted = answers.iter().filter(|a| a["duplicate"] == false).count();
    assert_eq!(accepted, 30);
    assert_eq!(app.job_count().await, 30);
}

#[tokio::test]
async fn concurrent_requests_are_each_stored_once_on_sqlite() {
    let (store, _dir) = store::testing::fresh_sqlite().await;
    check_concurrent_accepts(store).await;
}

#[tokio::test]
async fn concurrent_requests_are_each_stored_once_on_postgres() {
    let Some(store) = store::testing::fresh_postgres().await else {
        return;
    };
    check_concurrent_accepts(store).await;
}

#[tokio::test]
async fn authentication_failures_are_401_and_store_nothing() {
    let (store, _dir) = store::testing::fresh_sqlite().await;
    let app = spawn_app(store, test_config()).await;
    let (status, body) = app.post_event(None, r#"{"a":1}"#, &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_error(&body, "unauthorized");
    let (status, body) = app.post_event(Some("key-wrong"), r#"{"a":1}"#, &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_error(&body, "unauthorized");
    let (status, _) = app
        .post_event(None, r#"{"a":1}"#, &[("authorization", "Bearer key-wrong")])
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.job_count().await, 0);
    // Rotation: both configured keys work, in either header.
    let (status, _) = app.post_event(Some("key-old"), r#"{"a":1}"#, &[]).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, _) = app
        .post_event(None, r#"{"a":2}"#, &[("authorization", "Bearer key-new")])
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(app.job_count().await, 2);
}

#[tokio::test]
async fn every_error_class_has_the_uniform_body() {
    let (store, _dir) = store::testing::fresh_sqlite().await;
    let app = spawn_app(store, test_config()).await;
    let url = format!("{}/api/v1/events/web", app.base);

    // 415: not JSON.
    let r = app
        .client
        .post(&url)
        .header("x-api-key", "key-new")
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_error(&r.json().await.unwrap(), "unsupported_media_type");

    // 400: invalid JSON.
    let (status, body) = app.post_event(Some("key-new"), r#"{"a":"#, &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&body, "bad_request");

    // 413: body over the limit (with and without a content length).
    let big = format!(r#"{{"pad":"{}"}}"#, "x".repeat(BODY_LIMIT * 2));
    let (status, body) = app.post_event(Some("key-new"), &big, &[]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_error(&body, "payload_too_large");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("2048 bytes, server.body_limit")),
        "the limit is named: {body}"
    );
    let stream = futures_stream(big.clone());
    let r = app
        .client
        .post(&url)
        .header("x-api-key", "key-new")
        .header("content-type", "application/json")
        .body(stream)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_error(&r.json().await.unwrap(), "payload_too_large");

    // 404: unknown route, unknown source.
    let r = app
        .client
        .get(format!("{}/no/such/route", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_error(&r.json().await.unwrap(), "not_found");
    let r = app
        .client
        .post(format!("{}/api/v1/events/nosuch", app.base))
        .header("x-api-key", "key-new")
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_error(&r.json().await.unwrap(), "not_found");

    // 405: known path, wrong method (the Allow header is kept).
    let r = app.client.get(&url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.headers()["allow"], "POST");
    assert_error(&r.json().await.unwrap(), "method_not_allowed");

    // 400: extractor rejection (path segment not valid UTF-8).
    let r = app
        .client
        .post(format!("{}/api/v1/events/%FF", app.base))
        .header("x-api-key", "key-new")
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error());
    let body: Value = r.json().await.unwrap();
    assert!(body["error"]["code"].is_string(), "{body}");

    // 500: a panicking handler answers the uniform body, never the panic text.
    let r = app
        .client
        .get(format!("{}/test/panic", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let text = r.text().await.unwrap();
    assert!(!text.contains("secret internals"), "{text}");
    assert_error(&serde_json::from_str(&text).unwrap(), "internal");

    assert_eq!(app.job_count().await, 0, "no error stored anything");
}

fn futures_stream(body: String) -> reqwest::Body {
    // A body without Content-Length, so the limit is enforced while reading.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = body
        .into_bytes()
        .chunks(512)
        .map(|c| Ok(c.to_vec()))
        .collect();
    reqwest::Body::wrap_stream(futures::stream::iter(chunks))
}

#[tokio::test]
async fn extension_routes_are_mounted_with_the_shared_layers() {
    let (store, _dir) = store::testing::fresh_sqlite().await;
    let app = spawn_app(store, test_config()).await;
    let r = app
        .client
        .get(format!("{}/test/extra", app.base))
        .header("x-request-id", "req-123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["x-request-id"], "req-123");
    assert_eq!(r.text().await.unwrap(), "extra ok");
    let r = app
        .client
        .post(format!("{}/test/extra", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_error(&r.json().await.unwrap(), "method_not_allowed");
    // A request id is generated when the caller sends none.
    let r = app
        .client
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .unwrap();
    assert!(!r.headers()["x-request-id"].is_empty());
}

#[tokio::test]
async fn noop_route_exists_only_when_enabled() {
    let (store, _dir) = store::testing::fresh_sqlite().await;
    let app = spawn_app(store.clone(), test_config()).await;
    let r = app
        .client
        .post(format!("{}/bench/noop", app.base))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(app.job_count().await, 0);
    let mut config = test_config();
    config.server.bench_noop = false;
    let app = spawn_app(store, config).await;
    let r = app
        .client
        .post(format!("{}/bench/noop", app.base))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

async fn check_readiness(store: Store) {
    let app = spawn_app(store.clone(), test_config()).await;
    let r = app
        .client
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = app
        .client
        .get(format!("{}/readyz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"status": "ready"}));
    store.close().await;
    let r = app
        .client
        .get(format!("{}/readyz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_error(&r.json().await.unwrap(), "store_unavailable");
    // The process itself is still up.
    let r = app
        .client
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // Ingest now fails with a retryable uniform error, not a 2xx.
    let (status, body) = app
        .post_event(Some("key-new"), r#"{"late":true}"#, &[])
        .await;
    assert!(status.is_server_error(), "{status}");
    assert!(body["error"]["code"].is_string(), "{body}");
}

#[tokio::test]
async fn readiness_follows_the_store_on_sqlite() {
    let (store, _dir) = store::testing::fresh_sqlite().await;
    check_readiness(store).await;
}

#[tokio::test]
async fn readiness_follows_the_store_on_postgres() {
    let Some(store) = store::testing::fresh_postgres().await else {
        return;
    };
    check_readiness(store).await;
}

#[tokio::test]
async fn metrics_report_requests_inbox_and_jobs() {
    let (store, _dir) = store::testing::fresh_sqlite().await;
    let app = spawn_app(store, test_config()).await;
    app.post_event(Some("key-new"), r#"{"m":1}"#, &[]).await;
    app.post_event(Some("key-new"), r#"{"m":1}"#, &[]).await;
    app.post_event(Some("bad"), r#"{"m":1}"#, &[]).await;
    let r = app
        .client
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = r.text().await.unwrap();
    for expected in [
        r#"ticketbridge_http_requests_total{route="/api/v1/events/{source}",status="202"}"#,
        r#"ticketbridge_http_requests_total{route="/api/v1/events/{source}",status="401"}"#,
        r#"ticketbridge_inbox_total{source="web",outcome="accepted"}"#,
        r#"ticketbridge_inbox_total{source="web",outcome="duplicate"}"#,
        r#"ticketbridge_jobs{state="pending"} 1"#,
        r#"ticketbridge_jobs{state="dead"} 0"#,
        "ticketbridge_http_request_duration_seconds_bucket",
    ] {
        assert!(text.contains(expected), "missing {expected} in\n{text}");
    }
    assert!(
        !text.contains("/api/v1/events/web"),
        "raw paths must not be labels"
    );

    // Job counts come from the store at most every few seconds, not on
    // every scrape: a scrape right after another shows the same count.
    app.post_event(Some("key-new"), r#"{"m":2}"#, &[]).await;
    let again = app
        .client
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        again.contains(r#"ticketbridge_jobs{state="pending"} 1"#),
        "counted again at once:\n{again}"
    );
}

/// With `server.metrics_token`, `/metrics` answers only the token (401 with
/// the uniform error body otherwise); the probes stay open.
#[tokio::test]
async fn metrics_can_require_a_token() {
    let (store, _dir) = store::testing::fresh_sqlite().await;
    let mut config = test_config();
    config.server.metrics_token = Some(SecretString::from("scrape-0123456789"));
    let app = spawn_app(store, config).await;
    let get = |token: Option<&'static str>| {
        let mut request = app.client.get(format!("{}/metrics", app.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    let missing = get(None).await.unwrap();
    assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
    let body: serde_json::Value = missing.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized", "{body}");
    assert_eq!(
        get(Some("wrong")).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    let good = get(Some("scrape-0123456789")).await.unwrap();
    assert_eq!(good.status(), StatusCode::OK);
    assert!(good.text().await.unwrap().contains("ticketbridge_jobs"));
    let probe = app
        .client
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(probe.status(), StatusCode::OK);
}

/// A client that opens a connection and never finishes its headers is cut
/// off after `header_timeout`.
#[tokio::test]
async fn a_connection_that_never_finishes_its_headers_is_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let mut config = test_config();
    config.server.header_timeout = Duration::from_millis(500);
    let (store, _dir) = store::testing::fresh_sqlite().await;
    let app = spawn_app(store, config).await;
    let addr = app.base.trim_start_matches("http://").to_owned();

    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the half-sent request was not cut off");
}

/// Connections beyond `max_connections` are not served until one closes.
#[tokio::test]
async fn connections_beyond_the_limit_wait_for_a_free_one() {
    let mut config = test_config();
    config.server.max_connections = 2;
    let (store, _dir) = store::testing::fresh_sqlite().await;
    let app = spawn_app(store, config).await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let idle_a = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let _idle_b = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let mut waiting = tokio::spawn(
        reqwest::Client::new()
            .get(format!("{}/healthz", app.base))
            .timeout(Duration::from_secs(20))
            .send(),
    );
    let early = tokio::time::timeout(Duration::from_millis(400), &mut waiting).await;
    assert!(
        early.is_err(),
        "served while two idle connections held every slot: {early:?}"
    );
    // A slot frees: the waiting request is served.
    drop(idle_a);
    let served = waiting.await.unwrap().unwrap();
    assert_eq!(served.status(), StatusCode::OK);
}
