//! End-to-end tests of the Chatwoot ↔ GLPI synchronisation: the Chatwoot
//! simulator sends real webhooks over HTTP to the service, which writes to
//! the GLPI simulator and calls the Chatwoot simulator's API back.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use chatwoot::sign;
use serde_json::{Value, json};
use sim::chatwoot::{ChatwootSim, NewContact, ReleaseOrder, RunningChatwoot};
use sim::glpi::{GlpiSim, NewUser, RunningSim, SimConfig};
use store::{JobFilter, JobStatus};
use ticketbridge::testkit::{TestApp, jobs_settled, wait_for};

const SECRET: &str = "cw-webhook-secret";
const URL_TOKEN: &str = "tok-0123456789abcdef";
const CARLOS: &str = "carlos.lima@acme.example";
const DEADLINE: Duration = Duration::from_secs(20);
const SOLUTION: &str = "Resolvido pelo atendimento no Chatwoot.";

struct World {
    glpi: RunningSim,
    cw: RunningChatwoot,
    app: TestApp,
    entity: u64,
    category: u64,
    carlos: u64,
    tech: u64,
    config: config::Config,
    _dir: Option<tempfile::TempDir>,
}

struct Options {
    reconcile: &'static str,
    poll: &'static str,
    extra: String,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            reconcile: "1h",
            poll: "150ms",
            extra: String::new(),
        }
    }
}

async fn world(options: Options) -> World {
    let (store, dir) = store::testing::fresh_sqlite().await;
    world_on(store, Some(dir), options).await
}

async fn world_on(store: store::Store, dir: Option<tempfile::TempDir>, options: Options) -> World {
    let glpi = GlpiSim::start(SimConfig::default()).await.unwrap();
    let entity = glpi.add_entity("ACME Suporte", 0, None);
    let category = glpi.add_category("Atendimento Chat");
    let carlos = glpi.add_user(NewUser {
        login: "carlos".into(),
        firstname: Some("Carlos".into()),
        realname: Some("Lima".into()),
        emails: vec![CARLOS.into()],
        entities_id: entity,
        profile: Some(6),
        ..NewUser::default()
    });
    // The simulator's own technician (user `tech`, Technician profile).
    let tech = glpi.user_by_login("tech").unwrap().id;
    let cw = ChatwootSim::start(sim::chatwoot::SimConfig::default())
        .await
        .unwrap();
    let toml = format!(
        r#"
[engine]
max_attempts = 50

[targets.glpi]
kind = "glpi"
url = "{glpi_url}"
app_token = "${{APP}}"
user_token = "${{USER}}"
timeout = "5s"

[sources.cw]
kind = "chatwoot"
target = "glpi"
url = "{cw_url}"
api_access_token = "${{CW_TOKEN}}"
account_id = 1
webhook_secret = "${{CW_SECRET}}"
url_token = "{URL_TOKEN}"
entity = {entity}
category = "Atendimento Chat"
private_note_with_link = true
solution_text = "{SOLUTION}"
poll_interval = "{poll}"
reconcile_interval = "{reconcile}"
timeout = "5s"
{extra}
"#,
        glpi_url = glpi.base_url(),
        cw_url = cw.base_url(),
        reconcile = options.reconcile,
        poll = options.poll,
        extra = options.extra,
    );
    let env = vec![
        ("APP".to_string(), glpi.app_token()),
        ("USER".to_string(), glpi.user_token("glpi").unwrap()),
        ("CW_TOKEN".to_string(), cw.api_token()),
        ("CW_SECRET".to_string(), SECRET.to_string()),
    ];
    let config = config::load_str(&toml, env).unwrap();
    let app = TestApp::spawn(config.clone(), store).await.unwrap();
    cw.webhook_target(app.url("/hooks/chatwoot/cw"), Some(SECRET.into()));
    World {
        glpi,
        cw,
        app,
        entity,
        category,
        carlos,
        tech,
        config,
        _dir: dir,
    }
}

impl World {
    /// João, with a phone and no email, and the GLPI Contact made for him.
    async fn phone_only_contact(&self) -> (u64, u64) {
        let joao = self
            .cw
            .add_contact(NewContact {
                name: "João Lima".into(),
                email: None,
                phone_number: Some("+55 11 91234-5678".into()),
                identifier: None,
            })
            .await;
        let glpi_contact = wait_for("the GLPI contact", DEADLINE, || async {
            self.cw
                .contact(joao)?
                .custom_attributes
                .get("glpi_contact_id")
                .and_then(Value::as_u64)
        })
        .await
        .unwrap();
        (joao, glpi_contact)
    }

    /// Maria starts a conversation with `text`: the conversation and its
    /// ticket.
    async fn maria_opens(&self, text: &str) -> (u64, u64) {
        let maria = self.maria().await;
        let conv = self
            .cw
            .customer_starts_conversation(maria, self.cw.default_inbox(), text)
            .await
            .unwrap()
            .conversation_id;
        (conv, self.ticket_of(conv).await)
    }

    async fn maria(&self) -> u64 {
        self.cw
            .add_contact(NewContact {
                name: "Maria Souza".into(),
                email: Some("maria@cliente.com.br".into()),
                phone_number: Some("+5511987654321".into()),
                identifier: None,
            })
            .await
    }

    /// The ticket id mirrored into the conversation's custom attributes.
    async fn ticket_of(&self, conversation: u64) -> u64 {
        wait_for("the ticket id in the conversation", DEADLINE, || async {
            self.cw
                .conversation(conversation)
                .and_then(|c| c.custom_attributes.get("glpi_ticket_id").cloned())
                .and_then(|v| v.as_u64())
        })
        .await
        .unwrap()
    }

    async fn followups_with(&self, ticket: u64, count: usize) -> Vec<sim::glpi::SimFollowup> {
        wait_for(
            &format!("{count} followups on ticket {ticket}"),
            DEADLINE,
            || async {
                let followups = self.glpi.followups(ticket);
                (followups.len() >= count).then_some(followups)
            },
        )
        .await
        .unwrap()
    }

    /// Every webhook so far was answered and no job is due or running.
    async fn settled(&self) {
        wait_for("the bridge to settle", DEADLINE, || async {
            if self.cw.webhooks_in_flight() != 0 {
                return None;
            }
            jobs_settled(&self.app.store, false).await
        })
        .await
        .unwrap();
    }

    /// Waits until `n` more poll cycles have completed.
    async fn polls(&self, n: usize) {
        let done = || async {
            self.app
                .store
                .jobs(&JobFilter {
                    status: Some(JobStatus::Succeeded),
                    kind: Some("chatwoot.poll".into()),
                    limit: Some(100_000),
                    ..JobFilter::default()
                })
                .await
                .unwrap()
                .len()
        };
        let start = done().await;
        wait_for("poll cycles", DEADLINE, || async {
            (done().await >= start + n).then_some(())
        })
        .await
        .unwrap();
    }

    async fn succeeded(&self, kind: &str) -> usize {
        self.app
            .store
            .jobs(&JobFilter {
                status: Some(JobStatus::Succeeded),
                kind: Some(kind.into()),
                limit: Some(100_000),
                ..JobFilter::default()
            })
            .await
            .unwrap()
            .len()
    }

    /// Runs one poll cycle now (for worlds that poll every hour).
    async fn poll_now(&self) {
        let start = self.succeeded("chatwoot.poll").await;
        self.app
            .store
            .enqueue(chatwoot_sync::jobs::poll_job("cw", "glpi", store::now_ms()))
            .await
            .unwrap();
        wait_for("the poll", DEADLINE, || async {
            (self.succeeded("chatwoot.poll").await > start).then_some(())
        })
        .await
        .unwrap();
    }

    /// Waits until `n` more sweeps have completed.
    async fn sweeps(&self, n: usize) {
        let start = self.succeeded("chatwoot.reconcile").await;
        wait_for("sweeps", DEADLINE, || async {
            (self.succeeded("chatwoot.reconcile").await >= start + n).then_some(())
        })
        .await
        .unwrap();
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

    fn messages_with(&self, conversation: u64, content: &str) -> Vec<sim::chatwoot::Message> {
        self.cw
            .messages(conversation)
            .into_iter()
            .filter(|m| m.content == content)
            .collect()
    }
}

const FIRST: &str = "Minha impressora não imprime desde ontem à tarde, já reiniciei tudo e nada";

/// The whole life of a conversation, both ways (spec §3.7, §4.2, §9).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversation_life_cycle_both_ways() {
    let w = world(Options::default()).await;
    life_cycle(&w).await;
    w.app.stop().await;
}

