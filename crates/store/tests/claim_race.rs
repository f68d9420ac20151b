//! The race the PostgreSQL claim lock exists for, provoked on purpose.
//!
//! Key K has job A (earlier id) falling due at T and job B (later id) due one
//! millisecond before. A claim that starts before T may take B (A is not due yet
//! and never attempted, so it does not block B); a claim that starts at T must
//! then see B running and leave A alone. Under READ COMMITTED the second claim
//! does not see the first one's uncommitted update, so without serialising
//! claims both A and B end up running. Hundreds of keys fall due one per
//! millisecond while several processes' worth of pools claim continuously, so
//! many B claims are in flight exactly when their A falls due.
//!
//! Runs on PostgreSQL when TICKETBRIDGE_TEST_POSTGRES_URL is set, and on SQLite.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use store::{ConnectOptions, NewInbound, NewJob, Store, now_ms};

const KEYS: i64 = 400;
const ROUNDS: usize = 3;
const CLAIMERS: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_never_runs_two_jobs_of_a_key() {
    let Some(url) = store::testing::fresh_postgres_url().await else {
        println!("{}", store::testing::POSTGRES_SKIPPED);
        return;
    };
    never_runs_two_jobs_of_a_key(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_never_runs_two_jobs_of_a_key() {
    let dir = tempfile::tempdir().unwrap();
    never_runs_two_jobs_of_a_key(&store::testing::sqlite_url(&dir)).await;
}

async fn never_runs_two_jobs_of_a_key(url: &str) {
    // One pool per claimer, as if each were its own process.
    let mut stores = Vec::new();
    for _ in 0..CLAIMERS {
        let options = ConnectOptions {
            max_connections: Some(1),
            ..ConnectOptions::default()
        };
        stores.push(Store::connect_with(url, &options).await.unwrap());
    }
    // A round whose jobs took too long to store (a busy machine) fell due
    // before the claimers ran and provoked nothing: it is run again.
    let (mut round, mut provoked) = (0, 0);
    while provoked < ROUNDS {
        round += 1;
        assert!(round <= ROUNDS * 4, "storing the jobs kept taking too long");
        let queue = format!("q{round}");
        // All jobs in one transaction (one multi-row insert), so the first key
        // falls due only after every job is stored and the claimers are running.
        let start = now_ms() + 1_500;
        let mut jobs = Vec::new();
        for k in 0..KEYS {
            let key = format!("r{round}k{k}");
            let due = start + k;
            jobs.push(NewJob::new(&queue, "a", &key, json!({})).run_at(due));
            jobs.push(NewJob::new(&queue, "b", &key, json!({})).run_at(due - 1));
        }
        let inbound = NewInbound {
            source: "claim-race".into(),
            dedupe_key: queue.clone(),
            body: Vec::new(),
            headers: json!({}),
        };
        stores[0].accept(inbound, jobs).await.unwrap();
        if now_ms() >= start {
            continue;
        }
        provoked += 1;
        let last_due = start + KEYS;
        let taken = Arc::new(AtomicUsize::new(0));
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut claimers = Vec::new();
        for (w, store) in stores.iter().enumerate() {
            let store = store.clone();
            let taken = taken.clone();
            let queue = queue.clone();
            claimers.push(tokio::spawn(async move {
                let mut claimed = Vec::new();
                // Until every key has a running job and every A has been due a while.
                while now_ms() < last_due + 50 || taken.load(Ordering::SeqCst) < KEYS as usize {
                    assert!(Instant::now() < deadline, "claimers did not finish");
                    let jobs = store
                        .claim(&queue, &format!("w{w}"), 60_000, 1)
                        .await
                        .unwrap();
                    taken.fetch_add(jobs.len(), Ordering::SeqCst);
                    claimed.extend(jobs);
                }
                claimed
            }));
        }
        // Nothing completes, so every claimed job is still running at the end.
        let mut running: HashMap<String, Vec<String>> = HashMap::new();
        for claimer in claimers {
            for job in claimer.await.unwrap() {
                running.entry(job.ordering_key).or_default().push(job.kind);
            }
        }
        let doubled: Vec<_> = running
            .iter()
            .filter(|(_, kinds)| kinds.len() > 1)
            .collect();
        assert!(
            doubled.is_empty(),
            "round {round}: {} keys with two running jobs, e.g. {:?}",
            doubled.len(),
            doubled.first()
        );
        assert_eq!(running.len(), KEYS as usize, "every key has a running job");
    }
}
