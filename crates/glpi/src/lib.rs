//! Client for the GLPI legacy REST API (`apirest.php`, and `api.php/v1` on GLPI 11).
//!
//! One [`GlpiClient`] holds one GLPI session shared by all its clones and callers; it logs in
//! again once, for everybody, when GLPI says the session expired. See `docs/glpi.md`.

mod client;
mod config;
mod error;
mod lenient;
mod text;

pub use client::GlpiClient;
pub use config::{Auth, DEFAULT_MAX_RESPONSE_BYTES, GlpiConfig, TextEncoding, response_limit_for};
pub use error::GlpiError;
pub use text::{PhoneMatch, decode_text, digits_only, phone_match, same_phone};
mod items;
mod search;

pub use search::{Criterion, Link, Order, SearchPage, SearchQuery, SearchRow, SearchType};
mod ticket;

pub use ticket::{
    Actor, ActorRole, NewTicket, Ticket, TicketStatus, TicketSummary, TicketType, TicketUpdate,
    TicketUser, ticket_field,
};
mod timeline;

pub use timeline::{Followup, NewFollowup, NewSolution, NewTask, Solution, Task};
mod people;

pub use people::{
    Contact, ContactHit, NewContact, NewUser, User, UserEmail, UserHit, contact_field, user_field,
};
mod entity;

pub use entity::{Entity, EntityHit, FieldMatch, NewEntity, document_number_spellings};
mod document;
mod dropdown;

pub use document::{Document, DocumentLink, DownloadedFile, ItemLink, Upload};
pub use dropdown::{ActiveEntities, Category, DropdownItem, MyEntity, MyProfile};
pub mod check;
