//! End-to-end tests of the intake API: real HTTP into the service, real
//! HTTP from the service into the GLPI simulator, a real store.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use base64::Engine as _;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sim::glpi::{ActorKind, GlpiSim, NewUser, RunningSim, SimConfig, SimTicket};
use ticketbridge::testkit::{TestApp, wait_for};

const KEY: &str = "web-key-1";
const OLD_KEY: &str = "web-key-0";
const STRICT_KEY: &str = "strict-key";
const QUICK_KEY: &str = "quick-key";
const OWN_KEY: &str = "own-key";
const FORM_KEY: &str = "form-key";
const CNPJ: &str = "12.345.678/0001-90";

struct World {
    sim: RunningSim,
    app: TestApp,
    entity: u64,
    maria: u64,
    joao: u64,
    printers: u64,
    config: config::Config,
    _dir: Option<tempfile::TempDir>,
}

async fn world() -> World {
    let (store, dir) = store::testing::fresh_sqlite().await;
    world_on(store, Some(dir)).await
}

async fn world_on(store: store::Store, dir: Option<tempfile::TempDir>) -> World {
    let sim = GlpiSim::start(SimConfig::default()).await.unwrap();
    let entity = sim.add_entity("ACME Ltda", 0, Some(CNPJ));
    let maria = sim.add_user(NewUser {
        login: "maria".into(),
        firstname: Some("Maria".into()),
        realname: Some("Souza".into()),
        emails: vec!["maria@acme.com.br".into()],
        entities_id: entity,
        ..NewUser::default()
    });
    let joao = sim.add_user(NewUser {
        login: "joao".into(),
        firstname: Some("João".into()),
        realname: Some("Lima".into()),
        mobile: Some("(11) 98765-4321".into()),
        entities_id: entity,
        ..NewUser::default()
    });
    let printers = sim.add_category("Printers");
    let toml = format!(
        r#"
[engine]
max_attempts = 12

[targets.glpi]
kind = "glpi"
url = "{url}"
app_token = "${{APP}}"
user_token = "${{USER}}"
tax_id_search_option = 76666
timeout = "5s"

[sources.web]
kind = "intake"
target = "glpi"
api_keys = ["${{KEY}}", "{OLD_KEY}"]
default_entity = 0
wait = "8s"
max_attachment_bytes = 64
cache_ttl = "1m"

[sources.strict]
kind = "intake"
target = "glpi"
api_keys = ["{STRICT_KEY}"]
create_requesters = false
unknown_tax_id = "use_default"
default_entity = 0

[sources.quick]
kind = "intake"
target = "glpi"
api_keys = ["{QUICK_KEY}"]
wait = "100ms"

[sources.own]
kind = "intake"
target = "glpi"
api_keys = ["{OWN_KEY}"]
reads = "own"

[sources.form]
kind = "intake"
target = "glpi"
api_keys = ["{FORM_KEY}"]
reads = "none"
"#,
        url = sim.base_url()
    );
    let env = vec![
        ("APP".to_string(), sim.app_token()),
        ("USER".to_string(), sim.user_token("glpi").unwrap()),
        ("KEY".to_string(), KEY.to_string()),
    ];
    let config = config::load_str(&toml, env).unwrap();
    let app = TestApp::spawn(config.clone(), store).await.unwrap();
    World {
        sim,
        app,
        entity,
        maria,
        joao,
        printers,
        config,
        _dir: dir,
    }
}

impl World {
    /// The request ends `created`, and GLPI holds exactly one ticket titled
    /// `title`: the one the status names.
    async fn assert_created_once(&self, request_id: i64, title: &str) {
        let done = self.until_created(QUICK_KEY, request_id).await;
        let same: Vec<_> = self
            .sim
            .tickets()
            .into_iter()
            .filter(|t| t.name == title)
            .collect();
        assert_eq!(same.len(), 1, "tickets titled {title:?}: {same:?}");
        assert_eq!(same[0].id, done["ticket_id"].as_u64().unwrap());
    }

    async fn post(&self, key: &str, body: &Value, idem: Option<&str>) -> (StatusCode, Value) {
        self.post_to("/api/v1/tickets", key, body, idem).await
    }

