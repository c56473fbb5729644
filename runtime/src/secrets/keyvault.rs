//! Azure Key Vault read directly, for running outside the cluster (or without the CSI
//! driver): the `azure_security_keyvault_secrets` client, signed in with workload identity
//! when the pod's federated token is there and with managed identity otherwise.

use std::path::PathBuf;
use std::sync::Arc;

use azure_core::credentials::TokenCredential;
use azure_core::http::{ClientOptions, StatusCode};
use azure_identity::{
    ClientAssertionCredentialOptions, ManagedIdentityCredential, ManagedIdentityCredentialOptions,
    UserAssignedId, WorkloadIdentityCredential, WorkloadIdentityCredentialOptions,
};
use azure_security_keyvault_secrets::{SecretClient, SecretClientOptions};

use super::Secret;

/// Where the vault is and who signs in to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyVaultSettings {
    /// `https://<vault>.vault.azure.net/`.
    pub url: String,
    /// The identity's client id (`AZURE_CLIENT_ID`): the workload identity's, or a
    /// user-assigned managed identity's.
    pub client_id: Option<String>,
    /// `AZURE_TENANT_ID`, for workload identity.
    pub tenant_id: Option<String>,
    /// `AZURE_FEDERATED_TOKEN_FILE`: the service account token the workload identity webhook
    /// mounts. Its presence selects workload identity.
    pub federated_token_file: Option<PathBuf>,
}

/// Secrets read from one Key Vault.
pub struct KeyVaultSource {
    client: SecretClient,
    url: String,
}

impl std::fmt::Debug for KeyVaultSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyVaultSource")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl KeyVaultSource {
    /// A client for the vault `settings` names, over the SDK's default HTTP transport.
    pub fn open(settings: &KeyVaultSettings) -> Result<Self, String> {
        Self::open_with(settings, ClientOptions::default())
    }

    /// As [`KeyVaultSource::open`], with the pipeline options given (a transport of one's
    /// own: a proxy, or a test's stand-in) for both the vault and the identity endpoint.
    pub fn open_with(settings: &KeyVaultSettings, options: ClientOptions) -> Result<Self, String> {
        crate::tls::install_provider();
        let credential = credential(settings, &options)?;
        let client = SecretClient::new(
            &settings.url,
            credential,
            Some(SecretClientOptions {
                client_options: options,
                ..Default::default()
            }),
        )
        .map_err(|e| format!("Key Vault client for {}: {e}", settings.url))?;
        Ok(Self {
            client,
            url: settings.url.clone(),
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The current version of the secret `name`; `Ok(None)` when the vault has no such
    /// secret (or it is disabled).
    pub async fn read(&self, name: &str) -> Result<Option<Secret>, String> {
        match self.client.get_secret(name, None).await {
            Ok(response) => {
                let secret = response
                    .into_model()
                    .map_err(|e| format!("unreadable answer from Key Vault: {e}"))?;
                match secret.value {
                    Some(value) if !value.is_empty() => Ok(Some(Secret::new(value))),
                    _ => Err("Key Vault returned the secret without a value".into()),
                }
            }
            Err(e) if e.http_status() == Some(StatusCode::NotFound) => Ok(None),
            // Key Vault answers a disabled secret with 403 `Forbidden`/`SecretDisabled`,
            // which is an error worth seeing, not a missing secret.
            Err(e) => Err(format!("Key Vault: {e}")),
        }
    }
}

/// Workload identity when the federated token file is configured (in the cluster), managed
/// identity otherwise (a VM or App Service), both over the same pipeline options.
fn credential(
    settings: &KeyVaultSettings,
    options: &ClientOptions,
) -> Result<Arc<dyn TokenCredential>, String> {
    match &settings.federated_token_file {
        Some(token_file) => {
            let credential =
                WorkloadIdentityCredential::new(Some(WorkloadIdentityCredentialOptions {
                    credential_options: ClientAssertionCredentialOptions {
                        client_options: options.clone(),
                    },
                    client_id: settings.client_id.clone(),
                    tenant_id: settings.tenant_id.clone(),
                    token_file_path: Some(token_file.clone()),
                    ..Default::default()
                }))
                .map_err(|e| format!("workload identity: {e}"))?;
            Ok(credential)
        }
        None => {
            let credential =
                ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
                    user_assigned_id: settings.client_id.clone().map(UserAssignedId::ClientId),
                    client_options: options.clone(),
                }))
                .map_err(|e| format!("managed identity: {e}"))?;
            Ok(credential)
        }
    }
}
