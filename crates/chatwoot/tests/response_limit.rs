//! Answers are read up to `max_response_bytes` and no further: the
//! simulator's answer at exactly that size is read and one byte less is a
//! typed error; an endless answer ends the call instead of the memory; an
//! endless error answer still gives its error.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::StatusCode;
use axum::routing::any;
use chatwoot::{ChatwootClient, ChatwootConfig, ChatwootError};
use futures::stream;
use secrecy::SecretString;
use sim_chatwoot::{ChatwootSim, NewContact, SimConfig};

fn client(base_url: &str, token: &str, account_id: u64, limit: u64) -> ChatwootClient {
    ChatwootClient::new(ChatwootConfig {
        base_url: base_url.parse().unwrap(),
        api_access_token: SecretString::from(token),
        account_id,
        timeout: Duration::from_secs(5),
        max_response_bytes: limit,
    })
    .unwrap()
}

#[tokio::test]
async fn an_answer_of_exactly_the_limit_is_read_and_one_byte_less_is_not() {
    let sim = ChatwootSim::start(SimConfig::default()).await.unwrap();
    let contact = sim
        .add_contact(NewContact {
            name: "Maria Souza".into(),
            phone_number: Some("+5511987654321".into()),
            ..NewContact::default()
        })
        .await;
    let conversation = sim
        .customer_starts_conversation(contact, sim.default_inbox(), "A impressora parou")
        .await
        .unwrap()
        .conversation_id;
    // The answer's size, as the server sends it.
    let size = reqwest::Client::new()
        .get(format!(
            "{}/api/v1/accounts/{}/conversations/{conversation}",
            sim.base_url(),
            sim.account_id()
        ))
        .header("api-access-token", sim.api_token())
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .len() as u64;

    let at = |limit| client(&sim.base_url(), &sim.api_token(), sim.account_id(), limit);
    let read = at(size).get_conversation(conversation).await.unwrap();
    assert_eq!(read.id, conversation);

    let error = at(size - 1)
        .get_conversation(conversation)
        .await
        .unwrap_err();
    assert!(
        matches!(error, ChatwootError::ResponseTooLarge { limit } if limit == size - 1),
        "{error:?}"
    );
    assert!(!error.is_retryable());
    assert_eq!(
        error.to_string(),
        format!("Chatwoot answered more than {} bytes; not read", size - 1)
    );
}

/// A loopback "Chatwoot" whose every answer is `status` with a body that never ends.
async fn endless(status: StatusCode) -> String {
    let app = Router::new().fallback(any(move || async move {
        let body = Body::from_stream(stream::repeat_with(|| {
            Ok::<_, Infallible>(Bytes::from_static(&[b' '; 8192]))
        }));
        (status, body)
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

#[tokio::test]
async fn an_endless_answer_is_a_typed_error_not_an_allocation() {
    let url = endless(StatusCode::OK).await;
    let error = client(&url, "t", 1, 1024 * 1024)
        .get_conversation(7)
        .await
        .unwrap_err();
    assert!(
        matches!(error, ChatwootError::ResponseTooLarge { limit: 1_048_576 }),
        "{error:?}"
    );
    assert!(!error.is_retryable());
}

#[tokio::test]
async fn an_endless_error_answer_still_gives_its_error() {
    // Only the start of an error answer is read, whatever the limit.
    let url = endless(StatusCode::SERVICE_UNAVAILABLE).await;
    let error = client(&url, "t", 1, u64::MAX)
        .get_conversation(7)
        .await
        .unwrap_err();
    assert!(
        matches!(error, ChatwootError::Server { status: 503, .. }),
        "{error:?}"
    );
    assert!(error.is_retryable());
}
