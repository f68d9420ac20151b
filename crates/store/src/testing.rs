//! Test harness for this and other crates (feature `testing`): fresh, isolated stores.
//!
//! SQLite: a new file in a temporary directory. PostgreSQL: a new database
//! `tb_test_<uuid>` created through the admin URL in `TICKETBRIDGE_TEST_POSTGRES_URL`;
//! when that variable is unset the PostgreSQL helpers return `None`.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use crate::Store;
use tempfile::TempDir;

/// Environment variable naming a PostgreSQL server the tests may create databases on.
pub const POSTGRES_URL_ENV: &str = "TICKETBRIDGE_TEST_POSTGRES_URL";

/// The line printed by PostgreSQL variants of tests when no server is configured.
pub const POSTGRES_SKIPPED: &str = "skipped: TICKETBRIDGE_TEST_POSTGRES_URL not set";

/// URL of the SQLite file used inside `dir` (open it again for a second "process").
pub fn sqlite_url(dir: &TempDir) -> String {
    format!("sqlite://{}", dir.path().join("store.db").display())
}

/// A migrated SQLite store in a fresh temporary directory (kept while the `TempDir` lives).
pub async fn fresh_sqlite() -> (Store, TempDir) {
    let dir = tempfile::tempdir().expect("create temporary directory");
    let store = Store::connect(&sqlite_url(&dir))
        .await
        .expect("open SQLite test store");
    (store, dir)
}

/// URL of a brand-new, empty PostgreSQL database, or `None` when
/// `TICKETBRIDGE_TEST_POSTGRES_URL` is unset. Panics when it is set but unusable.
pub async fn fresh_postgres_url() -> Option<String> {
    let admin = std::env::var(POSTGRES_URL_ENV)
        .ok()
        .filter(|v| !v.is_empty())?;
    let name = format!("tb_test_{}", uuid::Uuid::new_v4().simple());
    let mut admin_conn = {
        use sqlx::Connection;
        sqlx::PgConnection::connect(&admin)
            .await
            .unwrap_or_else(|e| panic!("{POSTGRES_URL_ENV} is set but unreachable: {e}"))
    };
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin_conn)
        .await
        .expect("create test database");
    {
        use sqlx::Connection;
        let _ = admin_conn.close().await;
    }
    let mut url = url::Url::parse(&admin).expect("parse TICKETBRIDGE_TEST_POSTGRES_URL");
    url.set_path(&format!("/{name}"));
    Some(url.to_string())
}

/// A migrated store on a brand-new PostgreSQL database, or `None` (after printing
/// [`POSTGRES_SKIPPED`]) when `TICKETBRIDGE_TEST_POSTGRES_URL` is unset.
pub async fn fresh_postgres() -> Option<Store> {
    let Some(url) = fresh_postgres_url().await else {
        println!("{POSTGRES_SKIPPED}");
        return None;
    };
    Some(
        Store::connect(&url)
            .await
            .expect("open PostgreSQL test store"),
    )
}
