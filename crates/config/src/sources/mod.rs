//! Settings of each source kind, one file per kind.

mod chatwoot;
mod intake;
mod itop;
mod messaging;

pub use chatwoot::{
    AttachmentHost, CategorySetting, ChatwootSource, ClosedTicketPolicy, RepliesAs,
    TITLE_PLACEHOLDERS, check_title_template,
};
pub use intake::{IntakeSource, ReadScope, UnknownTaxIdPolicy};
pub use itop::{ExternalDefaults, ITOP_STATES, InternalDefaults, ItopSource, default_status_map};
pub use messaging::{MessagingSource, OpenOn};

/// The body limit a source with attachments inline in base64 gets when it
/// sets none: room for one attachment of `max_attachment_bytes` (base64 is
/// 4/3 of the bytes) and 1 MiB for the rest of the request, and never less
/// than `server.body_limit`.
pub(crate) fn attachment_body_limit(max_attachment_bytes: u64, server_body_limit: usize) -> usize {
    let base64 = max_attachment_bytes.saturating_mul(4).div_ceil(3);
    let room = usize::try_from(base64)
        .unwrap_or(usize::MAX)
        .saturating_add(1024 * 1024);
    room.max(server_body_limit)
}

/// What is wrong with a `default_country`, if anything: it must be a country
/// phone numbers know (ISO 3166 alpha-2, as libphonenumber's metadata has them).
pub(crate) fn country_problem(code: &str) -> Option<&'static str> {
    let code = code.trim().to_ascii_uppercase();
    let known = code.len() == 2
        && code.chars().all(|c| c.is_ascii_alphabetic())
        && code.parse::<phonenumber::country::Id>().is_ok();
    (!known).then_some("must be a two-letter ISO 3166 country code such as BR, PT or US")
}
