//! What a function needs from the cluster: its triggers, outputs, secrets, resources and
//! scaling, declared in Rust next to its code ([`crate::function::Function::deployment`]).
//! `fabrikam manifests` turns these declarations into Kubernetes and KEDA objects, so code
//! and deployment cannot drift.
//!
//! The types also read from JSON (unknown fields refused), so a broken declaration can be
//! written down as a test fixture and [`Deployment::check`] asked what is wrong with it.

use serde::{Deserialize, Serialize};

/// A function's deployment declaration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Deployment {
    /// The function's name: Kubernetes object names, labels, the image name.
    pub name: String,
    /// What starts work: HTTP routes, a queue, or both.
    pub triggers: Vec<Trigger>,
    /// What the function reaches: queues, other functions, stores.
    #[serde(default)]
    pub outputs: Vec<Output>,
    /// Key Vault object names, mounted as files by the CSI driver.
    #[serde(default)]
    pub secrets: Vec<String>,
    /// Extra environment variables, the same in every environment.
    #[serde(default)]
    pub env: Vec<(String, String)>,
    pub resources: Resources,
    pub scaling: Scaling,
}

/// What starts the function's work.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase", deny_unknown_fields)]
pub enum Trigger {
    /// HTTP requests under these path prefixes, scaled by the KEDA HTTP add-on.
    #[serde(rename_all = "camelCase")]
    Http {
        path_prefixes: Vec<String>,
        /// The prefixes the public ingress sends here (a subset of `path_prefixes`).
        #[serde(default)]
        public: Vec<String>,
    },
    /// Messages on a Service Bus queue, scaled by KEDA on its depth and on what its
    /// replicas hold.
    #[serde(rename_all = "camelCase")]
    Queue {
        queue: String,
        /// The longest one message's handler may run (`QUEUE_HANDLER_TIMEOUT_SECONDS`). It
        /// also bounds a replica's drain after SIGTERM and, with a margin, the pod's
        /// `terminationGracePeriodSeconds`, so a scale-in lets every handler finish.
        #[serde(default = "default_handler_timeout")]
        handler_timeout_seconds: u32,
    },
}

/// The host's handler timeout when a declaration names none (the runtime's own default).
pub const DEFAULT_HANDLER_TIMEOUT_SECONDS: u32 = 120;

fn default_handler_timeout() -> u32 {
    DEFAULT_HANDLER_TIMEOUT_SECONDS
}

/// What the function reaches: decides its egress rules and the settings it is given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase", deny_unknown_fields)]
pub enum Output {
    /// Sends to a Service Bus queue.
    Queue { queue: String },
    /// Calls another function over HTTP; `variable` is the setting that holds its URL.
    Function { name: String, variable: String },
    /// Azure Cache for Redis, signed in with the key in `secret`.
    Redis { secret: String },
    /// Cosmos DB for MongoDB, whose connection string is `secret`.
    MongoDb { secret: String },
}

/// A store a function may declare as an output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    Redis,
    MongoDb,
}

/// The name a declared queue has in a named developer environment (`<queue>-<name>`, so
/// its messages reach no other environment's functions), or as declared outside one. The
/// host and `fabrikam manifests` both name queues by it.
pub fn scoped_queue(queue: &str, environment: Option<&str>) -> String {
    match environment {
        Some(name) => format!("{queue}-{name}"),
        None => queue.to_owned(),
    }
}

/// CPU in millicores and memory in MiB, per replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Resources {
    pub cpu_request_millis: u32,
    pub cpu_limit_millis: u32,
    pub memory_request_mib: u32,
    pub memory_limit_mib: u32,
}

/// How a function scales, per environment: each environment states all four values, since
/// the right ones differ (a dev environment scales to zero and pays for idle minutes; prod
/// keeps replicas for availability and sizes its target for its peak), and a value chosen on
/// one profile's traces must not move the other's HPA (docs/SCALING.md, "Recommended
/// settings").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scaling {
    pub dev: ProfileScaling,
    pub prod: ProfileScaling,
}

