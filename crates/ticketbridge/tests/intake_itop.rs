//! End-to-end tests of the intake API on an iTop target: real HTTP into the
//! service, real REST calls from the service into the iTop simulator
//! (`flows::itop::ItopHelpdesk` behind the same Helpdesk interface as GLPI).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use reqwest::StatusCode;
use serde_json::{Value, json};
use sim::itop::{ItopSim, ItopSimConfig, RunningItop};
use ticketbridge::testkit::TestApp;

const KEY: &str = "itop-intake-key";
const CNPJ: &str = "12.345.678/0001-90";

struct World {
    itop: RunningItop,
    app: TestApp,
    /// The organisation with the tax id.
    acme: u64,
    /// The source's default organisation.
    fallback: u64,
    /// A person found by email.
    maria: u64,
    /// A person found by phone.
    joao: u64,
    _dir: Option<tempfile::TempDir>,
}

async fn world() -> World {
    let (store, dir) = store::testing::fresh_sqlite().await;
    world_on(store, Some(dir)).await
}

async fn world_on(store: store::Store, dir: Option<tempfile::TempDir>) -> World {
    let itop = ItopSim::start(ItopSimConfig {
        demo_data: false,
        ..ItopSimConfig::default()
    })
    .await
    .unwrap();
    let acme = itop
        .seed("Organization", json!({"name": "ACME Ltda", "code": CNPJ}))
        .unwrap();
    let fallback = itop.seed_organization("Walk-in customers").unwrap();
    let maria = itop
        .seed_person("Maria", "Souza", acme, "maria@acme.com.br", "")
        .unwrap();
    let joao = itop
        .seed_person("João", "Lima", acme, "", "+55 11 98765-4321")
        .unwrap();
    let toml = format!(
        r#"
[targets.itop]
kind = "itop"
url = "{url}"
user = "{user}"
password = "${{ITOP_PASSWORD}}"
timeout = "5s"
tax_id_field = "code"

[sources.web]
kind = "intake"
target = "itop"
api_keys = ["{KEY}"]
default_entity = {fallback}
default_country = "BR"
wait = "8s"
"#,
        url = itop.base_url(),
        user = itop.rest_user(),
    );
    let env = vec![("ITOP_PASSWORD".to_string(), itop.rest_password())];
    let config = config::load_str(&toml, env).unwrap();
    let app = TestApp::spawn(config, store).await.unwrap();
    World {
        itop,
        app,
        acme,
        fallback,
        maria,
        joao,
        _dir: dir,
    }
}

