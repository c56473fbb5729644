//! The per-environment input file (`keda/input/<profile>.json`): the values that differ
//! between environments, most of them outputs of `infra/main.bicep`.

use std::collections::BTreeMap;

use runtime::deploy::Deployment;
use serde::{Deserialize, Serialize};

use crate::images::{self, Catalog};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Environment {
    /// The Kubernetes namespace (infra's `kubernetesNamespace`; the federated credentials
    /// name its service accounts).
    pub namespace: String,
    /// `registryLoginServer`, such as `fabrikamdev.azurecr.io`.
    pub image_registry: String,
    /// The tag every function image is deployed at.
    pub image_tag: String,
    /// `tenantId`.
    pub tenant_id: String,
    /// `serviceBusNamespace`: the fully qualified name, `<name>.servicebus.windows.net`.
    pub service_bus_namespace: String,
    /// `redisHost`.
    pub redis_host: String,
    /// The host name the public ingress answers on.
    pub public_host: String,
    /// The Key Vault certificate the ingress serves (app routing reads it through its
    /// add-on identity), as `https://<vault>.vault.azure.net/certificates/<name>`.
    pub tls_certificate_uri: String,
    /// `kedaClientId`: KEDA's operator identity, which reads queue depth.
    pub keda_client_id: String,
    /// `scalerClientId`: the host's scaler's identity (`fabrikam-scaler`), which reads the
    /// queues' runtime properties.
    pub scaler_client_id: String,
    /// `privateEndpointsPrefix`: the spoke subnet holding the private endpoints of the
    /// vaults and stores (CIDR), which the functions' egress policies allow.
    pub private_endpoints_cidr: String,
    /// `ingressPrivateIp`: the fixed address of the internal load balancer of the app-routing
    /// NGINX controller, which Application Gateway forwards to.
    pub ingress_private_ip: String,
    /// `ingressSubnetName`: the spoke subnet that load balancer takes its address from.
    pub ingress_subnet: String,
    /// Per function: `<function>ClientId` and `<function>KeyVault`.
    pub functions: BTreeMap<String, FunctionIdentity>,
    /// The named developer environment this input renders (`--environment`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment_name: Option<String>,
    /// The built images (`fabrikam images`' catalog), when Deployments should name each
    /// image by its digest rather than by `imageTag`.
    #[serde(skip)]
    pub pinned_images: Option<Catalog>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FunctionIdentity {
    pub client_id: String,
    /// The function's Key Vault; only a function that declares secrets needs one.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub key_vault: String,
}

impl Environment {
    /// The Service Bus namespace's short name, which KEDA's scaler wants.
    pub fn service_bus_name(&self) -> &str {
        self.service_bus_namespace
            .split('.')
            .next()
            .unwrap_or(&self.service_bus_namespace)
    }

    /// Makes this the named developer environment `name` of the dev profile: its own
    /// namespace `<namespace>-<name>` and public host `<name>.<publicHost>`, so that any
    /// number of them share one cluster without an object name, host or namespace in
    /// common. `name` must be a short DNS label.
    pub fn for_developer(&mut self, name: &str) -> Result<(), String> {
        let valid = !name.is_empty()
            && name.len() <= 20
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && !name.ends_with('-')
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !valid {
            return Err(format!(
                "environment {name:?} must be a DNS label of at most 20 characters: lower-case \
                 letters, digits and '-', starting with a letter"
            ));
        }
        self.namespace = format!("{}-{name}", self.namespace);
        self.public_host = format!("{name}.{}", self.public_host);
        self.environment_name = Some(name.to_owned());
        Ok(())
    }

    /// The name a declared queue has here: `<queue>-<environment>` in a named environment,
    /// whose messages must not reach another environment's workflow.
    pub fn queue(&self, queue: &str) -> String {
        // The runtime's own rule, so the queue made here is the one a replica receives from.
        runtime::deploy::scoped_queue(queue, self.environment_name.as_deref())
    }

    /// A function's image: `<registry>/fabrikam-<function>:<tag>`, plus `@<digest>` when
    /// the images are pinned (the tag is then the catalog's, the one that was pushed).
    pub fn image(&self, function: &str) -> String {
        let name = images::image_name(function);
        match self.pinned_images.as_ref().and_then(|c| c.get(function)) {
            Some(image) => format!(
                "{}/{name}:{}@{}",
                self.image_registry, image.tag, image.digest
            ),
            None => format!("{}/{name}:{}", self.image_registry, self.image_tag),
        }
    }

    /// Every problem with the input for these functions.
    pub fn check(&self, functions: &[Deployment]) -> Vec<String> {
        let mut problems = Vec::new();
        let fields = [
            ("namespace", &self.namespace),
            ("imageRegistry", &self.image_registry),
            ("imageTag", &self.image_tag),
            ("tenantId", &self.tenant_id),
            ("serviceBusNamespace", &self.service_bus_namespace),
            ("redisHost", &self.redis_host),
            ("publicHost", &self.public_host),
            ("tlsCertificateUri", &self.tls_certificate_uri),
            ("kedaClientId", &self.keda_client_id),
            ("scalerClientId", &self.scaler_client_id),
            ("privateEndpointsCidr", &self.private_endpoints_cidr),
            ("ingressSubnet", &self.ingress_subnet),
        ];
        for (name, value) in fields {
            if value.trim().is_empty() {
                problems.push(format!("input: {name} is empty"));
            }
        }
        if !is_ipv4_cidr(&self.private_endpoints_cidr) {
            problems.push(format!(
                "input: privateEndpointsCidr {:?} is not an IPv4 CIDR such as 10.240.6.0/27",
                self.private_endpoints_cidr
            ));
        }
        if self
            .ingress_private_ip
            .parse::<std::net::Ipv4Addr>()
            .is_err()
        {
            problems.push(format!(
                "input: ingressPrivateIp {:?} is not an IPv4 address",
                self.ingress_private_ip
            ));
        }
        if self.image_tag == "latest" {
            problems.push("input: imageTag must name a release, not latest".to_owned());
        }
        if !self.service_bus_namespace.contains('.') {
            problems.push(format!(
                "input: serviceBusNamespace {:?} must be fully qualified (<name>.servicebus.windows.net)",
                self.service_bus_namespace
            ));
        }
        for f in functions {
            match self.functions.get(&f.name) {
                None => problems.push(format!(
                    "input: functions.{} is missing (its clientId and keyVault)",
                    f.name
                )),
                Some(id) if id.client_id.trim().is_empty() => {
                    problems.push(format!("input: functions.{}.clientId is empty", f.name));
                }
                Some(id) if !f.secrets.is_empty() && id.key_vault.trim().is_empty() => {
                    problems.push(format!(
                        "input: functions.{}.keyVault is empty, and it declares secrets",
                        f.name
                    ));
                }
                Some(_) => {}
            }
        }
        if let Some(catalog) = &self.pinned_images {
            for f in functions {
                if catalog.get(&f.name).is_none() {
                    problems.push(format!(
                        "images: no image of {} was built (run scripts/images)",
                        f.name
                    ));
                }
            }
        }
        for name in self.functions.keys() {
            if !functions.iter().any(|f| &f.name == name) {
                problems.push(format!("input: functions.{name} is not a function"));
            }
        }
        problems
    }
}

/// `a.b.c.d/n`, n at most 32.
fn is_ipv4_cidr(text: &str) -> bool {
    text.split_once('/').is_some_and(|(addr, bits)| {
        addr.parse::<std::net::Ipv4Addr>().is_ok() && bits.parse::<u8>().is_ok_and(|b| b <= 32)
    })
}
