//! The secrets a function declared: read once before it builds, then re-read on a timer,
//! each change handed to whatever depends on it.

use std::fmt;
use std::time::Duration;

use tokio::sync::watch;
use tracing::{info, warn};

use super::{DirectorySource, KeyVaultSource, Secret, SecretWatch, SourceSettings};
use crate::lifecycle::Shutdown;
use crate::telemetry::Metrics;

/// A configured secret source.
#[derive(Debug)]
pub enum SecretSource {
    Directory(DirectorySource),
    KeyVault(KeyVaultSource),
}

impl SecretSource {
    /// The source `settings` names; a Key Vault client is made here (it connects on first
    /// read).
    pub fn open(settings: &SourceSettings) -> Result<Self, String> {
        Ok(match settings {
            SourceSettings::Directory(dir) => Self::Directory(DirectorySource::new(dir)),
            SourceSettings::KeyVault(kv) => Self::KeyVault(KeyVaultSource::open(kv)?),
        })
    }

    /// Where the secrets come from, for messages.
    pub fn describe(&self) -> String {
        match self {
            Self::Directory(d) => format!("the directory {}", d.dir().display()),
            Self::KeyVault(kv) => format!("the Key Vault {}", kv.url()),
        }
    }

    /// The current value of `name`; `Ok(None)` when the source has no such secret.
    pub async fn read(&self, name: &str) -> Result<Option<Secret>, String> {
        match self {
            Self::Directory(d) => d.read(name).await,
            Self::KeyVault(kv) => kv.read(name).await,
        }
    }
}

/// Why the declared secrets could not be read: every missing and unreadable one at once.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct SecretsError {
    /// Where they were looked for.
    pub origin: String,
    pub missing: Vec<String>,
    /// Secret name and why it could not be read (never its value).
    pub unreadable: Vec<(String, String)>,
}

impl fmt::Display for SecretsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "secrets from {}:", self.origin)?;
        if !self.missing.is_empty() {
            write!(f, " missing {}", self.missing.join(", "))?;
        }
        for (name, why) in &self.unreadable {
            write!(f, "; cannot read {name}: {why}")?;
        }
        Ok(())
    }
}

/// The declared secrets and their current values.
pub struct Secrets {
    source: SecretSource,
    values: Vec<(String, watch::Sender<Secret>)>,
    reload_every: Duration,
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secrets")
            .field("source", &self.source.describe())
            .field("names", &self.names().collect::<Vec<_>>())
            .field("reload_every", &self.reload_every)
            .finish()
    }
}

impl Secrets {
    /// Reads every secret in `names`, failing with all the missing and unreadable ones.
    pub async fn load(
        source: SecretSource,
        names: &[&str],
        reload_every: Duration,
    ) -> Result<Self, SecretsError> {
        let mut error = SecretsError {
            origin: source.describe(),
            missing: Vec::new(),
            unreadable: Vec::new(),
        };
        let mut values = Vec::with_capacity(names.len());
        for name in names {
            match source.read(name).await {
                Ok(Some(value)) => values.push(((*name).to_owned(), watch::channel(value).0)),
                Ok(None) => error.missing.push((*name).to_owned()),
                Err(why) => error.unreadable.push(((*name).to_owned(), why)),
            }
        }
        if error.missing.is_empty() && error.unreadable.is_empty() {
            Ok(Self {
                source,
                values,
                reload_every,
            })
        } else {
            Err(error)
        }
    }

