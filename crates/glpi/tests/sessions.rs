#![allow(clippy::unwrap_used, clippy::expect_used)]
//! One shared session, single re-login under concurrency, close, entity/profile switching.

mod common;

use std::time::Duration;

use futures::future::join_all;
use glpi::{Auth, GlpiClient, GlpiConfig, GlpiError, NewTicket};
use secrecy::SecretString;
use sim_glpi::GlpiVersion;

use common::{client_for, sim};

both_modes!(
    one_session_for_many_concurrent_calls,
    expired_session_mid_concurrency_relogs_once,
    expiry_after_n_calls_relogs_once_with_slow_login,
    close_kills_the_session_and_next_call_logs_in,
    password_login,
    active_entity_switch_survives_relogin,
    profile_switching,
    a_refused_write_keeps_the_login_entity,
    a_failed_login_is_shared_with_the_callers_waiting_for_it,
    a_session_whose_scope_cannot_be_applied_is_killed,
);

async fn one_session_for_many_concurrent_calls(mode: GlpiVersion) {
    let sim = sim(mode).await;
    let glpi = client_for(&sim);
    let calls = (0..20).map(|i| {
        let glpi = glpi.clone();
        async move {
            glpi.create_ticket(&NewTicket {
                name: format!("c{i}"),
                content: "x".into(),
                ..Default::default()
            })
            .await
        }
    });
    let results = join_all(calls).await;
    assert!(results.iter().all(Result::is_ok));
    assert_eq!(sim.tickets().len(), 20);
    assert_eq!(sim.sessions_opened(), 1, "every caller shares one session");
    assert_eq!(glpi.sessions_opened(), 1);
}

async fn expired_session_mid_concurrency_relogs_once(mode: GlpiVersion) {
    let sim = sim(mode).await;
    let glpi = client_for(&sim);
    glpi.login().await.unwrap();
    assert_eq!(sim.sessions_opened(), 1);
    sim.faults().set_latency(Duration::from_millis(10));
    sim.expire_all_sessions();
    let calls = (0..20).map(|i| {
        let glpi = glpi.clone();
        async move {
            glpi.create_ticket(&NewTicket {
                name: format!("e{i}"),
                content: "x".into(),
                ..Default::default()
            })
            .await
        }
    });
    let results = join_all(calls).await;
    for r in &results {
        assert!(r.is_ok(), "{r:?}");
    }
    assert_eq!(
        sim.tickets().len(),
        20,
        "every call replayed once, none duplicated"
    );
    assert_eq!(sim.sessions_opened(), 2, "exactly one extra initSession");
    assert_eq!(sim.calls_to("GET /initSession"), 2);
}

async fn expiry_after_n_calls_relogs_once_with_slow_login(mode: GlpiVersion) {
    let sim = sim(mode).await;
    let glpi = client_for(&sim);
    for _ in 0..15 {
        glpi.get_item::<serde_json::Value>("Entity", 0)
            .await
            .unwrap();
    }
    // The session dies after 30 calls: about 15 of the next 20 concurrent ones succeed, the
    // rest see 401 together while initSession is slow; one login serves them all.
    sim.faults().expire_sessions_after_calls(30);
    sim.faults().init_session_delay(Duration::from_millis(100));
    sim.faults().set_latency(Duration::from_millis(5));
    let calls = (0..20).map(|i| {
        let glpi = glpi.clone();
        async move {
            glpi.create_ticket(&NewTicket {
                name: format!("n{i}"),
                content: "x".into(),
                ..Default::default()
            })
            .await
        }
    });
    let results = join_all(calls).await;
    for r in &results {
        assert!(r.is_ok(), "{r:?}");
    }
    assert_eq!(sim.tickets().len(), 20);
    assert_eq!(sim.sessions_opened(), 2, "one re-login for every caller");
}

async fn close_kills_the_session_and_next_call_logs_in(mode: GlpiVersion) {
    let sim = sim(mode).await;
    let glpi = client_for(&sim);
    glpi.login().await.unwrap();
    glpi.close().await.unwrap();
    assert_eq!(sim.sessions_killed(), 1);
    assert_eq!(sim.sessions_active(), 0);
    glpi.close().await.unwrap(); // nothing open: no call
    assert_eq!(sim.sessions_killed(), 1);
    glpi.get_ticket(1).await.unwrap_err();
    assert_eq!(sim.sessions_opened(), 2);
}