/// How a function scales in one environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProfileScaling {
    /// `minReplicaCount`: 0 scales to zero.
    pub min: u32,
    /// `maxReplicaCount`.
    pub max: u32,
    /// Queue triggers: messages waiting or held per replica. HTTP triggers: requests per
    /// second per replica.
    pub target_per_replica: u32,
    /// `cooldownPeriod`: how long without work before scaling to the minimum.
    pub cooldown_seconds: u32,
}

/// The environments manifests are generated for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Profile {
    Dev,
    Prod,
}

impl Profile {
    pub const ALL: [Profile; 2] = [Profile::Dev, Profile::Prod];

    pub fn name(self) -> &'static str {
        match self {
            Profile::Dev => "dev",
            Profile::Prod => "prod",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == s)
    }
}

impl Scaling {
    pub fn profile(&self, profile: Profile) -> ProfileScaling {
        match profile {
            Profile::Dev => self.dev,
            Profile::Prod => self.prod,
        }
    }
}

impl Resources {
    /// A small function: a tenth of a core and 64 MiB requested, half a core and 256 MiB
    /// at most (the host idles at a few MiB; docs/BENCHMARKS.md).
    pub const SMALL: Resources = Resources {
        cpu_request_millis: 100,
        cpu_limit_millis: 500,
        memory_request_mib: 64,
        memory_limit_mib: 256,
    };
}

impl Scaling {
    /// Zero to two replicas in dev; two to ten in prod (two so one node's loss or a
    /// rollout never leaves none); 50 per replica and a 5-minute cooldown in both.
    pub const DEFAULT: Scaling = Scaling {
        dev: ProfileScaling {
            min: 0,
            max: 2,
            target_per_replica: 50,
            cooldown_seconds: 300,
        },
        prod: ProfileScaling {
            min: 2,
            max: 10,
            target_per_replica: 50,
            cooldown_seconds: 300,
        },
    };
}

impl Deployment {
    /// An HTTP function serving `path_prefixes`, with small resources and default scaling.
    pub fn http(name: &str, path_prefixes: &[&str]) -> Self {
        Self::with_trigger(
            name,
            Trigger::Http {
                path_prefixes: strings(path_prefixes),
                public: Vec::new(),
            },
        )
    }

    /// A function triggered by `queue`, with small resources and default scaling.
    pub fn queue(name: &str, queue: &str) -> Self {
        Self::with_trigger(
            name,
            Trigger::Queue {
                queue: queue.to_owned(),
                handler_timeout_seconds: DEFAULT_HANDLER_TIMEOUT_SECONDS,
            },
        )
    }

    /// The queue trigger's handler timeout.
    pub fn handler_timeout(mut self, seconds: u32) -> Self {
        for trigger in &mut self.triggers {
            if let Trigger::Queue {
                handler_timeout_seconds,
                ..
            } = trigger
            {
                *handler_timeout_seconds = seconds;
            }
        }
        self
    }

    fn with_trigger(name: &str, trigger: Trigger) -> Self {
        Self {
            name: name.to_owned(),
            triggers: vec![trigger],
            outputs: Vec::new(),
            secrets: Vec::new(),
            env: Vec::new(),
            resources: Resources::SMALL,
            scaling: Scaling::DEFAULT,
        }
    }

    /// The prefixes of the HTTP trigger the public ingress sends here.
    pub fn public(mut self, prefixes: &[&str]) -> Self {
        for trigger in &mut self.triggers {
            if let Trigger::Http { public, .. } = trigger {
                public.extend(strings(prefixes));
            }
        }
        self
    }

    /// Adds an output. A store output's secret becomes one of the function's secrets, so
    /// it is named once.
    pub fn output(mut self, output: Output) -> Self {
        if let Output::Redis { secret } | Output::MongoDb { secret } = &output
            && !self.secrets.contains(secret)
        {
            self.secrets.push(secret.clone());
        }
        self.outputs.push(output);
        self
    }

    /// Secrets the function reads itself, beyond those its store outputs name.
    pub fn secrets(mut self, names: &[&str]) -> Self {
        for name in names {
            if !self.secrets.iter().any(|s| s == name) {
                self.secrets.push((*name).to_owned());
            }
        }
        self
    }

    pub fn resources(mut self, resources: Resources) -> Self {
        self.resources = resources;
        self
    }

