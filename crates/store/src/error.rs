//! The store's error type.

/// What went wrong talking to the store. [`StoreError::is_retryable`] says whether
/// trying the same call again later can help.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store URL is not one we understand (the password is redacted).
    #[error("invalid store URL `{url}`: {reason}")]
    InvalidUrl { url: String, reason: String },
    /// Opening the pool failed (the password is redacted).
    /// (The cause is part of the message and not a `source`, so an error
    /// chain does not print it twice.)
    #[error("cannot connect to store `{url}`: {cause}")]
    Connect { url: String, cause: sqlx::Error },
    /// Running the embedded migrations failed.
    #[error("store migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A query failed.
    #[error("store query failed: {0}")]
    Query(#[from] sqlx::Error),
    /// A stored value could not be turned into its Rust type.
    #[error("cannot decode stored {what}: {reason}")]
    Decode { what: &'static str, reason: String },
    /// A statement on the SQLite group-commit connection failed.
    #[error("store query failed: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The SQLite writer thread is gone (the store was closed).
    #[error("store writer unavailable: {0}")]
    Writer(String),
    /// A value could not be serialised for storage.
    #[error("cannot encode {what}: {reason}")]
    Encode { what: &'static str, reason: String },
}

impl StoreError {
    /// True when the failure is about reaching the database (pool exhausted, I/O, lock
    /// contention, serialisation failure), so a later retry may succeed. Constraint
    /// violations, decode errors and bad URLs are not retryable.
    pub fn is_retryable(&self) -> bool {
        match self {
            StoreError::Connect { cause: source, .. } | StoreError::Query(source) => {
                sqlx_error_is_retryable(source)
            }
            StoreError::Migrate(sqlx::migrate::MigrateError::Execute(source)) => {
                sqlx_error_is_retryable(source)
            }
            StoreError::Sqlite(error) => rusqlite_error_is_retryable(error),
            StoreError::InvalidUrl { .. }
            | StoreError::Writer(_)
            | StoreError::Migrate(_)
            | StoreError::Decode { .. }
            | StoreError::Encode { .. } => false,
        }
    }

    pub(crate) fn decode(what: &'static str, reason: impl std::fmt::Display) -> Self {
        StoreError::Decode {
            what,
            reason: reason.to_string(),
        }
    }

    pub(crate) fn encode(what: &'static str, reason: impl std::fmt::Display) -> Self {
        StoreError::Encode {
            what,
            reason: reason.to_string(),
        }
    }
}

fn sqlx_error_is_retryable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            // SQLite: 5 SQLITE_BUSY, 6 SQLITE_LOCKED (plus extended codes).
            // PostgreSQL: 40001 serialization_failure, 40P01 deadlock_detected,
            // 55P03 lock_not_available, 57P01 admin_shutdown, 08xxx connection errors.
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            matches!(code.as_str(), "5" | "6" | "517" | "261" | "262")
                || matches!(code.as_str(), "40001" | "40P01" | "55P03" | "57P01")
                || code.starts_with("08")
        }
        _ => false,
    }
}

fn rusqlite_error_is_retryable(error: &rusqlite::Error) -> bool {
    use rusqlite::ErrorCode;
    match error {
        rusqlite::Error::SqliteFailure(failure, _) => matches!(
            failure.code,
            ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::SystemIoFailure
                | ErrorCode::DiskFull
                | ErrorCode::OutOfMemory
        ),
        _ => false,
    }
}
