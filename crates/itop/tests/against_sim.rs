//! The client against the iTop simulator over real HTTP: every operation and
//! each error class (spec §4-§7, transcript sections named in each test).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use itop::{
    CaseLog, ItopAuth, ItopClient, ItopConfig, ItopError, Key, NewAttachment, NewLogEntry,
    NewPerson, NewUserRequest, Stimulus,
};
use secrecy::SecretString;
use serde_json::json;
use sim_itop::{Fault, ItopSim, ItopSimConfig, RunningItop};

async fn sim() -> RunningItop {
    ItopSim::start(ItopSimConfig::default()).await.unwrap()
}

fn client_with(sim: &RunningItop, auth: ItopAuth) -> ItopClient {
    let mut cfg = ItopConfig::new(sim.base_url().parse().unwrap(), auth);
    cfg.timeout = Duration::from_secs(5);
    ItopClient::new(cfg).unwrap()
}

fn client(sim: &RunningItop) -> ItopClient {
    client_with(
        sim,
        ItopAuth::Basic {
            user: sim.rest_user(),
            password: SecretString::from(sim.rest_password()),
        },
    )
}

fn new_request(title: &str) -> NewUserRequest {
    let mut r = NewUserRequest::new(
        Key::Oql("SELECT Organization WHERE name = \"Demo\"".into()),
        title,
        "<p>desc tb:ref:1</p>",
    );
    r.caller = Some(Key::criteria([("email", "agatha.christie@demo.com")]));
    r.origin = Some("chat".into());
    r.impact = Some("3".into());
    r.urgency = Some("3".into());
    r
}

