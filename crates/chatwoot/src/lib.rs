//! Chatwoot connector: webhook payload types, webhook signature check and a
//! REST API client (spec: `shared/specs/chatwoot.md`).
//!
//! * [`webhook`] parses account-webhook bodies into [`Event`]s (lenient:
//!   unknown fields are ignored, optional fields are optional).
//! * [`signature`] verifies `X-Chatwoot-Signature` (HMAC-SHA256 over
//!   `"{timestamp}.{raw body}"`, spec §1.4) and refuses stale timestamps.
//! * [`api`] is the [`ChatwootClient`] for the endpoints of spec §4.2.

pub mod api;
pub mod model;
pub mod signature;
pub mod webhook;

pub use api::{
    ChatwootClient, ChatwootConfig, ChatwootError, ContactSearchPage, ContactUpdate,
    ConversationPage, ConversationQuery, DEFAULT_MAX_RESPONSE_BYTES, NewMessage, StatusChange,
    ZERO_WIDTH_SPACE, inert_liquid,
};
pub use model::{
    AccountRef, Attachment, Contact, ContactInbox, Conversation, ConversationMeta,
    ConversationStatus, InboxRef, Message, MessageType, Sender, SenderKind, Timestamp,
};
pub use signature::{SignatureError, SignatureVerifier, WebhookHeaders, sign};
pub use webhook::{
    AttributeChange, ChangedAttributes, ContactEvent, ContactRef, ConversationEvent, Event,
    MessageEvent, PayloadError, is_noise_only_update,
};
