//! Logs, metrics and optional trace export.
//!
//! Logs are JSON lines when stdout is not a terminal (what a log pipeline wants) and
//! readable text when it is. Spans are exported over OTLP only when configured
//! ([`OtlpSettings`]).

pub(crate) mod json_lines;
mod metrics;
pub mod otlp;
pub mod startup;

use std::io::IsTerminal;

use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

pub use json_lines::JsonLines;
pub use metrics::{MetricSet, Metrics};
pub use otlp::OtlpSettings;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
    /// JSON unless stdout is a terminal.
    Auto,
}

/// Keeps trace export running; dropping it sends the spans still buffered.
#[derive(Debug, Default)]
#[must_use = "dropping the guard stops trace export"]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(e) = provider.shutdown()
        {
            eprintln!("OTLP export: spans may be lost at exit: {e}");
        }
    }
}

/// Installs the global tracing subscriber: log lines filtered by `RUST_LOG` (default
/// `info`), and with `otlp` set, span export under `service` unless `OTEL_SERVICE_NAME`
/// names another. Call before starting an async runtime. Safe to call more than once:
/// later calls do nothing. An exporter that cannot be built is reported and export stays
/// off; the function still runs.
pub fn init_telemetry(
    format: LogFormat,
    otlp: Option<&OtlpSettings>,
    service: &str,
) -> TelemetryGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stdout().is_terminal(),
    };
    let log_lines = if json {
        JsonLines::new(std::io::stdout).boxed()
    } else {
        tracing_subscriber::fmt::layer().with_target(false).boxed()
    };
    let (provider, export_error) = match otlp.map(|o| o.provider(service)) {
        Some(Ok(provider)) => (Some(provider), None),
        Some(Err(e)) => (None, Some(e)),
        None => (None, None),
    };
    // Err means a subscriber is already installed (tests, or the dev launcher): keep it.
    let installed = tracing_subscriber::registry()
        .with(log_lines)
        .with(provider.as_ref().map(otlp::layer))
        .with(filter)
        .try_init()
        .is_ok();
    if let Some(e) = export_error {
        tracing::error!(error = %e, "trace export is off");
    }
    let provider = provider.filter(|_| installed);
    if provider.is_some() {
        otlp::mark_exporting();
    }
    TelemetryGuard { provider }
}