async fn life_cycle(w: &World) {
    let maria = w.maria().await;
    let started =
        w.cw.customer_starts_conversation(maria, w.cw.default_inbox(), FIRST)
            .await
            .unwrap();
    let conv = started.conversation_id;
    let ticket_id = w.ticket_of(conv).await;
    let ticket = w.glpi.ticket(ticket_id).unwrap();
    assert_eq!(
        ticket.name,
        "Minha impressora não imprime desde ontem à tarde,"
    );
    assert!(ticket.content.contains("desde ontem"), "{}", ticket.content);
    assert_eq!(ticket.entities_id, w.entity);
    assert_eq!(ticket.itilcategories_id, w.category);
    // The requester is a new GLPI user with the contact's email, whose id
    // is mirrored into the contact.
    let users: Vec<_> = w
        .glpi
        .users()
        .into_iter()
        .filter(|u| u.emails.iter().any(|e| e == "maria@cliente.com.br"))
        .collect();
    assert_eq!(users.len(), 1);
    let requester = ticket
        .actors
        .iter()
        .find(|a| a.kind == sim::glpi::ActorKind::Requester)
        .unwrap();
    assert_eq!(requester.users_id, users[0].id);
    let contact = w.cw.contact(maria).unwrap();
    assert_eq!(
        contact.custom_attributes["glpi_user_id"],
        json!(users[0].id)
    );
    // The URL is mirrored too, and a private note carries the link.
    let attributes = w.cw.conversation(conv).unwrap().custom_attributes;
    assert!(
        attributes["glpi_ticket_url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("ticket.form.php?id={ticket_id}"))
    );
    wait_for("the private note with the link", DEADLINE, || async {
        w.cw.messages(conv)
            .iter()
            .find(|m| m.private && m.content.contains(&format!("#{ticket_id}")))
            .map(|_| ())
    })
    .await
    .unwrap();

    // Customer message → public followup by the requester.
    w.cw.customer_sends(conv, "Aparece erro 0x01 no visor")
        .await
        .unwrap();
    let f = w.followups_with(ticket_id, 1).await;
    assert_eq!(f[0].content, "Aparece erro 0x01 no visor");
    assert_eq!(f[0].users_id, users[0].id);
    assert!(!f[0].is_private);

    // Agent reply → followup by the agent's GLPI user (same email).
    w.cw.agent_replies(conv, CARLOS, "Vou verificar o toner")
        .await
        .unwrap();
    let f = w.followups_with(ticket_id, 2).await;
    assert_eq!(f[1].content, "Vou verificar o toner");
    assert_eq!(f[1].users_id, w.carlos);
    assert!(!f[1].is_private);

    // Private note → private followup.
    w.cw.agent_private_note(conv, "Cliente VIP, priorizar")
        .await
        .unwrap();
    let f = w.followups_with(ticket_id, 3).await;
    assert_eq!(f[2].content, "Cliente VIP, priorizar");
    assert!(f[2].is_private);

    // A GLPI technician answers → outgoing message in the conversation.
    w.glpi
        .add_followup_as(ticket_id, w.tech, "Trocamos o toner, pode testar?", false)
        .unwrap();
    let copied = wait_for("the technician's reply in Chatwoot", DEADLINE, || async {
        w.messages_with(conv, "Trocamos o toner, pode testar?")
            .into_iter()
            .next()
    })
    .await
    .unwrap();
    assert_eq!(copied.message_type, 1);
    assert!(!copied.private);
    // A private GLPI followup stays in GLPI.
    w.glpi
        .add_followup_as(ticket_id, w.tech, "nota interna do técnico", true)
        .unwrap();

    // Echoes both ways: the bot message's webhook does not come back as a
    // followup, and the bridge's followups are not copied back to Chatwoot.
    w.polls(3).await;
    w.settled().await;
    let toner: Vec<_> = w
        .glpi
        .followups(ticket_id)
        .into_iter()
        .filter(|f| f.content.contains("Trocamos o toner"))
        .collect();
    assert_eq!(toner.len(), 1, "the echo became a followup");
    assert_eq!(
        w.messages_with(conv, "Trocamos o toner, pode testar?")
            .len(),
        1
    );
    assert!(w.messages_with(conv, "Aparece erro 0x01 no visor").len() == 1);
    assert!(w.messages_with(conv, "Vou verificar o toner").len() == 1);
    assert!(w.messages_with(conv, "nota interna do técnico").is_empty());

    // Resolve in Chatwoot → solved in GLPI with the solution text.
    w.cw.resolve(conv).await.unwrap();
    wait_for("the ticket solved", DEADLINE, || async {
        (w.glpi.ticket(ticket_id)?.status == 5).then_some(())
    })
    .await
    .unwrap();
    let solutions = w.glpi.solutions(ticket_id);
    assert_eq!(solutions.len(), 1);
    assert!(solutions[0].content.contains("Resolvido pelo atendimento"));

    // The customer writes again: Chatwoot reopens, the ticket goes back
    // in progress.
    w.cw.customer_sends(conv, "Voltou a falhar").await.unwrap();
    wait_for("the ticket back in progress", DEADLINE, || async {
        (w.glpi.ticket(ticket_id)?.status == 2).then_some(())
    })
    .await
    .unwrap();

    // Solved in GLPI → the technician's solution reaches the customer, and
    // the conversation is resolved in Chatwoot.
    w.glpi
        .add_solution_as(ticket_id, w.tech, "Peça trocada")
        .unwrap();
    wait_for("the conversation resolved", DEADLINE, || async {
        (w.cw.conversation(conv)?.status == "resolved").then_some(())
    })
    .await
    .unwrap();
    w.polls(2).await;
    w.settled().await;
    let solution = w.messages_with(conv, "Peça trocada");
    assert_eq!(solution.len(), 1, "{solution:?}");
    assert_eq!(solution[0].message_type, 1);
    assert!(!solution[0].private);
    // The bridge's own solution is not posted back.
    assert!(
        w.cw.messages(conv)
            .iter()
            .all(|m| !m.content.contains(SOLUTION)),
        "{:?}",
        w.cw.messages(conv)
    );
    // Exactly one ticket, and nothing went to the dead letters.
    assert_eq!(w.glpi.tickets().len(), 1);
    assert!(w.dead_jobs().await.is_empty(), "{:?}", w.dead_jobs().await);
}

/// Many events of one conversation at once: one ticket, followups in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burst_of_events_keeps_order_and_makes_one_ticket() {
    let w = world(Options::default()).await;
    let maria = w.maria().await;
    w.cw.hold_webhooks();
    let conv = w
        .cw
        .customer_starts_conversation(maria, w.cw.default_inbox(), "Sem internet no escritório")
        .await
        .unwrap()
        .conversation_id;
    let texts: Vec<String> = (1..=8).map(|i| format!("detalhe {i}")).collect();
    for text in &texts {
        w.cw.customer_sends(conv, text).await.unwrap();
    }
    w.cw.release_webhooks(ReleaseOrder::AsQueued).await;
    let ticket = w.ticket_of(conv).await;
    let followups = w.followups_with(ticket, texts.len()).await;
    let contents: Vec<_> = followups.iter().map(|f| f.content.clone()).collect();
    assert_eq!(contents, texts);
    w.settled().await;
    assert_eq!(w.glpi.tickets().len(), 1);
    assert_eq!(w.glpi.followups(ticket).len(), texts.len());
    w.app.stop().await;
}

/// Redelivered webhooks (same X-Chatwoot-Delivery, and unsigned ones with
/// no delivery id) create nothing twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicated_deliveries_create_nothing_twice() {
    let w = world(Options::default()).await;
    let maria = w.maria().await;
    let conv =
        w.cw.customer_starts_conversation(maria, w.cw.default_inbox(), "Preciso de acesso à VPN")
            .await
            .unwrap()
            .conversation_id;
    w.cw.customer_sends(conv, "É urgente").await.unwrap();
    let ticket = w.ticket_of(conv).await;
    w.followups_with(ticket, 1).await;
    w.settled().await;
    let signed: Vec<String> =
        w.cw.deliveries()
            .iter()
            .map(|d| d.delivery_id.clone())
            .collect();
    for id in &signed {
        assert!(w.cw.redeliver(id).await);
    }
    // Now unsigned, through the URL token: the same bodies again, twice.
    w.cw.webhook_target(w.app.url(&format!("/hooks/chatwoot/cw/{URL_TOKEN}")), None);
    w.cw.customer_sends(conv, "Alguém viu?").await.unwrap();
    let unsigned: Vec<String> =
        w.cw.deliveries()
            .iter()
            .filter(|d| !d.signed)
            .map(|d| d.delivery_id.clone())
            .collect();
    for id in &unsigned {
        assert!(w.cw.redeliver(id).await);
        assert!(w.cw.redeliver(id).await);
    }
    w.followups_with(ticket, 2).await;
    w.settled().await;
    assert!(w.cw.deliveries().iter().all(|d| d.status == Some(200)));
    assert_eq!(w.glpi.tickets().len(), 1);
    let contents: Vec<_> = w
        .glpi
        .followups(ticket)
        .into_iter()
        .map(|f| f.content)
        .collect();
    assert_eq!(contents, vec!["É urgente", "Alguém viu?"]);
    let users = w
        .glpi
        .users()
        .into_iter()
        .filter(|u| u.emails.iter().any(|e| e == "maria@cliente.com.br"))
        .count();
    assert_eq!(users, 1);
    w.app.stop().await;
}

