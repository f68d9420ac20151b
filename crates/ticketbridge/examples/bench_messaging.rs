//! Messaging benchmark: N concurrent conversations each send a burst of M
//! messages; the merge window must turn each burst into exactly one ticket.
//! The same run then sends the same number of messages with no merging
//! (each message its own ticket, what an integration without a merge window
//! does) as the baseline. Everything on loopback: ticketbridge in
//! process, the GLPI simulator, a SQLite store in a temporary directory.
//!
//! cargo run --release -p ticketbridge --example bench_messaging -- [conversations] [messages] [window_ms]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use sim::glpi::{GlpiSim, SimConfig};
use ticketbridge::testkit::{TestApp, wait_for};

const KEY: &str = "bench-key";
const DEADLINE: Duration = Duration::from_secs(600);

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

struct Outcome {
    tickets: usize,
    followups: usize,
    accept_secs: f64,
    drain_secs: f64,
    glpi_calls: u64,
    peak_rss_kib: u64,
}

async fn run(conversations: usize, messages: usize, lines: &str) -> Outcome {
    let sim = GlpiSim::start(SimConfig::default()).await.unwrap();
    let (store, _dir) = store::testing::fresh_sqlite().await;
    let text = format!(
        r#"
[engine]
concurrency = 8
max_attempts = 20
[targets.glpi]
kind = "glpi"
url = "{url}"
app_token = "{app}"
user_token = "{user}"
[sources.whats]
kind = "messaging"
target = "glpi"
api_keys = ["{KEY}"]
default_country = "BR"
max_wait = "60s"
{lines}
"#,
        url = sim.base_url(),
        app = sim.app_token(),
        user = sim.user_token("glpi").unwrap(),
    );
    let config = config::load_str(&text, Vec::new()).unwrap();
    let app = Arc::new(TestApp::spawn(config, store.clone()).await.unwrap());
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..conversations {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            // One phone per conversation: 11 9xxxx-xxxx.
            let phone = format!("+55119{:08}", 10_000_000 + c);
            for m in 0..messages {
                let body = json!({"conversation_id": format!("conv-{c}"),
                    "message_id": format!("{c}-{m}"), "phone": phone,
                    "name": format!("Customer {c}"), "text": format!("conversation {c} part {m}")});
                let response = app
                    .http
                    .post(app.url("/api/v1/channels/whats/messages"))
                    .header("X-API-Key", KEY)
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 202);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let accept_secs = start.elapsed().as_secs_f64();
    wait_for("every job to finish", DEADLINE, || async {
        let outstanding = store.outstanding().await.unwrap();
        let pending = store
            .job_counts()
            .await
            .unwrap()
            .into_iter()
            .filter(|(s, _)| *s == store::JobStatus::Pending)
            .map(|(_, n)| n)
            .sum::<i64>();
        (outstanding == 0 && pending == 0).then_some(())
    })
    .await
    .unwrap();
    let drain_secs = start.elapsed().as_secs_f64();
    let dead = store
        .jobs(&store::JobFilter {
            status: Some(store::JobStatus::Dead),
            limit: Some(3),
            ..store::JobFilter::default()
        })
        .await
        .unwrap();
    for job in &dead {
        eprintln!("dead job {} {}: {:?}", job.id, job.kind, job.last_error);
    }
    let tickets = sim.tickets();
    let followups = tickets.iter().map(|t| sim.followups(t.id).len()).sum();
    let outcome = Outcome {
        tickets: tickets.len(),
        followups,
        accept_secs,
        drain_secs,
        glpi_calls: sim.calls_total(),
        peak_rss_kib: peak_rss_kib(),
    };
    match Arc::try_unwrap(app) {
        Ok(app) => app.stop().await,
        Err(_) => panic!("app still shared"),
    }
    outcome
}

fn print(label: &str, conversations: usize, messages: usize, o: &Outcome) {
    println!(
        "| {label} | {conversations} | {} | {} | {} | {:.2} | {:.2} | {} | {} |",
        conversations * messages,
        o.tickets,
        o.followups,
        o.accept_secs,
        o.drain_secs,
        o.glpi_calls,
        o.peak_rss_kib / 1024
    );
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let conversations: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1000);
    let messages: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(3);
    let window: u64 = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(300);

    let merged = run(conversations, messages, &format!("merge_window = {window}")).await;
    let baseline = run(
        conversations,
        messages,
        "merge_window = 1\nfollowups = false",
    )
    .await;

    println!(
        "| run | conversations | messages | tickets | followups | accepted (s) | drained (s) | GLPI calls | peak RSS (MiB, cumulative) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    print(
        &format!("merge window {window} ms"),
        conversations,
        messages,
        &merged,
    );
    print(
        "baseline: no merging (one ticket per message)",
        conversations * messages,
        1,
        &baseline,
    );
    if merged.tickets != conversations {
        eprintln!(
            "FAIL: {} tickets for {conversations} conversations",
            merged.tickets
        );
        std::process::exit(1);
    }
}
