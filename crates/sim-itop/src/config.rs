//! Simulator configuration, users and faults.

use std::time::Duration;

use crate::webhook::WebhookSink;

/// An iTop user account known to the simulator.
#[derive(Debug, Clone, PartialEq)]
pub struct SimUser {
    pub login: String,
    pub password: String,
    /// User id (shown as `user_id` in case-log entries and attachments).
    pub user_id: u64,
    /// Person id of the user's contact (its friendly name is the case-log author).
    pub contact_id: u64,
    /// Administrator profile (may set case-log `user_id`/`user_login`).
    pub admin: bool,
    /// "REST Services User" profile (required for rest.php).
    pub rest: bool,
}

impl SimUser {
    pub fn new(login: &str, password: &str, user_id: u64, contact_id: u64) -> SimUser {
        SimUser {
            login: login.into(),
            password: password.into(),
            user_id,
            contact_id,
            admin: true,
            rest: true,
        }
    }
}

/// How to start a simulated iTop.
#[derive(Debug, Clone)]
pub struct ItopSimConfig {
    /// Port on 127.0.0.1 (0 = any free port).
    pub port: u16,
    /// Accounts. The first account with the REST profile is "the" REST user.
    pub users: Vec<SimUser>,
    /// `Auth-Token` values and the login each one stands for.
    pub tokens: Vec<(String, String)>,
    /// Load the recorded server's demo data (organisations, persons, teams, services).
    pub demo_data: bool,
    /// Webhook actions fired by REST changes.
    pub webhooks: Vec<WebhookSink>,
    /// Timeout of one webhook delivery.
    pub webhook_timeout: Duration,
    /// Send webhooks before answering the REST call that caused them, as a
    /// real iTop does by default; false = in the background.
    pub synchronous_webhooks: bool,
    /// PHP's `post_max_size` in bytes (default 8M, as php.ini ships). A
    /// larger body leaves `$_POST` empty, so iTop sees no form fields: code 2
    /// "Missing parameter 'version'" (or code 1 when the login was a form
    /// field too).
    pub post_max_size: usize,
    /// Codes a customised data model adds to an enumeration, as
    /// (attribute code, value), e.g. `("resolution_code", "known error")`.
    /// Values outside the enumeration are refused on write, as iTop's
    /// `DoCheckToWrite` does (code 100 "Unexpected value for attribute …").
    pub extra_enum_values: Vec<(String, String)>,
}

pub const REST_LOGIN: &str = "rest";
pub const REST_PASSWORD: &str = "rest-secret";
pub const ADMIN_PASSWORD: &str = "admin-secret";
pub const REST_TOKEN: &str = "rest-token-0123456789";

impl Default for ItopSimConfig {
    fn default() -> Self {
        ItopSimConfig {
            port: 0,
            users: vec![
                SimUser::new(REST_LOGIN, REST_PASSWORD, 2, 1),
                SimUser {
                    login: "admin".into(),
                    password: ADMIN_PASSWORD.into(),
                    user_id: 1,
                    contact_id: 1,
                    admin: true,
                    rest: false,
                },
            ],
            tokens: vec![(REST_TOKEN.into(), REST_LOGIN.into())],
            demo_data: true,
            webhooks: Vec::new(),
            webhook_timeout: Duration::from_secs(5),
            synchronous_webhooks: false,
            post_max_size: 8 * 1024 * 1024,
            extra_enum_values: Vec::new(),
        }
    }
}

impl ItopSimConfig {
    pub fn with_webhooks(mut self, sinks: Vec<WebhookSink>) -> Self {
        self.webhooks.extend(sinks);
        self
    }

    pub fn with_user(mut self, user: SimUser) -> Self {
        self.users.push(user);
        self
    }
}

/// A fault injected into the next request(s).
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// Answer with this HTTP status and an HTML body (as a PHP fatal error would).
    HttpStatus(u16),
    /// Start answering, then break the connection.
    DropConnection,
    /// Wait this long, then answer normally.
    Latency(Duration),
    /// Answer HTTP 200 with this result code and message.
    ResultCode { code: i64, message: String },
}
