use std::time::Duration;

use reqwest::{Method, RequestBuilder, Response, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use url::Url;

use super::error::ChatwootError;
use super::types::{
    ContactSearchPage, ContactUpdate, ConversationListEnvelope, ConversationPage,
    ConversationQuery, CustomAttributesBody, NewMessage, Payload, StatusChange,
};
use crate::model::{Attributes, Contact, Conversation, ConversationStatus, Message};

/// Where and as whom to call Chatwoot.
#[derive(Debug, Clone)]
pub struct ChatwootConfig {
    /// e.g. `https://chatwoot.example.com` (a path prefix is kept).
    pub base_url: Url,
    /// User or AgentBot access token (spec §4.1). Listing conversations and
    /// contact work need a User (administrator) token.
    pub api_access_token: SecretString,
    pub account_id: u64,
    /// Whole-request timeout of every call.
    pub timeout: Duration,
    /// Largest answer read, in bytes; a longer one fails the call with
    /// [`ChatwootError::ResponseTooLarge`] instead of being read into memory.
    /// Usually [`DEFAULT_MAX_RESPONSE_BYTES`].
    pub max_response_bytes: u64,
}

/// The answer limit the bridge uses. Chatwoot's API answers carry attachments
/// as links, never inline, so the largest answer is a page of 100 messages
/// (`list_messages`): at Chatwoot's limit of 150,000 characters a message,
/// about 15 MB of ASCII; 32 MiB leaves room for multibyte text and the JSON
/// around it. No setting: nothing an operator configures changes that size.
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 32 * 1024 * 1024;

/// Chatwoot REST client for one account.
#[derive(Debug, Clone)]
pub struct ChatwootClient {
    http: reqwest::Client,
    config: ChatwootConfig,
    api_root: String,
}

/// Rails reads both `api_access_token` and `Api-Access-Token`; the dashed
/// form survives nginx's `underscores_in_headers off` (spec §4.1, §9.10).
const TOKEN_HEADER: &str = "api-access-token";

impl ChatwootClient {
    pub fn new(config: ChatwootConfig) -> Result<Self, ChatwootError> {
        if !matches!(config.base_url.scheme(), "http" | "https") {
            return Err(ChatwootError::InvalidConfig(format!(
                "base_url must be http(s), got {}",
                config.base_url.scheme()
            )));
        }
        if config.timeout.is_zero() {
            return Err(ChatwootError::InvalidConfig("timeout must be > 0".into()));
        }
        // No redirects: reqwest strips only Authorization and Cookie on a
        // hop to another host, and the token travels in its own header.
        // Chatwoot's API does not redirect; a redirect is answered as an error.
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ChatwootError::InvalidConfig(format!("http client: {e}")))?;
        let api_root = format!(
            "{}/api/v1/accounts/{}",
            config.base_url.as_str().trim_end_matches('/'),
            config.account_id
        );
        Ok(Self {
            http,
            config,
            api_root,
        })
    }

    pub fn account_id(&self) -> u64 {
        self.config.account_id
    }

    /// `POST /conversations/{id}/messages`: an outgoing reply or a private
    /// note. Fails with [`ChatwootError::ChannelCannotReply`] when the
    /// channel refuses a public reply (check `Conversation::can_reply` first).
    pub async fn create_message(
        &self,
        conversation_id: u64,
        message: &NewMessage,
    ) -> Result<Message, ChatwootError> {
        let path = format!("conversations/{conversation_id}/messages");
        self.send_json(self.request(Method::POST, &path).json(message))
            .await
    }

    /// `GET /conversations/{id}/messages` (`after`: only ids greater than
    /// it, oldest first, up to 100). Includes private and activity messages.
    pub async fn list_messages(
        &self,
        conversation_id: u64,
        after: Option<u64>,
    ) -> Result<Vec<Message>, ChatwootError> {
        let path = format!("conversations/{conversation_id}/messages");
        let mut request = self.request(Method::GET, &path);
        if let Some(after) = after {
            request = request.query(&[("after", after)]);
        }
        let page: Payload<Vec<Message>> = self.send_json(request).await?;
        Ok(page.payload)
    }

    /// `GET /conversations/{id}`.
    pub async fn get_conversation(
        &self,
        conversation_id: u64,
    ) -> Result<Conversation, ChatwootError> {
        let path = format!("conversations/{conversation_id}");
        self.send_json(self.request(Method::GET, &path)).await
    }

    /// `GET /conversations?status=…&updated_within=…&inbox_id=…&page=…`.
    pub async fn list_conversations(
        &self,
        query: &ConversationQuery,
    ) -> Result<ConversationPage, ChatwootError> {
        let request = self
            .request(Method::GET, "conversations")
            .query(&query.to_pairs());
        let envelope: ConversationListEnvelope = self.send_json(request).await?;
        Ok(envelope.data)
    }

    /// Every conversation (any status) updated in the last `within`, for
    /// the reconciliation sweep (spec §9.9). One request: Chatwoot does not
    /// paginate when `updated_within` is given.
    pub async fn conversations_updated_within(
        &self,
        within: Duration,
        inbox_id: Option<u64>,
    ) -> Result<Vec<Conversation>, ChatwootError> {
        let query = ConversationQuery {
            status: None,
            updated_within: Some(within),
            inbox_id,
            page: None,
        };
        Ok(self.list_conversations(&query).await?.payload)
    }

    /// `POST /conversations/{id}/toggle_status` with an explicit status.
    /// `snoozed_until` (unix seconds) only matters for `Snoozed`.
    pub async fn toggle_status(
        &self,
        conversation_id: u64,
        status: ConversationStatus,
        snoozed_until: Option<i64>,
    ) -> Result<StatusChange, ChatwootError> {
        #[derive(Serialize)]
        struct Body {
            status: &'static str,
            #[serde(skip_serializing_if = "Option::is_none")]
            snoozed_until: Option<i64>,
        }
        if status == ConversationStatus::Unknown {
            return Err(ChatwootError::InvalidConfig(
                "cannot set an unknown conversation status".into(),
            ));
        }
        let path = format!("conversations/{conversation_id}/toggle_status");
        let body = Body {
            status: status.as_str(),
            snoozed_until,
        };
        let answer: Payload<StatusChange> = self
            .send_json(self.request(Method::POST, &path).json(&body))
            .await?;
        Ok(answer.payload)
    }

    /// The conversation's custom attributes (read via `GET /conversations/{id}`).
    pub async fn conversation_custom_attributes(
        &self,
        conversation_id: u64,
    ) -> Result<Attributes, ChatwootError> {
        Ok(self
            .get_conversation(conversation_id)
            .await?
            .custom_attributes)
    }

    /// `POST /conversations/{id}/custom_attributes`: **replaces the whole
    /// hash** (spec §4.2). Prefer [`merge_conversation_custom_attributes`](Self::merge_conversation_custom_attributes).
    pub async fn set_conversation_custom_attributes(
        &self,
        conversation_id: u64,
        attributes: &Attributes,
    ) -> Result<Attributes, ChatwootError> {
        let path = format!("conversations/{conversation_id}/custom_attributes");
        let body = serde_json::json!({ "custom_attributes": attributes });
        let answer: CustomAttributesBody = self
            .send_json(self.request(Method::POST, &path).json(&body))
            .await?;
        Ok(answer.custom_attributes)
    }

    /// Read-modify-write of conversation custom attributes: reads the
    /// current hash, sets the keys of `patch` (a `null` value removes the
    /// key), writes the whole hash back. Skips the write (and its
    /// conversation_updated echo) when nothing would change. Returns the
    /// resulting hash. A concurrent writer between read and write can still
    /// be overwritten: Chatwoot offers no compare-and-set.
    pub async fn merge_conversation_custom_attributes(
        &self,
        conversation_id: u64,
        patch: &Attributes,
    ) -> Result<Attributes, ChatwootError> {
        let current = self.conversation_custom_attributes(conversation_id).await?;
        let mut merged = current.clone();
        for (key, value) in patch {
            if value.is_null() {
                merged.remove(key);
            } else {
                merged.insert(key.clone(), value.clone());
            }
        }
        if merged == current {
            return Ok(current);
        }
        self.set_conversation_custom_attributes(conversation_id, &merged)
            .await
    }

    /// `GET /contacts/{id}`.
    pub async fn get_contact(&self, contact_id: u64) -> Result<Contact, ChatwootError> {
        let path = format!("contacts/{contact_id}");
        let answer: Payload<Contact> = self.send_json(self.request(Method::GET, &path)).await?;
        Ok(answer.payload)
    }

    /// `PATCH /contacts/{id}`. Custom/additional attributes are shallow-merged
    /// by Chatwoot; email/phone/identifier clashes give `Rejected{422}`.
    pub async fn update_contact(
        &self,
        contact_id: u64,
        update: &ContactUpdate,
    ) -> Result<Contact, ChatwootError> {
        let path = format!("contacts/{contact_id}");
        let answer: Payload<Contact> = self
            .send_json(self.request(Method::PATCH, &path).json(update))
            .await?;
        Ok(answer.payload)
    }

    /// Sets contact custom attribute keys (Chatwoot merges top-level keys).
    pub async fn merge_contact_custom_attributes(
        &self,
        contact_id: u64,
        patch: &Attributes,
    ) -> Result<Contact, ChatwootError> {
        let update = ContactUpdate {
            custom_attributes: Some(patch.clone()),
            ..ContactUpdate::default()
        };
        self.update_contact(contact_id, &update).await
    }

    /// `GET /contacts/search?q=…&page=…` (substring match on name, email,
    /// phone, identifier; 15 per page; only contacts with email, phone or
    /// identifier). Filter for exact matches yourself.
    pub async fn search_contacts(
        &self,
        query: &str,
        page: u32,
    ) -> Result<ContactSearchPage, ChatwootError> {
        let request = self
            .request(Method::GET, "contacts/search")
            .query(&[("q", query.to_owned()), ("page", page.max(1).to_string())]);
        self.send_json(request).await
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}/{}", self.api_root, path))
            .header(TOKEN_HEADER, self.config.api_access_token.expose_secret())
            .header(reqwest::header::ACCEPT, "application/json")
    }

    async fn send_json<T: DeserializeOwned>(
        &self,
        request: RequestBuilder,
    ) -> Result<T, ChatwootError> {
        let response = request.send().await.map_err(ChatwootError::Transport)?;
        let response = check_status(response).await?;
        let bytes = capped_body::read(response, self.config.max_response_bytes)
            .await
            .map_err(|e| match e {
                capped_body::ReadError::TooLarge { limit } => {
                    ChatwootError::ResponseTooLarge { limit }
                }
                capped_body::ReadError::Transport(e) => ChatwootError::Transport(e),
            })?;
        serde_json::from_slice(&bytes).map_err(|e| {
            ChatwootError::Decode(format!("{e}; body starts with: {}", snippet(&bytes)))
        })
    }
}

