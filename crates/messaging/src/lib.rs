//! Messaging channels (WhatsApp bots, gateways, Typebot): bursts of customer
//! messages merged into one ticket, later messages as followups, the ticket
//! number sent back through a signed callback. No HTTP routing here: the
//! server's `sources::messaging` module calls [`Messaging`].
//!
//! Path of a message: the route checks it ([`Messaging::parse_message`]) and
//! stores it with a `messaging.buffer` job ([`Messaging::message_job`]). That
//! job, run in order with every other job of the conversation, appends it to
//! the conversation's durable buffer ([`state`]) and (re)schedules one
//! `messaging.flush` job through the store's debounce key, at
//! `min(last message + merge_window, first message + max_wait)`. The flush
//! creates one ticket for the whole burst (two-phase, with a marker), links
//! the conversation to it and enqueues the `messaging.callback` delivery.

pub mod attachments;
pub mod callback;
pub mod channel;
pub mod content;
pub mod error;
mod flow;
pub mod message;
pub mod state;

pub use error::MessagingError;
pub use flow::{
    BUFFER_JOB, CALLBACK_JOB, CALLBACK_QUEUE, FLUSH_JOB, FOLLOWUP_LINK, HandoffOutcome, MAX_BURST,
    Messaging, TICKET_LINK, ordering_key,
};
pub use message::{AttachmentInput, ChannelMessage, Rejection};
pub use state::{ConversationState, TicketRef};
