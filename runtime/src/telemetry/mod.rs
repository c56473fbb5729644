//! Logs and metrics.
//!
//! Logs are JSON lines when stdout is not a terminal (what a log pipeline wants) and
//! readable text when it is.

mod json_lines;
mod metrics;
pub mod startup;

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

pub use json_lines::JsonLines;
pub use metrics::{MetricSet, Metrics};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
    /// JSON unless stdout is a terminal.
    Auto,
}

/// Installs the global tracing subscriber; `RUST_LOG` filters (default `info`).
/// Safe to call more than once: later calls do nothing.
pub fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stdout().is_terminal(),
    };
    // Err means a subscriber is already installed (tests, or the dev launcher): keep it.
    if json {
        let _ = tracing_subscriber::registry()
            .with(filter)
            .with(JsonLines::new(std::io::stdout))
            .try_init();
    } else {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_target(false)
            .try_init();
    }
}
