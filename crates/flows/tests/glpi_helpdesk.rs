//! `GlpiHelpdesk` against the GLPI simulator over real HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use flows::Helpdesk;
use flows::glpi::{GlpiHelpdesk, GlpiTargetOptions};
use flows::helpdesk::{Attachment, NewFollowup, NewTicket, PersonQuery, Requester, TicketKind};
use glpi::{Auth, GlpiClient, GlpiConfig};
use secrecy::SecretString;
use sim_glpi::{GlpiSim, GlpiVersion, RunningSim, SimConfig};

async fn helpdesk(mode: GlpiVersion) -> (RunningSim, GlpiHelpdesk) {
    let sim = GlpiSim::start(SimConfig::with_mode(mode)).await.unwrap();
    let config = GlpiConfig::new(
        sim.base_url(),
        Auth::UserToken(SecretString::from(sim.user_token("glpi").unwrap())),
    )
    .with_app_token(SecretString::from(sim.app_token()))
    .with_timeout(Duration::from_secs(10));
    let client = GlpiClient::new(config).unwrap();
    let helpdesk = GlpiHelpdesk::new("glpi", client, GlpiTargetOptions::default());
    (sim, helpdesk)
}

fn new_ticket(marker: &str, attachments: Vec<Attachment>) -> NewTicket {
    NewTicket {
        organisation: None,
        title: "Impressora".into(),
        content: "Sem toner".into(),
        requester: Requester::EmailOnly {
            email: "cliente@example.org".into(),
            name: None,
        },
        category: None,
        urgency: None,
        kind: TicketKind::Incident,
        request_type: None,
        assignee: None,
        marker: marker.into(),
        attachments,
    }
}

fn log_file() -> Attachment {
    Attachment {
        filename: "erro.txt".into(),
        mime: "text/plain".into(),
        bytes: b"erro 0x50 na bandeja 2".to_vec(),
    }
}

/// Each POST /Document creates a document and its link. When GLPI carried
/// the upload out but its answer was lost, the retry finds the file on the
/// ticket (or followup) and does not upload it a second time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_whose_answer_was_lost_is_not_made_twice() {
    for mode in [GlpiVersion::V10, GlpiVersion::V11] {
        let (sim, hd) = helpdesk(mode).await;
        sim.faults().lose_answers("POST /Document", 1);
        let ticket = hd
            .create_ticket(&new_ticket("tb:test:1:1", vec![log_file()]))
            .await
            .unwrap();
        assert_eq!(sim.documents().len(), 1, "{mode:?}: exactly one document");
        assert_eq!(
            sim.documents()[0].linked_to,
            vec![("Ticket".to_owned(), ticket.id as u64)]
        );
        assert_eq!(
            sim.calls_to("POST /Document"),
            1,
            "{mode:?}: not sent again"
        );
        assert!(
            sim.followups(ticket.id as u64).is_empty(),
            "{mode:?}: no note about a missing file"
        );

        // The same on a followup.
        sim.faults().lose_answers("POST /Document", 1);
        let followup = hd
            .add_followup(
                ticket.id,
                &NewFollowup {
                    content: "segue o log".into(),
                    private: false,
                    author: None,
                    attachments: vec![log_file()],
                },
            )
            .await
            .unwrap();
        let on_followup: Vec<_> = sim
            .documents()
            .into_iter()
            .filter(|d| {
                d.linked_to
                    .contains(&("ITILFollowup".to_owned(), followup as u64))
            })
            .collect();
        assert_eq!(
            on_followup.len(),
            1,
            "{mode:?}: one document on the followup"
        );
        assert_eq!(sim.documents().len(), 2);
    }
}

/// A ticket rule may move a new ticket to an entity the bot cannot read: the
/// read-back after the create answers 403. The ticket exists, so the create
/// succeeded (a failure would make the caller submit it again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_created_ticket_that_cannot_be_read_back_is_still_created() {
    let (sim, hd) = helpdesk(GlpiVersion::V10).await;
    sim.faults().refuse("GET /Ticket/:id", 5);
    let ticket = hd
        .create_ticket(&new_ticket("tb:test:2:1", Vec::new()))
        .await
        .unwrap();
    assert_eq!(sim.tickets().len(), 1);
    assert_eq!(sim.tickets()[0].id, ticket.id as u64);
    assert_eq!(ticket.title, "Impressora");
}

/// A user whose default entity is null has no organisation: null is not the
/// root entity, and taking it for one sends tickets to the root.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_without_a_default_entity_has_no_organisation() {
    let (sim, hd) = helpdesk(GlpiVersion::V10).await;
    let acme = sim.add_entity("ACME", 0, None);
    let with = sim.add_user(sim_glpi::NewUser {
        emails: vec!["ana@acme.example".into()],
        entities_id: acme,
        ..sim_glpi::NewUser::new("ana")
    });
    let without = sim.add_user(sim_glpi::NewUser {
        emails: vec!["rui@acme.example".into()],
        entities_id: acme,
        ..sim_glpi::NewUser::new("rui")
    });
    sim.set_user_default_entity(without, None);
    let find = |email: &str| PersonQuery {
        email: Some(email.into()),
        ..PersonQuery::default()
    };
    let ana = hd
        .find_person(&find("ana@acme.example"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ana.id, with as i64);
    assert_eq!(ana.organisation, Some(acme as i64));
    let rui = hd
        .find_person(&find("rui@acme.example"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rui.id, without as i64);
    assert_eq!(rui.organisation, None);
}

/// A disabled user is never the requester, not even through its login: when
/// the login and every suffixed one belong to disabled users, creating the
/// requester fails as GLPI's own failure (an administrator must enable or
/// rename one; retrying at once cannot help), naming them, and no account is
/// taken or made.
#[tokio::test]
async fn a_requester_whose_logins_all_belong_to_disabled_users_is_refused() {
    let (sim, hd) = helpdesk(GlpiVersion::V10).await;
    let logins: Vec<String> = std::iter::once("ana@acme.com.br".to_owned())
        .chain((2..=10).map(|n| format!("ana@acme.com.br-{n}")))
        .collect();
    for login in &logins {
        let id = sim.add_user(sim_glpi::NewUser::new(login));
        assert!(sim.set_user_active(id, false));
    }
    let users_before = sim.users().len();
    let error = hd
        .create_person(&flows::helpdesk::NewPerson {
            kind: flows::helpdesk::PersonKind::User,
            name: "Ana".into(),
            email: Some("ana@acme.com.br".into()),
            phone: None,
            organisation: None,
        })
        .await
        .unwrap_err();
    assert!(
        matches!(error, flows::helpdesk::HelpdeskError::Failed { .. }),
        "{error}"
    );
    assert!(!error.is_retryable());
    let message = error.to_string();
    assert!(
        message.contains("ana@acme.com.br,") && message.contains("ana@acme.com.br-10"),
        "{message}"
    );
    assert!(message.contains("disabled"), "{message}");
    assert_eq!(sim.users().len(), users_before);
}
