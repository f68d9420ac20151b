//! The intake API: tickets from web forms, voice agents and automation
//! tools, for every `[sources.<name>]` with `kind = "intake"`.
//!
//! - `POST /api/v1/tickets`: the API key (`X-API-Key` or `Authorization:
//!   Bearer`) says which intake source the request is for (keys are per
//!   source). `POST /api/v1/sources/{source}/tickets` names the source in
//!   the path; the key must be one of that source's.
//! - `GET /api/v1/tickets/requests/{id}`: queued / created / failed.
//! - `GET /api/v1/tickets?requester_phone=…|requester_email=…&status=open|all`
//! - `GET /api/v1/tickets/{id}`
//! - `GET /ping`, `GET /api/v1/openapi.json`
//!
//! Create: verify (key, JSON, every field) → with the policy `reject` and
//! a tax id, check the organisation within the wait budget (cached; 404
//! `entity_not_found` before anything is stored; if the target does not
//! answer in time the request is accepted and the job decides) → persist
//! (inbox + one `intake.create_ticket` job, one transaction; the dedupe key
//! is the `Idempotency-Key`, else the SHA-256 of the body) → wait up to the
//! source's `wait` for the outcome (201 / 404 / 422) or answer 202 with a
//! status URL. `?mode=async` answers 202 at once and never calls the target
//! on the request path.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use intake::request::{FieldError, Rejection, validate};
use intake::{
    FailureCode, HandedRequest, Intake, IntakeError, Precheck, RequestOutcome, RequesterLookup,
    Source,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::auth::ApiKeys;
use crate::body_limits;
use crate::error::ApiError;
use crate::ingest::{self, Inbound, IngestOutcome};
use crate::state::{AppState, Arrival};

/// Time kept between the end of a waiting `POST`'s budget and the server's
/// request timeout, for the answer to be written.
const ANSWER_MARGIN: std::time::Duration = std::time::Duration::from_millis(500);
/// `Retry-After` (seconds) of a 503 `target_unavailable`.
const TARGET_RETRY_AFTER: &str = "30";
/// Longest accepted `Idempotency-Key`.
const MAX_IDEMPOTENCY_KEY: usize = 255;
/// Headers kept with the inbox row.
const KEPT_HEADERS: [&str; 4] = [
    "content-type",
    "user-agent",
    "idempotency-key",
    "x-request-id",
];

/// The intake routes, serving the sources of `intake`.
pub fn routes(intake: Arc<Intake>) -> impl Fn(&AppState) -> Router<AppState> + Send + Sync {
    move |_state: &AppState| {
        let api = Arc::new(IntakeApi::new(intake.clone()));
        let (a, b, c, d, e) = (api.clone(), api.clone(), api.clone(), api.clone(), api);
        Router::new()
            .route(
                "/api/v1/tickets",
                post(move |state, arrival, RawQuery(query), headers, body| {
                    create(a.clone(), state, arrival, None, query, headers, body)
                })
                .get(move |RawQuery(query), headers| list(b.clone(), query, headers)),
            )
            .route(
                "/api/v1/sources/{source}/tickets",
                post(
                    move |state, arrival, path, RawQuery(query), headers, body| {
                        create_in_source(c.clone(), state, arrival, path, query, headers, body)
                    },
                ),
            )
            .route(
                "/api/v1/tickets/requests/{id}",
                get(move |path, headers| request_status(d.clone(), path, headers)),
            )
            .route(
                "/api/v1/tickets/{id}",
                get(move |path, headers| one_ticket(e.clone(), path, headers)),
            )
            .route("/ping", get(ping))
            .route("/api/v1/openapi.json", get(openapi_json))
    }
}

struct IntakeApi {
    intake: Arc<Intake>,
    keys: Vec<(Arc<Source>, ApiKeys)>,
}

impl IntakeApi {
    fn new(intake: Arc<Intake>) -> Self {
        let keys = intake
            .sources()
            .map(|s| (s.clone(), ApiKeys::new(s.settings.api_keys.clone())))
            .collect();
        IntakeApi { intake, keys }
    }

    /// The source whose key the request carries (401 otherwise). With a
    /// source `named` in the path, the key must be one of its; the key is
    /// checked first, so a caller without a valid key learns nothing of which
    /// sources exist (401, never 404).
    fn authenticate(
        &self,
        headers: &HeaderMap,
        named: Option<&str>,
    ) -> Result<Arc<Source>, ApiError> {
        let mut last = ApiError::Unauthorized("invalid API key".to_owned());
        let mut found = None;
        // Every source's keys are tried, so timing does not tell which matched.
        for (source, keys) in &self.keys {
            match keys.check(headers) {
                Ok(()) => {
                    found.get_or_insert_with(|| source.clone());
                }
                Err(e) => last = e,
            }
        }
        let Some(source) = found else {
            return Err(last);
        };
        match named {
            None => Ok(source),
            Some(name) if name == source.name => Ok(source),
            Some(name) if self.intake.source(name).is_none() => Err(ApiError::NotFound(format!(
                "no intake source named {name:?}"
            ))),
            Some(_) => Err(ApiError::Unauthorized("invalid API key".to_owned())),
        }
    }
}

/// An answer of the intake routes that is not a success.
enum Failure {
    Api(ApiError),
    Fields {
        status: StatusCode,
        code: &'static str,
        message: String,
        fields: Vec<FieldError>,
    },
    Outcome {
        status: StatusCode,
        code: String,
        message: String,
        request_id: Option<i64>,
    },
}

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Self {
        Failure::Api(e)
    }
}

