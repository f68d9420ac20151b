//! The client core: one HTTP connection pool, one GLPI session shared by every caller,
//! re-login on session expiry with a single login for concurrent callers.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::config::{Auth, GlpiConfig, TextEncoding, api_root};
use crate::error::GlpiError;
use crate::text::decode_value;

/// A GLPI legacy-API client. Cloning is cheap (shared `Arc`); all clones share one session.
#[derive(Clone)]
pub struct GlpiClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for GlpiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GlpiClient")
            .field("api_root", &self.inner.root.as_str())
            .finish_non_exhaustive()
    }
}

struct Inner {
    http: reqwest::Client,
    root: url::Url,
    app_token: Option<SecretString>,
    auth: Auth,
    default_entity: Option<i64>,
    text_encoding: TextEncoding,
    /// 0 = not decided yet, 1 = encoded (decode on read), 2 = raw.
    detected_encoding: AtomicU8,
    max_response_bytes: u64,
    /// The whole-request timeout every call has.
    timeout: std::time::Duration,
    session: Mutex<SessionState>,
    logins: AtomicU64,
    /// Login attempts finished (succeeded or failed), so a caller can tell whether one
    /// ended while it waited for the session lock.
    logins_done: AtomicU64,
}

/// The shared session. `generation` changes at every login so that, when several callers
/// see the same token expire, only the first one logs in again.
struct SessionState {
    token: Option<SecretString>,
    generation: u64,
    scope: ActiveScope,
    /// The last login attempt's failure and its number in `logins_done`: callers that
    /// were waiting while it ran get this error instead of logging in once more each
    /// (GLPI restarting would otherwise take one full timeout per queued caller).
    last_failure: Option<(u64, GlpiError)>,
}

/// Entity/profile choices re-applied after every re-login.
#[derive(Clone, Copy, Default)]
struct ActiveScope {
    profile: Option<i64>,
    entities: Option<(Option<i64>, bool)>,
}

/// A request, kept as data so it can be replayed after a re-login.
pub(crate) struct Call {
    pub method: Method,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub body: Body,
    pub accept: Option<&'static str>,
}

pub(crate) enum Body {
    None,
    Json(Value),
    Multipart(Vec<FormPart>),
}

pub(crate) struct FormPart {
    pub name: String,
    pub file_name: Option<String>,
    pub mime: Option<String>,
    pub data: Bytes,
}

/// A successful (2xx, not 207) answer.
pub(crate) struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Call {
    pub fn new(method: Method, path: impl Into<String>) -> Self {
        Call {
            method,
            path: path.into(),
            query: Vec::new(),
            body: Body::None,
            accept: None,
        }
    }
    pub fn get(path: impl Into<String>) -> Self {
        Call::new(Method::GET, path)
    }
    pub fn query(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.query.push((key.into(), value.into()));
        self
    }
    pub fn json(mut self, body: Value) -> Self {
        self.body = Body::Json(body);
        self
    }
}

impl GlpiClient {
    /// Build a client. No network traffic happens until the first call.
    pub fn new(config: GlpiConfig) -> Result<GlpiClient, GlpiError> {
        let root = api_root(&config.base_url).map_err(GlpiError::Config)?;
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("ticketbridge-glpi/", env!("CARGO_PKG_VERSION")))
            .pool_max_idle_per_host(64);
        if let Some(pem) = &config.ca_cert_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
                .map_err(|e| GlpiError::Config(format!("CA certificate: {e}")))?;
            if certs.is_empty() {
                return Err(GlpiError::Config(
                    "CA certificate: no certificate found in the PEM text".into(),
                ));
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        if config.accept_invalid_certs {
            builder = builder.danger_accept_invalid_certs(true);
        }
        let http = builder
            .build()
            .map_err(|e| GlpiError::Config(format!("HTTP client: {e}")))?;
        let detected = match config.text_encoding {
            TextEncoding::Auto => 0,
            TextEncoding::Encoded => 1,
            TextEncoding::Raw => 2,
        };
        Ok(GlpiClient {
            inner: Arc::new(Inner {
                http,
                root,
                app_token: config.app_token,
                auth: config.auth,
                default_entity: config.default_entity,
                text_encoding: config.text_encoding,
                detected_encoding: AtomicU8::new(detected),
                max_response_bytes: config.max_response_bytes,
                timeout: config.timeout,
                session: Mutex::new(SessionState {
                    token: None,
                    generation: 0,
                    scope: ActiveScope::default(),
                    last_failure: None,
                }),
                logins: AtomicU64::new(0),
                logins_done: AtomicU64::new(0),
            }),
        })
    }

