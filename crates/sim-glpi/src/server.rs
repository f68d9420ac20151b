//! The HTTP server: accept loop (so a fault can close a connection without answering),
//! the axum handler, and [`RunningSim`], the handle tests use.

use crate::api::{self, Ctx, Req, Upload, UploadFile};
use crate::clock::Clock;
use crate::config::{GlpiVersion, SimConfig, SimError};
use crate::faults::{Faults, Verdict};
use crate::model::{
    self, NewContact, NewUser, SimContact, SimDocument, SimEntity, SimFollowup, SimSolution,
    SimTicket, SimUser,
};
use crate::state::State;
use axum::body::Body;
use axum::extract::{FromRequest, Multipart};
use axum::http::{HeaderValue, Request, Response, StatusCode};
use parking_lot::Mutex;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const MAX_BODY: usize = 64 * 1024 * 1024;

pub(crate) struct Shared {
    pub(crate) state: Mutex<State>,
    pub(crate) faults: Faults,
}

/// Entry point: `GlpiSim::start(config)`.
pub struct GlpiSim;

impl GlpiSim {
    /// Bind 127.0.0.1:`config.port` (0 = any free port) and serve until [`RunningSim::shutdown`]
    /// or drop.
    pub async fn start(config: SimConfig) -> Result<RunningSim, SimError> {
        let clock = Clock::new(config.clock_start.as_deref()).map_err(SimError::Config)?;
        let listener = TcpListener::bind(("127.0.0.1", config.port))
            .await
            .map_err(|source| SimError::Bind {
                port: config.port,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| SimError::Bind {
            port: config.port,
            source,
        })?;
        let origin = format!("http://{addr}");
        let shared = Arc::new(Shared {
            state: Mutex::new(State::fresh(&config, clock, origin)),
            faults: Faults::default(),
        });
        let stop = CancellationToken::new();
        let task = tokio::spawn(accept_loop(listener, shared.clone(), stop.clone()));
        Ok(RunningSim {
            addr,
            config,
            shared,
            stop,
            task: Mutex::new(Some(task)),
        })
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, stop: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            a = listener.accept() => a,
        };
        let Ok((stream, _)) = accepted else { continue };
        let shared = shared.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let conn_kill = CancellationToken::new();
            let kill = conn_kill.clone();
            let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let shared = shared.clone();
                let kill = kill.clone();
                async move {
                    Ok::<_, std::convert::Infallible>(serve(shared, kill, req.map(Body::new)).await)
                }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), svc);
            tokio::select! {
                _ = conn => {}
                _ = conn_kill.cancelled() => {}
                _ = stop.cancelled() => {}
            }
        });
    }
}

