//! `ticketbridge bench ingest`: the durable ingest path against a no-op route
//! on the same in-process server, over loopback HTTP.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use config::{Config, EventsSource, SourceConfig};
use secrecy::SecretString;
use server::{Application, Dependencies, Wake};
use store::Store;
use tokio_util::sync::CancellationToken;

use crate::cli::IngestBench;
use ticketbridge::say;

const KEY: &str = "bench-key";
const SOURCE: &str = "bench";

struct Run {
    name: String,
    ok: usize,
    failed: usize,
    elapsed: Duration,
    latencies_us: Vec<u64>,
}

impl Run {
    fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile_ms(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        let index = ((self.latencies_us.len() as f64 - 1.0) * p).round() as usize;
        self.latencies_us[index.min(self.latencies_us.len() - 1)] as f64 / 1000.0
    }

    fn line(&self) -> String {
        format!(
            "| {:<34} | {:>7} | {:>6} | {:>10.0} | {:>8.2} | {:>8.2} |",
            self.name,
            self.ok,
            self.failed,
            self.rate(),
            self.percentile_ms(0.50),
            self.percentile_ms(0.99)
        )
    }
}

pub async fn ingest(options: IngestBench) -> anyhow::Result<()> {
    let scratch = tempfile::tempdir().context("cannot create a temporary directory")?;
    let url = match &options.store {
        Some(url) => url.clone(),
        None => format!("sqlite://{}", scratch.path().join("bench.db").display()),
    };
    let store = Store::connect(&url)
        .await
        .with_context(|| format!("cannot open the bench store {}", config::redact_url(&url)))?;

    let mut config = Config::default();
    config.server.listen = ([127, 0, 0, 1], 0).into();
    config.server.bench_noop = true;
    config.store.url = url.clone();
    config.sources.insert(
        SOURCE.to_owned(),
        SourceConfig::Events(EventsSource {
            target: "bench".to_owned(),
            api_keys: vec![SecretString::from(KEY)],
            job_kind: "event.record".to_owned(),
            ordering_key: None,
        }),
    );
    let app = Application::build(config, Dependencies::new(store.clone(), Wake::none())).await?;
    let base = format!("http://{}", app.local_addr());
    let metrics = app.state().metrics.clone();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(app.run_until(shutdown.clone().cancelled_owned()));

    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(options.clients * 2)
        .build()?;
    let noop_url = format!("{base}/bench/noop");
    let ingest_url = format!("{base}/api/v1/events/{SOURCE}");

    let backend = format!("{:?}", store.backend()).to_lowercase();
    let warm = options.requests.min(2_000);
    closed_loop(&client, &noop_url, "warm-noop", options.clients, warm).await?;
    closed_loop(&client, &ingest_url, "warm-ingest", options.clients, warm).await?;

    // Rounds of (no-op, ingest): each ratio compares runs a few seconds apart.
    let mut rounds = Vec::new();
    let mut requests_stored = 0.0;
    let mut commits = 0.0;
    for round in 1..=options.rounds {
        let noop = closed_loop(
            &client,
            &noop_url,
            &format!("noop, round {round}"),
            options.clients,
            options.requests,
        )
        .await?;
        let before = batch_totals(&metrics.render());
        let durable = closed_loop(
            &client,
            &ingest_url,
            &format!("ingest, round {round}"),
            options.clients,
            options.requests,
        )
        .await?;
        let after = batch_totals(&metrics.render());
        requests_stored += after.0 - before.0;
        commits += after.1 - before.1;
        rounds.push((noop, durable));
    }
    let paced = fixed_rate(&client, &ingest_url, options.rate, options.rate_seconds).await?;

    let jobs: i64 = store.job_counts().await?.iter().map(|(_, n)| *n).sum();
    shutdown.cancel();
    server.await??;
    store.close().await;

    let (hwm, rss) = memory_kb();
    say!("store: {backend} ({})", config::redact_url(&url));
    say!(
        "clients: {}, requests per closed-loop run: {}, fixed rate: {}/s for {}s",
        options.clients,
        options.requests,
        options.rate,
        options.rate_seconds
    );
    say!();
    say!(
        "| {:<34} | {:>7} | {:>6} | {:>10} | {:>8} | {:>8} |",
        "run",
        "ok",
        "failed",
        "req/s",
        "p50 ms",
        "p99 ms"
    );
    say!(
        "|{}|{}|{}|{}|{}|{}|",
        "-".repeat(36),
        "-".repeat(9),
        "-".repeat(8),
        "-".repeat(12),
        "-".repeat(10),
        "-".repeat(10)
    );
    for (noop, durable) in &rounds {
        say!("{}", noop.line());
        say!("{}", durable.line());
    }
    say!("{}", paced.line());
    say!();
    let ratios: Vec<f64> = rounds
        .iter()
        .map(|(noop, durable)| 100.0 * durable.rate() / noop.rate().max(1.0))
        .collect();
    let per_round = ratios
        .iter()
        .map(|r| format!("{r:.0}%"))
        .collect::<Vec<_>>()
        .join(", ");
    let ingest_rates: Vec<f64> = rounds.iter().map(|(_, d)| d.rate()).collect();
    say!(
        "durable ingest / no-op throughput: median {:.0}% (rounds: {per_round})",
        median(&ratios)
    );
    say!(
        "durable ingest: median {:.0} req/s over {} rounds",
        median(&ingest_rates),
        rounds.len()
    );
    say!("jobs stored: {jobs}");
    say!(
        "closed-loop ingest: {commits:.0} commits, {:.1} requests per commit",
        requests_stored / commits.max(1.0)
    );
    say!(
        "peak RSS (VmHWM): {:.1} MB, current RSS: {:.1} MB",
        hwm as f64 / 1024.0,
        rss as f64 / 1024.0
    );
    let failed = rounds.iter().map(|(_, d)| d.failed).sum::<usize>() + paced.failed;
    if failed > 0 {
        bail!("{failed} durable requests failed");
    }
    Ok(())
}

