//! Where a request stands, as recorded in the store's kv (namespace
//! [`NAMESPACE`], key = the request id) and answered by the status route.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// kv namespace of request outcomes.
pub const NAMESPACE: &str = "intake.request";

/// Why a request ended without a ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FailureCode {
    /// The tax id matched no organisation and the source's policy is reject.
    EntityNotFound,
    /// The category name matched no category.
    CategoryNotFound,
    /// The target refused the ticket's content (unknown category or request
    /// type, a field it finds invalid...).
    Refused,
    /// Only a phone was given, it matched nobody and creating requesters is off.
    RequesterUnknown,
    /// The stored request no longer validates (settings changed).
    InvalidRequest,
    /// The target stayed unavailable through every attempt.
    TargetUnavailable,
    /// The target failed for reasons of its own (credentials or API access
    /// refused, an unreadable answer, its settings), not because of the
    /// request: an operator must act, then the request can be sent again.
    TargetError,
}

impl FailureCode {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureCode::EntityNotFound => "entity_not_found",
            FailureCode::CategoryNotFound => "category_not_found",
            FailureCode::Refused => "refused",
            FailureCode::RequesterUnknown => "requester_unknown",
            FailureCode::InvalidRequest => "invalid_request",
            FailureCode::TargetUnavailable => "target_unavailable",
            FailureCode::TargetError => "target_error",
        }
    }

    /// The request failed because of the target, not of what it asked: the
    /// caller sending it again starts it again
    /// ([`crate::Intake::restart_if_target_failed`]).
    pub fn is_target_side(self) -> bool {
        matches!(
            self,
            FailureCode::TargetUnavailable | FailureCode::TargetError
        )
    }
}

/// The recorded outcome of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum RequestOutcome {
    /// Accepted, the ticket is not created yet (retrying if the target is down).
    Queued {
        source: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        attempts: Option<i32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        last_error: Option<String>,
    },
    Created {
        source: String,
        ticket_id: i64,
        /// What the help desk's users call the ticket (GLPI: the id, iTop:
        /// the `ref`).
        #[serde(default)]
        ticket_ref: String,
        url: String,
        message: String,
    },
    Failed {
        source: String,
        code: FailureCode,
        reason: String,
    },
}

impl RequestOutcome {
    pub fn source(&self) -> &str {
        match self {
            RequestOutcome::Queued { source, .. }
            | RequestOutcome::Created { source, .. }
            | RequestOutcome::Failed { source, .. } => source,
        }
    }

    /// Created or failed: nothing more will happen.
    pub fn is_final(&self) -> bool {
        !matches!(self, RequestOutcome::Queued { .. })
    }
}