    /// The whole-request timeout of every call (a call that logs in again
    /// first can take two).
    pub fn timeout(&self) -> std::time::Duration {
        self.inner.timeout
    }

    /// The API root all paths are joined to (ends with `apirest.php/` or `api.php/v1/`).
    pub fn api_root(&self) -> &str {
        self.inner.root.as_str()
    }

    /// The web page of a ticket (`<GLPI root>/front/ticket.form.php?id=N`), for people.
    pub fn ticket_url(&self, id: i64) -> String {
        format!(
            "{}front/ticket.form.php?id={id}",
            web_root(&self.inner.root)
        )
    }

    /// The entity used for created items when the caller gives none.
    pub fn default_entity(&self) -> Option<i64> {
        self.inner.default_entity
    }

    /// How many `initSession` calls this client has made (first login + re-logins).
    pub fn sessions_opened(&self) -> u64 {
        self.inner.logins.load(Ordering::Relaxed)
    }

    /// Whether read text is being entity-decoded (GLPI 9.5/10), once known.
    pub fn decodes_text(&self) -> Option<bool> {
        match self.inner.detected_encoding.load(Ordering::Relaxed) {
            1 => Some(true),
            2 => Some(false),
            _ => None,
        }
    }

    /// A search value as the server compares it: entity-encoded on GLPI 9.5/10, whose
    /// search engine matches the raw value against the encoded stored text.
    pub(crate) async fn search_value(&self, value: &str) -> Result<String, GlpiError> {
        Ok(if self.stores_encoded_text().await? {
            crate::text::encode_text(value)
        } else {
            value.to_owned()
        })
    }

    /// Whether the server stores text entity-encoded (GLPI 9.5/10); with `Auto` this
    /// logs in first when not known yet.
    pub(crate) async fn stores_encoded_text(&self) -> Result<bool, GlpiError> {
        if self.inner.detected_encoding.load(Ordering::Relaxed) == 0 {
            self.login().await?;
        }
        Ok(self.inner.detected_encoding.load(Ordering::Relaxed) == 1)
    }

    /// Log in now (otherwise the first call does it). Returns nothing; the session is shared.
    pub async fn login(&self) -> Result<(), GlpiError> {
        self.session_token().await.map(|_| ())
    }

