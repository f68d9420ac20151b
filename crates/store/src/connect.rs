//! Opening a store from its URL.

use crate::group_commit::{GroupCommitter, NO_AUTO_CHECKPOINT};
use crate::{Pool, Store, StoreError};
use serde::Serialize;
use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// The database behind a [`Store`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    Sqlite,
    Postgres,
}

const SQLITE_POOL_SIZE: u32 = 4;
const POSTGRES_POOL_SIZE: u32 = 10;
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Pool settings for [`Store::connect_with`].
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Pool size; `None` means 4 for a SQLite file, 10 for PostgreSQL (an in-memory
    /// SQLite store always has exactly one connection).
    pub max_connections: Option<u32>,
    /// How long a query may wait for a pooled connection (and how long connecting
    /// may take) before failing with a retryable error.
    pub acquire_timeout: Duration,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            max_connections: None,
            acquire_timeout: Duration::from_secs(10),
        }
    }
}

enum Target {
    SqliteMemory,
    SqliteFile(String),
    Postgres,
}

/// The file a SQLite file URL (or plain path) names; `None` for PostgreSQL,
/// in-memory SQLite and URLs that are not a store's.
pub fn sqlite_file(url: &str) -> Option<String> {
    match classify(url) {
        Ok(Target::SqliteFile(path)) => Some(path),
        _ => None,
    }
}

fn classify(url: &str) -> Result<Target, StoreError> {
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
        return Ok(Target::Postgres);
    }
    let rest = if let Some(rest) = url.strip_prefix("sqlite://") {
        rest
    } else if let Some(rest) = url.strip_prefix("sqlite:") {
        rest
    } else if url.contains("://") {
        return Err(StoreError::InvalidUrl {
            url: redact_url(url),
            reason: "expected sqlite://, sqlite:, postgres://, postgresql:// or a file path".into(),
        });
    } else {
        url
    };
    let path = rest.split('?').next().unwrap_or_default();
    if path == ":memory:" {
        return Ok(Target::SqliteMemory);
    }
    if path.is_empty() {
        return Err(StoreError::InvalidUrl {
            url: redact_url(url),
            reason: "no SQLite file path".into(),
        });
    }
    Ok(Target::SqliteFile(path.to_string()))
}

/// Query parameters of a store URL whose values are harmless to show.
const PLAIN_QUERY_KEYS: [&str; 7] = [
    "sslmode",
    "mode",
    "cache",
    "application_name",
    "connect_timeout",
    "statement-cache-capacity",
    "sslrootcert",
];

/// The URL with its password, and the value of any query parameter not known
/// to be harmless (`?password=…`), replaced by `***`: safe for logs and errors.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() && parsed.set_password(Some("***")).is_err() {
                return "<unprintable store url>".into();
            }
            if parsed.query().is_some() {
                let pairs: Vec<(String, String)> = parsed
                    .query_pairs()
                    .map(|(k, v)| {
                        let plain = PLAIN_QUERY_KEYS.contains(&k.to_ascii_lowercase().as_str());
                        (
                            k.into_owned(),
                            if plain { v.into_owned() } else { "***".into() },
                        )
                    })
                    .collect();
                parsed.query_pairs_mut().clear().extend_pairs(pairs);
            }
            parsed.to_string()
        }
        // Not a URL (a plain path): there is no password to hide, unless it looks
        // like a URL we failed to parse.
        Err(_) if url.contains('@') => "<unprintable store url>".into(),
        Err(_) => url.to_string(),
    }
}

