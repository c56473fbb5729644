//! Tokens for claims-based security: what is put on `$cbs` before a link to an entity
//! attaches, and again before it expires.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use azure_core::credentials::{Secret, TokenCredential};
use azure_core::time::OffsetDateTime;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::settings::Auth;

/// The Entra scope of Service Bus data-plane tokens.
pub const SERVICE_BUS_SCOPE: &str = "https://servicebus.azure.net/.default";
/// The `$cbs` token type of a shared access signature.
pub const SAS_TOKEN_TYPE: &str = "servicebus.windows.net:sastoken";
/// The `$cbs` token type of an Entra token.
pub const JWT_TOKEN_TYPE: &str = "jwt";
/// How long a shared access signature we make is valid.
const SAS_LIFETIME: Duration = Duration::from_secs(3600);

/// A token to put on `$cbs`.
#[derive(Clone)]
pub struct CbsToken {
    pub token: Secret,
    pub token_type: &'static str,
    pub expires_on: OffsetDateTime,
}

impl fmt::Debug for CbsToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CbsToken")
            .field("token_type", &self.token_type)
            .field("expires_on", &self.expires_on)
            .finish_non_exhaustive()
    }
}

impl CbsToken {
    /// When to put a fresh token: a tenth of its lifetime, at least a minute and at most ten,
    /// before it expires, so a slow refresh never leaves a link unauthorised.
    pub fn refresh_at(&self, now: OffsetDateTime) -> OffsetDateTime {
        let life: azure_core::time::Duration = self.expires_on - now;
        let tenth: azure_core::time::Duration = life / 10;
        let margin = tenth.clamp(
            azure_core::time::Duration::minutes(1),
            azure_core::time::Duration::minutes(10),
        );
        self.expires_on - margin
    }
}

/// Makes tokens for one connection's sign-in.
#[derive(Clone)]
pub enum TokenSource {
    SharedAccessKey { key_name: String, key: String },
    Entra(Arc<dyn TokenCredential>),
}

impl fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::SharedAccessKey { key_name, .. } => {
                write!(f, "SharedAccessKey({key_name}, <redacted>)")
            }
            Self::Entra(_) => f.write_str("Entra"),
        }
    }
}

/// Why no token could be made.
#[derive(Debug, thiserror::Error)]
#[error("cannot get a Service Bus token: {0}")]
pub struct TokenError(String);

impl TokenSource {
    /// The source `auth` asks for; `None` for brokers without claims-based security. Entra
    /// uses workload identity when its variables are present (in the cluster), and managed
    /// identity otherwise.
    pub fn for_auth(auth: &Auth) -> Result<Option<Self>, TokenError> {
        match auth {
            Auth::None => Ok(None),
            Auth::SharedAccessKey { key_name, key } => Ok(Some(Self::SharedAccessKey {
                key_name: key_name.clone(),
                key: key.clone(),
            })),
            Auth::Entra => {
                let credential: Arc<dyn TokenCredential> =
                    if std::env::var_os("AZURE_FEDERATED_TOKEN_FILE").is_some() {
                        azure_identity::WorkloadIdentityCredential::new(None)
                            .map_err(|e| TokenError(e.to_string()))?
                    } else {
                        azure_identity::ManagedIdentityCredential::new(None)
                            .map_err(|e| TokenError(e.to_string()))?
                    };
                Ok(Some(Self::Entra(credential)))
            }
        }
    }

    /// A token for `audience` (`sb://<host>/<entity>`).
    pub async fn token(&self, audience: &str) -> Result<CbsToken, TokenError> {
        match self {
            Self::SharedAccessKey { key_name, key } => {
                let expiry = SystemTime::now() + SAS_LIFETIME;
                let se = expiry
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_secs();
                let token = shared_access_signature(audience, key_name, key, se);
                let expires_on = OffsetDateTime::from_unix_timestamp(se as i64)
                    .map_err(|e| TokenError(e.to_string()))?;
                Ok(CbsToken {
                    token: Secret::new(token),
                    token_type: SAS_TOKEN_TYPE,
                    expires_on,
                })
            }
            Self::Entra(credential) => {
                let t = credential
                    .get_token(&[SERVICE_BUS_SCOPE], None)
                    .await
                    .map_err(|e| TokenError(e.to_string()))?;
                Ok(CbsToken {
                    token: t.token,
                    token_type: JWT_TOKEN_TYPE,
                    expires_on: t.expires_on,
                })
            }
        }
    }
}

/// A Service Bus shared access signature for `resource`, valid until `expiry` (Unix
/// seconds). Written here rather than with `azure_core::hmac`, which base64-decodes the key:
/// Service Bus signs with the key's UTF-8 bytes as given.
pub fn shared_access_signature(resource: &str, key_name: &str, key: &str, expiry: u64) -> String {
    let encoded_resource = form_encode(resource);
    let to_sign = format!("{encoded_resource}\n{expiry}");
    // An HMAC accepts a key of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(to_sign.as_bytes());
    let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    format!(
        "SharedAccessSignature sr={encoded_resource}&sig={}&se={expiry}&skn={}",
        form_encode(&signature),
        form_encode(key_name)
    )
}

fn form_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shared_access_signature_matches_an_independent_computation() {
        // Expected value computed with Python's hmac/hashlib/urllib.parse.quote_plus, the
        // recipe in the Service Bus "SAS authentication" docs.
        let sas = shared_access_signature(
            "sb://fabrikam.servicebus.windows.net/deliveryrequests",
            "ingestion-send",
            "dGhpcyBpcyBub3QgYSByZWFsIGtleQ==",
            1_800_000_000,
        );
        assert_eq!(sas, EXPECTED_SAS);
    }

    const EXPECTED_SAS: &str = include_str!("testdata/expected_sas.txt");

    #[test]
    fn tokens_are_refreshed_well_before_they_expire() {
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("valid");
        let hour = CbsToken {
            token: Secret::new("t"),
            token_type: SAS_TOKEN_TYPE,
            expires_on: now + azure_core::time::Duration::hours(1),
        };
        assert_eq!(
            hour.refresh_at(now),
            now + azure_core::time::Duration::minutes(54)
        );
        let short = CbsToken {
            expires_on: now + azure_core::time::Duration::minutes(2),
            ..hour.clone()
        };
        assert_eq!(
            short.refresh_at(now),
            now + azure_core::time::Duration::minutes(1)
        );
        assert!(!format!("{hour:?}").contains("\"t\""));
    }
}
