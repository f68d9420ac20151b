//! Chatwoot conversations on an iTop target: the same chatwoot flow, with
//! `flows::itop::ItopHelpdesk` behind the Helpdesk interface, over real HTTP
//! into the Chatwoot and iTop simulators.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::{Value, json};
use sim::chatwoot::{ChatwootSim, NewContact, RunningChatwoot};
use sim::itop::{ItopSim, ItopSimConfig, RunningItop};
use store::{JobFilter, JobStatus};
use ticketbridge::testkit::{TestApp, jobs_settled, wait_for};

const SECRET: &str = "cw-webhook-secret";
const DEADLINE: Duration = Duration::from_secs(20);

struct World {
    itop: RunningItop,
    cw: RunningChatwoot,
    app: TestApp,
    _dir: tempfile::TempDir,
}

async fn world(policy: &str) -> World {
    let (store, dir) = store::testing::fresh_sqlite().await;
    let itop = ItopSim::start(ItopSimConfig {
        demo_data: false,
        ..ItopSimConfig::default()
    })
    .await
    .unwrap();
    let acme = itop.seed_organization("ACME Ltda").unwrap();
    // Person 1 is the REST account's contact (the account is User 2, as in
    // the recorded iTop); Maria is Person 2: her Person id is the REST
    // account's User id.
    let agent = itop
        .seed_person("Ana", "Agente", acme, "ana@acme.example", "")
        .unwrap();
    assert_eq!(agent, 1);
    let maria = itop
        .seed_person("Maria", "Souza", acme, "maria@cliente.com.br", "")
        .unwrap();
    assert_eq!(maria, 2);
    let cw = ChatwootSim::start(sim::chatwoot::SimConfig::default())
        .await
        .unwrap();
    let toml = format!(
        r#"
[engine]
max_attempts = 50

[targets.itop]
kind = "itop"
url = "{itop_url}"
user = "{user}"
password = "${{ITOP_PASSWORD}}"
timeout = "5s"

[sources.cw]
kind = "chatwoot"
target = "itop"
url = "{cw_url}"
api_access_token = "${{CW_TOKEN}}"
account_id = 1
webhook_secret = "${{CW_SECRET}}"
entity = {acme}
closed_ticket_policy = "{policy}"
poll_interval = "150ms"
reconcile_interval = "1h"
timeout = "5s"
"#,
        itop_url = itop.base_url(),
        user = itop.rest_user(),
        cw_url = cw.base_url(),
    );
    let env = vec![
        ("ITOP_PASSWORD".to_string(), itop.rest_password()),
        ("CW_TOKEN".to_string(), cw.api_token()),
        ("CW_SECRET".to_string(), SECRET.to_string()),
    ];
    let config = config::load_str(&toml, env).unwrap();
    let app = TestApp::spawn(config, store).await.unwrap();
    cw.webhook_target(app.url("/hooks/chatwoot/cw"), Some(SECRET.into()));
    World {
        itop,
        cw,
        app,
        _dir: dir,
    }
}

impl World {
    /// Maria starts a conversation with `text`: the conversation and its
    /// first ticket.
    async fn maria_opens(&self, text: &str) -> (u64, u64) {
        let maria = self.maria().await;
        let conv = self
            .cw
            .customer_starts_conversation(maria, self.cw.default_inbox(), text)
            .await
            .unwrap()
            .conversation_id;
        (conv, self.ticket_of(conv, None).await)
    }

    async fn maria(&self) -> u64 {
        self.cw
            .add_contact(NewContact {
                name: "Maria Souza".into(),
                email: Some("maria@cliente.com.br".into()),
                phone_number: None,
                identifier: None,
            })
            .await
    }

    /// The ticket id the bridge wrote into the conversation, once it differs
    /// from `not`.
    async fn ticket_of(&self, conversation: u64, not: Option<u64>) -> u64 {
        wait_for("the ticket id in the conversation", DEADLINE, || async {
            let id = self
                .cw
                .conversation(conversation)?
                .custom_attributes
                .get("glpi_ticket_id")?
                .as_u64()?;
            (Some(id) != not).then_some(id)
        })
        .await
        .unwrap()
    }

    fn status(&self, ticket: u64) -> String {
        self.itop
            .object("UserRequest", ticket)
            .and_then(|t| t["status"].as_str().map(str::to_string))
            .unwrap_or_default()
    }

    async fn dead_jobs(&self) -> Vec<store::Job> {
        self.app
            .store
            .jobs(&JobFilter {
                status: Some(JobStatus::Dead),
                ..JobFilter::default()
            })
            .await
            .unwrap()
    }
}

