//! The `secret-sync` binary: parses the command line and hands over to the library.
#![forbid(unsafe_code)]

use std::time::Duration;

use clap::Parser;
use secret_sync::cli::Cli;

fn main() -> std::process::ExitCode {
    secret_sync::install_crypto_provider();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: failed to start the async runtime: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(cli.run());
    // Dropping a runtime waits for every blocking task, such as a DNS lookup that never answers;
    // the process must still exit within its grace period.
    runtime.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}
