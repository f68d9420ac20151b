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

/// What is wrong with a `default_country`, if anything: it must be a country
/// phone numbers know (ISO 3166 alpha-2, as libphonenumber's metadata has them).
pub(crate) fn country_problem(code: &str) -> Option<&'static str> {
    let code = code.trim().to_ascii_uppercase();
    let known = code.len() == 2
        && code.chars().all(|c| c.is_ascii_alphabetic())
        && code.parse::<phonenumber::country::Id>().is_ok();
    (!known).then_some("must be a two-letter ISO 3166 country code such as BR, PT or US")
}
