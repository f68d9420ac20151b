//! Log output: JSON or pretty, filtered by `RUST_LOG` (default `info`).

use std::io::IsTerminal;

use config::LogFormat;
use tracing_subscriber::EnvFilter;

pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=info"));
    // A log line that cannot be written (stderr a closed pipe) is dropped.
    // tracing-subscriber's default reports it with eprintln!, which panics on
    // that same closed stderr, inside whichever task was logging: the task that
    // turns SIGTERM into a shutdown died that way, and `serve` never stopped.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .log_internal_errors(false);
    // try_init: a second initialisation (tests) is not an error worth stopping for.
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        // Colours only for a terminal: a log file or journal gets plain text.
        LogFormat::Pretty => builder
            .pretty()
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
    };
}
