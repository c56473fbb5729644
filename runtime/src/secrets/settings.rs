//! Which secret source a function reads, from the environment.

use std::path::PathBuf;
use std::time::Duration;

use super::KeyVaultSettings;
use crate::config::EnvReader;
use crate::contract::env::SECRETS_DIR;

/// Where secrets come from, and how often they are re-read to follow rotations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretsSettings {
    /// `None`: no source (local runs on embedded defaults); functions fall back to their
    /// own variables.
    pub source: Option<SourceSettings>,
    pub reload_every: Duration,
}

/// One secret source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSettings {
    /// The CSI driver's mount (`/mnt/secrets-store` in the manifests).
    Directory(PathBuf),
    /// Key Vault, read directly.
    KeyVault(KeyVaultSettings),
}

impl Default for SecretsSettings {
    fn default() -> Self {
        Self {
            source: None,
            reload_every: Duration::from_secs(30),
        }
    }
}

impl SecretsSettings {
    /// Reads `SECRETS_DIR` (the CSI mount) or `KEY_VAULT_URL` (with `AZURE_CLIENT_ID`,
    /// `AZURE_TENANT_ID` and `AZURE_FEDERATED_TOKEN_FILE` for workload identity; managed
    /// identity without the token file), not both, and `SECRETS_RELOAD_SECONDS` (default
    /// 30; the driver's own rotation poll is two minutes, and each Key Vault read is a
    /// billed operation).
    pub fn from_env(r: &mut EnvReader<'_>) -> Self {
        let secs = Duration::from_secs;
        let reload_every = r.seconds(
            "SECRETS_RELOAD_SECONDS",
            Self::default().reload_every,
            secs(1),
            secs(86_400),
        );
        let dir = r.raw(SECRETS_DIR);
        let vault = r.raw("KEY_VAULT_URL");
        let source = match (dir, vault) {
            (Some(_), Some(_)) => {
                r.problem(
                    SECRETS_DIR,
                    "set either SECRETS_DIR or KEY_VAULT_URL, not both",
                );
                None
            }
            (Some(dir), None) => {
                let dir = PathBuf::from(dir);
                if !dir.is_dir() {
                    r.problem(
                        SECRETS_DIR,
                        format!(
                            "{} is not a directory (is the CSI volume mounted?)",
                            dir.display()
                        ),
                    );
                }
                Some(SourceSettings::Directory(dir))
            }
            (None, Some(url)) => Some(SourceSettings::KeyVault(key_vault(r, url))),
            (None, None) => None,
        };
        Self {
            source,
            reload_every,
        }
    }
}

fn key_vault(r: &mut EnvReader<'_>, url: String) -> KeyVaultSettings {
    match url::Url::parse(&url) {
        Ok(u) if u.scheme() == "https" && u.host_str().is_some() => {}
        _ => r.problem(
            "KEY_VAULT_URL",
            format!("{url:?} is not an https:// URL (https://<vault>.vault.azure.net/)"),
        ),
    }
    let client_id = r.raw("AZURE_CLIENT_ID");
    let tenant_id = r.raw("AZURE_TENANT_ID");
    let federated_token_file = r.raw("AZURE_FEDERATED_TOKEN_FILE").map(PathBuf::from);
    if let Some(file) = &federated_token_file {
        if !file.is_file() {
            r.problem(
                "AZURE_FEDERATED_TOKEN_FILE",
                format!("{} is not a file", file.display()),
            );
        }
        for (name, value) in [
            ("AZURE_CLIENT_ID", &client_id),
            ("AZURE_TENANT_ID", &tenant_id),
        ] {
            if value.is_none() {
                r.problem(
                    name,
                    "workload identity (AZURE_FEDERATED_TOKEN_FILE) needs it",
                );
            }
        }
    }
    KeyVaultSettings {
        url,
        client_id,
        tenant_id,
        federated_token_file,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ConfigError, MapEnv};

    fn read(env: MapEnv) -> Result<SecretsSettings, ConfigError> {
        let mut r = EnvReader::new(&env);
        let settings = SecretsSettings::from_env(&mut r);
        r.finish().map(|()| settings)
    }

    #[test]
    fn no_source_by_default() {
        assert_eq!(read(MapEnv::new()), Ok(SecretsSettings::default()));
    }

    #[test]
    fn a_directory_or_a_vault_selects_the_source() {
        let dir = std::env::temp_dir();
        let s = read(MapEnv::new().with(SECRETS_DIR, dir.display().to_string())).unwrap();
        assert_eq!(s.source, Some(SourceSettings::Directory(dir)));
        let s = read(
            MapEnv::new()
                .with(
                    "KEY_VAULT_URL",
                    "https://fabrikam-delivery.vault.azure.net/",
                )
                .with("AZURE_CLIENT_ID", "c")
                .with("SECRETS_RELOAD_SECONDS", "300"),
        )
        .unwrap();
        assert_eq!(s.reload_every, Duration::from_secs(300));
        let Some(SourceSettings::KeyVault(kv)) = s.source else {
            panic!("{s:?}")
        };
        assert_eq!(kv.client_id.as_deref(), Some("c"));
        assert_eq!(kv.federated_token_file, None);
    }

    #[test]
    fn every_problem_is_named() {
        let e = read(
            MapEnv::new()
                .with("KEY_VAULT_URL", "http://vault")
                .with("AZURE_FEDERATED_TOKEN_FILE", "/nonexistent/token"),
        )
        .unwrap_err();
        for name in [
            "KEY_VAULT_URL",
            "AZURE_FEDERATED_TOKEN_FILE",
            "AZURE_CLIENT_ID",
            "AZURE_TENANT_ID",
        ] {
            assert!(e.names(name), "{name}: {e}");
        }
        let e = read(
            MapEnv::new()
                .with(SECRETS_DIR, "/nonexistent/mount")
                .with("SECRETS_RELOAD_SECONDS", "0"),
        )
        .unwrap_err();
        assert!(
            e.names(SECRETS_DIR) && e.names("SECRETS_RELOAD_SECONDS"),
            "{e}"
        );
        let both = MapEnv::new()
            .with(SECRETS_DIR, "/tmp")
            .with("KEY_VAULT_URL", "https://v.vault.azure.net/");
        assert!(read(both).unwrap_err().names(SECRETS_DIR));
    }
}