    /// End the session (`killSession`). The next call logs in again.
    pub async fn close(&self) -> Result<(), GlpiError> {
        let mut state = self.inner.session.lock().await;
        let Some(token) = state.token.take() else {
            return Ok(());
        };
        state.generation += 1;
        let reply = self
            .execute(&Call::get("killSession"), Some(&token), None)
            .await?;
        match check(reply) {
            Ok(_) | Err(GlpiError::SessionInvalid { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// `changeActiveEntities`: `entity_id` None = all the user's entities. A 200 `false`
    /// answer (entity unknown or not allowed) is an error. Re-applied after a re-login.
    pub async fn change_active_entities(
        &self,
        entity_id: Option<i64>,
        recursive: bool,
    ) -> Result<(), GlpiError> {
        let reply = self.call(entities_call(entity_id, recursive)).await?;
        expect_true(&reply, "entity")?;
        self.inner.session.lock().await.scope.entities = Some((entity_id, recursive));
        Ok(())
    }

    /// `changeActiveProfile`. Re-applied after a re-login.
    pub async fn change_active_profile(&self, profile_id: i64) -> Result<(), GlpiError> {
        let reply = self.call(profile_call(profile_id)).await?;
        expect_true(&reply, "profile")?;
        self.inner.session.lock().await.scope.profile = Some(profile_id);
        Ok(())
    }

    /// `changeActiveEntities` without recording it as the caller's choice.
    pub(crate) async fn switch_entities(
        &self,
        entity_id: Option<i64>,
        recursive: bool,
    ) -> Result<(), GlpiError> {
        let reply = self.call(entities_call(entity_id, recursive)).await?;
        expect_true(&reply, "entity")
    }

    /// The entity choice made with `change_active_entities`, if any.
    pub(crate) async fn active_scope_entities(&self) -> Option<(Option<i64>, bool)> {
        self.inner.session.lock().await.scope.entities
    }

    // ------------------------------------------------------------------ internals

    /// Current token, logging in when there is none.
    async fn session_token(&self) -> Result<(SecretString, u64), GlpiError> {
        let done_before = self.inner.logins_done.load(Ordering::SeqCst);
        let mut state = self.inner.session.lock().await;
        if let Some(token) = &state.token {
            return Ok((token.clone(), state.generation));
        }
        shared_failure(&state, done_before)?;
        self.login_locked(&mut state).await?;
        match &state.token {
            Some(token) => Ok((token.clone(), state.generation)),
            None => Err(GlpiError::SessionMissing {
                message: "login produced no session".into(),
            }),
        }
    }

    /// Called by a caller whose token (of generation `failed`) was refused. Only the first
    /// such caller logs in; the others get the token it obtained.
    async fn relogin(&self, failed: u64) -> Result<SecretString, GlpiError> {
        let done_before = self.inner.logins_done.load(Ordering::SeqCst);
        let mut state = self.inner.session.lock().await;
        if state.generation == failed || state.token.is_none() {
            state.token = None;
            shared_failure(&state, done_before)?;
            self.login_locked(&mut state).await?;
        }
        state
            .token
            .clone()
            .ok_or_else(|| GlpiError::SessionMissing {
                message: "login produced no session".into(),
            })
    }

    /// Log in (the caller holds the session lock), recording the outcome for the callers
    /// waiting on the lock.
    async fn login_locked(&self, state: &mut SessionState) -> Result<(), GlpiError> {
        let outcome = self.open_session(state).await;
        let done = self.inner.logins_done.fetch_add(1, Ordering::SeqCst) + 1;
        state.last_failure = outcome.as_ref().err().map(|e| (done, e.clone()));
        outcome
    }

    async fn open_session(&self, state: &mut SessionState) -> Result<(), GlpiError> {
        let (call, auth_header) = match &self.inner.auth {
            Auth::UserToken(token) => {
                let mut value =
                    HeaderValue::from_str(&format!("user_token {}", token.expose_secret()))
                        .map_err(|_| {
                            GlpiError::Config("user token contains invalid characters".into())
                        })?;
                value.set_sensitive(true);
                (
                    Call::get("initSession"),
                    Some((reqwest::header::AUTHORIZATION, value)),
                )
            }
            Auth::Password { login, password } => (
                Call::new(Method::POST, "initSession")
                    .json(json!({"login": login, "password": password.expose_secret()})),
                None,
            ),
        };
        self.inner.logins.fetch_add(1, Ordering::Relaxed);
        let reply = check(self.execute(&call, None, auth_header).await?)?;
        let body: Value = parse_json(&reply)?;
        let token = body
            .get("session_token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| GlpiError::InvalidResponse {
                status: reply.status,
                detail: "initSession answer has no session_token".into(),
            })?
            .to_owned();
        let token = SecretString::from(token);
        // Re-apply the caller's profile / entity choices on the new session; a session
        // they cannot be applied to is not used, and not left open either.
        let ready = match self.detect_encoding(&token).await {
            Ok(()) => self.apply_scope(state.scope, &token).await,
            Err(error) => Err(error),
        };
        if let Err(error) = ready {
            if let Err(kill) = self
                .execute(&Call::get("killSession"), Some(&token), None)
                .await
            {
                tracing::debug!(error = %kill, "GLPI did not kill a session whose scope could not be applied");
            }
            return Err(error);
        }
        state.token = Some(token);
        state.generation += 1;
        tracing::debug!(generation = state.generation, "GLPI session opened");
        Ok(())
    }

    /// With `TextEncoding::Auto`, learn once whether the server entity-encodes text
    /// (GLPI 9.5/10) or not (11), from the server itself: a base URL under `api.php/v1` is
    /// GLPI 11, otherwise `getFullSession` tells, as 9.5/10 wrap the session in a
    /// `session` key and 11 answers it bare. (Session token lengths do not tell: PHP's
    /// `session.sid_length` makes 10's ids as long as one likes.)
    async fn detect_encoding(&self, token: &SecretString) -> Result<(), GlpiError> {
        if self.inner.text_encoding != TextEncoding::Auto
            || self.inner.detected_encoding.load(Ordering::Relaxed) != 0
        {
            return Ok(());
        }
        let raw = if self.inner.root.path().ends_with("api.php/v1/") {
            true
        } else {
            let reply = check(
                self.execute(&Call::get("getFullSession"), Some(token), None)
                    .await?,
            )?;
            match parse_json(&reply)? {
                Value::Object(body) if body.get("session").is_some_and(Value::is_object) => false,
                Value::Object(body) if body.contains_key("glpiID") => true,
                _ => {
                    return Err(GlpiError::InvalidResponse {
                        status: reply.status,
                        detail: "getFullSession answer has no session".into(),
                    });
                }
            }
        };
        let _ = self.inner.detected_encoding.compare_exchange(
            0,
            if raw { 2 } else { 1 },
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
        Ok(())
    }

    async fn apply_scope(&self, scope: ActiveScope, token: &SecretString) -> Result<(), GlpiError> {
        if let Some(profile) = scope.profile {
            let reply = check(
                self.execute(&profile_call(profile), Some(token), None)
                    .await?,
            )?;
            expect_true(&reply, "profile")?;
        }
        if let Some((entity, recursive)) = scope.entities {
            let reply = check(
                self.execute(&entities_call(entity, recursive), Some(token), None)
                    .await?,
            )?;
            expect_true(&reply, "entity")?;
        }
        Ok(())
    }

    /// Run a call with the shared session; on session expiry log in again (once, shared)
    /// and replay it once. A session's active entities are fixed when it opens, so an
    /// entity created in GLPI since then is out of its reach: GLPI refuses to read it
    /// (403 `ERROR_RIGHT_MISSING`) or to write in it (400 `ERROR_GLPI_ADD` /
    /// `ERROR_GLPI_UPDATE`, "You don't have permission"). On such a refusal of an item
    /// call the active entities are refreshed and the call replayed once; a refusal that
    /// has another cause comes back the same the second time.
    pub(crate) async fn call(&self, call: Call) -> Result<Reply, GlpiError> {
        match self.call_in_session(&call).await {
            Err(error) if may_be_out_of_entity(&error) && is_item_call(&call) => {
                tracing::debug!(path = %call.path, %error,
                    "GLPI refused an item call; refreshing the session's active entities and replaying it");
                Box::pin(self.refresh_active_entities()).await?;
                self.call_in_session(&call).await
            }
            result => result,
        }
    }

    async fn call_in_session(&self, call: &Call) -> Result<Reply, GlpiError> {
        let (token, generation) = self.session_token().await?;
        let reply = self.execute(call, Some(&token), None).await?;
        if !session_expired(&reply) {
            return check(reply);
        }
        tracing::debug!(path = %call.path, "GLPI session expired, logging in again");
        let token = self.relogin(generation).await?;
        let reply = self.execute(call, Some(&token), None).await?;
        if session_expired(&reply) {
            return Err(GlpiError::SessionInvalid {
                message: "session refused right after a new login".into(),
            });
        }
        check(reply)
    }

    /// GET returning JSON, text decoded when the server entity-encodes.
    pub(crate) async fn get_json(&self, call: Call) -> Result<(Value, Reply), GlpiError> {
        let reply = self.call(call).await?;
        let mut value = parse_json(&reply)?;
        if self.inner.detected_encoding.load(Ordering::Relaxed) == 1 {
            decode_value(&mut value);
        }
        Ok((value, reply))
    }

    async fn execute(
        &self,
        call: &Call,
        token: Option<&SecretString>,
        extra: Option<(HeaderName, HeaderValue)>,
    ) -> Result<Reply, GlpiError> {
        let mut url = self
            .inner
            .root
            .join(&call.path)
            .map_err(|e| GlpiError::Config(format!("bad path {:?}: {e}", call.path)))?;
        if !call.query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(call.query.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        }
        let mut request = self.inner.http.request(call.method.clone(), url);
        if let Some(app) = &self.inner.app_token {
            request = request.header("App-Token", sensitive(app.expose_secret())?);
        }
        if let Some(token) = token {
            request = request.header("Session-Token", sensitive(token.expose_secret())?);
        }
        if let Some((name, value)) = extra {
            request = request.header(name, value);
        }
        if let Some(accept) = call.accept {
            request = request.header(reqwest::header::ACCEPT, accept);
        }
        match &call.body {
            Body::None => {}
            Body::Json(value) => {
                let bytes = serde_json::to_vec(value)
                    .map_err(|e| GlpiError::Config(format!("cannot encode request: {e}")))?;
                request = request
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(bytes);
            }
            Body::Multipart(parts) => {
                let mut form = reqwest::multipart::Form::new();
                for part in parts {
                    let mut p = reqwest::multipart::Part::bytes(part.data.to_vec());
                    if let Some(name) = &part.file_name {
                        p = p.file_name(name.clone());
                    }
                    if let Some(mime) = &part.mime {
                        p = p
                            .mime_str(mime)
                            .map_err(|e| GlpiError::Config(format!("bad MIME type: {e}")))?;
                    }
                    form = form.part(part.name.clone(), p);
                }
                request = request.multipart(form);
            }
        }
        let started = std::time::Instant::now();
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => {
                let err = GlpiError::from_reqwest(e);
                tracing::debug!(method = %call.method, path = %call.path, error = %err, "GLPI request failed");
                return Err(err);
            }
        };
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        // An error answer is read only for its message: its start is enough, and a
        // long one must not turn the error into another.
        let body = if response.status().is_client_error() || response.status().is_server_error() {
            capped_body::excerpt(response, capped_body::ERROR_BODY_LIMIT).await
        } else {
            capped_body::read(response, self.inner.max_response_bytes)
                .await
                .map_err(GlpiError::from_read)?
        };
        tracing::debug!(
            method = %call.method,
            path = %call.path,
            status,
            elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "GLPI request"
        );
        Ok(Reply {
            status,
            headers,
            body,
        })
    }
}

/// The error of a login attempt that ended while this caller waited for the session lock
/// (`done_before`: attempts finished when it started waiting): it gets that outcome
/// instead of trying once more.
fn shared_failure(state: &SessionState, done_before: u64) -> Result<(), GlpiError> {
    match &state.last_failure {
        Some((attempt, error)) if *attempt > done_before => Err(error.clone()),
        _ => Ok(()),
    }
}

/// Refusals an entity outside the session's active entities also causes.
fn may_be_out_of_entity(error: &GlpiError) -> bool {
    matches!(
        error,
        GlpiError::AddFailed { .. }
            | GlpiError::UpdateFailed { .. }
            | GlpiError::RightMissing { .. }
    )
}

/// A call on an item type (`Ticket`, `Entity/2`, `Ticket/1/ITILFollowup`), not a
/// session endpoint (`initSession`, `changeActiveEntities`, `search/...`).
fn is_item_call(call: &Call) -> bool {
    call.path
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_uppercase())
}

/// GLPI's web root from the API root: strip `apirest.php/` or `api.php/v1/`.
fn web_root(root: &url::Url) -> String {
    let text = root.as_str();
    for suffix in ["apirest.php/", "api.php/v1/"] {
        if let Some(stripped) = text.strip_suffix(suffix) {
            return stripped.to_owned();
        }
    }
    text.to_owned()
}

fn sensitive(value: &str) -> Result<HeaderValue, GlpiError> {
    let mut v = HeaderValue::from_str(value)
        .map_err(|_| GlpiError::Config("token contains invalid header characters".into()))?;
    v.set_sensitive(true);
    Ok(v)
}

fn entities_call(entity_id: Option<i64>, recursive: bool) -> Call {
    let mut body = serde_json::Map::new();
    if let Some(id) = entity_id {
        body.insert("entities_id".into(), json!(id));
    }
    body.insert("is_recursive".into(), json!(recursive));
    Call::new(Method::POST, "changeActiveEntities").json(Value::Object(body))
}

fn profile_call(profile_id: i64) -> Call {
    Call::new(Method::POST, "changeActiveProfile").json(json!({"profiles_id": profile_id}))
}

/// A 200 answer whose body must be `true` (GLPI 10/11 answer 200 `false` on failure).
fn expect_true(reply: &Reply, what: &'static str) -> Result<(), GlpiError> {
    match serde_json::from_slice::<Value>(&reply.body) {
        Ok(Value::Bool(true)) => Ok(()),
        Ok(Value::Bool(false)) => Err(GlpiError::SwitchRefused { what }),
        _ => Err(GlpiError::InvalidResponse {
            status: reply.status,
            detail: format!("expected true, got {}", excerpt(&reply.body)),
        }),
    }
}

/// The token was refused: 401 `ERROR_SESSION_TOKEN_INVALID`, or GLPI 11's 400
/// `ERROR_SESSION_TOKEN_MISSING` for a token it cannot parse (we always send one).
fn session_expired(reply: &Reply) -> bool {
    if reply.status != 401 && reply.status != 400 {
        return false;
    }
    match error_code(&reply.body) {
        Some(code) => {
            code == "ERROR_SESSION_TOKEN_INVALID"
                || (reply.status == 400 && code == "ERROR_SESSION_TOKEN_MISSING")
        }
        None => false,
    }
}

fn error_code(body: &[u8]) -> Option<String> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Array(items)) => items.first().and_then(Value::as_str).map(str::to_owned),
        _ => None,
    }
}