/// What callers are told of a help desk that does not answer: the error's
/// own text (addresses, error pages, connection details) stays in the logs
/// and in `ticketbridge jobs show`.
const UNAVAILABLE: &str = "the help desk is not answering right now";

/// The HTTP status a waiting caller gets for a request that ended without a
/// ticket: 4xx for what the request asked (the caller must change it), 5xx
/// for the target's own trouble (the same request may succeed later, and
/// sending it again starts it again).
fn failure_status(code: FailureCode) -> StatusCode {
    match code {
        FailureCode::EntityNotFound => StatusCode::NOT_FOUND,
        FailureCode::CategoryNotFound
        | FailureCode::Refused
        | FailureCode::RequesterUnknown
        | FailureCode::InvalidRequest => StatusCode::UNPROCESSABLE_ENTITY,
        FailureCode::TargetError => StatusCode::BAD_GATEWAY,
        FailureCode::TargetUnavailable => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// What callers are told of a help desk that failed for reasons of its own
/// (the bridge's credentials or access refused, an answer it cannot read).
const TARGET_ERROR: &str = "the help desk could not take the request (its settings or the bridge's access to it); the operator can see why; send the request again once it is fixed";

/// What callers are told of a ticket the help desk refused: its own words
/// (which may quote its pages or settings) stay in the logs.
const REFUSED: &str = "the help desk refused the ticket (a category, request type or field it does not accept); the operator can see its reason";

/// What callers of a read are told of a help desk that failed for reasons of
/// its own.
const TARGET_ERROR_NOW: &str = "the help desk could not answer (its settings or the bridge's access to it); the operator can see why";

/// A failure's reason as callers see it: the bridge's own words about the
/// request (a category or tax id that matches nothing, an invalid field), a
/// fixed text for anything the target said (see [`UNAVAILABLE`]). The code
/// is what a program reads; the target's words are in the logs and in
/// `ticketbridge jobs show`.
fn public_reason(code: FailureCode, reason: String) -> String {
    match code {
        FailureCode::TargetUnavailable => {
            format!("{UNAVAILABLE}: every attempt failed; send the request again to try once more")
        }
        FailureCode::TargetError => TARGET_ERROR.to_owned(),
        FailureCode::Refused => REFUSED.to_owned(),
        FailureCode::EntityNotFound
        | FailureCode::CategoryNotFound
        | FailureCode::RequesterUnknown
        | FailureCode::InvalidRequest => reason,
    }
}

impl From<IntakeError> for Failure {
    fn from(e: IntakeError) -> Self {
        match e {
            IntakeError::Store(s) => Failure::Api(ApiError::from(s)),
            other if other.is_retryable() => {
                // The details (addresses, the target's error pages) are for
                // the operator's logs, not for whoever holds a form's key.
                tracing::warn!(error = %other, "intake: the target is unavailable");
                Failure::Outcome {
                    status: StatusCode::SERVICE_UNAVAILABLE,
                    code: "target_unavailable".into(),
                    message: format!("{UNAVAILABLE}; send the request again later"),
                    request_id: None,
                }
            }
            other => {
                tracing::warn!(error = %other, "intake: the target failed");
                Failure::Outcome {
                    status: StatusCode::BAD_GATEWAY,
                    code: "target_error".into(),
                    message: TARGET_ERROR_NOW.to_owned(),
                    request_id: None,
                }
            }
        }
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        match self {
            Failure::Api(e) => e.into_response(),
            Failure::Fields {
                status,
                code,
                message,
                fields,
            } => (
                status,
                Json(json!({"error": {"code": code, "message": message, "fields": fields}})),
            )
                .into_response(),
            Failure::Outcome {
                status,
                code,
                message,
                request_id,
            } => {
                let mut error = json!({"code": code, "message": message});
                if let Some(id) = request_id {
                    error["request_id"] = json!(id);
                }
                let mut response = (status, Json(json!({ "error": error }))).into_response();
                if status == StatusCode::SERVICE_UNAVAILABLE {
                    // The help desk is down: say when trying again is worth it.
                    response.headers_mut().insert(
                        header::RETRY_AFTER,
                        HeaderValue::from_static(TARGET_RETRY_AFTER),
                    );
                }
                response
            }
        }
    }
}

/// 400 `invalid_request` listing `fields`.
fn invalid_fields(fields: Vec<FieldError>) -> Failure {
    Failure::Fields {
        status: StatusCode::BAD_REQUEST,
        code: "invalid_request",
        message: Rejection::Invalid(fields.clone()).to_string(),
        fields,
    }
}

/// The query string read into `T` (after the key was checked, so a caller
/// without a key learns nothing of it). A parameter given twice is a
/// problem named by the parameter; unknown parameters are ignored.
fn query_params<T: serde::de::DeserializeOwned + Default>(
    query: Option<&str>,
    problems: &mut Vec<FieldError>,
) -> T {
    let Some(query) = query else {
        return T::default();
    };
    let pairs: Vec<(String, String)> = match serde_urlencoded::from_str(query) {
        Ok(pairs) => pairs,
        Err(_) => {
            problems.push(FieldError {
                field: "query".into(),
                message: "is not a valid query string".into(),
            });
            return T::default();
        }
    };
    let mut seen = serde_json::Map::new();
    for (name, value) in pairs {
        if seen.contains_key(&name) {
            problems.push(FieldError {
                field: name,
                message: "is given more than once".into(),
            });
        } else {
            seen.insert(name, serde_json::Value::String(value));
        }
    }
    serde_json::from_value(serde_json::Value::Object(seen)).unwrap_or_default()
}

/// `?mode=`
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CreateParams {
    /// `async`: answer 202 at once; `wait` (default, `sync` too): wait up to the source's `wait`.
    #[param(schema_with = mode_schema)]
    pub mode: Option<String>,
}

fn mode_schema() -> utoipa::openapi::schema::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(["wait", "sync", "async"]))
        .default(Some(json!("wait")))
        .build()
}

