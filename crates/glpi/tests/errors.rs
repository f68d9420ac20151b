#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Every error class, as the simulator answers it (spec §6, §17), in both modes.

mod common;

use std::time::Duration;

use glpi::{Auth, GlpiClient, GlpiConfig, GlpiError, SearchQuery, SearchType, TicketUpdate};
use secrecy::SecretString;
use serde_json::Value;
use sim_glpi::GlpiVersion;

use common::{client_for, config_for, sim};

both_modes!(
    api_errors_are_typed,
    login_errors_are_typed,
    transport_and_server_errors_are_retryable,
    timeout_is_retryable,
);

async fn api_errors_are_typed(mode: GlpiVersion) {
    let sim = sim(mode).await;
    let glpi = client_for(&sim);

    let err = glpi.get_ticket(999_999).await.unwrap_err();
    assert!(matches!(err, GlpiError::NotFound { .. }), "{err:?}");
    assert!(!err.is_retryable());

    let err = glpi
        .update_ticket(
            999_999,
            &TicketUpdate {
                status: Some(2),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, GlpiError::UpdateFailed { .. }), "{err:?}");

    let err = glpi.get_item::<Value>("NoSuchType", 1).await.unwrap_err();
    assert!(
        matches!(err, GlpiError::UnknownItemtype { ref code, .. } if code == "ERROR_RESOURCE_NOT_FOUND_NOR_COMMONDBTM"),
        "{err:?}"
    );

    let err = glpi
        .search(&SearchQuery::new("Ticket").and(99_999, SearchType::Contains, "x"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, GlpiError::Generic { status: 400, ref message } if message.contains("Bad field ID")),
        "{err:?}"
    );

    let err = glpi
        .search(&SearchQuery::new("Ticket").range(10, 20))
        .await
        .unwrap_err();
    assert!(
        matches!(err, GlpiError::RangeExceedsTotal { .. }),
        "{err:?}"
    );

    // 403 only on reads, for a profile without the right.
    let tech = GlpiClient::new(config_for(&sim, "tech")).unwrap();
    let err = tech.get_item::<Value>("Profile", 4).await.unwrap_err();
    assert!(matches!(err, GlpiError::RightMissing { .. }), "{err:?}");
    assert_eq!(err.code(), Some("ERROR_RIGHT_MISSING"));
    // ... and a refused write is 400 ERROR_GLPI_ADD, not 403.
    let err = tech
        .create_item(
            "Entity",
            &serde_json::json!({"name": "Nope", "entities_id": 0}),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, GlpiError::AddFailed { ref message } if message.contains("permission")),
        "{err:?}"
    );
    assert!(sim.entities().iter().all(|e| e.name != "Nope"));
}

async fn login_errors_are_typed(mode: GlpiVersion) {
    let sim = sim(mode).await;
    let base = config_for(&sim, "glpi");

    let mut wrong_app = base.clone();
    wrong_app.app_token = Some(SecretString::from("ffffffffffffffff".to_owned()));
    let err = GlpiClient::new(wrong_app)
        .unwrap()
        .login()
        .await
        .unwrap_err();
    assert!(matches!(err, GlpiError::WrongAppToken { .. }), "{err:?}");
    assert!(!err.is_retryable());

    let mut no_app = base.clone();
    no_app.app_token = None;
    let err = GlpiClient::new(no_app).unwrap().login().await.unwrap_err();
    assert!(matches!(err, GlpiError::AppTokenMissing { .. }), "{err:?}");

    let mut bad_user = base.clone();
    bad_user.auth = Auth::UserToken(SecretString::from(
        "0123456789abcdef0123456789abcdef01234567".to_owned(),
    ));
    let err = GlpiClient::new(bad_user)
        .unwrap()
        .login()
        .await
        .unwrap_err();
    assert!(
        matches!(err, GlpiError::UserTokenRejected { .. }),
        "{err:?}"
    );
    assert_eq!(sim.sessions_opened(), 0);

    let mut no_credentials = base.clone();
    no_credentials.auth = Auth::UserToken(SecretString::from(String::new()));
    let err = GlpiClient::new(no_credentials)
        .unwrap()
        .login()
        .await
        .unwrap_err();
    assert!(
        matches!(err, GlpiError::LoginParametersMissing { .. }),
        "{err:?}"
    );

    let err = GlpiClient::new(GlpiConfig::new("ftp://x", base.auth.clone())).unwrap_err();
    assert!(matches!(err, GlpiError::Config(_)));
    let mut bad_ca = base.clone();
    bad_ca.ca_cert_pem = Some("not a certificate".into());
    assert!(matches!(GlpiClient::new(bad_ca), Err(GlpiError::Config(_))));

    if mode == GlpiVersion::V11 {
        // GLPI 11 serves the same API under /api.php/v1.
        let mut v1 = base.clone();
        v1.base_url = sim.api_v1_url();
        let glpi = GlpiClient::new(v1).unwrap();
        assert!(glpi.api_root().ends_with("/api.php/v1/"));
        let entity: Value = glpi.get_item("Entity", 0).await.unwrap();
        assert_eq!(entity["id"], 0);
        assert_eq!(glpi.decodes_text(), Some(false));
    } else {
        let glpi = GlpiClient::new(base).unwrap();
        glpi.login().await.unwrap();
        assert_eq!(glpi.decodes_text(), Some(true));
    }
}

async fn transport_and_server_errors_are_retryable(mode: GlpiVersion) {
    let sim = sim(mode).await;
    let glpi = client_for(&sim);
    glpi.login().await.unwrap();

    for (status, rate_limited) in [(500, false), (502, false), (503, false), (429, true)] {
        sim.faults().fail_next(1, status);
        let err = glpi.get_item::<Value>("Entity", 0).await.unwrap_err();
        assert!(err.is_retryable(), "{status}: {err:?}");
        assert_eq!(
            matches!(err, GlpiError::RateLimited { .. }),
            rate_limited,
            "{status}: {err:?}"
        );
        // The next call works again on the same session.
        glpi.get_item::<Value>("Entity", 0).await.unwrap();
    }

    sim.faults().drop_next(1);
    let err = glpi.get_item::<Value>("Entity", 0).await.unwrap_err();
    assert!(
        matches!(err, GlpiError::Transport(_) | GlpiError::Connect(_)),
        "{err:?}"
    );
    assert!(err.is_retryable());
    glpi.get_item::<Value>("Entity", 0).await.unwrap();
    assert_eq!(sim.sessions_opened(), 1);

    // Nothing listening.
    let addr = sim.addr();
    sim.shutdown().await;
    let err = glpi.get_item::<Value>("Entity", 0).await.unwrap_err();
    assert!(err.is_retryable(), "{err:?} (sim was at {addr})");
}

async fn timeout_is_retryable(mode: GlpiVersion) {
    let sim = sim(mode).await;
    let config = config_for(&sim, "glpi").with_timeout(Duration::from_millis(200));
    let glpi = GlpiClient::new(config).unwrap();
    glpi.login().await.unwrap();
    sim.faults().set_latency(Duration::from_secs(2));
    let err = glpi.get_item::<Value>("Entity", 0).await.unwrap_err();
    assert!(matches!(err, GlpiError::Timeout), "{err:?}");
    assert!(err.is_retryable());
}
