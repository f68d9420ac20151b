//! `read` and `excerpt` against a loopback server: bodies with and without a
//! `Content-Length`, exactly at the limit and one byte over, and an endless
//! one (which only a reader that stops can return from).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::routing::get;
use capped_body::{ReadError, excerpt, read};
use futures::stream;

const CHUNK: usize = 1000;

/// Bytes the endless route has handed to the connection so far.
type Served = Arc<AtomicU64>;

async fn serve() -> (String, Served) {
    let served = Served::default();
    let app = Router::new()
        .route(
            "/sized/{n}",
            get(|Path(n): Path<usize>| async move { vec![b'x'; n] }),
        )
        .route(
            "/chunked/{n}",
            get(|Path(n): Path<usize>| async move {
                // Several chunks and no Content-Length.
                let chunks = (0..n)
                    .step_by(CHUNK)
                    .map(move |at| Ok::<_, Infallible>(Bytes::from(vec![b'x'; CHUNK.min(n - at)])));
                Body::from_stream(stream::iter(chunks.collect::<Vec<_>>()))
            }),
        )
        .route(
            "/endless",
            get(|State(served): State<Served>| async move {
                Body::from_stream(stream::repeat_with(move || {
                    served.fetch_add(CHUNK as u64, Ordering::Relaxed);
                    Ok::<_, Infallible>(Bytes::from_static(&[b'x'; CHUNK]))
                }))
            }),
        )
        .with_state(served.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), served)
}

async fn get_body(base: &str, path: &str) -> reqwest::Response {
    reqwest::get(format!("{base}{path}")).await.unwrap()
}

#[tokio::test]
async fn a_body_at_the_limit_is_read_whole_with_or_without_a_length() {
    let (base, _) = serve().await;
    for path in ["/sized/4500", "/chunked/4500"] {
        let body = read(get_body(&base, path).await, 4500).await.unwrap();
        assert_eq!(body.len(), 4500, "{path}");
    }
    let empty = read(get_body(&base, "/sized/0").await, 4500).await.unwrap();
    assert!(empty.is_empty());
}

#[tokio::test]
async fn one_byte_over_the_limit_is_too_large_with_or_without_a_length() {
    let (base, _) = serve().await;
    for path in ["/sized/4501", "/chunked/4501"] {
        let error = read(get_body(&base, path).await, 4500).await.unwrap_err();
        assert!(
            matches!(error, ReadError::TooLarge { limit: 4500 }),
            "{path}: {error:?}"
        );
        assert_eq!(error.to_string(), "the answer is larger than 4500 bytes");
    }
}

#[tokio::test]
async fn an_endless_body_stops_at_the_limit() {
    let (base, served) = serve().await;
    let error = read(get_body(&base, "/endless").await, 100_000)
        .await
        .unwrap_err();
    assert!(matches!(error, ReadError::TooLarge { limit: 100_000 }));
    // The server went on only as far as the socket buffers let it.
    assert!(served.load(Ordering::Relaxed) < 64 * 1024 * 1024);
}

#[tokio::test]
async fn an_excerpt_is_the_start_of_a_long_body_and_all_of_a_short_one() {
    let (base, _) = serve().await;
    assert_eq!(
        excerpt(get_body(&base, "/endless").await, 2500).await.len(),
        2500
    );
    assert_eq!(
        excerpt(get_body(&base, "/sized/9000").await, 2500)
            .await
            .len(),
        2500
    );
    assert_eq!(
        excerpt(get_body(&base, "/chunked/1200").await, 2500)
            .await
            .len(),
        1200
    );
}
