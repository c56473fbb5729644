//! What the rules read: the rendered ScaledObject, InterceptorRoute and Deployment of each
//! workload (`fabrikam manifests`), with KEDA's and Kubernetes' defaults filled in where a
//! field is absent. Nothing here restates a number from a declaration: every value comes
//! from the objects, or from the default the controller itself would apply (cited).

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use crate::duration::parse_go_duration;
use crate::hpa::{Behavior, Policy, PolicyKind, Rules, Select};

/// Why the objects could not be read: every problem, each naming its object and field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.join("\n"))]
pub struct ObjectError(pub Vec<String>);

/// One scaled workload: its ScaledObject, the Deployment it targets and, for an HTTP
/// function, its InterceptorRoute.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    pub name: String,
    pub scaled_object: ScaledObject,
    pub deployment: Pods,
    pub route: Option<Route>,
}

/// `keda.sh/v1alpha1 ScaledObject`, the fields KEDA's loop and the HPA it creates read.
#[derive(Debug, Clone, PartialEq)]
pub struct ScaledObject {
    pub name: String,
    /// `scaleTargetRef.name`.
    pub target: String,
    /// Default 30 s (`defaultPollingInterval`).
    pub polling_interval: Duration,
    /// Default 300 s.
    pub cooldown: Duration,
    /// Default 0: used only while the object has never been active.
    pub initial_cooldown: Duration,
    /// Default 0.
    pub min_replicas: u32,
    /// Default 100.
    pub max_replicas: u32,
    /// Only 0 works (keda#2314); unset by default.
    pub idle_replicas: Option<u32>,
    pub fallback: Option<Fallback>,
    /// `advanced.horizontalPodAutoscalerConfig.behavior`. `None` is the HPA's legacy
    /// normalisation path, not the documented "default behavior" (SCALING.md §2.4).
    pub behavior: Option<Behavior>,
    pub triggers: Vec<Trigger>,
}

/// `spec.fallback`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fallback {
    pub failure_threshold: u32,
    pub replicas: u32,
    pub behavior: FallbackBehavior,
}

/// `spec.fallback.behavior` (default `static`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FallbackBehavior {
    Static,
    CurrentReplicas,
    CurrentReplicasIfHigher,
    CurrentReplicasIfLower,
}

/// Whether the HPA divides the metric by the replicas (`AverageValue`, KEDA's default) or
/// compares it whole (`Value`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricType {
    AverageValue,
    Value,
}

/// One of the ScaledObject's triggers.
#[derive(Debug, Clone, PartialEq)]
pub struct Trigger {
    pub metric_type: MetricType,
    pub kind: TriggerKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum TriggerKind {
    /// `azure-servicebus` on a queue: ActiveMessageCount against `messageCount` (default
    /// 5) and `activationMessageCount` (default 0).
    ServiceBus {
        queue: String,
        message_count: f64,
        activation_message_count: f64,
    },
    /// `external-push` to the host's own scaler (`fabrikam scaler`) for `queue`: backlog +
    /// in flight against `target` per replica.
    InFlight {
        scaler_address: String,
        queue: String,
        target: f64,
    },
    /// `external-push`: the HTTP add-on's scaler for `interceptor_route`, or another
    /// external scaler at `scaler_address`.
    ExternalPush {
        scaler_address: String,
        interceptor_route: Option<String>,
    },
}

impl Trigger {
    /// The metric's name as the HPA sees it: `s<index>-<scaler metric>` (KEDA,
    /// `controllers/keda/hpa.go`).
    pub fn metric_name(&self, index: usize) -> String {
        match &self.kind {
            TriggerKind::ServiceBus { queue, .. } => format!("s{index}-azure-servicebus-{queue}"),
            TriggerKind::InFlight { queue, .. } => format!("s{index}-queue-{queue}"),
            TriggerKind::ExternalPush {
                interceptor_route: Some(route),
                ..
            } => format!("s{index}-{route}"),
            TriggerKind::ExternalPush { .. } => format!("s{index}-external-push"),
        }
    }
}

/// The Deployment's pod facts that decide how fast a replica comes and goes.
#[derive(Debug, Clone, PartialEq)]
pub struct Pods {
    /// `terminationGracePeriodSeconds`, default 30 s.
    pub termination_grace: Duration,
    /// The readiness probe's `periodSeconds`, default 10 s.
    pub readiness_period: Duration,
    /// The startup probe's `periodSeconds`, when there is one: readiness probes start only
    /// after it has succeeded.
    pub startup_period: Option<Duration>,
    /// The container's CPU limit in millicores, when set.
    pub cpu_limit_millis: Option<u32>,
}

/// `http.keda.sh/v1beta1 InterceptorRoute`: what the HTTP add-on counts and how long the
/// interceptor holds a request for a workload at zero.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub name: String,
    pub path_prefixes: Vec<String>,
    /// `scalingMetric.concurrency.targetValue`.
    pub concurrency_target: Option<f64>,
    pub request_rate: Option<RequestRate>,
    /// `timeouts.readiness`: how long a request waits for a ready replica before 504. None
    /// (or 0) is no dedicated limit (SCALING.md §4.1, v0.14+).
    pub readiness_timeout: Option<Duration>,
}

