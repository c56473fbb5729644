//! The Key Vault secret source against a local HTTPS stand-in.
//!
//! The stand-in plays both services the SDK talks to, over TLS with a throwaway certificate
//! authority: Microsoft Entra's token endpoint (`POST /{tenant}/oauth2/v2.0/token`, checking
//! the workload identity's client assertion) and Key Vault's secrets REST shape
//! (`GET /secrets/{name}/?api-version=...`, answering an unauthenticated request with the
//! `WWW-Authenticate` challenge the SDK discovers its scope from). The client reaches it under
//! the real host names: the test's HTTP transport resolves them to the stand-in. What it
//! does not cover: real Entra tokens and Key Vault's own authorisation (RBAC), which need
//! Azure.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use azure_core::cloud::{CloudConfiguration, CustomConfiguration};
use azure_core::http::{ClientOptions, Transport};
use runtime::lifecycle::Shutdown;
use runtime::secrets::{KeyVaultSettings, KeyVaultSource, SecretSource, Secrets};
use runtime::telemetry::Metrics;
use serde_json::json;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tower::ServiceExt as _;

const VAULT_HOST: &str = "fabrikam-delivery.vault.azure.net";
const LOGIN_HOST: &str = "login.microsoftonline.com";
const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const CLIENT_ID: &str = "0d3c2f6a-5d43-4c1f-9a4e-1f7a2f0c9b11";
const ACCESS_TOKEN: &str = "stand-in-access-token";

/// What the stand-in holds and saw.
#[derive(Default)]
struct Vault {
    secrets: HashMap<String, String>,
    federated_token: String,
    token_requests: Vec<HashMap<String, String>>,
    unauthenticated_gets: usize,
    api_versions: Vec<String>,
}

type Shared = Arc<Mutex<Vault>>;

async fn token(State(vault): State<Shared>, Path(tenant): Path<String>, body: Bytes) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let mut vault = vault.lock().unwrap();
    vault.token_requests.push(form.clone());
    let valid = tenant == TENANT
        && form.get("client_id").map(String::as_str) == Some(CLIENT_ID)
        && form.get("client_assertion") == Some(&vault.federated_token)
        && form.get("grant_type").map(String::as_str) == Some("client_credentials");
    if !valid {
        let body = json!({"error": "invalid_client", "error_description": "AADSTS700016"});
        return (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response();
    }
    axum::Json(json!({
        "token_type": "Bearer",
        "expires_in": 3599,
        "ext_expires_in": 3599,
        "access_token": ACCESS_TOKEN,
    }))
    .into_response()
}

async fn secret(
    State(vault): State<Shared>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let mut vault = vault.lock().unwrap();
    let authorized = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        == Some(&format!("Bearer {ACCESS_TOKEN}"));
    if !authorized {
        vault.unauthenticated_gets += 1;
        let challenge = format!(
            "Bearer authorization=\"https://{LOGIN_HOST}/{TENANT}\", resource=\"https://vault.azure.net\""
        );
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, challenge)],
            axum::Json(json!({"error": {"code": "Unauthorized", "message": "AKV10000"}})),
        )
            .into_response();
    }
    vault.api_versions.push(query.unwrap_or_default());
    match vault.secrets.get(&name) {
        Some(value) => axum::Json(json!({
            "value": value,
            "id": format!("https://{VAULT_HOST}/secrets/{name}/6f1d3b0c"),
            "attributes": {"enabled": true, "created": 1_763_683_200, "updated": 1_763_683_200},
        }))
        .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"error": {"code": "SecretNotFound", "message": format!("A secret with (name/id) {name} was not found in this key vault.")}})),
        )
            .into_response(),
    }
}

/// The stand-in on a loopback port behind TLS; returns its address and the CA certificate
/// that signed its certificate.
async fn stand_in(vault: Shared) -> (SocketAddr, CertificateDer<'static>) {
    runtime::tls::install_provider();
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec![VAULT_HOST.to_owned(), LOGIN_HOST.to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let tls = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
        )
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(tls));
    let app = Router::new()
        .route("/{tenant}/oauth2/v2.0/token", post(token))
        .route("/secrets/{name}", get(secret))
        .route("/secrets/{name}/", get(secret))
        .with_state(vault);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, app) = (acceptor.clone(), app.clone());
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(move |req| app.clone().oneshot(req));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, ca_cert.der().clone())
}

/// Pipeline options whose transport trusts only the stand-in's CA and sends both Azure
/// host names to it, with the stand-in's port as the authority host's.
fn options(addr: SocketAddr, ca: &CertificateDer<'static>) -> ClientOptions {
    let http = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_der(ca).unwrap()])
        .resolve(VAULT_HOST, addr)
        .resolve(LOGIN_HOST, addr)
        .build()
        .unwrap();
    let mut cloud = CustomConfiguration::default();
    cloud.authority_host = format!("https://{LOGIN_HOST}:{}", addr.port());
    ClientOptions {
        transport: Some(Transport::new(Arc::new(http))),
        cloud: Some(Arc::new(CloudConfiguration::from(cloud))),
        ..Default::default()
    }
}