/// An agent resolves and at once reopens; Chatwoot's workers deliver the
/// reopen first and the resolve after it. The resolve is older than the
/// status applied (its `updated_at`) and changes nothing: the ticket stays
/// open, like the conversation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resolve_delivered_after_the_reopen_that_followed_it_changes_nothing() {
    let w = world(Options {
        poll: "1h",
        ..Options::default()
    })
    .await;
    let (conv, ticket) = w.maria_opens("Leitor de código sem resposta").await;
    w.settled().await;
    w.cw.hold_webhooks();
    w.cw.resolve(conv).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    w.cw.reopen(conv).await.unwrap();
    w.cw.release_webhooks(ReleaseOrder::Reversed).await;
    w.settled().await;
    assert_eq!(w.cw.conversation(conv).unwrap().status, "open");
    // Still as it was (new): not solved by the late resolve.
    assert_eq!(
        w.glpi.ticket(ticket).unwrap().status,
        1,
        "solved by a late resolve"
    );
    assert!(w.glpi.solutions(ticket).is_empty());
    w.app.stop().await;
}

/// Webhooks delivered in reverse: the ticket is still made from the first
/// customer message, and every later message becomes a followup.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_order_delivery_makes_one_ticket_with_all_followups() {
    let w = world(Options::default()).await;
    let maria = w.maria().await;
    w.cw.hold_webhooks();
    let conv =
        w.cw.customer_starts_conversation(maria, w.cw.default_inbox(), "O sistema de ponto caiu")
            .await
            .unwrap()
            .conversation_id;
    for text in ["segunda mensagem", "terceira mensagem"] {
        w.cw.customer_sends(conv, text).await.unwrap();
    }
    w.cw.agent_replies(conv, CARLOS, "Estamos vendo")
        .await
        .unwrap();
    w.cw.release_webhooks(ReleaseOrder::Reversed).await;
    let ticket = w.ticket_of(conv).await;
    assert_eq!(
        w.glpi.ticket(ticket).unwrap().name,
        "O sistema de ponto caiu"
    );
    let followups = w.followups_with(ticket, 3).await;
    let mut contents: Vec<_> = followups.iter().map(|f| f.content.clone()).collect();
    contents.sort();
    assert_eq!(
        contents,
        vec!["Estamos vendo", "segunda mensagem", "terceira mensagem"]
    );
    w.settled().await;
    assert_eq!(w.glpi.tickets().len(), 1);
    assert_eq!(w.glpi.followups(ticket).len(), 3);
    w.app.stop().await;
}

/// GLPI answers 503 and drops connections for a while, then its sessions
/// expire mid-run: everything arrives once GLPI is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn glpi_down_and_session_expiry_are_eventually_consistent() {
    let w = world(Options::default()).await;
    let maria = w.maria().await;
    w.glpi.faults().fail_next(6, 503);
    w.glpi.faults().drop_next(3);
    let conv =
        w.cw.customer_starts_conversation(maria, w.cw.default_inbox(), "Email fora do ar")
            .await
            .unwrap()
            .conversation_id;
    w.cw.customer_sends(conv, "Desde as 9h").await.unwrap();
    let ticket = w.ticket_of(conv).await;
    w.followups_with(ticket, 1).await;
    w.glpi.faults().expire_sessions_after_calls(2);
    w.cw.customer_sends(conv, "Ainda fora").await.unwrap();
    w.cw.agent_replies(conv, CARLOS, "Reiniciando o servidor")
        .await
        .unwrap();
    let followups = w.followups_with(ticket, 3).await;
    let contents: Vec<_> = followups.iter().map(|f| f.content.clone()).collect();
    assert_eq!(
        contents,
        vec!["Desde as 9h", "Ainda fora", "Reiniciando o servidor"]
    );
    assert!(w.glpi.sessions_opened() >= 2, "the session was renewed");
    w.glpi.faults().clear();
    w.settled().await;
    assert_eq!(w.glpi.tickets().len(), 1);
    assert!(w.dead_jobs().await.is_empty());
    w.app.stop().await;
}

/// A GLPI reply on a channel that cannot reply (WhatsApp 24 h window)
/// becomes a private note; the bridge's note is not copied back either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn glpi_reply_outside_the_window_becomes_a_private_note() {
    let w = world(Options::default()).await;
    let (conv, ticket) = w.maria_opens("Boleto não chegou").await;
    w.cw.set_reply_window(conv, false).unwrap();
    w.glpi
        .add_followup_as(ticket, w.tech, "Reenviamos o boleto por email", false)
        .unwrap();
    let note = wait_for("the reply as a private note", DEADLINE, || async {
        w.messages_with(conv, "Reenviamos o boleto por email")
            .into_iter()
            .next()
    })
    .await
    .unwrap();
    assert!(note.private);
    w.polls(2).await;
    w.settled().await;
    assert_eq!(
        w.messages_with(conv, "Reenviamos o boleto por email").len(),
        1
    );
    let copies = w
        .glpi
        .followups(ticket)
        .into_iter()
        .filter(|f| f.content.contains("Reenviamos o boleto"))
        .count();
    assert_eq!(copies, 1);
    w.app.stop().await;
}

/// GLPI stamps every row one request writes with the same second (a massive
/// action, the autoclose cron): 600 tickets changed in one second, more than a
/// poll's page, must not stall the poller on that second. A reply on the
/// conversation's ticket written after them still reaches Chatwoot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crowded_second_does_not_stall_the_reply_poller() {
    let w = world(Options::default()).await;
    let (conv, ticket) = w.maria_opens("Impressora sem toner").await;
    w.settled().await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let crowd: Vec<u64> = (0..600)
        .map(|i| w.glpi.add_ticket(&format!("autoclose {i}"), w.entity))
        .collect();
    let crowded = w.glpi.touch_tickets(&crowd);
    // The poller moves its cursor to the crowded second.
    wait_for(
        "the poll cursor at the crowded second",
        DEADLINE,
        || async {
            let cursor = w.app.store.cursor("chatwoot:cw:poll").await.unwrap();
            (cursor.as_deref() == Some(crowded.as_str())).then_some(())
        },
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    w.glpi
        .add_followup_as(ticket, w.tech, "Toner trocado, pode testar?", false)
        .unwrap();
    wait_for("the technician's reply in Chatwoot", DEADLINE, || async {
        w.messages_with(conv, "Toner trocado, pode testar?")
            .into_iter()
            .next()
    })
    .await
    .unwrap();
    w.app.stop().await;
}

/// Chatwoot stores a technician's reply but its answer is lost (a timeout):
/// the retry finds the message the bridge posted (its sender is the token's
/// user, like an agent's) and adopts it instead of posting it again. An
/// earlier reply with the same text is not mistaken for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_whose_answer_was_lost_is_posted_once() {
    let w = world(Options::default()).await;
    let (conv, ticket) = w.maria_opens("Impressora parada").await;
    w.glpi
        .add_followup_as(ticket, w.tech, "Obrigado, estamos verificando", false)
        .unwrap();
    wait_for("the first reply", DEADLINE, || async {
        w.messages_with(conv, "Obrigado, estamos verificando")
            .into_iter()
            .next()
    })
    .await
    .unwrap();

    w.cw.lose_answers("POST", "/messages", 1);
    w.glpi
        .add_followup_as(ticket, w.tech, "Obrigado, estamos verificando", false)
        .unwrap();
    wait_for("the second reply", DEADLINE, || async {
        (w.messages_with(conv, "Obrigado, estamos verificando").len() >= 2).then_some(())
    })
    .await
    .unwrap();
    w.polls(2).await;
    w.settled().await;
    let copies = w.messages_with(conv, "Obrigado, estamos verificando");
    assert_eq!(copies.len(), 2, "each reply once: {copies:?}");
    assert!(copies.iter().all(|m| !m.private), "{copies:?}");
    let followups = w
        .glpi
        .followups(ticket)
        .into_iter()
        .filter(|f| f.content.contains("estamos verificando"))
        .count();
    assert_eq!(followups, 2, "nothing copied back to GLPI");
    w.app.stop().await;
}

