//! The Kubernetes and KEDA objects of one environment, built from the declarations.

use runtime::deploy::{Deployment, Output, Profile};
use serde_json::{Value, json};

use super::input::Environment;
use runtime::contract::{self, USER_ID};

/// The port every function listens on (`PORT`); its Service answers on 80.
pub const PORT: u16 = contract::PORT;
/// How much longer than the drain Kubernetes waits before killing: the abandon of what
/// could not finish, closing the broker link and exiting.
const KILL_MARGIN_SECONDS: u32 = 10;
/// The host's own KEDA external scaler (`scaler/`): its name, and its ports for KEDA
/// (gRPC) and for the replicas' reports, probes and metrics (HTTP).
pub const SCALER: &str = "fabrikam-scaler";
pub(super) const SCALER_GRPC_PORT: u16 = 9090;

/// How long a replica drains after SIGTERM: a queue function lets a handler that has just
/// started run to its timeout, so a scale-in never cuts one off.
pub fn drain_grace_seconds(f: &Deployment) -> u32 {
    let default = u32::try_from(contract::DRAIN_GRACE.as_secs()).unwrap_or(u32::MAX);
    f.handler_timeout_seconds().unwrap_or(default)
}

/// `terminationGracePeriodSeconds`: the drain plus the margin.
pub fn termination_grace_seconds(f: &Deployment) -> u32 {
    drain_grace_seconds(f) + KILL_MARGIN_SECONDS
}
/// Where the CSI driver mounts the Key Vault objects (`SECRETS_DIR`).
pub const SECRETS_MOUNT: &str = contract::SECRETS_MOUNT;
/// The KEDA HTTP add-on's interceptor, reached from this namespace under this name.
pub const INTERCEPTOR: &str = "keda-http-interceptor";
/// Where the HTTP add-on runs: `scripts/deploy` installs its chart into kube-system, beside
/// the AKS KEDA add-on, so its services are named so.
pub(super) const HTTP_ADD_ON_NAMESPACE: &str = "kube-system";
const INTERCEPTOR_PORT: u16 = 8080;

/// The interceptor's proxy Service, which the ExternalName Service points at.
fn interceptor_target() -> String {
    format!("keda-add-ons-http-interceptor-proxy.{HTTP_ADD_ON_NAMESPACE}.svc.cluster.local")
}

/// The HTTP add-on's external scaler, which KEDA asks for an HTTP function's traffic.
fn external_scaler() -> String {
    format!("keda-add-ons-http-external-scaler.{HTTP_ADD_ON_NAMESPACE}:9090")
}
/// The ingress class of the internal NGINX controller the AKS application routing add-on runs
/// for this system ([`cluster`]), and the add-on's namespace.
const INGRESS_CLASS: &str = "fabrikam-internal";
const INGRESS_NAMESPACE: &str = "app-routing-system";
/// The namespaces whose pods' `prometheus.io/*` annotations managed Prometheus follows: every
/// environment's namespace, developer environments (`<namespace>-<name>`) included.
fn scraped_namespaces(env: &Environment) -> String {
    format!("^{}(-.+)?$", env.namespace)
}

pub(super) fn labels(name: &str) -> Value {
    json!({
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/part-of": "fabrikam",
    })
}

pub(super) fn selector(name: &str) -> Value {
    json!({ "app.kubernetes.io/name": name })
}

pub(super) fn metadata(name: &str, env: &Environment) -> Value {
    json!({ "name": name, "namespace": env.namespace, "labels": labels(name) })
}

pub(super) fn namespace_selector(name: &str) -> Value {
    json!({ "matchLabels": { "kubernetes.io/metadata.name": name } })
}