fn split_path(mode: GlpiVersion, path: &str) -> Option<Vec<String>> {
    let rest = if let Some(r) = path.strip_prefix("/apirest.php") {
        r
    } else if mode == GlpiVersion::V11 {
        path.strip_prefix("/api.php/v1")?
    } else {
        return None;
    };
    if !(rest.is_empty() || rest.starts_with('/')) {
        return None;
    }
    Some(
        rest.split('/')
            .filter(|s| !s.is_empty())
            .map(|s| {
                url::form_urlencoded::parse(format!("x={s}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default()
            })
            .collect(),
    )
}

fn plain(status: u16, body: &'static str) -> Response<Body> {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r
}

async fn serve(shared: Arc<Shared>, kill: CancellationToken, req: Request<Body>) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY).await else {
        return plain(413, "request too large");
    };
    let mode = shared.state.lock().mode;
    let path = parts.uri.path().to_string();
    let segments = split_path(mode, &path);
    let method = parts.method.as_str().to_ascii_uppercase();
    let endpoint = match &segments {
        Some(s) => api::endpoint_key(&method, s),
        None => format!("{method} {path}"),
    };
    {
        let mut st = shared.state.lock();
        st.counters.total += 1;
        *st.counters.by_endpoint.entry(endpoint.clone()).or_insert(0) += 1;
    }
    let verdict = shared.faults.verdict();
    if verdict == Verdict::Drop {
        kill.cancel();
        std::future::pending::<()>().await;
    }
    let faults = shared.faults.snapshot();
    if !faults.latency.is_zero() {
        tokio::time::sleep(faults.latency).await;
    }
    if let Some((slow, latency)) = &faults.endpoint_latency
        && *slow == endpoint
    {
        tokio::time::sleep(*latency).await;
    }
    if let Verdict::Raw(status, content_type, body) = &verdict {
        let mut r = Response::new(Body::from(body.clone()));
        *r.status_mut() =
            StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if let Ok(value) = HeaderValue::from_str(content_type) {
            r.headers_mut().insert("content-type", value);
        }
        return r;
    }
    if let Verdict::Fail(status) = verdict {
        let mut r = Response::new(Body::from(r#"["ERROR","Injected fault (simulator)"]"#));
        *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        r.headers_mut()
            .insert("content-type", HeaderValue::from_static(api::JSON_CT));
        return r;
    }
    let Some(segments) = segments else {
        return plain(404, "Not Found");
    };
    if shared.faults.take_refusal(&endpoint) {
        let mut r = Response::new(Body::from(
            r#"["ERROR_RIGHT_MISSING","You don't have permission to perform this action."]"#,
        ));
        *r.status_mut() = StatusCode::FORBIDDEN;
        r.headers_mut()
            .insert("content-type", HeaderValue::from_static(api::JSON_CT));
        return r;
    }
    if segments
        .first()
        .is_some_and(|s| s.eq_ignore_ascii_case("initSession"))
        && !faults.init_session_delay.is_zero()
    {
        tokio::time::sleep(faults.init_session_delay).await;
    }
    let headers: HashMap<String, String> = parts
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(v.as_bytes()).to_string(),
            )
        })
        .collect();
    let content_type = headers.get("content-type").cloned();
    let upload = if content_type
        .as_deref()
        .is_some_and(|c| c.to_ascii_lowercase().starts_with("multipart/form-data"))
    {
        match parse_multipart(&parts, bytes.clone()).await {
            Some(u) => Some(u),
            None => Some(Upload::default()),
        }
    } else {
        None
    };
    let query = parts
        .uri
        .query()
        .map(crate::params::parse_query)
        .unwrap_or_default();
    let req = Req {
        method,
        segments,
        query,
        headers,
        content_type,
        raw_body: bytes.to_vec(),
        upload,
    };
    let resp = {
        let mut st = shared.state.lock();
        api::handle(&mut st, &faults, &req)
    };
    if shared.faults.take_lost_answer(&endpoint) {
        kill.cancel();
        std::future::pending::<()>().await;
    }
    let mut out = Response::new(Body::from(resp.body));
    *out.status_mut() =
        StatusCode::from_u16(resp.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = out.headers_mut();
    h.insert("x-powered-by", HeaderValue::from_static("glpi-sim"));
    h.insert(
        "access-control-expose-headers",
        HeaderValue::from_static("content-type, content-range, accept-range"),
    );
    h.insert("pragma", HeaderValue::from_static("no-cache"));
    h.insert(
        "cache-control",
        HeaderValue::from_static("no-store, no-cache, must-revalidate"),
    );
    h.insert(
        "expires",
        HeaderValue::from_static("Mon, 26 Jul 1997 05:00:00 GMT"),
    );
    for (k, v) in resp.headers {
        if let (Ok(name), Ok(value)) = (
            axum::http::HeaderName::try_from(k.to_ascii_lowercase()),
            HeaderValue::from_str(&v),
        ) {
            h.insert(name, value);
        }
    }
    out
}

