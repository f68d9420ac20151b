//! Ticket creation throughput: one shared session (this client) versus the seeds' pattern
//! (initSession → create → killSession per ticket), against the GLPI simulator with 5 ms of
//! added latency per request, in the same run.
//!
//! `cargo run --release -p glpi --example bench_sessions [tickets] [concurrency]`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};
use glpi::{Auth, GlpiClient, GlpiConfig, NewTicket};
use secrecy::SecretString;
use serde_json::{Value, json};
use sim_glpi::{GlpiSim, GlpiVersion, RunningSim, SimConfig};

struct Outcome {
    label: &'static str,
    tickets: usize,
    elapsed: Duration,
    requests: u64,
    sessions: u64,
}

impl Outcome {
    fn per_second(&self) -> f64 {
        self.tickets as f64 / self.elapsed.as_secs_f64()
    }
    fn requests_per_ticket(&self) -> f64 {
        self.requests as f64 / self.tickets as f64
    }
}

fn ticket(i: usize) -> NewTicket {
    NewTicket {
        name: format!("bench {i}"),
        content: format!("<p>bench ticket {i}</p>"),
        entity_id: Some(0),
        ..Default::default()
    }
}

/// The seeds' pattern: a new session for every ticket.
async fn per_request_session(sim: &RunningSim, n: usize, concurrency: usize) -> Outcome {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let base = sim.base_url();
    let app = sim.app_token();
    let user = sim.user_token("glpi").unwrap();
    let (calls0, sessions0) = (sim.calls_total(), sim.sessions_opened());
    let start = Instant::now();
    let results: Vec<bool> = stream::iter(0..n)
        .map(|i| {
            let (http, base, app, user) = (http.clone(), base.clone(), app.clone(), user.clone());
            async move {
                let init: Value = http
                    .get(format!("{base}/initSession"))
                    .header("App-Token", &app)
                    .header("Authorization", format!("user_token {user}"))
                    .send()
                    .await?
                    .json()
                    .await?;
                let token = init["session_token"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                let t = ticket(i);
                let created = http
                    .post(format!("{base}/Ticket"))
                    .header("App-Token", &app)
                    .header("Session-Token", &token)
                    .json(
                        &json!({"input": {"name": t.name, "content": t.content, "entities_id": 0}}),
                    )
                    .send()
                    .await?
                    .status()
                    .is_success();
                http.get(format!("{base}/killSession"))
                    .header("App-Token", &app)
                    .header("Session-Token", &token)
                    .send()
                    .await?;
                Ok::<bool, reqwest::Error>(created)
            }
        })
        .buffer_unordered(concurrency)
        .map(|r| r.unwrap_or(false))
        .collect()
        .await;
    let elapsed = start.elapsed();
    assert!(
        results.iter().all(|ok| *ok),
        "every seed-pattern creation succeeded"
    );
    Outcome {
        label: "seeds' pattern (initSession → create → killSession per ticket)",
        tickets: n,
        elapsed,
        requests: sim.calls_total() - calls0,
        sessions: sim.sessions_opened() - sessions0,
    }
}

async fn shared_session(
    sim: &RunningSim,
    n: usize,
    concurrency: usize,
    read_back: bool,
) -> Outcome {
    let config = GlpiConfig::new(
        sim.base_url(),
        Auth::UserToken(SecretString::from(sim.user_token("glpi").unwrap())),
    )
    .with_app_token(SecretString::from(sim.app_token()));
    let glpi = GlpiClient::new(config).unwrap();
    let (calls0, sessions0) = (sim.calls_total(), sim.sessions_opened());
    let start = Instant::now();
    let results: Vec<bool> = stream::iter(0..n)
        .map(|i| {
            let glpi = glpi.clone();
            async move {
                if read_back {
                    glpi.create_ticket(&ticket(i)).await.is_ok()
                } else {
                    glpi.create_ticket_id(&ticket(i)).await.is_ok()
                }
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let elapsed = start.elapsed();
    assert!(
        results.iter().all(|ok| *ok),
        "every client creation succeeded"
    );
    glpi.close().await.unwrap();
    Outcome {
        label: if read_back {
            "glpi client, shared session, create_ticket (POST + read-back GET)"
        } else {
            "glpi client, shared session, create_ticket_id (POST only)"
        },
        tickets: n,
        elapsed,
        requests: sim.calls_total() - calls0 - 1, // minus the final killSession
        sessions: sim.sessions_opened() - sessions0,
    }
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(400);
    let concurrency: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(16);
    let sim = GlpiSim::start(SimConfig::with_mode(GlpiVersion::V10))
        .await
        .unwrap();
    sim.faults().set_latency(Duration::from_millis(5));

    // Warm up connections and the simulator.
    let _ = shared_session(&sim, 20, concurrency, false).await;
    let _ = per_request_session(&sim, 20, concurrency).await;

    let seeds = per_request_session(&sim, n, concurrency).await;
    let shared = shared_session(&sim, n, concurrency, false).await;
    let shared_rb = shared_session(&sim, n, concurrency, true).await;

    println!(
        "GLPI simulator (GLPI 10 mode), 5 ms added latency per request, {n} tickets, {concurrency} concurrent\n"
    );
    println!("| pattern | tickets/s | GLPI requests per ticket | sessions opened |");
    println!("|---|---:|---:|---:|");
    for o in [&seeds, &shared, &shared_rb] {
        println!(
            "| {} | {:.0} | {:.3} | {} |",
            o.label,
            o.per_second(),
            o.requests_per_ticket(),
            o.sessions
        );
    }
    println!(
        "\nshared session vs seeds' pattern: {:.2}x throughput (create only), {:.2}x with read-back",
        shared.per_second() / seeds.per_second(),
        shared_rb.per_second() / seeds.per_second()
    );
    sim.shutdown().await;
}
