//! Cold-start phases: how long after the process started each step of start-up finished,
//! as the gauge `fabrikam_startup_phase_seconds{phase}` (set once each, in phase order).
//!
//! The clock starts at [`mark_process_start`], the first thing the host's `main` does; the
//! few hundred microseconds between `exec` and `main` (loader, Rust runtime set-up) are not
//! in it, which is why `scripts/bench` also times from `exec` outside the process.

use std::sync::OnceLock;
use std::time::Instant;

static PROCESS_START: OnceLock<Instant> = OnceLock::new();

/// Starts the start-up clock; later calls do nothing.
pub fn mark_process_start() {
    PROCESS_START.get_or_init(Instant::now);
}

/// Seconds since [`mark_process_start`] (or since the first phase, if nothing marked it).
pub(crate) fn seconds_since_start() -> f64 {
    PROCESS_START
        .get_or_init(Instant::now)
        .elapsed()
        .as_secs_f64()
}

/// The steps of start-up, in the order they finish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The environment was read and validated, the async runtime is up and the port bound.
    ConfigLoaded,
    /// The declared secrets were read from the secret source (at once when there is none).
    SecretsLoaded,
    /// The function built its app: stores connected or configured, clients made.
    AppBuilt,
    /// Every trigger is ready: HTTP listening and, for queue functions, receiving.
    TriggersReady,
    /// The first request on one of the function's own routes, or the first message, was
    /// handled (the host's probes and `/metrics` do not count).
    FirstHandled,
}

impl Phase {
    pub const ALL: [Phase; 5] = [
        Phase::ConfigLoaded,
        Phase::SecretsLoaded,
        Phase::AppBuilt,
        Phase::TriggersReady,
        Phase::FirstHandled,
    ];

    /// The `phase` label.
    pub fn label(self) -> &'static str {
        match self {
            Phase::ConfigLoaded => "config_loaded",
            Phase::SecretsLoaded => "secrets_loaded",
            Phase::AppBuilt => "app_built",
            Phase::TriggersReady => "triggers_ready",
            Phase::FirstHandled => "first_handled",
        }
    }
}