/// The channel refuses a reply after Chatwoot accepted it (a WhatsApp
/// provider error, announced by `message_updated`): the ticket gets one
/// private followup saying which reply did not reach the customer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_the_channel_refused_is_reported_on_the_ticket() {
    let w = world(Options::default()).await;
    let (conv, ticket) = w.maria_opens("Sem sinal na loja").await;
    let refusal = "(#131047) Re-engagement message: more than 24 hours have passed";
    w.cw.fail_deliveries(conv, Some(refusal)).unwrap();
    let reply = w
        .glpi
        .add_followup_as(ticket, w.tech, "Técnico a caminho", false)
        .unwrap();
    let note = wait_for("the failure on the ticket", DEADLINE, || async {
        w.glpi
            .followups(ticket)
            .into_iter()
            .find(|f| f.content.contains("could not deliver"))
    })
    .await
    .unwrap();
    assert!(note.is_private, "{note:?}");
    assert!(
        note.content.contains(&format!("#{reply}")),
        "{}",
        note.content
    );
    assert!(note.content.contains("131047"), "{}", note.content);
    w.polls(2).await;
    w.settled().await;
    let notes = w
        .glpi
        .followups(ticket)
        .into_iter()
        .filter(|f| f.content.contains("could not deliver"))
        .count();
    assert_eq!(notes, 1);
    assert_eq!(
        w.messages_with(conv, "Técnico a caminho").len(),
        1,
        "not posted again"
    );
    w.app.stop().await;
}

/// The same for a technician's solution: the channel refuses it after
/// Chatwoot took it, and the ticket says which solution did not arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_solution_the_channel_refused_is_reported_on_the_ticket() {
    let w = world(Options::default()).await;
    let (conv, ticket) = w.maria_opens("Caixa travado").await;
    w.settled().await;
    let refusal = "(#131047) Re-engagement message: more than 24 hours have passed";
    w.cw.fail_deliveries(conv, Some(refusal)).unwrap();
    let solution = w
        .glpi
        .add_solution_as(ticket, w.tech, "Caixa reiniciado")
        .unwrap();
    let note = wait_for("the failure on the ticket", DEADLINE, || async {
        w.glpi
            .followups(ticket)
            .into_iter()
            .find(|f| f.content.contains("could not deliver"))
    })
    .await
    .unwrap();
    assert!(note.is_private, "{note:?}");
    assert!(
        note.content.contains(&format!("the solution #{solution}")),
        "{}",
        note.content
    );
    assert!(note.content.contains("131047"), "{}", note.content);
    w.app.stop().await;
}

/// Signed deliveries: a wrong signature and a stale timestamp get 401 and
/// store nothing; a wrong URL token gets 404; unknown events get 200 and
/// are not stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signatures_tokens_and_ignored_events() {
    let w = world(Options::default()).await;
    let body = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/chatwoot/contact_created.json"
    ))
    .unwrap();
    let now = time_now();
    let post = |path: String, headers: Vec<(&'static str, String)>, body: Vec<u8>| {
        let mut request = w
            .app
            .http
            .post(w.app.url(&path))
            .header("content-type", "application/json")
            .body(body);
        for (k, v) in headers {
            request = request.header(k, v);
        }
        request.send()
    };
    let signed = |ts: i64, secret: &str| {
        vec![
            ("x-chatwoot-signature", sign(secret, ts, &body)),
            ("x-chatwoot-timestamp", ts.to_string()),
            ("x-chatwoot-delivery", format!("d-{ts}-{secret}")),
        ]
    };
    let wrong = post(
        "/hooks/chatwoot/cw".into(),
        signed(now, "not-the-secret"),
        body.clone(),
    )
    .await
    .unwrap();
    assert_eq!(wrong.status(), 401);
    let stale = post(
        "/hooks/chatwoot/cw".into(),
        signed(now - 3600, SECRET),
        body.clone(),
    )
    .await
    .unwrap();
    assert_eq!(stale.status(), 401);
    let unsigned = post("/hooks/chatwoot/cw".into(), vec![], body.clone())
        .await
        .unwrap();
    assert_eq!(unsigned.status(), 401);
    let bad_token = post(
        "/hooks/chatwoot/cw/tok-wrong-wrong-wrong".into(),
        vec![],
        body.clone(),
    )
    .await
    .unwrap();
    assert_eq!(bad_token.status(), 404);
    for delivery in [
        format!("d-{now}-not-the-secret"),
        format!("d-{}-{SECRET}", now - 3600),
    ] {
        assert!(
            w.app
                .store
                .inbox_by_dedupe("cw", &format!("delivery:{delivery}"))
                .await
                .unwrap()
                .is_none()
        );
    }
    let good = post(
        "/hooks/chatwoot/cw".into(),
        signed(now, SECRET),
        body.clone(),
    )
    .await
    .unwrap();
    assert_eq!(good.status(), 200);
    let answer: Value = good.json().await.unwrap();
    assert_eq!(answer["accepted"], json!(true));
    let again = post(
        "/hooks/chatwoot/cw".into(),
        signed(now, SECRET),
        body.clone(),
    )
    .await
    .unwrap();
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["duplicate"], json!(true));
    // A captured signed request replayed with a fresh delivery id (the
    // header is not signed) is the same delivery.
    let mut replay = signed(now, SECRET);
    replay[2].1 = "d-replayed-under-a-new-id".into();
    let replayed = post("/hooks/chatwoot/cw".into(), replay, body.clone())
        .await
        .unwrap();
    assert_eq!(replayed.status(), 200);
    let replayed: Value = replayed.json().await.unwrap();
    assert_eq!(replayed["duplicate"], json!(true), "{replayed}");
    let typing = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/chatwoot/conversation_typing_on.json"
    ))
    .unwrap();
    let ignored = post(format!("/hooks/chatwoot/cw/{URL_TOKEN}"), vec![], typing)
        .await
        .unwrap();
    assert_eq!(ignored.status(), 200);
    let ignored: Value = ignored.json().await.unwrap();
    assert_eq!(ignored["ignored"], json!(true));
    // The same webhook URL set up in another account: its conversation ids
    // are not ours.
    let mut foreign: Value = serde_json::from_slice(
        &std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/chatwoot/message_created.incoming.json"
        ))
        .unwrap(),
    )
    .unwrap();
    foreign["account"]["id"] = json!(w.cw.account_id() + 1);
    foreign["conversation"]["account_id"] = json!(w.cw.account_id() + 1);
    let other_account = post(
        format!("/hooks/chatwoot/cw/{URL_TOKEN}"),
        vec![],
        serde_json::to_vec(&foreign).unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(other_account.status(), 200);
    let other_account: Value = other_account.json().await.unwrap();
    assert_eq!(
        other_account["reason"],
        json!("another account"),
        "{other_account}"
    );
    let events = w
        .app
        .store
        .jobs(&JobFilter {
            kind: Some("chatwoot.event".into()),
            ..JobFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(events.len(), 1, "only the good delivery was enqueued");
    w.app.stop().await;
}

/// A webhook lost on the way (Chatwoot never retries): the sweep over
/// recently updated conversations copies the message anyway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciliation_repairs_a_lost_webhook() {
    let w = world(Options {
        reconcile: "300ms",
        ..Options::default()
    })
    .await;
    let (conv, ticket) = w.maria_opens("Monitor piscando").await;
    // Deliveries now go nowhere (a closed loopback port): lost.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    w.cw.webhook_target(format!("http://{closed}/lost"), Some(SECRET.into()));
    w.cw.customer_sends(conv, "Agora apagou de vez")
        .await
        .unwrap();
    w.cw.agent_private_note(conv, "Trocar o cabo HDMI")
        .await
        .unwrap();
    assert!(
        w.cw.deliveries()
            .iter()
            .rev()
            .take(2)
            .all(|d| d.status.is_none())
    );
    let followups = w.followups_with(ticket, 2).await;
    assert_eq!(followups[0].content, "Agora apagou de vez");
    // The agent's email is only known from webhooks (the API hides it):
    // unmapped, the note names its writer.
    assert_eq!(
        followups[1].content,
        "Carlos Lima (Chatwoot): Trocar o cabo HDMI"
    );
    assert!(followups[1].is_private);
    // A lost status change is repaired too.
    w.cw.resolve(conv).await.unwrap();
    wait_for("the ticket solved by the sweep", DEADLINE, || async {
        (w.glpi.ticket(ticket)?.status == 5).then_some(())
    })
    .await
    .unwrap();
    assert_eq!(w.glpi.followups(ticket).len(), 2);
    assert_eq!(w.glpi.tickets().len(), 1);
    w.app.stop().await;
}

/// A contact with only a phone becomes a GLPI Contact, found again by its
/// normalised phone; a customer message after the ticket was closed opens
/// a new ticket that takes over the conversation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phone_only_contact_and_closed_ticket_policy() {
    let w = world(Options::default()).await;
    let (joao, glpi_contact) = w.phone_only_contact().await;
    let conv =
        w.cw.customer_starts_conversation(joao, w.cw.default_inbox(), "Quero cancelar o plano")
            .await
            .unwrap()
            .conversation_id;
    let first = w.ticket_of(conv).await;
    assert_eq!(w.glpi.contacts().len(), 1);
    assert_eq!(w.glpi.contacts()[0].id, glpi_contact);
    // GLPI takes no contact as requester: the ticket names it.
    let content = w.glpi.ticket(first).unwrap().content;
    assert!(
        content.contains("João") && content.contains(&format!("GLPI contact #{glpi_contact}")),
        "{content}"
    );
    assert!(content.contains("+5511912345678"), "{content}");
    w.glpi.set_ticket_status(first, 6);
    w.cw.customer_sends(conv, "Mudei de ideia, quero manter")
        .await
        .unwrap();
    let second = wait_for("a new ticket for the conversation", DEADLINE, || async {
        let id =
            w.cw.conversation(conv)?
                .custom_attributes
                .get("glpi_ticket_id")?
                .as_u64()?;
        (id != first).then_some(id)
    })
    .await
    .unwrap();
    let ticket = w.glpi.ticket(second).unwrap();
    assert_eq!(ticket.name, "Mudei de ideia, quero manter");
    assert!(ticket.content.contains(&format!("#{first}")));
    assert!(w.glpi.followups(first).is_empty());
    w.settled().await;
    assert_eq!(w.glpi.tickets().len(), 2);
    assert_eq!(w.glpi.contacts().len(), 1);
    w.app.stop().await;
}

