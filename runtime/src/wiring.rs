//! [`Wiring`]: where a function's declared queues and callees are in this environment,
//! read from the environment variables its declaration names, so the function's own config
//! never restates them.
//!
//! - A queue keeps its declared name, `<queue>-<name>` in a named developer environment
//!   ([`crate::config::ENVIRONMENT_NAME`]), or takes [`QUEUE_NAME`] when set (a function with
//!   one queue only).
//! - A callee is at the URL in the variable its [`Output::Function`] names (the cluster's
//!   manifests set it to the HTTP add-on's interceptor; `fabrikam dev` to the callee's local
//!   port), `http://<callee>` when unset.
//!
//! [`Output::Function`]: crate::deploy::Output::Function

use std::collections::BTreeMap;

use crate::config::{ENVIRONMENT_NAME, EnvReader};
use crate::deploy::{Deployment, scoped_queue};

pub use crate::contract::env::QUEUE_NAME;

/// A function's queues and callees as this environment names them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Wiring {
    /// Declared queue name -> the queue's name here.
    queues: BTreeMap<String, String>,
    /// Callee -> its base URL.
    callees: BTreeMap<String, String>,
}

impl Wiring {
    /// Reads `QUEUE_NAME`, `FABRIKAM_ENVIRONMENT` and each callee's URL variable, recording
    /// every problem in `r`.
    pub fn from_env(r: &mut EnvReader<'_>, declaration: &Deployment) -> Self {
        let declared: Vec<&str> = declaration.queues().collect();
        let environment = r.raw(ENVIRONMENT_NAME);
        let overridden = r.raw(QUEUE_NAME);
        let mut queues = BTreeMap::new();
        for queue in &declared {
            let name = match &overridden {
                Some(name) => name.clone(),
                None => scoped_queue(queue, environment.as_deref()),
            };
            queues.insert((*queue).to_owned(), name);
        }
        if overridden.is_some() && declared.len() > 1 {
            r.problem(
                QUEUE_NAME,
                format!(
                    "names one queue, but {} declares {}",
                    declaration.name,
                    declared.join(", ")
                ),
            );
        }
        let callees = declaration
            .callees()
            .map(|(callee, variable)| {
                let url = r.http_url(variable, &format!("http://{callee}"));
                (callee.to_owned(), url)
            })
            .collect();
        Self { queues, callees }
    }

    /// The name here of the declared queue `queue`.
    pub fn queue(&self, queue: &str) -> Option<&str> {
        self.queues.get(queue).map(String::as_str)
    }

    /// The base URL of the declared callee `callee`.
    pub fn callee(&self, callee: &str) -> Option<&str> {
        self.callees.get(callee).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MapEnv;
    use crate::deploy::Output;

    fn read(env: MapEnv, d: &Deployment) -> (Wiring, Result<(), crate::config::ConfigError>) {
        let mut r = EnvReader::new(&env);
        let w = Wiring::from_env(&mut r, d);
        (w, r.finish())
    }

    fn worker() -> Deployment {
        Deployment::queue("worker", "work").output(Output::Function {
            name: "store".into(),
            variable: "STORE_URL".into(),
        })
    }

    #[test]
    fn queues_keep_their_declared_name_or_take_the_environments_scope_or_the_override() {
        let (w, ok) = read(MapEnv::new(), &worker());
        ok.unwrap();
        assert_eq!(w.queue("work"), Some("work"));
        let (w, _) = read(MapEnv::from([(ENVIRONMENT_NAME, "alice")]), &worker());
        assert_eq!(w.queue("work"), Some("work-alice"));
        let (w, _) = read(MapEnv::from([(QUEUE_NAME, "other")]), &worker());
        assert_eq!(w.queue("work"), Some("other"));
        assert_eq!(w.queue("undeclared"), None);
    }

    #[test]
    fn an_override_is_refused_for_a_function_with_two_queues() {
        let d = worker().output(Output::Queue {
            queue: "out".into(),
        });
        let (_, result) = read(MapEnv::from([(QUEUE_NAME, "q")]), &d);
        let e = result.unwrap_err();
        assert!(e.names(QUEUE_NAME), "{e}");
        assert!(e.to_string().contains("declares work, out"), "{e}");
    }

    #[test]
    fn a_callee_is_at_its_variables_url_or_its_name() {
        let (w, _) = read(MapEnv::new(), &worker());
        assert_eq!(w.callee("store"), Some("http://store"));
        let (w, _) = read(
            MapEnv::from([("STORE_URL", "http://127.0.0.1:9000/")]),
            &worker(),
        );
        assert_eq!(w.callee("store"), Some("http://127.0.0.1:9000"));
        let (_, result) = read(MapEnv::from([("STORE_URL", "ftp://x")]), &worker());
        assert!(result.unwrap_err().names("STORE_URL"));
    }
}
