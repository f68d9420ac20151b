//! PostgreSQL: a debounce racing a claim of the job it would merge into.
//!
//! The debounce picks the newest pending job of its unique key, then waits for
//! that row's lock, held by a claim that is turning the job to running. When the
//! claim commits, PostgreSQL re-checks the update's own conditions on the new
//! row version only. Without a status condition there, the new payload would be
//! written into a job whose handler already read the old one, and lost.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::json;
use sqlx::{Connection, PgConnection};
use std::time::Duration;
use store::{NewJob, Store, now_ms};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_debounce_never_merges_into_a_job_being_claimed() {
    let Some(url) = store::testing::fresh_postgres_url().await else {
        println!("{}", store::testing::POSTGRES_SKIPPED);
        return;
    };
    let store = Store::connect(&url).await.unwrap();
    let first = store
        .enqueue(NewJob::new("q", "flush", "chat:1", json!({"v": 1})).unique_key("flush:chat:1"))
        .await
        .unwrap();

    // Another process's claim, not committed yet.
    let mut claimer = PgConnection::connect(&url).await.unwrap();
    let mut claim = claimer.begin().await.unwrap();
    sqlx::query(
        "UPDATE jobs SET status = 'running', attempts = attempts + 1, locked_by = 'other', \
         locked_until = $1 WHERE id = $2",
    )
    .bind(now_ms() + 60_000)
    .bind(first)
    .execute(&mut *claim)
    .await
    .unwrap();

    let debounce = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .enqueue(
                    NewJob::new("q", "flush", "chat:1", json!({"v": 2})).unique_key("flush:chat:1"),
                )
                .await
                .unwrap()
        })
    };
    // Let the debounce reach the row lock, then commit the claim.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(!debounce.is_finished(), "the debounce waits for the claim");
    claim.commit().await.unwrap();
    let second = tokio::time::timeout(Duration::from_secs(10), debounce)
        .await
        .unwrap()
        .unwrap();

    assert_ne!(second, first, "a running job is never debounced onto");
    let claimed = store.job(first).await.unwrap().unwrap();
    assert_eq!(
        claimed.payload,
        json!({"v": 1}),
        "the running job's payload is kept"
    );
    let added = store.job(second).await.unwrap().unwrap();
    assert_eq!(added.payload, json!({"v": 2}));
}