/// The environment variables the function reads, from its declaration and the input.
fn env_vars(f: &Deployment, env: &Environment) -> Vec<Value> {
    let mut vars = vec![
        (contract::env::PORT.to_owned(), PORT.to_string()),
        (contract::env::LOG_FORMAT.to_owned(), "json".to_owned()),
        (
            contract::env::SHUTDOWN_GRACE_SECONDS.to_owned(),
            drain_grace_seconds(f).to_string(),
        ),
    ];
    if let Some(timeout) = f.handler_timeout_seconds() {
        vars.push((
            contract::env::QUEUE_HANDLER_TIMEOUT_SECONDS.to_owned(),
            timeout.to_string(),
        ));
        // Reports of the messages each replica holds, which keep KEDA from scaling in a
        // busy replica (the pod's name comes from the downward API, below).
        vars.push((
            runtime::dispatch::report::SCALER_URL.to_owned(),
            format!("http://{SCALER}"),
        ));
    }
    if !f.secrets.is_empty() {
        vars.push((
            contract::env::SECRETS_DIR.to_owned(),
            SECRETS_MOUNT.to_owned(),
        ));
    }
    let queue = f.queue_trigger().map(str::to_owned).or_else(|| {
        f.outputs.iter().find_map(|o| match o {
            Output::Queue { queue } => Some(queue.clone()),
            _ => None,
        })
    });
    if let Some(queue) = queue {
        vars.push((
            "SERVICEBUS_NAMESPACE".to_owned(),
            env.service_bus_namespace.clone(),
        ));
        vars.push((contract::env::QUEUE_NAME.to_owned(), env.queue(&queue)));
    }
    for output in &f.outputs {
        match output {
            Output::Function { variable, .. } => {
                vars.push((variable.clone(), interceptor_url(env)))
            }
            Output::Redis { .. } => vars.push((
                "REDIS_URL".to_owned(),
                format!("rediss://{}:6380", env.redis_host),
            )),
            Output::Queue { .. } | Output::MongoDb { .. } => {}
        }
    }
    if let Some(name) = &env.environment_name {
        // Scopes the function's Redis keys and MongoDB databases to this environment.
        vars.push((runtime::config::ENVIRONMENT_NAME.to_owned(), name.clone()));
    }
    vars.extend(f.env.iter().cloned());
    let mut vars: Vec<Value> = vars
        .into_iter()
        .map(|(name, value)| json!({ "name": name, "value": value }))
        .collect();
    if f.queue_trigger().is_some() {
        vars.push(json!({
            "name": runtime::dispatch::report::POD_NAME,
            "valueFrom": { "fieldRef": { "fieldPath": "metadata.name" } },
        }));
    }
    vars
}

/// CPU and memory as Kubernetes quantities.
pub(super) fn quantities(cpu_millis: u32, memory_mib: u32) -> Value {
    json!({ "cpu": format!("{cpu_millis}m"), "memory": format!("{memory_mib}Mi") })
}

pub(super) fn probe(path: &str, period: u32, failures: u32) -> Value {
    json!({
        "httpGet": { "path": path, "port": "http" },
        "periodSeconds": period,
        "failureThreshold": failures,
        "timeoutSeconds": 2,
    })
}

pub fn service_account(f: &Deployment, env: &Environment) -> Value {
    let client_id = env
        .functions
        .get(&f.name)
        .map(|i| i.client_id.as_str())
        .unwrap_or_default();
    let mut meta = metadata(&f.name, env);
    meta["annotations"] = json!({ "azure.workload.identity/client-id": client_id });
    json!({
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": meta,
        // The workload identity webhook projects its own token; the API token is not needed.
        "automountServiceAccountToken": false,
    })
}

fn secret_provider_class_name(f: &Deployment) -> String {
    format!("{}-secrets", f.name)
}

pub fn secret_provider_class(f: &Deployment, env: &Environment) -> Value {
    let identity = env.functions.get(&f.name);
    // The driver's azure provider reads `objects` as a YAML document of its own.
    let objects: String = f
        .secrets
        .iter()
        .map(|s| format!("  - |\n    objectName: {s}\n    objectType: secret\n"))
        .collect();
    json!({
        "apiVersion": "secrets-store.csi.x-k8s.io/v1",
        "kind": "SecretProviderClass",
        "metadata": metadata(&secret_provider_class_name(f), env),
        "spec": {
            "provider": "azure",
            "parameters": {
                "usePodIdentity": "false",
                "clientID": identity.map(|i| i.client_id.as_str()).unwrap_or_default(),
                "keyvaultName": identity.map(|i| i.key_vault.as_str()).unwrap_or_default(),
                "tenantId": env.tenant_id,
                "objects": format!("array:\n{objects}"),
            },
        },
    })
}

/// What managed Prometheus follows to scrape a pod's `/metrics` (every namespace of the
/// system is scraped by these annotations; [`cluster`]).
pub(super) fn scrape_annotations() -> Value {
    json!({
        "prometheus.io/scrape": "true",
        "prometheus.io/port": PORT.to_string(),
        "prometheus.io/path": "/metrics",
    })
}