    /// The declared names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.values.iter().map(|(name, _)| name.as_str())
    }

    /// The value of `name`, following rotations; `None` when `name` was not declared.
    pub fn watch(&self, name: &str) -> Option<SecretWatch> {
        self.values
            .iter()
            .find(|(n, _)| n == name)
            .map(|(n, sender)| SecretWatch {
                name: n.as_str().into(),
                value: sender.subscribe(),
            })
    }

    /// Re-reads every secret once and publishes the ones that changed; returns how many
    /// did. A secret that cannot be read keeps its value: a rotation half-seen (the driver
    /// swapping files, Key Vault briefly unreachable) must not break working connections.
    pub async fn reload(&self, metrics: &Metrics) -> usize {
        let mut changed = 0;
        for (name, sender) in &self.values {
            match self.source.read(name).await {
                Ok(Some(value)) => {
                    let rotated = sender.send_if_modified(|current| {
                        let differs = *current != value;
                        if differs {
                            *current = value;
                        }
                        differs
                    });
                    if rotated {
                        changed += 1;
                        metrics
                            .secret_reloads
                            .with_label_values(&[name, "rotated"])
                            .inc();
                        info!(function = metrics.function(), secret = %name, "secret rotated; what depends on it reconnects with the new value");
                    }
                }
                Ok(None) => {
                    metrics
                        .secret_reloads
                        .with_label_values(&[name, "failed"])
                        .inc();
                    warn!(function = metrics.function(), secret = %name, "secret disappeared from the source; keeping the current value");
                }
                Err(why) => {
                    metrics
                        .secret_reloads
                        .with_label_values(&[name, "failed"])
                        .inc();
                    warn!(function = metrics.function(), secret = %name, error = %why, "secret re-read failed; keeping the current value");
                }
            }
        }
        changed
    }

    /// Re-reads the secrets every `reload_every` until `shutdown`.
    pub async fn follow_rotations(&self, metrics: Metrics, shutdown: Shutdown) {
        let mut tick = tokio::time::interval(self.reload_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick() => { self.reload(&metrics).await; }
                () = shutdown.wait() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::secrets::MountedSecrets;

    /// The `secret_reloads_total` sample for `secret` and `outcome`.
    fn reloads(metrics: &Metrics, secret: &str, outcome: &str) -> Option<u64> {
        crate::testing::metrics::sample(
            &metrics.render(),
            "fabrikam_secret_reloads_total",
            &[("secret", secret), ("outcome", outcome)],
        )
        .map(|v| v as u64)
    }

    fn directory(mount: &MountedSecrets) -> SecretSource {
        SecretSource::Directory(DirectorySource::new(mount.dir()))
    }

    #[tokio::test]
    async fn loading_names_every_missing_secret_and_no_value() {
        let mount = MountedSecrets::new(&[("Redis-AccessKey", "planted-value"), ("Empty", "")]);
        let names = [
            "Redis-AccessKey",
            "Queue--Key",
            "MongoDb-ConnectionString",
            "Empty",
        ];
        let e = Secrets::load(directory(&mount), &names, Duration::from_secs(1))
            .await
            .unwrap_err();
        assert_eq!(e.missing, ["Queue--Key", "MongoDb-ConnectionString"]);
        assert_eq!(
            e.unreadable,
            [("Empty".to_owned(), "the file is empty".to_owned())]
        );
        let message = e.to_string();
        assert!(
            message.contains("missing Queue--Key, MongoDb-ConnectionString")
                && message.contains(&mount.dir().display().to_string())
                && !message.contains("planted-value"),
            "{message}"
        );
    }

    #[tokio::test]
    async fn a_reload_publishes_only_what_changed_and_counts_it() {
        let mount = MountedSecrets::new(&[("A", "a1"), ("B", "b1")]);
        let secrets = Secrets::load(directory(&mount), &["A", "B"], Duration::from_secs(1))
            .await
            .unwrap();
        let metrics = Metrics::new("test").unwrap();
        let (mut a, b) = (secrets.watch("A").unwrap(), secrets.watch("B").unwrap());
        assert!(secrets.watch("C").is_none());
        assert_eq!(secrets.reload(&metrics).await, 0);

        mount.rotate(&[("A", "a2"), ("B", "b1")]);
        assert_eq!(secrets.reload(&metrics).await, 1);
        assert_eq!(
            a.changed().await.map(|s| s.expose().to_owned()),
            Some("a2".into())
        );
        assert!(!b.value.has_changed().unwrap());
        assert_eq!(b.current().expose(), "b1");

        // A half-finished rotation (the object gone) keeps the value that works.
        mount.rotate(&[("B", "b1")]);
        assert_eq!(secrets.reload(&metrics).await, 0);
        assert_eq!(a.current().expose(), "a2");
        assert_eq!(reloads(&metrics, "A", "rotated"), Some(1));
        assert_eq!(reloads(&metrics, "A", "failed"), Some(1));
        assert_eq!(reloads(&metrics, "B", "rotated"), None);
    }
}