#[tokio::test]
async fn auth_modes_and_credentials() {
    let sim = sim().await;
    let basic = client(&sim);
    assert!(
        basic
            .check_credentials("rest", &sim.rest_password())
            .await
            .unwrap()
    );
    assert!(!basic.check_credentials("rest", "wrong").await.unwrap());
    assert_eq!(basic.list_operations().await.unwrap().len(), 7);

    let form = client_with(
        &sim,
        ItopAuth::Form {
            user: sim.rest_user(),
            password: SecretString::from(sim.rest_password()),
        },
    );
    assert!(
        form.check_credentials("rest", &sim.rest_password())
            .await
            .unwrap()
    );
    let token = client_with(
        &sim,
        ItopAuth::Token(SecretString::from(sim.rest_token().unwrap())),
    );
    assert_eq!(token.organization(3).await.unwrap().unwrap().name, "Demo");

    let bad = client_with(
        &sim,
        ItopAuth::Basic {
            user: "rest".into(),
            password: SecretString::from("nope".to_string()),
        },
    );
    let err = bad.list_operations().await.unwrap_err();
    assert!(matches!(err, ItopError::Unauthorized { .. }), "{err:?}");
    assert!(!err.is_retryable());
    let no_profile = client_with(
        &sim,
        ItopAuth::Basic {
            user: "admin".into(),
            password: SecretString::from(sim_itop::ADMIN_PASSWORD.to_string()),
        },
    );
    match no_profile.list_operations().await.unwrap_err() {
        ItopError::Unauthorized { message } => assert!(message.contains("REST Services User")),
        other => panic!("{other:?}"),
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn protocol_errors_are_typed() {
    let sim = sim().await;
    let mut cfg = ItopConfig::new(
        sim.base_url().parse().unwrap(),
        ItopAuth::Basic {
            user: sim.rest_user(),
            password: SecretString::from(sim.rest_password()),
        },
    );
    cfg.version = "9.9".into();
    let err = ItopClient::new(cfg)
        .unwrap()
        .list_operations()
        .await
        .unwrap_err();
    assert!(
        matches!(err, ItopError::UnsupportedVersion { .. }),
        "{err:?}"
    );

    let c = client(&sim);
    let err = c
        .call(&json!({"operation": "core/nosuch"}))
        .await
        .unwrap_err();
    assert!(matches!(err, ItopError::UnknownOperation { .. }), "{err:?}");
    let err = c
        .get_page(
            "UserRequest",
            Key::Oql("SELECT UserRequest".into()),
            "id",
            1,
            0,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ItopError::InvalidPage { .. }), "{err:?}");
    let err = c.get("NoSuchClass", 1, "id").await.unwrap_err();
    assert!(matches!(err, ItopError::Internal { .. }), "{err:?}");

    // codes the client itself never provokes, injected by the simulator
    for (code, check) in [
        (
            2,
            (|e: &ItopError| matches!(e, ItopError::MissingVersion { .. }))
                as fn(&ItopError) -> bool,
        ),
        (3, |e| matches!(e, ItopError::MissingJson { .. })),
        (4, |e| matches!(e, ItopError::InvalidJson { .. })),
        (5, |e| matches!(e, ItopError::MissingAuthUser { .. })),
        (6, |e| matches!(e, ItopError::MissingAuthPwd { .. })),
        (12, |e| matches!(e, ItopError::Unsafe { .. })),
        (77, |e| matches!(e, ItopError::OtherCode { code: 77, .. })),
    ] {
        sim.fail_next(Fault::ResultCode {
            code,
            message: format!("Error: injected {code}"),
        });
        let err = c.list_operations().await.unwrap_err();
        assert!(check(&err), "code {code}: {err:?}");
        assert!(!err.is_retryable());
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn transport_faults_are_retryable() {
    let sim = sim().await;
    let c = client(&sim);
    sim.fail_next(Fault::HttpStatus(503));
    let err = c.list_operations().await.unwrap_err();
    assert!(
        matches!(err, ItopError::Http { status: 503 }) && err.is_retryable(),
        "{err:?}"
    );
    sim.fail_next(Fault::DropConnection);
    let err = c.list_operations().await.unwrap_err();
    assert!(
        matches!(err, ItopError::Transport(_)) && err.is_retryable(),
        "{err:?}"
    );
    sim.set_down(true);
    assert!(c.list_operations().await.unwrap_err().is_retryable());
    sim.set_down(false);

    let mut cfg = ItopConfig::new(
        sim.base_url().parse().unwrap(),
        ItopAuth::Basic {
            user: sim.rest_user(),
            password: SecretString::from(sim.rest_password()),
        },
    );
    cfg.timeout = Duration::from_millis(200);
    let slow = ItopClient::new(cfg).unwrap();
    sim.fail_next(Fault::Latency(Duration::from_secs(2)));
    let err = slow.list_operations().await.unwrap_err();
    assert!(
        matches!(err, ItopError::Timeout) && err.is_retryable(),
        "{err:?}"
    );
    // after the faults the server answers normally again
    assert_eq!(c.list_operations().await.unwrap().len(), 7);
    assert!(sim.calls("requests") >= 5);
    assert!(sim.calls("list_operations") >= 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn user_request_lifecycle() {
    let sim = sim().await;
    let c = client(&sim);
    let ur = c
        .create_user_request(&new_request("Impressora"), "tb: create")
        .await
        .unwrap();
    assert_eq!(
        (
            ur.reference.as_str(),
            ur.status.as_str(),
            ur.caller_id,
            ur.org_id,
            ur.priority.as_str()
        ),
        ("R-000001", "new", Some(15), Some(3), "3")
    );
    let stored = sim.object("UserRequest", ur.id).unwrap();
    assert_eq!(stored["title"], "Impressora");
    assert_eq!(stored["origin"], "chat");

    // lookups by id, OQL and criteria
    assert_eq!(
        c.user_request(ur.id).await.unwrap().unwrap().title,
        "Impressora"
    );
    assert!(c.user_request(999).await.unwrap().is_none());
    let by_marker = c
        .find_user_requests(Key::Oql(
            "SELECT UserRequest WHERE description LIKE '%tb:ref:1%'".into(),
        ))
        .await
        .unwrap();
    assert_eq!(
        by_marker.iter().map(|u| u.id).collect::<Vec<_>>(),
        vec![ur.id]
    );
    let by_ref = c
        .find_user_requests(Key::criteria([("ref", "R-000001")]))
        .await
        .unwrap();
    assert_eq!(by_ref.len(), 1);

    // refused transitions and missing fields
    let err = c
        .apply_user_request_stimulus(
            ur.id,
            &Stimulus::Resolve {
                solution: "x".into(),
                resolution_code: None,
                service_id: None,
            },
            "c",
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ItopError::InvalidStimulus { .. }), "{err:?}");
    let ur = c
        .apply_user_request_stimulus(
            ur.id,
            &Stimulus::Assign {
                team_id: 37,
                agent_id: 9,
            },
            "assign",
        )
        .await
        .unwrap();
    assert_eq!(
        (ur.status.as_str(), ur.team_id, ur.agent_id),
        ("assigned", Some(37), Some(9))
    );
    assert!(!ur.assignment_date.is_empty());
    let err = c
        .apply_user_request_stimulus(
            ur.id,
            &Stimulus::Pending {
                reason: String::new(),
            },
            "c",
        )
        .await
        .unwrap_err();
    match err {
        ItopError::MissingMandatory { attributes, .. } => {
            assert_eq!(attributes, vec!["pending_reason"])
        }
        other => panic!("{other:?}"),
    }
    let ur = c
        .apply_user_request_stimulus(
            ur.id,
            &Stimulus::Pending {
                reason: "waiting".into(),
            },
            "c",
        )
        .await
        .unwrap();
    assert_eq!(ur.status, "pending");
    let ur = c
        .apply_user_request_stimulus(
            ur.id,
            &Stimulus::Assign {
                team_id: 37,
                agent_id: 9,
            },
            "resume",
        )
        .await
        .unwrap();
    let ur = c
        .apply_user_request_stimulus(
            ur.id,
            &Stimulus::Resolve {
                solution: "Driver reinstalled.".into(),
                resolution_code: Some("software patch".into()),
                service_id: None,
            },
            "c",
        )
        .await
        .unwrap();
    assert_eq!(
        (ur.status.as_str(), ur.solution.as_str()),
        ("resolved", "<p>Driver reinstalled.</p>")
    );
    let ur = c
        .apply_user_request_stimulus(ur.id, &Stimulus::Reopen, "c")
        .await
        .unwrap();
    assert_eq!(ur.status, "assigned");
    let ur = c
        .apply_user_request_stimulus(
            ur.id,
            &Stimulus::Resolve {
                solution: "again".into(),
                resolution_code: None,
                service_id: None,
            },
            "c",
        )
        .await
        .unwrap();
    let ur = c
        .apply_user_request_stimulus(
            ur.id,
            &Stimulus::Close {
                user_satisfaction: Some("1".into()),
                user_comment: Some("thanks".into()),
            },
            "c",
        )
        .await
        .unwrap();
    assert_eq!(ur.status, "closed");
    assert_eq!(
        sim.object("UserRequest", ur.id).unwrap()["status"],
        "closed"
    );

    // update
    let ur = c
        .update_user_request(ur.id, json!({"title": "renamed"}), "c")
        .await
        .unwrap();
    assert_eq!(ur.title, "renamed");
    let err = c
        .update_user_request(999, json!({"title": "x"}), "c")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ItopError::Internal { message } if message.contains("Invalid object")),
        "{err:?}"
    );

    // create errors: unresolved key, validation
    let mut bad = new_request("bad");
    bad.org = Key::criteria([("name", "Nope Ltd")]);
    let err = c.create_user_request(&bad, "c").await.unwrap_err();
    assert!(
        matches!(&err, ItopError::Internal { message } if message.contains("No item found")),
        "{err:?}"
    );
    let mut bad = new_request("bad");
    bad.origin = Some("whatsapp".into());
    assert!(matches!(
        c.create_user_request(&bad, "c").await.unwrap_err(),
        ItopError::Internal { .. }
    ));
    assert_eq!(sim.ids("UserRequest"), vec![ur.id]);

    // delete
    assert_eq!(
        c.delete("UserRequest", ur.id, "c").await.unwrap(),
        vec![ur.id]
    );
    assert!(sim.object("UserRequest", ur.id).is_none());
    assert!(
        c.delete("UserRequest", ur.id, "c")
            .await
            .unwrap()
            .is_empty()
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn case_logs() {
    let sim = sim().await;
    let c = client(&sim);
    let ur = c
        .create_user_request(&new_request("logs"), "c")
        .await
        .unwrap();
    c.add_case_log_entry(
        "UserRequest",
        ur.id,
        CaseLog::Private,
        &NewLogEntry::html("<p>internal <b>note</b></p>"),
        "c",
    )
    .await
    .unwrap();
    c.add_case_log_entry(
        "UserRequest",
        ur.id,
        CaseLog::Public,
        &NewLogEntry::text("line 1\nline 2"),
        "c",
    )
    .await
    .unwrap();
    c.add_case_log_entry(
        "UserRequest",
        ur.id,
        CaseLog::Public,
        &NewLogEntry::html("<p>original</p>")
            .dated("2024-01-31 10:02:00")
            .by("Maria Silva (chatwoot)"),
        "c",
    )
    .await
    .unwrap();
    let private = sim.case_log("UserRequest", ur.id, "private_log");
    assert_eq!(private.len(), 1);
    assert_eq!(private[0].message, "internal note");
    let public = c
        .case_log("UserRequest", ur.id, CaseLog::Public)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(public.len(), 2);
    assert_eq!(public[0].message_html, "line 1<br/>line 2");
    assert_eq!(public[0].user_login, "My first name My last name");
    assert_eq!(public[0].user_id, Some(2));
    assert_eq!(
        (
            public[1].date.as_str(),
            public[1].user_login.as_str(),
            public[1].user_id
        ),
        ("2024-01-31 10:02:00", "Maria Silva (chatwoot)", None)
    );
    let err = c
        .add_case_log_entry(
            "UserRequest",
            ur.id,
            CaseLog::Private,
            &NewLogEntry::html("x").dated("not a date"),
            "c",
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ItopError::Internal { .. }));
    assert!(
        c.case_log("UserRequest", 999, CaseLog::Public)
            .await
            .unwrap()
            .is_none()
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn attachments() {
    let sim = sim().await;
    let c = client(&sim);
    let ur = c
        .create_user_request(&new_request("files"), "c")
        .await
        .unwrap();
    let new = NewAttachment {
        item_class: "UserRequest".into(),
        item_id: ur.id,
        item_org_id: 3,
        filename: "printer.txt".into(),
        mimetype: "text/plain".into(),
        data: b"line 1: paper jam\n".to_vec(),
    };
    let id = c.create_attachment(&new, "c").await.unwrap();
    let stored = sim.attachments("UserRequest", ur.id);
    assert_eq!(stored.len(), 1);
    assert_eq!(
        (stored[0].filename.as_str(), stored[0].data.as_slice()),
        ("printer.txt", b"line 1: paper jam\n".as_slice())
    );
    let read = c.attachment(id).await.unwrap().unwrap();
    assert_eq!(
        (
            read.id,
            read.item_class.as_str(),
            read.item_id,
            read.item_org_id
        ),
        (id, "UserRequest", ur.id, 3)
    );
    assert_eq!(
        (
            read.filename.as_str(),
            read.mimetype.as_str(),
            read.data.as_slice()
        ),
        ("printer.txt", "text/plain", new.data.as_slice())
    );
    let second = c.create_attachment(&new, "c").await.unwrap();
    assert_eq!(
        c.attachment_ids_of("UserRequest", ur.id).await.unwrap(),
        vec![id, second]
    );
    assert!(c.attachment(999_999).await.unwrap().is_none());
    assert!(c.delete_attachment(second, "c").await.unwrap());
    assert_eq!(
        c.attachment_ids_of("UserRequest", ur.id).await.unwrap(),
        vec![id]
    );
    c.update_attachment(id, "printer-v2.txt", "text/plain", b"v2\n", "c")
        .await
        .unwrap();
    let one = c.attachment(id).await.unwrap().unwrap();
    assert_eq!(
        (one.filename.as_str(), one.data.as_slice()),
        ("printer-v2.txt", b"v2\n".as_slice())
    );
    assert!(c.delete_attachment(id, "c").await.unwrap());
    assert!(!c.delete_attachment(id, "c").await.unwrap());
    assert!(sim.attachments("UserRequest", ur.id).is_empty());
    assert!(c.attachment(id).await.unwrap().is_none());
    sim.shutdown().await;
}

#[tokio::test]
async fn persons_and_organizations() {
    let sim = sim().await;
    let c = client(&sim);
    let agatha = c
        .find_person_by_email("agatha.christie@demo.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (agatha.id, agatha.friendly_name.as_str(), agatha.org_id),
        (15, "Agatha Christie", Some(3))
    );
    assert!(
        c.find_person_by_email("nobody@example.com")
            .await
            .unwrap()
            .is_none()
    );
    let maria = c
        .create_person(
            &NewPerson {
                first_name: "Maria".into(),
                last_name: "Silva".into(),
                org_id: 3,
                email: Some("maria.silva@example.com".into()),
                phone: Some("+55 11 3333-4444".into()),
                mobile_phone: None,
            },
            "c",
        )
        .await
        .unwrap();
    assert_eq!(
        sim.object("Person", maria.id).unwrap()["email"],
        "maria.silva@example.com"
    );
    let hits = c.find_persons_by_phone("3333-4444").await.unwrap();
    assert_eq!(
        hits.iter().map(|p| p.id).collect::<Vec<_>>(),
        vec![maria.id]
    );
    assert!(
        c.find_persons_by_phone("1133334444")
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        c.person(maria.id).await.unwrap().unwrap().last_name,
        "Silva"
    );
    assert_eq!(
        c.find_organization_by_name("Demo")
            .await
            .unwrap()
            .unwrap()
            .id,
        3
    );
    assert!(
        c.find_organization_by_name("Nope Ltd")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        c.organization(2).await.unwrap().unwrap().name,
        "IT Department"
    );
    // a person is needed in an org that exists
    let err = c
        .create_person(
            &NewPerson {
                first_name: "X".into(),
                last_name: "Y".into(),
                org_id: 0,
                ..NewPerson::default()
            },
            "c",
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ItopError::Internal { .. }), "{err:?}");
    sim.shutdown().await;
}

#[tokio::test]
async fn paging_counts_all_matches() {
    let sim = sim().await;
    let c = client(&sim);
    for t in ["a", "b", "c"] {
        c.create_user_request(&new_request(t), "c").await.unwrap();
    }
    let (page, total) = c
        .get_page(
            "UserRequest",
            Key::Oql("SELECT UserRequest".into()),
            "id,ref",
            2,
            2,
        )
        .await
        .unwrap();
    assert_eq!(total, 3);
    assert_eq!(page.len(), 1);
    // default order is ref descending: the last page holds the oldest ticket
    assert_eq!(page[0].text("ref"), "R-000001");
    sim.shutdown().await;
}

/// A case-log `user_id` is an account: its Person is the account's `contactid`
/// (the REST account is User 2 with Person 1, as in the recorded iTop).
#[tokio::test]
async fn a_case_log_author_account_leads_to_its_person() {
    let sim = sim().await;
    let client = client(&sim);
    assert_eq!(client.person_of_user(2).await.unwrap(), Some(1));
    assert_eq!(client.person_of_user(999).await.unwrap(), None);
}

/// A redirect is not followed: the credentials would go with it. The error
/// names where it pointed, and the other host sees nothing.
#[tokio::test]
async fn a_redirect_is_not_followed_with_the_credentials() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let elsewhere = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let elsewhere_url = format!("http://{}/rest.php", elsewhere.local_addr().unwrap());
    let redirecting = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/", redirecting.local_addr().unwrap());
    let location = elsewhere_url.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = redirecting.accept().await {
            let mut buf = vec![0_u8; 65536];
            let _ = stream.read(&mut buf).await;
            let answer = format!(
                "HTTP/1.1 307 Temporary Redirect\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n"
            );
            let _ = stream.write_all(answer.as_bytes()).await;
        }
    });
    let mut cfg = ItopConfig::new(
        base.parse().unwrap(),
        ItopAuth::Token(SecretString::from("the-token")),
    );
    cfg.timeout = Duration::from_secs(5);
    let client = ItopClient::new(cfg).unwrap();

    let error = client.list_operations().await.unwrap_err();
    assert!(matches!(error, ItopError::Config(_)), "{error:?}");
    assert!(error.to_string().contains(&elsewhere_url), "{error}");
    let reached = tokio::time::timeout(Duration::from_millis(300), elsewhere.accept()).await;
    assert!(reached.is_err(), "the redirect was followed");
}

/// Code 100 is any uncaught exception, database trouble included: a lost
/// connection, a deadlock or a lock wait is worth a retry, a refusal is not.
#[tokio::test]
async fn code_100_from_database_trouble_is_retryable() {
    let sim = sim().await;
    let c = client(&sim);
    for message in [
        "Error: SQL query failed: MySQL server has gone away",
        "Error: Deadlock found when trying to get lock; try restarting transaction",
        "Error: Lock wait timeout exceeded; try restarting transaction",
    ] {
        sim.fail_next(Fault::ResultCode {
            code: 100,
            message: message.into(),
        });
        let err = c.list_operations().await.unwrap_err();
        assert!(err.is_retryable(), "{message}: {err:?}");
        assert_eq!(err.code(), Some(100));
    }
    sim.fail_next(Fault::ResultCode {
        code: 100,
        message: "Error: Missing parameter 'comment'".into(),
    });
    let err = c.list_operations().await.unwrap_err();
    assert!(!err.is_retryable(), "{err:?}");
    sim.shutdown().await;
}