fn status_filter_schema() -> utoipa::openapi::schema::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(["open", "all"]))
        .default(Some(json!("open")))
        .build()
}

/// 201: the ticket exists.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"status": "created", "ticket_id": 1234, "ticket_ref": "1234", "url": "https://glpi.example.com/front/ticket.form.php?id=1234", "message": "Ticket #1234 created", "request_id": 42}))]
pub struct CreatedAnswer {
    /// Always `created`.
    pub status: String,
    pub ticket_id: i64,
    /// What the help desk's users call the ticket: GLPI the id (`1234`),
    /// iTop the `ref` (`R-000004`, not the id).
    pub ticket_ref: String,
    pub url: String,
    /// From the source's `message_template`.
    pub message: String,
    pub request_id: i64,
}

/// 202: accepted, the ticket is not there yet.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"status": "queued", "request_id": 42, "status_url": "https://bridge.example.com/api/v1/tickets/requests/42"}))]
pub struct AcceptedAnswer {
    /// `queued` (or `created` when an async repeat finds the ticket made).
    pub status: String,
    pub request_id: i64,
    pub status_url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ticket_id: Option<i64>,
    /// With `ticket_id`: what the help desk's users call the ticket.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ticket_ref: Option<String>,
}

/// Where a request stands.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"request_id": 42, "status": "created", "ticket_id": 1234, "ticket_ref": "1234", "url": "https://glpi.example.com/front/ticket.form.php?id=1234", "message": "Ticket #1234 created"}))]
pub struct RequestStatus {
    pub request_id: i64,
    /// queued, created or failed.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ticket_id: Option<i64>,
    /// When created: what the help desk's users call the ticket (GLPI: the
    /// id, iTop: the `ref`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ticket_ref: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When failed: entity_not_found, category_not_found, refused, requester_unknown,
    /// invalid_request, target_error or target_unavailable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// While queued: attempts made so far and the last error (target down...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

impl RequestStatus {
    fn of(request_id: i64, outcome: RequestOutcome) -> Self {
        let mut s = RequestStatus {
            request_id,
            status: String::new(),
            ticket_id: None,
            ticket_ref: None,
            url: None,
            message: None,
            code: None,
            reason: None,
            attempts: None,
            last_error: None,
        };
        match outcome {
            RequestOutcome::Queued {
                attempts,
                last_error,
                ..
            } => {
                s.status = "queued".into();
                s.attempts = attempts;
                s.last_error =
                    last_error.map(|_| format!("{UNAVAILABLE}; the request will be tried again"));
            }
            RequestOutcome::Created {
                ticket_id,
                ticket_ref,
                url,
                message,
                ..
            } => {
                s.status = "created".into();
                s.ticket_id = Some(ticket_id);
                s.ticket_ref = Some(ticket_ref);
                s.url = Some(url);
                s.message = Some(message);
            }
            RequestOutcome::Failed { code, reason, .. } => {
                s.status = "failed".into();
                s.code = Some(code.as_str().into());
                s.reason = Some(public_reason(code, reason));
            }
        }
        s
    }
}

/// `GET /api/v1/tickets` query.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Any spelling; read in the source's default country without a +code.
    pub requester_phone: Option<String>,
    pub requester_email: Option<String>,
    /// `open` (default) or `all`.
    #[param(schema_with = status_filter_schema)]
    pub status: Option<String>,
    /// At most this many tickets, the newest (last changed) first; every one
    /// when absent.
    #[param(schema_with = list_limit_schema)]
    pub limit: Option<String>,
}

