//! Request body limits per route.
//!
//! Most routes read at most `server.body_limit`. Sources that take files
//! inside their requests have a limit of their own (`sources.<name>.body_limit`;
//! see the config crate for the defaults): Chatwoot webhooks, messaging
//! messages and intake tickets. Those routes read the body themselves, after
//! the caller is authenticated where the source's authentication does not
//! need the body, so nobody without a key makes the service buffer more than
//! `server.body_limit`. The transport caps every body at the largest limit
//! of all ([`transport_cap`]), and a 413 names the setting that applies
//! ([`route_limits`], read by [`crate::error::uniform_errors`]).

use axum::body::{Body, Bytes};
use config::{Config, SourceConfig};

use crate::error::ApiError;
use crate::sources::{chatwoot, messaging};

/// Path prefix of the intake route shared by every intake source.
const SHARED_INTAKE_ROUTE: &str = "/api/v1/tickets";
/// Path template of an intake source's own route.
const INTAKE_SOURCE_ROUTE: &str = "/api/v1/sources/{source}/tickets";

/// The name of the setting behind a source's limit.
pub fn setting(source: &str) -> String {
    format!("sources.{source}.body_limit")
}

/// Reads `body` whole, refusing it with 413 (naming `source`'s
/// `body_limit`) past `limit` bytes.
pub async fn read(body: Body, limit: usize, source: &str) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, limit).await.map_err(|_| {
        ApiError::PayloadTooLarge(format!(
            "the request body is larger than this route accepts ({limit} bytes, {})",
            setting(source)
        ))
    })
}

/// Per route with a limit of its own: its path prefix, the limit, and the
/// setting that sets it. The shared intake route gets the largest intake
/// limit (which source a request is for is known only from its key).
pub fn route_limits(config: &Config) -> Vec<(String, usize, String)> {
    let server = config.server.body_limit;
    let mut limits = Vec::new();
    let mut largest_intake: Option<(usize, String)> = None;
    for (name, source) in &config.sources {
        match source {
            SourceConfig::Chatwoot(s) => limits.push((
                chatwoot::ROUTE.replace("{source}", name),
                s.body_limit,
                setting(name),
            )),
            SourceConfig::Messaging(s) => limits.push((
                messaging::MESSAGES_ROUTE.replace("{source}", name),
                s.body_limit(server),
                setting(name),
            )),
            SourceConfig::Intake(s) => {
                let limit = s.body_limit(server);
                limits.push((
                    INTAKE_SOURCE_ROUTE.replace("{source}", name),
                    limit,
                    setting(name),
                ));
                if largest_intake.as_ref().is_none_or(|(l, _)| limit > *l) {
                    largest_intake = Some((limit, setting(name)));
                }
            }
            _ => {}
        }
    }
    if let Some((limit, setting)) = largest_intake {
        limits.push((SHARED_INTAKE_ROUTE.to_owned(), limit, setting));
    }
    limits
}

/// The most any request body may be: the largest of `server.body_limit` and
/// every route's own limit.
pub fn transport_cap(config: &Config) -> usize {
    route_limits(config)
        .iter()
        .map(|(_, limit, _)| *limit)
        .fold(config.server.body_limit, usize::max)
}
