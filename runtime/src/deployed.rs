//! A deployed function never runs on the embedded queue or stores by accident: those are
//! for the local run and tests, and a standalone binary started with a variable missing
//! would accept work into a process-local queue or memory that no other replica sees, and
//! lose it when the pod goes. So a function binary (`runtime::run`) refuses to start, naming
//! the variables, when its declaration has a queue and no transport is configured, a Redis
//! output and no `REDIS_URL`, or a MongoDB output and neither a connection string nor a
//! secret source to read one from. `FABRIKAM_LOCAL=1` allows the embedded ones on purpose;
//! `fabrikam dev` is local by definition.

use crate::config::EnvReader;
use crate::deploy::{Deployment, Output};
use crate::host_config::HostConfig;
use crate::queue::amqp::Transport;

pub use crate::contract::env::FABRIKAM_LOCAL;

/// Whether this process was asked to run on embedded defaults.
pub fn local(r: &mut EnvReader<'_>) -> bool {
    matches!(
        r.choice(FABRIKAM_LOCAL, "0", &["0", "1", "false", "true"]),
        "1" | "true"
    )
}

/// Records a problem for each thing `declaration` needs that the environment does not
/// configure.
pub fn check(r: &mut EnvReader<'_>, declaration: &Deployment, host: &HostConfig) {
    let hint = format!("or set {FABRIKAM_LOCAL}=1 to run on the embedded one");
    if let Some(queue) = declaration.queues().next()
        && host.transport == Transport::Embedded
    {
        r.problem(
            "AMQP_URL",
            format!(
                "{} uses the queue {queue}, but no queue transport is configured: set \
                 SERVICEBUS_NAMESPACE, SERVICEBUS_CONNECTION_STRING or AMQP_URL, {hint}",
                declaration.name
            ),
        );
    }
    let secret_source = host.secrets.source.is_some();
    for output in &declaration.outputs {
        match output {
            Output::Redis { .. } if r.raw("REDIS_URL").is_none() => r.problem(
                "REDIS_URL",
                format!(
                    "{} stores in Redis, but REDIS_URL is not set, {hint}",
                    declaration.name
                ),
            ),
            Output::MongoDb { secret }
                if !secret_source
                    && r.raw("MONGODB_URI").is_none()
                    && r.raw("MONGODB_URI_FILE").is_none() =>
            {
                r.problem(
                    "MONGODB_URI",
                    format!(
                        "{} stores in MongoDB, but neither MONGODB_URI, MONGODB_URI_FILE nor a \
                         secret source for {secret} is set, {hint}",
                        declaration.name
                    ),
                );
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MapEnv;

    fn problems(declaration: &Deployment, env: &MapEnv) -> Result<(), crate::config::ConfigError> {
        let mut r = EnvReader::new(env);
        let host = HostConfig::from_env(&mut r);
        if !local(&mut r) {
            check(&mut r, declaration, &host);
        }
        r.finish()
    }

    fn sender() -> Deployment {
        Deployment::http("front", &["/api/front"]).output(Output::Queue { queue: "q".into() })
    }

    fn mongo() -> Deployment {
        Deployment::http("store", &["/api/store"]).output(Output::MongoDb {
            secret: "Db".into(),
        })
    }

    #[test]
    fn a_queue_without_a_transport_is_refused_unless_local() {
        let e = problems(&sender(), &MapEnv::new()).unwrap_err();
        assert!(
            e.names("AMQP_URL") && e.to_string().contains("FABRIKAM_LOCAL=1"),
            "{e}"
        );
        problems(
            &sender(),
            &MapEnv::from([("AMQP_URL", "amqp://127.0.0.1:5672")]),
        )
        .unwrap();
        problems(&sender(), &MapEnv::from([(FABRIKAM_LOCAL, "1")])).unwrap();
    }

    #[test]
    fn a_store_without_a_server_is_refused_unless_local() {
        let redis = Deployment::http("d", &["/api/d"]).output(Output::Redis { secret: "K".into() });
        assert!(
            problems(&redis, &MapEnv::new())
                .unwrap_err()
                .names("REDIS_URL")
        );
        problems(&redis, &MapEnv::from([("REDIS_URL", "redis://h:6379")])).unwrap();
        assert!(
            problems(&mongo(), &MapEnv::new())
                .unwrap_err()
                .names("MONGODB_URI")
        );
        let mount = std::env::temp_dir().display().to_string();
        problems(
            &mongo(),
            &MapEnv::from([(crate::contract::env::SECRETS_DIR, mount.as_str())]),
        )
        .unwrap();
        problems(
            &mongo(),
            &MapEnv::from([("MONGODB_URI", "mongodb://h:27017")]),
        )
        .unwrap();
        problems(&mongo(), &MapEnv::from([(FABRIKAM_LOCAL, "true")])).unwrap();
    }

    #[test]
    fn a_function_with_neither_queue_nor_store_needs_nothing() {
        problems(&Deployment::http("plain", &["/api/plain"]), &MapEnv::new()).unwrap();
    }
}