impl Store {
    /// Open the store named by `url` and run the embedded migrations.
    ///
    /// Accepted: `sqlite://path`, `sqlite:path`, `sqlite::memory:`, a plain file path
    /// (SQLite, created when missing), `postgres://…` and `postgresql://…`.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        Store::connect_with(url, &ConnectOptions::default()).await
    }

    /// [`Store::connect`] with explicit pool settings.
    pub async fn connect_with(url: &str, settings: &ConnectOptions) -> Result<Store, StoreError> {
        let acquire_timeout = settings.acquire_timeout;
        let redacted = redact_url(url);
        let connect_error = |cause| StoreError::Connect {
            url: redacted.clone(),
            cause,
        };
        let mut group = None;
        let mut write_turns = None;
        let pool = match classify(url)? {
            Target::Postgres => {
                let options = PgConnectOptions::from_str(url).map_err(connect_error)?;
                // One plain connection first: the pool retries until its
                // timeout and then says only "pool timed out", where this
                // says why (refused, unknown host, authentication failed).
                match tokio::time::timeout(acquire_timeout, PgConnection::connect_with(&options))
                    .await
                {
                    Ok(Ok(first)) => {
                        let _ = first.close().await;
                    }
                    Ok(Err(cause)) => return Err(connect_error(cause)),
                    Err(_) => return Err(connect_error(sqlx::Error::PoolTimedOut)),
                }
                let pool = PgPoolOptions::new()
                    .max_connections(settings.max_connections.unwrap_or(POSTGRES_POOL_SIZE))
                    .acquire_timeout(acquire_timeout)
                    .connect_with(options)
                    .await
                    .map_err(connect_error)?;
                sqlx::migrate!("./migrations/postgres").run(&pool).await?;
                Pool::Postgres(pool)
            }
            Target::SqliteMemory => {
                // One connection that never closes: the database lives as long as it.
                let options = SqliteConnectOptions::from_str("sqlite::memory:")
                    .map_err(connect_error)?
                    .shared_cache(true)
                    .foreign_keys(true)
                    .busy_timeout(BUSY_TIMEOUT);
                let pool = SqlitePoolOptions::new()
                    .max_connections(1)
                    .min_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None)
                    .acquire_timeout(acquire_timeout)
                    .connect_with(options)
                    .await
                    .map_err(connect_error)?;
                sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
                Pool::Sqlite(pool)
            }
            Target::SqliteFile(path) => {
                let options = SqliteConnectOptions::new()
                    .filename(&path)
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(BUSY_TIMEOUT)
                    .foreign_keys(true)
                    .pragma(NO_AUTO_CHECKPOINT.0, NO_AUTO_CHECKPOINT.1);
                let pool = SqlitePoolOptions::new()
                    .max_connections(settings.max_connections.unwrap_or(SQLITE_POOL_SIZE))
                    .acquire_timeout(acquire_timeout)
                    .connect_with(options)
                    .await
                    .map_err(connect_error)?;
                sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
                let turns = Arc::new(tokio::sync::Mutex::new(()));
                group = Some(Arc::new(GroupCommitter::start(
                    Path::new(&path),
                    turns.clone(),
                )?));
                write_turns = Some(turns);
                Pool::Sqlite(pool)
            }
        };
        tracing::debug!(url = %redacted, "store opened");
        Ok(Store {
            pool,
            group,
            write_turns,
            url: Arc::from(redacted),
            enqueued: Arc::default(),
            clock_skew_ms: 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        let shown = redact_url("postgres://bridge:s3cret@db.example:5432/tb");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("bridge:***@db.example"), "{shown}");
        assert_eq!(redact_url("sqlite://data/tb.db"), "sqlite://data/tb.db");
        assert_eq!(redact_url("./tb.db"), "./tb.db");
        let shown = redact_url("postgres://u@db/tb?password=qpsecret&sslmode=require");
        assert!(!shown.contains("qpsecret"), "{shown}");
        assert!(shown.contains("sslmode=require"), "{shown}");
        assert_eq!(
            redact_url("sqlite://data/tb.db?mode=rwc"),
            "sqlite://data/tb.db?mode=rwc"
        );
    }

    #[test]
    fn classifies_urls() {
        assert!(matches!(classify("postgresql://x/y"), Ok(Target::Postgres)));
        assert!(matches!(
            classify("sqlite::memory:"),
            Ok(Target::SqliteMemory)
        ));
        assert!(matches!(classify("sqlite://a/b.db"), Ok(Target::SqliteFile(p)) if p == "a/b.db"));
        assert!(
            matches!(classify("sqlite:b.db?mode=rwc"), Ok(Target::SqliteFile(p)) if p == "b.db")
        );
        assert!(
            matches!(classify("/var/lib/tb.db"), Ok(Target::SqliteFile(p)) if p == "/var/lib/tb.db")
        );
        assert!(
            matches!(classify("mysql://u:pw@h/db"), Err(StoreError::InvalidUrl { url, .. }) if !url.contains("pw"))
        );
    }
}
