//! Messaging benchmark: N concurrent conversations each send a burst of M
//! messages; the merge window must turn each burst into exactly one ticket.
//! The same run then sends the same number of messages with no merging
//! (each message its own ticket, what an integration without a merge window
//! does) as the baseline. Everything on loopback: ticketbridge in
//! process, the GLPI simulator, a SQLite store in a temporary directory.
//!
//! The baseline sends `conversations × messages` one-message conversations
//! (each with its own phone), so it must produce exactly that many tickets.
//! After each run the store is checked: jobs by status, dead jobs with their
//! last error, ticket links, conversations still holding a buffer.
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
    calls_by_endpoint: std::collections::BTreeMap<String, u64>,
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
    let links = store
        .links(&store::LinkFilter {
            kind: Some(messaging::TICKET_LINK.to_owned()),
            limit: Some(1_000_000),
            ..store::LinkFilter::default()
        })
        .await
        .unwrap();
    let linked = links
        .iter()
        .filter(|l| l.state == store::LinkState::Linked)
        .count();
    let buffered = store
        .kv_list(messaging::state::KV_NAMESPACE)
        .await
        .unwrap()
        .iter()
        .filter(|(_, v)| v["buffer"].as_array().is_some_and(|b| !b.is_empty()))
        .count();
    eprintln!(
        "store after the run: jobs {:?}; ticket links {} ({linked} linked); conversations with a buffer left {buffered}",
        store.job_counts().await.unwrap(),
        links.len()
    );
    let tickets = sim.tickets();
    let followups = tickets.iter().map(|t| sim.followups(t.id).len()).sum();
    let outcome = Outcome {
        tickets: tickets.len(),
        followups,
        accept_secs,
        drain_secs,
        glpi_calls: sim.calls_total(),
        calls_by_endpoint: sim.calls_by_endpoint(),
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

const USAGE: &str =
    "usage: bench_messaging [conversations (1000)] [messages per burst (3)] [merge window ms (300)]

Run 1: <conversations> concurrent conversations each send <messages> messages
(merge window <window> ms): expects one ticket per conversation.
Run 2 (baseline): <conversations x messages> one-message conversations with
no merging: expects one ticket per message.
Exits 1 when either run's ticket count is wrong.";

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}");
        return;
    }
    let number = |i: usize, default: u64| -> u64 {
        match args.get(i) {
            None => default,
            Some(a) => a.parse().unwrap_or_else(|_| {
                eprintln!("not a number: {a}\n{USAGE}");
                std::process::exit(2)
            }),
        }
    };
    let conversations = usize::try_from(number(0, 1000)).unwrap();
    let messages = usize::try_from(number(1, 3)).unwrap();
    let window = number(2, 300);

    let merged = run(conversations, messages, &format!("merge_window = {window}")).await;
    eprintln!("merged run GLPI calls: {:?}", merged.calls_by_endpoint);
    let singles = conversations * messages;
    let baseline = run(singles, 1, "merge_window = 1\nfollowups = false").await;
    eprintln!("baseline GLPI calls: {:?}", baseline.calls_by_endpoint);

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
        "baseline: no merging (one-message conversations)",
        singles,
        1,
        &baseline,
    );
    let mut failed = false;
    for (label, expected, outcome) in [
        ("merged", conversations, &merged),
        ("baseline", singles, &baseline),
    ] {
        if outcome.tickets != expected {
            eprintln!(
                "FAIL ({label}): {} tickets for {expected} conversations",
                outcome.tickets
            );
            failed = true;
        }
    }
    if failed {
        std::process::exit(1);
    }
}
