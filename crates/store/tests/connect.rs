//! Opening stores from URLs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use store::{Backend, ConnectOptions, Store, StoreError};

#[tokio::test]
async fn memory_store_works_across_calls() {
    let store = Store::connect("sqlite::memory:").await.unwrap();
    assert_eq!(store.backend(), Backend::Sqlite);
    store.ping().await.unwrap();
    store.set_cursor("c", "1").await.unwrap();
    assert_eq!(store.cursor("c").await.unwrap().as_deref(), Some("1"));
}

#[tokio::test]
async fn plain_path_creates_a_sqlite_file_and_reopens_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub.db");
    let url = path.display().to_string();
    {
        let store = Store::connect(&url).await.unwrap();
        store
            .kv_put("ns", "k", &serde_json::json!(1))
            .await
            .unwrap();
        store.close().await;
    }
    assert!(path.exists());
    let reopened = Store::connect(&format!("sqlite:{url}")).await.unwrap();
    assert_eq!(
        reopened.kv_get("ns", "k").await.unwrap(),
        Some(serde_json::json!(1))
    );
}

#[tokio::test]
async fn unknown_scheme_is_rejected_without_leaking_the_password() {
    let error = Store::connect("mysql://user:hunter2@localhost/db")
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::InvalidUrl { .. }));
    assert!(!error.to_string().contains("hunter2"));
    assert!(!error.is_retryable());
}

#[tokio::test]
async fn unreachable_postgres_is_retryable_and_redacted() {
    // Port 9 on loopback: nothing listens there.
    let settings = ConnectOptions {
        acquire_timeout: std::time::Duration::from_millis(300),
        ..ConnectOptions::default()
    };
    let error = Store::connect_with("postgres://user:hunter2@127.0.0.1:9/db", &settings)
        .await
        .unwrap_err();
    assert!(!error.to_string().contains("hunter2"), "{error}");
    assert!(!format!("{error:?}").contains("hunter2"));
    assert!(error.is_retryable(), "{error:?}");
}

#[tokio::test]
async fn postgres_store_reports_its_backend() {
    let Some(store) = store::testing::fresh_postgres().await else {
        return;
    };
    assert_eq!(store.backend(), Backend::Postgres);
    store.ping().await.unwrap();
    assert!(format!("{store:?}").contains("Postgres"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wal_is_checkpointed_into_the_database_file_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wal.db");
    let store = Store::connect(&path.display().to_string()).await.unwrap();
    let migrated = std::fs::metadata(&path).unwrap().len();
    // About 2 MB of bodies: commits append to the WAL only; the database file
    // grows when the checkpointer copies the pages over.
    for n in 0..200 {
        let inbound = store::NewInbound {
            source: "bulk".into(),
            dedupe_key: format!("b-{n}"),
            body: vec![b'x'; 10_000],
            headers: serde_json::json!({}),
        };
        store.accept(inbound, vec![]).await.unwrap();
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let size = std::fs::metadata(&path).unwrap().len();
        if size > migrated + 1_500_000 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "database file still {size} bytes (was {migrated}): no checkpoint ran"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    store.close().await;
}