/// `scalingMetric.requestRate`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RequestRate {
    pub target: f64,
    pub granularity: Duration,
    pub window: Duration,
}

/// Reads every workload from a stream of YAML documents (one or more files of
/// `fabrikam manifests` output, concatenated). Objects of other kinds are skipped.
pub fn read_yaml(text: &str) -> Result<Vec<Workload>, ObjectError> {
    let mut objects = Vec::new();
    for document in serde_yaml_ng::Deserializer::from_str(text) {
        let value: Value = serde::Deserialize::deserialize(document)
            .map_err(|e| ObjectError(vec![format!("not YAML: {e}")]))?;
        if !value.is_null() {
            objects.push(value);
        }
    }
    read_objects(&objects)
}

/// Reads every workload from parsed objects: each ScaledObject, with the Deployment it
/// targets and the InterceptorRoute its `external-push` trigger names.
pub fn read_objects(objects: &[Value]) -> Result<Vec<Workload>, ObjectError> {
    let of_kind = |kind: &str| -> BTreeMap<String, &Value> {
        objects
            .iter()
            .filter(|o| o["kind"] == kind)
            .map(|o| (o["metadata"]["name"].as_str().unwrap_or("").to_owned(), o))
            .collect()
    };
    let deployments = of_kind("Deployment");
    let routes = of_kind("InterceptorRoute");
    let mut problems = Vec::new();
    let mut workloads = Vec::new();
    for (name, object) in of_kind("ScaledObject") {
        let mut p = Problems::new(format!("ScaledObject {name}"));
        let scaled_object = scaled_object(object, &mut p);
        let deployment = match deployments.get(&scaled_object.target) {
            Some(d) => pods(d, &mut p),
            None => {
                p.push(format!(
                    "scaleTargetRef names Deployment {:?}, which is not among the objects",
                    scaled_object.target
                ));
                Pods::KUBERNETES_DEFAULTS
            }
        };
        let route_name = scaled_object.triggers.iter().find_map(|t| match &t.kind {
            TriggerKind::ExternalPush {
                interceptor_route, ..
            } => interceptor_route.clone(),
            TriggerKind::ServiceBus { .. } | TriggerKind::InFlight { .. } => None,
        });
        let route = route_name.and_then(|r| match routes.get(&r) {
            Some(o) => Some(route(o, &mut p)),
            None => {
                p.push(format!(
                    "its trigger names InterceptorRoute {r:?}, which is not among the objects"
                ));
                None
            }
        });
        problems.extend(p.done());
        workloads.push(Workload {
            name: scaled_object.target.clone(),
            scaled_object,
            deployment,
            route,
        });
    }
    if workloads.is_empty() && problems.is_empty() {
        problems.push("no ScaledObject among the objects".to_owned());
    }
    if problems.is_empty() {
        Ok(workloads)
    } else {
        Err(ObjectError(problems))
    }
}

/// Problems found in one object, each prefixed with the object's kind and name.
struct Problems {
    object: String,
    found: Vec<String>,
}

impl Problems {
    fn new(object: String) -> Self {
        Self {
            object,
            found: Vec::new(),
        }
    }

    fn push(&mut self, problem: String) {
        self.found.push(format!("{}: {problem}", self.object));
    }

    fn done(self) -> Vec<String> {
        self.found
    }

    /// A non-negative integer at `field` (a number, or a string of one as KEDA's trigger
    /// metadata holds them), or `default` when absent.
    fn uint(&mut self, value: &Value, field: &str, default: u64) -> u64 {
        match value {
            Value::Null => default,
            Value::Number(n) if n.as_u64().is_some() => n.as_u64().unwrap_or(default),
            Value::String(s) if s.parse::<u64>().is_ok() => s.parse().unwrap_or(default),
            other => {
                self.push(format!("{field} is {other}, not a whole number"));
                default
            }
        }
    }