/// Turn non-2xx and 207 answers into typed errors.
pub(crate) fn check(reply: Reply) -> Result<Reply, GlpiError> {
    let status = reply.status;
    if (200..300).contains(&status) && status != 207 {
        return Ok(reply);
    }
    let retry_after = retry_after(&reply.headers);
    if status == 429 {
        return Err(GlpiError::RateLimited { retry_after });
    }
    if status == 503 {
        return Err(GlpiError::Server {
            status,
            retry_after,
        });
    }
    match serde_json::from_slice::<Value>(&reply.body) {
        Ok(Value::Array(items)) if items.first().is_some_and(Value::is_string) => {
            let code = items.first().and_then(Value::as_str).unwrap_or("ERROR");
            Err(GlpiError::from_api(
                status,
                code,
                items.get(1).unwrap_or(&Value::Null),
                retry_after,
            ))
        }
        _ if status >= 500 => Err(GlpiError::Server {
            status,
            retry_after,
        }),
        _ => Err(GlpiError::InvalidResponse {
            status,
            detail: excerpt(&reply.body),
        }),
    }
}

/// `Retry-After` as seconds or as an HTTP date (RFC 9110 §10.2.3; proxies and
/// load balancers in front of GLPI send either).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    match value.parse::<u64>() {
        Ok(seconds) => Some(Duration::from_secs(seconds)),
        Err(_) => httpdate::parse_http_date(value).ok().map(|at| {
            at.duration_since(std::time::SystemTime::now())
                .unwrap_or_default()
        }),
    }
}

