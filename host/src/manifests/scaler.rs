//! The host's KEDA external scaler in each environment (`scaler/`, image `fabrikam-scaler`):
//! one per namespace, so a developer environment's workloads are scaled by their own
//! scaler on their own queues and nothing is shared across namespaces.
//!
//! One replica, on purpose: the replicas' in-flight reports live in its memory, and two
//! replicas behind one Service would each see half of them. Its loss costs nothing
//! accepted: KEDA keeps scaling on the `azure-servicebus` trigger beside it, the scaler's
//! metric falls back (`fallback` on the ScaledObject), and the replicas' next reports
//! (every 2 s) rebuild the table after a restart.

use runtime::deploy::{Deployment, Profile};
use serde_json::{Value, json};

use super::input::Environment;
use super::objects::{
    PORT, SCALER, SCALER_GRPC_PORT, azure_destinations, container_security_context, labels,
    metadata, namespace_selector, pod_security_context, probe, quantities, scrape_annotations,
    selector,
};

/// Every object of the scaler, for the queue functions among `functions`; none without one.
pub fn objects(functions: &[Deployment], env: &Environment, profile: Profile) -> Vec<Value> {
    let queues: Vec<String> = functions
        .iter()
        .filter_map(Deployment::queue_trigger)
        .map(|q| env.queue(q))
        .collect();
    if queues.is_empty() {
        return Vec::new();
    }
    let queue_functions: Vec<&str> = functions
        .iter()
        .filter(|f| f.queue_trigger().is_some())
        .map(|f| f.name.as_str())
        .collect();
    let mut objects = vec![
        service_account(env),
        deployment(&queues, env),
        service(env),
        disruption_budget(env, profile),
    ];
    objects.extend(network_policies(&queue_functions, env));
    objects
}

fn service_account(env: &Environment) -> Value {
    let mut meta = metadata(SCALER, env);
    meta["annotations"] = json!({ "azure.workload.identity/client-id": env.scaler_client_id });
    json!({
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": meta,
        "automountServiceAccountToken": false,
    })
}

fn deployment(queues: &[String], env: &Environment) -> Value {
    let env_vars = json!([
        { "name": runtime::contract::env::PORT, "value": PORT.to_string() },
        { "name": "SCALER_GRPC_PORT", "value": SCALER_GRPC_PORT.to_string() },
        { "name": "SCALER_QUEUES", "value": queues.join(",") },
        // Read with the scaler's own identity (Azure Service Bus Data Owner on these
        // queues, which reading runtime properties needs).
        { "name": "SERVICEBUS_NAMESPACE", "value": env.service_bus_namespace },
        { "name": "LOG_FORMAT", "value": "json" },
    ]);
    let mut pod_labels = labels(SCALER);
    pod_labels["azure.workload.identity/use"] = json!("true");
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(SCALER, env),
        "spec": {
            "replicas": 1,
            "selector": { "matchLabels": selector(SCALER) },
            // Never two at once: each would hold half of the replicas' reports.
            "strategy": { "type": "Recreate" },
            "template": {
                "metadata": { "labels": pod_labels, "annotations": scrape_annotations() },
                "spec": {
                    "serviceAccountName": SCALER,
                    "automountServiceAccountToken": false,
                    "terminationGracePeriodSeconds": 10,
                    "securityContext": pod_security_context(),
                    "containers": [{
                        "name": "scaler",
                        "image": env.image("scaler"),
                        "imagePullPolicy": "Always",
                        "ports": [
                            { "name": "http", "containerPort": PORT, "protocol": "TCP" },
                            { "name": "grpc", "containerPort": SCALER_GRPC_PORT, "protocol": "TCP" },
                        ],
                        "env": env_vars,
                        "resources": {
                            "requests": quantities(50, 32),
                            "limits": quantities(200, 128),
                        },
                        "startupProbe": probe("/healthz", 2, 30),
                        // Ready once every queue's backlog has been read.
                        "readinessProbe": probe("/readyz", 5, 2),
                        "livenessProbe": probe("/healthz", 10, 3),
                        "securityContext": container_security_context(),
                    }],
                },
            },
        },
    })
}

fn service(env: &Environment) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(SCALER, env),
        "spec": {
            "type": "ClusterIP",
            "selector": selector(SCALER),
            "ports": [
                { "name": "http", "port": 80, "targetPort": "http", "protocol": "TCP" },
                { "name": "grpc", "port": SCALER_GRPC_PORT, "targetPort": "grpc", "protocol": "TCP", "appProtocol": "grpc" },
            ],
        },
    })
}

/// With one replica a budget cannot keep one running through a node drain without blocking
/// the drain, and an outage is covered by the `azure-servicebus` trigger; so the budget
/// lets it go (`maxUnavailable: 1`) and says so, rather than pinning a node.
fn disruption_budget(env: &Environment, profile: Profile) -> Value {
    let mut meta = metadata(SCALER, env);
    meta["annotations"] = json!({
        "fabrikam.example/disruption": format!(
            "one replica ({}): while it is away KEDA scales on the queue alone",
            profile.name()
        ),
    });
    json!({
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": meta,
        "spec": {
            "maxUnavailable": 1,
            "selector": { "matchLabels": selector(SCALER) },
        },
    })
}

/// KEDA's operator in (gRPC), the queue functions' reports in (HTTP), and out to Azure
/// (Entra and the Service Bus management API, HTTPS); the queue functions' egress to it.
fn network_policies(queue_functions: &[&str], env: &Environment) -> Vec<Value> {
    let policy = |name: String, spec: Value| {
        json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": metadata(&name, env),
            "spec": spec,
        })
    };
    let queue_pods = json!({
        "podSelector": {
            "matchExpressions": [{
                "key": "app.kubernetes.io/name",
                "operator": "In",
                "values": queue_functions,
            }],
        },
    });
    vec![
        policy(
            format!("{SCALER}-ingress"),
            json!({
                "podSelector": { "matchLabels": selector(SCALER) },
                "policyTypes": ["Ingress"],
                "ingress": [
                    {
                        // The AKS KEDA add-on's operator (kube-system/keda-operator).
                        "from": [{
                            "namespaceSelector": namespace_selector("kube-system"),
                            "podSelector": { "matchLabels": { "app": "keda-operator" } },
                        }],
                        "ports": [{ "protocol": "TCP", "port": SCALER_GRPC_PORT }],
                    },
                    {
                        "from": [queue_pods.clone()],
                        "ports": [{ "protocol": "TCP", "port": PORT }],
                    },
                ],
            }),
        ),
        policy(
            format!("{SCALER}-egress-azure"),
            json!({
                "podSelector": { "matchLabels": selector(SCALER) },
                "policyTypes": ["Egress"],
                "egress": [{
                    "to": azure_destinations(env),
                    "ports": [{ "protocol": "TCP", "port": 443 }],
                }],
            }),
        ),
        policy(
            "queue-functions-to-scaler".to_owned(),
            json!({
                "podSelector": queue_pods["podSelector"],
                "policyTypes": ["Egress"],
                "egress": [{
                    "to": [{ "podSelector": { "matchLabels": selector(SCALER) } }],
                    "ports": [{ "protocol": "TCP", "port": PORT }],
                }],
            }),
        ),
    ]
}