/// With `inboxes` set, a contact's own events create nobody in GLPI: contact
/// bodies name no inbox, and the account's other inboxes' customers are not
/// ours. The contact becomes a person with its first conversation in a
/// synchronised inbox.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contacts_wait_for_a_conversation_in_a_synchronised_inbox() {
    let w = world(Options {
        extra: "inboxes = [3]".into(),
        ..Options::default()
    })
    .await;
    let users_before = w.glpi.users().len();
    let maria = w.maria().await;
    w.settled().await;
    assert_eq!(w.glpi.users().len(), users_before, "nobody created yet");
    let conv =
        w.cw.customer_starts_conversation(maria, w.cw.default_inbox(), "Boleto não chegou")
            .await
            .unwrap()
            .conversation_id;
    let ticket = w.ticket_of(conv).await;
    let created: Vec<_> = w
        .glpi
        .users()
        .into_iter()
        .filter(|u| u.emails.iter().any(|e| e == "maria@cliente.com.br"))
        .collect();
    assert_eq!(created.len(), 1, "{created:?}");
    let requesters: Vec<u64> = w
        .glpi
        .ticket(ticket)
        .unwrap()
        .actors
        .iter()
        .filter(|a| a.kind == sim::glpi::ActorKind::Requester)
        .map(|a| a.users_id)
        .collect();
    assert_eq!(requesters, vec![created[0].id], "the new user asked for it");
    w.app.stop().await;
}

/// A phone-only contact that gains an email becomes a GLPI user; the stale
/// `glpi_contact_id` is cleared once (Chatwoot keeps the key with a null
/// value), and later contact events write nothing more to Chatwoot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contact_that_gains_an_email_is_relinked_once() {
    let w = world(Options::default()).await;
    let (joao, _) = w.phone_only_contact().await;
    w.cw.edit_contact(joao, Some("joao@cliente.com.br".into()), None)
        .await
        .unwrap();
    let user = wait_for("the GLPI user", DEADLINE, || async {
        w.cw.contact(joao)?
            .custom_attributes
            .get("glpi_user_id")?
            .as_u64()
    })
    .await
    .unwrap();
    assert!(w.glpi.user(user).is_some());
    w.settled().await;
    let attributes = w.cw.contact(joao).unwrap().custom_attributes;
    assert_eq!(
        attributes.get("glpi_contact_id"),
        Some(&Value::Null),
        "{attributes:?}"
    );
    let requests = w.cw.counters().api_requests;
    w.cw.edit_contact(joao, None, Some("+55 11 91234-0000".into()))
        .await
        .unwrap();
    w.settled().await;
    assert_eq!(
        w.cw.counters().api_requests,
        requests,
        "nothing more to write to Chatwoot"
    );
    w.app.stop().await;
}

/// The life cycle on PostgreSQL (when TICKETBRIDGE_TEST_POSTGRES_URL is set).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversation_life_cycle_on_postgres() {
    let Some(store) = store::testing::fresh_postgres().await else {
        return;
    };
    let w = world_on(store, None, Options::default()).await;
    life_cycle(&w).await;
    w.app.stop().await;
}

fn time_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A customer photo becomes a GLPI document on the followup; a file above
/// the size cap is named in the followup instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attachments_become_documents_on_the_followup() {
    // The files are on a storage host of its own (as S3 behind
    // ActiveStorage's redirect), listed in `attachment_hosts`.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let files_addr = listener.local_addr().unwrap();
    let w = world(Options {
        extra: format!("attachment_max_bytes = 2000\nattachment_hosts = [\"{files_addr}\"]"),
        ..Options::default()
    })
    .await;
    let files = axum::Router::new()
        .route(
            "/rails/active_storage/blobs/redirect/abc/foto-visor.png",
            axum::routing::get(|| async {
                (
                    [("content-type", "image/png")],
                    vec![0x89u8, b'P', b'N', b'G', 1, 2, 3],
                )
            }),
        )
        .route(
            "/rails/active_storage/blobs/redirect/def/grande.pdf",
            axum::routing::get(|| async { vec![7u8; 5000] }),
        );
    let files_url = format!("http://{files_addr}");
    tokio::spawn(async move { axum::serve(listener, files).await });
    let (conv, ticket) = w.maria_opens("Visor com erro").await;
    w.cw.customer_sends_with_attachments(
        conv,
        "Segue a foto",
        &[
            format!("{files_url}/rails/active_storage/blobs/redirect/abc/foto-visor.png"),
            format!("{files_url}/rails/active_storage/blobs/redirect/def/grande.pdf"),
        ],
    )
    .await
    .unwrap();
    let followup = w.followups_with(ticket, 1).await.remove(0);
    assert!(followup.content.starts_with("Segue a foto"));
    assert!(
        followup.content.contains("grande.pdf"),
        "{}",
        followup.content
    );
    // The followup is written before its documents are uploaded: wait for
    // the upload, then check nothing else came.
    wait_for("the attachment in GLPI", DEADLINE, || async {
        (!w.glpi.documents().is_empty()).then_some(())
    })
    .await
    .unwrap();
    w.settled().await;
    let documents = w.glpi.documents();
    assert_eq!(documents.len(), 1, "only the small file is copied");
    assert_eq!(documents[0].filename.as_deref(), Some("foto-visor.png"));
    assert_eq!(
        documents[0].content.as_deref(),
        Some(&[0x89u8, b'P', b'N', b'G', 1, 2, 3][..])
    );
    assert!(
        documents[0]
            .linked_to
            .contains(&("ITILFollowup".to_string(), followup.id)),
        "{:?}",
        documents[0].linked_to
    );
    w.app.stop().await;
}