    pub fn scaling(mut self, scaling: Scaling) -> Self {
        self.scaling = scaling;
        self
    }

    /// The queue this function is triggered by, if any.
    pub fn queue_trigger(&self) -> Option<&str> {
        self.triggers.iter().find_map(|t| match t {
            Trigger::Queue { queue, .. } => Some(queue.as_str()),
            Trigger::Http { .. } => None,
        })
    }

    /// The queue trigger's handler timeout, if the function has a queue trigger.
    pub fn handler_timeout_seconds(&self) -> Option<u32> {
        self.triggers.iter().find_map(|t| match t {
            Trigger::Queue {
                handler_timeout_seconds,
                ..
            } => Some(*handler_timeout_seconds),
            Trigger::Http { .. } => None,
        })
    }

    /// The queues the function sends to (its queue outputs).
    pub fn output_queues(&self) -> impl Iterator<Item = &str> {
        self.outputs.iter().filter_map(|o| match o {
            Output::Queue { queue } => Some(queue.as_str()),
            _ => None,
        })
    }

    /// Every queue the function is triggered by or sends to.
    pub fn queues(&self) -> impl Iterator<Item = &str> {
        self.queue_trigger().into_iter().chain(self.output_queues())
    }

    /// The functions it calls, with the variable that holds each one's URL.
    pub fn callees(&self) -> impl Iterator<Item = (&str, &str)> {
        self.outputs.iter().filter_map(|o| match o {
            Output::Function { name, variable } => Some((name.as_str(), variable.as_str())),
            _ => None,
        })
    }

    /// The secret of its Redis or MongoDB output, if it declares one.
    pub fn store_secret(&self, store: Store) -> Option<&str> {
        self.outputs.iter().find_map(|o| match (o, store) {
            (Output::Redis { secret }, Store::Redis)
            | (Output::MongoDb { secret }, Store::MongoDb) => Some(secret.as_str()),
            _ => None,
        })
    }

    /// The HTTP trigger's path prefixes and public prefixes, if any.
    pub fn http_trigger(&self) -> Option<(&[String], &[String])> {
        self.triggers.iter().find_map(|t| match t {
            Trigger::Http {
                path_prefixes,
                public,
            } => Some((path_prefixes.as_slice(), public.as_slice())),
            Trigger::Queue { .. } => None,
        })
    }