/// Largest `limit` of `GET /api/v1/tickets`.
pub const MAX_LIST_LIMIT: usize = 200;

fn list_limit_schema() -> utoipa::openapi::schema::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::Integer)
        .minimum(Some(1))
        .maximum(Some(MAX_LIST_LIMIT as i32))
        .build()
}

/// The `limit` parameter: `None` when absent; a problem when it is not a
/// whole number from 1 to [`MAX_LIST_LIMIT`].
fn list_limit(limit: Option<&str>, problems: &mut Vec<FieldError>) -> Option<usize> {
    let text = limit?;
    match text.trim().parse::<usize>() {
        Ok(n) if (1..=MAX_LIST_LIMIT).contains(&n) => Some(n),
        _ => {
            problems.push(FieldError {
                field: "limit".into(),
                message: format!("must be a whole number from 1 to {MAX_LIST_LIMIT}"),
            });
            None
        }
    }
}

/// A requester's tickets, newest first.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"tickets": [{"id": 1234, "reference": "1234", "title": "Printer jammed", "status": "assigned", "updated_at": "2025-05-02 10:11:12", "url": "https://glpi.example.com/front/ticket.form.php?id=1234"}]}))]
pub struct TicketList {
    pub tickets: Vec<intake::TicketSummary>,
}

/// The uniform error body; `fields` lists every invalid field (400, 413).
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"error": {"code": "invalid_request", "message": "2 invalid field(s)", "fields": [{"field": "requester.email", "message": "is not a valid email address"}, {"field": "description", "message": "is required"}]}}))]
pub struct ErrorAnswer {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// invalid_request, unauthorized, reads_disabled, not_found,
    /// entity_not_found, payload_too_large, unsupported_media_type,
    /// category_not_found, refused, requester_unknown, idempotency_key_reused,
    /// target_error, target_unavailable, unavailable, timeout, internal.
    pub code: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<FieldError>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<i64>,
}

/// Create a ticket.
#[utoipa::path(
    post,
    path = "/api/v1/tickets",
    tag = "tickets",
    params(
        CreateParams,
        ("Idempotency-Key" = Option<String>, Header, description = "1 to 255 characters. A repeat with the same key returns the same ticket, never a second one (default: the SHA-256 of the body, a repeat within the source's dedupe_window)"),
    ),
    request_body(content = intake::request::TicketRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "The ticket was created within the wait", body = CreatedAnswer,
            headers(("Idempotent-Replayed" = String, description = "`true` when this answers a repeat of an earlier request"))),
        (status = 202, description = "Accepted (durable); poll status_url", body = AcceptedAnswer,
            headers(
                ("Location" = String, description = "The status URL (as status_url)"),
                ("Idempotent-Replayed" = String, description = "`true` when this answers a repeat of an earlier request"),
            )),
        (status = 400, description = "invalid_request: every invalid field listed (body fields, `mode`, `Idempotency-Key`)", body = ErrorAnswer),
        (status = 401, description = "Missing or unknown API key", body = ErrorAnswer),
        (status = 404, description = "entity_not_found: the tax id matches no organisation (policy reject)", body = ErrorAnswer),
        (status = 413, description = "Body or an attachment too large", body = ErrorAnswer),
        (status = 415, description = "Not JSON", body = ErrorAnswer),
        (status = 422, description = "The target refused the ticket's content (category_not_found, refused, requester_unknown, invalid_request), or an Idempotency-Key already used for a different request (idempotency_key_reused)", body = ErrorAnswer),
        (status = 502, description = "target_error: the target failed for reasons of its own (credentials, access, an unreadable answer); send again once it is fixed", body = ErrorAnswer),
        (status = 503, description = "target_unavailable: the target stayed down through every attempt; unavailable: the request could not be stored. Send again after Retry-After", body = ErrorAnswer,
            headers(("Retry-After" = String, description = "Seconds to wait before sending again"))),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
