//! Two instances sharing one store create a new Chatwoot contact's person
//! once. A new WhatsApp contact produces `contact_created` (ordered per
//! contact) and `message_created` (ordered per conversation) within
//! milliseconds; each instance takes one. Both used to find nobody in GLPI
//! and both created a Contact (GLPI Contacts have no unique login). Here each
//! instance is a `ChatwootFlow` of its own (its own GLPI session, its own
//! in-process contact locks) on one store, the two events are applied at the
//! same moment, and GLPI's Contact creation is slow: exactly one Contact must
//! exist afterwards, and the ticket must name it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use chatwoot_sync::{ChatwootFlow, SyncResult};
use serde_json::Value;
use sim::chatwoot::{ChatwootSim, NewContact, RunningChatwoot};
use sim::glpi::{GlpiSim, RunningSim, SimConfig};
use store::Store;

const PHONE: &str = "+55 11 91234-5678";
const E164: &str = "+5511912345678";
/// How long GLPI takes to create a Contact: the window in which the other
/// instance's search still finds nobody.
const SLOW_CREATE: Duration = Duration::from_millis(600);

/// One "instance": its targets (GLPI client and session) and its flow.
struct Instance {
    targets: flows::Targets,
    flow: ChatwootFlow,
}

impl Instance {
    async fn new(config: &config::Config, store: &Store) -> Instance {
        let targets = flows::Targets::from_config(config).unwrap();
        let flow = ChatwootFlow::from_config(config, &targets, store).unwrap();
        Instance { targets, flow }
    }

    /// Applies a webhook body as the engine would: a retryable failure is
    /// tried again after the delay it asks for (the engine's backoff is
    /// shorter than that hint in tests, so the hint decides).
    async fn apply(&self, body: Value) -> (SyncResult<()>, u32) {
        let source = self.flow.source("cw").unwrap();
        let mut retries = 0;
        loop {
            match source.on_event(body.clone()).await {
                Err(error) if error.is_retryable() && retries < 20 => {
                    retries += 1;
                    let wait = error.retry_after().unwrap_or(Duration::from_millis(200));
                    assert!(
                        wait <= Duration::from_secs(2),
                        "a short retry is asked for: {wait:?} ({error})"
                    );
                    tokio::time::sleep(wait).await;
                }
                outcome => return (outcome, retries),
            }
        }
    }
}

struct World {
    glpi: RunningSim,
    cw: RunningChatwoot,
    a: Instance,
    b: Instance,
}

async fn world(store_a: Store, store_b: Store) -> World {
    let glpi = GlpiSim::start(SimConfig::default()).await.unwrap();
    let entity = glpi.add_entity("ACME Suporte", 0, None);
    // No webhook target: the simulator records each body, and the test
    // hands them to the instances itself.
    let cw = ChatwootSim::start(sim::chatwoot::SimConfig::default())
        .await
        .unwrap();
    let toml = format!(
        r#"
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
entity = {entity}
poll_interval = "1h"
reconcile_interval = "1h"
timeout = "5s"
"#,
        glpi_url = glpi.base_url(),
        cw_url = cw.base_url(),
    );
    let env = vec![
        ("APP".to_string(), glpi.app_token()),
        ("USER".to_string(), glpi.user_token("glpi").unwrap()),
        ("CW_TOKEN".to_string(), cw.api_token()),
        ("CW_SECRET".to_string(), "secret".to_string()),
    ];
    let config = config::load_str(&toml, env).unwrap();
    let a = Instance::new(&config, &store_a).await;
    let b = Instance::new(&config, &store_b).await;
    World { glpi, cw, a, b }
}

impl World {
    /// The body of the latest recorded webhook of this event.
    fn body(&self, event: &str) -> Value {
        let delivery = self
            .cw
            .deliveries()
            .into_iter()
            .rev()
            .find(|d| d.event == event)
            .unwrap_or_else(|| panic!("no {event} recorded"));
        serde_json::from_str(&delivery.body).unwrap()
    }

    async fn contact(&self, name: &str) -> u64 {
        self.cw
            .add_contact(NewContact {
                name: name.into(),
                email: None,
                phone_number: Some(PHONE.into()),
                identifier: None,
            })
            .await
    }