    /// Every problem with the declaration, each naming the function and the field.
    pub fn check(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let mut problem = |m: String| problems.push(format!("{}: {m}", self.name));
        if !is_dns_label(&self.name) {
            problem(format!(
                "name {:?} is not a DNS label (lower-case letters, digits and '-', at most 40)",
                self.name
            ));
        }
        let (http, queue) = self.triggers.iter().fold((0, 0), |(h, q), t| match t {
            Trigger::Http { .. } => (h + 1, q),
            Trigger::Queue { .. } => (h, q + 1),
        });
        if http + queue == 0 {
            problem("no trigger: declare an http or a queue trigger".to_owned());
        }
        if http + queue > 1 {
            problem("one trigger per function: KEDA scales a deployment on one signal".to_owned());
        }
        for t in &self.triggers {
            if let Trigger::Queue {
                handler_timeout_seconds: t,
                ..
            } = t
                && !(1..=3600).contains(t)
            {
                // The host's own bounds for QUEUE_HANDLER_TIMEOUT_SECONDS.
                problem(format!(
                    "the queue trigger's handlerTimeoutSeconds {t} is not between 1 and 3600"
                ));
            }
        }
        if let Some((prefixes, public)) = self.http_trigger() {
            if prefixes.is_empty() {
                problem("the http trigger has no path prefix".to_owned());
            }
            for p in prefixes.iter().chain(public) {
                if !p.starts_with('/') || p.len() < 2 || p.contains(['{', '}', ' ', '*']) {
                    problem(format!(
                        "path prefix {p:?} must be a literal path like /api/x"
                    ));
                }
            }
            for p in public {
                if !prefixes.iter().any(|prefix| p.starts_with(prefix.as_str())) {
                    problem(format!(
                        "public path {p:?} is not under a declared path prefix"
                    ));
                }
            }
        }
        for (name, secret) in self.outputs.iter().filter_map(|o| match o {
            Output::Redis { secret } => Some(("redis", secret)),
            Output::MongoDb { secret } => Some(("mongoDb", secret)),
            _ => None,
        }) {
            if !self.secrets.contains(secret) {
                problem(format!(
                    "output {name} needs the secret {secret:?}, which is not in secrets {:?}",
                    self.secrets
                ));
            }
        }
        for secret in &self.secrets {
            if secret.is_empty()
                || !secret
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-')
            {
                problem(format!(
                    "secret {secret:?} is not a Key Vault object name (letters, digits, '-')"
                ));
            }
        }
        let r = self.resources;
        if r.cpu_request_millis == 0 || r.memory_request_mib == 0 {
            problem("resources: requests must be above zero".to_owned());
        }
        if r.cpu_request_millis > r.cpu_limit_millis || r.memory_request_mib > r.memory_limit_mib {
            problem(format!(
                "resources: a request is above its limit (cpu {}m/{}m, memory {}Mi/{}Mi)",
                r.cpu_request_millis, r.cpu_limit_millis, r.memory_request_mib, r.memory_limit_mib
            ));
        }
        for profile in Profile::ALL {
            let ProfileScaling {
                min,
                max,
                target_per_replica,
                ..
            } = self.scaling.profile(profile);
            if min > max {
                problem(format!(
                    "scaling.{}: min {min} is above max {max}",
                    profile.name()
                ));
            }
            if max == 0 {
                problem(format!(
                    "scaling.{}: max must be at least 1",
                    profile.name()
                ));
            }
            if target_per_replica == 0 {
                problem(format!(
                    "scaling.{}.targetPerReplica must be at least 1",
                    profile.name()
                ));
            }
        }
        problems
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 40
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && !s.ends_with('-')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn valid() -> Deployment {
        Deployment::http("delivery", &["/api/deliveries"])
            .public(&["/api/deliveries/public"])
            .output(Output::Redis {
                secret: "Redis-AccessKey".to_owned(),
            })
    }

    #[test]
    fn a_store_outputs_secret_is_declared_once_by_naming_the_output() {
        let d = valid().secrets(&["Redis-AccessKey", "Api-Key"]);
        assert_eq!(d.secrets, ["Redis-AccessKey", "Api-Key"]);
        assert_eq!(d.store_secret(Store::Redis), Some("Redis-AccessKey"));
        assert_eq!(d.store_secret(Store::MongoDb), None);
    }

    #[test]
    fn a_valid_declaration_has_no_problem_and_round_trips_through_json() {
        let d = valid();
        assert_eq!(d.check(), Vec::<String>::new());
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(serde_json::from_str::<Deployment>(&json).unwrap(), d);
    }

    #[test]
    fn every_problem_is_named() {
        let mut d = valid();
        d.name = "Delivery".to_owned();
        d.secrets.clear();
        d.resources.cpu_request_millis = 900;
        d.scaling.prod.min = 5;
        d.scaling.prod.max = 3;
        d.scaling.dev.target_per_replica = 0;
        d.triggers.push(Trigger::Queue {
            queue: "q".to_owned(),
            handler_timeout_seconds: 0,
        });
        let problems = d.check().join("\n");
        for needle in [
            "not a DNS label",
            "needs the secret \"Redis-AccessKey\"",
            "request is above its limit",
            "scaling.prod: min 5 is above max 3",
            "scaling.dev.targetPerReplica must be at least 1",
            "one trigger per function",
            "handlerTimeoutSeconds 0 is not between 1 and 3600",
        ] {
            assert!(
                problems.contains(needle),
                "{needle} missing from {problems}"
            );
        }
    }

    #[test]
    fn an_unknown_trigger_kind_is_refused_when_read() {
        let mut json = serde_json::to_value(valid()).unwrap();
        json["triggers"][0] = serde_json::json!({"kind": "timer", "schedule": "* * * * *"});
        let e = serde_json::from_value::<Deployment>(json).unwrap_err();
        assert!(e.to_string().contains("unknown variant `timer`"), "{e}");
    }
}