    fn number(&mut self, value: &Value, field: &str, default: f64) -> f64 {
        let parsed = match value {
            Value::Null => return default,
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.parse::<f64>().ok(),
            _ => None,
        };
        match parsed {
            Some(n) if n.is_finite() && n >= 0.0 => n,
            _ => {
                self.push(format!("{field} is {value}, not a number"));
                default
            }
        }
    }

    fn seconds(&mut self, value: &Value, field: &str, default: u64) -> Duration {
        Duration::from_secs(self.uint(value, field, default))
    }

    fn u32(&mut self, value: &Value, field: &str, default: u32) -> u32 {
        let n = self.uint(value, field, u64::from(default));
        u32::try_from(n).unwrap_or_else(|_| {
            self.push(format!("{field} is {n}, too large"));
            default
        })
    }

    fn go_duration(&mut self, value: &Value, field: &str) -> Option<Duration> {
        let text = value.as_str()?;
        match parse_go_duration(text) {
            Ok(d) => Some(d),
            Err(e) => {
                self.push(format!("{field} {text:?}: {e}"));
                None
            }
        }
    }
}

fn scaled_object(o: &Value, p: &mut Problems) -> ScaledObject {
    let spec = &o["spec"];
    let name = o["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let target = match spec["scaleTargetRef"]["name"].as_str() {
        Some(t) => t.to_owned(),
        None => {
            p.push("spec.scaleTargetRef.name is missing".to_owned());
            name.clone()
        }
    };
    let triggers: Vec<Trigger> = match spec["triggers"].as_array() {
        Some(list) => list
            .iter()
            .enumerate()
            .filter_map(|(i, t)| trigger(t, i, p))
            .collect(),
        None => {
            p.push("spec.triggers is missing".to_owned());
            Vec::new()
        }
    };
    let min_replicas = p.u32(&spec["minReplicaCount"], "spec.minReplicaCount", 0);
    let max_replicas = p.u32(&spec["maxReplicaCount"], "spec.maxReplicaCount", 100);
    if max_replicas < min_replicas.max(1) {
        p.push(format!(
            "spec.maxReplicaCount {max_replicas} is below minReplicaCount {min_replicas} (or 1)"
        ));
    }
    let idle_replicas = match &spec["idleReplicaCount"] {
        Value::Null => None,
        v => Some(p.u32(v, "spec.idleReplicaCount", 0)),
    };
    let fallback = match &spec["fallback"] {
        Value::Null => None,
        f => Some(fallback(f, p)),
    };
    let behavior = match &spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"] {
        Value::Null => None,
        b => Some(behavior(b, p)),
    };
    ScaledObject {
        name,
        target,
        polling_interval: p.seconds(&spec["pollingInterval"], "spec.pollingInterval", 30),
        cooldown: p.seconds(&spec["cooldownPeriod"], "spec.cooldownPeriod", 300),
        initial_cooldown: p.seconds(
            &spec["initialCooldownPeriod"],
            "spec.initialCooldownPeriod",
            0,
        ),
        min_replicas,
        max_replicas,
        idle_replicas,
        fallback,
        behavior,
        triggers,
    }
}