async fn check_status(response: Response) -> Result<Response, ChatwootError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    // Seconds or an HTTP date (RFC 9110 §10.2.3).
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .and_then(|v| match v.parse::<u64>() {
            Ok(seconds) => Some(Duration::from_secs(seconds)),
            Err(_) => httpdate::parse_http_date(v).ok().map(|at| {
                at.duration_since(std::time::SystemTime::now())
                    .unwrap_or_default()
            }),
        });
    // Read only for its message: the start of the answer is enough, and a body
    // that is long or breaks off must not turn the error into another.
    let body = capped_body::excerpt(response, capped_body::ERROR_BODY_LIMIT).await;
    let message = error_message(&body);
    Err(classify(status, retry_after, message))
}

fn classify(status: StatusCode, retry_after: Option<Duration>, message: String) -> ChatwootError {
    let code = status.as_u16();
    match code {
        429 => ChatwootError::RateLimited { retry_after },
        401 | 403 => ChatwootError::Unauthorized {
            status: code,
            message,
        },
        404 => ChatwootError::NotFound { message },
        // MessagesController answers any exception with a 422: the
        // per-conversation flood limit (200 messages a minute) passes
        // within the minute, a database failure later.
        422 if says_too_many(&message) => ChatwootError::RateLimited {
            retry_after: Some(FLOOD_WINDOW),
        },
        422 if says_database_trouble(&message) => ChatwootError::Server {
            status: code,
            message,
        },
        422 if says_cannot_reply(&message) => ChatwootError::ChannelCannotReply { message },
        500..=599 => ChatwootError::Server {
            status: code,
            message,
        },
        _ => ChatwootError::Rejected {
            status: code,
            message,
        },
    }
}

