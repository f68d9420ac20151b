//! Time `Store::accept_batch` alone (no HTTP): batches of `--batch` requests with
//! one job each, like the events source. Usage:
//! `cargo run --release -p store --example accept_batch -- [STORE_URL|-] [BATCH] [REQUESTS] [POOL_SIZE] [RATE]`
//!
//! With RATE (batches per second) the batches are paced, one at a time, and the
//! latency of each is reported (p50, p99, max): the store's share of the ingest
//! p99 at a fixed rate.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::json;
use std::time::Instant;
use store::{NewInbound, NewJob, Store};

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let dir = tempfile::tempdir().expect("temporary directory");
    let url = args
        .next()
        .filter(|u| u != "-")
        .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("bench.db").display()));
    let batch_size: usize = args.next().and_then(|v| v.parse().ok()).unwrap_or(32);
    let total: usize = args.next().and_then(|v| v.parse().ok()).unwrap_or(20_000);
    let pool: Option<u32> = args.next().and_then(|v| v.parse().ok());
    let rate: Option<f64> = args.next().and_then(|v| v.parse().ok());
    let store = Store::connect_with(
        &url,
        &store::ConnectOptions {
            max_connections: pool,
            ..store::ConnectOptions::default()
        },
    )
    .await
    .expect("open store");
    let run = store::now_ms();
    let started = Instant::now();
    let mut n = 0;
    let mut latencies = Vec::new();
    while n < total {
        if let Some(rate) = rate {
            let due = started + std::time::Duration::from_secs_f64(latencies.len() as f64 / rate);
            tokio::time::sleep_until(due.into()).await;
        }
        let batch: Vec<_> = (n..(n + batch_size).min(total))
            .map(|i| {
                let body =
                    format!(r#"{{"run":{run},"n":{i},"ticket":{{"title":"printer jammed"}}}}"#);
                let event: serde_json::Value = serde_json::from_str(&body).unwrap();
                (
                    NewInbound {
                        source: "bench".into(),
                        dedupe_key: format!("sha256:{run}:{i}"),
                        body: body.into_bytes(),
                        headers: json!({"content-type": "application/json"}),
                    },
                    vec![NewJob::new(
                        "bench",
                        "event.record",
                        format!("bench:{i}"),
                        json!({"source": "bench", "event": event}),
                    )],
                )
            })
            .collect();
        n += batch.len();
        let sent = Instant::now();
        store.accept_batch(batch).await.unwrap();
        latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
    }
    latencies.sort_by(f64::total_cmp);
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    println!(
        "batch latency ms: p50 {:.2}, p99 {:.2}, max {:.2}",
        at(0.5),
        at(0.99),
        at(1.0)
    );
    let elapsed = started.elapsed();
    println!(
        "{:?}: {total} requests in batches of {batch_size}: {:.0} requests/s, {:.2} ms per batch",
        store.backend(),
        total as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1000.0 / (total.div_ceil(batch_size)) as f64
    );
}