async fn parse_multipart(
    parts: &axum::http::request::Parts,
    bytes: bytes::Bytes,
) -> Option<Upload> {
    let mut builder = Request::builder()
        .method(parts.method.clone())
        .uri(parts.uri.clone());
    for (k, v) in &parts.headers {
        builder = builder.header(k, v);
    }
    let req = builder.body(Body::from(bytes)).ok()?;
    // The whole request is already within `MAX_BODY`; without this, axum's
    // default limit (2 MB) would cut larger files short.
    let read = tower::service_fn(|req: Request<Body>| async move {
        Ok::<_, std::convert::Infallible>(Multipart::from_request(req, &()).await.ok())
    });
    let mut mp = tower::ServiceExt::oneshot(
        tower::Layer::layer(&axum::extract::DefaultBodyLimit::max(MAX_BODY), read),
        req,
    )
    .await
    .ok()??;
    let mut upload = Upload::default();
    while let Ok(Some(field)) = mp.next_field().await {
        let name = field.name().unwrap_or_default().to_string();
        let filename = field.file_name().map(str::to_string);
        let ctype = field
            .content_type()
            .unwrap_or("application/octet-stream")
            .to_string();
        let Ok(data) = field.bytes().await else { break };
        if name == "uploadManifest" {
            upload.manifest = Some(String::from_utf8_lossy(&data).to_string());
        } else if let Some(filename) = filename {
            let field = name.split('[').next().unwrap_or_default().to_string();
            upload.files.push(UploadFile {
                field,
                filename,
                content_type: ctype,
                bytes: data.to_vec(),
            });
        }
    }
    Some(upload)
}

