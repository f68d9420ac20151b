#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Answers are read up to `max_response_bytes` and no further: a document of
//! exactly that size downloads, one byte more is a typed error, an endless
//! answer ends the call instead of the memory, and an endless error answer
//! still gives its error.

mod common;

use bytes::Bytes;
use capped_body::testing::endless;
use glpi::{Auth, GlpiClient, GlpiConfig, GlpiError, ItemLink, NewTicket, Upload};
use secrecy::SecretString;
use sim_glpi::GlpiVersion;

use common::{client_for, config_for, sim};

both_modes!(a_download_at_the_limit_works_and_one_byte_more_does_not);

async fn a_download_at_the_limit_works_and_one_byte_more_does_not(mode: GlpiVersion) {
    let sim = sim(mode).await;
    let glpi = client_for(&sim);
    let ticket = glpi
        .create_ticket(&NewTicket {
            name: "big file".into(),
            content: "x".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let size = 256 * 1024;
    let data = Bytes::from(vec![b'a'; size]);
    let doc = glpi
        .upload_document(&Upload {
            entity_id: None,
            file_name: "big.txt".into(),
            mime: "text/plain".into(),
            data: data.clone(),
            name: None,
            link: Some(ItemLink::ticket(ticket.id)),
        })
        .await
        .unwrap();

    let limited = |limit: u64| {
        let mut config = config_for(&sim, "glpi");
        config.max_response_bytes = limit;
        GlpiClient::new(config).unwrap()
    };
    let file = limited(size as u64).download_document(doc).await.unwrap();
    assert_eq!(file.data, data);

    let error = limited(size as u64 - 1)
        .download_document(doc)
        .await
        .unwrap_err();
    assert!(
        matches!(error, GlpiError::ResponseTooLarge { limit } if limit == size as u64 - 1),
        "{error:?}"
    );
    assert!(!error.is_retryable());
    assert!(
        error
            .to_string()
            .contains(&format!("GLPI answered more than {} bytes", size - 1)),
        "{error}"
    );
}

/// A client of the "GLPI" at `server` (a loopback server of `capped_body::testing`).
fn client(server: String, limit: u64) -> GlpiClient {
    let base_url = format!("{server}/apirest.php");
    let mut config = GlpiConfig::new(base_url, Auth::UserToken(SecretString::from("t")));
    config.max_response_bytes = limit;
    GlpiClient::new(config).unwrap()
}

#[tokio::test]
async fn an_endless_answer_is_a_typed_error_not_an_allocation() {
    let glpi = client(endless(200, "").await.unwrap(), 1024 * 1024);
    let error = glpi.login().await.unwrap_err();
    assert!(
        matches!(error, GlpiError::ResponseTooLarge { limit: 1_048_576 }),
        "{error:?}"
    );
    assert!(!error.is_retryable());
}

#[tokio::test]
async fn an_endless_error_answer_still_gives_its_error() {
    // Only the start of an error answer is read, whatever the limit.
    let glpi = client(endless(502, "").await.unwrap(), u64::MAX);
    let error = glpi.login().await.unwrap_err();
    assert!(
        matches!(error, GlpiError::Server { status: 502, .. }),
        "{error:?}"
    );
    assert!(error.is_retryable());
}