/// `closed_ticket_policy = "reopen"` on iTop, where closed is final: the
/// customer's message on a closed ticket opens a new ticket instead of
/// failing for good, and a conversation reopened in Chatwoot leaves the
/// closed ticket as it is without a dead job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_itop_ticket_that_cannot_reopen_hands_over_to_a_new_one() {
    let w = world("reopen").await;
    let (conv, first) = w.maria_opens("Impressora parada").await;
    let helpdesk = w.app.targets.helpdesk("itop").unwrap();
    helpdesk
        .set_status(
            i64::try_from(first).unwrap(),
            flows::helpdesk::TicketStatus::Closed,
            Some("Resolvido"),
        )
        .await
        .unwrap();
    assert_eq!(w.status(first), "closed");

    w.cw.resolve(conv).await.unwrap();
    w.cw.reopen(conv).await.unwrap();
    w.cw.customer_sends(conv, "Voltou a falhar hoje cedo")
        .await
        .unwrap();
    let second = w.ticket_of(conv, Some(first)).await;
    assert_ne!(second, first);
    let ticket = w.itop.object("UserRequest", second).unwrap();
    assert_eq!(
        ticket["title"],
        json!("Voltou a falhar hoje cedo"),
        "{ticket}"
    );
    assert_eq!(w.status(first), "closed");
    // A job that is still to fail shows as a dead letter below.
    wait_for("no job left to run", DEADLINE, || {
        jobs_settled(&w.app.store, false)
    })
    .await
    .unwrap();
    let dead: Vec<Value> = w
        .dead_jobs()
        .await
        .into_iter()
        .map(|j| json!({"kind": j.kind, "error": j.last_error}))
        .collect();
    assert!(dead.is_empty(), "{dead:?}");
    w.app.stop().await;
}

/// A case log names accounts (User ids), a ticket's caller is a Person: an
/// agent's reply is sent to the customer even when the agent's User id is the
/// customer's Person id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_reply_reaches_the_customer_whatever_the_ids() {
    let w = world("new_ticket").await;
    let (conv, ticket) = w.maria_opens("VPN caiu").await;
    let caller = w.itop.object("UserRequest", ticket).unwrap()["caller_id"].clone();
    assert_eq!(caller, json!("2"), "Maria asked for it");
    // The agent answers in iTop, through the REST account (User 2).
    let answer = w
        .itop
        .perform(json!({"operation": "core/update", "class": "UserRequest", "key": ticket,
            "comment": "agent", "output_fields": "id",
            "fields": {"public_log": {"add_item": {"message": "Reiniciamos o concentrador", "format": "text"}}}}))
        .await;
    assert_eq!(answer["code"], json!(0), "{answer}");
    let log = w.itop.object("UserRequest", ticket).unwrap()["public_log"].clone();
    let by_agent = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| {
            e["message"]
                .as_str()
                .unwrap_or_default()
                .contains("concentrador")
        })
        .cloned()
        .unwrap();
    assert_eq!(by_agent["user_id"], json!("2"), "{by_agent}");
    wait_for(
        "the agent's reply in the conversation",
        DEADLINE,
        || async {
            w.cw.messages(conv)
                .into_iter()
                .find(|m| m.content.contains("Reiniciamos o concentrador"))
        },
    )
    .await
    .unwrap();
    w.app.stop().await;
}

impl World {
    /// An agent answers `text` on `ticket` in iTop (public log, through the
    /// REST account).
    async fn agent_answers(&self, ticket: u64, text: &str) {
        let answer = self
            .itop
            .perform(
                json!({"operation": "core/update", "class": "UserRequest", "key": ticket,
                "comment": "agent", "output_fields": "id",
                "fields": {"public_log": {"add_item": {"message": text, "format": "text"}}}}),
            )
            .await;
        assert_eq!(answer["code"], json!(0), "{answer}");
    }

    async fn message_in(&self, conversation: u64, text: &str) {
        wait_for(
            &format!("{text:?} in the conversation"),
            DEADLINE,
            || async {
                self.cw
                    .messages(conversation)
                    .into_iter()
                    .find(|m| m.content.contains(text))
            },
        )
        .await
        .unwrap();
    }

    fn has_message(&self, conversation: u64, text: &str) -> bool {
        self.cw
            .messages(conversation)
            .iter()
            .any(|m| m.content.contains(text))
    }
}

/// A case-log entry has no id of its own: the first agent reply on a second
/// ticket is as much "entry 1" as the first reply on the first ticket, and
/// still reaches its own conversation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_reply_on_each_ticket_reaches_its_conversation() {
    let w = world("new_ticket").await;
    let (first_conv, first) = w.maria_opens("VPN caiu").await;
    w.agent_answers(first, "Reiniciamos o concentrador").await;
    w.message_in(first_conv, "Reiniciamos o concentrador").await;

    let (second_conv, second) = w.maria_opens("Impressora parada").await;
    assert_ne!(second, first);
    w.agent_answers(second, "Trocamos o toner").await;
    w.message_in(second_conv, "Trocamos o toner").await;
    assert!(!w.has_message(first_conv, "Trocamos o toner"));
    assert!(!w.has_message(second_conv, "Reiniciamos o concentrador"));
    w.app.stop().await;
}

/// Versions that numbered case-log entries per ticket stored reply links
/// under those numbers (with the conversation): a reply already copied then
/// is not posted a second time after the upgrade.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_copied_by_an_earlier_version_is_not_posted_again() {
    let w = world("new_ticket").await;
    let (conv, ticket) = w.maria_opens("VPN caiu").await;
    let copied = w.cw.messages(conv)[0].id;
    // What an earlier version stored after copying public entry 1.
    w.app
        .store
        .put_link(&store::NewLink {
            kind: "chatwoot.reply".into(),
            source_system: "itop".into(),
            source_id: "1".into(),
            target_system: "chatwoot:cw".into(),
            target_id: Some(copied.to_string()),
            state: store::LinkState::Linked,
            data: json!({"conversation": conv}),
        })
        .await
        .unwrap();
    w.agent_answers(ticket, "Resposta copiada antes").await;
    w.agent_answers(ticket, "Resposta nova").await;
    w.message_in(conv, "Resposta nova").await;
    assert!(!w.has_message(conv, "Resposta copiada antes"));
    w.app.stop().await;
}
