//! `ticketbridge`: the service binary (serve, config check, jobs, links, bench).

mod bench;
mod bench_intake;
mod check;
mod cli;
mod commands;
mod demo;
mod event_record;
mod logging;
mod serve;

use std::process::ExitCode;

use clap::Parser;

/// mimalloc instead of glibc's allocator: the request paths allocate many small,
/// short-lived buffers across threads, where glibc's arenas cost ~15 % of the CPU
/// (docs/bench/intake.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
