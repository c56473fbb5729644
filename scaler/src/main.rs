//! `scaler`: the entrypoint of the `fabrikam-scaler` image (`fabrikam scaler` runs the same).

use clap::Parser;
use runtime::lifecycle::{Shutdown, shutdown_on_signals};
use runtime::telemetry::{LogFormat, init_telemetry};
use scaler::ScalerArgs;

#[derive(Debug, Parser)]
#[command(
    name = "fabrikam-scaler",
    version,
    about = "The host's KEDA external-push scaler for queue functions."
)]
struct Cli {
    #[command(flatten)]
    scaler: ScalerArgs,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let _telemetry = init_telemetry(LogFormat::Auto, None, "fabrikam-scaler");
    let shutdown = Shutdown::new();
    shutdown_on_signals(shutdown.clone());
    match scaler::run(cli.scaler, shutdown).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "the scaler failed");
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