/// The restricted pod security standard, as every pod of the system runs: not root, the
/// image's user, the runtime's seccomp profile.
pub(super) fn pod_security_context() -> Value {
    json!({
        "runAsNonRoot": true,
        "runAsUser": USER_ID,
        "runAsGroup": USER_ID,
        "fsGroup": USER_ID,
        "seccompProfile": { "type": "RuntimeDefault" },
    })
}

/// Every container's: a read-only root, no privilege escalation, no capability.
pub(super) fn container_security_context() -> Value {
    json!({
        "allowPrivilegeEscalation": false,
        "readOnlyRootFilesystem": true,
        "runAsNonRoot": true,
        "runAsUser": USER_ID,
        "runAsGroup": USER_ID,
        "capabilities": { "drop": ["ALL"] },
        "seccompProfile": { "type": "RuntimeDefault" },
    })
}

/// Azure as a pod reaches it: public addresses (Entra sign-in, and dev's Service Bus, through
/// the hub's firewall, which allows only the FQDNs infra/README.md lists) and the private
/// endpoints of the vaults and stores, in the spoke.
pub(super) fn azure_destinations(env: &Environment) -> Value {
    json!([
        {
            "ipBlock": {
                "cidr": "0.0.0.0/0",
                "except": ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"],
            },
        },
        { "ipBlock": { "cidr": env.private_endpoints_cidr } },
    ])
}

pub fn deployment(f: &Deployment, env: &Environment) -> Value {
    let r = f.resources;
    let mut container = json!({
        "name": f.name,
        "image": env.image(&f.name),
        "imagePullPolicy": "Always",
        "ports": [{ "name": "http", "containerPort": PORT, "protocol": "TCP" }],
        "env": env_vars(f, env),
        "resources": {
            "requests": quantities(r.cpu_request_millis, r.memory_request_mib),
            "limits": quantities(r.cpu_limit_millis, r.memory_limit_mib),
        },
        // Start-up is config, secrets and connections: a minute at most.
        "startupProbe": probe("/healthz", 2, 30),
        "readinessProbe": probe("/readyz", 5, 2),
        "livenessProbe": probe("/healthz", 10, 3),
        "securityContext": container_security_context(),
    });
    let mut pod_spec = json!({
        "serviceAccountName": f.name,
        "automountServiceAccountToken": false,
        "terminationGracePeriodSeconds": termination_grace_seconds(f),
        "securityContext": pod_security_context(),
        "containers": [],
        // Replicas spread across zones, then nodes, so a zone or a node going away takes
        // at most its share. Soft: a scale-from-zero pod is never left pending for balance.
        "topologySpreadConstraints": [
            spread("topology.kubernetes.io/zone", &f.name),
            spread("kubernetes.io/hostname", &f.name),
        ],
    });
    if !f.secrets.is_empty() {
        container["volumeMounts"] = json!([
            { "name": "secrets-store", "mountPath": SECRETS_MOUNT, "readOnly": true }
        ]);
        pod_spec["volumes"] = json!([{
            "name": "secrets-store",
            "csi": {
                "driver": "secrets-store.csi.k8s.io",
                "readOnly": true,
                "volumeAttributes": { "secretProviderClass": secret_provider_class_name(f) },
            },
        }]);
    }
    pod_spec["containers"] = json!([container]);
    let mut pod_labels = labels(&f.name);
    pod_labels["azure.workload.identity/use"] = json!("true");
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(&f.name, env),
        "spec": {
            // No `replicas`: KEDA owns the count.
            "selector": { "matchLabels": selector(&f.name) },
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": { "maxSurge": "25%", "maxUnavailable": 0 },
            },
            "template": {
                "metadata": { "labels": pod_labels, "annotations": scrape_annotations() },
                "spec": pod_spec,
            },
        },
    })
}

fn spread(topology_key: &str, name: &str) -> Value {
    json!({
        "maxSkew": 1,
        "topologyKey": topology_key,
        "whenUnsatisfiable": "ScheduleAnyway",
        "labelSelector": { "matchLabels": selector(name) },
    })
}

pub fn service(f: &Deployment, env: &Environment) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(&f.name, env),
        "spec": {
            "type": "ClusterIP",
            "selector": selector(&f.name),
            "ports": [{ "name": "http", "port": 80, "targetPort": "http", "protocol": "TCP" }],
        },
    })
}

fn trigger_authentication_name(f: &Deployment) -> String {
    format!("{}-servicebus", f.name)
}

