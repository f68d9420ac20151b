//! Persistence for ticketbridge: inbox, jobs, links, loop-prevention markers, audit,
//! cursors and small durable state, with one API over SQLite (default) and PostgreSQL.
//!
//! [`Store::connect`] picks the backend from the URL and runs the embedded migrations.
//! All timestamps are `i64` unix milliseconds. See `docs/store-and-engine.md`.

/// Run the same code against whichever pool the store holds. The body is compiled
/// once per backend, so it may only use SQL text both backends accept.
macro_rules! on_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.pool {
            crate::Pool::Sqlite($pool) => $body,
            crate::Pool::Postgres($pool) => $body,
        }
    };
}

#[macro_use]
mod rows;
mod batch;
mod connect;
mod error;
mod group_commit;
mod inbox;
mod jobs;
mod links;
pub mod model;
mod records;
#[cfg(feature = "testing")]
pub mod testing;

pub use connect::{Backend, ConnectOptions, redact_url, sqlite_file};
pub use error::StoreError;
pub use model::*;

use sqlx::{PgPool, SqlitePool};
use std::sync::Arc;

/// Attempt limit used when a [`NewJob`] does not give one.
pub const DEFAULT_MAX_ATTEMPTS: i32 = 10;

/// Handle to the store. Cheap to clone (the pool is shared).
#[derive(Clone)]
pub struct Store {
    pool: Pool,
    /// SQLite file stores: the writer thread behind [`Store::accept`] and
    /// [`Store::accept_batch`], which commits concurrent callers in groups.
    group: Option<Arc<group_commit::GroupCommitter>>,
    /// SQLite file stores: whose turn it is to write, in this process. Every
    /// write (the writer thread's commits, the checkpointer's restart pass and
    /// each writing method here) takes it first, so this process never meets
    /// its own write lock in SQLite, whose busy handler would sleep 1, 2, 5,
    /// 10… ms before trying again; waiters here are woken the moment it is free.
    write_turns: Option<Arc<tokio::sync::Mutex<()>>>,
    /// The URL it was opened with, password redacted.
    url: Arc<str>,
    /// Jobs added by [`Store::enqueue`] through this store (and its clones) so
    /// far: the engine compares it around a job's run to learn whether the
    /// handler (or anyone in this process) enqueued work nobody woke it for.
    enqueued: Arc<std::sync::atomic::AtomicU64>,
    /// Added to this process's clock where leases are timed on SQLite (a
    /// test's stand-in for a host whose clock is off; always 0 otherwise).
    /// PostgreSQL leases use the database's clock.
    clock_skew_ms: i64,
}

#[derive(Clone)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend())
            .field("url", &self.url)
            .finish()
    }
}

impl Store {
    /// Which database this store talks to.
    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    /// Wait for this process's turn to write (SQLite files; `None` elsewhere).
    /// Methods the writer thread carries out (accept, claim, complete,
    /// put_link) need none: the thread takes the turn itself.
    /// Hold the guard for the whole statement or transaction, and take no
    /// other turn meanwhile.
    async fn write_turn(&self) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        match &self.write_turns {
            Some(turns) => Some(turns.clone().lock_owned().await),
            None => None,
        }
    }

    /// True when the store commits concurrent [`Store::accept`] calls in groups
    /// by itself (SQLite files); callers need no batching of their own.
    pub fn groups_commits(&self) -> bool {
        self.group.is_some()
    }

    /// The URL it was opened with, with any password replaced by `***`.
    pub fn redacted_url(&self) -> &str {
        &self.url
    }

    /// Round trip to the database (readiness check).
    pub async fn ping(&self) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query("SELECT 1").execute(pool).await?;
        });
        Ok(())
    }

    /// Close the pool; later calls fail.
    pub async fn close(&self) {
        if let Some(group) = &self.group {
            group.close().await;
        }
        on_pool!(self, pool => pool.close().await)
    }
}

/// Current time in unix milliseconds.
pub fn now_ms() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(now.as_millis()).unwrap_or(i64::MAX)
}
