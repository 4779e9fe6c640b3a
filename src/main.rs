//! The `secret-sync` binary: parses the command line and hands over to the library.
#![forbid(unsafe_code)]

use std::time::Duration;

use clap::Parser;
use secret_sync::cli::Cli;

// Heap profiling only (docs/memory.md); the release image is built without this feature.
#[cfg(feature = "dhat-heap")]
#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

// jemalloc keeps less resident than glibc's malloc for the caches' many small blocks: 103 against
// 109 MiB at 10,000 ExternalSecrets (mimalloc: 116). Its options are built in from
// .cargo/config.toml. docs/memory.md has the measurements.
#[cfg(not(feature = "dhat-heap"))]
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

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
    #[cfg(feature = "dhat-heap")]
    let _profile = heap_profile::start(&runtime);
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

#[cfg(feature = "dhat-heap")]
mod heap_profile {
    use std::sync::{Arc, Mutex};

    /// Starts dhat and writes `dhat-heap.json` (in the working directory) as soon as SIGTERM
    /// arrives, before the shutdown frees the caches, so "t-end" in the profile is the steady state.
    /// Without a SIGTERM the profile is written when the returned handle drops at exit.
    pub fn start(runtime: &tokio::runtime::Runtime) -> Arc<Mutex<Option<dhat::Profiler>>> {
        let profiler = Arc::new(Mutex::new(Some(dhat::Profiler::new_heap())));
        let on_term = profiler.clone();
        runtime.spawn(async move {
            use tokio::signal::unix::{SignalKind, signal};
            let Ok(mut term) = signal(SignalKind::terminate()) else {
                return;
            };
            term.recv().await;
            if let Ok(mut profiler) = on_term.lock() {
                drop(profiler.take());
            }
        });
        profiler
    }
}
