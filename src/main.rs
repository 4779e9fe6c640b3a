//! The `secret-sync` binary: parses the command line and hands over to the library.
#![forbid(unsafe_code)]

use clap::Parser;
use secret_sync::cli::Cli;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    secret_sync::install_crypto_provider();
    let cli = Cli::parse();
    match cli.run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}
