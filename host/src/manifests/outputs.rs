//! The deployment's outputs into the manifests' input: `scripts/deploy` saves what
//! `az deployment group create --query properties.outputs` prints for `infra/main.bicep`
//! (`{"<name>": {"type": ..., "value": ...}}`), and `fabrikam manifests --outputs` puts every
//! value it holds in place of the input file's, so no placeholder id reaches a cluster.
//!
//! What infra does not know stays from the input file: the image tag (which `--images`
//! replaces with the built digests).

use std::collections::BTreeMap;

use runtime::deploy::{Deployment, Output};
use serde::Deserialize;
use serde_json::Value;

use super::input::{Environment, FunctionIdentity};

/// One function's identity among the outputs (`functionIdentities`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OutputIdentity {
    name: String,
    client_id: String,
    key_vault: String,
}

/// Replaces `env`'s infra values with those of `outputs`; every output that is missing or
/// malformed, and every disagreement with the declarations, is a problem.
pub fn apply(env: &mut Environment, outputs: &Value, functions: &[Deployment]) -> Vec<String> {
    let mut problems = Vec::new();
    let string = |name: &str, problems: &mut Vec<String>| -> Option<String> {
        match outputs.get(name).and_then(|o| o.get("value")) {
            Some(Value::String(s)) if !s.trim().is_empty() => Some(s.clone()),
            Some(other) => {
                problems.push(format!("infra outputs: {name} is {other}, not a string"));
                None
            }
            None => {
                problems.push(format!(
                    "infra outputs: {name} is missing (infra/main.bicep must output it)"
                ));
                None
            }
        }
    };
    let fields: [(&str, &mut String); 12] = [
        ("tenantId", &mut env.tenant_id),
        ("kubernetesNamespace", &mut env.namespace),
        ("registryLoginServer", &mut env.image_registry),
        ("serviceBusNamespace", &mut env.service_bus_namespace),
        ("redisHost", &mut env.redis_host),
        ("kedaClientId", &mut env.keda_client_id),
        ("scalerClientId", &mut env.scaler_client_id),
        ("privateEndpointsPrefix", &mut env.private_endpoints_cidr),
        ("ingressHostName", &mut env.public_host),
        ("ingressCertificateUri", &mut env.tls_certificate_uri),
        ("ingressPrivateIp", &mut env.ingress_private_ip),
        ("ingressSubnetName", &mut env.ingress_subnet),
    ];
    for (name, field) in fields {
        if let Some(value) = string(name, &mut problems) {
            *field = value;
        }
    }

    match outputs.get("queueNames").and_then(|o| o.get("value")) {
        Some(value) => match serde_json::from_value::<Vec<String>>(value.clone()) {
            Ok(mut created) => {
                created.sort();
                let mut declared: Vec<&str> = functions.iter().flat_map(queues_of).collect();
                declared.sort_unstable();
                declared.dedup();
                if created != declared {
                    problems.push(format!(
                        "infra outputs: queueNames {created:?} are not the queues the functions \
                         declare, {declared:?}"
                    ));
                }
            }
            Err(e) => problems.push(format!("infra outputs: queueNames: {e}")),
        },
        None => problems.push("infra outputs: queueNames is missing".to_owned()),
    }

    match outputs
        .get("functionIdentities")
        .and_then(|o| o.get("value"))
        .map(|v| serde_json::from_value::<Vec<OutputIdentity>>(v.clone()))
    {
        Some(Ok(identities)) => {
            let mut by_name = BTreeMap::new();
            for id in identities {
                by_name.insert(
                    id.name,
                    FunctionIdentity {
                        client_id: id.client_id,
                        key_vault: id.key_vault,
                    },
                );
            }
            for f in functions {
                if !by_name.contains_key(&f.name) {
                    problems.push(format!(
                        "infra outputs: functionIdentities has no identity for {}",
                        f.name
                    ));
                }
            }
            env.functions = by_name;
        }
        Some(Err(e)) => problems.push(format!("infra outputs: functionIdentities: {e}")),
        None => problems.push("infra outputs: functionIdentities is missing".to_owned()),
    }
    problems
}

fn queues_of(f: &Deployment) -> impl Iterator<Item = &str> {
    f.queue_trigger()
        .into_iter()
        .chain(f.outputs.iter().filter_map(|o| match o {
            Output::Queue { queue } => Some(queue.as_str()),
            _ => None,
        }))
}
