//! REST API client (spec §4): messages, conversations, custom attributes,
//! contacts. Every call has the configured timeout.

mod client;
mod error;
mod types;

pub use client::{ChatwootClient, ChatwootConfig, DEFAULT_MAX_RESPONSE_BYTES};
pub use error::ChatwootError;
pub use types::{
    ContactSearchPage, ContactUpdate, ConversationPage, ConversationQuery, NewMessage, SearchMeta,
    StatusChange, ZERO_WIDTH_SPACE, inert_liquid,
};