    /// `contact_created` of `first` on instance A and `message_created` of a
    /// conversation of `writer` on instance B, at the same moment.
    async fn race(&self, contact_created: Value, message_created: Value) {
        self.glpi
            .faults()
            .set_endpoint_latency("POST /Contact", SLOW_CREATE);
        let ((a, a_retries), (b, b_retries)) =
            tokio::join!(self.a.apply(contact_created), self.b.apply(message_created));
        a.unwrap();
        b.unwrap();
        assert!(
            a_retries + b_retries <= 3,
            "the loser's retry finds the person: {a_retries} and {b_retries} retries"
        );
    }

    /// Exactly one GLPI Contact has the phone, and the conversation's ticket
    /// names it.
    fn assert_one_contact_named_by(&self, conversation: u64) {
        let contacts: Vec<_> = self
            .glpi
            .contacts()
            .into_iter()
            .filter(|c| {
                [&c.mobile, &c.phone]
                    .iter()
                    .any(|p| p.as_deref().is_some_and(|p| glpi::same_phone(p, E164)))
            })
            .collect();
        assert_eq!(
            contacts.len(),
            1,
            "one GLPI Contact per phone: {contacts:?}"
        );
        let ticket = self
            .cw
            .conversation(conversation)
            .and_then(|c| c.custom_attributes.get("glpi_ticket_id").cloned())
            .and_then(|v| v.as_u64())
            .expect("the conversation's ticket");
        let content = self.glpi.ticket(ticket).unwrap().content;
        assert!(
            content.contains(&format!("GLPI contact #{}", contacts[0].id)),
            "{content}"
        );
    }

    async fn stop(self) {
        self.a.targets.close().await;
        self.b.targets.close().await;
    }
}

/// `contact_created` and the first `message_created` of one new phone-only
/// contact, each on its own instance.
async fn one_contact_two_events(store_a: Store, store_b: Store) {
    let w = world(store_a, store_b).await;
    let joao = w.contact("João Lima").await;
    let contact_created = w.body("contact_created");
    let conversation =
        w.cw.customer_starts_conversation(joao, w.cw.default_inbox(), "Quero cancelar o plano")
            .await
            .unwrap()
            .conversation_id;
    let message_created = w.body("message_created");
    w.race(contact_created, message_created).await;
    w.assert_one_contact_named_by(conversation);
    w.stop().await;
}

/// The same phone through two Chatwoot contact ids (a second inbox made a
/// contact of its own): the phone itself is claimed, not only the contact.
async fn two_contacts_one_phone(store_a: Store, store_b: Store) {
    let w = world(store_a, store_b).await;
    w.contact("João Lima").await;
    let contact_created = w.body("contact_created");
    let again = w.contact("João (WhatsApp)").await;
    let conversation =
        w.cw.customer_starts_conversation(again, w.cw.default_inbox(), "Oi, sou eu de novo")
            .await
            .unwrap()
            .conversation_id;
    let message_created = w.body("message_created");
    w.race(contact_created, message_created).await;
    w.assert_one_contact_named_by(conversation);
    w.stop().await;
}

/// Two handles on one SQLite file, as two processes would have.
async fn sqlite_pair() -> (Store, Store, tempfile::TempDir) {
    let (a, dir) = store::testing::fresh_sqlite().await;
    let b = Store::connect(&store::testing::sqlite_url(&dir))
        .await
        .unwrap();
    (a, b, dir)
}

/// Two pools on one PostgreSQL database (None when no server is configured).
async fn postgres_pair() -> Option<(Store, Store)> {
    let Some(url) = store::testing::fresh_postgres_url().await else {
        println!("{}", store::testing::POSTGRES_SKIPPED);
        return None;
    };
    let a = Store::connect(&url).await.unwrap();
    let b = Store::connect(&url).await.unwrap();
    Some((a, b))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_contact_seen_by_two_instances_becomes_one_glpi_contact() {
    let (a, b, _dir) = sqlite_pair().await;
    one_contact_two_events(a, b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_contact_seen_by_two_instances_becomes_one_glpi_contact_on_postgres() {
    let Some((a, b)) = postgres_pair().await else {
        return;
    };
    one_contact_two_events(a, b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_phone_behind_two_chatwoot_contacts_becomes_one_glpi_contact() {
    let (a, b, _dir) = sqlite_pair().await;
    two_contacts_one_phone(a, b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_phone_behind_two_chatwoot_contacts_becomes_one_glpi_contact_on_postgres() {
    let Some((a, b)) = postgres_pair().await else {
        return;
    };
    two_contacts_one_phone(a, b).await;
}