/// A running simulator. Dropping it stops the server.
pub struct RunningSim {
    addr: SocketAddr,
    config: SimConfig,
    shared: Arc<Shared>,
    stop: CancellationToken,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for RunningSim {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl RunningSim {
    /// `http://127.0.0.1:PORT/apirest.php` (both modes).
    pub fn base_url(&self) -> String {
        format!("http://{}/apirest.php", self.addr)
    }

    /// `http://127.0.0.1:PORT/api.php/v1` (answered in GLPI 11 mode only).
    pub fn api_v1_url(&self) -> String {
        format!("http://{}/api.php/v1", self.addr)
    }

    /// `http://127.0.0.1:PORT`
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn mode(&self) -> GlpiVersion {
        self.config.mode
    }

    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    pub fn app_token(&self) -> String {
        self.config.app_token.clone()
    }

    /// API token (`Authorization: user_token …`) of a user, by login.
    pub fn user_token(&self, login: &str) -> Option<String> {
        let st = self.shared.state.lock();
        let id = st.user_by_login(login)?.int("id");
        st.api_tokens.get(&id).cloned()
    }

    /// Give the user `login` a new API token (`None`: a fresh random one), as an
    /// administrator revoking or regenerating it does: logins with the old one
    /// are refused with `ERROR_GLPI_LOGIN_USER_TOKEN`. False when no such user.
    pub fn set_user_token(&self, login: &str, token: Option<&str>) -> bool {
        let mut st = self.shared.state.lock();
        let Some(id) = st.user_by_login(login).map(|u| u.int("id")) else {
            return false;
        };
        let token = token.map_or_else(|| crate::config::random_hex(40), str::to_owned);
        st.api_tokens.insert(id, token);
        true
    }

    pub fn faults(&self) -> &Faults {
        &self.shared.faults
    }

    // ---------------------------------------------------------------- counters

    pub fn calls_total(&self) -> u64 {
        self.shared.state.lock().counters.total
    }

    /// Calls by endpoint, e.g. `"POST /Ticket"`, `"GET /Ticket/:id"`, `"GET /initSession"`,
    /// `"GET /search/User"` (ids replaced by `:id`; both URL prefixes counted together).
    pub fn calls_by_endpoint(&self) -> BTreeMap<String, u64> {
        self.shared.state.lock().counters.by_endpoint.clone()
    }

    /// Calls to one endpoint key (0 if none).
    pub fn calls_to(&self, endpoint: &str) -> u64 {
        self.shared
            .state
            .lock()
            .counters
            .by_endpoint
            .get(endpoint)
            .copied()
            .unwrap_or(0)
    }

    pub fn sessions_opened(&self) -> u64 {
        self.shared.state.lock().counters.sessions_opened
    }

    pub fn sessions_killed(&self) -> u64 {
        self.shared.state.lock().counters.sessions_killed
    }

    /// Sessions currently valid.
    pub fn sessions_active(&self) -> usize {
        self.shared.state.lock().sessions.len()
    }

    /// Invalidate every open session now (the next call with any of them answers 401).
    pub fn expire_all_sessions(&self) {
        self.shared.state.lock().sessions.clear();
    }

    pub fn reset_counters(&self) {
        self.shared.state.lock().counters = Default::default();
    }

    // ---------------------------------------------------------------- state queries

    pub fn tickets(&self) -> Vec<SimTicket> {
        let st = self.shared.state.lock();
        st.rows("Ticket").map(|r| model::ticket(&st, r)).collect()
    }

    pub fn ticket(&self, id: u64) -> Option<SimTicket> {
        let st = self.shared.state.lock();
        st.get("Ticket", to_i(id)).map(|r| model::ticket(&st, r))
    }

    pub fn followups(&self, ticket_id: u64) -> Vec<SimFollowup> {
        let st = self.shared.state.lock();
        st.rows("ITILFollowup")
            .filter(|r| r.str("itemtype") == "Ticket" && r.int("items_id") == to_i(ticket_id))
            .map(|r| model::followup(&st, r))
            .collect()
    }

    pub fn solutions(&self, ticket_id: u64) -> Vec<SimSolution> {
        let st = self.shared.state.lock();
        st.rows("ITILSolution")
            .filter(|r| r.str("itemtype") == "Ticket" && r.int("items_id") == to_i(ticket_id))
            .map(|r| model::solution(&st, r))
            .collect()
    }

    pub fn users(&self) -> Vec<SimUser> {
        let st = self.shared.state.lock();
        st.rows("User").map(|r| model::user(&st, r)).collect()
    }

    pub fn user(&self, id: u64) -> Option<SimUser> {
        let st = self.shared.state.lock();
        st.get("User", to_i(id)).map(|r| model::user(&st, r))
    }

    pub fn user_by_login(&self, login: &str) -> Option<SimUser> {
        let st = self.shared.state.lock();
        st.user_by_login(login).map(|r| model::user(&st, r))
    }

    pub fn contacts(&self) -> Vec<SimContact> {
        let st = self.shared.state.lock();
        st.rows("Contact").map(|r| model::contact(&st, r)).collect()
    }

    pub fn documents(&self) -> Vec<SimDocument> {
        let st = self.shared.state.lock();
        st.rows("Document")
            .map(|r| model::document(&st, r))
            .collect()
    }

    pub fn entities(&self) -> Vec<SimEntity> {
        let st = self.shared.state.lock();
        st.rows("Entity").map(|r| model::entity(&st, r)).collect()
    }

    /// Any item as stored (GLPI 10: entity-encoded text), e.g. `item("RequestType", 7)`.
    pub fn item(&self, itemtype: &str, id: u64) -> Option<Value> {
        self.shared
            .state
            .lock()
            .get(itemtype, to_i(id))
            .map(|r| r.to_value())
    }

    /// All items of an itemtype as stored.
    pub fn items(&self, itemtype: &str) -> Vec<Value> {
        self.shared
            .state
            .lock()
            .rows(itemtype)
            .map(|r| r.to_value())
            .collect()
    }

    // ---------------------------------------------------------------- seeding

    /// Add an entity under `parent`; `cnpj` sets the Fields-plugin CNPJ custom field
    /// (creating the 'Dados fiscais' container and its 'CNPJ' field on first use, search option 76666).
    pub fn add_entity(&self, name: &str, parent: u64, cnpj: Option<&str>) -> u64 {
        let mut st = self.shared.state.lock();
        let stored = st.store_text(name);
        let id = st.add_entity_row(&stored, to_i(parent), Vec::new());
        // As in GLPI, sessions already open do not see it: their active
        // entities were computed at login (or at their last
        // changeActiveEntities).
        if let Some(cnpj) = cnpj {
            ensure_cnpj_field(&mut st);
            let ctx = admin_ctx(&st);
            let mut input = Map::new();
            input.insert("cnpjfield".into(), Value::from(st.store_text(cnpj)));
            let _ = api::items::update(&mut st, &ctx, "Entity", id, &input);
        }
        u64::try_from(id).unwrap_or(0)
    }

    /// Create the Fields-plugin container 'Dados fiscais' on Entity with a text field 'CNPJ'
    /// (search option 76666), if it does not exist yet.
    pub fn enable_cnpj_field(&self) {
        ensure_cnpj_field(&mut self.shared.state.lock());
    }

    /// Add a user with emails, phones, a profile on its entity and an API token; returns its id.
    pub fn add_user(&self, user: NewUser) -> u64 {
        let mut st = self.shared.state.lock();
        let ctx = admin_ctx(&st);
        let mut input = Map::new();
        input.insert("name".into(), Value::from(user.login.clone()));
        for (k, v) in [
            ("realname", &user.realname),
            ("firstname", &user.firstname),
            ("phone", &user.phone),
            ("phone2", &user.phone2),
            ("mobile", &user.mobile),
        ] {
            if let Some(v) = v {
                input.insert(k.into(), Value::from(v.clone()));
            }
        }
        input.insert("entities_id".into(), Value::from(user.entities_id));
        if let Some(p) = &user.password {
            input.insert("password".into(), Value::from(p.clone()));
            input.insert("password2".into(), Value::from(p.clone()));
        }
        let emails: Map<String, Value> = user
            .emails
            .iter()
            .enumerate()
            .map(|(i, e)| (format!("-{}", i + 1), Value::from(e.clone())))
            .collect();
        if !emails.is_empty() {
            input.insert("_useremails".into(), Value::Object(emails));
            input.insert("_default_email".into(), Value::from("-1"));
        }
        input.insert(
            "_profiles_id".into(),
            Value::from(user.profile.unwrap_or(1)),
        );
        input.insert(
            "_entities_id".into(),
            Value::from(user.profile_entity.unwrap_or(user.entities_id)),
        );
        input.insert(
            "_is_recursive".into(),
            Value::from(i64::from(user.profile_recursive)),
        );
        let input = api::items::sanitize(&st, &input);
        match api::items::create(&mut st, &ctx, "User", &input) {
            Ok((id, _)) => u64::try_from(id).unwrap_or(0),
            Err(_) => st
                .user_by_login(&user.login)
                .map(|u| u64::try_from(u.int("id")).unwrap_or(0))
                .unwrap_or(0),
        }
    }

    pub fn add_contact(&self, contact: NewContact) -> u64 {
        let mut st = self.shared.state.lock();
        let ctx = admin_ctx(&st);
        let mut input = Map::new();
        input.insert("name".into(), Value::from(contact.name.clone()));
        for (k, v) in [
            ("firstname", &contact.firstname),
            ("email", &contact.email),
            ("phone", &contact.phone),
            ("mobile", &contact.mobile),
        ] {
            if let Some(v) = v {
                input.insert(k.into(), Value::from(v.clone()));
            }
        }
        input.insert("entities_id".into(), Value::from(contact.entities_id));
        let input = api::items::sanitize(&st, &input);
        api::items::create(&mut st, &ctx, "Contact", &input)
            .map(|(id, _)| u64::try_from(id).unwrap_or(0))
            .unwrap_or(0)
    }

    /// Add an ITIL category at the root entity (recursive); returns its id.
    pub fn add_category(&self, name: &str) -> u64 {
        self.create_as_admin(
            "ITILCategory",
            &[
                ("name", Value::from(name)),
                ("entities_id", Value::from(0)),
                ("is_recursive", Value::from(1)),
            ],
        )
    }

    /// Add an ITIL category for one ticket type only (`is_incident` /
    /// `is_request`, as GLPI's category form sets them); returns its id.
    pub fn add_category_for(&self, name: &str, incidents: bool, requests: bool) -> u64 {
        self.create_as_admin(
            "ITILCategory",
            &[
                ("name", Value::from(name)),
                ("entities_id", Value::from(0)),
                ("is_recursive", Value::from(1)),
                ("is_incident", Value::from(i64::from(incidents))),
                ("is_request", Value::from(i64::from(requests))),
            ],
        )
    }

    /// Add a request type (e.g. "Chatwoot"); returns its id.
    pub fn add_request_type(&self, name: &str) -> u64 {
        self.create_as_admin("RequestType", &[("name", Value::from(name))])
    }

    /// Set a user's default entity (`glpi_users.entities_id`); `None` stores NULL, which
    /// GLPI allows (no default entity). `false` if the user does not exist.
    pub fn set_user_default_entity(&self, user: u64, entity: Option<u64>) -> bool {
        let mut st = self.shared.state.lock();
        match st.get_mut("User", to_i(user)) {
            Some(row) => {
                row.set("entities_id", entity.map_or(Value::Null, Value::from));
                true
            }
            None => false,
        }
    }

    /// Open a ticket in `entity` as `glpi` would in GLPI's UI; returns its id (0 if refused).
    pub fn add_ticket(&self, name: &str, entity: u64) -> u64 {
        self.create_as_admin(
            "Ticket",
            &[
                ("name", Value::from(name)),
                ("content", Value::from(name)),
                ("entities_id", Value::from(entity)),
            ],
        )
    }

    /// Play a request that writes many tickets at once (a massive action, the autoclose
    /// cron): every existing ticket of `ids` gets the same `date_mod`, the time of that one
    /// request, as GLPI reads its clock once per request. Returns that time.
    pub fn touch_tickets(&self, ids: &[u64]) -> String {
        let mut st = self.shared.state.lock();
        st.clock.freeze();
        let now = st.clock.now();
        for id in ids {
            st.touch_ticket(to_i(*id), 2);
        }
        st.clock.thaw();
        now
    }

    fn create_as_admin(&self, itemtype: &str, fields: &[(&str, Value)]) -> u64 {
        let mut st = self.shared.state.lock();
        let ctx = admin_ctx(&st);
        let input: Map<String, Value> = fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        let input = api::items::sanitize(&st, &input);
        api::items::create(&mut st, &ctx, itemtype, &input)
            .map(|(id, _)| u64::try_from(id).unwrap_or(0))
            .unwrap_or(0)
    }

    /// Change a ticket's status as a technician would in GLPI (dates and solutions follow);
    /// `false` if the ticket does not exist.
    pub fn set_ticket_status(&self, id: u64, status: u8) -> bool {
        let mut st = self.shared.state.lock();
        if st.get("Ticket", to_i(id)).is_none() {
            return false;
        }
        api::tickets::change_status(&mut st, to_i(id), i64::from(status), 2);
        st.touch_ticket(to_i(id), 2);
        true
    }

    /// Set a ticket's `date_mod` as a database edit would (no other field
    /// changes), for tests of what reads "last changed"; `false` if the ticket
    /// does not exist.
    pub fn set_ticket_date_mod(&self, id: u64, date_mod: &str) -> bool {
        let mut st = self.shared.state.lock();
        match st.get_mut("Ticket", to_i(id)) {
            Some(row) => {
                row.set("date_mod", date_mod);
                true
            }
            None => false,
        }
    }

    /// Disable (or enable again) a user, as an administrator does in GLPI's UI
    /// (`is_active`); `false` if the user does not exist.
    pub fn set_user_active(&self, id: u64, active: bool) -> bool {
        let mut st = self.shared.state.lock();
        match st.get_mut("User", to_i(id)) {
            Some(row) => {
                row.set("is_active", i64::from(active));
                true
            }
            None => false,
        }
    }

    /// Move a ticket to another entity, as a technician does in GLPI's UI (a
    /// session that cannot see that entity then gets 403 `ERROR_RIGHT_MISSING`
    /// reading it); `false` if the ticket does not exist.
    pub fn move_ticket(&self, id: u64, entity: u64) -> bool {
        let mut st = self.shared.state.lock();
        if st.get("Entity", to_i(entity)).is_none() {
            return false;
        }
        match st.get_mut("Ticket", to_i(id)) {
            Some(row) => {
                row.set("entities_id", to_i(entity));
                st.touch_ticket(to_i(id), 2);
                true
            }
            None => false,
        }
    }

    /// Purge a ticket as an administrator would in GLPI (delete with
    /// `force_purge`): it and its timeline are gone. `false` if it did not exist.
    pub fn purge_ticket(&self, id: u64) -> bool {
        let mut st = self.shared.state.lock();
        let ctx = admin_ctx(&st);
        api::items::delete(&mut st, &ctx, "Ticket", to_i(id), true).is_ok()
    }

    /// Assign a user (technician) to a ticket; a New ticket becomes Processing (2).
    pub fn assign_ticket(&self, ticket: u64, user: u64) -> bool {
        let mut st = self.shared.state.lock();
        let ctx = admin_ctx(&st);
        let mut input = Map::new();
        input.insert("tickets_id".into(), Value::from(ticket));
        input.insert("users_id".into(), Value::from(user));
        input.insert("type".into(), Value::from(2));
        api::items::create(&mut st, &ctx, "Ticket_User", &input).is_ok()
    }

    /// Simulate a user replying in GLPI's UI: a followup authored (and posted) by `user`,
    /// with GLPI's reopen rules applied as for that user's own session. Returns its id.
    pub fn add_followup_as(
        &self,
        ticket: u64,
        user: u64,
        content: &str,
        is_private: bool,
    ) -> Option<u64> {
        let mut st = self.shared.state.lock();
        let ctx = user_ctx(&st, to_i(user))?;
        let mut input = Map::new();
        input.insert("itemtype".into(), Value::from("Ticket"));
        input.insert("items_id".into(), Value::from(ticket));
        input.insert("content".into(), Value::from(content));
        input.insert("is_private".into(), Value::from(i64::from(is_private)));
        let input = api::items::sanitize(&st, &input);
        api::tickets::create_followup(&mut st, &ctx, &input)
            .ok()
            .and_then(|id| u64::try_from(id).ok())
    }

    /// Simulate a technician solving a ticket in GLPI's UI. Returns the solution id.
    pub fn add_solution_as(&self, ticket: u64, user: u64, content: &str) -> Option<u64> {
        let mut st = self.shared.state.lock();
        let ctx = user_ctx(&st, to_i(user))?;
        let mut input = Map::new();
        input.insert("itemtype".into(), Value::from("Ticket"));
        input.insert("items_id".into(), Value::from(ticket));
        input.insert("content".into(), Value::from(content));
        let input = api::items::sanitize(&st, &input);
        api::tickets::create_solution(&mut st, &ctx, &input)
            .ok()
            .and_then(|id| u64::try_from(id).ok())
    }

    /// Stop serving; open connections are closed.
    pub async fn shutdown(self) {
        self.stop.cancel();
        let task = self.task.lock().take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

fn to_i(id: u64) -> i64 {
    i64::try_from(id).unwrap_or(i64::MAX)
}

/// The context of the `glpi` super-admin, all entities active.
fn admin_ctx(st: &State) -> Ctx {
    Ctx {
        token: String::new(),
        user_id: 2,
        profile_id: 4,
        active_entity: 0,
        active_entities: st.entity_subtree(0),
        recursive: true,
        helpdesk: false,
    }
}

/// A context as if `user` had logged in (profile = its first profile; all its entities).
fn user_ctx(st: &State, user: i64) -> Option<Ctx> {
    st.get("User", user)?;
    let pu = st
        .rows("Profile_User")
        .filter(|r| r.int("users_id") == user)
        .min_by_key(|r| r.int("id"))
        .cloned();
    let (profile, entity, recursive) = pu
        .map(|r| {
            (
                r.int("profiles_id"),
                r.int("entities_id"),
                r.int("is_recursive") == 1,
            )
        })
        .unwrap_or((4, 0, true));
    let active_entities = if recursive {
        st.entity_subtree(entity)
    } else {
        vec![entity]
    };
    Some(Ctx {
        token: String::new(),
        user_id: user,
        profile_id: profile,
        active_entity: entity,
        active_entities,
        recursive,
        helpdesk: st.profile_is_helpdesk(profile),
    })
}

fn ensure_cnpj_field(st: &mut State) {
    if st
        .rows("PluginFieldsField")
        .any(|f| f.str("name") == "cnpjfield")
    {
        return;
    }
    let ctx = admin_ctx(st);
    let container = st
        .rows("PluginFieldsContainer")
        .find(|c| c.str("name") == "dadosfiscai")
        .map(|c| c.int("id"));
    let container = match container {
        Some(c) => c,
        None => {
            let mut input = Map::new();
            input.insert("label".into(), Value::from("Dados fiscais"));
            input.insert("type".into(), Value::from("dom"));
            input.insert(
                "itemtypes".into(),
                Value::Array(vec![Value::from("Entity")]),
            );
            input.insert("is_active".into(), Value::from(1));
            input.insert("entities_id".into(), Value::from(0));
            input.insert("is_recursive".into(), Value::from(1));
            match api::items::create(st, &ctx, "PluginFieldsContainer", &input) {
                Ok((id, _)) => id,
                Err(_) => return,
            }
        }
    };
    let mut input = Map::new();
    input.insert("label".into(), Value::from("CNPJ"));
    input.insert("type".into(), Value::from("text"));
    input.insert("plugin_fields_containers_id".into(), Value::from(container));
    input.insert("is_active".into(), Value::from(1));
    let _ = api::items::create(st, &ctx, "PluginFieldsField", &input);
}

/// Start a simulator by hand (`ticketbridge sim glpi --port N`): print its URL and tokens,
/// serve until Ctrl-C.
pub async fn run_standalone(port: u16, mode: GlpiVersion) -> Result<(), SimError> {
    let sim = GlpiSim::start(SimConfig {
        port,
        ..SimConfig::with_mode(mode)
    })
    .await?;
    println!("GLPI simulator ({mode:?}) listening");
    println!("  base URL      : {}", sim.base_url());
    if mode == GlpiVersion::V11 {
        println!("  v1 alias      : {}", sim.api_v1_url());
    }
    println!("  App-Token     : {}", sim.app_token());
    for login in ["glpi", "tech", "normal", "post-only"] {
        println!(
            "  user_token {login:<9}: {}",
            sim.user_token(login).unwrap_or_default()
        );
    }
    println!("  login/password: glpi/{}", sim.config().glpi_password);
    let _ = tokio::signal::ctrl_c().await;
    sim.shutdown().await;
    Ok(())
}

#[allow(dead_code)]
fn _assert_send() {
    fn is_send<T: Send + Sync>() {}
    is_send::<RunningSim>();
    let _ = Duration::ZERO;
}
