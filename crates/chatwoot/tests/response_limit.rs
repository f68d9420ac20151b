//! Answers are read up to `max_response_bytes` and no further: an endless
//! answer ends the call instead of the memory; an endless error answer still
//! gives its error. (The exact limit against the simulator:
//! `client_against_sim::an_answer_of_exactly_the_limit_is_read_and_one_byte_less_is_not`.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use capped_body::testing::endless;
use chatwoot::{ChatwootClient, ChatwootConfig, ChatwootError};
use secrecy::SecretString;

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
async fn an_endless_answer_is_a_typed_error_not_an_allocation() {
    let url = endless(200, "").await.unwrap();
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
    // Only the start of an error answer is read, whatever the limit, and
    // it gives the message.
    let url = endless(503, "<html>Bad Gateway</html>").await.unwrap();
    let error = client(&url, "t", 1, u64::MAX)
        .get_conversation(7)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, ChatwootError::Server { status: 503, message }
            if message.starts_with("<html>Bad Gateway</html>")),
        "{error:?}"
    );
    assert!(error.is_retryable());
}