/// How long the flood limit of a conversation counts messages.
const FLOOD_WINDOW: Duration = Duration::from_secs(60);

/// "Validation failed: Too many messages" (`Message#prevent_message_flooding`).
fn says_too_many(message: &str) -> bool {
    message.to_lowercase().contains("too many messages")
}

/// An exception of the database layer rendered as a 422 (deadlock, lost
/// connection, lock or statement timeout): it may pass.
fn says_database_trouble(message: &str) -> bool {
    let text = message.to_lowercase();
    [
        "pg::",
        "activerecord::deadlocked",
        "activerecord::connectiontimeouterror",
        "activerecord::lockwaittimeout",
        "activerecord::querycanceled",
        "activerecord::connectionnotestablished",
        "deadlock detected",
        "could not obtain lock",
        "canceling statement due to",
    ]
    .iter()
    .any(|needle| text.contains(needle))
}

/// Heuristic over the error text of a 422 on message creation.
fn says_cannot_reply(message: &str) -> bool {
    let text = message.to_lowercase();
    [
        "24 hour",
        "24h",
        "24-hour",
        "reply window",
        "messaging window",
        "cannot reply",
        "can not reply",
        "can_reply",
        "outside the allowed window",
    ]
    .iter()
    .any(|needle| text.contains(needle))
}

