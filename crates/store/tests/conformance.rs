//! One conformance suite for both backends: every test runs on SQLite, and on
//! PostgreSQL when TICKETBRIDGE_TEST_POSTGRES_URL is set.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use store::*;

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let (store, _dir) = store::testing::fresh_sqlite().await;
                    super::$name(store).await;
                }
            )*
        }
        /// `sqlite::memory:` stores commit through sqlx rather than the
        /// group-commit thread of SQLite files.
        mod sqlite_memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let store = store::Store::connect("sqlite::memory:").await.unwrap();
                    super::$name(store).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let Some(store) = store::testing::fresh_postgres().await else { return };
                    super::$name(store).await;
                }
            )*
        }
    };
}

conformance!(
    accept_stores_inbox_and_jobs_once,
    accept_batch_mixes_new_and_duplicate,
    accept_batch_large_mixed_batch_keeps_order_and_answers,
    accept_batch_repeat_inside_a_new_batch,
    accept_batch_each_keeps_the_requests_beside_a_refused_one,
    accept_debounces_jobs_with_a_unique_key,
    concurrent_accepts_store_each_request_once,
    crossed_batches_of_the_same_keys_both_succeed,
    claim_takes_one_job_per_key_in_order,
    different_keys_run_in_parallel,
    concurrent_claimers_keep_per_key_order,
    concurrent_claimers_never_start_a_job_falling_due_beside_a_running_one,
    lease_expiry_reclaims_job,
    leases_are_timed_by_the_shared_clock,
    stale_worker_is_fenced_off,
    retry_backoff_blocks_later_jobs_of_its_key,
    scheduled_future_job_does_not_block,
    running_later_job_blocks_earlier_one_falling_due,
    release_does_not_count_the_attempt,
    unique_key_debounces_pending_job,
    debounce_keeps_a_retry_waiting,
    keep_earlier_debounce_never_moves_a_job_later,
    dead_revive_purge,
    job_listing_and_counts,
    links_upsert_and_lookup,
    own_writes_are_recognised,
    cursors_and_kv,
    claims_are_held_by_one_owner_until_released_or_expired,
    concurrent_claims_have_one_winner,
    audit_entries_newest_first,
    audit_once_records_a_key_once,
    accept_claims_a_job_when_its_key_is_free,
    a_job_claimed_for_a_caller_that_went_away_is_released,
    completion_tells_whether_a_job_of_the_key_is_pending,
    retention_deletes_old_succeeded_jobs_in_batches,
    retention_deletes_old_audit_lines_in_batches,
    body_retention_empties_finished_requests_only,
);

fn inbound(source: &str, key: &str) -> NewInbound {
    NewInbound {
        source: source.into(),
        dedupe_key: key.into(),
        body: format!("{{\"event\":\"{key}\"}}").into_bytes(),
        headers: json!({"x-delivery": key}),
    }
}

/// Two writers (two instances behind a load balancer) store batches holding
/// the same new deliveries in opposite orders, as a gateway's retries make
/// them. Each batch must succeed on its own: none may be refused as a
/// deadlock victim.
async fn crossed_batches_of_the_same_keys_both_succeed(store: Store) {
    for round in 0..60 {
        let keys: Vec<String> = (0..8).map(|n| format!("r{round}-k{n}")).collect();
        let batch = |reversed: bool| {
            let mut keys = keys.clone();
            if reversed {
                keys.reverse();
            }
            keys.iter()
                .map(|k| (inbound("gw", k), vec![job("q", k, 0)]))
                .collect::<Vec<_>>()
        };
        let (a, b) = tokio::join!(
            store.accept_batch(batch(false)),
            store.accept_batch(batch(true))
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        let new = a
            .iter()
            .chain(&b)
            .filter(|o| matches!(o, Acceptance::Accepted { .. }))
            .count();
        assert_eq!(new, keys.len(), "each delivery stored once (round {round})");

        // Different deliveries whose jobs debounce onto the same keys (one
        // merge window per conversation), met in opposite orders.
        let crossed = |side: &str, reversed: bool| {
            let mut keys = keys.clone();
            if reversed {
                keys.reverse();
            }
            keys.iter()
                .map(|k| {
                    let flush = job("q", k, 1).unique_key(format!("flush:{k}"));
                    (inbound("gw", &format!("{side}-{k}")), vec![flush])
                })
                .collect::<Vec<_>>()
        };
        let (a, b) = tokio::join!(
            store.accept_batch(crossed("a", false)),
            store.accept_batch(crossed("b", true))
        );
        a.unwrap();
        b.unwrap();
    }
}

/// Jobs in the store, whatever their status.
async fn total_jobs(store: &Store) -> i64 {
    store
        .job_counts()
        .await
        .unwrap()
        .iter()
        .map(|(_, c)| c)
        .sum()
}

fn job(queue: &str, key: &str, n: i64) -> NewJob {
    NewJob::new(queue, "test", key, json!({ "n": n }))
}

async fn claim_ids(store: &Store, queue: &str, worker: &str, limit: i64) -> Vec<i64> {
    store
        .claim(queue, worker, 60_000, limit)
        .await
        .unwrap()
        .iter()
        .map(|j| j.id)
        .collect()
}

async fn accept_stores_inbox_and_jobs_once(store: Store) {
    let first = store
        .accept(
            inbound("chatwoot", "d-1"),
            vec![job("glpi", "conv:1", 1), job("glpi", "conv:1", 2)],
        )
        .await
        .unwrap();
    let Acceptance::Accepted {
        inbox_id, job_ids, ..
    } = first
    else {
        panic!("not accepted: {first:?}")
    };
    assert_eq!(job_ids.len(), 2);
    let stored = store.inbox(inbox_id).await.unwrap().unwrap();
    assert_eq!(stored.body, b"{\"event\":\"d-1\"}");
    assert_eq!(stored.headers, json!({"x-delivery": "d-1"}));
    assert_eq!(stored.response, None);
    for id in &job_ids {
        let job = store.job(*id).await.unwrap().unwrap();
        assert_eq!(job.inbox_id, Some(inbox_id));
        assert_eq!(job.status, JobStatus::Pending);
    }

    store
        .set_inbox_response(inbox_id, &json!({"ticket": 42}))
        .await
        .unwrap();
    let again = store
        .accept(inbound("chatwoot", "d-1"), vec![job("glpi", "conv:1", 3)])
        .await
        .unwrap();
    assert_eq!(
        again,
        Acceptance::Duplicate {
            inbox_id,
            response: Some(json!({"ticket": 42}))
        }
    );
    let all = store.jobs(&JobFilter::default()).await.unwrap();
    assert_eq!(all.len(), 2, "the duplicate enqueued nothing");

    // Same dedupe key from another source is a different request.
    let other = store
        .accept(inbound("intake", "d-1"), vec![])
        .await
        .unwrap();
    assert!(matches!(other, Acceptance::Accepted { .. }));
    let found = store
        .inbox_by_dedupe("chatwoot", "d-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, inbox_id);
    assert!(
        store
            .inbox_by_dedupe("chatwoot", "nope")
            .await
            .unwrap()
            .is_none()
    );
}

/// PostgreSQL text cannot hold a NUL character: a request carrying one is
/// refused, and the requests committed in the same group are stored anyway.
/// (SQLite stores it.)
async fn accept_batch_each_keeps_the_requests_beside_a_refused_one(store: Store) {
    let batch = vec![
        (inbound("events", "good-1"), vec![job("glpi", "k1", 1)]),
        (inbound("events", "nul"), vec![job("glpi", "k\0x", 2)]),
        (inbound("events", "good-2"), vec![job("glpi", "k2", 3)]),
    ];
    let results = store.accept_batch_each(batch).await.unwrap();
    assert_eq!(results.len(), 3);
    for (index, key) in [(0, "good-1"), (2, "good-2")] {
        assert!(
            matches!(results[index], Ok(Acceptance::Accepted { .. })),
            "{key}: {:?}",
            results[index]
        );
        assert!(
            store
                .inbox_by_dedupe("events", key)
                .await
                .unwrap()
                .is_some()
        );
    }
    let stored_nul = store
        .inbox_by_dedupe("events", "nul")
        .await
        .unwrap()
        .is_some();
    assert_eq!(stored_nul, results[1].is_ok(), "{:?}", results[1]);
}

async fn accept_debounces_jobs_with_a_unique_key(store: Store) {
    let later = now_ms() + 60_000;
    let flush = |n| {
        job("q", "chat:9", n)
            .run_at(later)
            .unique_key("flush:chat:9")
    };
    let first = store
        .accept(inbound("wa", "m-1"), vec![job("q", "chat:9", 0), flush(1)])
        .await
        .unwrap();
    let second = store
        .accept(inbound("wa", "m-2"), vec![flush(2)])
        .await
        .unwrap();
    let (
        Acceptance::Accepted { job_ids: first, .. },
        Acceptance::Accepted {
            job_ids: second, ..
        },
    ) = (first, second)
    else {
        panic!("both deliveries are new");
    };
    assert_eq!(first.len(), 2);
    assert_eq!(
        second,
        vec![first[1]],
        "the flush job was debounced, not added"
    );
    let flushed = store.job(first[1]).await.unwrap().unwrap();
    assert_eq!(flushed.payload, json!({"n": 2}));
    assert_eq!(store.jobs(&JobFilter::default()).await.unwrap().len(), 2);
}

async fn concurrent_accepts_store_each_request_once(store: Store) {
    // 150 distinct deliveries and 50 repeats of one delivery, all at once.
    let mut tasks = Vec::new();
    for n in 0..200 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let key = if n % 4 == 0 {
                "same".to_owned()
            } else {
                format!("k-{n}")
            };
            let outcome = store
                .accept(inbound("load", &key), vec![job("q", &key, n)])
                .await
                .unwrap();
            (key, outcome)
        }));
    }
    let mut accepted: HashMap<String, i64> = HashMap::new();
    let mut duplicates_of_same = HashSet::new();
    for task in tasks {
        let (key, outcome) = task.await.unwrap();
        match outcome {
            Acceptance::Accepted {
                inbox_id, job_ids, ..
            } => {
                assert_eq!(job_ids.len(), 1);
                assert!(accepted.insert(key, inbox_id).is_none(), "accepted twice");
            }
            Acceptance::Duplicate { inbox_id, .. } => {
                assert_eq!(key, "same");
                duplicates_of_same.insert(inbox_id);
            }
        }
    }
    assert_eq!(accepted.len(), 151);
    assert_eq!(duplicates_of_same.len(), 1, "every repeat names one row");
    assert!(duplicates_of_same.contains(&accepted["same"]));
    for (key, inbox_id) in &accepted {
        let stored = store.inbox_by_dedupe("load", key).await.unwrap().unwrap();
        assert_eq!(stored.id, *inbox_id);
    }
    let filter = JobFilter {
        limit: Some(1_000),
        ..JobFilter::default()
    };
    let jobs = store.jobs(&filter).await.unwrap();
    assert_eq!(jobs.len(), 151, "a repeat enqueues nothing");
}