pub fn trigger_authentication(f: &Deployment, env: &Environment) -> Value {
    json!({
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "TriggerAuthentication",
        "metadata": metadata(&trigger_authentication_name(f), env),
        "spec": {
            "podIdentity": { "provider": "azure-workload", "identityId": env.keda_client_id },
        },
    })
}

/// A ScaledObject for the function's Deployment: its replica bounds for `profile`, its
/// cooldown, and `trigger`.
fn scaled_object_of(f: &Deployment, env: &Environment, profile: Profile, trigger: Value) -> Value {
    let scaling = f.scaling.profile(profile);
    json!({
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": metadata(&f.name, env),
        "spec": {
            "scaleTargetRef": { "name": f.name },
            "minReplicaCount": scaling.min,
            "maxReplicaCount": scaling.max,
            "cooldownPeriod": scaling.cooldown_seconds,
            "triggers": [trigger],
        },
    })
}

/// The scaler's address for KEDA: its Service in this namespace, so each environment's
/// workloads ask their own scaler.
pub fn scaler_address(env: &Environment) -> String {
    format!(
        "{SCALER}.{}.svc.cluster.local:{SCALER_GRPC_PORT}",
        env.namespace
    )
}

/// A queue function scales on its queue's backlog plus what its replicas hold, pushed by
/// the host's scaler (`external-push`), so a busy replica is never scaled in and a message
/// at zero wakes one within a second. `azure-servicebus` stays as a second trigger: KEDA
/// takes the larger proposal, so a scaler outage degrades to scaling on the queue alone.
/// The fallback answers for the scaler's metric while it fails: one replica, or the
/// current count if higher, so an outage neither strands messages nor scales in.
pub fn scaled_object(f: &Deployment, queue: &str, env: &Environment, profile: Profile) -> Value {
    let target = f.scaling.profile(profile).target_per_replica.to_string();
    let mut object = scaled_object_of(
        f,
        env,
        profile,
        json!({
            "type": "external-push",
            "metadata": {
                "scalerAddress": scaler_address(env),
                "queueName": env.queue(queue),
                "targetSize": target,
            },
        }),
    );
    if let Some(triggers) = object["spec"]["triggers"].as_array_mut() {
        triggers.push(json!({
                "type": "azure-servicebus",
                "metadata": {
                    "namespace": env.service_bus_name(),
                    "queueName": env.queue(queue),
                    "messageCount": target,
                    "activationMessageCount": "0",
                },
                "authenticationRef": { "name": trigger_authentication_name(f) },
        }));
    }
    object["spec"]["fallback"] = json!({
        "failureThreshold": 3,
        "replicas": 1,
        "behavior": "currentReplicasIfHigher",
    });
    object["spec"]["pollingInterval"] = json!(15);
    object["spec"]["advanced"] = json!({
        "horizontalPodAutoscalerConfig": {
            "behavior": {
                // A burst of deliveries is answered at once, doubling per 15 s...
                "scaleUp": {
                    "stabilizationWindowSeconds": 0,
                    "policies": [{ "type": "Percent", "value": 100, "periodSeconds": 15 }],
                },
                // ...but replicas go slowly, so a queue that empties and refills does not
                // drain and restart pods in between.
                "scaleDown": {
                    "stabilizationWindowSeconds": 120,
                    "policies": [{ "type": "Pods", "value": 1, "periodSeconds": 60 }],
                },
            },
        },
    });
    object
}

/// The host name the workflow and the ingress use to reach the interceptor from this
/// namespace: the namespace-qualified name of its ExternalName Service. The interceptor
/// routes on the Host header across the whole cluster, so each environment's internal host
/// must differ; a bare `keda-http-interceptor` would be the same in every namespace.
pub fn interceptor_host(env: &Environment) -> String {
    format!("{INTERCEPTOR}.{}.svc.cluster.local", env.namespace)
}

/// The URL a function calls another function at: through the interceptor, which wakes the
/// callee from zero.
pub fn interceptor_url(env: &Environment) -> String {
    format!("http://{}:{INTERCEPTOR_PORT}", interceptor_host(env))
}

