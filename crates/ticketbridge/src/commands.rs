//! Dispatch of the subcommands other than `serve` and `bench`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};
use config::Config;
use store::{JobFilter, JobStatus, LinkFilter, Store};

use crate::cli::{
    BenchCommand, CONFIG_ENV, Cli, Command, ConfigCommand, ConfigFile, JobsCommand, LinksCommand,
};
use ticketbridge::{say, say_part};

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    // Chosen only by the commands that read it: `version`, `demo`, `sim` and
    // `bench` run whatever TICKETBRIDGE_CONFIG holds.
    let config_file = || {
        ConfigFile::choose(cli.config.clone(), std::env::var_os(CONFIG_ENV))
            .map_err(anyhow::Error::msg)
    };
    match cli.command {
        Command::Demo => {
            crate::demo::run().await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Sim(crate::cli::SimCommand::Glpi { port, v11 }) => {
            let mode = if v11 {
                sim::glpi::GlpiVersion::V11
            } else {
                sim::glpi::GlpiVersion::V10
            };
            sim::glpi::run_standalone(port, mode)
                .await
                .map_err(|error| match error {
                    sim::glpi::SimError::Bind { source, .. } => port_taken(port, &source),
                    other => anyhow::anyhow!("{other}"),
                })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Sim(crate::cli::SimCommand::Itop { port }) => {
            sim::itop::run_standalone(port).await.map_err(|error| {
                use std::io::ErrorKind::{AddrInUse, AddrNotAvailable, PermissionDenied};
                match error.kind() {
                    AddrInUse | AddrNotAvailable | PermissionDenied => port_taken(port, &error),
                    _ => anyhow::anyhow!("iTop simulator: {error}"),
                }
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Sim(crate::cli::SimCommand::Chatwoot { port }) => {
            sim::chatwoot::run_standalone(port)
                .await
                .map_err(|error| match error {
                    sim::chatwoot::SimError::Bind(source) => port_taken(port, &source),
                    other => anyhow::anyhow!("{other}"),
                })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Version => {
            say!("ticketbridge {}", env!("CARGO_PKG_VERSION"));
            Ok(ExitCode::SUCCESS)
        }
        Command::Config(ConfigCommand::Check) => Ok(config_check(&config_file()?)),
        Command::Check => Ok(crate::check::run(&load(&config_file()?)?).await),
        Command::Serve => {
            let file = config_file()?;
            let config = load(&file)?;
            crate::serve::serve(config, &file.path).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Jobs(command) => {
            let store = open_existing_store(&load(&config_file()?)?).await?;
            jobs(&store, command).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Links(LinksCommand::List { limit }) => {
            let store = open_existing_store(&load(&config_file()?)?).await?;
            let links = store
                .links(&LinkFilter {
                    limit: Some(limit),
                    ..LinkFilter::default()
                })
                .await?;
            let rows: Vec<Vec<String>> = links
                .into_iter()
                .map(|l| {
                    vec![
                        l.id.to_string(),
                        l.state.as_str().to_owned(),
                        l.kind,
                        format!("{}:{}", l.source_system, l.source_id),
                        l.target_system,
                        l.target_id.unwrap_or_else(|| "-".to_owned()),
                    ]
                })
                .collect();
            let header = ["ID", "STATE", "KIND", "SOURCE", "TARGET", "TARGET_ID"];
            for line in ticketbridge::output::table(&header, &rows, &[0]) {
                say!("{line}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(BenchCommand::Intake(options)) => {
            crate::bench_intake::run(options).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(BenchCommand::Ingest(options)) => {
            crate::bench::ingest(options).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// A simulator that cannot listen: the address, the reason once, the fix.
fn port_taken(port: u16, error: &std::io::Error) -> anyhow::Error {
    anyhow::anyhow!(
        "cannot listen on 127.0.0.1:{port}: {error} (is another process using it? choose another --port, or 0 for a free one)"
    )
}

/// Loads the configuration; a missing file is fine only when none was named
/// (`--config` or `TICKETBRIDGE_CONFIG`).
pub fn load(file: &ConfigFile) -> anyhow::Result<Config> {
    load_file(file).map_err(|errors| {
        // A file that cannot be read or parsed is one problem, said as it is:
        // `config check` would say the same.
        if errors.0.iter().all(|problem| problem.path.is_empty()) {
            return anyhow::anyhow!("{}", errors.lines().replace('\n', "; "));
        }
        anyhow::anyhow!(
            "invalid configuration: {} (run `{}` to list every problem)",
            errors.lines().replace('\n', "; "),
            file.check_command()
        )
    })
}

/// The configuration, checked against what this binary handles.
fn load_file(file: &ConfigFile) -> Result<Config, config::ConfigErrors> {
    let handlers = config::Handlers {
        event_job_kinds: crate::serve::EVENT_JOB_KINDS,
    };
    config::load_with(&file.path, file.explicit, std::env::vars(), handlers)
}

fn config_check(file: &ConfigFile) -> ExitCode {
    match load_file(file) {
        Ok(config) => {
            say!("config ok");
            if !file.explicit && !file.path.exists() {
                say!("no {}: built-in defaults", file.path.display());
            }
            say_part!("{}", config.summary());
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for problem in &errors.0 {
                say!("{problem}");
            }
            ExitCode::FAILURE
        }
    }
}

async fn open_store(config: &Config) -> anyhow::Result<Store> {
    Store::connect(&config.store.url)
        .await
        .context("cannot open the store (check store.url or TICKETBRIDGE_STORE__URL)")
}

/// The store for commands that only read or repair what is there: a SQLite
/// file that does not exist is an error (opening would create an empty one,
/// and a listing of nothing would hide a wrong directory or setting).
async fn open_existing_store(config: &Config) -> anyhow::Result<Store> {
    if let Some(path) = store::sqlite_file(&config.store.url)
        && !Path::new(&path).exists()
    {
        anyhow::bail!(
            "no store at {path}: run this where `ticketbridge serve` keeps its store, or point store.url (TICKETBRIDGE_STORE__URL) at it"
        );
    }
    open_store(config).await
}

async fn jobs(store: &Store, command: JobsCommand) -> anyhow::Result<()> {
    match command {
        JobsCommand::List { status, limit } => {
            let status = status
                .map(|s| s.parse::<JobStatus>())
                .transpose()
                .map_err(|e| anyhow::anyhow!("{e}; use pending, running, succeeded or dead"))?;
            let jobs = store
                .jobs(&JobFilter {
                    status,
                    limit: Some(limit),
                    ..JobFilter::default()
                })
                .await?;
            let rows: Vec<Vec<String>> = jobs
                .into_iter()
                .map(|j| {
                    vec![
                        j.id.to_string(),
                        j.status.as_str().to_owned(),
                        j.kind,
                        j.queue,
                        format!("{}/{}", j.attempts, j.max_attempts),
                        j.ordering_key,
                        j.last_error.unwrap_or_default(),
                    ]
                })
                .collect();
            let header = [
                "ID",
                "STATUS",
                "KIND",
                "QUEUE",
                "ATTEMPTS",
                "ORDERING_KEY",
                "LAST_ERROR",
            ];
            for line in ticketbridge::output::table(&header, &rows, &[0]) {
                say!("{line}");
            }
        }
        JobsCommand::Show { id } => match store.job(id).await? {
            Some(job) => say!(
                "{}",
                serde_json::to_string_pretty(&readable_times(serde_json::to_value(&job)?))?
            ),
            None => bail!("no job with id {id} (list them with `ticketbridge jobs list`)"),
        },
        JobsCommand::Retry { id, all } => {
            let target = if all { None } else { id };
            let revived = store.revive_dead(target).await?;
            if let (Some(id), 0) = (target, revived) {
                if store.job(id).await?.is_none() {
                    bail!(
                        "no job with id {id} (list dead letters with `ticketbridge jobs list --status dead`)"
                    );
                }
                bail!("job {id} is not a dead letter (see `ticketbridge jobs list --status dead`)");
            }
            say!("requeued {revived} dead job(s)");
        }
        JobsCommand::PurgeDead => {
            let purged = store.purge_dead().await?;
            say!("deleted {purged} dead job(s)");
        }
    }
    Ok(())
}

/// The store for commands that need it.
pub async fn store_for(config: &Config) -> anyhow::Result<Store> {
    open_store(config).await
}

/// A job as JSON with its times (unix milliseconds in the store) as RFC 3339
/// UTC instants, which an operator can read.
fn readable_times(mut job: serde_json::Value) -> serde_json::Value {
    const TIMES: [&str; 5] = [
        "run_at",
        "locked_until",
        "created_at",
        "updated_at",
        "finished_at",
    ];
    if let Some(fields) = job.as_object_mut() {
        for name in TIMES {
            if let Some(field) = fields.get_mut(name)
                && let Some(ms) = field.as_u64()
            {
                let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
                *field = serde_json::Value::String(
                    humantime_serde::re::humantime::format_rfc3339_millis(at).to_string(),
                );
            }
        }
    }
    job
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_times_read_as_instants() {
        let job = serde_json::json!({"id": 7, "run_at": 1_795_667_194_385_u64, "finished_at": null, "attempts": 2});
        let shown = readable_times(job);
        assert_eq!(shown["run_at"], "2026-11-26T04:26:34.385Z");
        assert_eq!(shown["finished_at"], serde_json::Value::Null);
        assert_eq!(shown["attempts"], 2);
    }
}