async fn accept_batch_mixes_new_and_duplicate(store: Store) {
    store
        .accept(inbound("s", "a"), vec![job("q", "k", 1)])
        .await
        .unwrap();
    let outcomes = store
        .accept_batch(vec![
            (inbound("s", "a"), vec![job("q", "k", 2)]),
            (inbound("s", "b"), vec![job("q", "k", 3)]),
            (inbound("s", "b"), vec![job("q", "k", 4)]),
        ])
        .await
        .unwrap();
    assert!(matches!(outcomes[0], Acceptance::Duplicate { .. }));
    assert!(matches!(&outcomes[1], Acceptance::Accepted { job_ids, .. } if job_ids.len() == 1));
    assert!(matches!(outcomes[2], Acceptance::Duplicate { .. }));
    let payloads: HashSet<i64> = store
        .jobs(&JobFilter::default())
        .await
        .unwrap()
        .iter()
        .map(|j| j.payload["n"].as_i64().unwrap())
        .collect();
    assert_eq!(payloads, HashSet::from([1, 3]));
}

/// Only new rows, one of them twice: the repeat answers as a duplicate of the
/// first, and only the first's jobs are stored.
async fn accept_batch_repeat_inside_a_new_batch(store: Store) {
    let outcomes = store
        .accept_batch(vec![
            (inbound("s", "x"), vec![job("q", "x", 1), job("q", "x", 2)]),
            (inbound("s", "y"), vec![job("q", "y", 3)]),
            (inbound("s", "x"), vec![job("q", "x", 4)]),
        ])
        .await
        .unwrap();
    let Acceptance::Accepted {
        inbox_id: x,
        job_ids: x_jobs,
        ..
    } = &outcomes[0]
    else {
        panic!("{outcomes:?}")
    };
    let Acceptance::Accepted {
        inbox_id: y,
        job_ids: y_jobs,
        ..
    } = &outcomes[1]
    else {
        panic!("{outcomes:?}")
    };
    assert_eq!(
        outcomes[2],
        Acceptance::Duplicate {
            inbox_id: *x,
            response: None
        }
    );
    assert_ne!(x, y);
    assert_eq!(store.inbox(*x).await.unwrap().unwrap().dedupe_key, "x");
    assert_eq!(store.inbox(*y).await.unwrap().unwrap().dedupe_key, "y");
    let mut stored = Vec::new();
    for id in x_jobs.iter().chain(y_jobs) {
        let job = store.job(*id).await.unwrap().unwrap();
        stored.push((job.inbox_id.unwrap(), job.payload["n"].as_i64().unwrap()));
    }
    assert_eq!(stored, vec![(*x, 1), (*x, 2), (*y, 3)]);
    let total = total_jobs(&store).await;
    assert_eq!(total, 3);
}