/// How the HTTP add-on's interceptor routes to an HTTP function and measures its traffic:
/// every declared prefix on the internal host, and only the public prefixes on the public
/// host (the Ingress sends no other path, and this keeps it so if it ever did).
///
/// Cold start, on purpose: no placeholder and no fallback, so a request that arrives while
/// the function is at zero is held until a replica is ready rather than answered with a
/// stand-in (the workflow retries and the reference's clients treat a 503 as a failure).
/// `readiness` bounds that hold at 30 s, about what scheduling, pulling a small image and
/// starting take on a node that has room; `responseHeader` bounds a handler at 15 s (they
/// answer in milliseconds); `request` bounds the whole exchange at 60 s, the ingress's own
/// default read timeout.
pub fn interceptor_route(
    f: &Deployment,
    prefixes: &[String],
    public: &[String],
    env: &Environment,
    profile: Profile,
) -> Value {
    let paths = |prefixes: &[String]| -> Vec<Value> {
        prefixes.iter().map(|p| json!({ "value": p })).collect()
    };
    let mut rules = vec![json!({ "hosts": [interceptor_host(env)], "paths": paths(prefixes) })];
    if !public.is_empty() {
        rules.push(json!({ "hosts": [env.public_host], "paths": paths(public) }));
    }
    json!({
        "apiVersion": "http.keda.sh/v1beta1",
        "kind": "InterceptorRoute",
        "metadata": metadata(&f.name, env),
        "spec": {
            "target": { "service": f.name, "port": 80 },
            "rules": rules,
            "scalingMetric": {
                "requestRate": {
                    "targetValue": f.scaling.profile(profile).target_per_replica,
                    "granularity": "1s",
                    "window": "1m",
                },
            },
            "timeouts": {
                "readiness": "30s",
                "responseHeader": "15s",
                "request": "60s",
            },
        },
    })
}

/// KEDA scales an HTTP function on what the HTTP add-on's scaler pushes for its
/// InterceptorRoute (`external-push`), down to zero in dev.
pub fn http_scaled_object(f: &Deployment, env: &Environment, profile: Profile) -> Value {
    scaled_object_of(
        f,
        env,
        profile,
        json!({
            "type": "external-push",
            "metadata": {
                "scalerAddress": external_scaler(),
                "interceptorRoute": f.name,
            },
        }),
    )
}

pub fn pod_disruption_budget(f: &Deployment, env: &Environment) -> Value {
    json!({
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(&f.name, env),
        "spec": {
            "maxUnavailable": 1,
            "selector": { "matchLabels": selector(&f.name) },
        },
    })
}

/// Egress to Azure on the ports the function's outputs use: public addresses (Entra sign-in,
/// and dev's Service Bus, which has no private endpoint; the hub's firewall narrows them to
/// the FQDNs infra allows) and the subnet of the private endpoints (the vaults, Redis, Cosmos
/// DB, prod's Service Bus).
pub fn azure_egress(f: &Deployment, env: &Environment) -> Value {
    let mut ports = vec![443];
    if f.queue_trigger().is_some() || f.outputs.iter().any(|o| matches!(o, Output::Queue { .. })) {
        ports.push(5671);
    }
    if f.outputs.iter().any(|o| matches!(o, Output::Redis { .. })) {
        ports.push(6380);
    }
    if f.outputs
        .iter()
        .any(|o| matches!(o, Output::MongoDb { .. }))
    {
        ports.push(10255);
    }
    let ports: Vec<Value> = ports
        .into_iter()
        .map(|p| json!({ "protocol": "TCP", "port": p }))
        .collect();
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata(&format!("{}-egress-azure", f.name), env),
        "spec": {
            "podSelector": { "matchLabels": selector(&f.name) },
            "policyTypes": ["Egress"],
            "egress": [{
                // Public addresses (Entra, and dev's Service Bus, through the hub's
                // firewall, which allows only the FQDNs infra/README.md lists) and the
                // private endpoints of the vaults and stores, in the spoke.
                "to": azure_destinations(env),
                "ports": ports,
            }],
        },
    })
}

/// The functions a function calls, through the interceptor (which scales them from zero).
pub fn calls_to_functions(f: &Deployment, env: &Environment) -> Option<Value> {
    let callees: Vec<&str> = f
        .outputs
        .iter()
        .filter_map(|o| match o {
            Output::Function { name, .. } => Some(name.as_str()),
            _ => None,
        })
        .collect();
    if callees.is_empty() {
        return None;
    }
    Some(json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata(&format!("{}-to-backends", f.name), env),
        "spec": {
            "podSelector": { "matchLabels": selector(&f.name) },
            "policyTypes": ["Egress"],
            "egress": [
                {
                    "to": [{ "namespaceSelector": namespace_selector(HTTP_ADD_ON_NAMESPACE) }],
                    "ports": [{ "protocol": "TCP", "port": INTERCEPTOR_PORT }],
                },
                {
                    "to": [{
                        "podSelector": {
                            "matchExpressions": [{
                                "key": "app.kubernetes.io/name",
                                "operator": "In",
                                "values": callees,
                            }],
                        },
                    }],
                    "ports": [{ "protocol": "TCP", "port": PORT }],
                },
            ],
        },
    }))
}

