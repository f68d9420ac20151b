//! `ItopHelpdesk` against the iTop simulator over real HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use flows::Helpdesk;
use flows::helpdesk::{
    Attachment, NewFollowup, NewPerson, NewTicket, PersonKind, PersonQuery, Requester, TicketKind,
    TicketStatus,
};
use flows::itop::{ItopHelpdesk, ItopTargetOptions};
use secrecy::SecretString;
use serde_json::json;
use sim_itop::{ItopSim, ItopSimConfig, RunningItop};

async fn helpdesk() -> (RunningItop, ItopHelpdesk) {
    let sim = ItopSim::start(ItopSimConfig::default()).await.unwrap();
    let config = itop::ItopConfig::new(
        sim.root_url().parse().unwrap(),
        itop::ItopAuth::Basic {
            user: sim.rest_user(),
            password: SecretString::from(sim.rest_password()),
        },
    );
    let client = itop::ItopClient::new(config).unwrap();
    let helpdesk = ItopHelpdesk::new(
        "itop",
        client,
        ItopTargetOptions {
            default_org: Some(3),
            ..ItopTargetOptions::default()
        },
    );
    (sim, helpdesk)
}

fn new_ticket(caller: i64, marker: &str) -> NewTicket {
    NewTicket {
        organisation: Some(3),
        title: "Printer jam".into(),
        content: "Paper stuck\nsecond line".into(),
        requester: Requester::Person {
            id: caller,
            kind: PersonKind::User,
        },
        category: None,
        urgency: Some(5),
        kind: TicketKind::Incident,
        request_type: None,
        assignee: None,
        marker: marker.into(),
        attachments: vec![Attachment {
            filename: "log.txt".into(),
            mime: "text/plain".into(),
            bytes: b"jam at 10:02".to_vec(),
        }],
    }
}

