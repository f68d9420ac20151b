//! Building and running the HTTP application.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{HeaderName, StatusCode, header};
use axum::middleware;
use axum::routing::{get, post};
use config::Config;
use std::time::Duration;
use store::{Backend, Store};

use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::body_limits;
use crate::error::{self, ApiError};
use crate::ingest::Writer;
use crate::metrics;
use crate::routes;
use crate::sources;
use crate::state::{AppState, Arrival, Wake};

/// Headers never written to logs.
const SENSITIVE_HEADERS: [&str; 7] = [
    "authorization",
    "x-api-key",
    "cookie",
    "x-chatwoot-signature",
    "x-hub-signature-256",
    "webhook-signature",
    "x-signature",
];

/// A module contributing routes for a kind of source (intake API, messaging
/// channel, Chatwoot hooks, iTop hooks...). Its router is merged into the
/// application before the shared layers, so its answers get the same error
/// shape, body limit, timeout, request id, logging and metrics. Handlers take
/// `State<AppState>` and call [`crate::ingest::accept`].
///
/// Any `Fn(&AppState) -> Router<AppState>` is a `SourceRoutes`.
pub trait SourceRoutes: Send + Sync {
    fn routes(&self, state: &AppState) -> Router<AppState>;
}

impl<F> SourceRoutes for F
where
    F: Fn(&AppState) -> Router<AppState> + Send + Sync,
{
    fn routes(&self, state: &AppState) -> Router<AppState> {
        self(state)
    }
}

/// What the application needs besides its configuration.
pub struct Dependencies {
    pub store: Store,
    /// Called after every enqueue (`engine.waker()` in the binary).
    pub wake: Wake,
    /// Extra source routes contributed by other modules.
    pub sources: Vec<Box<dyn SourceRoutes>>,
}

impl Dependencies {
    pub fn new(store: Store, wake: Wake) -> Self {
        Self {
            store,
            wake,
            sources: Vec::new(),
        }
    }

    /// Adds a module's source routes.
    pub fn with_source(mut self, routes: impl SourceRoutes + 'static) -> Self {
        self.sources.push(Box::new(routes));
        self
    }
}

/// Failure to start or run the server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The OS error is in the message and is not also the error's source: a
    /// chain printed with `{:#}` would repeat it.
    #[error("cannot listen on {addr}: {error} (is another process using it? change server.listen)")]
    Bind {
        addr: SocketAddr,
        error: std::io::Error,
    },
    #[error("HTTP server failed: {0}")]
    Serve(#[source] std::io::Error),
}

impl ServerError {
    /// A bind failure may clear once the other process exits.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Bind { .. } | Self::Serve(_))
    }
}

/// A bound, not yet running HTTP server.
pub struct Application {
    listener: TcpListener,
    local_addr: SocketAddr,
    router: Router,
    state: AppState,
}

impl Application {
    /// Binds `config.server.listen` (use port 0 for a free port) and builds
    /// the router. Must run inside a Tokio runtime (it starts the ingest
    /// writer).
    pub async fn build(config: Config, deps: Dependencies) -> Result<Self, ServerError> {
        let listener = Self::bind(&config).await?;
        Self::build_on(listener, config, deps)
    }

    /// Binds `config.server.listen`, before anything else is opened: a port
    /// in use is then reported before the store is created or migrated.
    pub async fn bind(config: &Config) -> Result<TcpListener, ServerError> {
        let addr = config.server.listen;
        TcpListener::bind(addr)
            .await
            .map_err(|error| ServerError::Bind { addr, error })
    }