async fn password_login(mode: GlpiVersion) {
    let sim = sim(mode).await;
    let config = GlpiConfig::new(
        sim.base_url(),
        Auth::Password {
            login: "glpi".into(),
            password: SecretString::from(sim.config().glpi_password.clone()),
        },
    )
    .with_app_token(SecretString::from(sim.app_token()));
    let glpi = GlpiClient::new(config).unwrap();
    let t = glpi
        .create_ticket(&NewTicket {
            name: "pw".into(),
            content: "x".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(sim.ticket(t.id as u64).unwrap().users_id_recipient, 2);

    let bad = GlpiConfig::new(
        sim.base_url(),
        Auth::Password {
            login: "glpi".into(),
            password: SecretString::from("wrongpass".to_owned()),
        },
    )
    .with_app_token(SecretString::from(sim.app_token()));
    let err = GlpiClient::new(bad).unwrap().login().await.unwrap_err();
    assert!(matches!(err, GlpiError::LoginRejected { .. }), "{err:?}");
    assert!(!err.is_retryable());
    assert!(
        !format!("{err} {err:?}").contains("wrongpass"),
        "secrets never in errors"
    );
}

async fn active_entity_switch_survives_relogin(mode: GlpiVersion) {
    let sim = sim(mode).await;
    let acme = sim.add_entity("ACME Ltda", 0, None) as i64;
    let glpi = client_for(&sim);
    glpi.change_active_entities(Some(acme), true).await.unwrap();
    assert_eq!(glpi.active_entities().await.unwrap().id, acme);
    let err = glpi
        .change_active_entities(Some(999), true)
        .await
        .unwrap_err();
    assert!(
        matches!(err, GlpiError::SwitchRefused { what: "entity" }),
        "{err:?}"
    );
    sim.expire_all_sessions();
    let active = glpi.active_entities().await.unwrap();
    assert_eq!(active.id, acme, "re-applied on the new session");
    assert!(active.recursive);
    assert_eq!(sim.sessions_opened(), 2);
    glpi.change_active_entities(None, true).await.unwrap();
    assert!(
        glpi.active_entities()
            .await
            .unwrap()
            .entity_ids
            .contains(&0)
    );
}

async fn profile_switching(mode: GlpiVersion) {
    let sim = sim(mode).await;
    let glpi = client_for(&sim);
    let profiles = glpi.my_profiles().await.unwrap();
    let super_admin = profiles
        .iter()
        .find(|p| p.name == "Super-Admin")
        .expect("glpi is Super-Admin");
    assert!(super_admin.entities.iter().any(|e| e.id == 0));
    glpi.change_active_profile(super_admin.id).await.unwrap();
    assert_eq!(glpi.active_profile().await.unwrap().0, super_admin.id);
    let err = glpi.change_active_profile(999).await.unwrap_err();
    assert!(
        matches!(
            err,
            GlpiError::NotFound { .. } | GlpiError::SwitchRefused { .. }
        ),
        "{err:?}"
    );
    assert!(!glpi.my_entities(true).await.unwrap().is_empty());
}

/// GLPI's login makes the user's default entity active (with its sub-entities when a
/// recursive profile covers it) and items created without an entity go there. A routine
/// refusal (a login already taken) must not move the session to another entity.
async fn a_refused_write_keeps_the_login_entity(mode: GlpiVersion) {
    let sim = sim(mode).await;
    sim.add_entity("Matriz", 0, None);
    sim.add_entity("Filial Norte", 0, None);
    let south = sim.add_entity("Filial Sul", 0, None);
    sim.add_user(sim_glpi::NewUser {
        entities_id: south,
        profile: Some(3),
        profile_entity: Some(0),
        profile_recursive: true,
        ..sim_glpi::NewUser::new("bot")
    });
    // No default_entity configured: GLPI's active entity decides.
    let glpi = GlpiClient::new(common::config_for(&sim, "bot")).unwrap();
    let ticket = |name: &str| NewTicket {
        name: name.into(),
        content: "x".into(),
        ..Default::default()
    };
    let a = glpi.create_ticket(&ticket("A")).await.unwrap();
    assert_eq!(sim.ticket(a.id as u64).unwrap().entities_id, south);
    let taken = glpi
        .create_user(&glpi::NewUser {
            login: "tech".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(matches!(taken, GlpiError::AddFailed { .. }), "{taken:?}");
    let b = glpi.create_ticket(&ticket("B")).await.unwrap();
    assert_eq!(
        sim.ticket(b.id as u64).unwrap().entities_id,
        south,
        "still the login's entity after a refused write"
    );
    // A user made without an entity gets its profile where it is created (the
    // active entity), not on the root.
    let user = glpi
        .create_user(&glpi::NewUser {
            login: "novo.cliente".into(),
            profile_id: Some(1),
            ..Default::default()
        })
        .await
        .unwrap();
    let rights: Vec<i64> = sim
        .items("Profile_User")
        .iter()
        .filter(|r| r["users_id"] == serde_json::json!(user))
        .map(|r| r["entities_id"].as_i64().unwrap())
        .collect();
    assert_eq!(rights, vec![south as i64]);
    // A document given the ticket's entity is created there.
    let doc = glpi
        .upload_document(&glpi::Upload {
            file_name: "nota.txt".into(),
            mime: "text/plain".into(),
            data: bytes::Bytes::from_static(b"ok"),
            name: None,
            link: Some(glpi::ItemLink::ticket(b.id)),
            entity_id: Some(b.entities_id),
        })
        .await
        .unwrap();
    assert_eq!(
        sim.item("Document", doc as u64).unwrap()["entities_id"],
        serde_json::json!(south)
    );
}

/// GLPI restarting: initSession hangs past the client's timeout. The callers queued on
/// the session while a login failed get its error instead of trying their own login one
/// after the other (the k-th would wait k timeouts).
async fn a_failed_login_is_shared_with_the_callers_waiting_for_it(mode: GlpiVersion) {
    let sim = sim(mode).await;
    sim.faults().init_session_delay(Duration::from_secs(3));
    let glpi =
        GlpiClient::new(common::config_for(&sim, "glpi").with_timeout(Duration::from_millis(400)))
            .unwrap();
    // Callers trying their own logins one after the other would make 20.
    let calls = (0..20).map(|_| {
        let glpi = glpi.clone();
        async move { glpi.get_ticket(1).await }
    });
    let results = join_all(calls).await;
    for r in &results {
        let err = r.as_ref().unwrap_err();
        assert!(err.is_retryable(), "{err:?}");
    }
    assert!(
        sim.calls_to("GET /initSession") <= 2,
        "{} logins",
        sim.calls_to("GET /initSession")
    );
    // Once GLPI is back, the next call logs in.
    sim.faults().clear();
    assert!(matches!(
        glpi.get_ticket(1).await,
        Err(GlpiError::NotFound { .. })
    ));
}

/// A new session to which the caller's entity choice cannot be applied (the entity was
/// deleted meanwhile) is not used, and not left open in GLPI either.
async fn a_session_whose_scope_cannot_be_applied_is_killed(mode: GlpiVersion) {
    let sim = sim(mode).await;
    let acme = sim.add_entity("ACME Ltda", 0, None) as i64;
    let glpi = client_for(&sim);
    glpi.change_active_entities(Some(acme), true).await.unwrap();
    glpi.delete_item("Entity", acme, true).await.unwrap();
    sim.expire_all_sessions();
    let err = glpi.get_ticket(1).await.unwrap_err();
    assert!(matches!(err, GlpiError::SwitchRefused { .. }), "{err:?}");
    assert_eq!(sim.sessions_active(), 0, "the new session was killed");
}

/// PHP's `session.sid_length` makes GLPI 10 session ids as long as configured: a long
/// token is no sign of GLPI 11. Text must still be decoded once (GLPI 10 stores it
/// entity-encoded).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn glpi10_with_long_session_ids_is_still_decoded() {
    let sim = sim_glpi::GlpiSim::start(sim_glpi::SimConfig {
        session_id_length: 96,
        ..sim_glpi::SimConfig::with_mode(GlpiVersion::V10)
    })
    .await
    .unwrap();
    let glpi = client_for(&sim);
    let ticket = glpi
        .create_ticket(&NewTicket {
            name: "Rede & Internet <lenta>".into(),
            content: "<p>x</p>".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(glpi.decodes_text(), Some(true));
    assert_eq!(ticket.name, "Rede & Internet <lenta>");
    assert_eq!(ticket.content, "<p>x</p>");
}