struct Fixture {
    vault: Shared,
    settings: KeyVaultSettings,
    options: ClientOptions,
    _token_dir: tempdir::Dir,
}

mod tempdir {
    /// A directory removed on drop.
    pub struct Dir(pub std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

async fn fixture(secrets: &[(&str, &str)]) -> Fixture {
    let dir = std::env::temp_dir().join(format!("wi-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let token_file = dir.join("azure-identity-token");
    let federated = format!(
        "eyJhbGciOiJSUzI1NiJ9.service-account-{}",
        uuid::Uuid::new_v4()
    );
    std::fs::write(&token_file, &federated).unwrap();
    let vault = Arc::new(Mutex::new(Vault {
        secrets: secrets
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        federated_token: federated,
        ..Default::default()
    }));
    let (addr, ca) = stand_in(vault.clone()).await;
    Fixture {
        settings: KeyVaultSettings {
            url: format!("https://{VAULT_HOST}:{}/", addr.port()),
            client_id: Some(CLIENT_ID.into()),
            tenant_id: Some(TENANT.into()),
            federated_token_file: Some(token_file),
        },
        options: options(addr, &ca),
        vault,
        _token_dir: tempdir::Dir(dir),
    }
}

#[tokio::test]
async fn reads_secrets_signed_in_with_workload_identity_after_the_challenge() {
    let f = fixture(&[("Redis-AccessKey", "planted-redis-key")]).await;
    let source = KeyVaultSource::open_with(&f.settings, f.options.clone()).unwrap();

    let value = source.read("Redis-AccessKey").await.unwrap().unwrap();
    assert_eq!(value.expose(), "planted-redis-key");
    assert_eq!(source.read("Queue--Key").await.unwrap(), None);

    let vault = f.vault.lock().unwrap();
    // The first request went without a token, drew the challenge, and the retry carried
    // a token for the scope the challenge named.
    assert_eq!(vault.unauthenticated_gets, 1);
    assert_eq!(vault.token_requests.len(), 1, "the token is cached");
    let form = &vault.token_requests[0];
    assert_eq!(form["scope"], "https://vault.azure.net/.default");
    assert_eq!(
        form["client_assertion_type"],
        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    );
    assert!(
        vault
            .api_versions
            .iter()
            .all(|q| q.starts_with("api-version=")),
        "{:?}",
        vault.api_versions
    );
}

#[tokio::test]
async fn start_up_names_every_missing_secret_and_rotation_is_followed() {
    let f = fixture(&[("MongoDb-ConnectionString", "mongodb://first")]).await;
    let source = || {
        SecretSource::KeyVault(KeyVaultSource::open_with(&f.settings, f.options.clone()).unwrap())
    };
    let every = std::time::Duration::from_secs(1);

    let e = Secrets::load(
        source(),
        &["MongoDb-ConnectionString", "Redis-AccessKey"],
        every,
    )
    .await
    .unwrap_err();
    assert_eq!(e.missing, ["Redis-AccessKey"]);
    assert!(e.to_string().contains(VAULT_HOST), "{e}");
    assert!(!e.to_string().contains("mongodb://first"), "{e}");

    let secrets = Secrets::load(source(), &["MongoDb-ConnectionString"], every)
        .await
        .unwrap();
    let mut watch = secrets.watch("MongoDb-ConnectionString").unwrap();
    f.vault
        .lock()
        .unwrap()
        .secrets
        .insert("MongoDb-ConnectionString".into(), "mongodb://second".into());
    let metrics = Metrics::new("package").unwrap();
    let shutdown = Shutdown::new();
    let follower = tokio::spawn({
        let (metrics, shutdown) = (metrics.clone(), shutdown.clone());
        async move { secrets.follow_rotations(metrics, shutdown).await }
    });
    let rotated = tokio::time::timeout(std::time::Duration::from_secs(10), watch.changed())
        .await
        .expect("the rotation is seen within a few reloads");
    assert_eq!(rotated.unwrap().expose(), "mongodb://second");
    shutdown.trigger();
    follower.await.unwrap();
    let rotations = runtime::testing::metrics::sample(
        &metrics.render(),
        "fabrikam_secret_reloads_total",
        &[
            ("secret", "MongoDb-ConnectionString"),
            ("outcome", "rotated"),
        ],
    );
    assert_eq!(rotations, Some(1.0));
}

#[tokio::test]
async fn a_wrong_federated_token_is_an_error_without_the_token() {
    let f = fixture(&[("Redis-AccessKey", "v")]).await;
    let federated = std::mem::take(&mut f.vault.lock().unwrap().federated_token);
    let source = KeyVaultSource::open_with(&f.settings, f.options.clone()).unwrap();
    let e = source.read("Redis-AccessKey").await.unwrap_err();
    assert!(!e.contains(&federated), "{e}");
    assert!(!e.is_empty());
}