    async fn post_to(
        &self,
        path: &str,
        key: &str,
        body: &Value,
        idem: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .app
            .http
            .post(self.app.url(path))
            .header("x-api-key", key)
            .json(body);
        if let Some(k) = idem {
            req = req.header("idempotency-key", k);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str, key: &str) -> (StatusCode, Value) {
        let resp = self
            .app
            .http
            .get(self.app.url(path))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    fn ticket(&self, answer: &Value) -> SimTicket {
        let id = answer["ticket_id"].as_u64().expect("ticket_id in answer");
        self.sim.ticket(id).expect("ticket in GLPI")
    }

    async fn until_created(&self, key: &str, request_id: i64) -> Value {
        wait_for(
            "the request to be created",
            Duration::from_secs(20),
            || async {
                let (status, body) = self
                    .get(&format!("/api/v1/tickets/requests/{request_id}"), key)
                    .await;
                (status == StatusCode::OK && body["status"] == "created").then_some(body)
            },
        )
        .await
        .unwrap()
    }
}

/// The service in process on a fresh SQLite store, against `sim`'s GLPI:
/// `sections` (TOML: `[server]`, `[engine]`, the sources) beside the target.
async fn app_with(sim: &RunningSim, sections: &str) -> (TestApp, tempfile::TempDir) {
    let (store, dir) = store::testing::fresh_sqlite().await;
    let toml = format!(
        r#"{sections}
[targets.glpi]
kind = "glpi"
url = "{url}"
app_token = "${{APP}}"
user_token = "${{USER}}"
timeout = "5s"
"#,
        url = sim.base_url()
    );
    let env = vec![
        ("APP".to_string(), sim.app_token()),
        ("USER".to_string(), sim.user_token("glpi").unwrap()),
    ];
    let app = TestApp::spawn(config::load_str(&toml, env).unwrap(), store)
        .await
        .unwrap();
    (app, dir)
}

fn requester_of(t: &SimTicket) -> Vec<(u64, String)> {
    t.actors
        .iter()
        .filter(|a| a.kind == ActorKind::Requester)
        .map(|a| (a.users_id, a.alternative_email.clone()))
        .collect()
}

#[tokio::test]
async fn a_category_that_does_not_take_the_ticket_type_is_refused() {
    let w = world().await;
    let failures = w.sim.add_category_for("Hardware failure", true, false);
    let body = |kind: &str, d: &str| {
        json!({"requester": {"email": "maria@acme.com.br"}, "description": d,
               "category": "Hardware failure", "type": kind})
    };
    // GLPI would keep the ticket without the category (10.0.17+): refuse instead.
    let (status, refused) = w
        .post(KEY, &body("request", "New keyboard please"), None)
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert_eq!(refused["error"]["code"], "category_not_found");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("does not take requests"),
        "{refused}"
    );
    assert!(
        w.sim
            .tickets()
            .iter()
            .all(|t| t.name != "New keyboard please")
    );
    // An incident takes it.
    let (status, created) = w.post(KEY, &body("incident", "Disk died"), None).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(w.ticket(&created).itilcategories_id, failures);
    w.app.stop().await;
}

#[tokio::test]
async fn a_ticket_is_created_with_every_field_in_glpi() {
    let w = world().await;
    let (status, answer) = w
        .post(
            KEY,
            &json!({
                "requester": {"name": "Maria Souza", "email": "Maria@ACME.com.br"},
                "organisation": {"tax_id": CNPJ},
                "description": "Printer on floor 2 is jammed\nError E-203 <urgent>",
                "category": "printers",
                "urgency": "high",
                "type": "request",
                "extra": {"AnyDesk ID": "123 456 789", "Note": "<b>bold</b> & co"},
                "attachments": [{"filename": "photo.txt", "mime": "text/plain", "content_base64": "aGVsbG8gd29ybGQ="}]
            }),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let id = answer["ticket_id"].as_i64().unwrap();
    assert_eq!(answer["message"], format!("Ticket #{id} created"));
    assert!(
        answer["url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("ticket.form.php?id={id}"))
    );
    let t = w.ticket(&answer);
    assert_eq!(t.entities_id, w.entity);
    assert_eq!(t.name, "Printer on floor 2 is jammed");
    assert_eq!(t.urgency, 4);
    assert_eq!(t.ticket_type, 2);
    assert_eq!(t.itilcategories_id, w.printers);
    assert_eq!(requester_of(&t), vec![(w.maria, String::new())]);
    assert!(
        t.content.contains("Error E-203 &lt;urgent&gt;"),
        "{}",
        t.content
    );
    assert!(
        t.content
            .contains("<td>AnyDesk ID</td><td>123 456 789</td>"),
        "{}",
        t.content
    );
    assert!(
        t.content.contains("&lt;b&gt;bold&lt;/b&gt; &amp; co"),
        "{}",
        t.content
    );
    let docs = w.sim.documents();
    let doc = docs
        .iter()
        .find(|d| d.linked_to.contains(&("Ticket".to_string(), t.id)))
        .expect("document linked to the ticket");
    assert_eq!(doc.content.as_deref(), Some(&b"hello world"[..]));
    // The link and the outcome are in the store (the answer may come first:
    // the ticket exists once GLPI has created it, the link is stored next).
    let request_id = answer["request_id"].to_string();
    let link = wait_for("the request's link", Duration::from_secs(20), || async {
        w.app
            .store
            .link("intake.ticket", "intake:web", &request_id, "glpi")
            .await
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(link.target_id.as_deref(), Some(id.to_string().as_str()));
    w.app.stop().await;
}

#[tokio::test]
async fn tax_ids_match_in_both_spellings_and_phones_find_users() {
    let w = world().await;
    let (status, answer) = w
        .post(
            OLD_KEY,
            &json!({
                "requester": {"phone": "+55 11 98765-4321"},
                "organisation": {"tax_id": "12345678000190"},
                "description": "VPN down",
                "urgency": 2
            }),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let t = w.ticket(&answer);
    assert_eq!(t.entities_id, w.entity);
    assert_eq!(t.urgency, 2);
    assert_eq!(requester_of(&t), vec![(w.joao, String::new())]);
    w.app.stop().await;
}

/// An organisation added in GLPI while the service runs: GLPI's session does
/// not see it (its active entities date from the login), so the first ticket
/// for it is refused until the service refreshes them, then created there.
#[tokio::test]
async fn an_entity_created_after_the_login_takes_tickets() {
    let w = world().await;
    let (status, answer) = w
        .post(
            OLD_KEY,
            &json!({"requester": {"email": "maria@acme.com.br"},
                "organisation": {"tax_id": "12345678000190"}, "description": "warm up"}),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let beta = w.sim.add_entity("Beta SA", 0, Some("98.765.432/0001-10"));
    let (status, answer) = w
        .post(
            OLD_KEY,
            &json!({"requester": {"email": "maria@acme.com.br"},
                "organisation": {"tax_id": "98765432000110"}, "description": "Beta printer"}),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(w.ticket(&answer).entities_id, beta);
    w.app.stop().await;
}

#[tokio::test]
async fn missing_requesters_are_created_or_attached_by_email() {
    let w = world().await;
    let (status, answer) = w
        .post(
            KEY,
            &json!({"requester": {"name": "Ana Paula", "email": "ana@new.example", "phone": "11 91234-5678"},
                    "description": "New laptop"}),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let created = w
        .sim
        .users()
        .into_iter()
        .find(|u| u.emails.contains(&"ana@new.example".to_string()))
        .expect("user created in GLPI");
    assert_eq!(
        requester_of(&w.ticket(&answer)),
        vec![(created.id, String::new())]
    );

    let users_before = w.sim.users().len();
    let (status, answer) = w
        .post(
            STRICT_KEY,
            &json!({"requester": {"email": "guest@else.example"},
                    "organisation": {"tax_id": "99.999.999/0001-99"},
                    "description": "Email-only requester"}),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let t = w.ticket(&answer);
    assert_eq!(
        requester_of(&t),
        vec![(0, "guest@else.example".to_string())]
    );
    assert_eq!(t.entities_id, 0, "unknown tax id uses the default entity");
    assert_eq!(w.sim.users().len(), users_before, "no user created");
    w.app.stop().await;
}

#[tokio::test]
async fn an_idempotency_key_repeat_returns_the_same_ticket() {
    let w = world().await;
    let body = json!({"requester": {"email": "maria@acme.com.br"}, "description": "Once only"});
    let (s1, a1) = w.post(KEY, &body, Some("order-77")).await;
    let (s2, a2) = w.post(KEY, &body, Some("order-77")).await;
    assert_eq!(s1, StatusCode::CREATED, "{a1}");
    assert_eq!(s2, StatusCode::CREATED, "{a2}");
    assert_eq!(a1["ticket_id"], a2["ticket_id"]);
    assert_eq!(a1["request_id"], a2["request_id"]);
    let same: Vec<_> = w
        .sim
        .tickets()
        .into_iter()
        .filter(|t| t.name == "Once only")
        .collect();
    assert_eq!(same.len(), 1);
    // Without a key, the body hash dedupes an identical retry too.
    let (_, b1) = w.post(KEY, &body, None).await;
    let (_, b2) = w.post(KEY, &body, None).await;
    assert_eq!(b1["ticket_id"], b2["ticket_id"]);
    w.app.stop().await;
}

#[tokio::test]
async fn a_file_glpi_refuses_leaves_the_ticket_created_and_a_note_for_technicians() {
    let w = world().await;
    // GLPI refuses `.log` files (not an allowed document type) once the ticket
    // exists; the other file must still be attached, and the caller told the
    // ticket number, not a failure.
    let (status, answer) = w
        .post(
            KEY,
            &json!({
                "requester": {"email": "maria@acme.com.br"},
                "description": "Printer log attached",
                "attachments": [
                    {"filename": "printer.log", "mime": "text/plain", "content_base64": "bG9n"},
                    {"filename": "photo.txt", "mime": "text/plain", "content_base64": "aGVsbG8="}
                ]
            }),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let t = w.ticket(&answer);
    assert_eq!(t.name, "Printer log attached");
    let attached: Vec<_> = w
        .sim
        .documents()
        .into_iter()
        .filter(|d| d.linked_to.contains(&("Ticket".to_string(), t.id)))
        .filter_map(|d| d.filename)
        .collect();
    assert_eq!(attached, ["photo.txt"]);
    let notes = w.sim.followups(t.id);
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(notes[0].is_private);
    assert!(
        notes[0].content.contains("printer.log") && notes[0].content.contains("not found"),
        "{}",
        notes[0].content
    );
    w.app.stop().await;
}

#[tokio::test]
async fn a_requester_whose_login_is_taken_is_that_account() {
    let w = world().await;
    // An account made by SSO or by hand: its login is the address, but GLPI
    // holds no email for it, so the email search cannot find it.
    let ana = w.sim.add_user(NewUser {
        login: "ana@acme.com.br".into(),
        entities_id: w.entity,
        ..NewUser::default()
    });
    let users_before = w.sim.users().len();
    let (status, answer) = w
        .post(
            KEY,
            &json!({"requester": {"name": "Ana", "email": "ana@acme.com.br"}, "description": "VPN down"}),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(requester_of(&w.ticket(&answer)), [(ana, String::new())]);
    assert_eq!(w.sim.users().len(), users_before, "no second account");

    // Two first requests of a new person at the same moment: both are tickets,
    // of one new account.
    let body =
        |d: &str| json!({"requester": {"email": "new.person@acme.com.br"}, "description": d});
    let (first, second) = (body("First problem"), body("Second problem"));
    let (a, b) = tokio::join!(w.post(KEY, &first, None), w.post(KEY, &second, None));
    assert_eq!(a.0, StatusCode::CREATED, "{}", a.1);
    assert_eq!(b.0, StatusCode::CREATED, "{}", b.1);
    assert_eq!(w.sim.users().len(), users_before + 1);
    let (ra, rb) = (requester_of(&w.ticket(&a.1)), requester_of(&w.ticket(&b.1)));
    assert_eq!(ra, rb, "one account for both");
    w.app.stop().await;
}

/// An account the bridge made for a requester, disabled since by an
/// administrator, still holds its login (the address): the requester's next
/// request is filed under a new account of its own (`…-2`), never under the
/// disabled one, and the request after that finds the new account.
#[tokio::test]
async fn a_disabled_account_holding_the_login_is_never_the_requester() {
    let w = world().await;
    let disabled = w.sim.add_user(NewUser {
        login: "ana@acme.com.br".into(),
        emails: vec!["ana@acme.com.br".into()],
        entities_id: w.entity,
        ..NewUser::default()
    });
    assert!(w.sim.set_user_active(disabled, false));
    let users_before = w.sim.users().len();
    let (status, answer) = w
        .post(
            KEY,
            &json!({"requester": {"name": "Ana", "email": "ana@acme.com.br"}, "description": "VPN down"}),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let requester = requester_of(&w.ticket(&answer));
    assert_eq!(requester.len(), 1, "{requester:?}");
    let (account, _) = &requester[0];
    assert_ne!(*account, disabled, "the disabled account is the requester");
    let account = w.sim.user(*account).unwrap();
    assert_eq!(account.login, "ana@acme.com.br-2");
    assert!(account.is_active);
    assert_eq!(account.emails, ["ana@acme.com.br"]);
    assert_eq!(w.sim.users().len(), users_before + 1);

    // The next request finds the new account by its address.
    let (status, again) = w
        .post(
            KEY,
            &json!({"requester": {"email": "ana@acme.com.br"}, "description": "VPN down again"}),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{again}");
    assert_eq!(requester_of(&w.ticket(&again)), requester);
    assert_eq!(w.sim.users().len(), users_before + 1);
    w.app.stop().await;
}

#[tokio::test]
async fn a_request_sent_again_after_glpi_stayed_down_is_tried_again() {
    let sim = GlpiSim::start(SimConfig::default()).await.unwrap();
    let (app, _dir) = app_with(
        &sim,
        &format!(
            r#"
[engine]
max_attempts = 2
backoff_base = "10ms"
backoff_max = "20ms"
poll = "50ms"


[sources.web]
kind = "intake"
target = "glpi"
api_keys = ["{KEY}"]
default_entity = 0
wait = "8s"
"#
        ),
    )
    .await;
    let body = json!({"requester": {"email": "maria@acme.com.br"}, "description": "Down twice"});
    let send = || async {
        let resp = app
            .http
            .post(app.url("/api/v1/tickets"))
            .header("x-api-key", KEY)
            .header("idempotency-key", "form-17")
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        (status, resp.json::<Value>().await.unwrap(), headers)
    };

    // Down through both attempts: the request fails as unavailable, and the
    // answer says when to try again.
    sim.faults().fail_next(1_000, 503);
    let (status, first, headers) = send().await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{first}");
    assert_eq!(first["error"]["code"], "target_unavailable");
    assert_eq!(headers["retry-after"], "30");
    assert!(headers.get("idempotent-replayed").is_none());
    // What failed inside (addresses, GLPI's error page) is not told.
    assert_eq!(
        first["error"]["message"],
        "the help desk is not answering right now: every attempt failed; send the request again to try once more"
    );
    let request_id = first["error"]["request_id"].clone();

    // GLPI is back; the caller tries again, as a 503 invites it to.
    sim.faults().clear();
    let (status, second, headers) = send().await;
    assert_eq!(status, StatusCode::CREATED, "{second}");
    assert_eq!(second["request_id"], request_id, "the same request");
    assert_eq!(
        headers["idempotent-replayed"], "true",
        "a repeat, restarted"
    );
    let tickets: Vec<_> = sim
        .tickets()
        .into_iter()
        .filter(|t| t.name == "Down twice")
        .collect();
    assert_eq!(tickets.len(), 1);
    assert_eq!(second["ticket_id"].as_u64(), Some(tickets[0].id));
    // And from then on it is a plain repeat.
    let (status, third, _) = send().await;
    assert_eq!(status, StatusCode::CREATED, "{third}");
    assert_eq!(third["ticket_id"], second["ticket_id"]);
    app.stop().await;
}

#[tokio::test]
async fn an_idempotency_key_reused_for_another_request_is_refused() {
    let w = world().await;
    let first =
        json!({"requester": {"email": "maria@acme.com.br"}, "description": "Printer jammed"});
    let (s1, a1) = w.post(KEY, &first, Some("call-9")).await;
    assert_eq!(s1, StatusCode::CREATED, "{a1}");

    // The same request serialised another way (key order, spacing) replays.
    let reordered =
        r#"{ "description" : "Printer jammed", "requester": {"email": "maria@acme.com.br"} }"#;
    let resp = w
        .app
        .http
        .post(w.app.url("/api/v1/tickets"))
        .header("x-api-key", KEY)
        .header("idempotency-key", "call-9")
        .header("content-type", "application/json")
        .body(reordered)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let replay: Value = resp.json().await.unwrap();
    assert_eq!(replay["ticket_id"], a1["ticket_id"]);

    // A second problem under the same key is not merged into the first ticket.
    let second =
        json!({"requester": {"email": "maria@acme.com.br"}, "description": "Monitor broken"});
    let (s2, a2) = w.post(KEY, &second, Some("call-9")).await;
    assert_eq!(s2, StatusCode::UNPROCESSABLE_ENTITY, "{a2}");
    assert_eq!(a2["error"]["code"], "idempotency_key_reused", "{a2}");
    assert_eq!(a2["error"]["request_id"], a1["request_id"], "{a2}");
    assert!(
        w.sim.tickets().iter().all(|t| t.name != "Monitor broken"),
        "no ticket for the refused request"
    );
    // With a key of its own it is a ticket.
    let (s3, a3) = w.post(KEY, &second, Some("call-9b")).await;
    assert_eq!(s3, StatusCode::CREATED, "{a3}");
    assert_eq!(w.ticket(&a3).name, "Monitor broken");
    w.app.stop().await;
}

#[tokio::test]
async fn a_slow_glpi_gets_202_then_the_status_becomes_created() {
    let w = world().await;
    // Warm the session so the latency hits the ticket creation.
    w.sim.faults().set_latency(Duration::from_millis(400));
    let (status, answer) = w
        .post(
            QUICK_KEY,
            &json!({"requester": {"email": "maria@acme.com.br"}, "description": "Slow"}),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let request_id = answer["request_id"].as_i64().unwrap();
    // An absolute link (n8n cannot follow a bare path) that works as it is.
    let status_url = w.app.url(&format!("/api/v1/tickets/requests/{request_id}"));
    assert_eq!(answer["status_url"], status_url.as_str());
    let followed = w
        .app
        .http
        .get(&status_url)
        .header("x-api-key", QUICK_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(followed.status(), StatusCode::OK);
    let done = w.until_created(QUICK_KEY, request_id).await;
    w.sim.faults().clear();
    let t = w.sim.ticket(done["ticket_id"].as_u64().unwrap()).unwrap();
    assert_eq!(t.name, "Slow");
    // Another source's key cannot read it.
    let (status, _) = w
        .get(&format!("/api/v1/tickets/requests/{request_id}"), KEY)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    w.app.stop().await;
}

#[tokio::test]
async fn glpi_down_is_retried_and_the_ticket_created_once() {
    let w = world().await;
    w.sim.faults().fail_next(6, 503);
    let (status, answer) = w
        .post(
            QUICK_KEY,
            &json!({"requester": {"email": "maria@acme.com.br"}, "description": "While down"}),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let request_id = answer["request_id"].as_i64().unwrap();
    w.assert_created_once(request_id, "While down").await;
    let jobs = w
        .app
        .store
        .jobs(&store::JobFilter {
            kind: Some("intake.create_ticket".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(jobs[0].attempts >= 2, "retried: {:?}", jobs[0]);
    w.app.stop().await;
}

#[tokio::test]
async fn a_lost_answer_after_the_ticket_was_created_does_not_create_a_second() {
    let w = world().await;
    // GLPI creates the ticket, then the connection drops before the answer.
    w.sim.faults().lose_answers("POST /Ticket", 1);
    let (status, answer) = w
        .post(
            QUICK_KEY,
            &json!({"requester": {"email": "maria@acme.com.br"}, "description": "Answer lost"}),
            None,
        )
        .await;
    // The retry may finish within the wait (201) or after it (202).
    assert!(
        status == StatusCode::CREATED || status == StatusCode::ACCEPTED,
        "{status}: {answer}"
    );
    let request_id = answer["request_id"].as_i64().unwrap();
    // The retry found the ticket by its marker.
    w.assert_created_once(request_id, "Answer lost").await;
    assert_eq!(
        w.sim.calls_to("POST /Ticket"),
        1,
        "the ticket was created once"
    );
    w.app.stop().await;
}

#[tokio::test]
async fn asynchronous_mode_answers_at_once() {
    let w = world().await;
    let (status, answer) = w
        .post_to(
            "/api/v1/tickets?mode=async",
            KEY,
            &json!({"requester": {"email": "maria@acme.com.br"}, "description": "Async one"}),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(answer["status"], "queued");
    let done = w
        .until_created(KEY, answer["request_id"].as_i64().unwrap())
        .await;
    assert_eq!(
        w.sim
            .ticket(done["ticket_id"].as_u64().unwrap())
            .unwrap()
            .name,
        "Async one"
    );
    // The source can be named in the path too.
    let (status, answer) = w
        .post_to(
            "/api/v1/sources/web/tickets",
            KEY,
            &json!({"requester": {"email": "maria@acme.com.br"}, "description": "By path"}),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let (status, _) = w
        .post_to("/api/v1/sources/strict/tickets", KEY, &json!({}), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    w.app.stop().await;
}

#[tokio::test]
async fn refusals_are_answered_with_their_codes() {
    let w = world().await;
    // Unknown CNPJ with policy reject: 404 before anything is stored.
    let (status, answer) = w
        .post(
            KEY,
            &json!({"requester": {"email": "maria@acme.com.br"}, "organisation": {"tax_id": "11.111.111/0001-11"},
                    "description": "No such company"}),
            Some("nope-1"),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
    assert_eq!(answer["error"]["code"], "entity_not_found");
    assert!(
        w.app
            .store
            .inbox_by_dedupe("web", "key:nope-1")
            .await
            .unwrap()
            .is_none()
    );

    // Unknown category name: 422, failed in the status, dead letter, no ticket.
    let (status, answer) = w
        .post(
            KEY,
            &json!({"requester": {"email": "maria@acme.com.br"}, "category": "Teleportation",
                           "description": "Beam me up"}),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert_eq!(answer["error"]["code"], "category_not_found");
    let request_id = answer["error"]["request_id"].as_i64().unwrap();
    let (_, st) = w
        .get(&format!("/api/v1/tickets/requests/{request_id}"), KEY)
        .await;
    assert_eq!(st["status"], "failed");
    assert_eq!(st["code"], "category_not_found");
    assert!(w.sim.tickets().iter().all(|t| t.name != "Beam me up"));
    // The caller's answer comes as the failure is recorded; the job is
    // marked dead just after.
    let dead = wait_for("the dead letter", Duration::from_secs(20), || async {
        let dead = w
            .app
            .store
            .jobs(&store::JobFilter {
                status: Some(store::JobStatus::Dead),
                ..Default::default()
            })
            .await
            .unwrap();
        (!dead.is_empty()).then_some(dead)
    })
    .await
    .unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].attempts, 1, "no retry storm");
    w.app.stop().await;
}

#[tokio::test]
async fn bad_requests_list_every_field_and_auth_size_and_type_are_checked() {
    let w = world().await;
    let (status, answer) = w
        .post(
            KEY,
            &json!({"requester": {"email": "nope", "phone": "12"}, "urgency": 7, "type": "problem",
                    "organisation": {"entity_id": "x"}}),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["error"]["code"], "invalid_request");
    let fields: Vec<&str> = answer["error"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    for f in [
        "requester.email",
        "requester.phone",
        "urgency",
        "type",
        "organisation.entity_id",
        "description",
    ] {
        assert!(fields.contains(&f), "{f} not in {fields:?}");
    }

    let body = json!({"requester": {"email": "maria@acme.com.br"}, "description": "x"});
    let resp = w
        .app
        .http
        .post(w.app.url("/api/v1/tickets"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let (status, _) = w.post("wrong-key", &body, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let big = "A".repeat(200);
    let (status, answer) = w
        .post(KEY, &json!({"requester": {"email": "maria@acme.com.br"}, "description": "big",
              "attachments": [{"filename": "a.bin", "mime": "application/octet-stream", "content_base64": big}]}), None)
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
    assert_eq!(
        answer["error"]["fields"][0]["field"],
        "attachments[0].content_base64"
    );

    let resp = w
        .app
        .http
        .post(w.app.url("/api/v1/tickets"))
        .header("x-api-key", KEY)
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(w.sim.tickets().is_empty(), "nothing reached GLPI");
    w.app.stop().await;
}

#[tokio::test]
async fn email_only_requesters_read_their_tickets_too() {
    let w = world().await;
    // A source that does not create accounts: the address alone is the
    // requester, and "my tickets" must still find the ticket.
    let (status, answer) = w
        .post(
            STRICT_KEY,
            &json!({"requester": {"email": "Guest@Example.org"}, "description": "Wifi is slow"}),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let id = answer["ticket_id"].as_u64().unwrap();
    assert_eq!(
        requester_of(&w.sim.ticket(id).unwrap()),
        [(0, "guest@example.org".to_string())]
    );
    // Another address that merely contains this one is not theirs.
    w.post(
        STRICT_KEY,
        &json!({"requester": {"email": "vip.guest@example.org"}, "description": "Not theirs"}),
        None,
    )
    .await;

    let (status, list) = w
        .get(
            "/api/v1/tickets?requester_email=guest%40example.org",
            STRICT_KEY,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let ids: Vec<u64> = list["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [id]);
    assert_eq!(list["tickets"][0]["title"], "Wifi is slow");
    // Solved, it leaves the open list.
    w.sim.set_ticket_status(id, 5);
    let (_, open) = w
        .get(
            "/api/v1/tickets?requester_email=guest%40example.org",
            STRICT_KEY,
        )
        .await;
    assert_eq!(open["tickets"], json!([]));
    w.app.stop().await;
}

#[tokio::test]
async fn a_requesters_list_is_newest_first_across_accounts_and_bare_addresses() {
    let w = world().await;
    let body = |d: &str| json!({"requester": {"email": "pat@example.org"}, "description": d});
    // No account yet and a source that creates none: the address alone.
    let (_, bare) = w.post(STRICT_KEY, &body("Filed by address"), None).await;
    // A source that creates accounts: now Pat is a user, for this ticket and the next.
    let (_, first) = w.post(KEY, &body("First as a user"), None).await;
    let (_, second) = w.post(KEY, &body("Second as a user"), None).await;
    let id = |answer: &Value| answer["ticket_id"].as_u64().unwrap();
    let (bare, first, second) = (id(&bare), id(&first), id(&second));
    assert_eq!(
        requester_of(&w.sim.ticket(bare).unwrap()),
        [(0, "pat@example.org".to_string())]
    );
    assert_ne!(requester_of(&w.sim.ticket(second).unwrap())[0].0, 0);
    // The address-only ticket changed last, the first user ticket long ago.
    assert!(w.sim.set_ticket_date_mod(bare, "2099-01-01 00:00:00"));
    assert!(w.sim.set_ticket_date_mod(first, "2001-01-01 00:00:00"));

    let ids = |list: &Value| -> Vec<u64> {
        list["tickets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_u64().unwrap())
            .collect()
    };
    let path = "/api/v1/tickets?requester_email=pat%40example.org";
    let (status, list) = w.get(path, KEY).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(ids(&list), [bare, second, first], "{list}");

    let (status, list) = w.get(&format!("{path}&limit=2"), KEY).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(ids(&list), [bare, second], "{list}");

    for bad in ["0", "201", "two", "-1"] {
        let (status, answer) = w.get(&format!("{path}&limit={bad}"), KEY).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "limit={bad}: {answer}");
        assert_eq!(
            answer["error"]["fields"][0]["field"], "limit",
            "limit={bad}"
        );
        assert_eq!(answer["error"]["fields"].as_array().map(Vec::len), Some(1));
    }
    w.app.stop().await;
}

#[tokio::test]
async fn a_source_reads_only_what_its_reads_setting_allows() {
    let w = world().await;
    let body = |d: &str| json!({"requester": {"email": "maria@acme.com.br"}, "description": d});
    let (_, by_web) = w.post(KEY, &body("Filed by the web source"), None).await;
    let (_, by_own) = w
        .post(OWN_KEY, &body("Filed by the own source"), None)
        .await;
    let (status, by_form) = w.post(FORM_KEY, &body("Filed by the form"), None).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "a source without reads still creates"
    );
    let (web_id, own_id) = (by_web["ticket_id"].clone(), by_own["ticket_id"].clone());

    // reads = "own": its own ticket, and no other, by id and in lists.
    let (status, _) = w.get(&format!("/api/v1/tickets/{own_id}"), OWN_KEY).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body_of) = w.get(&format!("/api/v1/tickets/{web_id}"), OWN_KEY).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body_of}");
    let list_path = "/api/v1/tickets?requester_email=maria%40acme.com.br&status=all";
    let (_, listed) = w.get(list_path, OWN_KEY).await;
    let ids: Vec<&Value> = listed["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| &t["id"])
        .collect();
    assert_eq!(ids, [&own_id], "{listed}");

    // reads = "all" (the default): everything.
    let (_, all) = w.get(list_path, KEY).await;
    assert_eq!(all["tickets"].as_array().unwrap().len(), 3, "{all}");

    // reads = "none": 403, even for its own ticket.
    let (status, refused) = w
        .get(
            &format!("/api/v1/tickets/{}", by_form["ticket_id"]),
            FORM_KEY,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    assert_eq!(refused["error"]["code"], "reads_disabled");
    let (status, _) = w.get(list_path, FORM_KEY).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    w.app.stop().await;
}

#[tokio::test]
async fn requesters_read_their_tickets() {
    let w = world().await;
    let (_, a1) = w
        .post(
            KEY,
            &json!({"requester": {"phone": "11987654321"}, "description": "First issue"}),
            None,
        )
        .await;
    let (_, a2) = w
        .post(
            KEY,
            &json!({"requester": {"phone": "11987654321"}, "description": "Second issue"}),
            None,
        )
        .await;
    let first = a1["ticket_id"].as_u64().unwrap();
    let second = a2["ticket_id"].as_u64().unwrap();
    w.sim
        .add_followup_as(second, 2, "<p>We are <b>on</b> it &amp; soon</p>", false)
        .unwrap();
    w.sim
        .add_followup_as(second, 2, "internal note", true)
        .unwrap();
    w.sim.set_ticket_status(first, 6);

    let (status, open) = w
        .get("/api/v1/tickets?requester_phone=%2B5511987654321", KEY)
        .await;
    assert_eq!(status, StatusCode::OK, "{open}");
    let ids: Vec<u64> = open["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, vec![second]);
    let (_, all) = w
        .get(
            "/api/v1/tickets?requester_phone=11%2098765-4321&status=all",
            KEY,
        )
        .await;
    let all = all["tickets"].as_array().unwrap();
    assert_eq!(all.len(), 2);
    let closed = all.iter().find(|t| t["id"] == first).unwrap();
    assert_eq!(closed["status"], "closed");
    assert_eq!(closed["title"], "First issue");

    let (status, one) = w.get(&format!("/api/v1/tickets/{second}"), KEY).await;
    assert_eq!(status, StatusCode::OK, "{one}");
    assert_eq!(one["title"], "Second issue");
    assert_eq!(one["status"], "new");
    // Text a voice agent can read out: no markup.
    assert_eq!(
        one["last_public_followup"]["content"],
        "We are on it & soon"
    );
    let (status, _) = w.get("/api/v1/tickets/999999", KEY).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, none) = w
        .get("/api/v1/tickets?requester_email=nobody%40x.example", KEY)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(none["tickets"], json!([]));
    let (status, _) = w.get("/api/v1/tickets", KEY).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let ping = w.app.http.get(w.app.url("/ping")).send().await.unwrap();
    assert_eq!(ping.status(), StatusCode::OK);
    w.app.stop().await;
}

#[tokio::test]
async fn warm_caches_cost_one_glpi_request_per_ticket() {
    let w = world().await;
    let body = |n: usize| {
        json!({"requester": {"email": "maria@acme.com.br"}, "organisation": {"tax_id": CNPJ},
               "category": "Printers", "description": format!("Warm {n}")})
    };
    let (status, _) = w.post(KEY, &body(0), None).await;
    assert_eq!(status, StatusCode::CREATED);
    w.sim.reset_counters();
    for n in 1..=10 {
        let (status, answer) = w.post(KEY, &body(n), None).await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
    }
    assert_eq!(w.sim.calls_total(), 10, "{:?}", w.sim.calls_by_endpoint());
    w.app.stop().await;
}

#[tokio::test]
async fn the_openapi_document_describes_the_api() {
    let w = world().await;
    let resp = w
        .app
        .http
        .get(w.app.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let doc: Value = resp.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/api/v1/tickets",
        "/api/v1/sources/{source}/tickets",
        "/api/v1/tickets/requests/{id}",
        "/api/v1/tickets/{id}",
        "/ping",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} missing");
    }
    for schema in [
        "TicketRequest",
        "CreatedAnswer",
        "AcceptedAnswer",
        "RequestStatus",
        "ErrorAnswer",
    ] {
        let s = &doc["components"]["schemas"][schema];
        assert!(s.is_object(), "{schema} missing");
    }
    assert!(doc["components"]["schemas"]["TicketRequest"]["example"]["requester"].is_object());
    assert!(doc["components"]["securitySchemes"]["api_key"].is_object());
    w.app.stop().await;
}

#[tokio::test]
async fn tickets_are_created_on_postgres_too() {
    let Some(store) = store::testing::fresh_postgres().await else {
        return;
    };
    let w = world_on(store, None).await;
    let body = json!({"requester": {"email": "maria@acme.com.br"}, "organisation": {"tax_id": CNPJ},
                      "description": "On PostgreSQL"});
    let (s1, a1) = w.post(KEY, &body, Some("pg-1")).await;
    let (s2, a2) = w.post(KEY, &body, Some("pg-1")).await;
    assert_eq!(s1, StatusCode::CREATED, "{a1}");
    assert_eq!(s2, StatusCode::CREATED, "{a2}");
    assert_eq!(a1["ticket_id"], a2["ticket_id"]);
    let t = w.ticket(&a1);
    assert_eq!(t.entities_id, w.entity);
    assert_eq!(w.sim.tickets().len(), 1);
    w.app.stop().await;
}

/// Waits until the store holds `n` dead jobs.
async fn dead_letters(app: &TestApp, n: usize) {
    wait_for("the dead letters", Duration::from_secs(20), || async {
        let dead = app
            .store
            .jobs(&store::JobFilter {
                status: Some(store::JobStatus::Dead),
                ..Default::default()
            })
            .await
            .unwrap();
        (dead.len() >= n).then_some(())
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_login_glpi_refuses_is_a_target_error_and_a_resend_after_the_fix_creates_the_ticket() {
    let w = world().await;
    let token = w.sim.user_token("glpi").unwrap();
    // An administrator regenerated the API user's token: every login is refused
    // with ERROR_GLPI_LOGIN_USER_TOKEN. Not the caller's fault: a 5xx, which
    // n8n and voice platforms retry, never a 422.
    assert!(w.sim.set_user_token("glpi", Some("regenerated")));
    w.sim.expire_all_sessions();
    let body = json!({"requester": {"email": "maria@acme.com.br"}, "description": "Token rotated"});
    let (status, first) = w.post(KEY, &body, Some("rot-1")).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{first}");
    assert_eq!(first["error"]["code"], "target_error");
    let request_id = first["error"]["request_id"].as_i64().unwrap();
    let (_, st) = w
        .get(&format!("/api/v1/tickets/requests/{request_id}"), KEY)
        .await;
    assert_eq!(
        (&st["status"], &st["code"]),
        (&json!("failed"), &json!("target_error")),
        "{st}"
    );
    dead_letters(&w.app, 1).await;

    // The operator puts the new token in the configuration (here: the old one
    // back); the caller sends the same request again and gets its ticket.
    assert!(w.sim.set_user_token("glpi", Some(&token)));
    let (status, second) = w.post(KEY, &body, Some("rot-1")).await;
    assert_eq!(status, StatusCode::CREATED, "{second}");
    assert_eq!(second["request_id"], json!(request_id), "the same request");
    let same: Vec<_> = w
        .sim
        .tickets()
        .into_iter()
        .filter(|t| t.name == "Token rotated")
        .collect();
    assert_eq!(same.len(), 1, "{same:?}");
    assert_eq!(second["ticket_id"].as_u64(), Some(same[0].id));

    // A proxy's HTML page (4xx) is the target's trouble too, not a refusal.
    w.sim
        .faults()
        .answer_next(1_000, 403, "text/html", "<h1>403 Forbidden</h1>");
    let (status, answer) = w
        .post(
            KEY,
            &json!({"requester": {"email": "maria@acme.com.br"}, "description": "Behind a proxy"}),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{answer}");
    assert_eq!(answer["error"]["code"], "target_error");
    w.sim.faults().clear();
    w.app.stop().await;
}

const DEADLINE_20S: Duration = Duration::from_secs(20);

/// Two instances behind a load balancer. A request fails on the first (the
/// target refused the bridge's login) and the caller's resend, after the
/// fix, reaches the second, which starts it again and creates the ticket.
/// The first instance, asked for the request's status, must say created:
/// what it remembered of the failure is no longer true.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_that_saw_a_request_fail_reports_it_created_elsewhere() {
    let w = world().await;
    let token = w.sim.user_token("glpi").unwrap();
    assert!(w.sim.set_user_token("glpi", Some("regenerated")));
    w.sim.expire_all_sessions();
    let body = json!({"requester": {"email": "maria@acme.com.br"}, "description": "Two instances"});
    let (status, first) = w.post(KEY, &body, Some("lb-1")).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{first}");
    let request_id = first["error"]["request_id"].as_i64().unwrap();
    dead_letters(&w.app, 1).await;

    assert!(w.sim.set_user_token("glpi", Some(&token)));
    let other = TestApp::spawn(w.config.clone(), w.app.store.clone())
        .await
        .unwrap();
    let resent = other
        .http
        .post(other.url("/api/v1/tickets"))
        .header("x-api-key", KEY)
        .header("idempotency-key", "lb-1")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resent.status(), StatusCode::CREATED);
    let resent: Value = resent.json().await.unwrap();
    assert_eq!(resent["request_id"], json!(request_id));

    // The answer comes before the ticket's link is stored: the first
    // instance may say "queued" for a moment, never "failed" again.
    let st = wait_for(
        "the first instance to report the ticket",
        DEADLINE_20S,
        || async {
            let (_, st) = w
                .get(&format!("/api/v1/tickets/requests/{request_id}"), KEY)
                .await;
            assert_ne!(st["status"], json!("failed"), "{st}");
            (st["status"] == json!("created")).then_some(st)
        },
    )
    .await
    .unwrap();
    assert_eq!(st["ticket_id"], resent["ticket_id"], "{st}");
    other.stop().await;
    w.app.stop().await;
}

#[tokio::test]
async fn what_failed_inside_the_help_desk_is_not_told_to_callers() {
    let w = world().await;
    // A proxy in front of GLPI answers its own page, naming an inside address.
    let page = "<html><body><h1>nginx 10.0.0.5</h1><p>403 Forbidden</p></body></html>";
    w.sim.faults().answer_next(1_000, 403, "text/html", page);
    let (status, answer) = w
        .post(
            KEY,
            &json!({"requester": {"email": "maria@acme.com.br"}, "description": "Behind nginx"}),
            Some("proxy-1"),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{answer}");
    assert_eq!(answer["error"]["code"], "target_error");
    assert!(!answer.to_string().contains("10.0.0.5"), "{answer}");
    assert!(!answer.to_string().contains("nginx"), "{answer}");
    let request_id = answer["error"]["request_id"].as_i64().unwrap();
    let (_, st) = w
        .get(&format!("/api/v1/tickets/requests/{request_id}"), KEY)
        .await;
    assert_eq!(st["code"], "target_error", "{st}");
    assert!(!st.to_string().contains("10.0.0.5"), "{st}");
    // The reads too.
    for path in [
        "/api/v1/tickets?requester_email=maria@acme.com.br",
        "/api/v1/tickets/1",
    ] {
        let (status, read) = w.get(path, KEY).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{path}: {read}");
        assert_eq!(read["error"]["code"], "target_error", "{path}: {read}");
        assert!(!read.to_string().contains("10.0.0.5"), "{path}: {read}");
    }
    w.sim.faults().clear();
    w.app.stop().await;
}

#[tokio::test]
async fn one_bad_request_answer_names_every_problem() {
    let w = world().await;
    let send = |path: &str, key: Option<&str>, idem: Option<String>, body: Value| {
        let mut req = w.app.http.post(w.app.url(path)).json(&body);
        if let Some(key) = key {
            req = req.header("x-api-key", key);
        }
        if let Some(idem) = idem {
            req = req.header("idempotency-key", idem);
        }
        async move {
            let resp = req.send().await.unwrap();
            (resp.status(), resp.json::<Value>().await.unwrap())
        }
    };
    let fields = |answer: &Value| -> Vec<String> {
        answer["error"]["fields"]
            .as_array()
            .unwrap_or(&Vec::new())
            .iter()
            .map(|f| f["field"].as_str().unwrap().to_owned())
            .collect()
    };
    let bad = json!({"requester": {"email": "maria@acme.com.br"}, "description": ""});
    let (status, answer) = send(
        "/api/v1/tickets?mode=x",
        Some(KEY),
        Some("k".repeat(300)),
        bad.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["error"]["code"], "invalid_request");
    let named = fields(&answer);
    for field in ["mode", "Idempotency-Key", "description"] {
        assert!(
            named.iter().any(|f| f == field),
            "{field} missing: {answer}"
        );
    }
    // A bad key alone is an invalid field like the others.
    let good = json!({"requester": {"email": "maria@acme.com.br"}, "description": "Fine"});
    let (status, answer) = send("/api/v1/tickets", Some(KEY), Some(" ".into()), good).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["error"]["code"], "invalid_request");
    assert_eq!(fields(&answer), ["Idempotency-Key"]);
    // An oversized attachment is named beside another invalid field.
    let (status, answer) = send(
        "/api/v1/tickets",
        Some(KEY),
        None,
        json!({"requester": {"email": "maria@acme.com.br"}, "description": "",
               "attachments": [{"filename": "a.bin", "mime": "application/octet-stream",
                                "content_base64": "QUFB".repeat(40)}]}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(
        fields(&answer),
        ["description", "attachments[0].content_base64"]
    );
    // The key is checked before the query: without one, 401 whatever the query.
    let (status, _) = send("/api/v1/tickets?mode=x&mode=y", None, None, bad).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // The list route names every bad parameter too, after the key.
    let resp = w
        .app
        .http
        .get(
            w.app
                .url("/api/v1/tickets?status=bogus&requester_email=nope&requester_phone=12"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let (status, answer) = w
        .get(
            "/api/v1/tickets?status=bogus&limit=0&requester_email=nope&requester_phone=12",
            KEY,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["error"]["code"], "invalid_request");
    assert_eq!(
        fields(&answer),
        ["status", "limit", "requester_email", "requester_phone"]
    );
    let (status, answer) = w
        .get(
            "/api/v1/tickets?requester_email=maria@acme.com.br&status=open&status=all",
            KEY,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(fields(&answer), ["status"]);
    w.app.stop().await;
}

/// The same body without an Idempotency-Key is a repeat within the source's
/// `dedupe_window` only: after it, the same words are a new ticket, and
/// repeats of that one (concurrent ones too) find it, not a third.
#[tokio::test]
async fn the_same_words_after_the_dedupe_window_are_a_new_ticket() {
    let sim = GlpiSim::start(SimConfig::default()).await.unwrap();
    let (app, _dir) = app_with(
        &sim,
        &format!(
            r#"
[sources.web]
kind = "intake"
target = "glpi"
api_keys = ["{KEY}"]
default_entity = 0
dedupe_window = "4s"
"#
        ),
    )
    .await;
    let body = json!({"requester": {"email": "maria@acme.com.br"},
        "description": "The printer on floor 2 is jammed"});
    let post = || async {
        let response = app
            .http
            .post(app.url("/api/v1/tickets"))
            .header("x-api-key", KEY)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let answer: Value = response.json().await.unwrap();
        assert!(status.is_success(), "{status}: {answer}");
        answer["ticket_id"].as_u64().unwrap()
    };
    let first = post().await;
    assert_eq!(post().await, first, "a retry within the window");
    assert_eq!(sim.tickets().len(), 1);

    // The window is long enough for a busy machine's retries to fall in it.
    tokio::time::sleep(Duration::from_millis(4_200)).await;
    let (a, b) = tokio::join!(post(), post());
    assert_eq!(a, b, "two repeats at once meet on one new request");
    assert_ne!(a, first, "after the window: a new ticket");
    assert_eq!(post().await, a, "a retry of the new one finds it");
    assert_eq!(sim.tickets().len(), 2);

    tokio::time::sleep(Duration::from_millis(4_200)).await;
    let third = post().await;
    assert!(third != first && third != a);
    assert_eq!(sim.tickets().len(), 3);
    app.stop().await;
}

/// An attachment up to `max_attachment_bytes` fits although its base64 is
/// larger than `server.body_limit` (1 MiB by default), on the shared route
/// and on the source's own; more than the source's limit is a 413 naming
/// `sources.<name>.body_limit`; without a key, 401 before the body is read.
#[tokio::test]
async fn an_attachment_of_the_documented_size_fits_in_a_ticket() {
    let sim = GlpiSim::start(SimConfig::default()).await.unwrap();
    let (app, _dir) = app_with(
        &sim,
        &format!(
            r#"
[sources.forms]
kind = "intake"
target = "glpi"
api_keys = ["{KEY}"]
default_entity = 0
max_attachment_bytes = 2097152

[sources.small]
kind = "intake"
target = "glpi"
api_keys = ["{OLD_KEY}"]
default_entity = 0
body_limit = 4096
"#
        ),
    )
    .await;
    let file: Vec<u8> = (0..2 * 1024 * 1024).map(|i| (i % 253) as u8).collect();
    let data = base64::engine::general_purpose::STANDARD.encode(&file);
    let ticket = |description: &str| {
        json!({"requester": {"email": "maria@acme.com.br"}, "description": description,
            "attachments": [{"filename": "scan.pdf", "mime": "application/pdf",
                "content_base64": data}]})
        .to_string()
    };
    let post = |path: &str, key: Option<&str>, body: String| {
        let mut request = app
            .http
            .post(app.url(path))
            .header("content-type", "application/json")
            .body(body);
        if let Some(key) = key {
            request = request.header("x-api-key", key);
        }
        request.send()
    };
    for (path, description) in [
        ("/api/v1/tickets", "Shared route"),
        ("/api/v1/sources/forms/tickets", "Own route"),
    ] {
        let response = post(path, Some(KEY), ticket(description)).await.unwrap();
        let status = response.status();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        assert_eq!(status, StatusCode::CREATED, "{path}: {answer}");
        let id = answer["ticket_id"].as_u64().unwrap();
        wait_for(
            "the file on the ticket",
            Duration::from_secs(20),
            || async {
                sim.documents()
                    .iter()
                    .any(|d| {
                        d.linked_to.contains(&("Ticket".to_owned(), id))
                            && d.content.as_deref() == Some(file.as_slice())
                    })
                    .then_some(())
            },
        )
        .await
        .unwrap();
    }

    // A source with a small limit of its own: 413 naming it.
    let response = post(
        "/api/v1/tickets",
        Some(OLD_KEY),
        json!({"requester": {"email": "maria@acme.com.br"}, "description": "x".repeat(5000)})
            .to_string(),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let answer: Value = response.json().await.unwrap();
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("sources.small.body_limit"), "{message}");

    // No key: 401 (the body is larger than server.body_limit).
    let response = post("/api/v1/tickets", None, ticket("No key"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(sim.tickets().len(), 2);
    app.stop().await;
}

#[tokio::test]
async fn a_slow_upload_still_gets_its_answer_before_the_server_times_out() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let sim = GlpiSim::start(SimConfig::default()).await.unwrap();
    // Scaled down: request_timeout 3 s, wait 2 s, an upload of 1.5 s.
    let (app, _dir) = app_with(
        &sim,
        &format!(
            r#"
[server]
request_timeout = "3s"

[engine]
max_attempts = 1000


[sources.web]
kind = "intake"
target = "glpi"
api_keys = ["{KEY}"]
default_entity = 0
wait = "2s"
"#
        ),
    )
    .await;
    // GLPI is down: the request waits its whole budget.
    sim.faults().fail_next(1_000, 503);
    let body = json!({"requester": {"email": "maria@acme.com.br"}, "description": "Slow upload"})
        .to_string();
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST /api/v1/tickets HTTP/1.1\r\nHost: {}\r\nX-API-Key: {KEY}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        app.addr,
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let started = std::time::Instant::now();
    let bytes = body.as_bytes();
    let pieces = 6;
    let step = bytes.len().div_ceil(pieces);
    for piece in bytes.chunks(step) {
        tokio::time::sleep(Duration::from_millis(250)).await;
        stream.write_all(piece).await.unwrap();
        stream.flush().await.unwrap();
    }
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    let status_line = answer.lines().next().unwrap_or_default().to_owned();
    assert!(
        status_line.contains(" 202 ") || status_line.contains(" 201 "),
        "{status_line} after {:?}: {answer}",
        started.elapsed()
    );
    assert!(answer.contains("request_id"), "{answer}");
    sim.faults().clear();
    app.stop().await;
}

#[tokio::test]
async fn the_key_is_checked_before_the_source_named_in_the_path() {
    let w = world().await;
    let body = json!({"requester": {"email": "maria@acme.com.br"}, "description": "x"});
    // Without a valid key nothing tells which sources exist.
    for path in [
        "/api/v1/sources/nope/tickets",
        "/api/v1/sources/web/tickets",
    ] {
        let (status, answer) = w.post_to(path, "no-such-key", &body, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}: {answer}");
    }
    // With one, an unknown source is a 404.
    let (status, answer) = w
        .post_to("/api/v1/sources/nope/tickets", KEY, &body, None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
    w.app.stop().await;
}

#[tokio::test]
async fn async_mode_calls_nothing_on_the_request_path_and_its_202_has_a_location() {
    let w = world().await;
    // GLPI answers slowly: a route that called it would take over a second.
    w.sim.faults().set_latency(Duration::from_millis(1_500));
    w.sim.reset_counters();
    let started = std::time::Instant::now();
    // An unknown CNPJ under policy reject: a waiting POST checks it on the
    // request path (404); an async one does not call GLPI and answers 202.
    let resp = w
        .app
        .http
        .post(w.app.url("/api/v1/tickets?mode=async"))
        .header("x-api-key", KEY)
        .json(&json!({"requester": {"email": "maria@acme.com.br"},
                      "organisation": {"tax_id": "11.111.111/0001-11"},
                      "description": "Async, unknown CNPJ"}))
        .send()
        .await
        .unwrap();
    let took = started.elapsed();
    let searches: u64 = w
        .sim
        .calls_by_endpoint()
        .iter()
        .filter(|(endpoint, _)| endpoint.contains("search"))
        .map(|(_, n)| n)
        .sum();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    assert!(took < Duration::from_secs(1), "{took:?}");
    assert_eq!(searches, 0, "{:?}", w.sim.calls_by_endpoint());
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    let answer: Value = resp.json().await.unwrap();
    assert_eq!(answer["status_url"], json!(location));
    assert!(location.ends_with(&format!(
        "/api/v1/tickets/requests/{}",
        answer["request_id"]
    )));
    // The job decides instead.
    w.sim.faults().clear();
    let id = answer["request_id"].as_i64().unwrap();
    let failed = wait_for("the job's verdict", Duration::from_secs(20), || async {
        let (_, st) = w.get(&format!("/api/v1/tickets/requests/{id}"), KEY).await;
        (st["status"] == "failed").then_some(st)
    })
    .await
    .unwrap();
    assert_eq!(failed["code"], "entity_not_found");
    w.app.stop().await;
}

#[tokio::test]
async fn documented_details_hold() {
    let w = world().await;
    // JSON with a charset is JSON.
    let resp = w
        .app
        .http
        .post(w.app.url("/api/v1/tickets"))
        .header("x-api-key", KEY)
        .header("content-type", "application/json; charset=utf-8")
        .body(
            json!({"requester": {"email": "maria@acme.com.br"}, "description": "With charset"})
                .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);

    // A phone that matches nobody, no email, creating requesters off.
    let (status, answer) = w
        .post(
            STRICT_KEY,
            &json!({"requester": {"phone": "+55 21 90000-0000"}, "description": "Who am I"}),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert_eq!(answer["error"]["code"], "requester_unknown");
    assert!(w.sim.tickets().iter().all(|t| t.name != "Who am I"));

    // More files than max_attachments (10 by default).
    let files: Vec<Value> = (0..11)
        .map(|i| json!({"filename": format!("f{i}.txt"), "mime": "text/plain", "content_base64": "aGk="}))
        .collect();
    let (status, answer) = w
        .post(
            KEY,
            &json!({"requester": {"email": "maria@acme.com.br"}, "description": "Many files",
                    "attachments": files}),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["error"]["fields"][0]["field"], "attachments");

    // /ping for the callers that expect it.
    let resp = w.app.http.get(w.app.url("/ping")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.text().await.unwrap(), "pong");
    w.app.stop().await;
}
