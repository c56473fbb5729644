//! Secrets: the values a function must never print, read from a secret source and followed
//! through rotations.
//!
//! A function declares the secrets it needs by name in its deployment declaration (the
//! secret of a store output, or [`crate::deploy::Deployment::secrets`]: Key Vault object
//! names, such as `Redis-AccessKey`). When a source is configured
//! ([`SecretsSettings`]) the host reads every declared secret before the function builds,
//! failing start-up with one message that names every missing one, then re-reads them on a
//! timer and hands each change to whatever depends on it ([`SecretWatch`]).
//!
//! Two sources: the directory the Secrets Store CSI driver mounts ([`DirectorySource`], one
//! file per object), and Azure Key Vault read directly ([`KeyVaultSource`]), for running
//! outside the cluster.

mod directory;
mod keyvault;
mod settings;
mod store;

use std::fmt;
use std::sync::Arc;

use tokio::sync::watch;

pub use directory::DirectorySource;
pub use keyvault::{KeyVaultSettings, KeyVaultSource};
pub use settings::{SecretsSettings, SourceSettings};
pub use store::{SecretSource, Secrets, SecretsError};

/// A secret value. `Debug` and `Display` print `<redacted>`, so a secret inside a settings
/// struct, an error or a log field cannot leak by accident; [`Secret::expose`] is the one
/// way to the value, for the code that signs in with it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<str>);

impl Secret {
    pub fn new(value: impl Into<Arc<str>>) -> Self {
        Self(value.into())
    }

    /// The value itself: for signing in, never for printing.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// One secret's current value, following its rotations.
#[derive(Clone)]
pub struct SecretWatch {
    name: Arc<str>,
    value: watch::Receiver<Secret>,
}

impl fmt::Debug for SecretWatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretWatch")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl SecretWatch {
    /// A value that never changes: for settings that come from elsewhere, and for tests.
    pub fn fixed(name: &str, value: Secret) -> Self {
        let (_, value) = watch::channel(value);
        Self {
            name: name.into(),
            value,
        }
    }

    /// The secret's object name (not its value; safe to log).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The value now.
    pub fn current(&self) -> Secret {
        self.value.borrow().clone()
    }

    /// Waits for the next rotation and returns the new value; `None` once the source has
    /// stopped (the function is shutting down), or at once for a fixed value.
    pub async fn changed(&mut self) -> Option<Secret> {
        self.value.changed().await.ok()?;
        Some(self.value.borrow_and_update().clone())
    }

    /// Marks the current value as seen, so [`SecretWatch::changed`] waits for the next one.
    pub fn mark_seen(&mut self) {
        self.value.mark_unchanged();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_never_prints_its_value() {
        let secret = Secret::new("hunter2-planted");
        assert_eq!(format!("{secret}"), "<redacted>");
        assert_eq!(format!("{secret:?}"), "Secret(<redacted>)");
        assert_eq!(format!("{:?}", Some(&secret)), "Some(Secret(<redacted>))");
        assert_eq!(secret.expose(), "hunter2-planted");
        let watch = SecretWatch::fixed("Redis-AccessKey", secret);
        let debug = format!("{watch:?}");
        assert!(
            debug.contains("Redis-AccessKey") && !debug.contains("hunter2"),
            "{debug}"
        );
    }

    #[tokio::test]
    async fn a_fixed_value_never_changes() {
        let mut watch = SecretWatch::fixed("K", Secret::new("v"));
        assert_eq!(watch.changed().await, None);
        assert_eq!(watch.current().expose(), "v");
    }
}