/// A batch bigger than one multi-row statement (SQLite chunks at 32,766 bound
/// parameters: 3,640 job rows), with repeats inside the batch and of an earlier
/// batch (which has a recorded response), and debounced jobs between plain ones.
async fn accept_batch_large_mixed_batch_keeps_order_and_answers(store: Store) {
    let Acceptance::Accepted {
        inbox_id: old_id, ..
    } = store
        .accept(inbound("s", "old"), vec![job("q", "old", 0)])
        .await
        .unwrap()
    else {
        panic!("first delivery not accepted")
    };
    store
        .set_inbox_response(old_id, &json!({"ticket": 7}))
        .await
        .unwrap();
    let pending = store
        .enqueue(
            job("q", "flush", 0)
                .unique_key("flush:1")
                .run_at(now_ms() + 60_000),
        )
        .await
        .unwrap();

    let n = 2_500;
    let mut batch = Vec::new();
    for i in 0..n {
        let key = format!("k{i}");
        let mut jobs = vec![job("q", &key, 2 * i), job("q", &key, 2 * i + 1)];
        if i == 100 {
            jobs.insert(1, job("q", "flush", -1).unique_key("flush:1"));
        }
        batch.push((inbound("s", &key), jobs));
        if i == 10 {
            batch.push((inbound("s", "old"), vec![job("q", "old", -2)]));
        }
        if i == 20 {
            batch.push((inbound("s", "k5"), vec![job("q", "k5", -3)]));
        }
    }
    let outcomes = store.accept_batch(batch.clone()).await.unwrap();
    assert_eq!(outcomes.len(), batch.len());
    let stored_jobs: HashMap<i64, Job> = store
        .jobs(&JobFilter {
            limit: Some(10_000),
            ..JobFilter::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|j| (j.id, j))
        .collect();

    let mut all_ids = Vec::new();
    for ((inbound, jobs), outcome) in batch.iter().zip(&outcomes) {
        match (inbound.dedupe_key.as_str(), outcome) {
            ("old", Acceptance::Duplicate { inbox_id, response }) => {
                assert_eq!(*inbox_id, old_id);
                assert_eq!(response.as_ref(), Some(&json!({"ticket": 7})));
            }
            ("k5", Acceptance::Duplicate { inbox_id, response }) => {
                let first = store.inbox_by_dedupe("s", "k5").await.unwrap().unwrap();
                assert_eq!(*inbox_id, first.id);
                assert_eq!(*response, None);
                assert_eq!(jobs[0].payload["n"], -3);
            }
            (
                key,
                Acceptance::Accepted {
                    inbox_id, job_ids, ..
                },
            ) => {
                assert_eq!(job_ids.len(), jobs.len(), "{key}");
                let stored = store.inbox(*inbox_id).await.unwrap().unwrap();
                assert_eq!(stored.dedupe_key, key);
                assert_eq!(stored.body, inbound.body);
                assert_eq!(stored.headers, inbound.headers);
                for (id, expected) in job_ids.iter().zip(jobs) {
                    let stored = &stored_jobs[id];
                    assert_eq!(stored.payload, expected.payload, "job {id} of {key}");
                    assert_eq!(stored.ordering_key, expected.ordering_key);
                    if expected.unique_key.is_some() {
                        // Debounced onto the pending job, which now runs at once.
                        assert_eq!(*id, pending);
                        assert!(stored.run_at <= now_ms());
                    } else {
                        assert_eq!(stored.inbox_id, Some(*inbox_id));
                        all_ids.push(*id);
                    }
                }
            }
            (key, other) => panic!("{key}: unexpected {other:?}"),
        }
    }
    // Plain jobs got ids in enqueue order, so per-key ordering follows the batch order.
    assert_eq!(all_ids.len(), 2 * n as usize);
    assert!(all_ids.windows(2).all(|w| w[0] < w[1]), "ids not ascending");
    let total = total_jobs(&store).await;
    assert_eq!(total, 2 + 2 * n);
}

async fn claim_takes_one_job_per_key_in_order(store: Store) {
    let a1 = store.enqueue(job("q", "a", 1)).await.unwrap();
    let a2 = store.enqueue(job("q", "a", 2)).await.unwrap();
    let b1 = store.enqueue(job("q", "b", 1)).await.unwrap();
    let other_queue = store.enqueue(job("other", "c", 1)).await.unwrap();

    let claimed = store.claim("q", "w1", 60_000, 10).await.unwrap();
    let ids: Vec<i64> = claimed.iter().map(|j| j.id).collect();
    assert_eq!(ids, vec![a1, b1]);
    for j in &claimed {
        assert_eq!(j.status, JobStatus::Running);
        assert_eq!(j.attempts, 1);
        assert_eq!(j.locked_by.as_deref(), Some("w1"));
        assert!(j.locked_until.unwrap() > now_ms());
    }
    // a2 waits for a1, even for another worker.
    assert!(claim_ids(&store, "q", "w2", 10).await.is_empty());
    assert!(store.complete(&claimed[0]).await.unwrap());
    assert_eq!(claim_ids(&store, "q", "w2", 10).await, vec![a2]);
    assert_eq!(
        claim_ids(&store, "other", "w2", 10).await,
        vec![other_queue]
    );
    let done = store.job(a1).await.unwrap().unwrap();
    assert_eq!(done.status, JobStatus::Succeeded);
    assert!(done.finished_at.is_some());
}

async fn different_keys_run_in_parallel(store: Store) {
    let mut ids = Vec::new();
    for k in 0..5 {
        ids.push(
            store
                .enqueue(job("q", &format!("key-{k}"), 0))
                .await
                .unwrap(),
        );
    }
    let first = claim_ids(&store, "q", "w1", 3).await;
    let second = claim_ids(&store, "q", "w2", 3).await;
    assert_eq!(first, ids[..3].to_vec());
    assert_eq!(second, ids[3..].to_vec());
    let counts: HashMap<JobStatus, i64> = store.job_counts().await.unwrap().into_iter().collect();
    assert_eq!(counts[&JobStatus::Running], 5);
}

async fn concurrent_claimers_keep_per_key_order(store: Store) {
    const KEYS: i64 = 50;
    const PER_KEY: i64 = 10;
    let mut expected: HashMap<String, Vec<i64>> = HashMap::new();
    for round in 0..PER_KEY {
        for k in 0..KEYS {
            let key = format!("conv:{k}");
            let id = store.enqueue(job("q", &key, round)).await.unwrap();
            expected.entry(key).or_default().push(id);
        }
    }
    // Executions per key, and the keys currently running (to catch overlap).
    let executed: Arc<Mutex<HashMap<String, Vec<i64>>>> = Arc::default();
    let running: Arc<Mutex<HashSet<String>>> = Arc::default();
    let overlaps: Arc<Mutex<Vec<String>>> = Arc::default();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut workers = Vec::new();
    for w in 0..4 {
        let store = store.clone();
        let (executed, running, overlaps) = (executed.clone(), running.clone(), overlaps.clone());
        workers.push(tokio::spawn(async move {
            let worker = format!("w{w}");
            loop {
                let jobs = store.claim("q", &worker, 60_000, 8).await.unwrap();
                if jobs.is_empty() {
                    let counts: HashMap<JobStatus, i64> =
                        store.job_counts().await.unwrap().into_iter().collect();
                    if counts[&JobStatus::Pending] + counts[&JobStatus::Running] == 0 {
                        return;
                    }
                    assert!(Instant::now() < deadline, "claimers did not finish");
                    tokio::task::yield_now().await;
                    continue;
                }
                for j in jobs {
                    if !running.lock().unwrap().insert(j.ordering_key.clone()) {
                        overlaps.lock().unwrap().push(j.ordering_key.clone());
                    }
                    executed
                        .lock()
                        .unwrap()
                        .entry(j.ordering_key.clone())
                        .or_default()
                        .push(j.id);
                    tokio::task::yield_now().await;
                    running.lock().unwrap().remove(&j.ordering_key);
                    assert!(store.complete(&j).await.unwrap());
                }
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    assert!(
        overlaps.lock().unwrap().is_empty(),
        "two jobs of one key ran at once"
    );
    let executed = executed.lock().unwrap();
    assert_eq!(executed.len(), KEYS as usize);
    for (key, ids) in executed.iter() {
        assert_eq!(ids, &expected[key], "order of {key}");
    }
}

async fn lease_expiry_reclaims_job(store: Store) {
    let id = store.enqueue(job("q", "k", 1)).await.unwrap();
    let later = store.enqueue(job("q", "k", 2)).await.unwrap();
    // A worker claims with a 1 ms lease and "crashes".
    let crashed = store.claim("q", "crashed", 1, 1).await.unwrap();
    assert_eq!(crashed[0].id, id);
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.reclaim_expired().await.unwrap() == 0 {
        assert!(Instant::now() < deadline, "lease never expired");
        tokio::task::yield_now().await;
    }
    let reclaimed = store.job(id).await.unwrap().unwrap();
    assert_eq!(reclaimed.status, JobStatus::Pending);
    assert_eq!(reclaimed.attempts, 1);
    assert!(reclaimed.last_error.unwrap().contains("crashed"));
    // The reclaimed job runs before the later one of its key.
    assert_eq!(claim_ids(&store, "q", "w2", 5).await, vec![id]);
    let again = store.job(id).await.unwrap().unwrap();
    assert_eq!(again.attempts, 2);
    assert!(store.complete(&again).await.unwrap());
    assert_eq!(claim_ids(&store, "q", "w2", 5).await, vec![later]);
}

/// Instances sharing a PostgreSQL store time leases by the database's clock:
/// one whose host clock runs 35 s ahead does not take a 30 s lease from a
/// live worker, nor hand out leases that end early for the others. (A SQLite
/// store has one host, and its process's clock.)
async fn leases_are_timed_by_the_shared_clock(store: Store) {
    let id = store.enqueue(job("q", "k", 1)).await.unwrap();
    let running = store.claim("q", "live", 30_000, 1).await.unwrap().remove(0);
    assert_eq!(running.id, id);
    let ahead = store.with_clock_skew(35_000);
    let reclaimed = ahead.reclaim_expired().await.unwrap();
    let job = store.job(id).await.unwrap().unwrap();
    if store.backend() == store::Backend::Postgres {
        assert_eq!(reclaimed, 0, "a live lease is kept");
        assert_eq!(job.status, JobStatus::Running);
        // A heartbeat from the fast host leases by the database's clock too.
        assert!(ahead.extend_lease(&running, 30_000).await.unwrap());
        let leased = store.job(id).await.unwrap().unwrap().locked_until.unwrap();
        assert!(
            leased < now_ms() + 31_000,
            "the lease ends 30 s after the database's now, not the host's"
        );
    } else {
        assert_eq!(reclaimed, 1, "one host, one clock");
        assert_eq!(job.status, JobStatus::Pending);
    }
}

async fn stale_worker_is_fenced_off(store: Store) {
    let id = store.enqueue(job("q", "k", 1)).await.unwrap();
    let stale = store.claim("q", "old", 1, 1).await.unwrap().remove(0);
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.reclaim_expired().await.unwrap() == 0 {
        assert!(Instant::now() < deadline);
        tokio::task::yield_now().await;
    }
    let fresh = store.claim("q", "new", 60_000, 1).await.unwrap().remove(0);
    assert_eq!(fresh.id, id);
    assert!(!store.extend_lease(&stale, 60_000).await.unwrap());
    assert!(!store.complete(&stale).await.unwrap());
    assert!(!store.retry_later(&stale, now_ms(), "x").await.unwrap());
    assert!(!store.bury(&stale, "x").await.unwrap());
    assert!(!store.release(&stale).await.unwrap());
    assert_eq!(
        store.job(id).await.unwrap().unwrap().locked_by.as_deref(),
        Some("new")
    );
    assert!(store.extend_lease(&fresh, 60_000).await.unwrap());
    assert!(store.complete(&fresh).await.unwrap());
    assert!(
        !store.complete(&fresh).await.unwrap(),
        "completing twice is fenced too"
    );
}

async fn retry_backoff_blocks_later_jobs_of_its_key(store: Store) {
    let first = store.enqueue(job("q", "k", 1)).await.unwrap();
    let second = store.enqueue(job("q", "k", 2)).await.unwrap();
    let free = store.enqueue(job("q", "other", 1)).await.unwrap();
    let claimed = store.claim("q", "w", 60_000, 1).await.unwrap().remove(0);
    assert_eq!(claimed.id, first);
    assert!(
        store
            .retry_later(&claimed, now_ms() + 3_600_000, "GLPI down")
            .await
            .unwrap()
    );
    let backed_off = store.job(first).await.unwrap().unwrap();
    assert_eq!(backed_off.status, JobStatus::Pending);
    assert_eq!(backed_off.last_error.as_deref(), Some("GLPI down"));
    // `second` is due but must wait for `first`; the other key is free.
    assert_eq!(claim_ids(&store, "q", "w", 10).await, vec![free]);
    assert_eq!(
        store.outstanding().await.unwrap(),
        1,
        "only the running `free` job"
    );
    assert_eq!(
        store.job(second).await.unwrap().unwrap().status,
        JobStatus::Pending
    );
}

async fn scheduled_future_job_does_not_block(store: Store) {
    let future = store
        .enqueue(job("q", "k", 1).run_at(now_ms() + 3_600_000))
        .await
        .unwrap();
    let now = store.enqueue(job("q", "k", 2)).await.unwrap();
    assert_eq!(claim_ids(&store, "q", "w", 10).await, vec![now]);
    assert_eq!(
        store.next_run_at("q").await.unwrap(),
        store.job(future).await.unwrap().map(|j| j.run_at)
    );
    assert_eq!(
        store.queues_with_work().await.unwrap(),
        vec!["q".to_string()]
    );
}

async fn running_later_job_blocks_earlier_one_falling_due(store: Store) {
    // A scheduled job falling due while a later job of its key runs must wait.
    // Due far enough ahead that the enqueue and claim below come first on a
    // busy machine.
    let scheduled = store
        .enqueue(job("q", "k", 1).run_at(now_ms() + 2_000))
        .await
        .unwrap();
    let now = store.enqueue(job("q", "k", 2)).await.unwrap();
    let running = store.claim("q", "w", 60_000, 10).await.unwrap().remove(0);
    assert_eq!(running.id, now);
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.job(scheduled).await.unwrap().unwrap().run_at > now_ms() {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(claim_ids(&store, "q", "w", 10).await.is_empty());
    assert!(store.complete(&running).await.unwrap());
    assert_eq!(claim_ids(&store, "q", "w", 10).await, vec![scheduled]);
}

async fn release_does_not_count_the_attempt(store: Store) {
    let id = store.enqueue(job("q", "k", 1)).await.unwrap();
    let claimed = store.claim("q", "w", 60_000, 1).await.unwrap().remove(0);
    assert!(claimed.is_first_run());
    assert!(store.release(&claimed).await.unwrap());
    let released = store.job(id).await.unwrap().unwrap();
    assert_eq!(
        (released.status, released.attempts, released.locked_by),
        (JobStatus::Pending, 0, None)
    );
    let again = store.claim("q", "w", 60_000, 1).await.unwrap().remove(0);
    assert_eq!((again.id, again.attempts), (id, 1));
    assert!(
        !again.is_first_run(),
        "the released run may have done part of the work"
    );
}

async fn unique_key_debounces_pending_job(store: Store) {
    let t = now_ms() + 60_000;
    let first = store
        .enqueue(job("q", "chat:1", 1).run_at(t).unique_key("flush:chat:1"))
        .await
        .unwrap();
    let second = store
        .enqueue(
            job("q", "chat:1", 2)
                .run_at(t + 5_000)
                .unique_key("flush:chat:1"),
        )
        .await
        .unwrap();
    assert_eq!(first, second);
    let stored = store.job(first).await.unwrap().unwrap();
    assert_eq!(
        (stored.run_at, stored.payload.clone()),
        (t + 5_000, json!({"n": 2}))
    );
    assert_eq!(store.jobs(&JobFilter::default()).await.unwrap().len(), 1);

    // Once it runs, the same key makes a new job.
    let due = store
        .enqueue(job("q", "chat:1", 3).run_at(0).unique_key("flush:chat:1"))
        .await
        .unwrap();
    assert_eq!(due, first);
    let running = store.claim("q", "w", 60_000, 1).await.unwrap().remove(0);
    assert_eq!(running.id, first);
    let third = store
        .enqueue(job("q", "chat:1", 4).unique_key("flush:chat:1"))
        .await
        .unwrap();
    assert_ne!(third, first);

    // Concurrent debounces of one key make exactly one pending job.
    let mut tasks = Vec::new();
    for n in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .enqueue(job("q", "chat:2", n).unique_key("flush:chat:2"))
                .await
                .unwrap()
        }));
    }
    let ids: HashSet<i64> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(ids.len(), 1);
}

/// A periodic job scheduled at each start-up (`keep_earlier`): a later
/// start moves it earlier, never later, through `enqueue` and `accept` alike.
async fn keep_earlier_debounce_never_moves_a_job_later(store: Store) {
    let t = now_ms() + 60_000;
    let sweep = |n, at| {
        job("q", "sweep", n)
            .run_at(at)
            .unique_key("sweep")
            .keep_earlier()
    };
    let first = store.enqueue(sweep(1, t)).await.unwrap();
    let later = store.enqueue(sweep(2, t + 30_000)).await.unwrap();
    assert_eq!(later, first, "debounced, not added");
    let stored = store.job(first).await.unwrap().unwrap();
    assert_eq!(stored.run_at, t, "not moved later");
    assert_eq!(stored.payload, json!({"n": 2}));

    let Acceptance::Accepted { job_ids, .. } = store
        .accept(inbound("src", "d-1"), vec![sweep(3, t + 90_000)])
        .await
        .unwrap()
    else {
        panic!("a new delivery");
    };
    assert_eq!(job_ids, vec![first]);
    assert_eq!(store.job(first).await.unwrap().unwrap().run_at, t);

    store.enqueue(sweep(4, t - 20_000)).await.unwrap();
    assert_eq!(
        store.job(first).await.unwrap().unwrap().run_at,
        t - 20_000,
        "moved earlier"
    );
    // Without keep_earlier the same key moves later, as before.
    store
        .enqueue(job("q", "sweep", 5).run_at(t).unique_key("sweep"))
        .await
        .unwrap();
    assert_eq!(store.job(first).await.unwrap().unwrap().run_at, t);
    assert_eq!(store.jobs(&JobFilter::default()).await.unwrap().len(), 1);
}

/// A job waiting on a retry (backoff or `Retry-After`) keeps its retry time when
/// the same key is debounced with an earlier `run_at`: the new payload waits too.
async fn debounce_keeps_a_retry_waiting(store: Store) {
    let first = store
        .enqueue(job("q", "sync:1", 1).unique_key("sync:1"))
        .await
        .unwrap();
    let running = store.claim("q", "w", 60_000, 1).await.unwrap().remove(0);
    assert_eq!(running.id, first);
    let retry_at = now_ms() + 600_000;
    assert!(
        store
            .retry_later(&running, retry_at, "429, Retry-After: 600")
            .await
            .unwrap()
    );

    // A change arrives: debounced onto the waiting job, which must still wait.
    let second = store
        .enqueue(job("q", "sync:1", 2).unique_key("sync:1"))
        .await
        .unwrap();
    assert_eq!(second, first, "debounced onto the waiting job");
    let stored = store.job(first).await.unwrap().unwrap();
    assert_eq!(stored.payload, json!({"n": 2}));
    assert_eq!(stored.run_at, retry_at, "the retry time is kept");
    assert!(
        store.claim("q", "w", 60_000, 1).await.unwrap().is_empty(),
        "nothing is due before the retry time"
    );

    // A later run_at than the retry's still moves it later.
    let later = retry_at + 60_000;
    store
        .enqueue(job("q", "sync:1", 3).run_at(later).unique_key("sync:1"))
        .await
        .unwrap();
    assert_eq!(store.job(first).await.unwrap().unwrap().run_at, later);
}

async fn dead_revive_purge(store: Store) {
    let a = store
        .enqueue(job("q", "a", 1).max_attempts(3))
        .await
        .unwrap();
    let b = store.enqueue(job("q", "b", 1)).await.unwrap();
    for j in store.claim("q", "w", 60_000, 10).await.unwrap() {
        assert!(store.bury(&j, &format!("rejected {}", j.id)).await.unwrap());
    }
    let dead = store.job(a).await.unwrap().unwrap();
    assert_eq!(dead.status, JobStatus::Dead);
    assert_eq!(dead.last_error, Some(format!("rejected {a}")));
    assert_eq!(dead.max_attempts, 3);
    // Dead jobs do not block their key.
    let after = store.enqueue(job("q", "a", 2)).await.unwrap();
    assert_eq!(claim_ids(&store, "q", "w", 10).await, vec![after]);

    assert_eq!(store.revive_dead(Some(a)).await.unwrap(), 1);
    let revived = store.job(a).await.unwrap().unwrap();
    assert_eq!((revived.status, revived.attempts), (JobStatus::Pending, 0));
    assert_eq!(
        store.revive_dead(Some(a)).await.unwrap(),
        0,
        "no longer dead"
    );
    assert_eq!(store.purge_dead().await.unwrap(), 1);
    assert!(store.job(b).await.unwrap().is_none());
    assert!(store.job(a).await.unwrap().is_some());

    // Revive all.
    let claimed = store.claim("q", "w", 60_000, 10).await.unwrap();
    assert!(
        claimed.is_empty(),
        "`a` waits for running `after` of its key"
    );
    let running_after = store.job(after).await.unwrap().unwrap();
    assert!(store.bury(&running_after, "x").await.unwrap());
    let a_job = store.claim("q", "w", 60_000, 10).await.unwrap().remove(0);
    assert!(store.bury(&a_job, "y").await.unwrap());
    assert_eq!(store.revive_dead(None).await.unwrap(), 2);
}

async fn job_listing_and_counts(store: Store) {
    for n in 0..3 {
        store.enqueue(job("glpi", "k1", n)).await.unwrap();
    }
    store
        .enqueue(NewJob::new("itop", "other", "k2", json!({})))
        .await
        .unwrap();
    store.claim("glpi", "w", 60_000, 1).await.unwrap();
    let running = store
        .jobs(&JobFilter {
            status: Some(JobStatus::Running),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(running.len(), 1);
    let by_kind = store
        .jobs(&JobFilter {
            kind: Some("other".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(by_kind.len(), 1);
    assert_eq!(by_kind[0].queue, "itop");
    let limited = store
        .jobs(&JobFilter {
            ordering_key: Some("k1".into()),
            limit: Some(2),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(limited.len(), 2);
    assert!(limited[0].id > limited[1].id, "newest first");
    let counts: HashMap<JobStatus, i64> = store.job_counts().await.unwrap().into_iter().collect();
    assert_eq!(counts[&JobStatus::Pending], 3);
    assert_eq!(counts[&JobStatus::Running], 1);
    assert_eq!(counts[&JobStatus::Dead], 0);
    assert_eq!(
        store.queues_with_work().await.unwrap(),
        vec!["glpi".to_string(), "itop".to_string()]
    );
}

async fn links_upsert_and_lookup(store: Store) {
    let pending = store
        .put_link(&NewLink {
            kind: "ticket".into(),
            source_system: "chatwoot".into(),
            source_id: "conv:7".into(),
            target_system: "glpi".into(),
            target_id: None,
            state: LinkState::Pending,
            data: json!({"marker": "tb-ref-7"}),
        })
        .await
        .unwrap();
    assert_eq!(pending.state, LinkState::Pending);
    let linked = store
        .put_link(&NewLink {
            kind: "ticket".into(),
            source_system: "chatwoot".into(),
            source_id: "conv:7".into(),
            target_system: "glpi".into(),
            target_id: Some("123".into()),
            state: LinkState::Linked,
            data: json!({"marker": "tb-ref-7", "url": "x"}),
        })
        .await
        .unwrap();
    assert_eq!(linked.id, pending.id, "upsert keeps the row");
    assert_eq!(linked.created_at, pending.created_at);
    let found = store
        .link("ticket", "chatwoot", "conv:7", "glpi")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found, linked);
    assert!(
        store
            .link("ticket", "chatwoot", "conv:7", "itop")
            .await
            .unwrap()
            .is_none()
    );
    let back = store.links_to("ticket", "glpi", "123").await.unwrap();
    assert_eq!(back, vec![linked.clone()]);
    let filtered = store
        .links(&LinkFilter {
            state: Some(LinkState::Linked),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(filtered.len(), 1);
    assert!(
        store
            .links(&LinkFilter {
                kind: Some("contact".into()),
                ..Default::default()
            })
            .await
            .unwrap()
            .is_empty()
    );
    store.delete_link(linked.id).await.unwrap();
    assert!(
        store
            .link("ticket", "chatwoot", "conv:7", "glpi")
            .await
            .unwrap()
            .is_none()
    );
}

async fn own_writes_are_recognised(store: Store) {
    assert!(
        !store
            .is_own_write("glpi", "Ticket/5", "sha:abc")
            .await
            .unwrap()
    );
    store
        .remember_write("glpi", "Ticket/5", "sha:abc")
        .await
        .unwrap();
    store
        .remember_write("glpi", "Ticket/5", "sha:abc")
        .await
        .unwrap();
    assert!(
        store
            .is_own_write("glpi", "Ticket/5", "sha:abc")
            .await
            .unwrap()
    );
    assert!(
        !store
            .is_own_write("glpi", "Ticket/5", "sha:def")
            .await
            .unwrap()
    );
    assert!(
        !store
            .is_own_write("itop", "Ticket/5", "sha:abc")
            .await
            .unwrap()
    );
    // Markers of one kind only, by their fingerprint's start (taken
    // literally: `_` and `%` are not wildcards).
    for marker in ["state:1:x", "state:2:y", "stateX1:z", "st_te:1:w"] {
        store
            .remember_write("itop", "Ticket/6", marker)
            .await
            .unwrap();
    }
    assert_eq!(
        store
            .forget_writes_starting_before("state:", now_ms() - 60_000)
            .await
            .unwrap(),
        0,
        "recent markers are kept"
    );
    assert_eq!(
        store
            .forget_writes_starting_before("state:", now_ms() + 1)
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        store
            .forget_writes_starting_before("st_te:", now_ms() + 1)
            .await
            .unwrap(),
        1
    );
    assert!(
        store
            .is_own_write("itop", "Ticket/6", "stateX1:z")
            .await
            .unwrap()
    );
    assert!(
        store
            .is_own_write("glpi", "Ticket/5", "sha:abc")
            .await
            .unwrap()
    );
    assert_eq!(store.forget_writes_before(now_ms() + 1).await.unwrap(), 2);
    assert!(
        !store
            .is_own_write("glpi", "Ticket/5", "sha:abc")
            .await
            .unwrap()
    );
    // One marker is taken once.
    store
        .remember_write("glpi", "Ticket/6", "sha:abc")
        .await
        .unwrap();
    assert!(
        store
            .forget_write("glpi", "Ticket/6", "sha:abc")
            .await
            .unwrap()
    );
    assert!(
        !store
            .forget_write("glpi", "Ticket/6", "sha:abc")
            .await
            .unwrap()
    );
    assert!(
        !store
            .is_own_write("glpi", "Ticket/6", "sha:abc")
            .await
            .unwrap()
    );
}

async fn cursors_and_kv(store: Store) {
    assert_eq!(store.cursor("glpi:followups").await.unwrap(), None);
    store
        .set_cursor("glpi:followups", "2024-01-01T00:00:00Z")
        .await
        .unwrap();
    store
        .set_cursor("glpi:followups", "2024-01-02T00:00:00Z")
        .await
        .unwrap();
    assert_eq!(
        store.cursor("glpi:followups").await.unwrap().as_deref(),
        Some("2024-01-02T00:00:00Z")
    );

    assert_eq!(store.kv_get("merge", "chat:1").await.unwrap(), None);
    store
        .kv_put("merge", "chat:1", &json!({"parts": ["a"]}))
        .await
        .unwrap();
    store
        .kv_put("merge", "chat:1", &json!({"parts": ["a", "b"]}))
        .await
        .unwrap();
    store.kv_put("merge", "chat:2", &json!(1)).await.unwrap();
    store.kv_put("status", "chat:1", &json!("x")).await.unwrap();
    assert_eq!(
        store.kv_get("merge", "chat:1").await.unwrap(),
        Some(json!({"parts": ["a", "b"]}))
    );
    assert_eq!(
        store.kv_list("merge").await.unwrap(),
        vec![
            ("chat:1".into(), json!({"parts": ["a", "b"]})),
            ("chat:2".into(), json!(1))
        ]
    );
    store.kv_delete("merge", "chat:1").await.unwrap();
    assert_eq!(store.kv_get("merge", "chat:1").await.unwrap(), None);
    assert_eq!(
        store.kv_get("status", "chat:1").await.unwrap(),
        Some(json!("x"))
    );
}

async fn claims_are_held_by_one_owner_until_released_or_expired(store: Store) {
    let long = Duration::from_secs(60);
    assert!(
        store
            .claim_key("claim.person", "glpi:phone:+551", "a", long)
            .await
            .unwrap()
    );
    // Another owner is refused while the lease runs; the holder may claim again.
    assert!(
        !store
            .claim_key("claim.person", "glpi:phone:+551", "b", long)
            .await
            .unwrap()
    );
    assert!(
        store
            .claim_key("claim.person", "glpi:phone:+551", "a", long)
            .await
            .unwrap()
    );
    // Other keys and namespaces are independent.
    assert!(
        store
            .claim_key("claim.person", "glpi:phone:+552", "b", long)
            .await
            .unwrap()
    );
    assert!(
        store
            .claim_key("claim.other", "glpi:phone:+551", "b", long)
            .await
            .unwrap()
    );
    // Only the holder releases; then anyone may claim.
    assert!(
        !store
            .release_key("claim.person", "glpi:phone:+551", "b")
            .await
            .unwrap()
    );
    assert!(
        !store
            .claim_key("claim.person", "glpi:phone:+551", "b", long)
            .await
            .unwrap()
    );
    assert!(
        store
            .release_key("claim.person", "glpi:phone:+551", "a")
            .await
            .unwrap()
    );
    assert!(
        !store
            .release_key("claim.person", "glpi:phone:+551", "a")
            .await
            .unwrap()
    );
    assert!(
        store
            .claim_key("claim.person", "glpi:phone:+551", "b", long)
            .await
            .unwrap()
    );

    // A holder whose lease ran out (a crashed process) is taken over.
    assert!(
        store
            .claim_key("claim.person", "k", "crashed", Duration::from_millis(50))
            .await
            .unwrap()
    );
    assert!(
        !store
            .claim_key("claim.person", "k", "c", long)
            .await
            .unwrap()
    );
    tokio::time::sleep(Duration::from_millis(80)).await;
    assert!(
        store
            .claim_key("claim.person", "k", "c", long)
            .await
            .unwrap()
    );
    // The old holder can neither release nor renew what it lost.
    assert!(
        !store
            .release_key("claim.person", "k", "crashed")
            .await
            .unwrap()
    );
    assert!(
        !store
            .claim_key("claim.person", "k", "crashed", long)
            .await
            .unwrap()
    );
    assert!(
        !store
            .claim_key("claim.person", "k", "d", long)
            .await
            .unwrap()
    );
}

async fn concurrent_claims_have_one_winner(store: Store) {
    for round in 0..10 {
        let key = format!("phone:{round}");
        let attempts = (0..8).map(|owner| {
            let store = store.clone();
            let key = key.clone();
            tokio::spawn(async move {
                store
                    .claim_key(
                        "claim.person",
                        &key,
                        &format!("owner-{owner}"),
                        Duration::from_secs(60),
                    )
                    .await
                    .unwrap()
            })
        });
        let won = futures::future::join_all(attempts)
            .await
            .into_iter()
            .filter(|won| *won.as_ref().unwrap())
            .count();
        assert_eq!(won, 1, "round {round}");
    }
}

async fn audit_entries_newest_first(store: Store) {
    for n in 0..3 {
        store
            .audit(&NewAudit {
                job_id: Some(n),
                system: "glpi".into(),
                action: "create".into(),
                object_key: format!("Ticket/{n}"),
                detail: json!({"n": n}),
            })
            .await
            .unwrap();
    }
    let entries = store.audit_entries(2).await.unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0].object_key, "Ticket/2");
    assert_eq!(entries[1].detail, json!({"n": 1}));
}

async fn concurrent_claimers_never_start_a_job_falling_due_beside_a_running_one(store: Store) {
    // Per key: `early` falls due at a staggered moment, `late` is due now. Whoever
    // claims `late` keeps it running, so `early` must never be claimed as well. With
    // claims spread over the same period, some `late` claims are in flight exactly
    // when their `early` falls due: the race the claim lock exists for.
    const KEYS: i64 = 300;
    let start = now_ms();
    let last_due = start + 150;
    for k in 0..KEYS {
        let key = format!("k{k}");
        store
            .enqueue(job("q", &key, 0).run_at(start + 20 + k * 130 / KEYS))
            .await
            .unwrap();
        store.enqueue(job("q", &key, 1)).await.unwrap();
    }
    let total = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut claimers = Vec::new();
    for w in 0..8 {
        let store = store.clone();
        let total = total.clone();
        claimers.push(tokio::spawn(async move {
            let mut claimed = Vec::new();
            let mut rounds_after_due = 0;
            // Keep looking until every `late` job is taken and all `early` ones are due.
            while rounds_after_due < 20
                || total.load(std::sync::atomic::Ordering::SeqCst) < KEYS as usize
            {
                if now_ms() > last_due {
                    rounds_after_due += 1;
                }
                assert!(Instant::now() < deadline, "claimers did not finish");
                let jobs = store.claim("q", &format!("w{w}"), 60_000, 1).await.unwrap();
                total.fetch_add(jobs.len(), std::sync::atomic::Ordering::SeqCst);
                claimed.extend(jobs);
            }
            claimed
        }));
    }
    let mut per_key: HashMap<String, usize> = HashMap::new();
    for c in claimers {
        for j in c.await.unwrap() {
            *per_key.entry(j.ordering_key).or_default() += 1;
        }
    }
    assert_eq!(per_key.len(), KEYS as usize);
    let doubled: Vec<_> = per_key.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        doubled.is_empty(),
        "keys with two running jobs: {doubled:?}"
    );
}

async fn audit_once_records_a_key_once(store: Store) {
    let entry = |job_id: i64| NewAudit {
        job_id: Some(job_id),
        system: "events".into(),
        action: "event.record".into(),
        object_key: "s:k1".into(),
        detail: json!({"job": job_id}),
    };
    assert!(
        store
            .audit_once("event.record:s:k1", &entry(1))
            .await
            .unwrap()
    );
    assert!(
        !store
            .audit_once("event.record:s:k1", &entry(2))
            .await
            .unwrap()
    );
    assert!(
        store
            .audit_once("event.record:s:k2", &entry(3))
            .await
            .unwrap()
    );
    // Plain audit lines have no key and never collide.
    store.audit(&entry(4)).await.unwrap();
    store.audit(&entry(5)).await.unwrap();
    let jobs: Vec<Option<i64>> = store
        .audit_entries(10)
        .await
        .unwrap()
        .iter()
        .map(|a| a.job_id)
        .collect();
    assert_eq!(jobs, vec![Some(5), Some(4), Some(3), Some(1)]);
}

fn claim_for(worker: &str) -> ClaimNow {
    ClaimNow {
        worker: worker.into(),
        lease_ms: 60_000,
    }
}

/// Jobs claimed at accept (SQLite files, through the writer thread) run under
/// the claimer's lease; a job whose key is busy, or that is not due, stays
/// pending, as do all jobs on stores that do not claim at accept.
async fn accept_claims_a_job_when_its_key_is_free(store: Store) {
    let claims_at_accept = store.groups_commits();
    let first = store
        .accept(
            inbound("web", "c1"),
            vec![job("glpi", "k", 1).claim_now(claim_for("w1"))],
        )
        .await
        .unwrap();
    let Acceptance::Accepted {
        job_ids, claimed, ..
    } = &first
    else {
        panic!("{first:?}")
    };
    let stored = store.job(job_ids[0]).await.unwrap().unwrap();
    if claims_at_accept {
        assert_eq!(claimed.len(), 1, "{first:?}");
        assert_eq!(claimed[0].id, job_ids[0]);
        assert_eq!(stored.status, JobStatus::Running);
        assert_eq!(stored.attempts, 1);
        assert_eq!(stored.locked_by.as_deref(), Some("w1"));
        assert!(stored.is_first_run());
        // Claimed, so no runner takes it again.
        assert!(claim_ids(&store, "glpi", "w2", 10).await.is_empty());
    } else {
        assert!(claimed.is_empty());
        assert_eq!(stored.status, JobStatus::Pending);
    }

    // Same key while the first runs (or waits): not claimed, pending behind it.
    let second = store
        .accept(
            inbound("web", "c2"),
            vec![job("glpi", "k", 2).claim_now(claim_for("w1"))],
        )
        .await
        .unwrap();
    let Acceptance::Accepted {
        job_ids: second_ids,
        claimed,
        ..
    } = &second
    else {
        panic!("{second:?}")
    };
    assert!(claimed.is_empty(), "{second:?}");
    let waiting = store.job(second_ids[0]).await.unwrap().unwrap();
    assert_eq!(waiting.status, JobStatus::Pending);
    assert_eq!(waiting.attempts, 0);

    // Not due yet: not claimed either.
    let later = store
        .accept(
            inbound("web", "c3"),
            vec![
                job("glpi", "other", 3)
                    .run_at(now_ms() + 60_000)
                    .claim_now(claim_for("w1")),
            ],
        )
        .await
        .unwrap();
    assert!(
        matches!(&later, Acceptance::Accepted { claimed, .. } if claimed.is_empty()),
        "{later:?}"
    );
}

async fn completion_tells_whether_a_job_of_the_key_is_pending(store: Store) {
    store.enqueue(job("q", "a", 1)).await.unwrap();
    store.enqueue(job("q", "a", 2)).await.unwrap();
    store.enqueue(job("q", "b", 3)).await.unwrap();
    let claimed = store.claim("q", "w", 60_000, 10).await.unwrap();
    assert_eq!(claimed.len(), 2, "one per key: {claimed:?}");
    let a = claimed.iter().find(|j| j.ordering_key == "a").unwrap();
    let b = claimed.iter().find(|j| j.ordering_key == "b").unwrap();
    let done_a = store.complete_job(a).await.unwrap();
    assert!(done_a.recorded);
    assert!(done_a.successor_pending, "a's second job waits");
    let done_b = store.complete_job(b).await.unwrap();
    assert!(done_b.recorded);
    if store.groups_commits() {
        assert!(!done_b.successor_pending, "nothing of key b is left");
    } else {
        assert!(
            done_b.successor_pending,
            "a store that cannot tell says yes"
        );
    }
    // A stale completion records nothing.
    assert!(!store.complete_job(b).await.unwrap().recorded);
}

/// The caller of an accept that claims gives up before the answer (a timeout,
/// a closed connection): the request is stored anyway, and the job it would have
/// started goes back to pending at once instead of waiting out its lease.
async fn a_job_claimed_for_a_caller_that_went_away_is_released(store: Store) {
    if !store.groups_commits() {
        // Elsewhere a dropped accept rolls back (or is done within the first
        // poll) and nothing is claimed at accept anyway.
        return;
    }
    // Polled exactly once (handed to the writer thread), then dropped; should the
    // writer answer within that poll, the caller did not go away: try another
    // request. (Not `timeout(Duration::ZERO, …)`: its timer fires at the next
    // tick of the clock, by which time the writer may well have answered.)
    let mut gone = None;
    for n in 0..50 {
        let key = format!("gone-{n}");
        let accept = store.accept(
            inbound("web", &key),
            vec![job("glpi", &key, n).claim_now(claim_for("w1"))],
        );
        if futures::FutureExt::now_or_never(accept).is_none() {
            gone = Some(key);
            break;
        }
    }
    let key = gone.expect("the writer answered every accept within its first poll");
    let deadline = Instant::now() + Duration::from_secs(20);
    let job = loop {
        let jobs = store
            .jobs(&JobFilter {
                ordering_key: Some(key.clone()),
                ..JobFilter::default()
            })
            .await
            .unwrap();
        if let [job] = jobs.as_slice()
            && job.status == JobStatus::Pending
        {
            break job.clone();
        }
        assert!(Instant::now() < deadline, "never pending: {jobs:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(job.attempts, 0, "{job:?}");
    assert!(job.locked_by.is_none(), "{job:?}");
    assert!(
        job.last_error
            .as_deref()
            .is_some_and(|e| e.contains("went away")),
        "{job:?}"
    );
    // Stored once, and a runner can take it now (the jobs of answered attempts
    // are running under w1 and stay so).
    assert_eq!(claim_ids(&store, "glpi", "w2", 10).await, vec![job.id]);
}

async fn retention_deletes_old_audit_lines_in_batches(store: Store) {
    for n in 0..3 {
        store
            .audit(&NewAudit {
                job_id: Some(n),
                system: "glpi".into(),
                action: "create".into(),
                object_key: format!("ticket:{n}"),
                detail: serde_json::json!({}),
            })
            .await
            .unwrap();
    }
    // None was written before a moment that precedes them all.
    assert_eq!(store.purge_audit(0, 100).await.unwrap(), 0);
    assert_eq!(store.audit_entries(10).await.unwrap().len(), 3);
    // All were written before a moment still to come: in batches.
    let cutoff = now_ms() + 60_000;
    assert_eq!(store.purge_audit(cutoff, 2).await.unwrap(), 2);
    assert_eq!(store.audit_entries(10).await.unwrap().len(), 1);
    assert_eq!(store.purge_audit(cutoff, 2).await.unwrap(), 1);
    assert!(store.audit_entries(10).await.unwrap().is_empty());
}

async fn retention_deletes_old_succeeded_jobs_in_batches(store: Store) {
    let mut ids = Vec::new();
    for n in 0..6 {
        ids.push(store.enqueue(job("q", &format!("k{n}"), n)).await.unwrap());
    }
    let mut claimed = store.claim("q", "w", 60_000, 10).await.unwrap();
    claimed.sort_by_key(|j| j.id);
    assert_eq!(claimed.len(), 6);
    // Four succeed, one is dead, one stays running; one more waits.
    for j in &claimed[..4] {
        assert!(store.complete(j).await.unwrap());
    }
    assert!(store.bury(&claimed[4], "rejected").await.unwrap());
    let pending = store.enqueue(job("q", "later", 9)).await.unwrap();

    // Nothing finished before a moment that precedes every completion.
    assert_eq!(store.purge_succeeded(0, i64::MAX, 100).await.unwrap(), 0);
    // Every job was created before a moment still to come.
    let cutoff = now_ms() + 60_000;
    assert_eq!(store.first_job_created_since(cutoff).await.unwrap(), None);
    assert_eq!(
        store.first_job_created_since(0).await.unwrap(),
        Some(ids[0])
    );
    // Only ids below the bound.
    assert_eq!(store.purge_succeeded(cutoff, ids[1], 100).await.unwrap(), 1);
    assert!(store.job(ids[0]).await.unwrap().is_none());
    assert!(store.job(ids[1]).await.unwrap().is_some());
    // Oldest first, in batches.
    assert_eq!(store.purge_succeeded(cutoff, i64::MAX, 2).await.unwrap(), 2);
    let left: Vec<bool> = futures::future::join_all(ids.iter().map(|id| {
        let store = store.clone();
        async move { store.job(*id).await.unwrap().is_some() }
    }))
    .await;
    assert_eq!(left, vec![false, false, false, true, true, true]);
    assert_eq!(store.purge_succeeded(cutoff, i64::MAX, 2).await.unwrap(), 1);
    assert_eq!(store.purge_succeeded(cutoff, i64::MAX, 2).await.unwrap(), 0);
    assert!(store.job(ids[3]).await.unwrap().is_none());
    assert_eq!(
        store.job(ids[4]).await.unwrap().unwrap().status,
        JobStatus::Dead
    );
    assert_eq!(
        store.job(ids[5]).await.unwrap().unwrap().status,
        JobStatus::Running
    );
    assert_eq!(
        store.job(pending).await.unwrap().unwrap().status,
        JobStatus::Pending
    );
}

/// Accept `key` with `jobs` jobs on its own ordering key; the inbox id.
async fn accepted(store: &Store, key: &str, jobs: usize) -> i64 {
    let jobs = (0..jobs).map(|n| job("q", key, n as i64)).collect();
    match store.accept(inbound("web", key), jobs).await.unwrap() {
        Acceptance::Accepted { inbox_id, .. } => inbox_id,
        other => panic!("not accepted: {other:?}"),
    }
}

async fn body_retention_empties_finished_requests_only(store: Store) {
    let done = accepted(&store, "done", 1).await;
    let failed = accepted(&store, "failed", 1).await;
    let running = accepted(&store, "running", 1).await;
    let no_job = accepted(&store, "no-job", 0).await;
    for j in store.claim("q", "w", 60_000, 10).await.unwrap() {
        match j.ordering_key.as_str() {
            "done" => assert!(store.complete(&j).await.unwrap()),
            "failed" => assert!(store.bury(&j, "rejected").await.unwrap()),
            _ => {}
        }
    }
    let pending = accepted(&store, "pending", 1).await;

    assert_eq!(store.inbox_retention_end(0, 0).await.unwrap(), done);
    assert_eq!(
        store.inbox_retention_end(running, 0).await.unwrap(),
        running
    );
    // Everything was received before a moment still to come: the sweep ends
    // after the last row, not at the end of time.
    assert_eq!(
        store
            .inbox_retention_end(0, now_ms() + 60_000)
            .await
            .unwrap(),
        pending + 1
    );
    // A range that stops before `no_job`: only `done` is emptied.
    assert_eq!(
        store.clear_finished_bodies(0, no_job, 100).await.unwrap(),
        Some((1, running))
    );
    // Batches: the rest, two rows at a time.
    assert_eq!(
        store
            .clear_finished_bodies(running + 1, i64::MAX, 2)
            .await
            .unwrap(),
        Some((1, pending))
    );
    assert_eq!(
        store
            .clear_finished_bodies(pending + 1, i64::MAX, 2)
            .await
            .unwrap(),
        None
    );
    let body = |id: i64| {
        let store = store.clone();
        async move { store.inbox(id).await.unwrap().unwrap().body }
    };
    assert!(body(done).await.is_empty());
    assert!(body(no_job).await.is_empty());
    for kept in [failed, running, pending] {
        assert!(!body(kept).await.is_empty(), "inbox {kept} lost its body");
    }
    // The row stays: a repeat is still a duplicate.
    assert!(matches!(
        store.accept(inbound("web", "done"), vec![]).await.unwrap(),
        Acceptance::Duplicate { inbox_id, .. } if inbox_id == done
    ));
    // Emptied bodies are not counted again.
    assert_eq!(
        store.clear_finished_bodies(0, i64::MAX, 100).await.unwrap(),
        Some((0, pending))
    );
}
