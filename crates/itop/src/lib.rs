//! iTop REST/JSON client (`webservices/rest.php`).
//!
//! Every call is one form-encoded POST with `version` and `json_data`
//! (never a JSON body: iTop ignores it). iTop answers HTTP 200 for success and
//! failure alike; the JSON `code` decides, and each code becomes an
//! [`ItopError`] variant that says whether a retry can help.

mod attachment;
mod case_log;
mod client;
mod config;
mod contacts;
mod error;
mod response;
mod user_request;

pub use attachment::{Attachment, NewAttachment};
pub use case_log::{CaseLog, CaseLogEntry, LogFormat, NewLogEntry};
pub use client::ItopClient;
pub use config::{DEFAULT_MAX_RESPONSE_BYTES, ItopAuth, ItopConfig, response_limit_for};
pub use contacts::{NewPerson, Organization, Person};
pub use error::{ItopError, is_database_trouble};
pub use response::{ItopObject, Key, RestResponse, lenient_text, lenient_u64, oql_quote};
pub use user_request::{NewUserRequest, Stimulus, USER_REQUEST_FIELDS, UserRequest};