pub(crate) fn parse_json(reply: &Reply) -> Result<Value, GlpiError> {
    serde_json::from_slice(&reply.body).map_err(|_| {
        let text = String::from_utf8_lossy(&reply.body);
        let page_or_nothing = text.trim().is_empty() || text.trim_start().starts_with('<');
        if page_or_nothing && (200..300).contains(&reply.status) {
            GlpiError::NotApiAnswer {
                status: reply.status,
                detail: excerpt(&reply.body),
            }
        } else {
            GlpiError::InvalidResponse {
                status: reply.status,
                detail: format!("not JSON: {}", excerpt(&reply.body)),
            }
        }
    })
}

pub(crate) fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut out: String = text.chars().take(200).collect();
    if text.chars().count() > 200 {
        out.push('…');
    }
    out
}

/// Whether a status is a "partial content" page.
pub(crate) fn is_partial(reply: &Reply) -> bool {
    reply.status == StatusCode::PARTIAL_CONTENT.as_u16()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(status: u16, body: &str) -> Reply {
        Reply {
            status,
            headers: HeaderMap::new(),
            body: Bytes::from(body.to_owned()),
        }
    }

    #[test]
    fn ticket_web_url() {
        let root = url::Url::parse("https://h/glpi/apirest.php/").unwrap();
        assert_eq!(web_root(&root), "https://h/glpi/");
        let root = url::Url::parse("https://h/api.php/v1/").unwrap();
        assert_eq!(web_root(&root), "https://h/");
    }

    #[test]
    fn detects_session_expiry_glpi10_and_11() {
        assert!(session_expired(&reply(
            401,
            r#"["ERROR_SESSION_TOKEN_INVALID","session_token seems invalid"]"#
        )));
        assert!(session_expired(&reply(
            400,
            r#"["ERROR_SESSION_TOKEN_MISSING","parameter session_token is missing or empty"]"#
        )));
        assert!(!session_expired(&reply(
            401,
            r#"["ERROR_GLPI_LOGIN_USER_TOKEN","parameter user_token seems invalid"]"#
        )));
        assert!(!session_expired(&reply(200, "true")));
    }

    #[test]
    fn check_maps_html_5xx_and_429() {
        assert!(matches!(
            check(reply(502, "<html>bad gateway</html>")),
            Err(GlpiError::Server { status: 502, .. })
        ));
        let mut r = reply(429, "");
        r.headers
            .insert(reqwest::header::RETRY_AFTER, HeaderValue::from_static("7"));
        let err = check(r).err().unwrap();
        assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));
        assert!(err.is_retryable());
        let mut r = reply(503, r#"["ERROR","maintenance"]"#);
        r.headers.insert(
            reqwest::header::RETRY_AFTER,
            HeaderValue::from_static("120"),
        );
        let err = check(r).err().unwrap();
        assert!(matches!(err, GlpiError::Server { status: 503, .. }));
        assert_eq!(err.retry_after(), Some(Duration::from_secs(120)));
        assert!(err.is_retryable());
        // The HTTP-date form: about as long from now.
        let at = std::time::SystemTime::now() + Duration::from_secs(90);
        let mut r = reply(503, "");
        r.headers.insert(
            reqwest::header::RETRY_AFTER,
            HeaderValue::from_str(&httpdate::fmt_http_date(at)).unwrap(),
        );
        let hint = check(r).err().unwrap().retry_after().unwrap();
        assert!(
            hint > Duration::from_secs(80) && hint <= Duration::from_secs(90),
            "{hint:?}"
        );
        assert!(matches!(
            check(reply(
                403,
                r#"["ERROR_RIGHT_MISSING","You don't have permission to perform this action."]"#
            )),
            Err(GlpiError::RightMissing { .. })
        ));
        assert!(matches!(
            check(reply(400, "<html>oops</html>")),
            Err(GlpiError::InvalidResponse { status: 400, .. })
        ));
    }

    /// GLPI in maintenance mode, waiting for an upgrade, or (10.0) without
    /// its database prints a page with status 200; an answer PHP could not
    /// encode is empty. Both pass: retry. JSON of an unexpected shape is no
    /// such page.
    #[test]
    fn a_page_or_nothing_with_200_is_retried() {
        let maintenance = reply(
            200,
            "<!DOCTYPE html><html><body>Service is down for maintenance</body></html>",
        );
        let err = parse_json(&maintenance).err().unwrap();
        assert!(matches!(err, GlpiError::NotApiAnswer { status: 200, .. }));
        assert!(err.is_retryable());
        let empty = parse_json(&reply(200, "  ")).err().unwrap();
        assert!(empty.is_retryable());
        let garbled = parse_json(&reply(200, "{\"id\": ")).err().unwrap();
        assert!(matches!(garbled, GlpiError::InvalidResponse { .. }));
        assert!(!garbled.is_retryable());
    }

    #[test]
    fn expect_true_treats_false_body_as_failure() {
        assert!(expect_true(&reply(200, "true"), "entity").is_ok());
        assert!(matches!(
            expect_true(&reply(200, "false"), "entity"),
            Err(GlpiError::SwitchRefused { what: "entity" })
        ));
    }
}
