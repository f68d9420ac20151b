//! The HTTP side of ticketbridge: routes, authentication, the generic ingest
//! path, health, readiness and metrics. It knows nothing of GLPI or iTop.
//!
//! # Building the application
//!
//! ```no_run
//! # async fn demo(config: server::config::Config, store: store::Store) -> Result<(), server::ServerError> {
//! use server::{Application, Dependencies, Wake};
//! let deps = Dependencies::new(store, Wake::none());
//! let app = Application::build(config, deps).await?;
//! println!("listening on {}", app.local_addr());
//! app.run_until(async { /* wait for a shutdown signal */ }).await
//! # }
//! ```
//!
//! # Adding a source (extension point)
//!
//! A source module (intake API, messaging channel, Chatwoot hooks, iTop
//! hooks...) contributes a router through [`SourceRoutes`] — any
//! `Fn(&AppState) -> Router<AppState>` works — registered with
//! [`Dependencies::with_source`]. Its routes are merged before the shared
//! layers, so they get the uniform error body, body limit, timeout,
//! request id, logging and metrics for free. A handler:
//!
//! 1. authenticates with the [`auth`] blocks ([`auth::ApiKeys`],
//!    [`auth::verify_hmac_sha256`] over the raw `Bytes`,
//!    [`auth::check_url_token`]);
//! 2. validates and parses the body, choosing a dedupe key (delivery id,
//!    `Idempotency-Key`, or a hash of the stable parts) and the jobs;
//! 3. calls [`ingest::accept`] with an [`ingest::Inbound`] — the inbox row and
//!    its jobs are committed in one transaction before it returns, the engine
//!    is woken, and a repeat of the dedupe key returns
//!    [`ingest::IngestOutcome::Duplicate`] having enqueued nothing;
//! 4. answers (2xx), or returns an [`ApiError`] (uniform JSON error body).
//!
//! The source's settings are read from `state.config.sources`
//! ([`config::SourceConfig`]); new kinds are added as variants there.
//!
//! ```no_run
//! use axum::{Router, routing::post, extract::State};
//! use server::{AppState, ApiError, ingest};
//!
//! fn intake_routes(_state: &AppState) -> Router<AppState> {
//!     Router::new().route("/api/v1/intake/{source}", post(receive))
//! }
//! async fn receive(State(state): State<AppState>, body: axum::body::Bytes) -> Result<&'static str, ApiError> {
//!     let inbound = ingest::Inbound {
//!         source: "intake".into(), dedupe_key: "k".into(), body: body.to_vec(),
//!         headers: serde_json::json!({}), jobs: vec![],
//!     };
//!     ingest::accept(&state, inbound).await?;
//!     Ok("accepted")
//! }
//! fn deps(store: store::Store) -> server::Dependencies {
//!     server::Dependencies::new(store, server::Wake::none()).with_source(intake_routes)
//! }
//! ```
//!
//! # Routes
//!
//! - `GET /healthz`: the process is up.
//! - `GET /readyz`: the store answers; 503 with a JSON error otherwise.
//! - `GET /metrics`: Prometheus text (`ticketbridge_http_requests_total`,
//!   `ticketbridge_inbox_total`, `ticketbridge_jobs`, and whatever the engine
//!   emits through the `metrics` facade).
//! - `POST /api/v1/events/{source}`: generic JSON events ([`sources::events`]).
//! - `POST /bench/noop`: only with `server.bench_noop = true`.

mod app;
pub mod auth;
pub mod body_limits;
pub mod error;
pub mod ingest;
pub mod links;
pub mod metrics;
pub mod routes;
pub mod sources;
mod state;

pub use ::config;
pub use app::{Application, Dependencies, ServerError, SourceRoutes, router};
pub use error::ApiError;
pub use state::{AppState, Arrival, Wake};
