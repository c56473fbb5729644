//! The local system as separate processes, one per function, as the cluster runs them: where
//! each listens and how each finds its callees, from the registry. `fabrikam processes`
//! prints it; `scripts/dev --processes` and the fault suite (`tests/faults`) start the
//! function binaries from it. The transport and the stores are the caller's to add (a
//! shared queue needs a real broker once the functions are apart).

use std::collections::BTreeMap;
use std::net::SocketAddr;

use runtime::deploy::Deployment;
use serde::Serialize;

use crate::DevOptions;

/// Every function's process and the two gateways in front of them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProcessPlan {
    pub functions: Vec<FunctionProcess>,
    /// `fabrikam gateway` arguments for the ingress (public routes) on `DEV_GATEWAY_PORT`.
    pub ingress: Vec<String>,
    /// `fabrikam gateway` arguments for every route on `DEV_INTERNAL_PORT`.
    pub internal: Vec<String>,
    /// The queues the functions use, to declare on the broker before they start.
    pub queues: Vec<String>,
}

/// One function's process.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FunctionProcess {
    /// The function, its crate and its binary.
    pub name: String,
    pub addr: SocketAddr,
    /// What to set on top of the caller's environment: `HOST`, `PORT`, each callee's URL
    /// variable, and `TOKIO_WORKER_THREADS` (see [`worker_threads`]).
    pub env: BTreeMap<String, String>,
}

/// The async runtime's worker threads a function gets in the cluster: its pod's CPU limit,
/// rounded up (the runtime sizes its pool by `std::thread::available_parallelism`, which
/// reads the container's CPU quota), so a 500m function runs one worker. Unconfined, a
/// process here would start one per core of the machine, and pay for threads waking each
/// other that the deployed function never has (scripts/bench-broker: 15% more CPU per
/// delivery across the five functions).
pub fn worker_threads(cpu_limit_millis: u32) -> u32 {
    cpu_limit_millis.div_ceil(1000).max(1)
}

/// The plan for `functions` (registry order) on the ports `options` gives out: function `i`
/// on `first_function_port + i`, as `fabrikam dev` does.
pub fn plan(functions: &[Deployment], options: &DevOptions) -> ProcessPlan {
    let addr_of = |index: usize| {
        let port = u16::try_from(index)
            .ok()
            .and_then(|i| options.first_function_port.checked_add(i))
            .unwrap_or(0);
        SocketAddr::new(options.bind, port)
    };
    let index_of = |name: &str| functions.iter().position(|f| f.name == name);
    let processes: Vec<FunctionProcess> = functions
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let addr = addr_of(i);
            let mut env = BTreeMap::from([
                (
                    runtime::contract::env::HOST.to_owned(),
                    addr.ip().to_string(),
                ),
                (
                    runtime::contract::env::PORT.to_owned(),
                    addr.port().to_string(),
                ),
                (
                    "TOKIO_WORKER_THREADS".to_owned(),
                    worker_threads(f.resources.cpu_limit_millis).to_string(),
                ),
            ]);
            for (callee, variable) in f.callees() {
                if let Some(j) = index_of(callee) {
                    env.insert(variable.to_owned(), format!("http://{}", addr_of(j)));
                }
            }
            FunctionProcess {
                name: f.name.clone(),
                addr,
                env,
            }
        })
        .collect();
    let gateway = |port: u16, public: bool| {
        let mut args = vec![
            "gateway".to_owned(),
            "--listen".to_owned(),
            SocketAddr::new(options.bind, port).to_string(),
        ];
        if public {
            args.push("--public".to_owned());
        }
        // Every HTTP function's address: the gateway itself keeps to the public prefixes.
        for (f, p) in functions.iter().zip(&processes) {
            if f.http_trigger().is_some() {
                args.push("--upstream".to_owned());
                args.push(format!("{}={}", f.name, p.addr));
            }
        }
        args
    };
    let mut queues: Vec<String> = functions
        .iter()
        .flat_map(|f| f.queues().map(str::to_owned))
        .collect();
    queues.sort();
    queues.dedup();
    ProcessPlan {
        ingress: gateway(options.gateway_port, true),
        internal: gateway(options.internal_port, false),
        functions: processes,
        queues,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifests::declarations;

    #[test]
    fn a_function_gets_the_workers_its_cpu_limit_gives_it_in_the_cluster() {
        assert_eq!(worker_threads(100), 1);
        assert_eq!(worker_threads(500), 1);
        assert_eq!(worker_threads(1000), 1);
        assert_eq!(worker_threads(1500), 2);
        assert_eq!(worker_threads(0), 1);
    }

    #[test]
    fn each_function_gets_the_next_port_and_its_callees_addresses() {
        let plan = plan(&declarations(), &DevOptions::default());
        let port = |name: &str| {
            plan.functions
                .iter()
                .find(|f| f.name == name)
                .map(|f| f.addr.port())
        };
        let workflow = plan.functions.iter().find(|f| f.name == "workflow");
        let env = |name: &str| workflow.and_then(|w| w.env.get(name).cloned());
        assert_eq!(port("ingestion"), Some(8081));
        assert_eq!(
            env("DELIVERY_SERVICE_URL"),
            port("delivery").map(|p| format!("http://127.0.0.1:{p}"))
        );
        assert_eq!(plan.queues, ["deliveries"]);
        assert_eq!(
            env("TOKIO_WORKER_THREADS").as_deref(),
            Some("1"),
            "a 500m function runs one worker, as in its pod"
        );
        // Both gateways know every HTTP function (the ingress keeps to the public prefixes
        // itself); workflow serves no routes.
        assert!(plan.ingress.contains(&"--public".to_owned()));
        assert!(plan.ingress.iter().any(|a| a.starts_with("package=")));
        assert!(!plan.internal.contains(&"--public".to_owned()));
        assert!(!plan.internal.iter().any(|a| a.starts_with("workflow=")));
    }
}