async fn create(
    api: Arc<IntakeApi>,
    State(state): State<AppState>,
    arrival: Option<Extension<Arrival>>,
    named: Option<String>,
    query: Option<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Failure> {
    // One budget of `wait` for the whole request, counted from its arrival
    // (as the server's timeout is: a slow upload spends it too): the
    // pre-check and the wait for the ticket share it, so the answer (201, or
    // 202 with the request id) always comes before the server's own timeout.
    let started = arrival.map_or_else(tokio::time::Instant::now, |Extension(Arrival(at))| at);
    let source = api.authenticate(&headers, named.as_deref())?;
    let budget = source.settings.wait.min(
        state
            .config
            .server
            .request_timeout
            .saturating_sub(ANSWER_MARGIN),
    );
    ingest::require_json(&headers, "the ticket")?;
    // Read once the key is checked, with the source's own limit (attachments
    // in base64 make tickets larger than other requests).
    let body = body_limits::read(
        body,
        source.settings.body_limit(state.config.server.body_limit),
        &source.name,
    )
    .await?;
    // Every problem of the request in one answer: the query, the
    // Idempotency-Key and each field of the body.
    let mut problems = Vec::new();
    let params: CreateParams = query_params(query.as_deref(), &mut problems);
    let wait_mode = match params.mode.as_deref() {
        None | Some("wait") | Some("sync") => true,
        Some("async") => false,
        Some(_) => {
            problems.push(FieldError {
                field: "mode".into(),
                message: "must be wait or async".into(),
            });
            true
        }
    };
    let idempotency_key = match headers.get("idempotency-key") {
        None => None,
        Some(value) => match value.to_str().map(str::trim) {
            Ok(key) if !key.is_empty() && key.len() <= MAX_IDEMPOTENCY_KEY => Some(key.to_owned()),
            Ok(_) => {
                problems.push(FieldError {
                    field: "Idempotency-Key".into(),
                    message: format!("must be 1 to {MAX_IDEMPOTENCY_KEY} characters"),
                });
                None
            }
            Err(_) => {
                problems.push(FieldError {
                    field: "Idempotency-Key".into(),
                    message: "must be printable ASCII".into(),
                });
                None
            }
        },
    };
    let request = match validate(&body, &source.rules()) {
        Ok(request) if problems.is_empty() => request,
        Ok(_) => return Err(invalid_fields(problems)),
        Err(Rejection::TooLarge(fields)) if problems.is_empty() => {
            return Err(Failure::Fields {
                status: StatusCode::PAYLOAD_TOO_LARGE,
                code: "payload_too_large",
                message: Rejection::TooLarge(Vec::new()).to_string(),
                fields,
            });
        }
        Err(Rejection::Invalid(fields) | Rejection::TooLarge(fields)) => {
            problems.extend(fields);
            return Err(invalid_fields(problems));
        }
    };
    let dedupe_key = match &idempotency_key {
        Some(key) => format!("key:{key}"),
        None => format!("sha256:{}", hex::encode(Sha256::digest(&body))),
    };
    // With an Idempotency-Key, what the request says is kept beside it, so a
    // key reused for another request is refused rather than answered with the
    // first one's ticket.
    let fingerprint = dedupe_key
        .starts_with("key:")
        .then(|| request_fingerprint(&body));

    // What the cache knows settles most requests without a read; otherwise a
    // repeat answers from the stored outcome without checking again.
    let precheck = if !wait_mode {
        Precheck::NotNeeded
    } else if let Some(precheck) = source.precheck_cached(&request).await {
        precheck
    } else {
        let known = state
            .store
            .inbox_by_dedupe(&source.name, &dedupe_key)
            .await
            .map_err(ApiError::from)?;
        match known {
            None => {
                source
                    .precheck(&request, budget.saturating_sub(started.elapsed()))
                    .await
            }
            Some(_) => Precheck::NotNeeded,
        }
    };
    if precheck == Precheck::NotFound {
        return Err(Failure::Outcome {
            status: StatusCode::NOT_FOUND,
            code: "entity_not_found".into(),
            message: format!(
                "no organisation has the tax id {}",
                request.tax_id.as_deref().unwrap_or("")
            ),
            request_id: None,
        });
    }
    let body_key = dedupe_key.clone();
    let mut dedupe_key = dedupe_key;
    let mut walked = 0;
    let outcome = loop {
        let mut job = api.intake.job(&source, &dedupe_key, &precheck);
        let reservation = api.intake.reserve(&mut job);
        let ordering_key = job.ordering_key.clone();
        // Before accepting: the job may start as soon as it is stored.
        api.intake.hand_over(
            &job,
            HandedRequest {
                dedupe_key: dedupe_key.clone(),
                body: body.to_vec(),
            },
        );
        let accepted = ingest::accept(
            &state,
            Inbound {
                source: source.name.clone(),
                dedupe_key,
                body: body.to_vec(),
                headers: kept_headers(&headers, fingerprint.as_deref()),
                jobs: vec![job],
            },
        )
        .await;
        match (&accepted, reservation) {
            (Ok(IngestOutcome::Accepted { claimed, .. }), Some(reservation)) => {
                // Claimed as it was stored: run it now. Not claimed (its ordering key
                // is busy): the engine's runners take it, and the slot goes back.
                if let Some(job) = claimed.first() {
                    reservation.start(job.clone());
                }
            }
            (Ok(IngestOutcome::Accepted { .. }), None) => {}
            _ => {
                // A repeat (its first delivery's job reads the store) or not stored.
                api.intake.withdraw(&ordering_key);
            }
        }
        let outcome = accepted?;
        // A body seen before, sent without an Idempotency-Key, is a repeat
        // only within the source's dedupe window; past it the same words are
        // a new request (the printer jammed again). The new request's key
        // names the row it follows: concurrent repeats still meet on one
        // key, and later ones walk the same chain.
        if let IngestOutcome::Duplicate { inbox_id, .. } = &outcome
            && fingerprint.is_none()
            && walked < MAX_REPEAT_CHAIN
            && repeat_window_passed(&state, *inbox_id, source.settings.dedupe_window).await?
        {
            dedupe_key = format!("{body_key}~{inbox_id}");
            walked += 1;
            continue;
        }
        break outcome;
    };
    let id = outcome.inbox_id();
    // A repeat is answered with `Idempotent-Replayed`, a restarted one too.
    let repeat = outcome.is_duplicate();
    let mut replayed = repeat;
    if replayed && let Some(fingerprint) = &fingerprint {
        refuse_reused_key(&state, id, fingerprint).await?;
    }
    // A repeat of a request that failed because of the target is a new try,
    // waited for like a new request.
    if replayed && api.intake.restart_if_target_failed(&source, id).await? {
        state.wake.wake();
        replayed = false;
    }
    let current = if wait_mode {
        let left = budget.saturating_sub(started.elapsed());
        api.intake
            .wait_outcome(&source, id, left, !replayed)
            .await?
    } else if replayed {
        api.intake
            .outcome(&source.name, id)
            .await?
            .unwrap_or(RequestOutcome::Queued {
                source: source.name.clone(),
                attempts: None,
                last_error: None,
            })
    } else {
        RequestOutcome::Queued {
            source: source.name.clone(),
            attempts: None,
            last_error: None,
        }
    };
    let mut response = match current {
        RequestOutcome::Created {
            ticket_id,
            ticket_ref,
            url,
            message,
            ..
        } if wait_mode => (
            StatusCode::CREATED,
            Json(CreatedAnswer {
                status: "created".into(),
                ticket_id,
                ticket_ref,
                url,
                message,
                request_id: id,
            }),
        )
            .into_response(),
        RequestOutcome::Failed { code, reason, .. } => {
            let mut failed = Failure::Outcome {
                status: failure_status(code),
                code: code.as_str().into(),
                message: public_reason(code, reason),
                request_id: Some(id),
            }
            .into_response();
            if repeat {
                failed
                    .headers_mut()
                    .insert("idempotent-replayed", HeaderValue::from_static("true"));
            }
            return Ok(failed);
        }
        other => {
            let (ticket_id, ticket_ref) = match other {
                RequestOutcome::Created {
                    ticket_id,
                    ticket_ref,
                    ..
                } => (Some(ticket_id), Some(ticket_ref)),
                _ => (None, None),
            };
            let status_url = crate::links::absolute(
                &state.config.server,
                &headers,
                &format!("/api/v1/tickets/requests/{id}"),
            );
            let location = HeaderValue::from_str(&status_url).ok();
            let mut accepted = (
                StatusCode::ACCEPTED,
                Json(AcceptedAnswer {
                    status: if ticket_id.is_some() {
                        "created"
                    } else {
                        "queued"
                    }
                    .into(),
                    request_id: id,
                    status_url,
                    ticket_id,
                    ticket_ref,
                }),
            )
                .into_response();
            if let Some(location) = location {
                accepted.headers_mut().insert(header::LOCATION, location);
            }
            accepted
        }
    };
    if repeat {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// Create a ticket through the intake source named in the path (the key must
/// be one of its).
#[utoipa::path(
    post,
    path = "/api/v1/sources/{source}/tickets",
    tag = "tickets",
    params(
        ("source" = String, Path, description = "The intake source's name in the configuration"),
        CreateParams,
        ("Idempotency-Key" = Option<String>, Header, description = "As on POST /api/v1/tickets"),
    ),
    request_body(content = intake::request::TicketRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "The ticket was created within the wait", body = CreatedAnswer,
            headers(("Idempotent-Replayed" = String, description = "`true` when this answers a repeat of an earlier request"))),
        (status = 202, description = "Accepted (durable); poll status_url", body = AcceptedAnswer,
            headers(
                ("Location" = String, description = "The status URL (as status_url)"),
                ("Idempotent-Replayed" = String, description = "`true` when this answers a repeat of an earlier request"),
            )),
        (status = 400, description = "invalid_request: every invalid field listed", body = ErrorAnswer),
        (status = 401, description = "Missing or unknown API key, or a key of another source", body = ErrorAnswer),
        (status = 404, description = "not_found: no intake source has this name (after the key was checked); entity_not_found: the tax id matches no organisation", body = ErrorAnswer),
        (status = 413, description = "Body or an attachment too large", body = ErrorAnswer),
        (status = 415, description = "Not JSON", body = ErrorAnswer),
        (status = 422, description = "As on POST /api/v1/tickets", body = ErrorAnswer),
        (status = 502, description = "target_error", body = ErrorAnswer),
        (status = 503, description = "target_unavailable or unavailable; send again after Retry-After", body = ErrorAnswer,
            headers(("Retry-After" = String, description = "Seconds to wait before sending again"))),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
async fn create_in_source(
    api: Arc<IntakeApi>,
    state: State<AppState>,
    arrival: Option<Extension<Arrival>>,
    Path(source): Path<String>,
    query: Option<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Failure> {
    create(api, state, arrival, Some(source), query, headers, body).await
}

/// Most rows one body's chain of repeats is followed through (see `create`):
/// past it the last one answers.
const MAX_REPEAT_CHAIN: usize = 64;

/// Whether inbox row `id` was received longer than `window` ago.
async fn repeat_window_passed(
    state: &AppState,
    id: i64,
    window: std::time::Duration,
) -> Result<bool, ApiError> {
    let window_ms = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
    let first = state.store.inbox(id).await?;
    Ok(first.is_some_and(|row| row.received_at < store::now_ms().saturating_sub(window_ms)))
}

/// Inbox header entry holding [`request_fingerprint`] of a keyed request.
const FINGERPRINT_HEADER: &str = "ticketbridge-request-sha256";

/// SHA-256 of the request's JSON with keys sorted and spaces dropped: a retry
/// that serialises the same request differently still matches. (The body was
/// validated as JSON already; an unparsable one is hashed as it is.)
fn request_fingerprint(body: &[u8]) -> String {
    let canonical = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|value| serde_json::to_vec(&value).ok());
    hex::encode(Sha256::digest(canonical.as_deref().unwrap_or(body)))
}

fn kept_headers(headers: &HeaderMap, fingerprint: Option<&str>) -> serde_json::Value {
    let mut kept = ingest::kept_headers(headers, &KEPT_HEADERS);
    if let (Some(fingerprint), Some(map)) = (fingerprint, kept.as_object_mut()) {
        map.insert(FINGERPRINT_HEADER.to_owned(), json!(fingerprint));
    }
    kept
}

/// 422 `idempotency_key_reused` when the stored request `id`, which had the
/// same Idempotency-Key, said something else. Rows stored before fingerprints
/// were kept are compared by their body while it is kept.
async fn refuse_reused_key(state: &AppState, id: i64, fingerprint: &str) -> Result<(), Failure> {
    let Some(first) = state.store.inbox(id).await.map_err(ApiError::from)? else {
        return Ok(());
    };
    let stored = match first
        .headers
        .get(FINGERPRINT_HEADER)
        .and_then(|v| v.as_str())
    {
        Some(stored) => stored.to_owned(),
        None if !first.body.is_empty() => request_fingerprint(&first.body),
        None => return Ok(()),
    };
    if stored == fingerprint {
        return Ok(());
    }
    Err(Failure::Outcome {
        status: StatusCode::UNPROCESSABLE_ENTITY,
        code: "idempotency_key_reused".into(),
        message: format!(
            "this Idempotency-Key was already used for a different request (request {id}); \
             send each new request with a key of its own"
        ),
        request_id: Some(id),
    })
}

/// Where a request stands.
#[utoipa::path(
    get,
    path = "/api/v1/tickets/requests/{id}",
    tag = "tickets",
    params(("id" = i64, Path, description = "request_id from the create answer")),
    responses(
        (status = 200, description = "queued, created or failed", body = RequestStatus),
        (status = 401, body = ErrorAnswer),
        (status = 404, description = "No such request for this source", body = ErrorAnswer),
        (status = 503, description = "unavailable: the store cannot be read; send again after Retry-After", body = ErrorAnswer),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
async fn request_status(
    api: Arc<IntakeApi>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Failure> {
    let source = api.authenticate(&headers, None)?;
    let not_found = || ApiError::NotFound(format!("no request {id} for this source"));
    let request_id: i64 = id.parse().map_err(|_| not_found())?;
    let outcome = api
        .intake
        .outcome(&source.name, request_id)
        .await?
        .ok_or_else(not_found)?;
    Ok(Json(RequestStatus::of(request_id, outcome)).into_response())
}

/// A requester's tickets.
#[utoipa::path(
    get,
    path = "/api/v1/tickets",
    tag = "tickets",
    params(ListParams),
    responses(
        (status = 200, body = TicketList),
        (status = 400, description = "invalid_request: neither requester_phone nor requester_email, or every invalid parameter listed", body = ErrorAnswer),
        (status = 401, body = ErrorAnswer),
        (status = 403, description = "reads_disabled: the source has reads = \"none\"", body = ErrorAnswer),
        (status = 502, description = "target_error: the target failed for reasons of its own", body = ErrorAnswer),
        (status = 503, description = "target_unavailable: the target is not answering; send again after Retry-After", body = ErrorAnswer,
            headers(("Retry-After" = String, description = "Seconds to wait before sending again"))),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
async fn list(
    api: Arc<IntakeApi>,
    query: Option<String>,
    headers: HeaderMap,
) -> Result<Response, Failure> {
    let source = api.authenticate(&headers, None)?;
    refuse_if_no_reads(&source)?;
    let mut problems = Vec::new();
    let params: ListParams = query_params(query.as_deref(), &mut problems);
    let open_only = match params.status.as_deref() {
        None | Some("open") => true,
        Some("all") => false,
        Some(_) => {
            problems.push(FieldError {
                field: "status".into(),
                message: "must be open or all".into(),
            });
            true
        }
    };
    let limit = list_limit(params.limit.as_deref(), &mut problems);
    let lookup = RequesterLookup {
        email: params.requester_email,
        phone: params.requester_phone,
    };
    let query = match lookup.normalised(&source) {
        Ok(query) if problems.is_empty() => query,
        Ok(_) => return Err(invalid_fields(problems)),
        Err(errors) => {
            problems.extend(errors.into_iter().map(|e| FieldError {
                field: e.field.into(),
                message: e.message,
            }));
            return Err(invalid_fields(problems));
        }
    };
    let mut tickets = Vec::new();
    // Newest first: the first `limit` readable ones are the ones kept.
    for ticket in source.tickets_of(&query, open_only).await? {
        if limit.is_some_and(|limit| tickets.len() >= limit) {
            break;
        }
        if api.intake.may_read(&source, ticket.id).await? {
            tickets.push(ticket);
        }
    }
    Ok(Json(TicketList { tickets }).into_response())
}

/// One ticket with its last public followup.
#[utoipa::path(
    get,
    path = "/api/v1/tickets/{id}",
    tag = "tickets",
    params(("id" = i64, Path, description = "Ticket id in the target")),
    responses(
        (status = 200, body = intake::TicketDetail),
        (status = 401, body = ErrorAnswer),
        (status = 403, description = "reads_disabled: the source has reads = \"none\"", body = ErrorAnswer),
        (status = 404, description = "No such ticket, or not one this source may read (reads = \"own\")", body = ErrorAnswer),
        (status = 502, description = "target_error: the target failed for reasons of its own", body = ErrorAnswer),
        (status = 503, description = "target_unavailable: the target is not answering; send again after Retry-After", body = ErrorAnswer,
            headers(("Retry-After" = String, description = "Seconds to wait before sending again"))),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
async fn one_ticket(
    api: Arc<IntakeApi>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Failure> {
    let source = api.authenticate(&headers, None)?;
    refuse_if_no_reads(&source)?;
    let not_found = || ApiError::NotFound(format!("no ticket {id}"));
    let ticket_id: i64 = id.parse().map_err(|_| not_found())?;
    // A ticket outside the source's reads is answered as absent.
    if !api.intake.may_read(&source, ticket_id).await? {
        return Err(not_found().into());
    }
    let ticket = source.ticket(ticket_id).await?.ok_or_else(not_found)?;
    Ok(Json(ticket).into_response())
}

/// 403 `reads_disabled` for a source with `reads = "none"`.
fn refuse_if_no_reads(source: &Source) -> Result<(), Failure> {
    if source.settings.reads == config::sources::ReadScope::None {
        return Err(Failure::Outcome {
            status: StatusCode::FORBIDDEN,
            code: "reads_disabled".into(),
            message: format!(
                "the keys of source {:?} cannot read tickets (reads = \"none\")",
                source.name
            ),
            request_id: None,
        });
    }
    Ok(())
}

/// Liveness for callers that expect `/ping`.
#[utoipa::path(get, path = "/ping", tag = "health", responses((status = 200, description = "pong", body = String)))]
async fn ping() -> &'static str {
    "pong"
}

async fn openapi_json() -> Response {
    match IntakeDoc::openapi().to_json() {
        Ok(text) => ([(header::CONTENT_TYPE, "application/json")], text).into_response(),
        Err(e) => ApiError::Internal(e.to_string()).into_response(),
    }
}

struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme,
        };
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The OpenAPI 3 document of the intake API.
#[derive(OpenApi)]
#[openapi(
    info(title = "ticketbridge intake API", description = "Tickets from web forms, voice agents and automation tools."),
    paths(create, create_in_source, request_status, list, one_ticket, ping),
    components(schemas(
        intake::request::TicketRequest,
        intake::request::RequesterInput,
        intake::request::OrganisationInput,
        intake::request::CategoryInput,
        intake::request::UrgencyInput,
        intake::request::AttachmentInput,
        intake::request::FieldError,
        intake::TicketSummary,
        intake::TicketDetail,
        intake::FollowupView,
        CreatedAnswer,
        AcceptedAnswer,
        RequestStatus,
        TicketList,
        ErrorAnswer,
        ErrorDetail,
    )),
    modifiers(&Security),
    tags((name = "tickets", description = "Create and read tickets"))
)]
pub struct IntakeDoc;

/// The OpenAPI document as JSON text.
pub fn openapi_document() -> Result<String, String> {
    IntakeDoc::openapi().to_json().map_err(|e| e.to_string())
}
