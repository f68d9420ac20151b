//! Behaviour of the simulator beyond the transcripts: fault injection, counters, seeding
//! helpers, typed state, and the ticket lifecycle rules of spec sections 8–10.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Value, json};
use sim_glpi::{ActorKind, GlpiSim, GlpiVersion, NewUser, RunningSim, SimConfig};
use std::time::Duration;

struct Api {
    http: reqwest::Client,
    base: String,
    app: String,
    session: String,
}

impl Api {
    async fn login(sim: &RunningSim, login: &str) -> Api {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let v: Value = http
            .get(format!("{}/initSession", sim.base_url()))
            .header("App-Token", sim.app_token())
            .header(
                "Authorization",
                format!("user_token {}", sim.user_token(login).unwrap()),
            )
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        Api {
            http,
            base: sim.base_url(),
            app: sim.app_token(),
            session: v["session_token"].as_str().unwrap().to_string(),
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut rb = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("App-Token", &self.app)
            .header("Session-Token", &self.session);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let r = rb.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }
}

#[tokio::test]
async fn injected_failures_and_drops_then_recovery() {
    let sim = GlpiSim::start(SimConfig::default()).await.unwrap();
    let api = Api::login(&sim, "glpi").await;
    sim.faults().fail_next(2, 503);
    assert_eq!(api.get("/getMyProfiles").await.0, 503);
    assert_eq!(api.get("/getMyProfiles").await.0, 503);
    assert_eq!(api.get("/getMyProfiles").await.0, 200);

    sim.faults().drop_next(1);
    let dropped = api
        .http
        .get(format!("{}/getMyProfiles", api.base))
        .header("App-Token", &api.app)
        .header("Session-Token", &api.session)
        .send()
        .await;
    assert!(
        dropped.is_err(),
        "a dropped connection gives no HTTP answer"
    );
    assert_eq!(api.get("/getMyProfiles").await.0, 200);
    assert_eq!(sim.calls_to("GET /getMyProfiles"), 5);
    sim.shutdown().await;
}

#[tokio::test]
async fn sessions_expire_after_n_calls_and_counters_count() {
    let sim = GlpiSim::start(SimConfig::default()).await.unwrap();
    sim.faults().expire_sessions_after_calls(2);
    let api = Api::login(&sim, "glpi").await;
    assert_eq!(api.get("/getActiveEntities").await.0, 200);
    assert_eq!(api.get("/getActiveEntities").await.0, 200);
    let (status, body) = api.get("/getActiveEntities").await;
    assert_eq!(status, 401);
    assert_eq!(
        body,
        json!(["ERROR_SESSION_TOKEN_INVALID", "session_token seems invalid"])
    );
    let again = Api::login(&sim, "glpi").await;
    assert_eq!(again.get("/getActiveEntities").await.0, 200);
    assert_eq!(sim.sessions_opened(), 2);
    assert_eq!(sim.calls_to("GET /initSession"), 2);
    sim.faults().clear();
    sim.expire_all_sessions();
    assert_eq!(again.get("/getActiveEntities").await.0, 401);
    sim.shutdown().await;
}

#[tokio::test]
async fn seeded_entity_cnpj_and_user_are_searchable() {
    let sim = GlpiSim::start(SimConfig::default()).await.unwrap();
    let acme = sim.add_entity("ACME Ltda", 0, Some("12.345.678/0001-90"));
    let user = sim.add_user(NewUser {
        emails: vec!["ana@acme.example".into()],
        mobile: Some("+55 11 91234-5678".into()),
        entities_id: acme,
        ..NewUser::new("ana")
    });
    let api = Api::login(&sim, "glpi").await;
    let (_, found) = api.get("/search/Entity?criteria[0][field]=76666&criteria[0][searchtype]=contains&criteria[0][value]=12.345.678/0001-90&forcedisplay[0]=2").await;
    assert_eq!(found["data"][0]["2"], json!(acme));
    let (_, digits) = api.get("/search/Entity?criteria[0][field]=76666&criteria[0][searchtype]=contains&criteria[0][value]=12345678000190").await;
    assert_eq!(digits["totalcount"], json!(0));
    assert!(digits.get("data").is_none());
    let (_, by_mail) = api.get("/search/User?criteria[0][field]=5&criteria[0][searchtype]=contains&criteria[0][value]=^ana@acme.example$&forcedisplay[0]=2").await;
    assert_eq!(by_mail["data"][0]["2"], json!(user));
    assert_eq!(
        sim.user(user).unwrap().emails,
        vec!["ana@acme.example".to_string()]
    );
    assert_eq!(
        sim.entities()
            .iter()
            .find(|e| e.id == acme)
            .unwrap()
            .cnpj
            .as_deref(),
        Some("12.345.678/0001-90")
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn ticket_lifecycle_and_date_mod_cursor() {
    let sim = GlpiSim::start(SimConfig::default()).await.unwrap();
    let requester = sim.add_user(NewUser {
        password: Some("pw-123456".into()),
        ..NewUser::new("maria")
    });
    let api = Api::login(&sim, "glpi").await;
    let (status, created) = api
        .post(
            "/Ticket",
            json!({"input": {"name": "Printer", "content": "<p>a & b</p>", "_users_id_requester": [requester, 0],
                "_users_id_requester_notif": {"use_notification": [1, 1], "alternative_email": ["", "x@example.org"]}}}),
        )
        .await;
    assert_eq!(status, 201);
    let id = created["id"].as_u64().unwrap();
    let t = sim.ticket(id).unwrap();
    assert_eq!(t.content, "<p>a & b</p>");
    assert_eq!(t.raw["content"], json!("&#60;p&#62;a &#38; b&#60;/p&#62;"));
    assert_eq!(t.actors.len(), 2);
    assert!(t.actors.iter().any(|a| a.kind == ActorKind::Requester
        && a.users_id == 0
        && a.alternative_email == "x@example.org"));

    let cursor = sim.ticket(id).unwrap().date_mod;
    assert!(sim.add_solution_as(id, 2, "fixed").is_some());
    assert_eq!(sim.ticket(id).unwrap().status, 5);
    // A requester replying in GLPI reopens the solved ticket (no assignee -> 1).
    assert!(
        sim.add_followup_as(id, requester, "still broken", false)
            .is_some()
    );
    let t = sim.ticket(id).unwrap();
    assert_eq!(t.status, 1);
    assert_eq!(sim.solutions(id)[0].status, 4);
    assert_eq!(sim.followups(id).len(), 1);
    assert!(t.date_mod >= cursor);
    let (_, found) = api.get("/search/Ticket?criteria[0][field]=19&criteria[0][searchtype]=morethan&criteria[0][value]=2000-01-01%2000:00:00&forcedisplay[0]=2").await;
    assert_eq!(found["totalcount"], json!(1));
    assert!(sim.set_ticket_status(id, 6));
    assert!(sim.ticket(id).unwrap().closedate.is_some());
    assert!(sim.calls_by_endpoint().contains_key("POST /Ticket"));
    sim.shutdown().await;
}

#[tokio::test]
async fn document_upload_and_download() {
    let sim = GlpiSim::start(SimConfig::default()).await.unwrap();
    let api = Api::login(&sim, "glpi").await;
    let (_, t) = api
        .post(
            "/Ticket",
            json!({"input": {"name": "with file", "content": "x"}}),
        )
        .await;
    let ticket = t["id"].as_u64().unwrap();
    let form = reqwest::multipart::Form::new()
        .text("uploadManifest", json!({"input": {"name": "log", "_filename": ["a.txt"], "itemtype": "Ticket", "items_id": ticket}}).to_string())
        .part("filename[0]", reqwest::multipart::Part::bytes(b"hello".to_vec()).file_name("a.txt").mime_str("text/plain").unwrap());
    let r = api
        .http
        .post(format!("{}/Document", api.base))
        .header("App-Token", &api.app)
        .header("Session-Token", &api.session)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let doc = sim.documents().pop().unwrap();
    assert_eq!(doc.content.as_deref(), Some(&b"hello"[..]));
    assert_eq!(doc.linked_to, vec![("Ticket".to_string(), ticket)]);
    let bytes = api
        .http
        .get(format!("{}/Document/{}", api.base, doc.id))
        .header("App-Token", &api.app)
        .header("Session-Token", &api.session)
        .header("Accept", "application/octet-stream")
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&bytes[..], b"hello");
    sim.shutdown().await;
}

#[tokio::test]
async fn glpi11_serves_the_v1_alias_and_glpi10_does_not() {
    let v11 = GlpiSim::start(SimConfig::with_mode(GlpiVersion::V11))
        .await
        .unwrap();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let r = http
        .get(format!("{}/initSession", v11.api_v1_url()))
        .header("App-Token", v11.app_token())
        .header(
            "Authorization",
            format!("user_token {}", v11.user_token("glpi").unwrap()),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let token: Value = r.json().await.unwrap();
    assert!(token["session_token"].as_str().unwrap().len() > 100);
    let v10 = GlpiSim::start(SimConfig::default()).await.unwrap();
    let r = http
        .get(format!("{}/initSession", v10.api_v1_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    v11.shutdown().await;
    v10.shutdown().await;
}
