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
    /// `(method, path suffix, count)`: such requests are carried out, then
    /// their answer is lost.
    lost: Mutex<Vec<(String, String, u64)>>,
    /// `(method, path suffix, count, status)`: such requests are answered
    /// `status` without being carried out.
    refused: Mutex<Vec<(String, String, u64, u16)>>,
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

    pub fn lose_answers(&self, method: &str, path_suffix: &str, count: u64) {
        self.lost
            .lock()
            .push((method.to_ascii_uppercase(), path_suffix.to_string(), count));
    }

    pub fn fail_matching(&self, method: &str, path_suffix: &str, count: u64, status: u16) {
        self.refused.lock().push((
            method.to_ascii_uppercase(),
            path_suffix.to_string(),
            count,
            status,
        ));
    }

    fn take_refused(&self, method: &str, path: &str) -> Option<u16> {
        let mut refused = self.refused.lock();
        let hit = refused
            .iter_mut()
            .find(|(m, suffix, n, _)| *n > 0 && m == method && path.ends_with(suffix.as_str()))?;
        hit.2 -= 1;
        Some(hit.3)
    }

    fn take_lost(&self, method: &str, path: &str) -> bool {
        let mut lost = self.lost.lock();
        let hit = lost
            .iter_mut()
            .find(|(m, suffix, n)| *n > 0 && m == method && path.ends_with(suffix.as_str()));
        match hit {
            Some(entry) => {
                entry.2 -= 1;
                true
            }
            None => false,
        }
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
    let lose = faults.take_lost(request.method().as_str(), request.uri().path());
    if lose {
        // Carried out; the answer never reaches the client.
        let _ = next.run(request).await;
        return broken_connection();
    }
    if faults.take_drop() {
        return broken_connection();
    }
    let refused = faults.take_refused(request.method().as_str(), request.uri().path());
    let failure = refused.or_else(|| faults.failures.lock().pop_front());
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

/// Headers go out, then the body errors: the client sees a broken
/// connection (transport error).
fn broken_connection() -> Response {
    let stream = futures::stream::once(async {
        Err::<Vec<u8>, std::io::Error>(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "sim: connection dropped",
        ))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .header("content-length", "100")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}
