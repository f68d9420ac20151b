//! `/healthz`, `/readyz` and `/metrics` (behind `server.metrics_token` when
//! set). The probes say up or down and nothing more, so they stay open.

use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use store::JobStatus;

use crate::auth::ApiKeys;
use crate::error::error_body;
use crate::state::AppState;

const STORE_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// The process is up and serving HTTP.
pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// The store answers a round trip; 503 otherwise.
pub async fn readyz(State(state): State<AppState>) -> Response {
    match tokio::time::timeout(STORE_CHECK_TIMEOUT, state.store.ping()).await {
        Ok(Ok(())) => Json(json!({"status": "ready"})).into_response(),
        Ok(Err(error)) => {
            tracing::warn!(error = %error, "readiness check: store unreachable");
            not_ready()
        }
        Err(_) => {
            tracing::warn!("readiness check: store did not answer in time");
            not_ready()
        }
    }
}

fn not_ready() -> Response {
    error_body(
        StatusCode::SERVICE_UNAVAILABLE,
        "store_unavailable",
        "the store is not reachable",
    )
}

/// Jobs are counted in the store at most this often, however often
/// `/metrics` is scraped: the count reads the whole jobs table.
const JOB_COUNT_INTERVAL: Duration = Duration::from_secs(5);

/// Prometheus text exposition. Job counts by state (`ticketbridge_jobs{state}`)
/// are read from the store on a scrape when the last count is older than
/// [`JOB_COUNT_INTERVAL`]; scrapes arriving meanwhile wait for that count
/// rather than starting their own, so a flood of scrapes costs one count.
pub async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(token) = &state.config.server.metrics_token
        && let Err(refused) = ApiKeys::new(vec![token.clone()]).check(&headers)
    {
        return refused.into_response();
    }
    let mut counted = state.jobs_counted.lock().await;
    if counted.is_some_and(|at| at.elapsed() < JOB_COUNT_INTERVAL) {
        drop(counted);
        return render(&state);
    }
    // A failed or slow count is not tried again before the interval either.
    *counted = Some(Instant::now());
    match tokio::time::timeout(STORE_CHECK_TIMEOUT, state.store.job_counts()).await {
        Ok(Ok(counts)) => {
            for status in JobStatus::ALL {
                let count = counts
                    .iter()
                    .find(|(s, _)| *s == status)
                    .map_or(0, |(_, n)| *n);
                metrics::gauge!("ticketbridge_jobs", "state" => status.as_str()).set(count as f64);
            }
        }
        Ok(Err(error)) => tracing::warn!(error = %error, "metrics: cannot count jobs"),
        Err(_) => tracing::warn!("metrics: job count timed out"),
    }
    drop(counted);
    render(&state)
}

fn render(state: &AppState) -> Response {
    state.metrics.run_upkeep();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}
