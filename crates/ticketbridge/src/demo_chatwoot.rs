//! The Chatwoot part of `ticketbridge demo`: a conversation flowing both
//! ways between the Chatwoot simulator and the GLPI simulator, through the
//! whole service running in process on loopback.

use std::time::Duration;

use anyhow::Context;
use sim::chatwoot::{ChatwootSim, NewContact};
use sim::glpi::{GlpiSim, NewUser, SimConfig};

use crate::testkit::{TestApp, wait_for};

const SECRET: &str = "demo-webhook-secret";
const AGENT: &str = "carlos.lima@acme.example";
const DEADLINE: Duration = Duration::from_secs(20);

/// Runs the demo on a throw-away SQLite store and prints each step.
pub async fn demo_chatwoot() -> anyhow::Result<()> {
    let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
    let store_url = format!("sqlite://{}", dir.path().join("demo.db").display());
    let store = store::Store::connect(&store_url)
        .await
        .context("cannot open the demo store")?;
    let glpi = GlpiSim::start(SimConfig::default())
        .await
        .context("cannot start the GLPI simulator")?;
    let entity = glpi.add_entity("ACME Suporte", 0, None);
    glpi.add_user(NewUser {
        login: "carlos".into(),
        firstname: Some("Carlos".into()),
        realname: Some("Lima".into()),
        emails: vec![AGENT.into()],
        entities_id: entity,
        ..NewUser::default()
    });
    let tech = glpi
        .user_by_login("tech")
        .context("the GLPI simulator has no tech user")?
        .id;
    let chatwoot = ChatwootSim::start(sim::chatwoot::SimConfig::default())
        .await
        .context("cannot start the Chatwoot simulator")?;
    let toml = format!(
        r#"
[targets.glpi]
kind = "glpi"
url = "{glpi_url}"
app_token = "${{APP}}"
user_token = "${{USER}}"

[sources.chatwoot]
kind = "chatwoot"
target = "glpi"
url = "{cw_url}"
api_access_token = "${{CW_TOKEN}}"
account_id = 1
webhook_secret = "${{CW_SECRET}}"
entity = {entity}
private_note_with_link = true
poll_interval = "300ms"
"#,
        glpi_url = glpi.base_url(),
        cw_url = chatwoot.base_url(),
    );
    let env = vec![
        ("APP".to_owned(), glpi.app_token()),
        (
            "USER".to_owned(),
            glpi.user_token("glpi").unwrap_or_default(),
        ),
        ("CW_TOKEN".to_owned(), chatwoot.api_token()),
        ("CW_SECRET".to_owned(), SECRET.to_owned()),
    ];
    let config = config::load_str(&toml, env).map_err(|e| anyhow::anyhow!("{e}"))?;
    let app = TestApp::spawn(config, store).await?;
    chatwoot.webhook_target(app.url("/hooks/chatwoot/chatwoot"), Some(SECRET.to_owned()));
    crate::say!("== Chatwoot ↔ GLPI");
    crate::say!(
        "   Chatwoot simulator {}  →  ticketbridge {}  →  a fresh GLPI simulator {}",
        chatwoot.base_url(),
        app.base_url,
        glpi.base_url()
    );

    let maria = chatwoot
        .add_contact(NewContact {
            name: "Maria Souza".into(),
            email: Some("maria@cliente.com.br".into()),
            phone_number: Some("+5511987654321".into()),
            identifier: None,
        })
        .await;
    let conversation = chatwoot
        .customer_starts_conversation(
            maria,
            chatwoot.default_inbox(),
            "A impressora do financeiro não imprime desde ontem",
        )
        .await?
        .conversation_id;
    crate::say!("   customer writes in conversation #{conversation}");
    let ticket = wait_for("the ticket", DEADLINE, || async {
        chatwoot
            .conversation(conversation)?
            .custom_attributes
            .get("glpi_ticket_id")?
            .as_u64()
    })
    .await?;
    let title = glpi.ticket(ticket).map(|t| t.name).unwrap_or_default();
    crate::say!("   → GLPI ticket #{ticket} \"{title}\" (id mirrored into the conversation)");

    chatwoot
        .agent_replies(conversation, AGENT, "Vou verificar o toner agora.")
        .await?;
    wait_for("the agent's followup", DEADLINE, || async {
        (!glpi.followups(ticket).is_empty()).then_some(())
    })
    .await?;
    crate::say!("   agent replies in Chatwoot → followup by GLPI user carlos");

    glpi.add_followup_as(ticket, tech, "Toner trocado, pode testar?", false)
        .context("cannot add the technician's followup")?;
    wait_for("the technician's reply in Chatwoot", DEADLINE, || async {
        chatwoot
            .messages(conversation)
            .iter()
            .find(|m| m.content == "Toner trocado, pode testar?")
            .map(|_| ())
    })
    .await?;
    crate::say!("   technician answers in GLPI → outgoing message in Chatwoot");

    glpi.add_solution_as(ticket, tech, "Toner substituído.")
        .context("cannot solve the ticket")?;
    wait_for("the conversation resolved", DEADLINE, || async {
        (chatwoot.conversation(conversation)?.status == "resolved").then_some(())
    })
    .await?;
    crate::say!("   ticket solved in GLPI → conversation resolved in Chatwoot");
    app.stop().await;
    chatwoot.stop().await.ok();
    glpi.shutdown().await;
    Ok(())
}