/// Chatwoot builds webhook bodies when its job runs: the first body the
/// bridge sees of a conversation can already say it is resolved. The
/// ticket made from it is solved, not left open for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversation_resolved_before_its_ticket_exists_is_solved() {
    let w = world(Options {
        reconcile: "300ms",
        ..Options::default()
    })
    .await;
    let maria = w.maria().await;
    w.cw.hold_webhooks();
    let conv =
        w.cw.customer_starts_conversation(maria, w.cw.default_inbox(), "Senha do Wi-Fi expirou")
            .await
            .unwrap()
            .conversation_id;
    w.cw.resolve(conv).await.unwrap();
    w.cw.release_webhooks_built_now(ReleaseOrder::AsQueued)
        .await;
    let ticket = w.ticket_of(conv).await;
    wait_for("the ticket solved", DEADLINE, || async {
        (w.glpi.ticket(ticket)?.status == 5).then_some(())
    })
    .await
    .unwrap();
    w.sweeps(2).await;
    w.settled().await;
    assert_eq!(w.glpi.ticket(ticket).unwrap().status, 5);
    assert_eq!(w.glpi.tickets().len(), 1);
    let solutions = w.glpi.solutions(ticket);
    assert_eq!(solutions.len(), 1, "{solutions:?}");
    assert!(solutions[0].content.contains(SOLUTION));
    assert_eq!(w.cw.conversation(conv).unwrap().status, "resolved");
    w.app.stop().await;
}

/// A technician solves the ticket and the customer writes before the next
/// poll: the message reopens the ticket (as GLPI does when the requester
/// writes), the solution still reaches the customer, and conversation and
/// ticket agree afterwards (both open).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_message_after_a_solve_in_glpi_reopens_the_ticket() {
    let w = world(Options {
        poll: "1h",
        ..Options::default()
    })
    .await;
    let (conv, ticket) = w.maria_opens("Sem acesso ao ERP").await;
    w.glpi
        .add_solution_as(ticket, w.tech, "Senha redefinida")
        .unwrap();
    assert_eq!(w.glpi.ticket(ticket).unwrap().status, 5);
    w.cw.customer_sends(conv, "Ainda não entra").await.unwrap();
    let followups = w.followups_with(ticket, 1).await;
    assert_eq!(followups[0].content, "Ainda não entra");
    wait_for("the ticket reopened", DEADLINE, || async {
        (w.glpi.ticket(ticket)?.status == 2).then_some(())
    })
    .await
    .unwrap();
    w.poll_now().await;
    w.settled().await;
    wait_for("the solution in Chatwoot", DEADLINE, || async {
        w.messages_with(conv, "Senha redefinida").into_iter().next()
    })
    .await
    .unwrap();
    w.poll_now().await;
    w.settled().await;
    assert_eq!(w.glpi.ticket(ticket).unwrap().status, 2);
    assert_eq!(w.cw.conversation(conv).unwrap().status, "open");
    assert!(w.dead_jobs().await.is_empty(), "{:?}", w.dead_jobs().await);
    w.app.stop().await;
}

/// A technician set the ticket pending to wait for the customer: the
/// customer's answer takes it out of pending, as GLPI does when the
/// requester writes (the bridge writes as its own account, for which GLPI
/// would leave it pending).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_answer_takes_a_pending_ticket_out_of_pending() {
    let w = world(Options {
        poll: "1h",
        ..Options::default()
    })
    .await;
    let (conv, ticket) = w.maria_opens("Impressora sem toner").await;
    w.settled().await;
    assert!(w.glpi.set_ticket_status(ticket, 4));
    w.cw.customer_sends(conv, "Toner trocado, ainda falha")
        .await
        .unwrap();
    let followups = w.followups_with(ticket, 1).await;
    assert_eq!(followups[0].content, "Toner trocado, ainda falha");
    wait_for("the ticket out of pending", DEADLINE, || async {
        (w.glpi.ticket(ticket)?.status == 2).then_some(())
    })
    .await
    .unwrap();
    w.settled().await;
    assert_eq!(w.glpi.ticket(ticket).unwrap().status, 2);
    assert!(w.dead_jobs().await.is_empty(), "{:?}", w.dead_jobs().await);
    w.app.stop().await;
}

/// The poller cannot read the conversation (Chatwoot refuses it: a rotated
/// token, a demoted user): it records nothing of it, so the next sweep,
/// which reads it open, does not take that for a reason to reopen the
/// technician's solved ticket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversation_the_poller_cannot_read_does_not_reopen_a_solved_ticket() {
    let w = world(Options {
        poll: "1h",
        ..Options::default()
    })
    .await;
    let (conv, ticket) = w.maria_opens("Monitor piscando").await;
    w.settled().await;
    w.cw.fail_matching("GET", &format!("/conversations/{conv}"), 1, 403);
    w.glpi
        .add_solution_as(ticket, w.tech, "Cabo trocado")
        .unwrap();
    w.poll_now().await;
    w.settled().await;
    assert_eq!(w.cw.conversation(conv).unwrap().status, "open");
    // A sweep reads the conversation open.
    let start = w.succeeded("chatwoot.reconcile").await;
    w.app
        .store
        .enqueue(chatwoot_sync::jobs::reconcile_job(
            "cw",
            "glpi",
            store::now_ms(),
        ))
        .await
        .unwrap();
    wait_for("the sweep", DEADLINE, || async {
        (w.succeeded("chatwoot.reconcile").await > start).then_some(())
    })
    .await
    .unwrap();
    w.settled().await;
    assert_eq!(w.glpi.ticket(ticket).unwrap().status, 5, "reopened");
    assert!(w.dead_jobs().await.is_empty(), "{:?}", w.dead_jobs().await);
    w.app.stop().await;
}

/// Chatwoot refuses one technician reply for good (a 422: too long, a
/// content it rejects): the ticket gets a private note saying so, and the
/// next reply, the solution and the resolve still reach the conversation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_chatwoot_refuses_does_not_hold_back_the_ones_after_it() {
    let w = world(Options {
        poll: "1h",
        ..Options::default()
    })
    .await;
    let (conv, ticket) = w.maria_opens("VPN caiu").await;
    w.settled().await;
    w.cw.fail_matching("POST", &format!("/conversations/{conv}/messages"), 1, 422);
    w.glpi
        .add_followup_as(ticket, w.tech, "Uma resposta que o Chatwoot recusa", false)
        .unwrap();
    w.glpi
        .add_followup_as(ticket, w.tech, "Reiniciamos o concentrador", false)
        .unwrap();
    w.glpi
        .add_solution_as(ticket, w.tech, "VPN normalizada")
        .unwrap();
    w.poll_now().await;
    w.settled().await;
    for text in ["Reiniciamos o concentrador", "VPN normalizada"] {
        assert!(
            !w.messages_with(conv, text).is_empty(),
            "{text} not in Chatwoot"
        );
    }
    assert!(
        w.messages_with(conv, "Uma resposta que o Chatwoot recusa")
            .is_empty()
    );
    assert_eq!(w.cw.conversation(conv).unwrap().status, "resolved");
    let notes: Vec<_> = w
        .glpi
        .followups(ticket)
        .into_iter()
        .filter(|f| f.is_private && f.content.contains("did not reach the customer"))
        .collect();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(w.dead_jobs().await.is_empty(), "{:?}", w.dead_jobs().await);
    // Later polls neither post it nor note it again.
    w.poll_now().await;
    w.settled().await;
    assert!(
        w.messages_with(conv, "Uma resposta que o Chatwoot recusa")
            .is_empty()
    );
    w.app.stop().await;
}

/// A technician's followup that is only an image has nothing to post
/// (files are not copied to Chatwoot): the ticket says so once, and the
/// conversation gets nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_followup_with_only_an_image_is_noted_not_posted() {
    let w = world(Options {
        poll: "1h",
        ..Options::default()
    })
    .await;
    let (conv, ticket) = w.maria_opens("Tela azul").await;
    w.settled().await;
    let before = w.cw.messages(conv).len();
    let followup = w
        .glpi
        .add_followup_as(
            ticket,
            w.tech,
            r#"<p><img src="/front/document.send.php?docid=9" alt="print.png" /></p>"#,
            false,
        )
        .unwrap();
    for _ in 0..2 {
        w.poll_now().await;
        w.settled().await;
    }
    assert_eq!(w.cw.messages(conv).len(), before, "nothing posted");
    let notes: Vec<_> = w
        .glpi
        .followups(ticket)
        .into_iter()
        .filter(|f| {
            f.is_private
                && f.content
                    .contains(&format!("Followup #{followup} has no text"))
        })
        .collect();
    assert_eq!(notes.len(), 1, "{notes:?}");
    w.app.stop().await;
}

