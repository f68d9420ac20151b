//! Loopback servers that answer every request the same way, for the
//! connectors' tests of their answer limits (feature `testing`).

use std::convert::Infallible;

use axum::Router;
use axum::body::Body;
use axum::http::StatusCode;
use axum::routing::any;
use bytes::Bytes;
use futures::{StreamExt, stream};

/// `http://127.0.0.1:PORT`, answering `status` with a body that is `start`
/// and then spaces that never end: only a reader that stops returns.
pub async fn endless(status: u16, start: &'static str) -> std::io::Result<String> {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    serve(Router::new().fallback(any(move || async move {
        let spaces = stream::repeat_with(|| Ok::<_, Infallible>(Bytes::from_static(&[b' '; 8192])));
        let body =
            stream::once(async move { Ok(Bytes::from_static(start.as_bytes())) }).chain(spaces);
        (status, Body::from_stream(body))
    })))
    .await
}

/// `http://127.0.0.1:PORT`, answering 200 with `body`.
pub async fn answering(body: Bytes) -> std::io::Result<String> {
    serve(Router::new().fallback(any(move || {
        let body = body.clone();
        async move { body }
    })))
    .await
}

async fn serve(app: Router) -> std::io::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(format!("http://{addr}"))
}