fn trigger(t: &Value, index: usize, p: &mut Problems) -> Option<Trigger> {
    let field = |name: &str| format!("spec.triggers[{index}].{name}");
    let metric_type = match t["metricType"].as_str() {
        None | Some("AverageValue") => MetricType::AverageValue,
        Some("Value") => MetricType::Value,
        Some(other) => {
            p.push(format!(
                "{} {other:?} is not modelled (AverageValue or Value)",
                field("metricType")
            ));
            return None;
        }
    };
    let metadata = &t["metadata"];
    let kind = match t["type"].as_str() {
        Some("azure-servicebus") => {
            let Some(queue) = metadata["queueName"].as_str() else {
                p.push(format!(
                    "{} is missing (topics are not modelled)",
                    field("metadata.queueName")
                ));
                return None;
            };
            TriggerKind::ServiceBus {
                queue: queue.to_owned(),
                message_count: p.number(
                    &metadata["messageCount"],
                    &field("metadata.messageCount"),
                    5.0,
                ),
                activation_message_count: p.number(
                    &metadata["activationMessageCount"],
                    &field("metadata.activationMessageCount"),
                    0.0,
                ),
            }
        }
        Some("external-push") if metadata["queueName"].is_string() => TriggerKind::InFlight {
            scaler_address: metadata["scalerAddress"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            queue: metadata["queueName"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            target: if metadata["targetSize"].is_null() {
                p.push(format!(
                    "{} is missing (the scaler refuses a trigger without it)",
                    field("metadata.targetSize")
                ));
                1.0
            } else {
                p.number(&metadata["targetSize"], &field("metadata.targetSize"), 1.0)
            },
        },
        Some("external-push") => TriggerKind::ExternalPush {
            scaler_address: metadata["scalerAddress"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            interceptor_route: metadata["interceptorRoute"].as_str().map(str::to_owned),
        },
        other => {
            p.push(format!(
                "{} {other:?} is not modelled (azure-servicebus or external-push)",
                field("type")
            ));
            return None;
        }
    };
    Some(Trigger { metric_type, kind })
}

fn fallback(f: &Value, p: &mut Problems) -> Fallback {
    let behavior = match f["behavior"].as_str() {
        None | Some("static") => FallbackBehavior::Static,
        Some("currentReplicas") => FallbackBehavior::CurrentReplicas,
        Some("currentReplicasIfHigher") => FallbackBehavior::CurrentReplicasIfHigher,
        Some("currentReplicasIfLower") => FallbackBehavior::CurrentReplicasIfLower,
        Some(other) => {
            p.push(format!("spec.fallback.behavior {other:?} is not modelled"));
            FallbackBehavior::Static
        }
    };
    Fallback {
        failure_threshold: p.u32(&f["failureThreshold"], "spec.fallback.failureThreshold", 3),
        replicas: p.u32(&f["replicas"], "spec.fallback.replicas", 0),
        behavior,
    }
}

/// The behavior as the apiserver stores it: a direction left out, or its policies, window
/// or selectPolicy left out, gets Kubernetes' defaults (`SetDefaults_HorizontalPodAutoscalerBehavior`).
fn behavior(b: &Value, p: &mut Problems) -> Behavior {
    Behavior {
        scale_up: rules(&b["scaleUp"], "scaleUp", Rules::default_scale_up(), p),
        scale_down: rules(&b["scaleDown"], "scaleDown", Rules::default_scale_down(), p),
    }
}

fn rules(r: &Value, direction: &str, default: Rules, p: &mut Problems) -> Rules {
    if r.is_null() {
        return default;
    }
    let field = |name: &str| {
        format!("spec.advanced.horizontalPodAutoscalerConfig.behavior.{direction}.{name}")
    };
    let select = match r["selectPolicy"].as_str() {
        None | Some("Max") => Select::Max,
        Some("Min") => Select::Min,
        Some("Disabled") => Select::Disabled,
        Some(other) => {
            p.push(format!(
                "{} {other:?} is not Max, Min or Disabled",
                field("selectPolicy")
            ));
            Select::Max
        }
    };
    let policies: Vec<Policy> = r["policies"]
        .as_array()
        .map(|list| {
            list.iter()
                .enumerate()
                .filter_map(|(i, policy)| {
                    let name = field(&format!("policies[{i}]"));
                    let kind = match policy["type"].as_str() {
                        Some("Pods") => PolicyKind::Pods,
                        Some("Percent") => PolicyKind::Percent,
                        other => {
                            p.push(format!("{name}.type {other:?} is not Pods or Percent"));
                            return None;
                        }
                    };
                    Some(Policy {
                        kind,
                        value: p.u32(&policy["value"], &format!("{name}.value"), 0),
                        period: p.seconds(
                            &policy["periodSeconds"],
                            &format!("{name}.periodSeconds"),
                            15,
                        ),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let tolerance = match &r["tolerance"] {
        Value::Null => None,
        t => Some(p.number(t, &field("tolerance"), 0.1)),
    };
    Rules {
        stabilization: match &r["stabilizationWindowSeconds"] {
            Value::Null => default.stabilization,
            v => p.seconds(v, &field("stabilizationWindowSeconds"), 0),
        },
        policies: if policies.is_empty() {
            default.policies
        } else {
            policies
        },
        select,
        tolerance,
    }
}

impl Pods {
    /// A Deployment that says nothing: Kubernetes' defaults.
    pub const KUBERNETES_DEFAULTS: Pods = Pods {
        termination_grace: Duration::from_secs(30),
        readiness_period: Duration::from_secs(10),
        startup_period: None,
        cpu_limit_millis: None,
    };
}

fn pods(d: &Value, p: &mut Problems) -> Pods {
    let spec = &d["spec"]["template"]["spec"];
    let container = &spec["containers"][0];
    let period = |probe: &Value| -> Option<u64> {
        if probe.is_null() {
            None
        } else {
            Some(probe["periodSeconds"].as_u64().unwrap_or(10))
        }
    };
    Pods {
        termination_grace: p.seconds(
            &spec["terminationGracePeriodSeconds"],
            "Deployment terminationGracePeriodSeconds",
            30,
        ),
        readiness_period: Duration::from_secs(period(&container["readinessProbe"]).unwrap_or(10)),
        startup_period: period(&container["startupProbe"]).map(Duration::from_secs),
        cpu_limit_millis: container["resources"]["limits"]["cpu"]
            .as_str()
            .and_then(cpu_millis),
    }
}

/// `500m` or `2` (cores) in millicores.
fn cpu_millis(quantity: &str) -> Option<u32> {
    match quantity.strip_suffix('m') {
        Some(millis) => millis.parse().ok(),
        None => quantity
            .parse::<f64>()
            .ok()
            .map(|cores| (cores * 1000.0).round() as u32),
    }
}

fn route(o: &Value, p: &mut Problems) -> Route {
    let spec = &o["spec"];
    let name = o["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let metric = &spec["scalingMetric"];
    let concurrency_target = match &metric["concurrency"] {
        Value::Null => None,
        c => Some(p.number(
            &c["targetValue"],
            "InterceptorRoute concurrency.targetValue",
            1.0,
        )),
    };
    let request_rate = match &metric["requestRate"] {
        Value::Null => None,
        r => Some(RequestRate {
            target: p.number(
                &r["targetValue"],
                "InterceptorRoute requestRate.targetValue",
                1.0,
            ),
            granularity: p
                .go_duration(
                    &r["granularity"],
                    "InterceptorRoute requestRate.granularity",
                )
                .unwrap_or(Duration::from_secs(1)),
            window: p
                .go_duration(&r["window"], "InterceptorRoute requestRate.window")
                .unwrap_or(Duration::from_secs(60)),
        }),
    };
    if concurrency_target.is_none() && request_rate.is_none() {
        p.push(format!(
            "InterceptorRoute {name} has no scalingMetric (concurrency or requestRate)"
        ));
    }
    let mut path_prefixes: Vec<String> = spec["rules"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|rule| rule["paths"].as_array().into_iter().flatten())
        .filter_map(|path| path["value"].as_str().map(str::to_owned))
        .collect();
    path_prefixes.sort();
    path_prefixes.dedup();
    let readiness_timeout = p
        .go_duration(
            &spec["timeouts"]["readiness"],
            "InterceptorRoute timeouts.readiness",
        )
        .filter(|d| !d.is_zero());
    Route {
        name,
        path_prefixes,
        concurrency_target,
        request_rate,
        readiness_timeout,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WORKFLOW: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: { name: workflow }
spec:
  template:
    spec:
      terminationGracePeriodSeconds: 30
      containers:
      - name: workflow
        resources: { limits: { cpu: 500m } }
        startupProbe: { periodSeconds: 2 }
        readinessProbe: { periodSeconds: 5 }
---
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: { name: workflow }
spec:
  scaleTargetRef: { name: workflow }
  minReplicaCount: 0
  maxReplicaCount: 3
  cooldownPeriod: 300
  pollingInterval: 15
  triggers:
  - type: azure-servicebus
    metadata: { queueName: deliveries, messageCount: '20', activationMessageCount: '0' }
  advanced:
    horizontalPodAutoscalerConfig:
      behavior:
        scaleDown:
          stabilizationWindowSeconds: 120
          policies: [{ type: Pods, value: 1, periodSeconds: 60 }]
"#;

    #[test]
    fn a_queue_workload_reads_every_scaling_fact_from_its_objects() {
        let workloads = read_yaml(WORKFLOW).unwrap();
        assert_eq!(workloads.len(), 1);
        let w = &workloads[0];
        assert_eq!(w.name, "workflow");
        let so = &w.scaled_object;
        assert_eq!(so.polling_interval, Duration::from_secs(15));
        assert_eq!(so.cooldown, Duration::from_secs(300));
        assert_eq!((so.min_replicas, so.max_replicas), (0, 3));
        assert_eq!(
            so.triggers[0].kind,
            TriggerKind::ServiceBus {
                queue: "deliveries".into(),
                message_count: 20.0,
                activation_message_count: 0.0
            }
        );
        assert_eq!(
            so.triggers[0].metric_name(0),
            "s0-azure-servicebus-deliveries"
        );
        let behavior = so.behavior.as_ref().unwrap();
        // scaleUp was left out: the apiserver's defaults.
        assert_eq!(behavior.scale_up, Rules::default_scale_up());
        assert_eq!(behavior.scale_down.stabilization, Duration::from_secs(120));
        assert_eq!(behavior.scale_down.policies.len(), 1);
        assert_eq!(w.deployment.readiness_period, Duration::from_secs(5));
        assert_eq!(w.deployment.startup_period, Some(Duration::from_secs(2)));
        assert_eq!(w.deployment.cpu_limit_millis, Some(500));
        assert!(w.route.is_none());
    }

    #[test]
    fn absent_fields_take_kedas_defaults_and_no_behavior_is_the_legacy_path() {
        let text = r#"
kind: Deployment
metadata: { name: f }
spec: { template: { spec: { containers: [{ name: f }] } } }
---
kind: ScaledObject
metadata: { name: f }
spec:
  scaleTargetRef: { name: f }
  triggers: [{ type: azure-servicebus, metadata: { queueName: q } }]
"#;
        let so = read_yaml(text).unwrap().remove(0).scaled_object;
        assert_eq!(so.polling_interval, Duration::from_secs(30));
        assert_eq!(so.cooldown, Duration::from_secs(300));
        assert_eq!(so.initial_cooldown, Duration::ZERO);
        assert_eq!((so.min_replicas, so.max_replicas), (0, 100));
        assert_eq!(so.behavior, None);
        assert!(matches!(
            so.triggers[0].kind,
            TriggerKind::ServiceBus { message_count, activation_message_count, .. }
                if message_count == 5.0 && activation_message_count == 0.0
        ));
    }

    #[test]
    fn an_http_workload_reads_its_interceptor_route() {
        let text = r#"
kind: Deployment
metadata: { name: ingestion }
spec: { template: { spec: { containers: [{ name: ingestion }] } } }
---
kind: InterceptorRoute
metadata: { name: ingestion }
spec:
  rules:
  - paths: [{ value: /api/deliveryrequests }]
  - paths: [{ value: /api/deliveryrequests }]
  scalingMetric: { requestRate: { targetValue: 50, granularity: 1s, window: 1m } }
  timeouts: { readiness: 30s }
---
kind: ScaledObject
metadata: { name: ingestion }
spec:
  scaleTargetRef: { name: ingestion }
  maxReplicaCount: 2
  triggers:
  - type: external-push
    metadata: { scalerAddress: 'keda-add-ons-http-external-scaler.kube-system:9090', interceptorRoute: ingestion }
"#;
        let w = read_yaml(text).unwrap().remove(0);
        let route = w.route.unwrap();
        assert_eq!(
            route.path_prefixes,
            vec!["/api/deliveryrequests".to_owned()]
        );
        assert_eq!(
            route.request_rate,
            Some(RequestRate {
                target: 50.0,
                granularity: Duration::from_secs(1),
                window: Duration::from_secs(60)
            })
        );
        assert_eq!(route.readiness_timeout, Some(Duration::from_secs(30)));
        assert_eq!(w.deployment, Pods::KUBERNETES_DEFAULTS);
    }

    #[test]
    fn every_problem_is_reported_at_once_naming_its_object() {
        let text = r#"
kind: ScaledObject
metadata: { name: broken }
spec:
  scaleTargetRef: { name: missing }
  pollingInterval: soon
  triggers:
  - type: kafka
  - type: external-push
    metadata: { interceptorRoute: nowhere }
"#;
        let problems = read_yaml(text).unwrap_err().0;
        assert_eq!(problems.len(), 4, "{problems:#?}");
        assert!(
            problems
                .iter()
                .all(|p| p.starts_with("ScaledObject broken: "))
        );
        assert!(problems.iter().any(|p| p.contains("pollingInterval")));
        assert!(problems.iter().any(|p| p.contains("\"kafka\"")));
        assert!(
            problems
                .iter()
                .any(|p| p.contains("Deployment \"missing\""))
        );
        assert!(
            problems
                .iter()
                .any(|p| p.contains("InterceptorRoute \"nowhere\""))
        );
    }
}
