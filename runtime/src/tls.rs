//! The process's TLS crypto provider.
//!
//! rustls picks its provider from its crate features only when exactly one is enabled. The
//! graph enables two (ring through the Redis and MongoDB clients, aws-lc-rs through
//! azure_core_amqp), so every client that builds a TLS config calls [`install_provider`]
//! first. aws-lc-rs is chosen because the Azure SDK uses it.

/// Installs aws-lc-rs as the process default, once; later calls do nothing.
pub fn install_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Err means a provider is already installed, which is all this asks for.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    });
}