#[tokio::test]
async fn people_and_organisations_are_found() {
    let (sim, hd) = helpdesk().await;
    let org = sim
        .seed(
            "Organization",
            serde_json::json!({"name":"ACME","code":"12.345.678/0001-90"}),
        )
        .unwrap();
    let found = hd
        .find_organisation_by_tax_id("12345678000190")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((found.id, found.name.as_str()), (org as i64, "ACME"));
    assert!(
        hd.find_organisation_by_tax_id("999")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(hd.organisation(3).await.unwrap().unwrap().name, "Demo");

    let p = sim
        .seed_person(
            "Ana",
            "Souza",
            org,
            "ana@acme.example",
            "+55 (11) 98765-4321",
        )
        .unwrap();
    let by_mail = hd
        .find_person(&PersonQuery {
            email: Some("ana@acme.example".into()),
            phone: None,
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_mail.id, p as i64);
    let by_phone = hd
        .find_person(&PersonQuery {
            email: None,
            phone: Some("+5511987654321".into()),
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_phone.id, p as i64);
    assert!(
        hd.find_person(&PersonQuery {
            email: Some("nobody@x.example".into()),
            phone: Some("+5511900000000".into())
        })
        .await
        .unwrap()
        .is_none()
    );

    let created = hd
        .create_person(&NewPerson {
            kind: PersonKind::User,
            name: "Bruno Lima Costa".into(),
            email: Some("bruno@acme.example".into()),
            phone: None,
            organisation: None,
        })
        .await
        .unwrap();
    let stored = sim.object("Person", created.id as u64).unwrap();
    assert_eq!(stored["first_name"], "Bruno");
    assert_eq!(stored["name"], "Lima Costa");
    assert_eq!(stored["org_id"], "3");
    sim.shutdown().await;
}

/// iTop refuses a Person without a first name: a one-word name (or an
/// email or phone standing in for one) is still created.
#[tokio::test]
async fn a_person_with_a_one_word_name_is_created() {
    let (sim, hd) = helpdesk().await;
    for name in ["Maria", "+5511987654321", "  "] {
        let created = hd
            .create_person(&NewPerson {
                kind: PersonKind::User,
                name: name.into(),
                email: None,
                phone: Some("+5511987654321".into()),
                organisation: Some(3),
            })
            .await
            .unwrap_or_else(|e| panic!("{name:?}: {e}"));
        let stored = sim.object("Person", created.id as u64).unwrap();
        assert_eq!(stored["first_name"], "-", "{stored}");
        let last = if name.trim().is_empty() {
            "Unknown"
        } else {
            name
        };
        assert_eq!(stored["name"], last, "{stored}");
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn tickets_are_created_found_and_followed_up() {
    let (sim, hd) = helpdesk().await;
    let ticket = hd
        .create_ticket(&new_ticket(15, "tb:marker:1"))
        .await
        .unwrap();
    let id = ticket.id as u64;
    let stored = sim.object("UserRequest", id).unwrap();
    assert_eq!(stored["title"], "Printer jam");
    assert_eq!(stored["caller_id"], "15");
    assert_eq!(stored["org_id"], "3");
    assert_eq!(stored["urgency"], "1");
    assert!(
        stored["description"]
            .as_str()
            .unwrap()
            .contains("tb:marker:1")
    );
    assert_eq!(sim.attachments("UserRequest", id)[0].data, b"jam at 10:02");
    assert_eq!(ticket.status, TicketStatus::New);

    assert_eq!(
        hd.find_ticket_by_marker("tb:marker:1")
            .await
            .unwrap()
            .unwrap()
            .id,
        ticket.id
    );
    assert!(
        hd.find_ticket_by_marker("tb:marker:2")
            .await
            .unwrap()
            .is_none()
    );

    let email_only = NewTicket {
        requester: Requester::EmailOnly {
            email: "x@y.example".into(),
            name: None,
        },
        ..new_ticket(15, "m")
    };
    assert!(hd.create_ticket(&email_only).await.is_err());

    let public = hd
        .add_followup(
            ticket.id,
            &NewFollowup {
                content: "hello".into(),
                private: false,
                author: None,
                attachments: vec![],
            },
        )
        .await
        .unwrap();
    let private = hd
        .add_followup(
            ticket.id,
            &NewFollowup {
                content: "internal".into(),
                private: true,
                author: None,
                attachments: vec![],
            },
        )
        .await
        .unwrap();
    assert_eq!(sim.case_log("UserRequest", id, "public_log").len(), 1);
    assert_eq!(
        sim.case_log("UserRequest", id, "private_log")[0].message,
        "internal"
    );
    let all = hd.followups(ticket.id).await.unwrap();
    assert_eq!(
        all.iter().map(|f| (f.id, f.private)).collect::<Vec<_>>(),
        vec![(public, false), (private, true)]
    );
    assert_eq!(all[0].content, "hello");

    let person = hd
        .find_person(&PersonQuery {
            email: Some(
                sim.object("Person", 15).unwrap()["email"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            ),
            phone: None,
        })
        .await
        .unwrap();
    if let Some(person) = person {
        assert!(
            hd.tickets_of(&person, true)
                .await
                .unwrap()
                .iter()
                .any(|t| t.id == ticket.id)
        );
    }
    let changed = hd.changed_since("2000-01-01 00:00:00").await.unwrap();
    assert!(changed.iter().any(|t| t.id == ticket.id));
    sim.shutdown().await;
}

#[tokio::test]
async fn status_changes_use_the_stimuli_and_their_fields() {
    let (sim, hd) = helpdesk().await;
    let ticket = hd
        .create_ticket(&new_ticket(15, "tb:status"))
        .await
        .unwrap();
    let id = ticket.id as u64;
    hd.set_status(
        ticket.id,
        TicketStatus::Waiting,
        Some("waiting for the customer"),
    )
    .await
    .unwrap();
    let t = sim.object("UserRequest", id).unwrap();
    assert_eq!(
        (t["status"].as_str(), t["pending_reason"].as_str()),
        (Some("pending"), Some("waiting for the customer"))
    );
    hd.set_status(ticket.id, TicketStatus::Solved, Some("replaced the roller"))
        .await
        .unwrap();
    let t = sim.object("UserRequest", id).unwrap();
    assert_eq!(t["status"], "resolved");
    assert!(
        t["solution"]
            .as_str()
            .unwrap()
            .contains("replaced the roller")
    );
    hd.set_status(ticket.id, TicketStatus::Assigned, None)
        .await
        .unwrap();
    assert_eq!(sim.object("UserRequest", id).unwrap()["status"], "assigned");
    hd.set_status(ticket.id, TicketStatus::Closed, None)
        .await
        .unwrap();
    assert_eq!(
        hd.ticket(ticket.id).await.unwrap().unwrap().status,
        TicketStatus::Closed
    );
    assert!(
        hd.set_status(ticket.id, TicketStatus::Assigned, None)
            .await
            .is_err()
    );
    assert!(hd.ticket(999_999).await.unwrap().is_none());
    sim.shutdown().await;
}

/// iTop computes the priority from impact × urgency, and its default impact
/// is a whole department: a ticket one person asks for is sent with impact
/// "a person", so "very high" urgency is priority high (2), not critical.
#[tokio::test]
async fn a_ticket_for_one_person_has_a_person_impact() {
    let (sim, hd) = helpdesk().await;
    let ticket = hd
        .create_ticket(&NewTicket {
            attachments: vec![],
            ..new_ticket(15, "tb:impact")
        })
        .await
        .unwrap();
    let stored = sim.object("UserRequest", ticket.id as u64).unwrap();
    assert_eq!(
        (&stored["impact"], &stored["urgency"], &stored["priority"]),
        (&json!("3"), &json!("1"), &json!("2")),
        "{stored}"
    );
    sim.shutdown().await;
}

/// A followup written on behalf of someone shows that person as the
/// case-log entry's author, not the REST account.
#[tokio::test]
async fn a_followup_shows_its_author() {
    let (sim, hd) = helpdesk().await;
    let ticket = hd
        .create_ticket(&NewTicket {
            attachments: vec![],
            ..new_ticket(15, "tb:author")
        })
        .await
        .unwrap();
    hd.add_followup(
        ticket.id,
        &NewFollowup {
            content: "still broken".into(),
            private: false,
            author: Some(15),
            attachments: vec![],
        },
    )
    .await
    .unwrap();
    let log = sim.case_log("UserRequest", ticket.id as u64, "public_log");
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].user_login, "Agatha Christie", "{log:?}");
    sim.shutdown().await;
}

/// A followup's id comes from the update that wrote it, not from a later
/// read of the log, which could end with an agent's entry written meanwhile.
#[tokio::test]
async fn a_followup_id_comes_from_its_own_write() {
    let (sim, hd) = helpdesk().await;
    let ticket = hd
        .create_ticket(&NewTicket {
            attachments: vec![],
            ..new_ticket(15, "tb:own-write")
        })
        .await
        .unwrap();
    let reads = sim.calls("core/get");
    let id = hd
        .add_followup(
            ticket.id,
            &NewFollowup {
                content: "mine".into(),
                private: false,
                author: None,
                attachments: vec![],
            },
        )
        .await
        .unwrap();
    assert_eq!(sim.calls("core/get"), reads, "no read after the write");
    let all = hd.followups(ticket.id).await.unwrap();
    let found = all.iter().find(|f| f.id == id).unwrap();
    assert_eq!(found.content, "mine");
    sim.shutdown().await;
}

/// The target's `default_org` is where a requester with no organisation
/// is created (iTop refuses a Person without one).
#[tokio::test]
async fn a_configured_default_org_takes_requesters_without_one() {
    let sim = ItopSim::start(ItopSimConfig::default()).await.unwrap();
    let toml = format!(
        r#"
[targets.itop]
kind = "itop"
url = "{url}"
user = "{user}"
password = "{password}"
default_org = 3
"#,
        url = sim.base_url(),
        user = sim.rest_user(),
        password = sim.rest_password(),
    );
    let config = config::load_str(&toml, Vec::new()).unwrap();
    let targets = flows::Targets::from_config(&config).unwrap();
    let hd = targets.helpdesk("itop").unwrap();
    let created = hd
        .create_person(&NewPerson {
            kind: PersonKind::User,
            name: "Rita Lee".into(),
            email: Some("rita@example.com".into()),
            phone: None,
            organisation: None,
        })
        .await
        .unwrap();
    let stored = sim.object("Person", created.id as u64).unwrap();
    assert_eq!(stored["org_id"], json!("3"), "{stored}");
    sim.shutdown().await;
}