impl World {
    async fn post(&self, body: &Value, idem: Option<&str>) -> (StatusCode, Value) {
        let mut req = self
            .app
            .http
            .post(self.app.url("/api/v1/tickets"))
            .header("x-api-key", KEY)
            .json(body);
        if let Some(k) = idem {
            req = req.header("idempotency-key", k);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let resp = self
            .app
            .http
            .get(self.app.url(path))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// The UserRequest the answer names, as iTop holds it.
    fn user_request(&self, answer: &Value) -> Value {
        let id = answer["ticket_id"].as_u64().expect("ticket_id in answer");
        self.itop
            .object("UserRequest", id)
            .expect("the UserRequest exists in iTop")
    }
}

fn id_of(value: &Value) -> u64 {
    match value {
        Value::String(s) => s.parse().unwrap(),
        other => other.as_u64().unwrap(),
    }
}

#[tokio::test]
async fn a_user_request_is_created_for_a_known_caller_and_tax_id() {
    let w = world().await;
    let (status, answer) = w
        .post(
            &json!({
                "requester": {"name": "Maria Souza", "email": "Maria@ACME.com.br"},
                "organisation": {"tax_id": "12345678000190"},
                "title": "Printer jammed",
                "description": "Printer on floor 2 is jammed\nError E-203",
                "extra": {"AnyDesk ID": "123 456 789"}
            }),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let ticket = w.user_request(&answer);
    assert_eq!(ticket["title"], "Printer jammed");
    let description = ticket["description"].as_str().unwrap();
    assert!(description.contains("Error E-203"), "{description}");
    assert!(description.contains("123 456 789"), "{description}");
    assert!(
        description.contains("ticketbridge-ref intake-"),
        "{description}"
    );
    assert_eq!(id_of(&ticket["caller_id"]), w.maria);
    assert_eq!(id_of(&ticket["org_id"]), w.acme);
    assert!(
        answer["url"]
            .as_str()
            .unwrap()
            .contains("class=UserRequest"),
        "{answer}"
    );
    // No second person was created for Maria.
    assert_eq!(w.itop.find("Person", "email", "maria@acme.com.br").len(), 1);
    w.app.stop().await;
}

#[tokio::test]
async fn a_caller_is_found_by_phone_and_the_default_organisation_is_used() {
    let w = world().await;
    let (status, answer) = w
        .post(
            &json!({
                "requester": {"phone": "(11) 98765-4321"},
                "description": "VPN drops every hour"
            }),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let ticket = w.user_request(&answer);
    assert_eq!(id_of(&ticket["caller_id"]), w.joao);
    assert_eq!(id_of(&ticket["org_id"]), w.fallback);
    assert_eq!(ticket["title"], "VPN drops every hour");
    w.app.stop().await;
}

/// A Person in ACME with these fields besides its names.
fn person(w: &World, first: &str, last: &str, fields: Value) -> u64 {
    let mut all = json!({"first_name": first, "name": last, "org_id": w.acme});
    if let (Some(all), Value::Object(fields)) = (all.as_object_mut(), fields) {
        all.extend(fields);
    }
    w.itop.seed("Person", all).unwrap()
}

/// A Person whose mobile was stored without its area code and ninth digit
/// matches the end of every number with those digits: it must not take the
/// request of the Person who has the whole number, though it is older.
#[tokio::test]
async fn the_whole_number_wins_over_an_older_person_with_part_of_it() {
    let w = world().await;
    let partial = person(&w, "Sem", "DDD", json!({"phone": "8877-6655"}));
    let whole = person(
        &w,
        "Número",
        "Completo",
        json!({"mobile_phone": "+55 31 98877-6655"}),
    );
    assert!(partial < whole);
    let (status, answer) = w
        .post(
            &json!({"requester": {"phone": "+5531988776655"}, "description": "Sem sinal"}),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(id_of(&w.user_request(&answer)["caller_id"]), whole);
    w.app.stop().await;
}

/// Only partial numbers, on two Persons: which one asks cannot be told, so
/// neither is the caller; a new Person is (create_requesters' default).
#[tokio::test]
async fn a_phone_that_only_partly_matches_two_persons_names_neither() {
    let w = world().await;
    let first = person(&w, "Parcial", "Um", json!({"phone": "98877-6655"}));
    let second = person(
        &w,
        "Parcial",
        "Dois",
        json!({"mobile_phone": "9 8877 6655"}),
    );
    let before = w.itop.ids("Person").len();
    let (status, answer) = w
        .post(
            &json!({"requester": {"name": "Rita Alves", "phone": "+55 31 98877-6655"},
                    "description": "Sem sinal"}),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let caller = id_of(&w.user_request(&answer)["caller_id"]);
    assert!(![first, second].contains(&caller), "{caller} is a guess");
    assert_eq!(w.itop.ids("Person").len(), before + 1);
    assert_eq!(w.itop.object("Person", caller).unwrap()["name"], "Alves");
    w.app.stop().await;
}

/// A Person made inactive in iTop is never the caller, though its phone (or
/// email) is the caller's exactly: a new Person is.
#[tokio::test]
async fn an_inactive_person_is_never_the_caller() {
    let w = world().await;
    let gone = person(
        &w,
        "Desativado",
        "Antigo",
        json!({"email": "antigo@acme.com.br", "mobile_phone": "+55 31 98877-6655",
               "status": "inactive"}),
    );
    let (status, answer) = w
        .post(
            &json!({"requester": {"name": "Rita Alves", "phone": "+5531988776655"},
                    "description": "Sem sinal"}),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let caller = id_of(&w.user_request(&answer)["caller_id"]);
    assert_ne!(caller, gone);
    assert_eq!(w.itop.object("Person", caller).unwrap()["name"], "Alves");

    // By email: the inactive Person is skipped too, and a new one made.
    let (status, answer) = w
        .post(
            &json!({"requester": {"name": "Novo Antigo", "email": "antigo@acme.com.br"},
                    "description": "Sem rede"}),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let caller = id_of(&w.user_request(&answer)["caller_id"]);
    assert_ne!(caller, gone);
    assert_eq!(
        w.itop.find("Person", "email", "antigo@acme.com.br").len(),
        2,
        "a new, active Person"
    );
    w.app.stop().await;
}

#[tokio::test]
async fn an_unknown_caller_is_created_in_the_organisation() {
    let w = world().await;
    let before = w.itop.ids("Person").len();
    let (status, answer) = w
        .post(
            &json!({
                "requester": {"name": "Ana Paula Costa", "email": "ana@acme.com.br", "phone": "11 91234-5678"},
                "organisation": {"tax_id": CNPJ},
                "description": "New laptop needed"
            }),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(w.itop.ids("Person").len(), before + 1);
    let people = w.itop.find("Person", "email", "ana@acme.com.br");
    assert_eq!(people.len(), 1);
    let ana = w.itop.object("Person", people[0]).unwrap();
    assert_eq!(id_of(&ana["org_id"]), w.acme);
    assert_eq!(ana["first_name"], "Ana");
    let ticket = w.user_request(&answer);
    assert_eq!(id_of(&ticket["caller_id"]), people[0]);
    assert_eq!(id_of(&ticket["org_id"]), w.acme);

    // The same caller again: found, not created twice.
    let (status, _) = w
        .post(
            &json!({"requester": {"email": "ana@acme.com.br"}, "description": "And a mouse"}),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(w.itop.find("Person", "email", "ana@acme.com.br").len(), 1);
    w.app.stop().await;
}

#[tokio::test]
async fn an_unknown_tax_id_is_rejected_before_anything_is_created() {
    let w = world().await;
    let (status, answer) = w
        .post(
            &json!({"requester": {"email": "maria@acme.com.br"},
                    "organisation": {"tax_id": "99.999.999/0001-99"},
                    "description": "Nobody has this tax id"}),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
    assert_eq!(answer["error"]["code"], "entity_not_found");
    assert!(w.itop.ids("UserRequest").is_empty());
    w.app.stop().await;
}

#[tokio::test]
async fn a_repeat_returns_the_same_user_request() {
    let w = world().await;
    let body = json!({"requester": {"email": "maria@acme.com.br"}, "description": "Once only"});
    let (s1, a1) = w.post(&body, Some("itop-once")).await;
    let (s2, a2) = w.post(&body, Some("itop-once")).await;
    assert_eq!(s1, StatusCode::CREATED, "{a1}");
    assert_eq!(s2, StatusCode::CREATED, "{a2}");
    assert_eq!(a1["ticket_id"], a2["ticket_id"]);
    assert_eq!(w.itop.ids("UserRequest").len(), 1);
    w.app.stop().await;
}

#[tokio::test]
async fn the_read_endpoints_list_the_callers_user_requests() {
    let w = world().await;
    let (_, first) = w
        .post(
            &json!({"requester": {"email": "maria@acme.com.br"}, "title": "First", "description": "One"}),
            None,
        )
        .await;
    let (_, second) = w
        .post(
            &json!({"requester": {"email": "maria@acme.com.br"}, "title": "Second", "description": "Two"}),
            None,
        )
        .await;
    // Someone else's ticket is not listed.
    let (_, other) = w
        .post(
            &json!({"requester": {"phone": "+5511987654321"}, "title": "Joao's", "description": "Three"}),
            None,
        )
        .await;

    let (status, list) = w
        .get("/api/v1/tickets?requester_email=maria@acme.com.br&status=all")
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let ids: Vec<i64> = list["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_i64().unwrap())
        .collect();
    assert_eq!(
        ids,
        vec![
            second["ticket_id"].as_i64().unwrap(),
            first["ticket_id"].as_i64().unwrap()
        ]
    );
    assert_eq!(list["tickets"][0]["title"], "Second");

    let (status, list) = w
        .get("/api/v1/tickets?requester_phone=(11)%2098765-4321")
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["tickets"].as_array().unwrap().len(), 1);
    assert_eq!(list["tickets"][0]["id"], other["ticket_id"]);

    let id = first["ticket_id"].as_i64().unwrap();
    let (status, one) = w.get(&format!("/api/v1/tickets/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{one}");
    assert_eq!(one["id"], id);
    assert_eq!(one["title"], "First");
    w.app.stop().await;
}

#[tokio::test]
async fn user_requests_are_created_on_postgres_too() {
    let Some(store) = store::testing::fresh_postgres().await else {
        return;
    };
    let w = world_on(store, None).await;
    let body = json!({"requester": {"email": "maria@acme.com.br"}, "organisation": {"tax_id": CNPJ},
                      "description": "On PostgreSQL"});
    let (s1, a1) = w.post(&body, Some("pg-itop-1")).await;
    let (s2, a2) = w.post(&body, Some("pg-itop-1")).await;
    assert_eq!(s1, StatusCode::CREATED, "{a1}");
    assert_eq!(s2, StatusCode::CREATED, "{a2}");
    assert_eq!(a1["ticket_id"], a2["ticket_id"]);
    let ticket = w.user_request(&a1);
    assert_eq!(id_of(&ticket["org_id"]), w.acme);
    assert_eq!(w.itop.ids("UserRequest").len(), 1);
    w.app.stop().await;
}

/// iTop users know a ticket by its `ref`, which is not its id (a failed
/// create consumes a ref number): the answer's message names the ref, and
/// the answer and the request status carry it next to the numeric id.
#[tokio::test]
async fn the_answer_names_the_ticket_by_its_itop_ref() {
    let w = world().await;
    // A create iTop refuses (no description) consumes R-000001.
    let refused = w
        .itop
        .perform(json!({"operation": "core/create", "comment": "c", "class": "UserRequest",
            "output_fields": "id", "fields": {"org_id": w.acme, "caller_id": w.maria, "title": "x"}}))
        .await;
    assert_eq!(refused["code"], json!(100), "{refused}");
    let (status, answer) = w
        .post(
            &json!({
                "requester": {"name": "Maria Souza", "email": "maria@acme.com.br"},
                "description": "VPN down"
            }),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let ticket = w.user_request(&answer);
    let reference = ticket["ref"].as_str().unwrap().to_string();
    assert_eq!(reference, "R-000002");
    assert_ne!(reference, format!("R-{:06}", id_of(&ticket["id"])));
    assert_eq!(answer["ticket_ref"], json!(reference), "{answer}");
    assert_eq!(
        answer["message"],
        json!(format!("Ticket {reference} created"))
    );
    let request = answer["request_id"].as_i64().unwrap();
    let (status, seen) = w.get(&format!("/api/v1/tickets/requests/{request}")).await;
    assert_eq!(status, StatusCode::OK, "{seen}");
    assert_eq!(seen["ticket_ref"], json!(reference), "{seen}");
    assert_eq!(
        seen["message"],
        json!(format!("Ticket {reference} created"))
    );
}

/// Two requests of one new caller at the same moment (two problems, two
/// tickets) while iTop is slow: both jobs find nobody, yet one Person is
/// created (iTop Persons have no unique key). The job that finds the
/// creation under way tries again a moment later and finds the Person; both
/// callers still get their ticket (201), both naming that Person.
async fn a_new_caller_asking_twice_at_once_becomes_one_person(w: &World) {
    w.itop.set_latency(std::time::Duration::from_millis(300));
    let requester = json!({"name": "Bruno Dias", "email": "bruno@acme.com.br"});
    let first = json!({"requester": requester, "organisation": {"tax_id": CNPJ},
                       "description": "Monitor flickers"});
    let second = json!({"requester": requester, "organisation": {"tax_id": CNPJ},
                        "description": "Keyboard misses keys"});
    let ((s1, a1), (s2, a2)) = tokio::join!(w.post(&first, None), w.post(&second, None));
    assert_eq!(s1, StatusCode::CREATED, "{a1}");
    assert_eq!(s2, StatusCode::CREATED, "{a2}");
    assert_ne!(a1["ticket_id"], a2["ticket_id"]);
    let people = w.itop.find("Person", "email", "bruno@acme.com.br");
    assert_eq!(people.len(), 1, "one Person per caller: {people:?}");
    for answer in [&a1, &a2] {
        let ticket = w.user_request(answer);
        assert_eq!(id_of(&ticket["caller_id"]), people[0], "{ticket}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_caller_asking_twice_at_once_is_created_once() {
    let w = world().await;
    a_new_caller_asking_twice_at_once_becomes_one_person(&w).await;
    w.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_caller_asking_twice_at_once_is_created_once_on_postgres() {
    let Some(store) = store::testing::fresh_postgres().await else {
        return;
    };
    let w = world_on(store, None).await;
    a_new_caller_asking_twice_at_once_becomes_one_person(&w).await;
    w.app.stop().await;
}
