//! Answers are read up to `max_response_bytes` and no further: an answer of
//! exactly that size is read, an attachment whose base64 passes it is a
//! typed error, and an endless answer ends the call instead of the memory.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use capped_body::testing::{answering, endless};
use itop::{ItopAuth, ItopClient, ItopConfig, ItopError, Key, NewAttachment, NewUserRequest};
use secrecy::SecretString;
use sim_itop::{ItopSim, ItopSimConfig};

fn client(base_url: &str, auth: ItopAuth, limit: u64) -> ItopClient {
    let mut config = ItopConfig::new(base_url.parse().unwrap(), auth);
    config.max_response_bytes = limit;
    ItopClient::new(config).unwrap()
}

fn token() -> ItopAuth {
    ItopAuth::Token(SecretString::from("t"))
}

#[tokio::test]
async fn an_attachment_is_read_only_when_its_base64_fits() {
    let sim = ItopSim::start(ItopSimConfig::default()).await.unwrap();
    let auth = ItopAuth::Basic {
        user: sim.rest_user(),
        password: SecretString::from(sim.rest_password()),
    };
    let roomy = client(
        &sim.base_url(),
        auth.clone(),
        itop::DEFAULT_MAX_RESPONSE_BYTES,
    );
    let ticket = roomy
        .create_user_request(
            &NewUserRequest::new(
                Key::Oql("SELECT Organization WHERE name = \"Demo\"".into()),
                "a big file",
                "<p>x</p>",
            ),
            "c",
        )
        .await
        .unwrap();
    let size: u64 = 300 * 1024;
    let id = roomy
        .create_attachment(
            &NewAttachment {
                item_class: "UserRequest".into(),
                item_id: ticket.id,
                item_org_id: 3,
                filename: "big.bin".into(),
                mimetype: "application/octet-stream".into(),
                data: vec![7; size as usize],
            },
            "c",
        )
        .await
        .unwrap();

    // Base64 plus a few KiB of JSON around it.
    let base64 = size.div_ceil(3) * 4;
    let fits = client(&sim.base_url(), auth.clone(), base64 + 16 * 1024);
    let read = fits.attachment(id).await.unwrap().unwrap();
    assert_eq!(read.data.len() as u64, size);

    // The file's own size is not enough: the answer carries it as base64.
    let error = client(&sim.base_url(), auth, size)
        .attachment(id)
        .await
        .unwrap_err();
    assert!(
        matches!(error, ItopError::ResponseTooLarge { limit } if limit == size),
        "{error:?}"
    );
    assert!(!error.is_retryable());
    assert!(
        error
            .to_string()
            .contains(&format!("iTop answered more than {size} bytes")),
        "{error}"
    );
}

#[tokio::test]
async fn an_answer_of_exactly_the_limit_is_read() {
    let limit = 64 * 1024;
    let json = r#"{"code":0,"message":"","operations":[{"verb":"core/get"}]}"#;
    let padded = format!("{json}{}", " ".repeat(limit - json.len()));
    let url = answering(padded.into()).await.unwrap();
    let operations = client(&url, token(), limit as u64)
        .list_operations()
        .await
        .unwrap();
    assert_eq!(operations, vec!["core/get"]);
    let error = client(&url, token(), limit as u64 - 1)
        .list_operations()
        .await
        .unwrap_err();
    assert!(
        matches!(error, ItopError::ResponseTooLarge { .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn an_endless_answer_is_a_typed_error_not_an_allocation() {
    let url = endless(200, "").await.unwrap();
    let error = client(&url, token(), 1024 * 1024)
        .list_operations()
        .await
        .unwrap_err();
    assert!(
        matches!(error, ItopError::ResponseTooLarge { limit: 1_048_576 }),
        "{error:?}"
    );
    assert!(!error.is_retryable());
}
