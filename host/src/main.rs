//! `fabrikam dev`: the whole system on this machine, embedded queue and stores.

use std::process::ExitCode;

use runtime::config::ProcessEnv;
use runtime::lifecycle::{Shutdown, shutdown_on_signals};
use runtime::telemetry::init_telemetry;
use runtime::telemetry::startup::mark_process_start;

const USAGE: &str = "usage: fabrikam dev\n\n  dev    run all five functions and the gateway locally on embedded defaults\n";

fn main() -> ExitCode {
    mark_process_start();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None | Some("dev") => dev(),
        Some("-h" | "--help" | "help") => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some(other) => {
            eprint!("fabrikam: unknown command {other:?}\n\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn dev() -> ExitCode {
    let config = match host::DevConfig::from_env(&ProcessEnv) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("fabrikam: {e}");
            return ExitCode::from(2);
        }
    };
    // Kept until the async runtime is gone, so the last spans are exported.
    let _telemetry = init_telemetry(
        config.host.log_format,
        config.host.otlp.as_ref(),
        "fabrikam-dev",
    );
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("fabrikam: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let shutdown = Shutdown::new();
        shutdown_on_signals(shutdown.clone());
        match host::start_dev(config, shutdown).await {
            Ok(system) => {
                system.stopped().await;
                tracing::info!("stopped");
                ExitCode::SUCCESS
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot start");
                eprintln!("fabrikam: {e}");
                ExitCode::FAILURE
            }
        }
    })
}
