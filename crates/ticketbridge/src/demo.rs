//! `ticketbridge demo`: the GLPI simulator and the whole service on a
//! temporary SQLite store, a handful of intake requests, and what GLPI holds
//! afterwards. Finishes by itself.

use std::time::Duration;

use anyhow::Context;
use serde_json::{Value, json};
use sim::glpi::{ActorKind, GlpiSim, NewUser, SimConfig};
use ticketbridge::say;
use ticketbridge::testkit::{TestApp, wait_for};

const KEY: &str = "demo-key";

pub async fn run() -> anyhow::Result<()> {
    let sim = GlpiSim::start(SimConfig::default())
        .await
        .context("cannot start the GLPI simulator")?;
    let acme = sim.add_entity("ACME Ltda", 0, Some("12.345.678/0001-90"));
    sim.add_user(NewUser {
        login: "joao".into(),
        firstname: Some("João".into()),
        realname: Some("Lima".into()),
        mobile: Some("(11) 98765-4321".into()),
        entities_id: acme,
        ..NewUser::default()
    });
    sim.add_category("Printers");
    say!(
        "GLPI simulator at {} (entity ACME Ltda #{acme}, CNPJ 12.345.678/0001-90)",
        sim.base_url()
    );

    let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
    let store_url = format!(
        "sqlite://{}",
        dir.path().join("ticketbridge-demo.db").display()
    );
    let toml = format!(
        r#"
[store]
url = "{store_url}"

[targets.glpi]
kind = "glpi"
url = "{url}"
app_token = "${{APP}}"
user_token = "${{USER}}"
tax_id_search_option = 76666

[sources.web]
kind = "intake"
target = "glpi"
api_keys = ["{KEY}"]
default_entity = 0
wait = "5s"
"#,
        url = sim.base_url()
    );
    let env = vec![
        ("APP".to_string(), sim.app_token()),
        (
            "USER".to_string(),
            sim.user_token("glpi").unwrap_or_default(),
        ),
    ];
    let config = config::load_str(&toml, env).map_err(|e| anyhow::anyhow!("{e}"))?;
    let store = store::Store::connect(&store_url).await?;
    let app = TestApp::spawn(config, store).await?;
    say!(
        "ticketbridge at {} (store {store_url}, a temporary file removed at the end)\n",
        app.base_url
    );
    say!("== Intake API → GLPI (web forms, voice agents, n8n)\n");

    let send = |label: &'static str, path: &'static str, body: Value, key: Option<&'static str>| {
        let request = app
            .http
            .post(app.url(path))
            .header("x-api-key", KEY)
            .json(&body);
        let request = match key {
            Some(k) => request.header("idempotency-key", k),
            None => request,
        };
        async move {
            let response = request.send().await?;
            let status = response.status();
            // The header that tells a repeat from a first answer.
            let replayed = response
                .headers()
                .get("idempotent-replayed")
                .map_or("", |_| " (Idempotent-Replayed: true)");
            let answer: Value = response.json().await.unwrap_or(Value::Null);
            say!("{label}\n  → HTTP {}{replayed} {answer}\n", status.as_u16());
            anyhow::Ok(answer)
        }
    };

    send(
        "1. A web form with a CNPJ, a category by name and an extra field",
        "/api/v1/tickets",
        json!({"requester": {"name": "Maria Souza", "email": "maria@acme.com.br"},
               "organisation": {"tax_id": "12.345.678/0001-90"},
               "description": "The printer on floor 2 is jammed.\nIt shows E-203.",
               "category": "Printers", "urgency": "high",
               "extra": {"AnyDesk ID": "123 456 789"}}),
        None,
    )
    .await?;
    send(
        "2. A voice agent with the phone of an existing user and the company's CNPJ (digits only)",
        "/api/v1/tickets",
        json!({"requester": {"phone": "+55 11 98765-4321"}, "description": "VPN drops every hour",
               "organisation": {"tax_id": "12345678000190"}, "urgency": 4}),
        Some("call-0001"),
    )
    .await?;
    send(
        "3. The same call again (same Idempotency-Key): same ticket, no second one",
        "/api/v1/tickets",
        json!({"requester": {"phone": "+55 11 98765-4321"}, "description": "VPN drops every hour",
               "organisation": {"tax_id": "12345678000190"}, "urgency": 4}),
        Some("call-0001"),
    )
    .await?;
    send(
        "4. A bad request: every invalid field is listed",
        "/api/v1/tickets",
        json!({"requester": {"email": "not-an-email", "phone": "12"}, "urgency": 9, "type": "problem"}),
        None,
    )
    .await?;
    let queued = send(
        "5. An automation tool in async mode: 202 at once, then the status URL",
        "/api/v1/tickets?mode=async",
        json!({"requester": {"email": "n8n@acme.com.br", "name": "n8n"}, "description": "Disk 90% full on srv-01",
               "type": "incident"}),
        None,
    )
    .await?;
    if let Some(id) = queued["request_id"].as_i64() {
        let status = wait_for("the async request", Duration::from_secs(20), || async {
            let response = app
                .http
                .get(app.url(&format!("/api/v1/tickets/requests/{id}")))
                .header("x-api-key", KEY)
                .send()
                .await
                .ok()?;
            let body: Value = response.json().await.ok()?;
            (body["status"] != "queued").then_some(body)
        })
        .await?;
        say!("   GET /api/v1/tickets/requests/{id}\n  → {status}\n");
    }

    say!("Tickets in GLPI:");
    say!(
        "{:>4}  {:<40} {:<12} {:<28} STATUS",
        "ID",
        "TITLE",
        "ENTITY",
        "REQUESTER"
    );
    let users = sim.users();
    let entities = sim.entities();
    for t in sim.tickets() {
        let entity = entities
            .iter()
            .find(|e| e.id == t.entities_id)
            .map_or_else(|| t.entities_id.to_string(), |e| e.name.clone());
        let requester = t
            .actors
            .iter()
            .filter(|a| a.kind == ActorKind::Requester)
            .map(|a| {
                if a.users_id == 0 {
                    a.alternative_email.clone()
                } else {
                    users
                        .iter()
                        .find(|u| u.id == a.users_id)
                        .map_or_else(|| format!("user {}", a.users_id), |u| u.login.clone())
                }
            })
            .collect::<Vec<_>>()
            .join(", ");
        let status = match t.status {
            1 => "new",
            2 => "assigned",
            3 => "planned",
            4 => "waiting",
            5 => "solved",
            6 => "closed",
            _ => "?",
        };
        let title: String = t.name.chars().take(40).collect();
        say!(
            "{:>4}  {:<40} {:<12} {:<28} {status}",
            t.id,
            title,
            entity,
            requester
        );
    }
    app.stop().await;
    sim.shutdown().await;
    say!();
    ticketbridge::demo_chatwoot::demo_chatwoot().await?;
    Ok(())
}
