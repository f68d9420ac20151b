//! Fault injection and counters for the API side.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;

#[derive(Default)]
pub(crate) struct Faults {
    latency: Mutex<Duration>,
    failures: Mutex<VecDeque<u16>>,
    drops: AtomicU64,
    pub requests: AtomicU64,
}

impl Faults {
    pub fn set_latency(&self, latency: Duration) {
        *self.latency.lock() = latency;
    }

    pub fn fail_next(&self, count: usize, status: u16) {
        let mut failures = self.failures.lock();
        failures.extend(std::iter::repeat_n(status, count));
    }

    pub fn drop_next(&self, count: u64) {
        self.drops.fetch_add(count, Ordering::SeqCst);
    }

    fn take_drop(&self) -> bool {
        self.drops
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }
}

/// Runs before every API request: counts it, waits the latency, then
/// answers an injected failure, drops the connection, or passes on.
pub(crate) async fn inject(
    State(faults): State<Arc<Faults>>,
    request: Request,
    next: Next,
) -> Response {
    faults.requests.fetch_add(1, Ordering::SeqCst);
    let latency = *faults.latency.lock();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if faults.take_drop() {
        // Headers go out, then the body errors: the client sees a broken
        // connection (transport error).
        let stream = futures::stream::once(async {
            Err::<Vec<u8>, std::io::Error>(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "sim: connection dropped",
            ))
        });
        return Response::builder()
            .status(StatusCode::OK)
            .header("content-type", "application/json")
            .header("content-length", "100")
            .body(Body::from_stream(stream))
            .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response());
    }
    let failure = faults.failures.lock().pop_front();
    if let Some(status) = failure {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (
            status,
            axum::Json(serde_json::json!({"error": format!("sim: injected {}", status.as_u16())})),
        )
            .into_response();
        if status == StatusCode::TOO_MANY_REQUESTS {
            response
                .headers_mut()
                .insert("retry-after", axum::http::HeaderValue::from_static("2"));
        }
        return response;
    }
    next.run(request).await
}