/// Namespace-wide policies: deny everything, then allow DNS, the interceptor and the
/// ingress controller into the HTTP functions, and metrics scraping from kube-system.
pub fn namespace_policies(http_functions: &[&str], env: &Environment) -> Vec<Value> {
    let policy = |name: &str, spec: Value| {
        json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": metadata(name, env),
            "spec": spec,
        })
    };
    let port = json!([{ "protocol": "TCP", "port": PORT }]);
    vec![
        policy(
            "default-deny",
            json!({ "podSelector": {}, "policyTypes": ["Ingress", "Egress"] }),
        ),
        policy(
            "allow-dns",
            json!({
                "podSelector": {},
                "policyTypes": ["Egress"],
                "egress": [{
                    "to": [{
                        "namespaceSelector": namespace_selector("kube-system"),
                        "podSelector": { "matchLabels": { "k8s-app": "kube-dns" } },
                    }],
                    "ports": [{ "protocol": "UDP", "port": 53 }, { "protocol": "TCP", "port": 53 }],
                }],
            }),
        ),
        policy(
            "allow-ingress-to-http-functions",
            json!({
                "podSelector": {
                    "matchExpressions": [{
                        "key": "app.kubernetes.io/name",
                        "operator": "In",
                        "values": http_functions,
                    }],
                },
                "policyTypes": ["Ingress"],
                "ingress": [{
                    "from": [
                        // The HTTP add-on's interceptor (every request passes through it)...
                        { "namespaceSelector": namespace_selector(HTTP_ADD_ON_NAMESPACE) },
                        // ...and the app routing NGINX controller.
                        { "namespaceSelector": namespace_selector(INGRESS_NAMESPACE) },
                    ],
                    "ports": port,
                }],
            }),
        ),
        policy(
            "allow-metrics-scrape",
            json!({
                "podSelector": {},
                "policyTypes": ["Ingress"],
                "ingress": [{
                    "from": [{ "namespaceSelector": namespace_selector("kube-system") }],
                    "ports": port,
                }],
            }),
        ),
    ]
}

/// The interceptor under a name in this namespace: an Ingress can only point at a Service
/// of its own namespace, and the workflow calls the backends through it too.
pub fn interceptor_service(env: &Environment) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(INTERCEPTOR, env),
        "spec": {
            "type": "ExternalName",
            "externalName": interceptor_target(),
            "ports": [{ "name": "http", "port": INTERCEPTOR_PORT, "protocol": "TCP" }],
        },
    })
}

/// The public ingress: each public path prefix goes to the interceptor, which routes on
/// host and path to the function (waking it from zero).
pub fn ingress(public: &[String], env: &Environment) -> Value {
    let paths: Vec<Value> = public
        .iter()
        .map(|prefix| {
            json!({
                "path": prefix,
                "pathType": "Prefix",
                "backend": {
                    "service": { "name": INTERCEPTOR, "port": { "number": INTERCEPTOR_PORT } },
                },
            })
        })
        .collect();
    let mut meta = metadata("fabrikam", env);
    meta["annotations"] = json!({
        "kubernetes.azure.com/tls-cert-keyvault-uri": env.tls_certificate_uri,
        "nginx.ingress.kubernetes.io/ssl-redirect": "true",
    });
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": meta,
        "spec": {
            "ingressClassName": INGRESS_CLASS,
            "tls": [{ "hosts": [env.public_host], "secretName": "keyvault-fabrikam" }],
            "rules": [{ "host": env.public_host, "http": { "paths": paths } }],
        },
    })
}