/// The middle value of `values` (mean of the two middle ones).
pub(crate) fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

fn body(run: &str, n: usize) -> String {
    format!(
        r#"{{"run":"{run}","n":{n},"ticket":{{"title":"printer on floor 2 is jammed","priority":3}}}}"#
    )
}

async fn send(client: &reqwest::Client, url: &str, body: String) -> Result<(), String> {
    let response = client
        .post(url)
        .header("content-type", "application/json")
        .header("x-api-key", KEY)
        .body(body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    // Read the body so the connection goes back to the pool.
    let _ = response.bytes().await;
    if status.as_u16() == 202 {
        Ok(())
    } else {
        Err(format!("status {status}"))
    }
}

async fn closed_loop(
    client: &reqwest::Client,
    url: &str,
    name: &str,
    clients: usize,
    total: usize,
) -> anyhow::Result<Run> {
    let run_id = format!("{name}-{}", store::now_ms());
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let client = client.clone();
        let url = url.to_owned();
        let next = next.clone();
        let run_id = run_id.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut failed = 0usize;
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= total {
                    break;
                }
                let sent = Instant::now();
                match send(&client, &url, body(&run_id, n)).await {
                    Ok(()) => latencies.push(sent.elapsed().as_micros() as u64),
                    Err(_) => failed += 1,
                }
            }
            (latencies, failed)
        }));
    }
    let mut latencies_us = Vec::with_capacity(total);
    let mut failed = 0;
    for task in tasks {
        let (l, f) = task.await?;
        latencies_us.extend(l);
        failed += f;
    }
    let elapsed = started.elapsed();
    latencies_us.sort_unstable();
    Ok(Run {
        name: format!("{name} ({clients} clients)"),
        ok: latencies_us.len(),
        failed,
        elapsed,
        latencies_us,
    })
}

async fn fixed_rate(
    client: &reqwest::Client,
    url: &str,
    rate: u64,
    seconds: u64,
) -> anyhow::Result<Run> {
    let run_id = format!("paced-{}", store::now_ms());
    let total = (rate * seconds) as usize;
    let mut ticker = tokio::time::interval(Duration::from_nanos(1_000_000_000 / rate.max(1)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(total);
    for n in 0..total {
        ticker.tick().await;
        let client = client.clone();
        let url = url.to_owned();
        let body = body(&run_id, n);
        tasks.push(tokio::spawn(async move {
            let sent = Instant::now();
            send(&client, &url, body)
                .await
                .map(|()| sent.elapsed().as_micros() as u64)
        }));
    }
    let mut latencies_us = Vec::with_capacity(total);
    let mut failed = 0;
    for task in tasks {
        match task.await? {
            Ok(l) => latencies_us.push(l),
            Err(_) => failed += 1,
        }
    }
    let elapsed = started.elapsed();
    latencies_us.sort_unstable();
    Ok(Run {
        name: format!("ingest at fixed {rate}/s"),
        ok: latencies_us.len(),
        failed,
        elapsed,
        latencies_us,
    })
}

/// (sum, count) of the group-commit batch size summary in a Prometheus rendering.
fn batch_totals(rendered: &str) -> (f64, f64) {
    let value = |name: &str| {
        rendered
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().last())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    (
        value("ticketbridge_ingest_batch_size_sum"),
        value("ticketbridge_ingest_batch_size_count"),
    )
}

/// (VmHWM, VmRSS) in kB from /proc/self/status; zeros where unavailable.
fn memory_kb() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}
