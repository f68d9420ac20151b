//! `POST /bench/noop`: reads the body and answers 202 without persisting
//! anything. Mounted only when `server.bench_noop` is set; the ingest
//! benchmark compares the durable path against it.

use axum::Json;
use axum::body::Bytes;
use axum::http::StatusCode;
use serde_json::json;

pub async fn noop(body: Bytes) -> (StatusCode, Json<serde_json::Value>) {
    (
        StatusCode::ACCEPTED,
        Json(json!({"accepted": true, "bytes": body.len()})),
    )
}
