//! Settings of each source kind, one file per kind.

mod chatwoot;
mod intake;
mod itop;
mod messaging;

pub use chatwoot::{
    CategorySetting, ChatwootSource, ClosedTicketPolicy, RepliesAs, TITLE_PLACEHOLDERS,
    check_title_template,
};
pub use intake::{IntakeSource, ReadScope, UnknownTaxIdPolicy};
pub use itop::{ExternalDefaults, ITOP_STATES, InternalDefaults, ItopSource, default_status_map};
pub use messaging::{MessagingSource, OpenOn};