/// The cluster-wide objects of the system, rendered with the environment (not with a
/// developer environment, which shares its cluster's): the internal NGINX controller that
/// app routing runs for the Ingress, on an internal load balancer at a fixed address in the
/// spoke's ingress subnet, which Application Gateway forwards to; and managed Prometheus's
/// settings, so it scrapes the functions' pods by their `prometheus.io/*` annotations, and a
/// scrape job for the KEDA operator's metrics (its scaler errors are alerted on).
pub fn cluster(env: &Environment) -> Vec<Value> {
    vec![
        json!({
            "apiVersion": "approuting.kubernetes.azure.com/v1alpha1",
            "kind": "NginxIngressController",
            "metadata": { "name": INGRESS_CLASS, "labels": labels(INGRESS_CLASS) },
            "spec": {
                "ingressClassName": INGRESS_CLASS,
                "controllerNamePrefix": INGRESS_CLASS,
                "loadBalancerAnnotations": {
                    "service.beta.kubernetes.io/azure-load-balancer-internal": "true",
                    "service.beta.kubernetes.io/azure-load-balancer-internal-subnet": env.ingress_subnet,
                    "service.beta.kubernetes.io/azure-load-balancer-ipv4": env.ingress_private_ip,
                },
            },
        }),
        json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": "ama-metrics-settings-configmap",
                "namespace": "kube-system",
                "labels": labels("ama-metrics-settings"),
            },
            "data": {
                "schema-version": "v1",
                "config-version": "ver1",
                "pod-annotation-based-scraping": format!(
                    "podannotationnamespaceregex = \"{}\"",
                    scraped_namespaces(env)
                ),
            },
        }),
        json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": "ama-metrics-prometheus-config",
                "namespace": "kube-system",
                "labels": labels("ama-metrics-prometheus-config"),
            },
            "data": { "prometheus-config": KEDA_SCRAPE_CONFIG },
        }),
    ]
}

/// Managed Prometheus's custom scrape jobs: the KEDA operator's metrics (port 8080), whose
/// `keda_scaler_detail_errors_total` the alert rules read (`keda/tests` checks its shape).
const KEDA_SCRAPE_CONFIG: &str = "scrape_configs:
- job_name: keda-operator
  kubernetes_sd_configs:
  - role: pod
    namespaces:
      names:
      - kube-system
  relabel_configs:
  - source_labels: [__meta_kubernetes_pod_label_app]
    action: keep
    regex: keda-operator
  - source_labels: [__meta_kubernetes_pod_container_port_number]
    action: keep
    regex: '8080'
";

/// The namespace (restricted pod security), its quota and its default limits, sized from
/// the declarations: every function at its maximum, plus a rollout's surge.
pub fn namespace(functions: &[Deployment], env: &Environment, profile: Profile) -> Vec<Value> {
    let (mut pods, mut cpu_req, mut cpu_lim, mut mem_req, mut mem_lim) = (0, 0, 0, 0, 0);
    for f in functions {
        let max = f.scaling.profile(profile).max;
        let n = max + max.div_ceil(4);
        pods += n;
        cpu_req += n * f.resources.cpu_request_millis;
        cpu_lim += n * f.resources.cpu_limit_millis;
        mem_req += n * f.resources.memory_request_mib;
        mem_lim += n * f.resources.memory_limit_mib;
    }
    let max_cpu = functions
        .iter()
        .map(|f| f.resources.cpu_limit_millis)
        .max()
        .unwrap_or(0);
    let max_mem = functions
        .iter()
        .map(|f| f.resources.memory_limit_mib)
        .max()
        .unwrap_or(0);
    let small = runtime::deploy::Resources::SMALL;
    vec![
        json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": env.namespace,
                "labels": {
                    "pod-security.kubernetes.io/enforce": "restricted",
                    "pod-security.kubernetes.io/warn": "restricted",
                    "app.kubernetes.io/part-of": "fabrikam",
                },
            },
        }),
        json!({
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": metadata("fabrikam", env),
            "spec": {
                "hard": {
                    "pods": pods.to_string(),
                    "requests.cpu": format!("{cpu_req}m"),
                    "limits.cpu": format!("{cpu_lim}m"),
                    "requests.memory": format!("{mem_req}Mi"),
                    "limits.memory": format!("{mem_lim}Mi"),
                },
            },
        }),
        json!({
            "apiVersion": "v1",
            "kind": "LimitRange",
            "metadata": metadata("fabrikam", env),
            "spec": {
                "limits": [{
                    "type": "Container",
                    "defaultRequest": quantities(small.cpu_request_millis, small.memory_request_mib),
                    "default": quantities(small.cpu_limit_millis, small.memory_limit_mib),
                    "max": quantities(max_cpu, max_mem),
                }],
            },
        }),
    ]
}
