//! The edgeprom binary: parses flags, then runs the server or a subcommand. Errors are printed
//! with their whole cause chain and set the exit code.

use clap::Parser;
use edgeprom::cli::{CheckCmd, Cli, Command, ImportCmd};
use std::process::ExitCode;

fn main() -> ExitCode {
    let (args, switches) = edgeprom::cli::split_collector_switches(std::env::args().collect());
    let mut cli = Cli::parse_from(args);
    cli.server.collector_switches = switches;
    match cli.command {
        None => run_server(cli.server),
        Some(Command::Check(CheckCmd::Config { files })) => edgeprom::check::check_config(&files),
        Some(Command::Check(CheckCmd::Rules { files })) => edgeprom::check::check_rules(&files),
        Some(Command::Import(ImportCmd::Openmetrics(a))) => edgeprom::check::import_openmetrics(&a),
        Some(Command::Query(q)) => edgeprom::cli::query::run(q),
    }
}

fn run_server(flags: edgeprom::cli::ServerFlags) -> ExitCode {
    edgeprom::logging::init(flags.log_level, flags.log_format);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("edgeprom: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(edgeprom::app::run(flags)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(err = %edgeprom::app::error_chain(&e), "edgeprom could not run");
            eprintln!("edgeprom: {}", edgeprom::app::error_chain(&e));
            ExitCode::FAILURE
        }
    }
}
