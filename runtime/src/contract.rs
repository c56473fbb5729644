//! The deployment contract: what a function's image, its Deployment, the local process
//! runner and the runtime must agree on, each stated once.
//!
//! The runtime reads these variables and listens on this port; `fabrikam images` builds the
//! image for this user and port; `fabrikam manifests` writes the same names into the
//! Deployment and mounts the secrets where the runtime looks; `fabrikam processes` and the
//! local scale run start binaries with them. A name changed here changes in all of them.

use std::time::Duration;

/// The product's name: the namespace of the problem types (`urn:fabrikam:problem:...`), the
/// metrics' prefix, the tracer's name and the images' names.
pub const PRODUCT: &str = "fabrikam";
/// The same, as a title reads it (the OpenAPI documents').
pub const PRODUCT_TITLE: &str = "Fabrikam";

/// The port a function listens on in its container (and by default anywhere).
pub const PORT: u16 = 8080;
/// The non-root user and group every image names and every pod runs as (distroless's
/// `nonroot`).
pub const USER_ID: u32 = 65532;
/// Where the Secrets Store CSI driver mounts a function's Key Vault objects.
pub const SECRETS_MOUNT: &str = "/mnt/secrets-store";
/// How long in-flight work may finish after SIGTERM, unless a queue function declares a
/// longer handler timeout: HTTP requests answer in milliseconds, and the interceptor bounds
/// a response at 15 s.
pub const DRAIN_GRACE: Duration = Duration::from_secs(20);

/// The repository name of a function's image.
pub fn image_name(function: &str) -> String {
    format!("{PRODUCT}-{function}")
}

/// The environment variables the runtime reads from every function, each named once.
/// Variables of one adapter (a store's, a transport's) are named beside their reader.
pub mod env {
    /// The address to listen on (default all addresses).
    pub const HOST: &str = "HOST";
    /// The port to listen on (default [`super::PORT`]).
    pub const PORT: &str = "PORT";
    /// Larger request bodies get 413 (default 64 KiB).
    pub const HTTP_BODY_LIMIT_BYTES: &str = "HTTP_BODY_LIMIT_BYTES";
    /// How long in-flight work may finish after SIGTERM (default [`super::DRAIN_GRACE`]).
    pub const SHUTDOWN_GRACE_SECONDS: &str = "SHUTDOWN_GRACE_SECONDS";
    /// The embedded queue's lock duration and max delivery count (Service Bus keeps its
    /// own).
    pub const QUEUE_LOCK_DURATION_SECONDS: &str = "QUEUE_LOCK_DURATION_SECONDS";
    pub const QUEUE_MAX_DELIVERY_COUNT: &str = "QUEUE_MAX_DELIVERY_COUNT";
    /// Handlers at once, and messages locked ahead of a free handler.
    pub const QUEUE_MAX_CONCURRENCY: &str = "QUEUE_MAX_CONCURRENCY";
    pub const QUEUE_PREFETCH: &str = "QUEUE_PREFETCH";
    /// A handler running longer is abandoned.
    pub const QUEUE_HANDLER_TIMEOUT_SECONDS: &str = "QUEUE_HANDLER_TIMEOUT_SECONDS";
    /// The hold before a transiently failed message is abandoned, and its cap.
    pub const QUEUE_RETRY_DELAY_MS: &str = "QUEUE_RETRY_DELAY_MS";
    pub const QUEUE_RETRY_DELAY_MAX_SECONDS: &str = "QUEUE_RETRY_DELAY_MAX_SECONDS";
    /// Overrides the name of a function's only queue (its trigger or its output).
    pub const QUEUE_NAME: &str = "QUEUE_NAME";
    /// `auto` (JSON unless stdout is a terminal), `json` or `text`.
    pub const LOG_FORMAT: &str = "LOG_FORMAT";
    /// A directory of secrets, one file each (the CSI driver's mount,
    /// [`super::SECRETS_MOUNT`], in the cluster).
    pub const SECRETS_DIR: &str = "SECRETS_DIR";
    /// Allows the embedded queue and stores in a function binary (`1` or `true`).
    pub const FABRIKAM_LOCAL: &str = "FABRIKAM_LOCAL";
}