/// Resolving the conversation fails once (Chatwoot answers 503): the poller
/// tries again and resolves it, and no sweep meanwhile reopens the ticket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resolve_that_fails_is_tried_again_and_the_ticket_stays_solved() {
    let w = world(Options {
        reconcile: "300ms",
        ..Options::default()
    })
    .await;
    let (conv, ticket) = w.maria_opens("Teclado travado").await;
    w.settled().await;
    w.cw.fail_matching("POST", "/toggle_status", 1, 503);
    w.glpi
        .add_solution_as(ticket, w.tech, "Teclado trocado")
        .unwrap();
    wait_for("the conversation resolved", DEADLINE, || async {
        (w.cw.conversation(conv)?.status == "resolved").then_some(())
    })
    .await
    .unwrap();
    w.sweeps(2).await;
    w.settled().await;
    assert_eq!(w.glpi.ticket(ticket).unwrap().status, 5, "reopened");
    assert_eq!(w.glpi.solutions(ticket).len(), 1);
    assert_eq!(w.cw.conversation(conv).unwrap().status, "resolved");
    w.app.stop().await;
}

/// An attachment the bridge cannot fetch (a closed port) is tried a few
/// times, then named in the followup: the conversation's next message is
/// not held back behind it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attachment_that_cannot_be_fetched_does_not_hold_the_conversation() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let w = world(Options {
        extra: format!("attachment_hosts = [\"{closed}\"]"),
        ..Options::default()
    })
    .await;
    let (conv, ticket) = w.maria_opens("Nota fiscal errada").await;
    w.cw.customer_sends_with_attachments(
        conv,
        "Segue a nota",
        &[format!(
            "http://{closed}/rails/active_storage/blobs/redirect/x/nota%20fiscal.pdf"
        )],
    )
    .await
    .unwrap();
    w.cw.customer_sends(conv, "Alguém pode ver?").await.unwrap();
    let followups = w.followups_with(ticket, 2).await;
    assert!(
        followups[0].content.starts_with("Segue a nota"),
        "{}",
        followups[0].content
    );
    assert!(
        followups[0].content.contains("nota fiscal.pdf"),
        "{}",
        followups[0].content
    );
    assert_eq!(followups[1].content, "Alguém pode ver?");
    w.settled().await;
    assert!(w.glpi.documents().is_empty());
    assert!(w.dead_jobs().await.is_empty(), "{:?}", w.dead_jobs().await);
    w.app.stop().await;
}

/// `data_url` comes from the webhook body: the bridge fetches only from
/// Chatwoot's own host or `attachment_hosts`, and checks every redirect
/// hop. Another address (here another loopback port standing for a cloud
/// metadata service) gets no request; the followup names the files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attachments_are_fetched_only_from_allowed_hosts() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let internal = axum::Router::new().fallback(move || {
        let counter = counter.clone();
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            ([("content-type", "image/png")], vec![1u8, 2, 3])
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let internal_addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, internal).await });
    // An allowed storage host whose answer redirects to the internal one.
    let storage = axum::Router::new().fallback(move || async move {
        axum::response::Redirect::temporary(&format!(
            "http://{internal_addr}/latest/meta-data/creds.png"
        ))
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let storage_addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, storage).await });
    let w = world(Options {
        extra: format!("attachment_hosts = [\"{storage_addr}\"]"),
        ..Options::default()
    })
    .await;
    let (conv, ticket) = w.maria_opens("Boleto").await;
    w.cw.customer_sends_with_attachments(
        conv,
        "Veja",
        &[
            format!("http://{internal_addr}/latest/meta-data/iam.png"),
            format!("http://{storage_addr}/blobs/segundo.png"),
        ],
    )
    .await
    .unwrap();
    let followup = w.followups_with(ticket, 1).await.remove(0);
    assert!(followup.content.contains("iam.png"), "{}", followup.content);
    assert!(
        followup.content.contains("segundo.png"),
        "{}",
        followup.content
    );
    w.settled().await;
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "the internal host was fetched"
    );
    assert!(w.glpi.documents().is_empty());
    w.app.stop().await;
}

/// The bridge copied the customer's "Obrigado"; a technician's later reply
/// with the same text is a reply of its own and reaches the customer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_technician_reply_with_the_text_of_a_copied_message_is_posted() {
    let w = world(Options::default()).await;
    let (conv, ticket) = w.maria_opens("Pedido atrasado").await;
    w.cw.customer_sends(conv, "Obrigado").await.unwrap();
    w.followups_with(ticket, 1).await;
    w.settled().await;
    w.glpi
        .add_followup_as(ticket, w.tech, "Obrigado", false)
        .unwrap();
    wait_for("the technician's reply in Chatwoot", DEADLINE, || async {
        w.messages_with(conv, "Obrigado")
            .into_iter()
            .find(|m| m.message_type == 1)
    })
    .await
    .unwrap();
    w.polls(2).await;
    w.settled().await;
    assert_eq!(w.messages_with(conv, "Obrigado").len(), 2);
    let copies = w
        .glpi
        .followups(ticket)
        .into_iter()
        .filter(|f| f.content == "Obrigado")
        .count();
    assert_eq!(copies, 2, "the customer's copy and the technician's reply");
    w.app.stop().await;
}

/// With `sync_messages = false` a message is handled without a copy: once
/// the ticket is closed, the sweep does not take the old messages for new
/// ones and makes no ticket of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_message_sync_the_sweep_makes_no_ticket_of_old_messages() {
    let w = world(Options {
        reconcile: "300ms",
        extra: "sync_messages = false".into(),
        ..Options::default()
    })
    .await;
    let (conv, ticket) = w.maria_opens("Troca de senha").await;
    w.cw.customer_sends(conv, "É para a usuária Joana")
        .await
        .unwrap();
    w.settled().await;
    w.glpi.set_ticket_status(ticket, 6);
    w.sweeps(3).await;
    w.settled().await;
    assert_eq!(w.glpi.tickets().len(), 1, "{:?}", w.glpi.tickets());
    assert!(w.glpi.followups(ticket).is_empty());
    w.app.stop().await;
}

/// A ticket purged in GLPI: an agent's message has nowhere to go and is
/// dropped (not a dead job), and the customer's next message opens a new
/// ticket that takes over the conversation, as for a closed ticket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_purged_in_glpi_is_replaced_by_a_new_one() {
    let w = world(Options::default()).await;
    let (conv, first) = w.maria_opens("Cadeira quebrada").await;
    w.settled().await;
    assert!(w.glpi.purge_ticket(first));
    w.cw.agent_replies(conv, CARLOS, "Vamos verificar")
        .await
        .unwrap();
    w.cw.customer_sends(conv, "Alguma novidade?").await.unwrap();
    let second = wait_for("a new ticket for the conversation", DEADLINE, || async {
        let id =
            w.cw.conversation(conv)?
                .custom_attributes
                .get("glpi_ticket_id")?
                .as_u64()?;
        (id != first).then_some(id)
    })
    .await
    .unwrap();
    assert_eq!(w.glpi.ticket(second).unwrap().name, "Alguma novidade?");
    w.settled().await;
    assert_eq!(w.glpi.tickets().len(), 1);
    assert!(w.dead_jobs().await.is_empty(), "{:?}", w.dead_jobs().await);
    w.app.stop().await;
}

/// A poll finds replies on two tickets changed in different seconds, and the
/// store refuses the first job it enqueues (a deadlock on PostgreSQL, a full
/// disk). The poll fails and runs again; its cursor must not have moved past
/// the older ticket meanwhile, or that reply would never reach Chatwoot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poll_whose_jobs_were_not_stored_does_not_move_its_cursor() {
    let (store, dir) = store::testing::fresh_sqlite().await;
    let db = dir.path().join("store.db");
    let w = world_on(store, Some(dir), Options::default()).await;
    let (first_conv, first) = w.maria_opens("Impressora sem toner").await;
    let (second_conv, second) = w.maria_opens("Monitor piscando").await;
    w.settled().await;
    let cursor_before = w.app.store.cursor("chatwoot:cw:poll").await.unwrap();

    // The store refuses every ticket_changed job until the trigger goes.
    let sql = rusqlite::Connection::open(&db).unwrap();
    sql.execute_batch(
        "CREATE TRIGGER refuse_ticket_changed BEFORE INSERT ON jobs
         WHEN NEW.kind = 'chatwoot.ticket_changed'
         BEGIN SELECT RAISE(ABORT, 'refused by the test'); END;",
    )
    .unwrap();
    w.glpi
        .add_followup_as(first, w.tech, "Toner a caminho", false)
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    w.glpi
        .add_followup_as(second, w.tech, "Troque o cabo, por favor", false)
        .unwrap();
    wait_for("a poll that could not store its jobs", DEADLINE, || async {
        let polls = w
            .app
            .store
            .jobs(&JobFilter {
                kind: Some("chatwoot.poll".into()),
                limit: Some(1000),
                ..JobFilter::default()
            })
            .await
            .unwrap();
        polls
            .iter()
            .any(|j| {
                j.last_error
                    .as_deref()
                    .is_some_and(|e| e.contains("refused by the test"))
            })
            .then_some(())
    })
    .await
    .unwrap();
    assert_eq!(
        w.app.store.cursor("chatwoot:cw:poll").await.unwrap(),
        cursor_before,
        "the cursor stays where it was while the poll's jobs are not stored"
    );
    sql.execute_batch("DROP TRIGGER refuse_ticket_changed")
        .unwrap();

    // Later polls (the chain goes on) find both tickets again.
    for (conv, text) in [
        (first_conv, "Toner a caminho"),
        (second_conv, "Troque o cabo, por favor"),
    ] {
        wait_for("the technician's reply in Chatwoot", DEADLINE, || async {
            w.messages_with(conv, text).into_iter().next()
        })
        .await
        .unwrap();
    }
    w.app.stop().await;
}

