//! Command-line interface.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Turns conversations and events into GLPI and iTop tickets, reliably.
#[derive(Debug, Parser)]
#[command(name = "ticketbridge", version, about)]
pub struct Cli {
    /// Configuration file (default: $TICKETBRIDGE_CONFIG, else ./ticketbridge.toml,
    /// else built-in defaults). A file named here or in TICKETBRIDGE_CONFIG must exist.
    #[arg(long, short, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

pub const DEFAULT_CONFIG: &str = "./ticketbridge.toml";

/// The variable naming the configuration file when `--config` is not given.
pub const CONFIG_ENV: &str = "TICKETBRIDGE_CONFIG";

/// The configuration file a command reads, and how it was chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigFile {
    pub path: PathBuf,
    /// Named by `--config` or `TICKETBRIDGE_CONFIG` (so it must exist), not
    /// the default `./ticketbridge.toml`.
    pub explicit: bool,
}

impl ConfigFile {
    /// `--config` if given, else `TICKETBRIDGE_CONFIG` (`env`), else the
    /// default path. An empty variable is refused: it names no file.
    pub fn choose(flag: Option<PathBuf>, env: Option<std::ffi::OsString>) -> Result<Self, String> {
        if let Some(path) = flag {
            return Ok(Self {
                path,
                explicit: true,
            });
        }
        match env {
            Some(value) if value.is_empty() => Err(format!(
                "{CONFIG_ENV} is set but empty: set it to a configuration file, or unset it to use {DEFAULT_CONFIG} (built-in defaults without it)"
            )),
            Some(value) => Ok(Self {
                path: PathBuf::from(value),
                explicit: true,
            }),
            None => Ok(Self {
                path: PathBuf::from(DEFAULT_CONFIG),
                explicit: false,
            }),
        }
    }

    /// The command that lists every problem of this configuration, naming
    /// the file as it was given (the default needs no `--config`).
    pub fn check_command(&self) -> String {
        if self.explicit {
            format!(
                "ticketbridge --config {} config check",
                shell_word(&self.path.display().to_string())
            )
        } else {
            "ticketbridge config check".to_owned()
        }
    }
}

/// `text` as one shell word: as it is when it needs no quoting, else in
/// single quotes.
fn shell_word(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:,@%=".contains(c));
    if plain {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server and the job engine until SIGTERM or Ctrl-C.
    Serve,
    /// Configuration tools.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Check every configured target (reachable, credentials, the entity,
    /// category and request type the sources use); exit status 1 on a failure.
    Check,
    /// Inspect and repair jobs.
    #[command(subcommand)]
    Jobs(JobsCommand),
    /// Inspect links between source and target objects.
    #[command(subcommand)]
    Links(LinksCommand),
    /// Benchmarks.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Print the version.
    Version,
    /// The end-to-end demo on simulators: intake requests into GLPI (one repeated, one bad), then a Chatwoot conversation synced with GLPI.
    Demo,
    /// Run a simulator by hand.
    #[command(subcommand)]
    Sim(SimCommand),
}

#[derive(Debug, Subcommand)]
pub enum SimCommand {
    /// The GLPI simulator on 127.0.0.1 (until Ctrl-C).
    Glpi {
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// Imitate GLPI 11 instead of 10.
        #[arg(long)]
        v11: bool,
    },
    /// The iTop simulator on 127.0.0.1 (until Ctrl-C).
    Itop {
        #[arg(long, default_value_t = 0)]
        port: u16,
    },
    /// The Chatwoot simulator on 127.0.0.1 (until Ctrl-C); webhooks go to
    /// CHATWOOT_SIM_WEBHOOK_URL, signed with CHATWOOT_SIM_WEBHOOK_SECRET when set.
    Chatwoot {
        #[arg(long, default_value_t = 0)]
        port: u16,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the configuration; print every problem, or "config ok" and a summary.
    Check,
}

#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// List jobs, newest first.
    List {
        /// pending, running, succeeded or dead.
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Show one job as JSON.
    Show {
        /// The job's id (first column of `jobs list`).
        id: i64,
    },
    /// Put dead letters back in the queue: one by id, or all with --all.
    Retry {
        /// The dead letter's id (`jobs list --status dead`).
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<i64>,
        /// Every dead letter.
        #[arg(long)]
        all: bool,
    },
    /// Delete every dead letter.
    PurgeDead,
}

#[derive(Debug, Subcommand)]
pub enum LinksCommand {
    /// List links, newest first.
    List {
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Drive POST /api/v1/events over loopback and compare with a no-op route.
    Ingest(IngestBench),
    /// Tickets/s and GLPI requests per ticket through the intake API, next to a seed-style baseline.
    Intake(IntakeBench),
}

#[derive(Debug, Clone, Args)]
pub struct IntakeBench {
    /// Tickets per run.
    #[arg(long, default_value_t = 4000)]
    pub tickets: usize,
    /// Concurrent clients (same for the intake API and the baseline).
    #[arg(long, default_value_t = 16)]
    pub clients: usize,
    /// Simulated GLPI latency per request, in milliseconds.
    #[arg(long, default_value_t = 5)]
    pub latency_ms: u64,
    /// Store URL (a fresh database is expected); default: a new SQLite file
    /// in a temporary directory.
    #[arg(long)]
    pub store: Option<String>,
    /// Store pool size; default: the store's own default.
    #[arg(long)]
    pub pool: Option<u32>,
    /// `engine.concurrency` (jobs in flight per target); default: as many as
    /// clients, what a configuration sized for this load would set.
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Rounds of (intake API, baseline) at the simulated latency; the speed-up
    /// reported is the median of the rounds' ratios.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub rounds: u32,
}

#[derive(Debug, Clone, Args)]
pub struct IngestBench {
    /// Store URL; default: a fresh SQLite file in a temporary directory.
    #[arg(long)]
    pub store: Option<String>,
    /// Concurrent clients in the closed-loop runs.
    #[arg(long, default_value_t = 32)]
    pub clients: usize,
    /// Requests per closed-loop run.
    #[arg(long, default_value_t = 40_000)]
    pub requests: usize,
    /// Rounds of (no-op, ingest) closed-loop runs, back to back: the ratio is
    /// taken per round, so a slow or fast moment of the machine weighs on both.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
    pub rounds: u32,
    /// Rate of the fixed-rate run (requests per second).
    #[arg(long, default_value_t = 1000)]
    pub rate: u64,
    /// Duration of the fixed-rate run, in seconds.
    #[arg(long, default_value_t = 10)]
    pub rate_seconds: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_check_command_names_the_file_as_given() {
        let given = ConfigFile::choose(Some("t1.toml".into()), None).unwrap();
        assert_eq!(
            given.check_command(),
            "ticketbridge --config t1.toml config check"
        );
        let spaced = ConfigFile::choose(None, Some("my conf/it's.toml".into())).unwrap();
        assert_eq!(
            spaced.check_command(),
            "ticketbridge --config 'my conf/it'\\''s.toml' config check"
        );
        let default = ConfigFile::choose(None, None).unwrap();
        assert!(!default.explicit);
        assert_eq!(default.check_command(), "ticketbridge config check");
        let explicit_default = ConfigFile::choose(Some(DEFAULT_CONFIG.into()), None).unwrap();
        assert!(explicit_default.explicit);
        assert!(ConfigFile::choose(None, Some("".into())).is_err());
    }
}