/// The human message of a Chatwoot error body (`error`, `message`,
/// `errors`), else a short text snippet.
fn error_message(body: &[u8]) -> String {
    if let Ok(value) = serde_json::from_slice::<Value>(body) {
        for key in ["error", "message", "errors"] {
            match value.get(key) {
                Some(Value::String(s)) => return s.clone(),
                Some(Value::Array(items)) => {
                    return items
                        .iter()
                        .map(|i| {
                            i.as_str()
                                .map(str::to_owned)
                                .unwrap_or_else(|| i.to_string())
                        })
                        .collect::<Vec<_>>()
                        .join("; ");
                }
                Some(other) if !other.is_null() => return other.to_string(),
                _ => {}
            }
        }
    }
    snippet(body)
}

fn snippet(body: &[u8]) -> String {
    String::from_utf8_lossy(body).chars().take(300).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_of_statuses() {
        let e = classify(
            StatusCode::TOO_MANY_REQUESTS,
            Some(Duration::from_secs(7)),
            String::new(),
        );
        assert!(e.is_retryable());
        assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
        assert!(classify(StatusCode::BAD_GATEWAY, None, String::new()).is_retryable());
        assert!(!classify(StatusCode::UNAUTHORIZED, None, String::new()).is_retryable());
        assert!(!classify(StatusCode::NOT_FOUND, None, String::new()).is_retryable());
        let cannot = classify(
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
            "Message cannot be sent: outside the 24 hour reply window".into(),
        );
        assert!(cannot.is_channel_cannot_reply());
        assert!(!cannot.is_retryable());
        let flood = classify(
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
            "Validation failed: Too many messages".into(),
        );
        assert!(flood.is_retryable(), "{flood:?}");
        assert_eq!(flood.retry_after(), Some(Duration::from_secs(60)));
        let database = classify(
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
            "PG::TRDeadlockDetected: ERROR:  deadlock detected".into(),
        );
        assert!(database.is_retryable(), "{database:?}");
        let invalid = classify(
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
            "Email has already been taken".into(),
        );
        assert!(matches!(
            invalid,
            ChatwootError::Rejected { status: 422, .. }
        ));
    }

    #[test]
    fn error_messages_from_bodies() {
        assert_eq!(
            error_message(br#"{"error":"Invalid Access Token"}"#),
            "Invalid Access Token"
        );
        assert_eq!(
            error_message(br#"{"message":"x","attributes":["email"]}"#),
            "x"
        );
        assert_eq!(error_message(br#"{"errors":["a","b"]}"#), "a; b");
        assert_eq!(
            error_message(b"<html>Bad Gateway</html>"),
            "<html>Bad Gateway</html>"
        );
    }
}