/// Every instance schedules the sweep as it starts. Instances started one
/// after another (a rolling deploy, a crash loop) must not push it back:
/// the earliest time stands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_instance_does_not_put_off_the_sweep() {
    let (store, dir) = store::testing::fresh_sqlite().await;
    let w = world_on(store.clone(), Some(dir), Options::default()).await;
    let sweep = || async {
        let pending = store
            .jobs(&JobFilter {
                status: Some(JobStatus::Pending),
                kind: Some("chatwoot.reconcile".into()),
                ..JobFilter::default()
            })
            .await
            .unwrap();
        assert!(pending.len() <= 1, "one sweep pending: {pending:?}");
        pending.first().map(|job| (job.run_at, job.updated_at))
    };
    // Each instance schedules it as its start-up completes.
    let (first, stamped) = wait_for("the first instance's sweep", DEADLINE, sweep)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let second = TestApp::spawn(w.config.clone(), store.clone())
        .await
        .unwrap();
    let (run_at, _) = wait_for("the second instance's sweep", DEADLINE, || async {
        sweep().await.filter(|(_, updated)| *updated > stamped)
    })
    .await
    .unwrap();
    assert_eq!(run_at, first, "the sweep keeps its time");
    second.stop().await;
    w.app.stop().await;
}

/// Chatwoot renders outgoing messages as Liquid templates. A technician's
/// reply holding `{{ … }}` and `{% … %}` reaches the customer as written (the
/// customer's name is not put in, nothing blanked), and when Chatwoot's
/// answer is lost the retry still recognises the reply it posted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_with_template_braces_reaches_the_customer_as_written() {
    let w = world(Options::default()).await;
    let (conv, ticket) = w.maria_opens("Como acesso o portal?").await;
    let reply = "No campo usuário digite {{ contact.name }} e depois {% senha %}";
    let as_seen = |w: &World| -> Vec<sim::chatwoot::Message> {
        w.cw.messages(conv)
            .into_iter()
            .filter(|m| m.content.replace('\u{200B}', "") == reply)
            .collect()
    };
    w.cw.lose_answers("POST", "/messages", 1);
    w.glpi
        .add_followup_as(ticket, w.tech, reply, false)
        .unwrap();
    wait_for("the reply in Chatwoot", DEADLINE, || async {
        as_seen(&w).into_iter().next()
    })
    .await
    .unwrap();
    w.polls(2).await;
    w.settled().await;
    let copies = as_seen(&w);
    assert_eq!(copies.len(), 1, "posted once: {copies:?}");
    assert!(!copies[0].private);
    assert!(
        w.cw.messages(conv)
            .iter()
            .all(|m| !m.content.contains("Maria")),
        "nothing rendered into the conversation"
    );
    let followups = w
        .glpi
        .followups(ticket)
        .into_iter()
        .filter(|f| f.content.contains("No campo usu"))
        .count();
    assert_eq!(followups, 1, "nothing copied back to GLPI");
    w.app.stop().await;
}

/// Chatwoot repeats a message's content up to three times in its webhook,
/// escaped: an HTML email of a few hundred kilobytes makes a body larger than
/// the server's 1 MiB default. The Chatwoot route takes up to its source's
/// `body_limit`, and refuses more with a 413 that names that setting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_email_webhook_is_taken_up_to_the_sources_limit() {
    let w = world(Options {
        extra: "body_limit = 2097152".into(),
        ..Options::default()
    })
    .await;
    let fixture: Value = serde_json::from_slice(
        &std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/chatwoot/contact_created.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let send = |size: usize, delivery: &'static str| {
        let mut event = fixture.clone();
        event["additional_attributes"] = json!({"signature_html": "<p>x</p>".repeat(size / 8)});
        let body = serde_json::to_vec(&event).unwrap();
        let now = time_now();
        w.app
            .http
            .post(w.app.url("/hooks/chatwoot/cw"))
            .header("content-type", "application/json")
            .header("x-chatwoot-signature", sign(SECRET, now, &body))
            .header("x-chatwoot-timestamp", now.to_string())
            .header("x-chatwoot-delivery", delivery)
            .body(body)
            .send()
    };
    let taken = send(1_500_000, "large-1").await.unwrap();
    assert_eq!(taken.status(), 200, "{:?}", taken.text().await);
    // The server answers before the body is all sent and closes the
    // connection; now and then the client sees the reset before the answer.
    let mut tries = 0;
    let refused = loop {
        match send(2_500_000, "large-2").await {
            Ok(answer) => break answer,
            Err(error) => {
                tries += 1;
                assert!(tries < 5, "{error}");
            }
        }
    };
    assert_eq!(refused.status(), 413);
    let answer: Value = refused.json().await.unwrap();
    assert_eq!(answer["error"]["code"], "payload_too_large");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(message.contains("sources.cw.body_limit"), "{message}");
    // Other routes keep the server's limit.
    let mut tries = 0;
    let other = loop {
        let sent = w
            .app
            .http
            .post(w.app.url("/api/v1/events/none"))
            .header("content-type", "application/json")
            .body(vec![b' '; 1_500_000])
            .send()
            .await;
        match sent {
            Ok(answer) => break answer,
            Err(error) => {
                tries += 1;
                assert!(tries < 5, "{error}");
            }
        }
    };
    assert_eq!(other.status(), 413);
    w.app.stop().await;
}

/// The help desk refuses the bridge's own login (an administrator
/// regenerated the API user's token). That is no fault of the conversation:
/// its job waits and tries again rather than becoming a dead letter, and
/// once the operator has fixed the token the ticket is made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversation_waits_out_a_rotated_help_desk_token() {
    let (store, dir) = store::testing::fresh_sqlite().await;
    let db = dir.path().join("store.db");
    let w = world_on(store, Some(dir), Options::default()).await;
    let token = w.glpi.user_token("glpi").unwrap();
    assert!(w.glpi.set_user_token("glpi", Some("regenerated")));
    w.glpi.expire_all_sessions();
    let maria = w.maria().await;
    let conv =
        w.cw.customer_starts_conversation(maria, w.cw.default_inbox(), "Sem acesso ao sistema")
            .await
            .unwrap()
            .conversation_id;
    let waiting = wait_for("the refused job to wait", DEADLINE, || async {
        let jobs = w
            .app
            .store
            .jobs(&JobFilter {
                status: Some(JobStatus::Pending),
                kind: Some("chatwoot.event".into()),
                ..JobFilter::default()
            })
            .await
            .unwrap();
        jobs.into_iter()
            .find(|j| j.attempts >= 1 && j.last_error.is_some())
    })
    .await
    .unwrap();
    assert!(
        waiting.run_at >= store::now_ms() + 200_000,
        "it waits minutes, not seconds: {waiting:?}"
    );
    let dead = w
        .app
        .store
        .jobs(&JobFilter {
            status: Some(JobStatus::Dead),
            ..JobFilter::default()
        })
        .await
        .unwrap();
    assert!(dead.is_empty(), "no dead letter: {dead:?}");

    // The operator fixes the token; the waits (of every job refused before
    // the fix) are cut short here by hand.
    assert!(w.glpi.set_user_token("glpi", Some(&token)));
    let sql = rusqlite::Connection::open(&db).unwrap();
    wait_for("the ticket in the conversation", DEADLINE, || async {
        sql.execute(
            "UPDATE jobs SET run_at = 0 WHERE status = 'pending' AND attempts > 0",
            [],
        )
        .unwrap();
        w.app.engine.waker().wake();
        tokio::time::sleep(Duration::from_millis(100)).await;
        w.cw.conversation(conv)
            .and_then(|c| c.custom_attributes.get("glpi_ticket_id").cloned())
    })
    .await
    .unwrap();
    let ticket = w.ticket_of(conv).await;
    assert!(w.glpi.ticket(ticket).is_some());
    w.app.stop().await;
}