    /// [`Application::build`] on a listener from [`Application::bind`].
    pub fn build_on(
        listener: TcpListener,
        config: Config,
        deps: Dependencies,
    ) -> Result<Self, ServerError> {
        let addr = config.server.listen;
        let local_addr = listener
            .local_addr()
            .map_err(|error| ServerError::Bind { addr, error })?;
        let (router, state) = router(config, deps);
        Ok(Self {
            listener,
            local_addr,
            router,
            state,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn port(&self) -> u16 {
        self.local_addr.port()
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes, then stops accepting connections and
    /// lets in-flight requests finish.
    ///
    /// HTTP/1.1 through hyper directly (axum's `serve` offers no timer): a
    /// client gets `server.header_timeout` to send each request's headers
    /// (an idle keep-alive connection is closed after it), and at most
    /// `server.max_connections` connections are served at once, so slow or
    /// idle clients cannot exhaust the process's file descriptors.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        let server = &self.state.config.server;
        let header_timeout = server.header_timeout;
        let permits = Arc::new(Semaphore::new(server.max_connections));
        tracing::info!(addr = %self.local_addr, "HTTP server listening");
        let graceful = GracefulShutdown::new();
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let permit = tokio::select! {
                permit = permits.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => break,
                },
                () = &mut shutdown => break,
            };
            let stream = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(error) => {
                        // Out of descriptors or a connection reset before
                        // it was taken: wait a little, as axum does.
                        tracing::warn!(%error, "cannot accept a connection");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            // Small answers go out at once rather than after Nagle's delay.
            let _ = stream.set_nodelay(true);
            let service = TowerToHyperService::new(
                self.router
                    .clone()
                    .map_request(|request: Request<Incoming>| request.map(Body::new)),
            );
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .serve_connection(TokioIo::new(stream), service);
            let connection = graceful.watch(connection);
            tokio::spawn(async move {
                if let Err(error) = connection.await {
                    tracing::trace!(%error, "connection ended with an error");
                }
                drop(permit);
            });
        }
        drop(self.listener);
        graceful.shutdown().await;
        Ok(())
    }
}

/// The full router with its state, without binding (for in-process use).
pub fn router(config: Config, deps: Dependencies) -> (Router, AppState) {
    let writer_tasks = match deps.store.backend() {
        Backend::Sqlite => 1,
        Backend::Postgres => 4,
    };
    let state = AppState {
        jobs_counted: Arc::default(),
        writer: Writer::start(deps.store.clone(), writer_tasks),
        store: deps.store,
        wake: deps.wake,
        config: Arc::new(config),
        metrics: metrics::handle(),
    };
    let server = &state.config.server;

    let mut app = Router::new()
        .route("/healthz", get(routes::health::healthz))
        .route("/readyz", get(routes::health::readyz))
        .route("/metrics", get(routes::health::metrics))
        .merge(sources::events::router(&state.config));
    if server.bench_noop {
        app = app.route("/bench/noop", post(routes::bench::noop));
    }
    for source in &deps.sources {
        app = app.merge(source.routes(&state));
    }

    let sensitive: Arc<[HeaderName]> = SENSITIVE_HEADERS
        .iter()
        .map(|name| HeaderName::from_static(name))
        .chain([header::PROXY_AUTHORIZATION])
        .collect();
    let app = app
        .fallback(error::not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(server.body_limit))
        // The transport's cap: routes with a larger limit of their own (the
        // sources that take files, see `body_limits`) apply theirs; every
        // other route reads at most `server.body_limit` (`DefaultBodyLimit`
        // above).
        .layer(RequestBodyLimitLayer::new(body_limits::transport_cap(
            &state.config,
        )))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            server.request_timeout,
        ))
        // Outside the timeout: the moment its clock starts, before the body.
        .layer(middleware::from_fn(stamp_arrival))
        .layer(CatchPanicLayer::custom(error::panic_response))
        .layer(middleware::from_fn_with_state(
            error::BodyLimits {
                default: server.body_limit,
                routes: body_limits::route_limits(&state.config).into(),
            },
            error::uniform_errors,
        ))
        .layer(middleware::from_fn(metrics::track_requests))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        .layer(SetSensitiveRequestHeadersLayer::from_shared(sensitive))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .with_state(state.clone());
    (app, state)
}

/// Records when the request arrived ([`Arrival`]).
async fn stamp_arrival(mut request: Request, next: middleware::Next) -> axum::response::Response {
    request
        .extensions_mut()
        .insert(Arrival(tokio::time::Instant::now()));
    next.run(request).await
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// One span per request with the route template (never the raw path, which
/// may carry a secret URL token) and the request id.
fn request_span(request: &Request) -> tracing::Span {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str());
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    tracing::info_span!("request", method = %request.method(), route, request_id)
}
